#!/usr/bin/env bash
# Installs, or updates, the one crontab entry that runs the batch (scripts/batch_once.sh: ETL
# then analytics, never two at once, logged to logs/batch_processing.log) on
# BATCH_CRON_SCHEDULE (default every 5 minutes: "*/5 * * * *"). No prompts; safe to rerun: the
# entry of this clone is replaced, never added twice. Installs cron from Debian's packages when
# crontab is missing.
#   scripts/setup_cron.sh            install or update the entry
#   scripts/setup_cron.sh --remove   remove it
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

SCHEDULE=${BATCH_CRON_SCHEDULE:-*/5 * * * *}
MARKER="# globalmart-batch $GM_ROOT"

if ! command -v crontab >/dev/null 2>&1; then
    say "crontab not found: installing cron"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q cron >/dev/null
fi
[ "$(wc -w <<<"$SCHEDULE")" -eq 5 ] ||
    die "invalid BATCH_CRON_SCHEDULE \"$SCHEDULE\": expected five crontab fields, such as \"*/5 * * * *\""

# The crontab without this clone's entry (crontab -l fails when there is none yet).
others=$(crontab -l 2>/dev/null | grep -vF "$MARKER" || true)
case "${1:-}" in
    --remove)
        printf '%s\n' "$others" | sed '/^$/d' | crontab -
        say "removed the batch entry of $GM_ROOT"
        ;;
    '')
        entry="$SCHEDULE $GM_ROOT/scripts/batch_once.sh >/dev/null 2>&1 $MARKER"
        printf '%s\n%s\n' "$others" "$entry" | sed '/^$/d' | crontab -
        say "crontab: $entry"
        if ! pgrep -x cron >/dev/null 2>&1; then
            warn "the cron daemon is not running here: start it (as root: cron) or use scripts/run_loop.sh"
        fi
        ;;
    *) die "unknown option: $1 (none, or --remove)" ;;
esac
