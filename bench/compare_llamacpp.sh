#!/usr/bin/env bash
# Same-run comparison with llama.cpp: for each GGUF file, llama.cpp's llama-bench and then
# `edgeglm bench` with the same prompt/decode lengths and threads, one after the other; all files
# again for each of ROUNDS rounds (a noisy host moves both in the same round).
#   LLAMA_BENCH=/path/to/llama-bench bench/compare_llamacpp.sh FILE...
# Env: THREADS (2), REPS (3), PP (128), TG (64), ROUNDS (1), EDGEGLM (build/bin/edgeglm),
#      SUMMARY=1: one line per file and round (round, file, llama.cpp pp tg, edgeglm pp tg,
#      roofline fraction, bandwidth, peak RSS) instead of the full outputs.
# llama.cpp is not part of this project: build it yourself beside it (tooling only).
set -euo pipefail
: "${LLAMA_BENCH:?set LLAMA_BENCH to the llama-bench binary of llama.cpp}"
EG="${EDGEGLM:-$(dirname "$0")/../build/bin/edgeglm}"
T="${THREADS:-2}" R="${REPS:-3}" P="${PP:-128}" N="${TG:-64}" ROUNDS="${ROUNDS:-1}"
[ $# -gt 0 ] || { echo "usage: LLAMA_BENCH=... $0 FILE.gguf..." >&2; exit 2; }
for round in $(seq 1 "$ROUNDS"); do
  for f in "$@"; do
    l=$("$LLAMA_BENCH" -m "$f" -p "$P" -n "$N" -t "$T" -r "$R" 2>/dev/null | grep -E "pp$P|tg$N" || true)
    e=$("$EG" bench -m "$f" -p "$P" -n "$N" -t "$T" -r "$R" 2>&1)
    if [ "${SUMMARY:-0}" = 1 ]; then
      # llama-bench's table: the second-last column is "t/s" as "mean ± sd".
      lt=$(echo "$l" | awk -F'|' '{split($(NF-1), a, "±"); gsub(/ /, "", a[1]); printf "%s ", a[1]}')
      et=$(echo "$e" | awk -v p="pp$P" -v n="tg$N" '$1 == p || $1 == n {printf "%s ", $2}')
      extra=$(echo "$e" | grep -oE "[0-9]+% of roofline|bandwidth [0-9.]+ GB/s best|peak RSS [0-9.]+ MiB" | paste -sd'|')
      echo "$round $(basename "$f") llama.cpp ${lt}edgeglm ${et}| $extra"
    else
      echo "== round $round, $f: llama.cpp"
      echo "$l"
      echo "== round $round, $f: edgeglm"
      echo "$e"
    fi
  done
done
