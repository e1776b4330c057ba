#!/usr/bin/env bash
# Schemathesis against a live `edgeglm serve`: every operation of docs/openapi.yaml with schema-valid
# and schema-invalid data, all checks (no 5xx, status codes, content types, response schemas and
# headers, valid data accepted / invalid data rejected, undeclared methods). Run by hand, not in CI.
# Fails when schemathesis reports a failure or the server dies; prints the server's RSS before
# and after.
#
#   bench/serve_fuzz.sh [max examples per operation, default 1000] [extra `st run` options...]
#   (st runs in a scratch dir: give paths in extra options, e.g. --report-dir, as absolute ones)
#   env: BUILD (build dir with bin/edgeglm, default build), MODEL (default stories260K from
#        ../shared), ST_VENV (default /tmp/st-venv), SEED (default 1), WORKERS (default 2)
#
# The run uses a copy of the spec with two changes: ModelName is the one id /v1/models reports (the
# spec cannot name it; any other name is a 400 model_not_found, by design), and stream responses
# get a per-event schema (see below).
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES=${1:-1000}
shift || true
BUILD=${BUILD:-build}
MODEL=${MODEL:-../shared/models/stories260K/stories260K.gguf}
ST_VENV=${ST_VENV:-/tmp/st-venv}
SEED=${SEED:-1}
WORKERS=${WORKERS:-2}

if [ ! -x "$ST_VENV/bin/st" ]; then
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install -q "schemathesis>=4.32,<5"
fi
[ -x "$BUILD/bin/edgeglm" ] || { echo "no $BUILD/bin/edgeglm: build the edgeglm target first" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "no model at $MODEL" >&2; exit 2; }

work=$(mktemp -d)
"$BUILD/bin/edgeglm" serve -m "$MODEL" --port 0 --chat-template chatml --parallel 2 -t 1 \
  >"$work/server.log" 2>&1 &
server=$!
stop_server() { kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; }
trap 'stop_server; rm -rf "$work"' EXIT
port=""
for _ in $(seq 300); do
  port=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$work/server.log")
  [ -n "$port" ] && grep -q "ready" "$work/server.log" && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "the server did not start" >&2; cat "$work/server.log" >&2; exit 1; }
url=http://127.0.0.1:$port
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$server/status"; }
echo "server pid $server on $url, RSS before: $(rss)"

model_id=$(curl -sf "$url/v1/models" | "$ST_VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
"$ST_VENV/bin/python" - docs/openapi.yaml "$work/openapi.yaml" "$model_id" <<'EOF'
import sys, yaml
src, dst, model = sys.argv[1:]
spec = yaml.safe_load(open(src))
spec["components"]["schemas"]["ModelName"]["enum"] = [model]
for path in ("/v1/chat/completions", "/v1/completions"):
    op = spec["paths"][path]["post"]
    op["requestBody"]["content"]["application/json"]["example"]["model"] = model
    # The spec (OpenAPI 3.0) describes a stream body as a string; schemathesis validates each
    # event object ({"data": ...}) against that schema instead. Give it a per-event schema: data
    # is "[DONE]" or a JSON chunk of the schema named by x-event-schema.
    sse = op["responses"]["200"]["content"]["text/event-stream"]
    chunk = {"$ref": "#/components/schemas/" + sse["x-event-schema"]}
    sse["schema"] = {"type": "object", "required": ["data"], "properties": {"data": {"anyOf": [
        {"type": "string", "enum": ["[DONE]"]},
        {"type": "string", "contentMediaType": "application/json", "contentSchema": chunk}]}}}
yaml.safe_dump(spec, open(dst, "w"), sort_keys=False)
EOF

status=0
# From the scratch dir: schemathesis and hypothesis leave state dirs in the working directory.
(cd "$work" && "$ST_VENV/bin/st" run "$work/openapi.yaml" --url "$url" --checks all --mode all \
  --max-examples "$EXAMPLES" --continue-on-failure --workers "$WORKERS" --seed "$SEED" \
  --request-timeout 120 --generation-database none --no-color "$@") || status=$?

if kill -0 "$server" 2>/dev/null; then
  echo "server alive, RSS after: $(rss)"
else
  echo "the server died:" >&2
  tail -20 "$work/server.log" >&2
  status=1
fi
exit $status
