#!/usr/bin/env bash
# usage: scripts/postgres/migrate.sh <folder of V<n>__<name>.sql files> [psql connection options]
#
# Applies, with psql and in version order, the migrations of the folder that the database has
# not applied yet, each in one transaction with its row in refinery_schema_history: the history
# the binaries' runner keeps (crates/globalmart-core/src/db.rs), so whichever applies a
# migration first, neither applies it again (docs/DEVELOPING.md, "Schemas and migrations").
# psql cannot compute refinery's checksum of a file, so its rows carry the checksum 0 until a
# binary migrating as the owner fills in the file's own. Used by scripts/dev-up.sh,
# scripts/bench.sh and Docker's first start (scripts/postgres/initdb.sh).
set -euo pipefail
[ $# -ge 1 ] && [ -d "$1" ] || { echo "usage: $0 <migrations folder> [psql options]" >&2; exit 2; }
folder=$1
shift
run_psql() {
    psql -X -q -v ON_ERROR_STOP=1 "$@"
}
# refinery's own table (refinery-core's CREATE TABLE), so the binaries' runner reads it as its own.
run_psql "$@" -c "CREATE TABLE IF NOT EXISTS refinery_schema_history (version int4 PRIMARY KEY,
    name varchar(255), applied_on varchar(255), checksum varchar(255))"
applied=" $(run_psql "$@" -tA -c "SELECT string_agg(version::text, ' ') FROM refinery_schema_history") "
for file in $(ls "$folder"/V*__*.sql | sort -V); do
    base=$(basename "$file" .sql)
    version=${base%%__*}
    version=${version#V}
    name=${base#*__}
    case "$applied" in *" $version "*) continue ;; esac
    # applied_on in RFC 3339, as refinery writes and parses it.
    run_psql "$@" -1 -f "$file" \
        -c "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
            VALUES ($version, '$name', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '0')"
    echo "applied $base"
done
