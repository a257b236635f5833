#!/usr/bin/env bash
# Stops what scripts/dev-up.sh started: the Kafka broker and Prometheus (by the pids dev-up
# recorded) and the PostgreSQL clusters dev-up started. Data is kept, so dev-up.sh brings back the same topics,
# messages and tables. --purge also deletes the Kafka data and the GlobalMart databases.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

PURGE=0
case "${1:-}" in
    -h | --help)
        say "usage: scripts/dev-down.sh [--purge]"
        say "  Stops Kafka, Prometheus and the PostgreSQL clusters that dev-up.sh started; keeps the data."
        say "  --purge  also deletes Kafka's data and drops the globalmart databases and the realtime cluster."
        exit 0
        ;;
    --purge) PURGE=1 ;;
    "") ;;
    *) die "unknown argument: $1 (try --help)" ;;
esac

# Stops the process whose pid dev-up.sh recorded in file $2 ($1 names it): SIGTERM for a clean
# shutdown, SIGKILL after 30 s.
stop_recorded() {
    local name=$1 pid_file=$2 pid i
    pid=$(read_pid "$pid_file")
    rm -f "$pid_file"
    if ! pid_alive "$pid"; then
        say "$name: not running"
        return
    fi
    say "$name: stopping pid $pid..."
    kill -TERM "$pid"
    for i in $(seq 1 60); do
        pid_alive "$pid" || break
        sleep 0.5
    done
    if pid_alive "$pid"; then
        warn "$name pid $pid did not stop within 30 s; killing it"
        kill -KILL "$pid"
    fi
    say "$name: stopped"
}

# Stops every cluster dev-up.sh started (it leaves a marker in the run folder).
stop_postgres() {
    local marker name major cluster
    for marker in "$GM_RUN"/postgres-*.started-by-dev-up; do
        [ -e "$marker" ] || continue
        name=$(basename "$marker" .started-by-dev-up)
        name=${name#postgres-}
        major=${name%%-*}
        cluster=${name#*-}
        rm -f "$marker"
        # --purge may have dropped it already.
        pg_lsclusters -h 2>/dev/null | awk -v m="$major" -v c="$cluster" '$1 == m && $2 == c { found = 1 } END { exit !found }' ||
            continue
        say "postgres: stopping cluster $major/$cluster..."
        as_root pg_ctlcluster "$major" "$cluster" stop || warn "could not stop cluster $major/$cluster"
    done
}

purge() {
    say "purging Kafka and Prometheus data in $GM_CACHE"
    rm -rf "$KAFKA_DATA" "$KAFKA_HOME/config" "$PROMETHEUS_DATA"
    local major
    major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1)
    if [ -n "$major" ] && pg_lsclusters -h 2>/dev/null | awk '{print $2}' | grep -qx realtime; then
        say "dropping PostgreSQL cluster $major/realtime"
        as_root pg_dropcluster --stop "$major" realtime
    fi
    if pg_isready -q -h localhost -p "$PG_WAREHOUSE_PORT" ||
        { [ -n "$major" ] && as_root pg_ctlcluster "$major" main start 2>/dev/null; }; then
        say "dropping database $PG_WAREHOUSE_DB"
        as_postgres psql -X -q -p "$PG_WAREHOUSE_PORT" -d postgres -c "DROP DATABASE IF EXISTS $PG_WAREHOUSE_DB WITH (FORCE)" ||
            warn "could not drop $PG_WAREHOUSE_DB"
    fi
}

stop_recorded prometheus "$PROMETHEUS_PID_FILE"
stop_recorded kafka "$KAFKA_PID_FILE"
[ "$PURGE" -eq 1 ] && purge
stop_postgres
say "local stack stopped"
[ "$PURGE" -eq 1 ] && say "data purged: the next scripts/dev-up.sh starts from scratch" || true
