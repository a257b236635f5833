#!/usr/bin/env bash
# The README's first command: the whole platform on this machine, end to end. Builds (the dev
# profile, which the tests reuse) while it brings up the local stack, starts the stream, runs the
# generator (30 days of history on its simulated clock, then live events), runs the batch (ETL
# and analytics), then prints events per topic, rows per table, the guide's seven Common
# Queries and `globalmart-batch check`. Leaves the stack and the stream running.
#   scripts/demo.sh [--rate EVENTS_PER_SECOND] [--duration 60s] [--history-days 30]
#                   [--orders-per-day 2000] [--secure]
# --secure: the stack of `scripts/dev-up.sh --secure`, every binary over SASL_SSL and
# verify-full TLS (docs/USER_GUIDE.md, "Production").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$GM_ROOT"

RATE=500
DURATION=60s
HISTORY_DAYS=30
ORDERS_PER_DAY=2000
SECURE=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE=${2:?--rate needs a number of events per second}; shift 2 ;;
        --duration) DURATION=${2:?--duration needs a duration such as 60s}; shift 2 ;;
        --history-days) HISTORY_DAYS=${2:?--history-days needs a number of days (0: none)}; shift 2 ;;
        --orders-per-day) ORDERS_PER_DAY=${2:?--orders-per-day needs a number}; shift 2 ;;
        --secure) SECURE=(--secure); shift ;;
        -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1 (--rate N, --duration 60s, --history-days N, --orders-per-day N, --secure)" ;;
    esac
done
[[ "$HISTORY_DAYS" =~ ^[0-9]+$ ]] || die "--history-days needs a whole number of days (0: no history), not $HISTORY_DAYS"
require_cargo
BIN=$GM_BIN
STREAM_PID_FILE=$GM_RUN/demo-stream.pid

say "== 1/6 build, with the local stack set up beside it"
say "(first time: about 11 minutes on 2 cores; cached in $CARGO_TARGET_DIR, the tests reuse it)"
# The stack's set-up waits on downloads and servers, the build on the processors: side by side
# they take the time of the build alone.
stack_log=$GM_LOGS/demo-stack.log
scripts/dev-up.sh "${SECURE[@]}" >"$stack_log" 2>&1 </dev/null &
stack=$!
gm_build
say ""
say "== 2/6 local stack"
if ! wait "$stack"; then
    cat "$stack_log"
    die "the local stack did not come up (above; details in logs/dev-up.log)"
