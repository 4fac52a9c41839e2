#!/usr/bin/env bash
# The main job: installs what is missing, builds the edgeroute command line
# offline, and runs the gateway demo (`edgeroute demo`) on a temporary
# embedded RocksDB store. Extra arguments go to `edgeroute demo`
# (see `edgeroute help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bazel run -c opt --noshow_progress //tools:edgeroute -- demo "$@"
