#!/usr/bin/env bash
# The whole edgeroute test suite: installs what is missing, builds everything
# offline, runs every test (with -Werror), the ThreadSanitizer pass over the
# concurrent code, and prints `N passed, N failed` counted from the results.
# Exit status is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

BAZEL_FLAGS=(--config=ci --keep_going)
if [ "${CI:-}" = "true" ]; then
  BAZEL_FLAGS+=(--jobs=2 --local_ram_resources=HOST_RAM*.5)
fi

results="$(mktemp -d)"
status=0

# The tests a pass runs: QUERY's tests without the manual ones.
pass_targets() {
  bazel query "tests($1) except attr(tags, '\bmanual\b', tests($1))" 2>/dev/null
}
# Copies the test.xml of each target named on stdin into DEST. Only that
# pass's targets: bazel-testlogs is shared by every configuration and still
# holds the other passes' reports, which must not count twice.
copy_logs() {
  local dest="$1" target pkg name
  while read -r target; do
    pkg="${target#//}"
    name="${pkg##*:}"
    pkg="${pkg%%:*}"
    if [ -f "bazel-testlogs/$pkg/$name/test.xml" ]; then
      mkdir -p "$dest/$pkg/$name"
      cp -L "bazel-testlogs/$pkg/$name/test.xml" "$dest/$pkg/$name/"
    fi
  done
}

# The Azure IoT Node.js SDK that //tests/mqtt:azure_sdk_test drives, at the
# versions pinned in tests/mqtt/node/package-lock.json (needs the npm
# registry). Without npm the SDK tests are skipped, and say so.
if command -v npm >/dev/null 2>&1; then
  echo "== npm ci (tests/mqtt/node)"
  if (cd tests/mqtt/node && npm ci --no-audit --no-fund); then
    BAZEL_FLAGS+=(--test_env=EDGEROUTE_NODE_MODULES="$PWD/tests/mqtt/node/node_modules")
  else
    echo "npm ci failed: //tests/mqtt:azure_sdk_test will fail for want of the SDK"
  fi
else
  echo "== npm not found: //tests/mqtt:azure_sdk_test SKIPS the Azure IoT SDK tests"
  BAZEL_FLAGS+=(--test_env=EDGEROUTE_SDK_TESTS=skip)
fi

echo "== bazel test //... (offline, -Werror)"
bazel test "${BAZEL_FLAGS[@]}" //... 2>&1 | tee "$results/default.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
pass_targets //... | copy_logs "$results/default"

# Installing and packaging, from what that pass just built (bazel-bin holds
# //bindings/c:libedgeroute.so.0, the static archive and //tools:edgeroute;
# these scripts run no Bazel): a scratch-prefix install used from C through
# pkg-config and CMake and from Python, and the Debian package. Each step is
# one case in their JUnit files.
echo "== packaging: install into a scratch prefix, the .deb, the Go and Node.js bindings"
bash packaging/tests/install_test.sh --junit "$results/packaging-install.junit.xml" || status=1
bash packaging/tests/deb_test.sh --junit "$results/packaging-deb.junit.xml" || status=1
# The Go and Node.js bindings over that install (npm ci needs the registry).
bash packaging/tests/bindings_test.sh --junit "$results/packaging-bindings.junit.xml" || status=1

# Concurrent code again under ThreadSanitizer (tests tagged "tsan").
echo "== bazel test --config=tsan (tests tagged tsan)"
tsan_targets=$(bazel query 'attr(tags, "\btsan\b", tests(//...))' 2>/dev/null)
if [ -n "$tsan_targets" ]; then
  bazel test "${BAZEL_FLAGS[@]}" --config=tsan $tsan_targets 2>&1 | tee "$results/tsan.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  echo "$tsan_targets" | copy_logs "$results/tsan"
fi

# The unit and component tests again under AddressSanitizer + UBSan: the
# parsers and the fuzz corpus replays, the router, the store, both protocol
# heads, the upstream connector, the CLI and the C ABI. Not under it: the
# crash, power-cut and stress tests (minutes each at sanitizer speed) and
# the Python-driven process tests of tests/mqtt and tests/upstream. The
# Python binding's tests run over the sanitized library below.
asan_set="//base/... + //message/... + //query/... + //router/... + //store/... + //gateway/... + //tools/... + //bindings/c/... + //tests/e2e/... + //tests/conformance/..."
echo "== bazel test --config=asan (unit and component tests)"
bazel test "${BAZEL_FLAGS[@]}" --config=asan $(echo "$asan_set" | tr -d '+') 2>&1 | tee "$results/asan.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
pass_targets "$asan_set" | copy_logs "$results/asan"

# Python binding tests (pytest from Debian, under Debian's interpreter):
# first over the library built with AddressSanitizer + UBSan (the
# interpreter is not instrumented, so the sanitizer runtimes are preloaded
# and leak checking is off: CPython keeps objects until exit by design),
# then over the normal build.
if [ -d bindings/python/tests ] && ls bindings/python/tests/test_*.py >/dev/null 2>&1; then
  echo "== pytest bindings/python (library under ASan + UBSan)"
  bazel build "${BAZEL_FLAGS[@]}" --config=asan //bindings/c:libedgeroute.so 2>&1 | tee "$results/python-asan-build.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  asan_lib="$results/asan-lib"
  mkdir -p "$asan_lib"
  cp -f bazel-bin/bindings/c/libedgeroute.so "$asan_lib/"
  LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    EDGEROUTE_LIBRARY="$asan_lib/libedgeroute.so" \
    PYTHONPATH="$PWD/bindings/python" \
    /usr/bin/python3 -m pytest -q bindings/python/tests -p no:cacheprovider \
    --junitxml="$results/pytest-asan.junit.xml" || status=1
  echo "== pytest bindings/python"
  bazel build "${BAZEL_FLAGS[@]}" //bindings/c:libedgeroute.so 2>&1 | tee "$results/python-build.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  EDGEROUTE_LIBRARY="$PWD/bazel-bin/bindings/c/libedgeroute.so" \
    PYTHONPATH="$PWD/bindings/python" \
    /usr/bin/python3 -m pytest -q bindings/python/tests \
    --junitxml="$results/pytest.junit.xml" || status=1
fi

logs=()
for log in "$results"/*.log; do
  [ -f "$log" ] && logs+=(--bazel-log "$log")
done
/usr/bin/python3 tools/ci/count_results.py "${logs[@]}" "$results"
rm -rf "$results"
exit $status
