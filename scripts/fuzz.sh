#!/usr/bin/env bash
# Builds a libFuzzer target with clang (ASan + UBSan) and runs it.
#   bash scripts/fuzz.sh message_verify [SECONDS]
# The fuzzers are not part of the Bazel build (Bazel's toolchain here is GCC);
# this script compiles them directly against the same Debian libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: fuzz.sh message_verify [SECONDS]}"
seconds="${2:-60}"
out="${FUZZ_OUT:-$(mktemp -d)}"
mkdir -p "$out/gen/message"
flatc --cpp --scoped-enums -o "$out/gen/message" message/message.fbs
CXX=${CXX:-clang++}
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I. -I"$out/gen")
ABSL_LIBS=$(pkg-config --libs absl_status absl_statusor absl_strings absl_str_format)
case "$target" in
  message_verify)
    srcs=(message/message_verify_fuzzer.cc message/message.cc)
    corpus=message/fuzz_corpus/verify
    ;;
  *)
    echo "unknown fuzz target: $target" >&2
    exit 2
    ;;
esac
"$CXX" "${FLAGS[@]}" "${srcs[@]}" -o "$out/$target" $ABSL_LIBS -lflatbuffers
work="$out/corpus"
mkdir -p "$work"
cp "$corpus"/* "$work"/ 2>/dev/null || true
"$out/$target" -max_total_time="$seconds" -print_final_stats=1 "$work" "$corpus"
