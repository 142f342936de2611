#!/usr/bin/env python3
"""A tiny service honouring enough of the aiods telemetry contract for the dashboard tests.

Port from AIODS_PORT; /health/live, /health/ready, /metrics (the Prometheus request
histogram); any other path answers JSON, calling the first upstream (AIODS_UPSTREAMS__*) with
a W3C traceparent first; `?fail=1` answers 500. Every request becomes a server span (and each
upstream call a client span) sent as OTLP/HTTP JSON to OTEL_EXPORTER_OTLP_ENDPOINT; logs are
JSON lines on stdout.
"""

import json
import os
import random
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = os.environ.get("OTEL_SERVICE_NAME", "toy")
OTLP = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").rstrip("/")
UPSTREAM = next((v for k, v in sorted(os.environ.items()) if k.startswith("AIODS_UPSTREAMS__") and v), None)
UPSTREAM_PATH = os.environ.get("TOY_UPSTREAM_PATH", "/")
BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]

lock = threading.Lock()
histogram = {}  # (route, status) -> [bucket counts..., +Inf]
spans = []


def log(level, message, trace_id=None, span_id=None):
    record = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "level": level,
        "message": message,
        "target": "toy_service",
        "service": SERVICE,
    }
    if trace_id:
        record["trace_id"] = trace_id
        record["span_id"] = span_id
    print(json.dumps(record), flush=True)


def observe(route, status, seconds):
    with lock:
        counts = histogram.setdefault((route, status), [0] * (len(BOUNDS) + 1))
        for i, b in enumerate(BOUNDS):
            if seconds <= b:
                counts[i] += 1
        counts[-1] += 1


def metrics_text():
    lines = ["# TYPE http_server_request_duration_seconds histogram"]
    with lock:
        for (route, status), counts in sorted(histogram.items()):
            labels = f'http_request_method="GET",http_route="{route}",http_response_status_code="{status}"'
            for b, c in zip(BOUNDS + ["+Inf"], counts):
                lines.append(f'http_server_request_duration_seconds_bucket{{{labels},le="{b}"}} {c}')
            lines.append(f"http_server_request_duration_seconds_count{{{labels}}} {counts[-1]}")
    return "\n".join(lines) + "\n"


def span(trace_id, span_id, parent, name, kind, start, end, status_code, attrs):
    s = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": str(v)}} for k, v in attrs.items()],
        "status": {"code": 2 if status_code >= 500 else 0},
    }
    if parent:
        s["parentSpanId"] = parent
    with lock:
        spans.append(s)


def exporter():
    while True:
        time.sleep(0.2)
        with lock:
            batch = spans[:]
            spans.clear()
        if not batch or not OTLP:
            continue
        body = {"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": SERVICE}}]},
            "scopeSpans": [{"scope": {"name": "toy"}, "spans": batch}],
        }]}
        req = urllib.request.Request(OTLP + "/v1/traces", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=2).read()
        except Exception as e:  # a dead backend must never break the service
            print(json.dumps({"level": "warn", "message": f"export failed: {e}", "service": SERVICE}), flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path in ("/health/live", "/health/ready", "/health"):
            return self.send(200, '{"status":"UP"}')
        if path == "/metrics":
            return self.send(200, metrics_text(), "text/plain; version=0.0.4")
        started = time.time()
        start_ns = time.time_ns()
        parent = None
        trace_id = "%032x" % random.getrandbits(128)
        tp = self.headers.get("traceparent", "")
        parts = tp.split("-")
        if len(parts) == 4 and len(parts[1]) == 32:
            trace_id, parent = parts[1], parts[2]
        span_id = "%016x" % random.getrandbits(64)
        status = 500 if "fail=1" in query else 200
        time.sleep(random.uniform(0.002, 0.012))
        if UPSTREAM and status == 200:
            client_id = "%016x" % random.getrandbits(64)
            c_start = time.time_ns()
            req = urllib.request.Request(UPSTREAM.rstrip("/") + UPSTREAM_PATH, headers={"traceparent": f"00-{trace_id}-{client_id}-01"})
            try:
                code = urllib.request.urlopen(req, timeout=3).status
            except urllib.error.HTTPError as e:
                code = e.code
            except Exception:
                code = 502
            span(trace_id, client_id, span_id, "GET", 3, c_start, time.time_ns(), code, {"http.request.method": "GET", "http.response.status_code": code})
            if code >= 500:
                status = 502
        time.sleep(random.uniform(0.001, 0.004))
        span(trace_id, span_id, parent, f"GET {path}", 2, start_ns, time.time_ns(), status, {"http.request.method": "GET", "http.route": path, "http.response.status_code": status})
        observe(path, status, time.time() - started)
        log("error" if status >= 500 else "info", f"GET {path} -> {status}", trace_id, span_id)
        self.send(status, json.dumps({"service": SERVICE, "trace_id": trace_id}))


def main():
    port = int(os.environ.get("AIODS_PORT", "0"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=exporter, daemon=True).start()
    log("info", f"service started on 127.0.0.1:{server.server_address[1]}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
