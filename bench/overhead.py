#!/usr/bin/env python3
"""Chassis overhead benchmark: the same hello route served five ways, measured and verified.

Variants: bare axum; the do-it-yourself stack (axum + tower-http TraceLayer + a `metrics`
histogram middleware + a JSON tracing-subscriber access log); the aiods chassis
(examples/hello-service: access log, metrics, health, problem+json all on). Then both again
with everything on: every request's span exported over OTLP/HTTP protobuf to a live local
receiver (bench/overhead-servers telemetry-sink) and Sentry enabled for errors (the
hand-wired stack: tracing-opentelemetry + the SDK batch exporter + sentry-tower's per-request
hub, no performance transaction; the chassis: its own span queue and exception capture). A
200 sends nothing to Sentry in either stack; the sink checks that.

Rounds alternate the variants so that machine noise hits all of them alike. Reported per
variant: requests/s (median, min and max over the rounds) and the median's ratio to bare
axum's, p50/p99 latency, CPU time per request (server process, from /proc), instructions per
request under `valgrind --tool=callgrind` (a fixed number of requests from one keep-alive
client; every thread of the server process counted, the export threads included; repeatable
whatever else the machine runs), idle RSS, exec -> first successful readiness, and what was
verified: requests served (wrk's count, and the service's own
`http_server_request_duration_seconds_count`), spans the sink decoded, and spans the service
counted as dropped (`aiods_telemetry_dropped_total{signal="spans"}`, read from its /metrics
once the export queue has had time to drain; the sink's count is read again after a graceful
SIGTERM, which flushes what is left).

Exits non-zero when a check fails:
- a service counted fewer requests than wrk saw answered, or more than wrk's in-flight
  requests at its end could explain (16 connections x 2 wrk runs);
- the chassis with everything on: spans received + spans counted as dropped != requests
  served (the drop policy: every span is delivered or counted), or any span dropped at all
  (the target: every span delivered; `--allow-drops` turns that into a warning);
- any Sentry event or transaction reached the sink (no request failed), a body the sink could
  not decode, or a span from a variant without telemetry.
The hand-wired stack's SDK batch processor drops beyond its 2,048-span queue without counting;
its "served - received" is printed as uncounted loss, not checked.

Usage: python3 bench/overhead.py [--rounds 5] [--duration 5] [--connections 16]
                                 [--callgrind-requests 2000] [--only-basic] [--no-build]
Needs wrk (apt-get install wrk; installed when missing and possible) and, for the instruction
counts, valgrind (--callgrind-requests 0 skips them).
"""
import argparse
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchutil import ROOT, free_port, target_dir  # noqa: E402 (beside this script)
HELLO_ROUTE = "/hello/{name}"


