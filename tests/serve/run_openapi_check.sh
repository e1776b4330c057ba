#!/usr/bin/env bash
# Keeps docs/openapi.yaml true: starts `edgeglm serve` on stories260K on a free port and runs
# tests/serve/openapi_check.py against it (every path of the spec, bodies and SSE chunks validated
# against its schemas, malformed requests answered 400). Exit 77 (skipped) without ../shared.
#   run_openapi_check.sh EDGEGLM_BIN SHARED_DIR
set -uo pipefail
BIN="$1"
MODEL="$2/models/stories260K/stories260K.gguf"
HERE="$(cd "$(dirname "$0")" && pwd)"
[ -f "$MODEL" ] || { echo "SKIP: shared model not present: $MODEL"; exit 77; }
/usr/bin/python3 -c "import yaml, jsonschema" 2>/dev/null || {
  echo "openapi check needs python3-yaml and python3-jsonschema (scripts/install_deps.sh)"; exit 1; }
LOG="$(mktemp)"
"$BIN" serve -m "$MODEL" --port 0 --chat-template chatml --parallel 2 2>"$LOG" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$LOG"' EXIT
PORT=""
for _ in $(seq 100); do
  PORT="$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$LOG")"
  [ -n "$PORT" ] && grep -q "ready" "$LOG" && break
  kill -0 $PID 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.1
done
[ -n "$PORT" ] || { echo "server did not start"; cat "$LOG"; exit 1; }
/usr/bin/python3 "$HERE/openapi_check.py" --spec "$HERE/../../docs/openapi.yaml" --url "http://127.0.0.1:$PORT"
