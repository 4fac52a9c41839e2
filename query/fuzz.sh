#!/usr/bin/env bash
# Builds a route-language libFuzzer target with clang (ASan + UBSan) and runs
# it on its checked-in corpus. See query/FUZZING.md.
#   bash query/fuzz.sh route|eval|json [SECONDS] [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: query/fuzz.sh route|eval|json [SECONDS]}"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))
case "$target" in
  route|eval|json) ;;
  *) echo "unknown fuzz target: $target (route, eval or json)" >&2; exit 2 ;;
esac
out="${FUZZ_OUT:-$(mktemp -d)}"
mkdir -p "$out/gen/message"
flatc --cpp --scoped-enums -o "$out/gen/message" message/message.fbs
CXX=${CXX:-clang++}
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I. -I"$out/gen")
ABSL_LIBS=$(pkg-config --libs absl_status absl_statusor absl_strings \
  absl_str_format absl_flat_hash_map absl_hash)
srcs=(query/${target}_fuzzer.cc message/message.cc)
for f in base/*.cc query/*.cc; do
  case "$f" in
    *_test.cc|*_fuzzer.cc|query/manifest*) ;;
    *) srcs+=("$f") ;;
  esac
done
"$CXX" "${FLAGS[@]}" "${srcs[@]}" -o "$out/${target}_fuzzer" $ABSL_LIBS \
  -lflatbuffers -lsimdjson
corpus="query/fuzz_corpus/$target"
work="$out/corpus"
mkdir -p "$work"
cp "$corpus"/* "$work"/ 2>/dev/null || true
"$out/${target}_fuzzer" -max_total_time="$seconds" -print_final_stats=1 \
  -max_len=4096 -timeout=10 -artifact_prefix="$out/" "$@" "$work" "$corpus"