def ensure_wrk():
    if shutil.which("wrk"):
        return
    print("installing wrk ...", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def http_call(port, path, method="GET", body=None, timeout=2):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def get_ok(port, path):
    try:
        return http_call(port, path, timeout=1)[0] == 200
    except OSError:
        return False


class Sink:
    """The telemetry sink: counts what it decodes."""

    def __init__(self, exe):
        self.port = free_port()
        self.proc = subprocess.Popen([exe], env=dict(os.environ, PORT=str(self.port)),
                                     stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not get_ok(self.port, "/counts"):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the telemetry sink did not start")
            time.sleep(0.01)

    def counts(self):
        return json.loads(http_call(self.port, "/counts")[1])

    def reset(self):
        http_call(self.port, "/counts/reset", method="POST", body=b"")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def scrape(port):
    """The service's /metrics: (requests served on the hello route, spans dropped), or None."""
    try:
        status, body = http_call(port, "/metrics")
    except OSError:
        return None
    if status != 200:
        return None
    served, dropped = 0, 0
    for line in body.decode().splitlines():
        if line.startswith("http_server_request_duration_seconds_count{") and \
                f'http_route="{HELLO_ROUTE}"' in line:
            served += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("aiods_telemetry_dropped_total{") and 'signal="spans"' in line:
            dropped += int(float(line.rsplit(" ", 1)[1]))
    return served, dropped


def parse_wrk(text):
    rps = p50 = p99 = None
    requests = 0
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        elif line.startswith("50%"):
            p50 = to_ms(line.split()[1])
        elif line.startswith("99%"):
            p99 = to_ms(line.split()[1])
        elif "requests in" in line:
            requests = int(line.split()[0])
    return rps, p50, p99, requests


def to_ms(v):
    for suffix, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(suffix):
            return float(v[: -len(suffix)]) * factor
    return float(v)


class Variant:
    def __init__(self, name, exe, ready_path, env_port, extra_env, kind, telemetry):
        self.name, self.exe, self.ready_path = name, exe, ready_path
        self.env_port, self.extra_env = env_port, extra_env
        self.kind, self.telemetry = kind, telemetry  # kind: bare | diy | chassis

    def env(self, port):
        env = dict(os.environ, **{self.env_port: str(port)}, RUST_LOG="info")
        for k in list(env):
            if k.startswith("OTEL_") or k == "SENTRY_DSN":
                env.pop(k)
        env.update(self.extra_env)
        return env


def start(variant, port, prefix=()):
    # Logs go into a pipe drained by another process, as under a container runtime or a
    # supervisor: writing them costs what it costs in production, not a write to /dev/null.
    drain = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    proc = subprocess.Popen([*prefix, variant.exe], env=variant.env(port), stdout=drain.stdin,
                            stderr=subprocess.DEVNULL)
    drain.stdin.close()
    return proc, drain


def wait_ready(variant, proc, port, timeout):
    deadline = time.time() + timeout
    while not get_ok(port, variant.ready_path):
        if proc.poll() is not None:
            raise RuntimeError(f"{variant.name} exited early")
        if time.time() > deadline:
            raise RuntimeError(f"{variant.name} not ready within {timeout} s")
        time.sleep(0.0005)


def stop(proc, drain):
    proc.send_signal(signal.SIGTERM)  # graceful: the chassis flushes its queues
    proc.wait(timeout=30)
    drain.wait(timeout=15)


def settle(sink, expected, timeout=3.0):
    """Waits until the sink holds `expected` spans or stops receiving for 0.7 s."""
    deadline = time.time() + timeout
    last, last_change = -1, time.time()
    while time.time() < deadline:
        spans = sink.counts()["spans"]
        if spans >= expected:
            return
        if spans != last:
            last, last_change = spans, time.time()
        elif time.time() - last_change > 0.7:
            return
        time.sleep(0.05)


def run_variant(variant, args, sink):
    port = free_port()
    sink.reset()
    t0 = time.perf_counter()
    proc, drain = start(variant, port)
    try:
        wait_ready(variant, proc, port, 30)
        ready_ms = (time.perf_counter() - t0) * 1000
        time.sleep(0.5)
        idle_rss = rss_kib(proc.pid)
        url = f"http://127.0.0.1:{port}/hello/world"
        warm = subprocess.run(["wrk", "-t1", f"-c{args.connections}", "-d1s", url],
                              capture_output=True, text=True).stdout
        before = ticks(proc.pid)
        out = subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s",
                              "--latency", url], capture_output=True, text=True).stdout
        cpu_s = (ticks(proc.pid) - before) / os.sysconf("SC_CLK_TCK")
        rps, p50, p99, requests = parse_wrk(out)
        wrk_total = parse_wrk(warm)[3] + requests
        scraped = None
        if variant.kind != "bare":
            if variant.telemetry:
                # The export queue sends by size or every 500 ms; give it that time.
                first = scrape(port)
                settle(sink, first[0] if first else wrk_total)
            scraped = scrape(port)
    finally:
        stop(proc, drain)
    counts = sink.counts()
    cpu_us = cpu_s / requests * 1e6 if requests else float("nan")
    return dict(rps=rps, p50=p50, p99=p99, cpu_us=cpu_us, rss=idle_rss / 1024, ready=ready_ms,
                wrk_total=wrk_total, served=scraped[0] if scraped else None,
                dropped=scraped[1] if scraped else None, counts=counts)


