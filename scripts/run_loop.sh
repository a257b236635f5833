#!/usr/bin/env bash
# Runs the batch (scripts/batch_once.sh: ETL then analytics, never two at once) every
# BATCH_INTERVAL_SECONDS (default 300) until Ctrl+C or SIGTERM; the alternative to cron. A
# failed run is logged with its exit code and the loop goes on. Summary lines go to the
# terminal and to logs/batch_processing.log, the batch's output to logs/batch_output.log.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

INTERVAL=${BATCH_INTERVAL_SECONDS:-300}
case "$INTERVAL" in
    '' | *[!0-9]* | 0) die "invalid BATCH_INTERVAL_SECONDS \"$INTERVAL\": expected a whole number of seconds above 0" ;;
esac
trap 'say "run_loop: stopped"; exit 0' INT TERM
say "run_loop: a batch run every $INTERVAL s; Ctrl+C to stop (log: $GM_LOGS/batch_processing.log)"
while true; do
    "$GM_ROOT/scripts/batch_once.sh" >/dev/null || true
    tail -n 1 "$GM_LOGS/batch_processing.log"
    # In the background, so a signal is handled at once rather than after the sleep.
    sleep "$INTERVAL" &
    wait $!
done
