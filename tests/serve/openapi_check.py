#!/usr/bin/env python3
"""Checks a running `edgeglm serve` against docs/openapi.yaml.

Usage: openapi_check.py --spec docs/openapi.yaml --url http://127.0.0.1:PORT [--api-key K]

For every path and method of the spec it sends a small valid request (the request body's
`example`, with the served model's name and a small max_tokens) and checks that the status is one
the spec lists for the operation and is a success, that the Content-Type is one the spec gives for
that status, and that a JSON body validates against the response schema. POST operations are also
run with `stream: true` (and stream_options.include_usage): the body must be server-sent events
whose every `data:` is a chunk valid against the schema named by the media type's
`x-event-schema`, ending with `data: [DONE]`. Invalid requests (broken JSON, a wrong type, n = 2,
an unknown field, a bad X-Priority header) must get 400 with a valid error object naming the field.
A 404 on any spec path means the server lacks that path. With --api-key, operations that need a
key must answer 401 without one, and those with `security: []` must not.

Needs python3-yaml and python3-jsonschema. Prints one line per check and a summary; exits 1 when
any check failed.
"""
import argparse
import copy
import http.client
import json
import re
import sys
import urllib.parse

try:
    import yaml
    import jsonschema
except ImportError as e:  # pragma: no cover - environment problem, not a check failure
    sys.exit(f"openapi_check.py needs python3-yaml and python3-jsonschema: {e}")

# OpenAPI 3.0 keywords with no JSON Schema meaning, dropped when converting.
OPENAPI_ONLY = {"nullable", "example", "examples", "discriminator", "readOnly", "writeOnly",
                "xml", "externalDocs", "deprecated"}


PROM_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+-?\d+)?$")


