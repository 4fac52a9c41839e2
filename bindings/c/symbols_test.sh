#!/usr/bin/env bash
# Checks the shared library's dynamic symbol table: every defined symbol is
# edgeroute_*, and every function declared in edgeroute.h is exported.
set -euo pipefail
lib="$1"
header="$2"

# Only symbols another object can bind to: global and weak (upper-case
# types) and GNU unique ("u"). Local symbols may sit in the dynamic table
# too (thread-locals of inline functions, for their TLS relocations) but
# are not exported ("b", "d" and the like).
exported="$(nm -D --defined-only "$lib" |
  awk 'NF >= 3 && ($2 ~ /^[A-Z]$/ || $2 == "u") { print $3 }' | sort -u)"
if [ -z "$exported" ]; then
  echo "FAIL: $lib exports nothing" >&2
  exit 1
fi

stray="$(printf '%s\n' "$exported" | grep -v '^edgeroute_' || true)"
if [ -n "$stray" ]; then
  echo "FAIL: symbols outside edgeroute_* are exported:" >&2
  printf '%s\n' "$stray" | head -50 >&2
  exit 1
fi

# Functions declared in the header: "edgeroute_name(" at the start of a
# declaration line or after the return type.
declared="$(grep -oE '\bedgeroute_[a-z0-9_]+\(' "$header" | tr -d '(' | sort -u)"
missing="$(comm -23 <(printf '%s\n' "$declared") <(printf '%s\n' "$exported"))"
if [ -n "$missing" ]; then
  echo "FAIL: declared in edgeroute.h but not exported:" >&2
  printf '%s\n' "$missing" >&2
  exit 1
fi

echo "OK: $(printf '%s\n' "$exported" | wc -l) edgeroute_* symbols, nothing else"
