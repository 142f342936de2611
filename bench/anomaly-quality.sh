#!/usr/bin/env sh
# Metric anomaly detection on the generated development corpus (NAB scoring, tuning and
# held-out generator families, per-kind precision/recall, NAB's windowed-Gaussian baseline in
# the same run) and the detectors' online cost (µs per point, bytes per series).
# Usage: bench/anomaly-quality.sh [all|quality|cost] [seeds]   (see docs/detection.md)
set -eu
cd "$(dirname "$0")/.."
exec cargo run --release -j 2 -p aiops-platform --example anomaly_quality -- "$@"
