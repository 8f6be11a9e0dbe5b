#!/usr/bin/env bash
# Make sure Debian's PostgreSQL and Redis servers are installed for the tests that run Tiled on
# PostgreSQL with a Redis streaming cache (tests/integration/test_catalogs.py; `demo --postgres`).
# Idempotent and quiet: does nothing when both are present; installs the missing ones with apt
# only as root; otherwise says what to run (the PostgreSQL tests are then skipped).
set -euo pipefail
PG_BIN=/usr/lib/postgresql/15/bin
missing=()
[ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/initdb" ] || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-servers: missing ${missing[*]}; the PostgreSQL/Redis tests will be skipped." >&2
    echo "ensure-servers: to run them: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 0
fi
echo "ensure-servers: installing Debian's ${missing[*]} for the PostgreSQL/Redis tests ..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    echo "ensure-servers: apt-get could not install ${missing[*]}; those tests will be skipped." >&2
fi
exit 0
