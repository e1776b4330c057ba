#!/usr/bin/env bash
# Same-run comparison with llama.cpp: for each GGUF file, llama.cpp's llama-bench and then
# `edgeglm bench` with the same prompt/decode lengths and threads, one after the other.
#   LLAMA_BENCH=/path/to/llama-bench bench/compare_llamacpp.sh FILE...
# Env: THREADS (2), REPS (3), PP (128), TG (64), EDGEGLM (build/bin/edgeglm).
# llama.cpp is not part of this project: build it yourself beside it (tooling only).
set -euo pipefail
: "${LLAMA_BENCH:?set LLAMA_BENCH to the llama-bench binary of llama.cpp}"
EG="${EDGEGLM:-$(dirname "$0")/../build/bin/edgeglm}"
T="${THREADS:-2}" R="${REPS:-3}" P="${PP:-128}" N="${TG:-64}"
[ $# -gt 0 ] || { echo "usage: LLAMA_BENCH=... $0 FILE.gguf..." >&2; exit 2; }
for f in "$@"; do
  echo "== $f: llama.cpp"
  "$LLAMA_BENCH" -m "$f" -p "$P" -n "$N" -t "$T" -r "$R" 2>/dev/null | grep -E "pp$P|tg$N"
  echo "== $f: edgeglm"
  "$EG" bench -m "$f" -p "$P" -n "$N" -t "$T" -r "$R"
done