class Spec:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)

    def deref(self, node):
        """Follows a local $ref chain ('#/a/b') to the node it names."""
        seen = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen or not ref.startswith("#/"):
                raise ValueError(f"unsupported or cyclic $ref {ref}")
            seen.add(ref)
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def json_schema(self, node, stack=()):
        """An OpenAPI 3.0 schema as a self-contained JSON Schema (draft 4): $refs inlined,
        `nullable` turned into an alternative with null, extensions and examples dropped."""
        if isinstance(node, list):
            return [self.json_schema(n, stack) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            if node["$ref"] in stack:
                raise ValueError(f"recursive schema {node['$ref']} is not supported")
            return self.json_schema(self.deref(node), stack + (node["$ref"],))
        out = {}
        for key, value in node.items():
            if key in OPENAPI_ONLY or key.startswith("x-"):
                continue
            if key == "properties":
                out[key] = {name: self.json_schema(s, stack) for name, s in value.items()}
            elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
                out[key] = self.json_schema(value, stack)
            else:
                out[key] = value
        if node.get("nullable") is True:
            out = {"anyOf": [out, {"type": "null"}]}
        return out

    def schema_by_name(self, name):
        return self.json_schema({"$ref": f"#/components/schemas/{name}"})

    def operations(self):
        for path, item in self.doc.get("paths", {}).items():
            for method, op in item.items():
                if method in ("get", "post", "put", "delete", "patch"):
                    yield path, method.upper(), op

    def needs_key(self, op):
        """True when the operation requires a key once keys are configured: its security lists
        bearerAuth. `security: []` means open; the global [bearer, {}] means 'when configured'."""
        security = op.get("security", self.doc.get("security", []))
        return any("bearerAuth" in req for req in security)


class Checker:
    def __init__(self, args, spec):
        self.args = args
        self.spec = spec
        url = urllib.parse.urlsplit(args.url)
        if url.scheme != "http":
            sys.exit("--url must be http://host:port")
        self.host, self.port = url.hostname, url.port or 80
        self.base = url.path.rstrip("/")
        self.passed = 0
        self.failed = 0
        self.model = None

    # ---- reporting ----
    def ok(self, name, detail=""):
        self.passed += 1
        print(f"PASS {name}" + (f": {detail}" if detail else ""))

    def fail(self, name, detail):
        self.failed += 1
        print(f"FAIL {name}: {detail}")

    # ---- HTTP ----
    def send(self, method, path, body=None, headers=None, auth=True):
        """(status, lower-cased headers, body bytes), or (None, {}, error text) when the
        connection itself failed."""
        h = {"Accept": "application/json, text/event-stream, text/plain"}
        if auth and self.args.api_key:
            h["Authorization"] = f"Bearer {self.args.api_key}"
        if body is not None:
            h["Content-Type"] = "application/json"
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            if isinstance(body, str):
                body = body.encode("utf-8")
        h.update(headers or {})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.args.timeout)
        try:
            conn.request(method, self.base + path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        except (OSError, http.client.HTTPException) as e:
            return None, {}, str(e).encode()
        finally:
            conn.close()

    # ---- response checks ----
    def check_response(self, name, op, status, headers, data, want_success=True,
                       want_media=None):
        """Status listed, Content-Type listed for it, body valid. Returns the parsed JSON body
        (or the text for non-JSON media), or None after reporting a failure."""
        if status is None:
            self.fail(name, f"request failed: {data.decode(errors='replace')}")
            return None
        responses = op.get("responses", {})
        listed = responses.get(str(status)) or responses.get("default")
        if status == 404 and "404" not in responses:
            self.fail(name, "404: the server lacks this spec path")
            return None
        if listed is None:
            self.fail(name, f"status {status} is not listed in the spec ({sorted(responses)}); "
                            f"body: {data[:200].decode(errors='replace')}")
            return None
        listed = self.spec.deref(listed)
        if want_success and not 200 <= status < 300:
            self.fail(name, f"expected success, got {status}: {data[:300].decode(errors='replace')}")
            return None
        for header in listed.get("headers", {}):
            if header.lower() not in headers:
                self.fail(name, f"status {status} must carry header {header}")
                return None
        content = listed.get("content", {})
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if content and media not in content:
            self.fail(name, f"Content-Type {media!r} not in spec {sorted(content)}")
            return None
        if want_media and media != want_media:
            self.fail(name, f"expected Content-Type {want_media}, got {media!r}")
            return None
        if media == "text/event-stream":
            return self.check_sse(name, content[media], data)
        if media == "application/json":
            try:
                body = json.loads(data)
            except ValueError as e:
                self.fail(name, f"body is not JSON: {e}")
                return None
            schema = self.spec.json_schema(content[media].get("schema", {}))
            if not self.validate(name, schema, body):
                return None
            return body
        text = data.decode("utf-8", errors="replace")
        if media == "text/plain" and "metrics" in name and not self.prometheus_ok(name, text):
            return None
        return text

    def validate(self, name, schema, instance):
        errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(instance),
                        key=lambda e: list(e.absolute_path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            self.fail(name, f"schema violation at {where}: {e.message[:300]}")
            return False
        return True

    def prometheus_ok(self, name, text):
        """Every sample line is `metric{labels} value [timestamp]` with a float value."""
        for line in text.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            m = PROM_SAMPLE.match(line)
            ok = m is not None
            if ok:
                try:
                    float(m.group(3))
                except ValueError:
                    ok = False
            if not ok:
                self.fail(name, f"not a Prometheus sample line: {line[:120]!r}")
                return False
        return True

    def check_sse(self, name, media, data):
        """Parses server-sent events; every data payload but the final [DONE] must validate
        against the media type's x-event-schema."""
        schema_name = media.get("x-event-schema")
        if not schema_name:
            self.fail(name, "spec: text/event-stream media type has no x-event-schema")
            return None
        schema = self.spec.schema_by_name(schema_name)
        text = data.decode("utf-8", errors="strict").replace("\r\n", "\n")
        payloads = []
        for event in text.split("\n\n"):
            lines = [ln[5:].lstrip(" ") if ln.startswith("data:") else None
                     for ln in event.split("\n") if ln and not ln.startswith(":")]
            data_lines = [ln for ln in lines if ln is not None]
            if data_lines:
                payloads.append("\n".join(data_lines))
        if not payloads or payloads[-1] != "[DONE]":
            self.fail(name, "stream does not end with data: [DONE]")
            return None
        chunks = []
        for i, p in enumerate(payloads[:-1]):
            if p == "[DONE]":
                self.fail(name, f"event {i}: [DONE] before the end of the stream")
                return None
            try:
                chunk = json.loads(p)
            except ValueError as e:
                self.fail(name, f"event {i} is not JSON: {e}: {p[:120]!r}")
                return None
            if "error" in chunk:
                self.fail(name, f"event {i} is an error: {p[:300]}")
                return None
            if not self.validate(f"{name} event {i}", schema, chunk):
                return None
            chunks.append(chunk)
        return chunks

    # ---- the checks ----
    def example_body(self, op, stream):
        content = op["requestBody"]["content"]["application/json"]
        body = copy.deepcopy(content.get("example", {}))
        if self.model:
            body["model"] = self.model
        body["max_tokens"] = min(int(body.get("max_tokens", self.args.max_tokens)),
                                 self.args.max_tokens)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def check_stream_semantics(self, name, chunks, chat):
        content_chunks = [c for c in chunks if c["choices"]]
        if not content_chunks:
            return self.fail(name, "the stream has no choice chunks")
        finishes = [c for c in content_chunks if c["choices"][0].get("finish_reason")]
        if len({c["id"] for c in chunks}) != 1:
            return self.fail(name, "chunks of one stream carry different ids")
        if len(finishes) != 1 or finishes[0] is not content_chunks[-1]:
            return self.fail(name, "exactly the last choice chunk must carry finish_reason")
        if chat and content_chunks[0]["choices"][0]["delta"].get("role") != "assistant":
            return self.fail(name, "the first chunk's delta must carry role: assistant")
        if chunks[-1]["choices"] or "usage" not in chunks[-1]:
            return self.fail(name, "include_usage: the last chunk must have choices [] and usage")
        n_text = sum(1 for c in content_chunks
                     if (c["choices"][0].get("delta", {}).get("content") if chat
                         else c["choices"][0].get("text")))
        self.ok(name, f"{len(chunks)} chunks ({n_text} with text), "
                      f"finish_reason={finishes[0]['choices'][0]['finish_reason']}, "
                      f"usage={chunks[-1]['usage']}")

    def expect_400(self, name, op, path, body, param, headers=None):
        status, hdrs, data = self.send("POST", path, body, headers)
        if status != 400:
            return self.fail(name, f"expected 400, got {status}: "
                                   f"{data[:200].decode(errors='replace')}")
        err = self.check_response(name, op, status, hdrs, data, want_success=False)
        if err is None:
            return
        if err["error"]["type"] != "invalid_request_error":
            return self.fail(name, f"error.type {err['error']['type']!r}")
        if param is not None and err["error"]["param"] != param:
            return self.fail(name, f"error.param {err['error']['param']!r}, expected {param!r}")
        self.ok(name, err["error"]["message"][:100])

    def run(self):
        models_op = self.spec.doc["paths"].get("/v1/models", {}).get("get")
        if models_op:
            status, hdrs, data = self.send("GET", "/v1/models")
            body = self.check_response("GET /v1/models", models_op, status, hdrs, data)
            if isinstance(body, dict) and body.get("data"):
                self.model = body["data"][0]["id"]
                self.ok("GET /v1/models", f"model {self.model!r}")

        for path, method, op in self.spec.operations():
            if (path, method) == ("/v1/models", "GET"):
                continue
            name = f"{method} {path}"
            if method == "GET":
                status, hdrs, data = self.send("GET", path)
                busy_ok = path == "/health" and status == 503
                body = self.check_response(name, op, status, hdrs, data, want_success=not busy_ok)
                if body is not None:
                    detail = json.dumps(body)[:120] if isinstance(body, dict) else \
                        f"{len(body.splitlines())} lines"
                    self.ok(name, ("(503, not ready) " if busy_ok else "") + detail)
                continue
            if "requestBody" not in op:
                self.fail(name, "spec: POST operation without a requestBody")
                continue
            chat = "messages" in op["requestBody"]["content"]["application/json"].get("example", {})
            body = self.example_body(op, stream=False)
            status, hdrs, data = self.send("POST", path, body, {"X-Priority": "normal"})
            resp = self.check_response(name, op, status, hdrs, data, want_media="application/json")
            if resp is not None:
                self.ok(name, f"finish_reason={resp['choices'][0]['finish_reason']}, "
                              f"usage={resp['usage']}")
            status, hdrs, data = self.send("POST", path, self.example_body(op, stream=True))
            chunks = self.check_response(name + " (stream)", op, status, hdrs, data,
                                         want_media="text/event-stream")
            if chunks is not None:
                self.check_stream_semantics(name + " (stream)", chunks, chat)

            good = self.example_body(op, stream=False)
            self.expect_400(f"{name} invalid JSON", op, path, b'{"model": ', None)
            self.expect_400(f"{name} body not an object", op, path, b"[1, 2]", None)
            self.expect_400(f"{name} max_tokens as a string", op, path,
                            dict(good, max_tokens="10"), "max_tokens")
            self.expect_400(f"{name} n=2", op, path, dict(good, n=2), "n")
            self.expect_400(f"{name} temperature out of range", op, path,
                            dict(good, temperature=3), "temperature")
            self.expect_400(f"{name} unknown field", op, path,
                            dict(good, no_such_field=1), "no_such_field")
            self.expect_400(f"{name} bad X-Priority", op, path, good, None,
                            {"X-Priority": "urgent"})

        if self.args.api_key:
            self.check_auth()
        print(f"\n{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0

    def check_auth(self):
        for path, method, op in self.spec.operations():
            name = f"{method} {path} without a key"
            body = self.example_body(op, stream=False) if method == "POST" else None
            status, hdrs, data = self.send(method, path, body, auth=False)
            if self.spec.needs_key(op):
                if status != 401:
                    self.fail(name, f"expected 401, got {status}")
                elif self.check_response(name, op, status, hdrs, data,
                                         want_success=False) is not None:
                    self.ok(name, "401")
                status, _, _ = self.send(method, path, body, auth=False,
                                         headers={"Authorization": "Bearer wrong-key"})
                if status != 401:
                    self.fail(f"{method} {path} with a wrong key", f"expected 401, got {status}")
                else:
                    self.ok(f"{method} {path} with a wrong key", "401")
            elif status == 401:
                self.fail(name, "security: [] in the spec, but the server asked for a key")
            else:
                self.ok(name, f"open ({status})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", required=True, help="path to docs/openapi.yaml")
    ap.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--api-key", help="a configured API key (enables the 401 checks)")
    ap.add_argument("--max-tokens", type=int, default=8, help="max_tokens of the test requests")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per request")
    args = ap.parse_args()
    return Checker(args, Spec(args.spec)).run()


if __name__ == "__main__":
    sys.exit(main())
