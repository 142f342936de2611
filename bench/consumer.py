#!/usr/bin/env python3
"""Chassis consumer benchmark: a no-op JetStream consumer, bare async-nats and through the chassis.

Both consume the same pre-published stream of N small JSON events (about 80 bytes, with a
Nats-Msg-Id and a traceparent header, as a chassis publisher sends them) with a durable pull
consumer of their own (explicit ack; 8 handlers at a time, pulls of 32: the chassis's
defaults), a new durable per run:

- bare async-nats: bench/consumer-bench/src/bin/bare-consumer.rs, continuous pull, decode, ack;
- aiods chassis: bench/consumer-bench/src/bin/chassis-consumer.rs, `#[aiods::service]` +
  `ctx.messaging()` + `consume`, everything on: JSON logs (into a pipe drained by another
  process), Prometheus metrics, a CONSUMER span per message exported over OTLP/HTTP to a live
  receiver that counts the spans it gets (bench/overhead-servers telemetry-sink), Sentry on.

An unmeasured warm-up run of each comes first. Each run is timed inside the consumer from the first message handed to the handler to the
moment JetStream reports every message acked. Rounds alternate the variants so that machine
noise hits both alike; the table gives the median with min-max over rounds, the chassis's ratio
to bare (of the medians, and min-max of the per-round ratios), CPU time per message of the
consumer process (user+system, a figure that does not depend on how much of the machine the
process got), and spans received per message.

Checks (exit 1 when one fails): after each run the broker's monitoring endpoint (/jsz) must show
the consumer with N deliveries, ack floor N, nothing pending or awaiting an ack, no
redelivery; the chassis must deliver one CONSUMER span per message to the sink, or count the
missing ones in aiods_telemetry_dropped_total{signal="spans"}.

Usage: python3 bench/consumer.py [--rounds 5] [--messages 50000]
Needs Debian's nats-server (apt-get install nats-server).
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchutil import ROOT, free_port, target_dir  # noqa: E402 (beside this script)
STREAM = "BENCH"


def wait_port(port, proc, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited early (status {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"{what} did not listen on port {port} within {timeout} s")


def http_get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def find_nats_server():
    exe = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)
    if not exe:
        sys.exit("nats-server not found: install Debian's package (apt-get install nats-server)")
    return exe


def consumer_state(monitor_port, name):
    """The consumer's state as the broker's monitoring endpoint reports it."""
    jsz = json.loads(http_get(f"http://127.0.0.1:{monitor_port}/jsz?accounts=true&streams=true&consumers=true"))
    for account in jsz.get("account_details", []):
        for stream in account.get("stream_detail", []):
            if stream.get("name") != STREAM:
                continue
            for c in stream.get("consumer_detail", []) or []:
                if c.get("name") == name:
                    return c
    return None


def check_consumer(monitor_port, name, n, problems, label):
    c = consumer_state(monitor_port, name)
    if c is None:
        problems.append(f"{label}: consumer {name} not found on the broker")
        return
    delivered = c["delivered"]["consumer_seq"]
    ack_floor = c["ack_floor"]["consumer_seq"]
    ack_floor_stream = c["ack_floor"]["stream_seq"]
    bad = []
    if delivered != n:
        bad.append(f"{delivered} deliveries")
    if ack_floor != n or ack_floor_stream != n:
        bad.append(f"ack floor {ack_floor} (stream {ack_floor_stream})")
    if c.get("num_pending", 0) != 0:
        bad.append(f"{c['num_pending']} pending")
    if c.get("num_ack_pending", 0) != 0:
        bad.append(f"{c['num_ack_pending']} awaiting an ack")
    if c.get("num_redelivered", 0) != 0:
        bad.append(f"{c['num_redelivered']} redelivered")
    if bad:
        problems.append(f"{label}: expected {n} messages each acked once, broker says " + ", ".join(bad))


def dropped_spans(metrics_text):
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("aiods_telemetry_dropped_total") and 'signal="spans"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def sink_count(port):
    """The sink's counts (bench/overhead-servers telemetry-sink, `GET /counts`). Every span
    of the chassis consumer's run is a CONSUMER span: it serves no traced request (probes and
    scrapes are not traced), so the spans received are the consumer spans."""
    c = json.loads(http_get(f"http://127.0.0.1:{port}/counts"))
    return {"consumer_spans": c["spans"], "undecoded_posts": c["bad_bodies"]}


def run_bare(rel, nats_url, name, args, tmp):
    result = os.path.join(tmp, f"{name}.json")
    env = dict(os.environ, NATS_URL=nats_url, BENCH_STREAM=STREAM, BENCH_CONSUMER=name,
               BENCH_MESSAGES=str(args.messages), BENCH_RESULT=result)
    proc = subprocess.run([os.path.join(rel, "bare-consumer")], env=env, timeout=300)
    if proc.returncode != 0:
        sys.exit(f"bare-consumer failed (status {proc.returncode})")
    with open(result) as f:
        return json.load(f)


def run_chassis(rel, nats_url, name, args, tmp, sink_port):
    result = os.path.join(tmp, f"{name}.json")
    port = free_port()
    env = dict(os.environ, NATS_URL=nats_url, BENCH_STREAM=STREAM, BENCH_CONSUMER=name,
               BENCH_MESSAGES=str(args.messages), BENCH_RESULT=result,
               AIODS_PORT=str(port), AIODS_MESSAGING__URL=nats_url, RUST_LOG="info",
               OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink_port}",
               SENTRY_DSN=f"http://key@127.0.0.1:{sink_port}/1")
    before = sink_count(sink_port)
    # Logs go into a pipe drained by another process, as under a container runtime.
    drain = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    proc = subprocess.Popen([os.path.join(rel, "chassis-consumer")], env=env, stdout=drain.stdin,
                            stderr=subprocess.DEVNULL)
    drain.stdin.close()
    try:
        deadline = time.monotonic() + 300
        while not os.path.exists(result) or os.path.getsize(result) == 0:
            if proc.poll() is not None:
                sys.exit(f"chassis-consumer exited early (status {proc.returncode})")
            if time.monotonic() > deadline:
                sys.exit("chassis-consumer did not finish within 300 s")
            time.sleep(0.05)
        metrics = http_get(f"http://127.0.0.1:{port}/metrics")
    finally:
        proc.terminate()
        status = proc.wait(timeout=30)
        drain.wait(timeout=30)
    if status != 0:
        sys.exit(f"chassis-consumer exited {status} on SIGTERM")
    # The spans were flushed before the process exited; give the sink a moment to count them.
    after = sink_count(sink_port)
    for _ in range(50):
        time.sleep(0.05)
        again = sink_count(sink_port)
        if again == after:
            break
        after = again
    with open(result) as f:
        res = json.load(f)
    res["consumer_spans"] = after["consumer_spans"] - before["consumer_spans"]
    res["undecoded_posts"] = after["undecoded_posts"] - before["undecoded_posts"]
    res["dropped_spans"] = dropped_spans(metrics)
    return res


def fmt_range(values, spec):
    return f"{statistics.median(values):{spec}} ({min(values):{spec}}–{max(values):{spec}})"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--messages", type=int, default=50000)
    p.add_argument("--no-build", action="store_true")
    args = p.parse_args()
    nats = find_nats_server()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "consumer-bench"], cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "-p", "overhead-servers", "--bin", "telemetry-sink"],
                       cwd=ROOT, check=True)
    rel = os.path.join(target_dir(), "release")
    tmp = tempfile.mkdtemp(prefix="aiods-consumer-bench-")
    nats_port, monitor_port, sink_port = free_port(), free_port(), free_port()
    server = subprocess.Popen([nats, "-js", "-a", "127.0.0.1", "-p", str(nats_port), "-m", str(monitor_port),
                               "-sd", os.path.join(tmp, "store")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sink = subprocess.Popen([os.path.join(rel, "telemetry-sink")], env=dict(os.environ, PORT=str(sink_port)),
                            stdout=subprocess.DEVNULL)
    problems = []
    try:
        wait_port(nats_port, server, "nats-server")
        wait_port(monitor_port, server, "nats-server (monitoring)")
        wait_port(sink_port, sink, "telemetry-sink")
        nats_url = f"nats://127.0.0.1:{nats_port}"
        version = subprocess.run([nats, "--version"], capture_output=True, text=True).stdout.strip()
        t0 = time.perf_counter()
        pub = subprocess.run([os.path.join(rel, "bench-publish")], capture_output=True, text=True,
                             env=dict(os.environ, NATS_URL=nats_url, BENCH_STREAM=STREAM,
                                      BENCH_MESSAGES=str(args.messages)))
        if pub.returncode != 0:
            sys.exit(f"bench-publish failed: {pub.stderr}")
        stored = json.loads(pub.stdout)["messages"]
        if stored != args.messages:
            sys.exit(f"the stream holds {stored} messages, not {args.messages}")
        print(f"published {stored} messages in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        variants = ["bare async-nats", "aiods chassis"]
        results = {v: [] for v in variants}
        # One unmeasured run of each first (caches, the stream's files). A bare run once ran 40×
        # slower than the others (~36 s, its CPU per message as usual: a pull waiting for its
        # 30 s expiry, it seems); its pulls now expire after 1 s, as the chassis's do.
        for v in variants:
            name = f"warmup-{'bare' if v.startswith('bare') else 'chassis'}"
            if v.startswith("bare"):
                run_bare(rel, nats_url, name, args, tmp)
            else:
                run_chassis(rel, nats_url, name, args, tmp, sink_port)
            check_consumer(monitor_port, name, args.messages, problems, f"warm-up {v}")
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for v in order:
                name = f"{'bare' if v.startswith('bare') else 'chassis'}-{r + 1}"
                if v.startswith("bare"):
                    res = run_bare(rel, nats_url, name, args, tmp)
                else:
                    res = run_chassis(rel, nats_url, name, args, tmp, sink_port)
                label = f"round {r + 1} {v}"
                check_consumer(monitor_port, name, args.messages, problems, label)
                if res["handled"] != args.messages:
                    problems.append(f"{label}: the handler saw {res['handled']} messages, not {args.messages}")
                if "consumer_spans" in res:
                    if res["undecoded_posts"]:
                        problems.append(f"{label}: {res['undecoded_posts']} trace posts the sink could not read")
                    if res["consumer_spans"] + res["dropped_spans"] < args.messages:
                        problems.append(f"{label}: {res['consumer_spans']} CONSUMER spans received and "
                                        f"{res['dropped_spans']} counted as dropped, for {args.messages} messages")
                results[v].append(res)
                extra = (f", {res['consumer_spans']} spans, {res['dropped_spans']} dropped"
                         if "consumer_spans" in res else "")
                print(f"{label}: {res['msgs_per_s']:.0f} msgs/s, {res['cpu_us_per_message']:.1f} CPU µs/msg{extra}",
                      file=sys.stderr)
    finally:
        sink.terminate()
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)

    bare = results["bare async-nats"]
    chassis = results["aiods chassis"]
    base = statistics.median(x["msgs_per_s"] for x in bare)
    ratios = [c["msgs_per_s"] / b["msgs_per_s"] for b, c in zip(bare, chassis)]
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"{args.messages} messages of ~80 B, durable pull consumer, explicit ack, 8 handlers at a time, "
          f"pulls of 32; {args.rounds} alternating rounds, median (min–max); {version}; "
          f"{os.cpu_count()} cores, load average at the end {' '.join(load)}")
    print()
    print("| variant | msgs/s | × bare | CPU µs/message | spans received / messages | spans dropped |")
    print("|---|---|---|---|---|---|")
    for v in variants:
        rs = results[v]
        rate = fmt_range([x["msgs_per_s"] for x in rs], ".0f")
        cpu = fmt_range([x["cpu_us_per_message"] for x in rs], ".1f")
        if v.startswith("bare"):
            ratio, spans, dropped = "1.00", "–", "–"
        else:
            ratio = (f"**{statistics.median(x['msgs_per_s'] for x in rs) / base:.2f}** "
                     f"({min(ratios):.2f}–{max(ratios):.2f})")
            spans = f"{sum(x['consumer_spans'] for x in rs)} / {args.messages * len(rs)}"
            dropped = str(sum(x["dropped_spans"] for x in rs))
        print(f"| {v} | {rate} | {ratio} | {cpu} | {spans} | {dropped} |")
    if problems:
        print()
        for pr in problems:
            print(f"FAILED: {pr}")
        sys.exit(1)
    print()
    print(f"every message acked once by every consumer ({2 * args.rounds} runs): checked on the broker")


if __name__ == "__main__":
    main()
