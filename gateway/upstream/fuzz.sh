#!/usr/bin/env bash
# Builds the gateway/upstream libFuzzer target with clang (ASan + UBSan) and
# runs it on its checked-in corpus (messages and topic templates becoming
# PUBLISHes; see publish_fuzzer.cc). New findings land in the corpus
# directory; keep the interesting ones (they are replayed by
# //gateway/upstream:publish_fuzzer_replay_test).
#   bash gateway/upstream/fuzz.sh [SECONDS] [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
shift $(( $# >= 1 ? 1 : 0 ))
out="${FUZZ_OUT:-$(mktemp -d)}"
mkdir -p "$out/gen/message"
flatc --cpp --scoped-enums -o "$out/gen/message" message/message.fbs
CXX=${CXX:-clang++}
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I. -I"$out/gen")
ABSL_LIBS=$(pkg-config --libs absl_status absl_statusor absl_strings \
  absl_str_format absl_time)
"$CXX" "${FLAGS[@]}" gateway/upstream/publish_fuzzer.cc \
  gateway/upstream/publish.cc gateway/upstream/options.cc \
  gateway/mqtt/iothub.cc message/message.cc base/utf8.cc \
  -o "$out/publish_fuzzer" $ABSL_LIBS -lmosquitto
corpus="gateway/upstream/fuzz_corpus"
work="$out/corpus"
mkdir -p "$work"
cp "$corpus"/* "$work"/
"$out/publish_fuzzer" -max_total_time="$seconds" -print_final_stats=1 \
  -max_len=4096 -timeout=10 -artifact_prefix="$out/" "$@" "$work" "$corpus"
