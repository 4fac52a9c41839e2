#!/usr/bin/env bash
# The Go and Node.js bindings against edgeroute installed into a scratch
# prefix (from an existing Bazel build, like install_test.sh): go vet, go
# test (each Test function one case), the Go send benchmarks beside the C
# loop, npm ci (the pinned koffi), node --test (its own JUnit file) and the
# Node.js send benchmark. Offline except npm ci, which needs the npm
# registry, as the SDK tests' does.
#
#   bash packaging/tests/bindings_test.sh [--bazel-bin DIR] [--junit FILE]
set -uo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"
source packaging/tests/junit.sh
test_args bindings "$@"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
export LD_LIBRARY_PATH="$prefix/lib"
unset EDGEROUTE_LIBRARY
# Go: no module downloads (the binding has no dependencies).
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local
# A build cache of this run's own: Go keys cached cgo packages without the
# pkg-config output, so a cache from an earlier run links against that
# run's (deleted) scratch prefix ("cannot find -ledgeroute").
export GOCACHE="$work/go-cache"

junit_begin packaging.bindings "$junit"
run_case install_into_prefix \
  bash scripts/install.sh --no-build --bazel-bin "$bazel_bin" --prefix "$prefix"

if command -v go >/dev/null; then
  run_case go_vet bash -c 'cd bindings/go && go vet ./...'
  # Each Test function is one case.
  (cd bindings/go && go test -count=1 -v . > "$work/go-test.log" 2>&1)
  go_status=$?
  cat "$work/go-test.log"
  cases=0
  while read -r verdict name; do
    cases=$((cases + 1))
    if [ "$verdict" = PASS ]; then
      add_case "go/$name" pass
    else
      add_case "go/$name" fail "$(grep -A20 -- "--- FAIL: $name" "$work/go-test.log")"
    fi
  done < <(sed -n 's/^--- \(PASS\|FAIL\): \([A-Za-z0-9_]*\).*/\1 \2/p' "$work/go-test.log")
  if [ "$go_status" -ne 0 ] && ! grep -q -- '--- FAIL' "$work/go-test.log"; then
    add_case go/test fail "$(tail -40 "$work/go-test.log")"  # did not build or run
  elif [ "$cases" -eq 0 ]; then
    add_case go/test fail "no test ran"
  fi
  # Send throughput: Go binding and the same loop in C, one run.
  run_case go_send_benchmark bash -c \
    'cd bindings/go && go test -count=1 -run "^$" -bench . -benchtime 100000x . | tee /dev/stderr | grep -q "^ok"'
  grep -h 'Benchmark' "$JUNIT_LOG" 2>/dev/null || true
else
  skip_case go "go not found (bash scripts/setup.sh installs golang-go)"
fi

if command -v npm >/dev/null && command -v node >/dev/null; then
  run_case npm_ci bash -c 'cd bindings/node && npm ci --no-audit --no-fund'
  # node's own JUnit reporter: every test is one case in that file.
  node_junit="${junit%.junit.xml}-node.junit.xml"
  (cd bindings/node && node --test --test-reporter=spec --test-reporter-destination=stdout \
     --test-reporter=junit --test-reporter-destination="$node_junit" test/) \
    || echo "node --test failed (counted from $node_junit)"
  [ -s "$node_junit" ] || add_case node/test fail "node --test wrote no report"
  run_case node_send_benchmark bash -c 'cd bindings/node && node bench/send_bench.js 100000'
else
  skip_case node "node or npm not found"
fi
junit_end