def instructions_per_request(variant, args, sink):
    """Instructions of the server process per request under callgrind, from one keep-alive
    client: counters zeroed after a warm-up, then N requests and a graceful stop (which flushes
    the span queue inside the measured window)."""
    n = args.callgrind_requests
    port = free_port()
    sink.reset()
    outdir = tempfile.mkdtemp(prefix="aiods-callgrind-")
    out = os.path.join(outdir, "callgrind.out")
    proc, drain = start(variant, port, ["valgrind", "--tool=callgrind", "--quiet",
                                        f"--callgrind-out-file={out}"])
    try:
        wait_ready(variant, proc, port, 120)
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def requests(k):
            for _ in range(k):
                client.request("GET", "/hello/world")
                r = client.getresponse()
                r.read()
                if r.status != 200:
                    raise RuntimeError(f"{variant.name}: status {r.status}")

        requests(200)
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True,
                       capture_output=True)
        requests(n)
        client.close()
    except BaseException:
        proc.kill()
        raise
    finally:
        stop(proc, drain)
    total = 0
    for path in glob.glob(out + "*"):
        with open(path) as f:
            for line in f:
                if line.startswith("totals:") or line.startswith("summary:"):
                    total = max(total, int(line.split()[1]))
    shutil.rmtree(outdir, ignore_errors=True)
    return total / n, sink.counts()


