#!/bin/bash
# Runs the benchmarks that compare edgeroute with a peer in the same run
# (query vs SQLite, router vs a mutex + deque baseline, store vs raw RocksDB,
# gateway vs mosquitto) and writes bench/results/: RESULTS.md, SVG charts,
# and the raw Google Benchmark JSON under bench/results/raw/.
#
#   bench/report.sh            # a full run (tens of minutes)
#   bench/report.sh --quick    # short runs, to try it (a few minutes)
#
# Needs scripts/setup.sh's packages (mosquitto, python3-matplotlib). Not part
# of the test suite: the numbers depend on the machine and its load. Close
# other work while it runs; each peer runs in the same process and minute as
# the result it is compared with, so ratios stay meaningful on a busy box.
set -euo pipefail
cd "$(dirname "$0")/.."

min_time=1
repetitions=3
if [ "${1:-}" = "--quick" ]; then
  min_time=0.05
  repetitions=1
elif [ -n "${1:-}" ]; then
  echo "usage: $0 [--quick]" >&2
  exit 2
fi

out=bench/results
raw="$out/raw"
mkdir -p "$raw"
rm -f "$raw"/*.json

bazel build -c opt //bench:query_bench //bench:dispatch_bench \
  //bench:store_bench //bench:e2e_bench

# run NAME FILTER [FLAGS...]: one benchmark binary, JSON into $raw/NAME.json.
# A binary that fails leaves its results out of the report, not the others.
run() {
  local name=$1 filter=$2
  shift 2
  echo "== $name ($filter)"
  if ! "bazel-bin/bench/$name" --benchmark_filter="$filter" \
      --benchmark_out="$raw/$name.json" --benchmark_out_format=json \
      --benchmark_format=console "$@"; then
    echo "$name failed; its results are left out" >&2
    rm -f "$raw/$name.json"
  fi
}

# Small fast benchmarks: repetitions, the report shows the medians.
run query_bench 'BM_EvalBodyCompare|BM_SqliteBodyCompare|BM_EvalRouteSet' \
  --benchmark_min_time="$min_time" --benchmark_repetitions="$repetitions" \
  --benchmark_report_aggregates_only=true
# The router, store and gateway benchmarks move real volumes per iteration.
run dispatch_bench 'BM_Throughput|BM_RouteScaling|BM_Latency|BM_Baseline' \
  --benchmark_min_time="$min_time"
run store_bench 'BM_Append|BM_RawRocksDbBatch' --benchmark_min_time="$min_time"
run e2e_bench \
  'BM_Gateway/|BM_Mosquitto/|BM_GatewayPingPong|BM_MosquittoPingPong|BM_MqttEdgeroute/|BM_MqttMosquitto/|BM_MqttEdgeroutePingPong|BM_MqttMosquittoPingPong' \
  --benchmark_min_time="$min_time"

/usr/bin/python3 bench/report.py --raw "$raw" --out "$out"
echo "wrote $out/RESULTS.md and charts"
