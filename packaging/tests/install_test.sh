#!/usr/bin/env bash
# Installs edgeroute into a scratch prefix from an existing Bazel build and
# uses it as a gateway builder would: the C example through pkg-config and
# through CMake's find_package, each against the shared and the static
# library; the command line and its man page; the Python package installed
# with pip into a venv, offline.
#
#   bash packaging/tests/install_test.sh [--bazel-bin DIR] [--junit FILE]
#
# The build must hold //bindings/c:libedgeroute.so.0,
# //bindings/c:libedgeroute_static and //tools:edgeroute (scripts/test.sh
# runs this after `bazel test //...`). Runs no Bazel itself.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"
source packaging/tests/junit.sh
test_args install "$@"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
version="$(tr -d ' \n' < VERSION)"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"

needs_libedgeroute() { readelf -d "$1" | grep -q 'NEEDED.*\[libedgeroute\.so\.0\]'; }

install_into_prefix() {
  set -e
  bash scripts/install.sh --no-build --bazel-bin "$bazel_bin" --prefix "$prefix"
  for f in lib/libedgeroute.so.$version lib/libedgeroute.a \
           include/edgeroute/edgeroute.h lib/pkgconfig/edgeroute.pc \
           lib/cmake/edgeroute/edgerouteConfig.cmake \
           lib/cmake/edgeroute/edgerouteConfigVersion.cmake bin/edgeroute \
           share/man/man1/edgeroute.1.gz; do
    test -f "$prefix/$f" || { echo "missing $f"; exit 1; }
  done
  test "$(readlink "$prefix/lib/libedgeroute.so")" = libedgeroute.so.0
  test "$(readlink "$prefix/lib/libedgeroute.so.0")" = "libedgeroute.so.$version"
  readelf -d "$prefix/lib/libedgeroute.so.$version" | grep 'SONAME' \
    | grep -q '\[libedgeroute\.so\.0\]'
  # The archive resolves on its own plus the libraries in Libs.private.
  test "$(pkg-config --modversion edgeroute)" = "$version"
  pkg-config --static --libs edgeroute | grep -q -- '-lrocksdb'
}

command_line() {
  set -e
  test "$("$prefix/bin/edgeroute" --version)" = "edgeroute $version"
  "$prefix/bin/edgeroute" check examples/deployment.json
  ! "$prefix/bin/edgeroute" check examples/invalid.json >/dev/null
  zcat "$prefix/share/man/man1/edgeroute.1.gz" | grep -q '^\.TH EDGEROUTE "1"'
  zcat "$prefix/share/man/man1/edgeroute.1.gz" | grep -q 'edgeroute check'
}

pkg_config_shared() {
  set -e
  # shellcheck disable=SC2046
  cc -std=c99 -Wall -Wextra -Wno-missing-field-initializers -Werror bindings/c/example.c \
    $(pkg-config --cflags --libs edgeroute) -Wl,-rpath,"$prefix/lib" \
    -o "$work/example_shared"
  needs_libedgeroute "$work/example_shared"
  "$work/example_shared" | tee /dev/stderr | grep 'delivered 100' >/dev/null
}

pkg_config_static() {
  set -e
  # Libs.private with the archive instead of -ledgeroute (which a linker
  # resolves to the shared library when both are installed).
  # shellcheck disable=SC2046
  cc -std=c99 -Wall -Wextra -Wno-missing-field-initializers -Werror bindings/c/example.c \
    $(pkg-config --cflags edgeroute) \
    $(pkg-config --static --libs edgeroute | sed 's/-ledgeroute\b/-l:libedgeroute.a/') \
    -o "$work/example_static"
  ! needs_libedgeroute "$work/example_static"
  "$work/example_static" | tee /dev/stderr | grep 'delivered 100' >/dev/null
}

cmake_project() {
  set -e
  local kind="$1" static=OFF
  [ "$kind" = static ] && static=ON
  cmake -S packaging/tests/cmake_project -B "$work/cmake-$kind" \
    -DCMAKE_PREFIX_PATH="$prefix" -DEDGEROUTE_STATIC=$static \
    -DEXAMPLE_SOURCE="$repo/bindings/c/example.c" -DCMAKE_C_FLAGS="-Wall -Werror"
  cmake --build "$work/cmake-$kind"
  if [ "$kind" = static ]; then
    ! needs_libedgeroute "$work/cmake-$kind/example"
  else
    needs_libedgeroute "$work/cmake-$kind/example"
  fi
  "$work/cmake-$kind/example" | tee /dev/stderr | grep 'delivered 100' >/dev/null
}

cmake_version_check() {
  set -e
  # A newer release than the installed one is refused.
  mkdir -p "$work/cmake-version"
  printf 'cmake_minimum_required(VERSION 3.16)\nproject(v LANGUAGES NONE)\nfind_package(edgeroute 9.0 REQUIRED)\n' \
    > "$work/cmake-version/CMakeLists.txt"
  ! cmake -S "$work/cmake-version" -B "$work/cmake-version/build" \
    -DCMAKE_PREFIX_PATH="$prefix" > "$work/cmake-version.log" 2>&1
  grep -q 'not compatible\|version: 0\.' "$work/cmake-version.log"
}

python_package() {
  set -e
  # The package copied out, so pip's in-tree build leaves the tree clean.
  cp -r bindings/python "$work/python-src"
  rm -rf "$work/python-src/build" "$work/python-src/"*.egg-info
  /usr/bin/python3 -m venv --system-site-packages "$work/venv"
  "$work/venv/bin/pip" install --no-index --no-build-isolation -q "$work/python-src"
  cd "$work"
  # No EDGEROUTE_LIBRARY: the loader finds libedgeroute.so.0 in the prefix.
  env -u EDGEROUTE_LIBRARY LD_LIBRARY_PATH="$prefix/lib" "$work/venv/bin/python" - <<PY
import edgeroute, edgeroute._native as native
assert edgeroute.__file__.startswith("$work/venv"), edgeroute.__file__
assert native.lib._name == "libedgeroute.so.0", native.lib._name
assert edgeroute.version() == "$version", edgeroute.version()
PY
  env -u EDGEROUTE_LIBRARY LD_LIBRARY_PATH="$prefix/lib" \
    "$work/venv/bin/python" "$repo/bindings/python/examples/quickstart.py" \
    | tee /dev/stderr | grep 'delivered' >/dev/null
}

junit_begin packaging.install "$junit"
run_case install_into_prefix install_into_prefix
run_case command_line_and_man_page command_line
run_case c_example_pkg_config_shared pkg_config_shared
run_case c_example_pkg_config_static pkg_config_static
run_case c_example_cmake_shared cmake_project shared
run_case c_example_cmake_static cmake_project static
run_case cmake_version_refused cmake_version_check
run_case python_pip_install_offline python_package
junit_end
