#!/usr/bin/env python3
"""Chassis overhead benchmark: the same hello route served three ways, measured in one run.

Variants: bare axum; the do-it-yourself stack (axum + tower-http TraceLayer + a `metrics`
histogram middleware + a JSON tracing-subscriber access log); the aiods chassis
(examples/hello-service: access log, metrics, health, problem+json all on). Then both again
with everything on: every request's span exported over OTLP/HTTP protobuf to a live local
receiver (bench/overhead-servers telemetry-sink) and Sentry enabled (tracing-opentelemetry +
the SDK batch exporter + sentry-tower for the hand-wired stack).

Rounds alternate the variants so that machine noise hits all of them alike. Reported per
variant (median over rounds): requests/s and its ratio to bare axum, p50/p99 latency, CPU time
per request (server process, from /proc), idle RSS, and exec -> first successful readiness.

Usage: python3 bench/overhead.py [--rounds 3] [--duration 5] [--connections 16]
Needs wrk (apt-get install wrk); the script installs it when missing and it can.
"""
import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def target_dir():
    out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    import json
    return json.loads(out)["target_directory"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def get_ok(port, path):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", path)
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def get_ok_post(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("POST", "/v1/traces", body=b"")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def parse_wrk(text):
    rps = p50 = p99 = None
    requests = None
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


def run_variant(name, exe, ready_path, env_port, extra_env, args):
    port = free_port()
    env = dict(os.environ, **{env_port: str(port)}, RUST_LOG="info")
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.pop("SENTRY_DSN", None)
    env.update(extra_env)
    t0 = time.perf_counter()
    # Logs go into a pipe drained by another process, as under a container runtime or a
    # supervisor: writing them costs what it costs in production, not a write to /dev/null.
    drain = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    proc = subprocess.Popen([exe], env=env, stdout=drain.stdin, stderr=subprocess.DEVNULL)
    drain.stdin.close()
    try:
        while not get_ok(port, ready_path):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited early")
            time.sleep(0.0005)
        ready_ms = (time.perf_counter() - t0) * 1000
        time.sleep(0.5)
        idle_rss = rss_kib(proc.pid)
        url = f"http://127.0.0.1:{port}/hello/world"
        subprocess.run(["wrk", "-t1", f"-c{args.connections}", "-d1s", url], capture_output=True)
        before = ticks(proc.pid)
        out = subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s",
                              "--latency", url], capture_output=True, text=True).stdout
        cpu_s = (ticks(proc.pid) - before) / os.sysconf("SC_CLK_TCK")
        rps, p50, p99, requests = parse_wrk(out)
        cpu_us = cpu_s / requests * 1e6 if requests else float("nan")
        return dict(rps=rps, p50=p50, p99=p99, cpu_us=cpu_us, rss=idle_rss / 1024, ready=ready_ms)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        drain.wait(timeout=15)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--only-basic", action="store_true", help="skip the full-telemetry variants")
    args = p.parse_args()
    ensure_wrk()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "overhead-servers", "-p", "hello-service"],
                       cwd=ROOT, check=True)
    rel = os.path.join(target_dir(), "release")
    sink_port = free_port()
    sink = subprocess.Popen([os.path.join(rel, "telemetry-sink")], env=dict(os.environ, PORT=str(sink_port)),
                            stdout=subprocess.DEVNULL)
    while not get_ok_post(sink_port):
        time.sleep(0.01)
    full = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        "SENTRY_DSN": f"http://key@127.0.0.1:{sink_port}/1",
    }
    # Traces only, as for the hand-wired stack (the chassis would also export its logs).
    chassis_full = dict(full, OTEL_LOGS_EXPORTER="none")
    variants = [
        ("bare axum", os.path.join(rel, "bare-axum"), "/hello/x", "PORT", {}),
        ("do-it-yourself stack", os.path.join(rel, "diy-stack"), "/hello/x", "PORT", {}),
        ("aiods chassis", os.path.join(rel, "hello-service"), "/health/ready", "AIODS_PORT", {}),
        ("do-it-yourself + OTLP traces + Sentry", os.path.join(rel, "diy-stack"), "/hello/x", "PORT", full),
        ("aiods chassis + OTLP traces + Sentry", os.path.join(rel, "hello-service"), "/health/ready",
         "AIODS_PORT", chassis_full),
    ]
    if args.only_basic:
        variants = variants[:3]
    results = {v[0]: [] for v in variants}
    for r in range(args.rounds):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for name, exe, ready, env_port, extra in order:
            res = run_variant(name, exe, ready, env_port, extra, args)
            results[name].append(res)
            print(f"round {r + 1} {name}: {res['rps']:.0f} req/s", file=sys.stderr)

    def med(name, key):
        return statistics.median(x[key] for x in results[name])

    base = med("bare axum", "rps")
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} alternating rounds, medians; "
          f"{os.cpu_count()} cores")
    print()
    print("| variant | req/s | × bare axum | p50 ms | p99 ms | CPU µs/req | idle RSS MiB | exec→ready ms |")
    print("|---|---|---|---|---|---|---|---|")
    sink.terminate()
    for name, *_ in variants:
        print(f"| {name} | {med(name, 'rps'):.0f} | {med(name, 'rps') / base:.2f} | {med(name, 'p50'):.3f} | "
              f"{med(name, 'p99'):.3f} | {med(name, 'cpu_us'):.1f} | {med(name, 'rss'):.1f} | {med(name, 'ready'):.1f} |")


if __name__ == "__main__":
    main()
