#!/usr/bin/env python3
"""The template miner side by side with drain3, on the labelled development corpus.

Generates the corpus (`aiops-platform/examples/log_corpus.rs`, one file per generator
family), then in the same run feeds the same lines to `aiops logs templates` and to drain3
(pinned, installed into a virtual environment this script makes), and prints the grouping
accuracy per family and the speed of each (lines/s over all families' lines, several
repeats, best taken).

    python3 bench/logmine.py                       # builds the release binary and example
    python3 bench/logmine.py --old-aiops /path/to/old/aiops   # adds a column for another build

Not a CI step: it installs from PyPI and takes a minute or two. Held-out families (marked
`held-out`) were never used to choose the miner's rules or its one configuration.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

from benchutil import ROOT, target_dir  # noqa: E402 (beside this script)
FAMILIES = ["proxy", "sshd", "nova", "syslog", "logfmt", "json", "android", "windows", "mac", "access"]
HELD_OUT = {"android", "windows", "mac", "access"}
DRAIN3 = "drain3==0.9.11"


def build():
    subprocess.run(
        ["cargo", "build", "--release", "-p", "aiops-platform", "--bin", "aiops", "--example", "log_corpus"],
        cwd=ROOT,
        check=True,
    )
    release = os.path.join(target_dir(), "release")
    return os.path.join(release, "aiops"), os.path.join(release, "examples", "log_corpus")


def venv_python(path):
    py = os.path.join(path, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", DRAIN3], check=True)
    return py


def grouping_accuracy(truth, predicted):
    """Loghub's grouping accuracy: lines whose predicted group is exactly their true group."""
    by_truth = defaultdict(list)
    by_pred = defaultdict(list)
    for i, (t, p) in enumerate(zip(truth, predicted)):
        by_truth[t].append(i)
        by_pred[p].append(i)
    correct = 0
    for lines in by_pred.values():
        if by_truth[truth[lines[0]]] == lines:
            correct += len(lines)
    return correct / len(truth) if truth else 1.0


def run_aiops(binary, path, out):
    start = time.perf_counter()
    subprocess.run([binary, "logs", "templates", "--input", path, "--output", out], check=True)
    elapsed = time.perf_counter() - start
    with open(out, encoding="utf-8") as f:
        ids = [line.split("\t", 1)[0] for line in f]
    return ids, elapsed


DRAIN3_RUNNER = r"""
import json, sys, time, logging
logging.disable(logging.WARNING)
from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig
out = {}
for path in sys.argv[1:]:
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    config = TemplateMinerConfig()  # drain3's defaults: depth 4, similarity 0.4, no masking
    config.profiling_enabled = False
    miner = TemplateMiner(config=config)
    start = time.perf_counter()
    ids = [miner.add_log_message(line)["cluster_id"] for line in lines]
    out[path] = {"ids": ids, "seconds": time.perf_counter() - start}
json.dump(out, sys.stdout)
"""


def run_drain3(py, paths):
    import json

    done = subprocess.run([py, "-c", DRAIN3_RUNNER, *paths], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=2000, help="lines per family for accuracy (default 2000)")
    ap.add_argument("--speed-lines", type=int, default=20000, help="lines per family for speed (default 20000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="speed runs per miner, best taken")
    ap.add_argument("--aiops", help="aiops binary (default: build the release one)")
    ap.add_argument("--corpus-bin", help="log_corpus example binary (default: build it)")
    ap.add_argument("--old-aiops", help="another aiops build to compare, e.g. the previous default")
    ap.add_argument("--venv", default=os.path.join(tempfile.gettempdir(), "aiods-logmine-bench-venv"))
    args = ap.parse_args()

    if args.aiops and args.corpus_bin:
        aiops, corpus_bin = args.aiops, args.corpus_bin
    else:
        aiops, corpus_bin = build()
    py = venv_python(args.venv)
    work = tempfile.mkdtemp(prefix="aiods-logmine-")
    acc_dir, speed_dir = os.path.join(work, "acc"), os.path.join(work, "speed")
    subprocess.run([corpus_bin, acc_dir, str(args.lines), str(args.seed)], check=True)
    subprocess.run([corpus_bin, speed_dir, str(args.speed_lines), str(args.seed + 1)], check=True)

    miners = [("ours", aiops)] + ([("old", args.old_aiops)] if args.old_aiops else [])
    paths = [os.path.join(acc_dir, f + ".log") for f in FAMILIES]
    drained = run_drain3(py, paths)
    rows = []
    for fam, path in zip(FAMILIES, paths):
        with open(os.path.join(acc_dir, fam + ".labels"), encoding="utf-8") as f:
            truth = f.read().splitlines()
        row = {"family": fam, "n": len(truth)}
        for name, binary in miners:
            ids, _ = run_aiops(binary, path, os.path.join(work, f"{name}-{fam}.tsv"))
            row[name] = grouping_accuracy(truth, ids)
        row["drain3"] = grouping_accuracy(truth, drained[path]["ids"])
        rows.append(row)

    names = [n for n, _ in miners] + ["drain3"]
    print(f"grouping accuracy, {args.lines} lines per family, seed {args.seed}")
    print(f"{'family':10} {'set':9} {'n':>6} " + " ".join(f"{n:>7}" for n in names))
    for r in rows:
        kind = "held-out" if r["family"] in HELD_OUT else "dev"
        print(f"{r['family']:10} {kind:9} {r['n']:>6} " + " ".join(f"{r[n]:7.3f}" for n in names))
    for label, keep in (("mean dev", lambda f: f not in HELD_OUT), ("mean held-out", lambda f: f in HELD_OUT), ("mean all", lambda f: True)):
        sel = [r for r in rows if keep(r["family"])]
        print(f"{label:20} {sum(r['n'] for r in sel):>6} " + " ".join(f"{sum(r[n] for r in sel) / len(sel):7.3f}" for n in names))

    # speed: all families' speed lines in one file per miner run
    speed_file = os.path.join(work, "speed.log")
    total = 0
    with open(speed_file, "w", encoding="utf-8") as out:
        for fam in FAMILIES:
            with open(os.path.join(speed_dir, fam + ".log"), encoding="utf-8") as f:
                for line in f:
                    out.write(line)
                    total += 1
    size = os.path.getsize(speed_file)
    print(f"\nspeed, {total} lines ({size / 1e6:.1f} MB, all families mixed), best of {args.repeats}")
    speeds = {}
    for name, binary in miners:
        best = min(run_aiops(binary, speed_file, os.path.join(work, f"{name}-speed.tsv"))[1] for _ in range(args.repeats))
        speeds[name] = total / best
    best = min(run_drain3(py, [speed_file])[speed_file]["seconds"] for _ in range(args.repeats))
    speeds["drain3"] = total / best
    for name in names:
        note = "(whole CLI run: read, mine, write TSV)" if name != "drain3" else "(add_log_message loop only)"
        print(f"{name:8} {speeds[name]:12,.0f} lines/s  {note}")
    print(f"ours/drain3: {speeds['ours'] / speeds['drain3']:.1f}x")


if __name__ == "__main__":
    main()
