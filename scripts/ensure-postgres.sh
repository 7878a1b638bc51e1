#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:5432 (the integration tests use it); starts the local cluster if
# it is down, and fails with a clear message if it cannot.
set -euo pipefail
conf_dir=${PG_CONF_DIR:-/etc/postgresql}   # where Debian keeps one directory per PostgreSQL version

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "error: pg_isready not found: install PostgreSQL (Debian: apt-get install postgresql) or point the" \
       "tests at a server with DEALWATCH_TEST_PG_URL" >&2
  exit 1
fi
if [ -n "${DEALWATCH_TEST_PG_URL:-}" ] || pg_isready -q -h 127.0.0.1 -p 5432; then
  exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls "$conf_dir" 2>/dev/null)" ]; then
  echo "error: PostgreSQL is not running on 127.0.0.1:5432 and there is no local cluster to start" >&2
  exit 1
fi
version=$(ls "$conf_dir" | sort -V | tail -n 1)
echo "PostgreSQL is down; starting cluster $version/main ..."
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 120); do
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    exit 0
  fi
  sleep 0.5
done
echo "error: PostgreSQL did not come up on 127.0.0.1:5432" \
     "(tried: pg_ctlcluster --skip-systemctl-redirect $version main start)" >&2
exit 1