def fmt_range(values, digits=0):
    med = statistics.median(values)
    return f"{med:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def check(variant, runs, args):
    """The failed checks of one variant's runs (an empty list when all hold)."""
    failures = []
    for i, r in enumerate(runs, 1):
        c, where = r["counts"], f"{variant.name}, round {i}"
        if c["bad_bodies"]:
            failures.append(f"{where}: the sink could not decode {c['bad_bodies']} bodies")
        if c["sentry_events"] or c["sentry_transactions"]:
            failures.append(f"{where}: {c['sentry_events']} Sentry events and "
                            f"{c['sentry_transactions']} transactions for requests that all succeeded")
        if not variant.telemetry and c["spans"]:
            failures.append(f"{where}: {c['spans']} spans from a variant without telemetry")
        if r["served"] is not None:
            # In flight when each wrk run ended, plus the readiness request of the stacks whose
            # readiness check is the hello route itself.
            slack = 2 * args.connections + (variant.kind != "chassis")
            if not r["wrk_total"] <= r["served"] <= r["wrk_total"] + slack:
                failures.append(f"{where}: the service counted {r['served']} requests, wrk "
                                f"{r['wrk_total']} answered (at most {slack} in flight at its end)")
        if variant.kind == "chassis" and variant.telemetry:
            if c["spans"] + r["dropped"] != r["served"]:
                failures.append(f"{where}: {c['spans']} spans received + {r['dropped']} counted "
                                f"as dropped != {r['served']} requests served")
            elif r["dropped"] and not args.allow_drops:
                failures.append(f"{where}: {r['dropped']} spans dropped (counted); the target "
                                f"is every span delivered")
    return failures


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--callgrind-requests", type=int, default=2000,
                   help="requests per variant under callgrind (0: skip)")
    p.add_argument("--allow-drops", action="store_true",
                   help="counted span drops of the chassis are a warning, not a failure")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--only-basic", action="store_true", help="skip the full-telemetry variants")
    p.add_argument("--only", action="append", default=[],
                   help="run only the variants whose name contains this (repeatable)")
    args = p.parse_args()
    ensure_wrk()
    if args.callgrind_requests and not shutil.which("valgrind"):
        sys.exit("valgrind is needed for the instruction counts (apt-get install valgrind), "
                 "or pass --callgrind-requests 0")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "overhead-servers", "-p", "hello-service"],
                       cwd=ROOT, check=True)
    rel = os.path.join(target_dir(), "release")
    sink = Sink(os.path.join(rel, "telemetry-sink"))
    full = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.port}",
        "SENTRY_DSN": f"http://key@127.0.0.1:{sink.port}/1",
    }
    # Traces only, as for the hand-wired stack (the chassis would also export its logs).
    chassis_full = dict(full, OTEL_LOGS_EXPORTER="none")
    hello, diy = os.path.join(rel, "hello-service"), os.path.join(rel, "diy-stack")
    variants = [
        Variant("bare axum", os.path.join(rel, "bare-axum"), "/hello/x", "PORT", {}, "bare", False),
        Variant("do-it-yourself stack", diy, "/hello/x", "PORT", {}, "diy", False),
        Variant("aiods chassis", hello, "/health/ready", "AIODS_PORT", {}, "chassis", False),
        Variant("do-it-yourself + OTLP traces + Sentry", diy, "/hello/x", "PORT", full, "diy", True),
        Variant("aiods chassis + OTLP traces + Sentry", hello, "/health/ready", "AIODS_PORT",
                chassis_full, "chassis", True),
    ]
    if args.only_basic:
        variants = variants[:3]
    if args.only:
        variants = [v for v in variants if v.kind == "bare" or any(o in v.name for o in args.only)]
    results = {v.name: [] for v in variants}
    instr = {}
    try:
        for r in range(args.rounds):
            order = variants[r % len(variants):] + variants[: r % len(variants)]
            for v in order:
                res = run_variant(v, args, sink)
                results[v.name].append(res)
                print(f"round {r + 1} {v.name}: {res['rps']:.0f} req/s, served {res['served']}, "
                      f"spans {res['counts']['spans']}, dropped {res['dropped']}", file=sys.stderr)
        if args.callgrind_requests:
            for v in variants:
                per_request, counts = instructions_per_request(v, args, sink)
                instr[v.name] = per_request
                print(f"callgrind {v.name}: {per_request:.0f} instructions/request, "
                      f"spans {counts['spans']}", file=sys.stderr)
    finally:
        sink.stop()

    def med(name, key):
        return statistics.median(x[key] for x in results[name])

    base = med("bare axum", "rps")
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s, n = {args.rounds} alternating rounds "
          f"(median, min–max); {os.cpu_count()} cores; load average at the end {' '.join(load)}; "
          f"instructions: valgrind --tool=callgrind, {args.callgrind_requests} requests on one "
          f"keep-alive connection")
    print()
    print("| variant | req/s | × bare axum | p50 ms | p99 ms | CPU µs/req | instructions/req | "
          "spans received / served | spans dropped | idle RSS MiB | exec→ready ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    failures = []
    for v in variants:
        runs = results[v.name]
        failures += check(v, runs, args)
        rps = [x["rps"] for x in runs]
        if v.telemetry:
            received = sum(x["counts"]["spans"] for x in runs)
            served = sum(x["served"] for x in runs)
            spans = f"{received} / {served}"
            if v.kind == "chassis":
                dropped = str(sum(x["dropped"] for x in runs))
            else:
                dropped = f"{served - received} (uncounted)"
        else:
            spans, dropped = "—", "—"
        ins = f"{instr[v.name]:.0f}" if v.name in instr else "—"
        print(f"| {v.name} | {fmt_range(rps)} | {statistics.median(rps) / base:.2f} | "
              f"{med(v.name, 'p50'):.3f} | {med(v.name, 'p99'):.3f} | {fmt_range([x['cpu_us'] for x in runs], 1)} | "
              f"{ins} | {spans} | {dropped} | {med(v.name, 'rss'):.1f} | {med(v.name, 'ready'):.1f} |")
    print()
    if failures:
        print("FAILED checks:")
        for f in failures:
            print(f"- {f}")
        sys.exit(1)
    print("checks passed: every service counted what wrk was answered; the chassis with "
          "everything on delivered every span (received + counted drops = served, drops = 0"
          + (" or allowed" if args.allow_drops else "") + "); no Sentry item, no undecodable body")


if __name__ == "__main__":
    main()
