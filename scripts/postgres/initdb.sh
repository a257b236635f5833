#!/usr/bin/env bash
# docker-compose's PostgreSQL first start (docker-entrypoint-initdb.d): the migrations of
# /globalmart/sql as the owner role (POSTGRES_USER), recorded in the binaries' migration history
# (scripts/postgres/migrate.sh), then the binaries' runtime login roles
# (scripts/postgres/runtime-logins.sql) with GLOBALMART_STREAM_DB_PASSWORD and
# GLOBALMART_BATCH_DB_PASSWORD.
set -euo pipefail
connection=(--username "$POSTGRES_USER" --dbname "$POSTGRES_DB")
/globalmart/migrate.sh /globalmart/sql "${connection[@]}"
psql -X -q -v ON_ERROR_STOP=1 "${connection[@]}" \
    -v stream_password="${GLOBALMART_STREAM_DB_PASSWORD:-stream_password}" \
    -v batch_password="${GLOBALMART_BATCH_DB_PASSWORD:-batch_password}" \
    -f /globalmart/runtime-logins.sql
