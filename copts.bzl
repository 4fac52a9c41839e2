"""The one list of compiler flags every edgeroute target uses.

Started from Abseil's GCC warning list (absl/copts/GENERATED_copts.bzl).
CI adds -Werror through `--config=ci`.
"""

EDGEROUTE_COPTS = [
    "-Wall",
    "-Wextra",
    "-Wcast-qual",
    "-Wconversion-null",
    "-Wformat-security",
    "-Wmissing-declarations",
    "-Woverlength-strings",
    "-Wpointer-arith",
    "-Wundef",
    "-Wunused-local-typedefs",
    "-Wunused-result",
    "-Wvarargs",
    "-Wvla",
    "-Wwrite-strings",
    "-Wno-sign-compare",
    "-Wno-missing-field-initializers",
    # C++17 has no trigraphs; GCC still warns about "??" sequences in strings.
    "-Wno-trigraphs",
]

# Tests and benchmarks: the same warnings; gtest macros trip -Wmissing-declarations.
EDGEROUTE_TEST_COPTS = EDGEROUTE_COPTS + [
    "-Wno-missing-declarations",
]
