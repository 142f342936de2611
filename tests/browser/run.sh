#!/usr/bin/env bash
# Dashboard browser tests: headless Debian chromium driven by playwright-core (never
# `npx playwright install`). Builds `aiops`, installs the pinned node deps (`npm ci`), runs
# dashboard.test.mjs. Screenshots go to target/browser-artifacts/ (or $ARTIFACTS).
#
# Fails (exit 1) when chromium is missing and cannot be installed: CI never passes without
# the dashboard test having run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing chromium (Debian package)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || true
  fi
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "browser tests need chromium at $CHROMIUM (Debian package chromium; set CHROMIUM to use another)" >&2
  exit 1
fi
for tool in node npm python3; do
  command -v "$tool" >/dev/null || { echo "browser tests need $tool" >&2; exit 1; }
done

target="${CARGO_TARGET_DIR:-$repo/target}"
echo "== cargo build -p aiops-platform"
cargo build -q -p aiops-platform
export AIOPS_BIN="${AIOPS_BIN:-$target/debug/aiops}"
export CHROMIUM
export ARTIFACTS="${ARTIFACTS:-$repo/target/browser-artifacts}"

if [ ! -d "$here/node_modules/playwright-core" ]; then
  echo "== npm ci (tests/browser)"
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi

echo "== dashboard browser test ($("$CHROMIUM" --version 2>/dev/null | head -1))"
node "$here/dashboard.test.mjs"
echo "screenshots: $ARTIFACTS"