fi
cat "$stack_log"
MODE=plaintext
if [ ${#SECURE[@]} -gt 0 ]; then
    MODE=secure
    # Every binary below reads these: SASL_SSL to Kafka, verify-full TLS to PostgreSQL.
    set -a
    source "$GM_SECURE_ENV"
    set +a
    say "secure: Kafka $KAFKA_BOOTSTRAP_SERVERS ($KAFKA_SECURITY_PROTOCOL, $KAFKA_SASL_MECHANISM), PostgreSQL sslmode=$POSTGRES_REALTIME_SSLMODE"
fi
say ""
say "== 3/6 stream: every topic into the realtime database (log: logs/stream.log)"
pid=$(read_pid "$STREAM_PID_FILE")
if pid_alive "$pid" && [ "$(cat "$STREAM_PID_FILE.mode" 2>/dev/null)" != "$MODE" ]; then
    say "stopping the stream this demo started before (pid $pid, not $MODE)"
    kill "$pid"
    for _ in $(seq 1 60); do pid_alive "$pid" || break; sleep 0.5; done
fi
if pid_alive "$pid"; then
    say "already running (pid $pid)"
else
    "$BIN/globalmart-stream" >>"$GM_LOGS/stream.log" 2>&1 &
    echo $! >"$STREAM_PID_FILE"
    echo "$MODE" >"$STREAM_PID_FILE.mode"
    say "started (pid $!, $MODE)"
fi
say ""
if [ "$HISTORY_DAYS" -gt 0 ]; then
    say "== 4/6 generator: $HISTORY_DAYS days of history ($ORDERS_PER_DAY orders a day), then $RATE events/s for $DURATION"
    # On its simulated clock, as fast as the broker takes them.
    "$BIN/globalmart-generator" --days "$HISTORY_DAYS" --orders-per-day "$ORDERS_PER_DAY" 2>&1 |
        tee "$GM_LOGS/generator-history.log" | sed 's/^\S* *INFO //'
else
    say "== 4/6 generator: $RATE events/s for $DURATION"
fi
# Its monitoring lines are sampled so they stay readable at any rate.
"$BIN/globalmart-generator" --rate "$RATE" --duration "$DURATION" 2>&1 | tee "$GM_LOGS/generator.log" |
    sed 's/^\S* *INFO //'
# The stream saves within a second; wait until the realtime tables stop growing.
rows() { gm_psql "$PG_REALTIME_PORT" "$PG_REALTIME_DB" -At -c "SELECT (SELECT count(*) FROM transactions) + (SELECT count(*) FROM product_view_events) + (SELECT count(*) FROM cart_events)"; }
last=-1
for _ in $(seq 1 60); do
    now=$(rows)
    [ "$now" = "$last" ] && break
    last=$now
    sleep 2
done
say ""
say "== 5/6 batch: ETL, then the day's analytics"
"$BIN/globalmart-batch" run 2>&1 | sed 's/^\S* *INFO //'
say ""
say "== 6/6 summary"
say "--- events per topic (every message since the stack was created)"
# One call for every topic (each call starts a JVM): lines of topic:partition:end offset.
offsets=$(kafka_java org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$KAFKA_BOOTSTRAP" \
    2>/dev/null || true)
for topic in "${GM_EVENT_TOPICS[@]}" "${GM_COMPACTED_TOPICS[@]}"; do
    count=$(awk -F: -v t="$topic" '$1 == t { sum += $3 } END { print sum + 0 }' <<<"$offsets")
    printf '  %-22s %s\n' "$topic" "$count"
done
say "--- rows per table"
counts() {
    local port=$1 db=$2
    shift 2
    local table
    for table in "$@"; do
        printf '  %-28s %s\n' "$table" "$(gm_psql "$port" "$db" -At -c "SELECT count(*) FROM $table")"
    done
}
say "realtime ($PG_REALTIME_DB):"
counts "$PG_REALTIME_PORT" "$PG_REALTIME_DB" transactions product_view_events cart_events products \
    users dead_letter_events sales_per_minute sales_by_country trending_products \
    category_performance cart_metrics abandoned_carts high_value_anomalies \
    high_quantity_anomalies suspicious_patterns high_demand_alerts restock_alerts alerts
say "warehouse ($PG_WAREHOUSE_DB):"
counts "$PG_WAREHOUSE_PORT" "$PG_WAREHOUSE_DB" dim_date dim_geography dim_products dim_customers \
    fact_sales fact_product_views fact_cart_events product_performance rfm_analysis \
    customer_segments sales_trends batch_runs
say ""
say "--- the guide's Common Queries"
gm_psql "$PG_WAREHOUSE_PORT" "$PG_WAREHOUSE_DB" -f scripts/demo_queries.sql
say "--- globalmart-batch check"
"$BIN/globalmart-batch" check 2>&1 | sed 's/^\S* *INFO //' || true
cat <<EOT

The stack and the stream are running; the generator and the batch have stopped.
  more events:      $BIN/globalmart-generator --rate 500 --duration 60s
  another batch:    $BIN/globalmart-batch run      (or scripts/setup_cron.sh / scripts/run_loop.sh)
  the warehouse:    PGPASSWORD=warehouse_password psql -h localhost -p 5432 -U globalmart_user -d globalmart_warehouse
  stop the stream:  kill \$(cat $STREAM_PID_FILE)
  stop the stack:   scripts/dev-down.sh   (add --purge to delete the data)
EOT
