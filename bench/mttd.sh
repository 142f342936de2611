#!/usr/bin/env bash
# MTTD / MTTR / downtime, and MTTD and downtime *from the fault*, measured over at least 20
# faults of each kind on this machine (release build), plus a fault-free run that counts false
# incidents. Not a CI step: it takes about 40 minutes.
#
#   bench/mttd.sh [OUT_DIR]        # default bench/out/mttd
#
# Knobs (environment): FAULTS (20), USERS (20, the load during fault runs), QUIET_USERS (50),
# QUIET_FOR (10m), LATENCY_EVERY (30s), ONLY (space-separated subset of: kill watched errors
# latency quiet).
#
# Each run is one `aiods-lab experiment` (or `load`) on the built-in food-delivery topology
# with the platform's default probe (200 ms) and scrape (1 s) intervals; each fault waits for
# its service's previous incident to resolve, then a random 0-1 s (so fault times fall at every
# phase of the probe interval and of detection's one-second buckets); its report
# (report.md, report.json) is in OUT_DIR/<run>/. The summary at the end reads
# `figures_by_kind` from each report.json.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${1:-bench/out/mttd}
FAULTS=${FAULTS:-20}
USERS=${USERS:-20}
QUIET_USERS=${QUIET_USERS:-50}
QUIET_FOR=${QUIET_FOR:-10m}
ONLY=${ONLY:-kill watched errors latency quiet}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

cargo build --release -p aiods-lab
LAB="$TARGET_DIR/release/aiods-lab"
mkdir -p "$OUT"

run() {
    local name=$1
    shift
    echo "== $name: aiods-lab $*" >&2
    # No progress bar, the report to OUT/name, the Markdown kept beside it.
    "$LAB" "$@" --quiet --out "$OUT/$name" >"$OUT/$name.md" 2>"$OUT/$name.log" || {
        echo "$name failed: see $OUT/$name.log" >&2
        return 1
    }
}

for what in $ONLY; do
    case $what in
    # kill -9 of a supervised instance, the five services in turn every 3 s (each one every
    # 15 s: past the 10 s crash-loop reset, so every kill is a first crash).
    kill) run kill experiment --users "$USERS" --crash-every 3s --faults "$FAULTS" --duration 10m ;;
    # kill -9 of a watched service: the lab runs the four leaf services itself, the platform
    # only probes them (and scrapes, and reads their telemetry); the lab restarts each 1 s
    # after its kill.
    watched) run watched experiment --users "$USERS" \
        --watched consumer,kitchen,accounting,notification \
        --target consumer,kitchen,accounting,notification \
        --crash-every 2s --faults "$FAULTS" --duration 10m ;;
    # 30 % of 500s for 3 s, a service every 32 s (each one every 160 s, so its 5-minute burn
    # window holds at most one earlier burst, too little to fire that alert on its own).
    errors) run errors experiment --users "$USERS" --error-rate 0.3 --soft-for 3s \
        --soft-every 32s --faults "$FAULTS" --duration 20m ;;
    # +300 ms on every request for 3 s, a service every 30 s, after a 35 s warm-up (the
    # latency baseline learns over the first 30 s with traffic). Closer steps teach the order
    # service's baseline the slow seconds its calls to the stepped services cause (at 10 s,
    # 3 s of every 10 are slow), and a step of its own is then no anomaly.
    latency) run latency experiment --users "$USERS" --latency-ms 300 --soft-for 3s \
        --soft-every "${LATENCY_EVERY:-30s}" --faults-after 35s --faults "$FAULTS" \
        --duration 20m ;;
    # No fault at all: every incident is a false one.
    quiet) run quiet load --users "$QUIET_USERS" --duration "$QUIET_FOR" ;;
    *) echo "unknown run $what" >&2; exit 2 ;;
    esac
done

echo
echo "| run | kind | faults | matched | MTTD from fault | downtime from fault | MTTD | MTTR | downtime |"
echo "|---|---|---|---|---|---|---|---|---|"
for what in $ONLY; do
    [ -f "$OUT/$what/report.json" ] || continue
    jq -r --arg run "$what" '
      def p: if .n == 0 then "–" else
        "p50 \(.p50 * 10 | round / 10) ms, \(.p95_label) \(.p95 * 10 | round / 10) ms (n=\(.n))" end;
      .figures_by_kind[] |
      "| \($run) | \(.name) | \(.faults) | \(.matched) | \(.mttd_from_fault_ms | p) | \(.downtime_from_fault_ms | p) | \(.mttd_ms | p) | \(.mttr_ms | p) | \(.downtime_ms | p) |"
    ' "$OUT/$what/report.json"
done
if [ -f "$OUT/quiet/report.json" ]; then
    jq -r '"quiet: \(.users) users for \(.duration_s | round) s, \(.requests) requests, \(.errors) failed; false incidents: \(.incidents | length)\(if (.incidents | length) > 0 then " (" + ([.incidents[] | "\(.service) \(.signals | join("+"))"] | join(", ")) + ")" else "" end)"' \
        "$OUT/quiet/report.json"
fi
for what in $ONLY; do
    [ -f "$OUT/$what/report.json" ] || continue
    jq -r --arg run "$what" '
      [.incidents[] | select(.fault == null)] as $x |
      if ($x | length) > 0 then
        "\($run): \($x | length) incident(s) not caused by an injected fault: " +
        ([$x[] | "\(.service) \(.signals | join("+"))\(if .probable_root_cause then " (root cause \(.probable_root_cause))" else "" end)"] | join(", "))
      else empty end' "$OUT/$what/report.json"
done
