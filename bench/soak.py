#!/usr/bin/env python3
"""Soak: `aiops up` under mixed valid ingest plus bad inputs, at a fixed rate, for a while.

What runs against one release `aiops` (default settings and budgets, loopback, open ingest):

- valid, every tick (20 ticks/s): OTLP/HTTP JSON traces (20 spans), logs (20 records, some
  of 4 KiB), metrics (a histogram and a counter), and a Sentry envelope (an exception);
  services rotate among 50 names; the platform scrapes a Prometheus target this script serves
  every second (its exposition grows new series for a while, then repeats);
- bad, once a second each, in turn: an undecodable protobuf, a gzip bomb (100 MiB of zeros,
  about 100 KiB compressed), an oversized body (5 MiB), an OTLP request naming 2,000 new
  services, 50 log records of 59 KiB, a Sentry envelope of broken JSON, a body with an
  unknown Content-Encoding; and 50 slow clients trickling request heads one byte a second
  (reconnecting when the platform closes them);
- measured: the platform's RSS (/proc/<pid>/status VmRSS) every second, and the latency of
  `GET /health/live` every 250 ms on a fresh connection.

Pass/fail (issue 17): RSS stays under 256 MiB and every health answer comes within 100 ms.
Writes `<out>/soak.csv` (t, rss_mib, health_ms), `<out>/soak.svg` (both curves) and
`<out>/soak.json` (the summary), and exits non-zero when a limit was crossed.

    python3 bench/soak.py --minutes 10 --out docs/soak

Not a CI step (it runs for minutes). Builds `aiops` in release mode first.
"""

import argparse
import gzip
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RSS_LIMIT_MIB = 256
HEALTH_LIMIT_MS = 100


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Scraped(BaseHTTPRequestHandler):
    """A Prometheus target: a few hundred series, new ones for the first minutes."""

    calls = 0

    def do_GET(self):
        Scraped.calls += 1
        n = min(Scraped.calls, 300)
        lines = ["# TYPE soak_requests_total counter"]
        for i in range(n):
            lines.append(f'soak_requests_total{{route="/r{i}",status="200"}} {Scraped.calls * 3 + i}')
        lines.append("# TYPE soak_queue gauge")
        lines.append(f"soak_queue {random.random() * 10:.3f}")
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def otlp_attr(k, v):
    return {"key": k, "value": {"stringValue": v}}


def traces_body(service, now_ns):
    spans = []
    trace = os.urandom(16).hex()
    for i in range(20):
        spans.append({
            "traceId": trace, "spanId": os.urandom(8).hex(), "name": f"GET /orders/{i % 5}",
            "kind": 2, "startTimeUnixNano": str(now_ns - 5_000_000),
            "endTimeUnixNano": str(now_ns),
            "attributes": [{"key": "http.response.status_code",
                            "value": {"intValue": "500" if i == 0 else "200"}}],
            "status": {"code": 2 if i == 0 else 0},
        })
    return {"resourceSpans": [{"resource": {"attributes": [otlp_attr("service.name", service)]},
                               "scopeSpans": [{"spans": spans}]}]}


def logs_body(service, now_ns, big=False):
    text = "x" * 4096 if big else "order {} accepted in {} ms"
    records = [{"timeUnixNano": str(now_ns), "severityNumber": 9 if i else 17,
                "body": {"stringValue": text.format(random.randint(1, 10**6), i)}}
               for i in range(20)]
    return {"resourceLogs": [{"resource": {"attributes": [otlp_attr("service.name", service)]},
                              "scopeLogs": [{"logRecords": records}]}]}


def metrics_body(service, now_ns):
    point = {"startTimeUnixNano": str(now_ns - 10**10), "timeUnixNano": str(now_ns),
             "count": "3", "sum": 0.3, "bucketCounts": ["1", "2", "0"],
             "explicitBounds": [0.05, 0.5],
             "attributes": [otlp_attr("http.route", "/orders")]}
    return {"resourceMetrics": [{"resource": {"attributes": [otlp_attr("service.name", service)]},
                                 "scopeMetrics": [{"metrics": [
                                     {"name": "http.server.request.duration", "unit": "s",
                                      "histogram": {"aggregationTemporality": 2,
                                                    "dataPoints": [point]}},
                                     {"name": "orders", "sum": {
                                         "isMonotonic": True, "aggregationTemporality": 2,
                                         "dataPoints": [{"asInt": str(random.randint(1, 1000)),
                                                         "timeUnixNano": str(now_ns)}]}}]}]}]}


def sentry_envelope(service):
    event = {"event_id": os.urandom(16).hex(), "timestamp": time.time(), "level": "error",
             "platform": "rust", "tags": {"service": service},
             "exception": {"values": [{"type": "Panic",
                                       "value": f"index out of bounds: {random.randint(0, 9)}"}]}}
    payload = json.dumps(event).encode()
    return (b'{"event_id":"' + event["event_id"].encode() + b'"}\n'
            + json.dumps({"type": "event", "length": len(payload)}).encode() + b"\n"
            + payload + b"\n")


