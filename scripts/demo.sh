#!/usr/bin/env bash
# The main job: installs what is missing, builds the edgeroute command line
# offline, and checks the example deployment manifest, printing every route as
# compiled (source, condition, endpoint, priority, TTL) and any diagnostics.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bazel build -c opt //tools:edgeroute
./bazel-bin/tools/edgeroute check examples/deployment.json "$@"
