#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (tests/integration/test_web.py).
# Idempotent: does nothing when /usr/bin/chromium exists; installs it with apt only as root;
# otherwise says what to run. Never downloads a browser of its own (no `playwright install`).
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-browser: $CHROMIUM is missing; the browser tests will be skipped." >&2
    echo "ensure-browser: to run them: sudo apt-get update && sudo apt-get install -y chromium" >&2
    exit 0
fi
echo "ensure-browser: installing Debian's chromium for the browser tests ..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }; then
    echo "ensure-browser: apt-get could not install chromium; the browser tests will be skipped." >&2
fi
exit 0
