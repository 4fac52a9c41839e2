#!/bin/sh
# Runs one of this package's Python test scripts with Debian's interpreter,
# the one that has python3-paho-mqtt (the python3 first on PATH may not).
set -eu
if [ ! -x /usr/bin/python3 ]; then
  echo "FAIL: /usr/bin/python3 (Debian's python3 with python3-paho-mqtt) is missing; run scripts/setup.sh" >&2
  exit 1
fi
script="$1"
shift
exec /usr/bin/python3 -B "$script" "$@"
