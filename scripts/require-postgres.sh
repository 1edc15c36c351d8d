#!/usr/bin/env bash
# The integration tests run on PostgreSQL too: stop with instructions when it is not reachable.
set -euo pipefail
host="${CERTPLANE_TEST_PG_HOST:-127.0.0.1}"
port="${CERTPLANE_TEST_PG_PORT:-5432}"
if ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    cat >&2 <<MSG
PostgreSQL is not reachable at $host:$port; the integration tests need it.
Start it, for example:
    pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start
or point CERTPLANE_TEST_PG_HOST / CERTPLANE_TEST_PG_PORT / CERTPLANE_TEST_PG_USER at a server
with trust authentication for loopback.
MSG
    exit 1
fi
