#!/usr/bin/env bash
# Builds the gateway/auth libFuzzer target with clang (ASan + UBSan) and runs
# it on its checked-in corpus. See README.md ("Fuzzing").
#   bash gateway/auth/fuzz.sh [SECONDS] [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
shift $(( $# >= 1 ? 1 : 0 ))
out="${FUZZ_OUT:-$(mktemp -d)}"
mkdir -p "$out/gen/message" "$out/gen/gateway"
# identities.cc includes gateway/event_loop.h (PeerInfo), which needs the
# generated protocol headers.
flatc --cpp --scoped-enums -o "$out/gen/message" message/message.fbs
flatc --cpp --scoped-enums -o "$out/gen/gateway" gateway/protocol.fbs
CXX=${CXX:-clang++}
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I. -I"$out/gen")
ABSL_LIBS=$(pkg-config --libs absl_status absl_statusor absl_strings \
  absl_str_format absl_flat_hash_map absl_hash absl_time)
"$CXX" "${FLAGS[@]}" gateway/auth/auth_fuzzer.cc gateway/auth/identities.cc \
  gateway/auth/sas_token.cc gateway/auth/json_positions.cc base/status.cc \
  -o "$out/auth_fuzzer" $ABSL_LIBS -lcrypto
corpus="gateway/auth/fuzz_corpus"
work="$out/corpus"
mkdir -p "$work"
cp "$corpus"/* "$work"/
"$out/auth_fuzzer" -max_total_time="$seconds" -print_final_stats=1 \
  -max_len=4096 -timeout=10 -artifact_prefix="$out/" "$@" "$work" "$corpus"
