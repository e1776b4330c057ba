#!/usr/bin/env bash
# Starts `edgeglm serve` on a free port with the given flags, runs bench/serve_load.py against it
# with the given load options, stops the server. Used for the serving tables in docs/BENCHMARKS.md.
#   bench/serve_bench.sh BIN MODEL "SERVE FLAGS" LOAD OPTIONS...
# e.g. bench/serve_bench.sh build/bin/edgeglm ../shared/models/stories260K/stories260K.gguf \
#        "--parallel 4 -t 2" --concurrency 16 --requests 64 --max-tokens 128 --ignore-eos --json
set -euo pipefail
BIN="$1"; MODEL="$2"; FLAGS="$3"; shift 3
HERE="$(cd "$(dirname "$0")" && pwd)"
LOG="$(mktemp)"
# shellcheck disable=SC2086
"$BIN" serve -m "$MODEL" --port 0 $FLAGS 2>"$LOG" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$LOG"' EXIT
PORT=""
for _ in $(seq 300); do
  PORT="$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$LOG")"
  [ -n "$PORT" ] && grep -q " ready" "$LOG" && break
  kill -0 $PID 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 0.1
done
python3 "$HERE/serve_load.py" --url "http://127.0.0.1:$PORT" "$@"
