#!/usr/bin/env bash
# docker-compose's PostgreSQL first start (docker-entrypoint-initdb.d): the migrations of
# /globalmart/sql in version order as the owner role (POSTGRES_USER), then the binaries' runtime
# login roles (scripts/postgres/runtime-logins.sql) with GLOBALMART_STREAM_DB_PASSWORD and
# GLOBALMART_BATCH_DB_PASSWORD. The binaries record the migrations in their history when they
# first start as the owner.
set -euo pipefail
run_psql() {
    psql -X -q -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" "$@"
}
for file in $(ls /globalmart/sql/V*.sql | sort -V); do
    run_psql -f "$file"
done
run_psql -v stream_password="${GLOBALMART_STREAM_DB_PASSWORD:-stream_password}" \
    -v batch_password="${GLOBALMART_BATCH_DB_PASSWORD:-batch_password}" \
    -f /globalmart/runtime-logins.sql
