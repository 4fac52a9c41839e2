#!/usr/bin/env bash
# The ABI check: the library and header of this tree against the newest
# baseline in packaging/abi whose version is not above VERSION; then the
# checker itself must notice a removed function, a moved member, a changed
# type and a changed constant.
set -euo pipefail
lib="$1"
header="$2"
abi_py="$3"
version_file="$4"
shift 4
version="$(tr -d ' \n' < "$version_file")"
baseline=""
for candidate in "$@"; do
  v="$(basename "$candidate" .abi)"
  v="${v#edgeroute-}"
  if [ "$(printf '%s\n%s\n' "$v" "$version" | sort -V | tail -1)" = "$version" ]; then
    if [ -z "$baseline" ] || [ "$(printf '%s\n%s\n' "$v" "$best" | sort -V | tail -1)" = "$v" ]; then
      baseline="$candidate"
      best="$v"
    fi
  fi
done
[ -n "$baseline" ] || { echo "FAIL: no baseline at or below $version" >&2; exit 1; }

python3 "$abi_py" check --lib "$lib" --header "$header" --baseline "$baseline"

tmp="${TEST_TMPDIR:-$(mktemp -d)}"
expect_break() {
  local what="$1" edit="$2"
  sed -e "$edit" "$baseline" > "$tmp/doctored.abi"
  if cmp -s "$baseline" "$tmp/doctored.abi"; then
    echo "FAIL: the edit for '$what' changed nothing" >&2
    exit 1
  fi
  if python3 "$abi_py" check --lib "$lib" --header "$header" \
      --baseline "$tmp/doctored.abi" > "$tmp/out.txt"; then
    echo "FAIL: the check missed $what" >&2
    cat "$tmp/out.txt" >&2
    exit 1
  fi
  grep -q "ABI BREAK" "$tmp/out.txt"
  echo "ok: notices $what"
}
expect_break "a removed function" '$a function edgeroute_removed_long_ago'
expect_break "a moved member" \
  's/^member edgeroute_metrics_t.received offset 8 /member edgeroute_metrics_t.received offset 16 /'
expect_break "a changed parameter type" \
  's/^signature edgeroute_check_route int(const char\*,size_t,/signature edgeroute_check_route int(const char*,int,/'
expect_break "a changed constant" 's/^constant EDGEROUTE_REJECT 2$/constant EDGEROUTE_REJECT 3/'
expect_break "a shrunk struct" 's/^struct edgeroute_metrics_t size 120$/struct edgeroute_metrics_t size 128/'
