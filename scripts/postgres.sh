#!/usr/bin/env bash
# Starts the machine's PostgreSQL (Debian's cluster) and makes the role the relayer's
# Postgres tests use; prints the URL to export as COMPUX_TEST_POSTGRES_URL. Idempotent.
# Runs as root (CI) or as a user allowed to run pg_ctlcluster and `su postgres`.
set -euo pipefail
if ! command -v pg_lsclusters >/dev/null 2>&1; then
    echo "PostgreSQL is not installed: apt-get install postgresql (bash .ci/run does)" >&2
    exit 1
fi
read -r version cluster _ < <(pg_lsclusters --no-header | head -1)
if [ -z "${version:-}" ]; then
    echo "no PostgreSQL cluster: pg_createcluster --start <version> main" >&2
    exit 1
fi
pg_ctlcluster "$version" "$cluster" start >/dev/null 2>&1 || true
# "online" comes before the server takes connections ("the database system is starting
# up"): wait for a query to answer, up to a minute on a busy machine.
for i in $(seq 1 300); do
    su postgres -c "psql -qtAc 'SELECT 1'" >/dev/null 2>&1 && break
    if [ "$i" = 300 ]; then
        echo "PostgreSQL $version/$cluster does not answer: see pg_lsclusters and its log in /var/log/postgresql" >&2
        exit 1
    fi
    sleep 0.2
done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname = 'compux'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"CREATE ROLE compux LOGIN SUPERUSER PASSWORD 'compux'\""
# Databases earlier test runs left behind (one per test), dropped by one psql session
# (a dropdb process each took minutes for a few hundred on a busy machine).
su postgres -c "psql -qtAc \"SELECT 'DROP DATABASE IF EXISTS ' || quote_ident(datname) || ';' FROM pg_database WHERE datname LIKE 'compux_test_%'\"" |
    su postgres -c "psql -q" >/dev/null
port=$(pg_lsclusters --no-header | awk 'NR==1 {print $3}')
echo "postgres://compux:compux@127.0.0.1:${port}/postgres"
