#!/usr/bin/env bash
# Builds one libFuzzer target with clang (ASan + UBSan) and runs it on its
# checked-in corpus. Every fuzzer of the tree is in the table below; the
# corpora are replayed as unit tests by Bazel (the *_replay_test targets).
#
#   bash scripts/fuzz.sh TARGET [SECONDS] [extra libFuzzer flags...]
#   bash scripts/fuzz.sh --list
#
# Bazel's toolchain here is GCC, which has no libFuzzer, so this script
# compiles with clang directly, against the same Debian libraries; the
# sources are the ones Bazel links into the target's replay test (bazel
# query), so the BUILD files stay their one list. FUZZ_OUT=DIR keeps the
# build, the working corpus and any crashing input there (default: a fresh
# temporary directory). New units are written to the working corpus; merge
# the interesting ones into the checked-in one with -merge=1. The store's records fuzzer writes databases
# to TEST_TMPDIR (default /tmp); a tmpfs such as /dev/shm makes it faster.
set -euo pipefail
cd "$(dirname "$0")/.."

# name | what it fuzzes
targets() {
  cat <<'EOF'
message_verify  MessageView::Verify on arbitrary message buffers
message_json    the test-message format ({"props","sys","body"}) and the positioned JSON reader
route           the route compiler (query/route_fuzzer.cc)
eval            route evaluation against messages, with the reference evaluator (query/eval_fuzzer.cc)
json            the route language's JSON tape against a reference parser (query/json_fuzzer.cc)
manifest        deployment manifests: schema rules, routes, positioned diagnostics (tools/manifest_fuzzer.cc)
store_records   store records of any kind in any column family: open, read, repair (store/record_fuzzer.cc)
server          the native protocol session over a real Server (gateway/server_fuzzer.cc)
mqtt            the MQTT codec and session (gateway/mqtt/mqtt_fuzzer.cc)
auth            identities files, SAS tokens and CONNECT credentials (gateway/auth/auth_fuzzer.cc)
publish         messages and topic templates becoming upstream PUBLISHes (gateway/upstream/publish_fuzzer.cc)
EOF
}

usage() {
  echo "usage: bash scripts/fuzz.sh TARGET [SECONDS] [libFuzzer flags...]" >&2
  echo "targets:" >&2
  targets | sed 's/^/  /' >&2
  exit 2
}

[ $# -ge 1 ] || usage
if [ "$1" = --list ]; then
  targets
  exit 0
fi
target="$1"
seconds="${2:-60}"
shift $(($# >= 2 ? 2 : 1))

# Per target: the Bazel test that replays its corpus (its dependencies are
# the fuzzer's sources: the BUILD files stay the one list of them), the
# corpus, -max_len and -timeout.
max_len=4096
timeout=10
case "$target" in
  message_verify) replay=//message:message_verify_fuzzer_replay_test
    corpus=message/fuzz_corpus/verify ;;
  message_json) replay=//message:message_json_fuzzer_replay_test
    corpus=message/fuzz_corpus/json ;;
  route | eval | json) replay=//query:${target}_fuzzer_replay_test
    corpus=query/fuzz_corpus/$target ;;
  manifest) replay=//tools:manifest_fuzzer_replay_test
    corpus=tools/fuzz_corpus/manifest ;;
  store_records) replay=//store:record_fuzzer_replay_test
    corpus=store/fuzz_corpus/records max_len=8192 timeout=30 ;;
  server) replay=//gateway:server_fuzzer_replay_test
    corpus=gateway/fuzz_corpus/server max_len=8192 timeout=20 ;;
  mqtt) replay=//gateway/mqtt:mqtt_fuzzer_replay_test
    corpus=gateway/mqtt/fuzz_corpus ;;
  auth) replay=//gateway/auth:auth_fuzzer_replay_test
    corpus=gateway/auth/fuzz_corpus ;;
  publish) replay=//gateway/upstream:publish_fuzzer_replay_test
    corpus=gateway/upstream/fuzz_corpus ;;
  *)
    echo "unknown fuzz target: $target" >&2
    usage
    ;;
esac

# The tree's .cc files the replay test links, without its replay driver
# (libFuzzer brings its own main): "//pkg/sub:file.cc" -> "pkg/sub/file.cc".
mapfile -t srcs < <(
  bazel query "kind('source file', deps($replay))" 2>/dev/null \
    | sed -n 's#^//\([^:]*\):\(.*\.cc\)$#\1/\2#p' | sed 's#^/##' \
    | grep -v '^tests/fuzz/replay_main\.cc$' | sort)
if [ "${#srcs[@]}" -eq 0 ]; then
  echo "bazel query found no sources for $replay" >&2
  exit 1
fi
# Debian's libraries behind //third_party (the linker drops what a target
# does not use).
absl=(absl_status absl_statusor absl_strings absl_str_format
      absl_flat_hash_map absl_hash absl_time absl_synchronization)
read -r -a libs <<<"$(pkg-config --libs "${absl[@]}")"
libs+=(-lflatbuffers -lsimdjson -lrocksdb -luring -lssl -lcrypto -lmosquitto
       -lpthread)

out="${FUZZ_OUT:-$(mktemp -d)}"
for schema in message/message.fbs gateway/protocol.fbs; do
  gen="$out/gen/$(dirname "$schema")"
  mkdir -p "$gen"
  flatc --cpp --scoped-enums -o "$gen" "$schema"
done
CXX=${CXX:-clang++}
# shellcheck disable=SC2054  # the commas are inside one flag
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I. -I"$out/gen")
binary="$out/${target}_fuzzer"
echo "building $binary"
"$CXX" "${flags[@]}" -Wl,--as-needed "${srcs[@]}" -o "$binary" "${libs[@]}"

work="$out/corpus"
mkdir -p "$work"
cp "$corpus"/* "$work"/ 2>/dev/null || true
"$binary" -max_total_time="$seconds" -print_final_stats=1 \
  -max_len="$max_len" -timeout="$timeout" -artifact_prefix="$out/" "$@" \
  "$work" "$corpus"
