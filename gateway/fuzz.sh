#!/usr/bin/env bash
# Builds the native protocol session's libFuzzer target (server_fuzzer.cc)
# with clang (ASan + UBSan) and runs it on its checked-in corpus.
#   bash gateway/fuzz.sh [SECONDS] [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift $(( $# >= 1 ? 1 : 0 ))
out="${FUZZ_OUT:-$(mktemp -d)}"
mkdir -p "$out/gen/message" "$out/gen/gateway"
flatc --cpp --scoped-enums -o "$out/gen/message" message/message.fbs
flatc --cpp --scoped-enums -o "$out/gen/gateway" gateway/protocol.fbs
CXX=${CXX:-clang++}
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I. -I"$out/gen")
ABSL_LIBS=$(pkg-config --libs absl_status absl_statusor absl_strings \
  absl_str_format absl_flat_hash_map absl_hash absl_time absl_synchronization)
# The server and what it links: the event loop, TLS and the identity
# registry.
srcs=(gateway/server_fuzzer.cc gateway/server.cc gateway/event_loop.cc
      gateway/protocol.cc gateway/net/tls.cc message/message.cc)
for f in gateway/auth/*.cc base/*.cc message/status.cc; do
  [ -f "$f" ] || continue
  case "$f" in
    *_test.cc|*_fuzzer.cc|*test_util.cc) ;;
    *) srcs+=("$f") ;;
  esac
done
"$CXX" "${FLAGS[@]}" "${srcs[@]}" -o "$out/server_fuzzer" $ABSL_LIBS \
  -lflatbuffers -luring -lssl -lcrypto -lrocksdb -lpthread
corpus="gateway/fuzz_corpus/server"
work="$out/corpus"
mkdir -p "$work"
cp "$corpus"/* "$work"/ 2>/dev/null || true
"$out/server_fuzzer" -max_total_time="$seconds" -print_final_stats=1 \
  -max_len=8192 -timeout=20 -artifact_prefix="$out/" "$@" "$work" "$corpus"
