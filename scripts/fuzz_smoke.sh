#!/usr/bin/env bash
# Parsers under sanitizers: (1) the format / tokenizer / quant tests built with AddressSanitizer +
# UBSan, (2) a short libFuzzer run of each file parser and of the service's request and config
# parsers from the committed seeds (and corpus, where there is one). Fails on any finding.
# Usage: scripts/fuzz_smoke.sh [seconds per fuzzer, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-rt-dev >/dev/null
fi
JOBS=$(nproc)

echo "== parser, tokenizer and quant tests under ASan + UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGEGLM_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$JOBS" --target test_formats test_tokenizer test_quant
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# The four slowest GPTQ quality tests (83 s of test_quant under ASan, the same code paths as the
# faster ones kept here) run in the Release ctest only.
SLOW_UNDER_ASAN="CalibratedQuant.HeldOutActivations:CalibratedQuant.AllFormatsBeatPlainRounding"
SLOW_UNDER_ASAN+=":CalibratedQuant.TimingPrint:CalibratedQuant.ActOrderStaticGroupsDecode"
build-asan/bin/test_formats --gtest_brief=1
build-asan/bin/test_tokenizer --gtest_brief=1
build-asan/bin/test_quant --gtest_brief=1 --gtest_filter="-$SLOW_UNDER_ASAN"

echo "== libFuzzer, ${SECS}s per fuzzer"
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
      -DEDGEGLM_FUZZ=ON -DEDGEGLM_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$JOBS" --target fuzz_gguf fuzz_safetensors fuzz_llama2c \
  fuzz_openai_request fuzz_serve_config
# One fuzzer per core at a time; each writes its findings to its own directory.
fuzz_one() {  # fuzz_one NAME WORKDIR
  local f="$1" work="$2"
  local corpus=()
  [ -d tests/data/corpus/$f ] && corpus=(tests/data/corpus/$f)
  build-fuzz/bin/fuzz_$f -max_total_time="$SECS" -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$work/" "$work" tests/fuzz/seeds/$f ${corpus[@]+"${corpus[@]}"} >"$work.log" 2>&1 || true
}
names=(gguf safetensors llama2c openai_request serve_config)
works=()
pids=()
for f in "${names[@]}"; do
  work=$(mktemp -d)
  works+=("$work")
  fuzz_one "$f" "$work" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
done
for p in "${pids[@]}"; do wait "$p"; done
found=0
for i in "${!names[@]}"; do
  f=${names[$i]} work=${works[$i]}
  echo "fuzz_$f:"
  grep -E "stat::number_of_executed_units|ERROR|SUMMARY" "$work.log" || true
  # (ls of the three globs together fails when any one of them matches nothing)
  artifacts=$(find "$work" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \) | tr '\n' ' ')
  if [ -n "$artifacts" ]; then
    echo "fuzz_$f found a failing input: $artifacts" >&2
    tail -n 30 "$work.log" >&2
    found=1
  else
    rm -rf "$work" "$work.log"
  fi
done
[ "$found" -eq 0 ] || exit 1
echo "fuzz smoke: no findings"
