#!/usr/bin/env bash
# Time to first token of interactive requests while batch requests saturate every slot.
# Starts `edgeglm serve` with SERVE FLAGS, runs 16 closed-loop batch clients (256-token answers)
# in the background, and after they fill the slots measures 10 streamed requests of class CLASS.
#   bench/serve_priority.sh BIN MODEL "SERVE FLAGS" CLASS
set -euo pipefail
BIN="$1"; MODEL="$2"; FLAGS="$3"; CLASS="$4"
HERE="$(cd "$(dirname "$0")" && pwd)"
LOG="$(mktemp)"
# shellcheck disable=SC2086
"$BIN" serve -m "$MODEL" --port 0 $FLAGS 2>"$LOG" &
PID=$!
LOAD=""
trap 'kill $LOAD 2>/dev/null; kill $PID 2>/dev/null; wait 2>/dev/null; rm -f "$LOG"' EXIT
PORT=""
for _ in $(seq 300); do
  PORT="$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$LOG")"
  [ -n "$PORT" ] && grep -q " ready" "$LOG" && break
  sleep 0.1
done
URL="http://127.0.0.1:$PORT"
python3 "$HERE/serve_load.py" --url "$URL" --endpoint completions --concurrency 16 --requests 400 \
  --max-tokens 256 --ignore-eos --priority batch >/dev/null 2>&1 &
LOAD=$!
sleep 3
python3 "$HERE/serve_load.py" --url "$URL" --endpoint completions --concurrency 1 --requests 10 \
  --max-tokens 16 --ignore-eos --stream --priority "$CLASS" | tail -1
curl -s "$URL/metrics" | grep -E '^edgeglm_(preemptions_total|queue_depth|active_sequences)' | tr '\n' ' '
echo