class Load:
    def __init__(self, addr):
        self.host, self.port = addr.rsplit(":", 1)
        self.port = int(self.port)
        self.stop = threading.Event()
        self.counts = {}
        self.lock = threading.Lock()

    def count(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def post(self, conn, path, body, headers):
        try:
            conn.request("POST", path, body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            self.count(f"{path.split('/')[1]} {r.status}")
            if r.getheader("Connection", "").lower() == "close":
                raise ConnectionError("closed")
            return conn
        except (OSError, http.client.HTTPException) as e:
            self.count(f"error {type(e).__name__}")
            conn.close()
            return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def valid(self, ticks_per_s):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        json_h = {"Content-Type": "application/json"}
        tick = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            service = f"soak-{tick % 50}"
            now = time.time_ns()
            conn = self.post(conn, "/v1/traces", json.dumps(traces_body(service, now)), json_h)
            conn = self.post(conn, "/v1/logs",
                             json.dumps(logs_body(service, now, big=tick % 10 == 0)), json_h)
            conn = self.post(conn, "/v1/metrics", json.dumps(metrics_body(service, now)), json_h)
            conn = self.post(conn, "/api/1/envelope/", sentry_envelope(service),
                             {"Content-Type": "application/x-sentry-envelope"})
            tick += 1
            next_at += 1 / ticks_per_s
            time.sleep(max(0.0, next_at - time.monotonic()))

    def bad(self):
        bomb = gzip.compress(b"\0" * (100 << 20), compresslevel=9)
        big_logs = json.dumps({"resourceLogs": [{
            "resource": {"attributes": [otlp_attr("service.name", "soak-big")]},
            "scopeLogs": [{"logRecords": [{"body": {"stringValue": "y" * (59 << 10)}}
                                           for _ in range(50)]}]}]})
        kinds = ["garbage", "bomb", "oversize", "names", "big_logs", "sentry_json", "encoding"]
        i = 0
        while not self.stop.is_set():
            kind = kinds[i % len(kinds)]
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            proto = {"Content-Type": "application/x-protobuf"}
            if kind == "garbage":
                self.post(conn, "/v1/traces", os.urandom(4096), proto)
            elif kind == "bomb":
                self.post(conn, "/v1/logs", bomb, {**proto, "Content-Encoding": "gzip"})
            elif kind == "oversize":
                self.post(conn, "/v1/traces", b"\0" * (5 << 20), proto)
            elif kind == "names":
                body = {"resourceSpans": [{
                    "resource": {"attributes": [otlp_attr("service.name", f"flood-{i}-{n}")]},
                    "scopeSpans": []} for n in range(2000)]}
                self.post(conn, "/v1/traces", json.dumps(body),
                          {"Content-Type": "application/json"})
            elif kind == "big_logs":
                self.post(conn, "/v1/logs", big_logs, {"Content-Type": "application/json"})
            elif kind == "sentry_json":
                self.post(conn, "/api/1/envelope/", b'{}\n{"type":"event"}\n{"broken": [\n',
                          {"Content-Type": "application/x-sentry-envelope"})
            else:
                self.post(conn, "/v1/traces", b"abc", {**proto, "Content-Encoding": "br-unknown"})
            conn.close()
            i += 1
            self.stop.wait(1.0 / len(kinds))  # each kind once a second

    def slow_client(self):
        head = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        while not self.stop.is_set():
            try:
                s = socket.create_connection((self.host, self.port), timeout=5)
                for b in head:
                    if self.stop.is_set():
                        break
                    s.sendall(bytes([b]))
                    self.stop.wait(1.0)
                s.close()
            except OSError:
                self.count("slow reconnect")
                self.stop.wait(1.0)


def health_ms(host, port):
    start = time.monotonic()
    try:
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", "/health/live")
        r = c.getresponse()
        r.read()
        c.close()
        ok = r.status == 200
    except (OSError, http.client.HTTPException):
        ok = False
    ms = (time.monotonic() - start) * 1000
    return ms if ok else float("inf")


def svg(samples, path, minutes):
    w, h, pad = 900, 520, 60
    ph = (h - 3 * pad) / 2
    tmax = max(s[0] for s in samples) or 1
    rss_max = max(RSS_LIMIT_MIB * 1.1, max(s[1] for s in samples) * 1.1)
    finite = [s[2] for s in samples if s[2] != float("inf")]
    hmax = max(HEALTH_LIMIT_MS * 1.2, max(finite or [1]) * 1.1)

    def x(t):
        return pad + (w - 2 * pad) * t / tmax

    def panel(top, values, vmax, limit, label, unit):
        pts = " ".join(f"{x(t):.1f},{top + ph - ph * min(v, vmax) / vmax:.1f}" for t, v in values)
        ly = top + ph - ph * limit / vmax
        out = [f'<rect x="{pad}" y="{top}" width="{w - 2 * pad}" height="{ph}" fill="none" stroke="#999"/>',
               f'<line x1="{pad}" y1="{ly:.1f}" x2="{w - pad}" y2="{ly:.1f}" stroke="#c00" stroke-dasharray="6,4"/>',
               f'<text x="{w - pad - 4}" y="{ly - 4:.1f}" text-anchor="end" fill="#c00" font-size="12">limit {limit} {unit}</text>',
               f'<polyline points="{pts}" fill="none" stroke="#1f5fbf" stroke-width="1.5"/>',
               f'<text x="{pad}" y="{top - 8}" font-size="14">{label}</text>',
               f'<text x="{pad - 6}" y="{top + ph:.1f}" text-anchor="end" font-size="11">0</text>',
               f'<text x="{pad - 6}" y="{top + 10:.1f}" text-anchor="end" font-size="11">{vmax:.0f}</text>']
        return out

    body = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">',
            '<rect width="100%" height="100%" fill="white"/>']
    body += panel(pad, [(s[0], s[1]) for s in samples], rss_max, RSS_LIMIT_MIB,
                  f"aiops RSS (MiB) during a {minutes}-minute soak", "MiB")
    body += panel(2 * pad + ph, [(s[0], min(s[2], hmax)) for s in samples], hmax,
                  HEALTH_LIMIT_MS, "GET /health/live latency (ms)", "ms")
    for m in range(0, int(tmax // 60) + 1):
        body.append(f'<text x="{x(m * 60):.1f}" y="{h - pad + 18}" text-anchor="middle" font-size="11">{m} min</text>')
    body.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(body) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--ticks", type=float, default=20, help="valid ingest ticks per second")
    ap.add_argument("--slow-clients", type=int, default=50)
    ap.add_argument("--out", default="docs/soak")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "aiops-platform"], cwd=ROOT, check=True)
    aiops = os.path.join(target, "release", "aiops")

    scraped = ThreadingHTTPServer(("127.0.0.1", 0), Scraped)
    threading.Thread(target=scraped.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="aiods-soak-")
    topo = os.path.join(work, "aiods.toml")
    with open(topo, "w") as f:
        f.write(f'[platform]\nlisten = "127.0.0.1:0"\ndata_dir = "{work}/data"\n\n'
                f'[[service]]\nname = "scraped"\nurl = "http://127.0.0.1:{scraped.server_port}"\n')
    proc = subprocess.Popen([aiops, "up", "-c", topo], stdout=subprocess.PIPE,
                            stderr=open(os.path.join(work, "aiops.log"), "w"), text=True)
    addr = None
    for line in proc.stdout:
        ev = json.loads(line)
        if ev.get("event") == "listening":
            addr = ev["addr"]
            break
    if addr is None:
        sys.exit(f"aiops did not start; see {work}/aiops.log")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    host, port = addr.rsplit(":", 1)
    load = Load(addr)
    threads = [threading.Thread(target=load.valid, args=(args.ticks,), daemon=True),
               threading.Thread(target=load.bad, daemon=True)]
    threads += [threading.Thread(target=load.slow_client, daemon=True) for _ in range(args.slow_clients)]
    for t in threads:
        t.start()

    samples = []
    start = time.monotonic()
    end = start + args.minutes * 60
    next_rss = start
    last_rss = rss_mib(proc.pid)
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"aiops exited with {proc.returncode}; see {work}/aiops.log")
        now = time.monotonic()
        if now >= next_rss:
            last_rss = rss_mib(proc.pid)
            next_rss += 1.0
        samples.append((now - start, last_rss, health_ms(host, int(port))))
        time.sleep(0.25)
    load.stop.set()
    proc.terminate()
    proc.wait(timeout=30)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "soak.csv"), "w") as f:
        f.write("t_s,rss_mib,health_ms\n")
        for t, r, hms in samples:
            f.write(f"{t:.2f},{r:.1f},{hms:.1f}\n")
    svg(samples, os.path.join(args.out, "soak.svg"), args.minutes)
    finite = sorted(s[2] for s in samples if s[2] != float("inf"))
    failed = sum(1 for s in samples if s[2] == float("inf"))
    summary = {
        "minutes": args.minutes, "valid_ticks_per_s": args.ticks, "slow_clients": args.slow_clients,
        "rss_peak_mib": round(max(s[1] for s in samples), 1),
        "rss_end_mib": round(samples[-1][1], 1),
        "health_checks": len(samples), "health_failed": failed,
        "health_p50_ms": round(finite[len(finite) // 2], 1) if finite else None,
        "health_p99_ms": round(finite[int(len(finite) * 0.99)], 1) if finite else None,
        "health_max_ms": round(finite[-1], 1) if finite else None,
        "responses": dict(sorted(load.counts.items())),
        "aiops_exit": proc.returncode,
    }
    with open(os.path.join(args.out, "soak.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    ok = (summary["rss_peak_mib"] < RSS_LIMIT_MIB and failed == 0
          and (summary["health_max_ms"] or 0) <= HEALTH_LIMIT_MS)
    print("PASS" if ok else "FAIL: a limit was crossed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
