#!/usr/bin/env bash
# Checks the scheduling scripts (run by scripts/test.sh after the Rust tests have built the
# batch):
#   1. setup_cron.sh run twice leaves one entry; a new BATCH_CRON_SCHEDULE replaces it;
#      --remove removes it; other entries stay;
#   2. run_loop.sh logs a failing run with its exit code and goes on to the next;
#   3. a run while another one holds the lock is skipped, not run alongside;
#   4. a run against reachable databases (this check's own, created and dropped here) succeeds
#      and says so in the summary log.
# The user's crontab is restored afterwards; logs go to a temporary directory.
set -euo pipefail
GLOBALMART_LOGS=$(mktemp -d)
export GLOBALMART_LOGS
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
source "$GM_ROOT/scripts/tests/lib.sh"
cd "$GM_ROOT"

# The debug build the tests just made; it fails fast on a warehouse nobody listens on.
export GLOBALMART_BATCH_BIN=$GM_BIN/globalmart-batch
export POSTGRES_WAREHOUSE_PORT=1 BATCH_DB_WAIT_SECONDS=1

SAVED=$(mktemp)
if command -v crontab >/dev/null 2>&1; then crontab -l >"$SAVED" 2>/dev/null || true; fi
# Installs cron when it is missing (and takes out an entry of this clone, restored at the end).
scripts/setup_cron.sh --remove >/dev/null
LOOP_PID=
restore() {
    [ -n "$LOOP_PID" ] && kill "$LOOP_PID" 2>/dev/null
    if [ -s "$SAVED" ]; then crontab "$SAVED"; else crontab -r 2>/dev/null || true; fi
    rm -rf "$SAVED" "$GLOBALMART_LOGS"
}
trap restore EXIT

entries() { crontab -l 2>/dev/null | grep -cF "scripts/batch_once.sh" || true; }

one_entry_after_two_setups() {
    echo "0 3 * * * true # someone else's" | crontab -
    scripts/setup_cron.sh >/dev/null 2>&1 && scripts/setup_cron.sh >/dev/null 2>&1 &&
        [ "$(entries)" = 1 ] && crontab -l | grep -q "^\*/5 \* \* \* \* "
}
check "setup_cron.sh run twice leaves one entry, every 5 minutes" one_entry_after_two_setups

new_schedule_replaces() {
    BATCH_CRON_SCHEDULE="0 * * * *" scripts/setup_cron.sh >/dev/null 2>&1 &&
        [ "$(entries)" = 1 ] && crontab -l | grep -q "^0 \* \* \* \* .*batch_once.sh"
}
check "a new BATCH_CRON_SCHEDULE replaces the entry" new_schedule_replaces

remove_keeps_others() {
    scripts/setup_cron.sh --remove >/dev/null 2>&1 && [ "$(entries)" = 0 ] &&
        crontab -l | grep -q "someone else's"
}
check "--remove removes the entry and keeps the others" remove_keeps_others

# How many runs the summary log records as failed with exit code 1.
failed_runs() {
    cat "$GLOBALMART_LOGS/batch_processing.log" 2>/dev/null | grep -c 'run failed (exit 1)' || true
}

loop_survives_failures() {
    BATCH_INTERVAL_SECONDS=1 scripts/run_loop.sh >/dev/null 2>&1 &
    LOOP_PID=$!
    local waited=0
    while [ "$(failed_runs)" -lt 2 ] && [ "$waited" -lt 60 ]; do
        sleep 1
        waited=$((waited + 1))
    done
    local alive=1
    pid_alive "$LOOP_PID" || alive=0
    kill "$LOOP_PID" 2>/dev/null
    wait "$LOOP_PID" 2>/dev/null
    LOOP_PID=
    [ "$alive" = 1 ] && [ "$(failed_runs)" -ge 2 ]
}
check "run_loop.sh logs a failing run with its exit code and runs again" loop_survives_failures

locked_run_is_skipped() {
    (
        flock -n 9 || exit 1
        scripts/batch_once.sh >/dev/null 2>&1
    ) 9>"$GM_RUN/batch.lock" &&
        tail -n 1 "$GLOBALMART_LOGS/batch_processing.log" | grep -q "run skipped: the previous run still holds the lock"
}
check "a run while another holds the lock is skipped" locked_run_is_skipped

succeeding_run_is_logged() {
    local id=gm_sched_check_$$ rc=0
    gm_psql "$PG_REALTIME_PORT" postgres -c "CREATE DATABASE $id" >/dev/null &&
        gm_psql "$PG_WAREHOUSE_PORT" postgres -c "CREATE DATABASE $id" >/dev/null || return 1
    POSTGRES_REALTIME_DB=$id POSTGRES_WAREHOUSE_DB=$id POSTGRES_WAREHOUSE_PORT=$PG_WAREHOUSE_PORT \
        BATCH_DB_WAIT_SECONDS=10 scripts/batch_once.sh >/dev/null 2>&1 || rc=1
    gm_psql "$PG_REALTIME_PORT" postgres -c "DROP DATABASE IF EXISTS $id WITH (FORCE)" >/dev/null
    gm_psql "$PG_WAREHOUSE_PORT" postgres -c "DROP DATABASE IF EXISTS $id WITH (FORCE)" >/dev/null
    [ "$rc" = 0 ] && tail -n 1 "$GLOBALMART_LOGS/batch_processing.log" | grep -q "run succeeded in"
}
check "a run against reachable databases succeeds and is logged" succeeding_run_is_logged

finish "schedule scripts"
