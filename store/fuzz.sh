#!/usr/bin/env bash
# Builds the store's record libFuzzer target with clang (ASan + UBSan) and
# runs it on its checked-in corpus. See store/FUZZING.md.
#   bash store/fuzz.sh [SECONDS] [extra libFuzzer flags...]
# The databases it writes go to TEST_TMPDIR (default /tmp); a tmpfs such as
# /dev/shm makes the inputs that use a real directory much faster.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift $(( $# >= 1 ? 1 : 0 ))
out="${FUZZ_OUT:-$(mktemp -d)}"
mkdir -p "$out/gen/message"
flatc --cpp --scoped-enums -o "$out/gen/message" message/message.fbs
CXX=${CXX:-clang++}
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I. -I"$out/gen")
ABSL_LIBS=$(pkg-config --libs absl_status absl_statusor absl_strings \
  absl_str_format absl_synchronization)
srcs=(store/record_fuzzer.cc message/message.cc base/clock.cc base/status.cc)
for f in store/*.cc; do
  case "$f" in
    *_test.cc|*_fuzzer.cc|*_fuzzer_seeds.cc|store/fault_fs.cc|store/tsan_*) ;;
    *) srcs+=("$f") ;;
  esac
done
"$CXX" "${FLAGS[@]}" "${srcs[@]}" -o "$out/record_fuzzer" $ABSL_LIBS \
  -lflatbuffers -lrocksdb -lpthread
corpus="store/fuzz_corpus/records"
work="$out/corpus"
mkdir -p "$work"
cp "$corpus"/* "$work"/ 2>/dev/null || true
"$out/record_fuzzer" -max_total_time="$seconds" -print_final_stats=1 \
  -max_len=8192 -timeout=30 -artifact_prefix="$out/" "$@" "$work" "$corpus"
