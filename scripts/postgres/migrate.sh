#!/usr/bin/env bash
# usage: scripts/postgres/migrate.sh <folder of V<n>__<name>.sql files> [psql connection options]
#
# Applies, with psql and in version order, the migrations of the folder that the database has
# not applied yet, each in one transaction with its row in refinery_schema_history: the history
# the binaries' runner keeps (crates/globalmart-core/src/db.rs), so whichever applies a
# migration first, neither applies it again (docs/DEVELOPING.md, "Schemas and migrations").
# psql cannot compute refinery's checksum of a file, so its rows carry the checksum 0 until a
# binary migrating as the owner fills in the file's own. One psql session does it all while
# holding the advisory locks the binaries migrate under (Db::migration_lock in db.rs: "gmrt" for
# a realtime database, "gmwh" for a warehouse one; both are taken, in that order, whichever the
# folder holds), so a binary starting beside it waits instead of applying a file twice. Used by
# scripts/dev-up.sh, scripts/bench.sh and Docker's first start (scripts/postgres/initdb.sh).
set -euo pipefail
[ $# -ge 1 ] && [ -d "$1" ] || { echo "usage: $0 <migrations folder> [psql options]" >&2; exit 2; }
folder=$(cd "$1" && pwd)
shift
script() {
    echo "SELECT pg_advisory_lock(1735225972), pg_advisory_lock(1735227240) \\g /dev/null"
    # refinery's own table (refinery-core's CREATE TABLE), so the binaries' runner reads it as
    # its own.
    echo "CREATE TABLE IF NOT EXISTS refinery_schema_history (version int4 PRIMARY KEY,
        name varchar(255), applied_on varchar(255), checksum varchar(255));"
    local file base version name
    for file in $(ls "$folder"/V*__*.sql | sort -V); do
        base=$(basename "$file" .sql)
        version=${base%%__*}
        version=${version#V}
        name=${base#*__}
        # Read under the locks: what another migrator applied meanwhile is not applied again.
        echo "SELECT NOT EXISTS (SELECT 1 FROM refinery_schema_history WHERE version = $version) AS pending \\gset"
        echo "\\if :pending"
        echo "BEGIN;"
        echo "\\i '$file'"
        # applied_on in RFC 3339, as refinery writes and parses it.
        echo "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
            VALUES ($version, '$name', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '0');"
        echo "COMMIT;"
        echo "\\echo applied $base"
        echo "\\endif"
    done
}
script | psql -X -q -v ON_ERROR_STOP=1 "$@" -f -
