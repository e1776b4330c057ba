#!/usr/bin/env python3
"""Closed-loop load client for `edgeglm serve` (or any OpenAI-compatible server).

    serve_load.py --url http://127.0.0.1:8080 --concurrency 1,4,16 --requests 64 --max-tokens 32
                  [--prompt TEXT] [--stream] [--priority P] [--json]

Each concurrency level runs C client threads; each client sends its next request as soon as its
previous one completes (closed loop), until the level's N requests are done. Per request it records
the latency (send to last byte), the time to first token (stream mode: arrival of the first chunk
that carries text; streams ask for stream_options.include_usage), the completion tokens (from
`usage`; in stream mode from the usage chunk, else the number of text chunks) and the HTTP status.

Per level it prints: requests, errors, completion tokens/s and successful requests/s over the
level's wall time, latency p50/p90/p99 and TTFT p50/p99 (ms, over successful requests), and the
errors by status ("conn" for connection failures, "stream" for a stream cut before [DONE]).
Percentiles are nearest-rank: the p-th percentile of n sorted values is the value at 1-based rank
ceil(p/100 * n), so it is always an observed value.

Standard library only.
"""
import argparse
import http.client
import json
import math
import sys
import threading
import time
import urllib.parse


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list; None when it is empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


class Result:
    __slots__ = ("status", "latency", "ttft", "tokens", "error")

    def __init__(self):
        self.status = None   # HTTP status, or None when the connection failed
        self.latency = None  # seconds
        self.ttft = None     # seconds, stream mode only
        self.tokens = 0
        self.error = None    # None, or a key for the error table


class Client:
    """One closed-loop client: one keep-alive connection, reopened after any failure."""

    def __init__(self, args, body):
        self.args = args
        self.body = json.dumps(body).encode("utf-8")
        url = urllib.parse.urlsplit(args.url)
        self.host, self.port = url.hostname, url.port or 80
        self.path = url.path.rstrip("/") + args.path
        self.headers = {"Content-Type": "application/json"}
        if args.api_key:
            self.headers["Authorization"] = f"Bearer {args.api_key}"
        if args.priority:
            self.headers["X-Priority"] = args.priority
        self.conn = None

    def one(self):
        r = Result()
        t0 = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=self.args.timeout)
            self.conn.request("POST", self.path, body=self.body, headers=self.headers)
            resp = self.conn.getresponse()
            r.status = resp.status
            if resp.status != 200:
                resp.read()
                r.error = str(resp.status)
            elif self.args.stream:
                self.read_stream(resp, r, t0)
            else:
                data = json.loads(resp.read())
                r.tokens = int(data.get("usage", {}).get("completion_tokens", 0))
        except (OSError, http.client.HTTPException, ValueError) as e:
            r.error = r.error or ("conn" if r.status is None else "bad-body")
            if self.args.verbose:
                print(f"request failed: {e!r}", file=sys.stderr)
            self.close()
        r.latency = time.perf_counter() - t0
        if r.error == "stream":
            self.close()  # a cut stream leaves the connection in an unknown state
        return r

    def read_stream(self, resp, r, t0):
        text_chunks = 0
        usage = None
        done = False
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                done = True
                break
            chunk = json.loads(payload)
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices", []):
                text = choice.get("text") or choice.get("delta", {}).get("content")
                if text:
                    text_chunks += 1
                    if r.ttft is None:
                        r.ttft = time.perf_counter() - t0
        resp.read()  # the end of the chunked body, so the connection can be reused
        if not done:
            r.error = "stream"
        r.tokens = int(usage["completion_tokens"]) if usage else text_chunks

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_level(args, body, concurrency, n_requests):
    results = []
    lock = threading.Lock()
    next_index = [0]

    def worker():
        client = Client(args, body)
        while True:
            with lock:
                if next_index[0] >= n_requests:
                    break
                next_index[0] += 1
            r = client.one()
            with lock:
                results.append(r)
        client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return summarize(concurrency, results, wall)


