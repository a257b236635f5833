#!/usr/bin/env bash
# One scheduled batch run, what cron (scripts/setup_cron.sh) and scripts/run_loop.sh call:
# `globalmart-batch run` (ETL, then the day's analytics) under a lock, so two runs never
# overlap. The batch's own output is appended to logs/batch_output.log and one summary line per
# run to logs/batch_processing.log:
#   2026-11-25T15:00:00Z run succeeded in 12 s
#   2026-11-25T15:05:00Z run failed (exit 1) in 3 s: <the batch's last error line>
#   2026-11-25T15:10:00Z run skipped: the previous run still holds the lock
# Exits with the batch's exit code (0 when skipped). The repository's .env applies.
# GLOBALMART_BATCH_BIN overrides the binary (default: the build of scripts/demo.sh and
# scripts/test.sh).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

BIN=${GLOBALMART_BATCH_BIN:-$GM_BIN/globalmart-batch}
SUMMARY=$GM_LOGS/batch_processing.log
OUTPUT=$GM_LOGS/batch_output.log
stamp() { date -u +%Y-%m-%dT%H:%M:%SZ; }
summary() { echo "$(stamp) $*" | tee -a "$SUMMARY"; }

if [ ! -x "$BIN" ]; then
    summary "run failed (exit 127) in 0 s: $BIN not found (build it: scripts/demo.sh, or cargo build --workspace --all-targets)"
    exit 127
fi
exec 9>"$GM_RUN/batch.lock"
if ! flock -n 9; then
    summary "run skipped: the previous run still holds the lock"
    exit 0
fi
cd "$GM_ROOT"
start=$(date +%s)
run_log=$(mktemp)
"$BIN" run >"$run_log" 2>&1
rc=$?
cat "$run_log" >>"$OUTPUT"
took=$(($(date +%s) - start))
if [ "$rc" -eq 0 ]; then
    summary "run succeeded in $took s"
else
    reason=$(grep -E 'ERROR|error' "$run_log" | tail -n 1 | sed 's/^.*ERROR *//')
    summary "run failed (exit $rc) in $took s: ${reason:-see $OUTPUT}"
fi
rm -f "$run_log"
exit "$rc"
