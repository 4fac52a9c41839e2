#!/usr/bin/env bash
# Fails unless the genquery result file $1 is empty; prints the path found.
# $2 says what the query guards, for the failure message.
set -euo pipefail
if [ -s "$1" ]; then
  echo "FAIL: $2"
  echo "dependency path:"
  cat "$1"
  exit 1
fi
echo "PASS: $2"