def summarize(concurrency, results, wall):
    ok = [r for r in results if r.error is None]
    errors = {}
    for r in results:
        if r.error is not None:
            errors[r.error] = errors.get(r.error, 0) + 1
    lat = sorted(r.latency for r in ok)
    ttft = sorted(r.ttft for r in ok if r.ttft is not None)
    tokens = sum(r.tokens for r in ok)
    ms = lambda v: None if v is None else round(v * 1000.0, 1)  # noqa: E731
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "errors": len(results) - len(ok),
        "errors_by_status": errors,
        "wall_s": round(wall, 3),
        "completion_tokens": tokens,
        "tok_per_s": round(tokens / wall, 2) if wall > 0 else None,
        "req_per_s": round(len(ok) / wall, 3) if wall > 0 else None,
        "latency_ms_p50": ms(percentile(lat, 50)),
        "latency_ms_p90": ms(percentile(lat, 90)),
        "latency_ms_p99": ms(percentile(lat, 99)),
        "ttft_ms_p50": ms(percentile(ttft, 50)),
        "ttft_ms_p99": ms(percentile(ttft, 99)),
    }


COLUMNS = [("conc", "concurrency"), ("reqs", "requests"), ("errs", "errors"),
           ("tok/s", "tok_per_s"), ("req/s", "req_per_s"), ("lat p50", "latency_ms_p50"),
           ("lat p90", "latency_ms_p90"), ("lat p99", "latency_ms_p99"),
           ("ttft p50", "ttft_ms_p50"), ("ttft p99", "ttft_ms_p99")]


def print_table(levels):
    print("latency and TTFT in ms; percentiles nearest-rank over successful requests")
    print("".join(f"{h:>10}" for h, _ in COLUMNS) + "  errors by status")
    for lv in levels:
        cells = "".join(f"{'-' if lv[k] is None else lv[k]:>10}" for _, k in COLUMNS)
        errs = ", ".join(f"{k}:{v}" for k, v in sorted(lv["errors_by_status"].items()))
        print(cells + "  " + (errs or "-"))


def request_body(args, model):
    body = {"model": model, "max_tokens": args.max_tokens, "temperature": args.temperature}
    if args.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": args.prompt}]
    else:
        body["prompt"] = args.prompt
    if args.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if args.ignore_eos:
        body["ignore_eos"] = True
    return body


def served_model(args):
    """The first id of GET /v1/models, so the requests name the model the server has."""
    url = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=args.timeout)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        conn.request("GET", url.path.rstrip("/") + "/v1/models", headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status == 200:
            return json.loads(data)["data"][0]["id"]
    except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError):
        pass
    finally:
        conn.close()
    return "default"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--concurrency", default="1,4,16", help="comma-separated client counts")
    ap.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--prompt", default="Write a short story about a robot that learns to paint.")
    ap.add_argument("--stream", action="store_true", help="stream responses (measures TTFT)")
    ap.add_argument("--priority", choices=["interactive", "normal", "batch"],
                    help="sent as the X-Priority header")
    ap.add_argument("--endpoint", choices=["chat", "completions"], default="chat")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--ignore-eos", action="store_true",
                    help="ask for exactly max_tokens tokens (edgeglm extension)")
    ap.add_argument("--model", help="model name to send (default: the server's first model)")
    ap.add_argument("--api-key")
    ap.add_argument("--warmup", type=int, default=1, help="requests sent before measuring")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per request")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--verbose", action="store_true", help="print request failures to stderr")
    args = ap.parse_args()
    try:
        levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        ap.error("--concurrency takes comma-separated integers, e.g. 1,4,16")
    if not levels or min(levels) < 1 or args.requests < 1:
        ap.error("concurrency levels and --requests must be >= 1")
    args.path = "/v1/chat/completions" if args.endpoint == "chat" else "/v1/completions"

    model = args.model or served_model(args)
    body = request_body(args, model)
    if args.warmup > 0:
        run_level(args, body, 1, args.warmup)
    results = [run_level(args, body, c, args.requests) for c in levels]
    if args.json:
        print(json.dumps({"url": args.url, "endpoint": args.path, "model": model,
                          "stream": args.stream, "max_tokens": args.max_tokens,
                          "priority": args.priority, "levels": results}, indent=2))
    else:
        print(f"{args.url}{args.path} model={model} max_tokens={args.max_tokens} "
              f"stream={args.stream} priority={args.priority or '-'}")
        print_table(results)
    return 1 if any(lv["errors"] == lv["requests"] for lv in results) else 0


if __name__ == "__main__":
    sys.exit(main())
