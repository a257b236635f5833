#!/usr/bin/env bash
# Benchmarks (docs/PERFORMANCE.md): builds in release, measures our figures and
# their floors in the same run on this machine, and prints one line per figure:
#   BENCH <name> <value> <unit> floor=<value> ratio=<value>
# ratio is 1.0 at the floor and higher is better (value/floor for rates).
#
#   scripts/bench.sh generator   events/s built and serialised; events/s delivered to the local
#                                broker with acks=all vs kcat -P of the same messages; at
#                                --profile course (10M users), the catalogue's first publication
#                                and a day's backfill vs kcat -P, peak memory, a restart's
#                                seconds; rate accuracy from 10 to 50,000 events/s
#   scripts/bench.sh stream      events/s from the topics into the realtime tables vs psql \copy
#                                of the same rows into the same tables; end-to-end latency
#                                p50/p99 at 500 and 5,000 events/s (goal: p99 under 250 ms)
#   scripts/bench.sh batch       seconds for a full warehouse build from 1,000,000 events and
#                                for an incremental run after 150,000 more (5 minutes at 500
#                                events/s) vs COPY out of the source rows plus COPY in of the
#                                fact rows
#   scripts/bench.sh scale       a month at --profile course (BENCH_SCALE_DAYS, default 30): the
#                                stream's events/s (and rows inserted/s, the floor's unit) per
#                                tenth of the backfill vs psql \copy; the seconds of the same
#                                increment (ETL, analytics; the median of three in a row) after 1,
#                                7 and 30 days of history, the batch's peak memory, the
#                                databases' sizes
#   scripts/bench.sh all         every benchmark but scale
# BENCH_GENERATOR_EVENTS (default 1000000), BENCH_STREAM_EVENTS (default 300000),
# BENCH_COURSE_DAYS (default 1) the days of the --profile course backfill,
# BENCH_BATCH_EVENTS (default 1000000) and BENCH_BATCH_INCREMENTAL_EVENTS (default 150000) set
# the number of events of the runs, BENCH_ROUNDS (default 3) how many alternating runs of the
# generator's delivery and the stream's ingest figures and their floors count.
# BENCH_SCALE_DAYS (default 30) the days of history of `scale`, BENCH_SCALE_INCREMENT_EVENTS
# (default 150000) the events of its increment; BENCH_SCALE_KEEP=1 keeps its databases and
# topics at the end (their names are printed), to look into a month of history without making
# it again.
# BENCH_STREAM_BASELINE=<a globalmart-stream binary> also runs that build on the same backlog in
# every round (stream_ingest_baseline): a change measured against the build before it, side by
# side, since the floors drift between runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$GM_ROOT"
require_cargo

TARGET=${1:-all}
WORK=$(mktemp -d)
# Commands that undo what a benchmark set up (topics, databases, processes), run at exit.
CLEANUP=()
# The run's own logs (generator, stream, batch) are kept in $GM_LOGS/bench-last: the figures
# of a 40-minute scale run are no use without the lines that say where its time went.
KEPT=$GM_LOGS/bench-last
cleanup() {
    local undo
    for undo in "${CLEANUP[@]}"; do
        eval "$undo" >/dev/null 2>&1 || true
    done
    if compgen -G "$WORK/*.log" >/dev/null; then
        { rm -rf "$KEPT" && mkdir -p "$KEPT" && cp "$WORK"/*.log "$WORK"/scale-samples "$KEPT"/; } 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# bench NAME VALUE UNIT FLOOR: prints the line (rates: ratio = value / floor).
bench() {
    awk -v n="$1" -v v="$2" -v u="$3" -v f="$4" \
        'BEGIN { printf "BENCH %s %.0f %s floor=%.0f ratio=%.2f\n", n, v, u, f, (f > 0 ? v / f : 0) }'
}

# bench_time NAME VALUE UNIT FLOOR: the same where lower is better, durations and memory
# (ratio = floor / value).
bench_time() {
    awk -v n="$1" -v v="$2" -v u="$3" -v f="$4" \
        'BEGIN { printf "BENCH %s %.1f %s floor=%.1f ratio=%.2f\n", n, v, u, f, (v > 0 ? f / v : 0) }'
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
# best A B: the larger of two numbers.
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a ? b : a) }'; }
# median N...: the middle of the numbers (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The exact rate in a generator summary ("generated: N events in S s (R/s)") in file $1.
generated_rate() {
    sed -n 's/.*generated: [0-9]* events in [0-9.]* s (\([0-9]*\)\/s).*/\1/p' "$1" | tail -n 1
}

bench_generator() {
    local events=${BENCH_GENERATOR_EVENTS:-1000000}
    say "== generator: release build"
    gm_build_release
    local gen=$GM_RELEASE_BIN/globalmart-generator
    local quiet=(--stats-interval 1h)
    export METRICS_ADDR=127.0.0.1:0 RUST_LOG=warn

    say "== generator: $events events built and serialised (--dry-run to /dev/null, no broker)"
    RUST_LOG=info "$gen" --dry-run --rate max --count "$events" --seed 1 "${quiet[@]}" \
        >/dev/null 2>"$WORK/build.log"
    # No outside tool builds these events: the figure is set against the issue's goal.
    bench generator_build "$(generated_rate "$WORK/build.log")" events/s 1000000
    say "   (floor for generator_build: the goal of 1,000,000 events/s, not a measured tool)"

    scripts/dev-up.sh >/dev/null
    local prefix="bench-$$-" topic
    say "== generator: delivery to $KAFKA_BOOTSTRAP (acks=all), topics ${prefix}*"
    bench_topics "$prefix" floor

    # Floor: kcat -P of the same pre-built messages (key<TAB>value), idempotent, acks=all, lz4.
    "$gen" --dry-run --rate max --count "$events" --seed 1 "${quiet[@]}" | tsv >"$WORK/messages.tsv"
    local messages round best_floor=0 best_ours=0 rate
    messages=$(wc -l <"$WORK/messages.tsv")
    # Both sides share the machine with the broker, and one run of each swings by half; so
    # they take turns, ROUNDS times, and the best run of each side counts.
    for round in $(seq 1 "${BENCH_ROUNDS:-3}"); do
        rate=$(kcat_rate "$WORK/messages.tsv" "${prefix}floor")
        best_floor=$(best "$best_floor" "$rate")

        # Ours: generate and deliver the same records (same seed and count), until every one
        # is acknowledged.
        start=$(now)
        RUST_LOG=info "$gen" --rate max --count "$events" --seed 1 --kafka-topic-prefix "$prefix" "${quiet[@]}" \
            2>"$WORK/deliver.log" || { tail -n 20 "$WORK/deliver.log"; die "the generator failed"; }
        end=$(now)
        grep -q " 0 failed, 0 undelivered" "$WORK/deliver.log" || die "records were lost: $(grep 'sent,' "$WORK/deliver.log")"
        rate=$(awk -v m="$messages" -v t="$(elapsed "$start" "$end")" 'BEGIN { print m / t }')
        best_ours=$(best "$best_ours" "$rate")
        say "   round $round: kcat -P $(printf '%.0f' "$best_floor") best so far, generator $(printf '%.0f' "$rate")"
    done
    bench generator_deliver "$best_ours" events/s "$best_floor"

    bench_generator_course "$gen" "$prefix"

    say "== generator: rate accuracy over 10 s (--dry-run, so the broker does not pace it)"
    local rate
    for rate in 10 100 1000 10000 50000; do
        RUST_LOG=info "$gen" --dry-run --rate "$rate" --duration 10s "${quiet[@]}" >/dev/null 2>"$WORK/rate.log"
        bench "generator_rate_$rate" "$(generated_rate "$WORK/rate.log")" events/s "$rate"
    done
}

# kcat_rate FILE TOPIC: records/s of kcat -P sending FILE (key<TAB>value lines) to TOPIC with the
# generator's producer settings (idempotent, acks=all, lz4).
kcat_rate() {
    local start end
    start=$(now)
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$2" -K $'\t' -z lz4 \
        -X enable.idempotence=true -X acks=all -X linger.ms=5 -X queue.buffering.max.messages=500000 \
        <"$1"
    end=$(now)
    awk -v m="$(wc -l <"$1")" -v t="$(elapsed "$start" "$end")" 'BEGIN { print m / t }'
}

# tsv: the generator's --dry-run lines (stdin) as kcat's key<TAB>value lines (stdout).
tsv() {
    python3 -c '
import json, sys
for line in sys.stdin:
    record = json.loads(line)
    sys.stdout.write(record["key"] + "\t" + json.dumps(record["value"], separators=(",", ":")) + "\n")
'
}

# bench_generator_course GEN PREFIX: --profile course (10,000,000 users, 250,000 products,
# 100,000 orders a day): the first publication of its catalogue and a backfill of
# BENCH_COURSE_DAYS days (default 1, the last full days), each next to kcat -P of the same
# records (about 2.5 GB of text for the catalogue, in the run's temporary directory), best of
# BENCH_ROUNDS alternating runs on fresh topics; the generator's peak memory; a restart, which
# finds the catalogue published.
bench_generator_course() {
    local gen=$1 prefix=$2 days=${BENCH_COURSE_DAYS:-1} catalogue=10250000
    local from to
    from=$(date -u -d "$days days ago" +%F)
    to=$(date -u -d "1 day ago" +%F)
    local course=(--profile course --seed 1 --from "$from" --to "$to" --stats-interval 1h)
    say "== generator: --profile course, catalogue of $catalogue records, backfill $from to $to"
    # The floors' records, exactly the ones the generator publishes, as --dry-run prints them.
    "$gen" --dry-run "${course[@]}" | tsv >"$WORK/course.tsv"
    head -n "$catalogue" "$WORK/course.tsv" >"$WORK/catalogue.tsv"
    tail -n +$((catalogue + 1)) "$WORK/course.tsv" >"$WORK/backfill.tsv"
    rm -f "$WORK/course.tsv"
    local round topics rate catalogue_floor=0 backfill_floor=0 published=0 backfilled=0 memory=0 seconds
    for round in $(seq 1 "${BENCH_ROUNDS:-3}"); do
        catalogue_floor=$(best "$catalogue_floor" "$(kcat_rate "$WORK/catalogue.tsv" "${prefix}floor")")
        backfill_floor=$(best "$backfill_floor" "$(kcat_rate "$WORK/backfill.tsv" "${prefix}floor")")
        # Fresh topics each round: on the last round's, the catalogue would not be published.
        topics="${prefix}course$round-"
        bench_topics "$topics"
        RUST_LOG=info "$gen" "${course[@]}" --kafka-topic-prefix "$topics" 2>"$WORK/course.log" ||
            { tail -n 20 "$WORK/course.log"; die "the generator failed"; }
        grep -q " 0 failed, 0 undelivered" "$WORK/course.log" || die "records were lost: $(grep 'sent,' "$WORK/course.log")"
        rate=$(sed -n 's/.*records acknowledged in [0-9.]* s (\([0-9]*\)\/s.*/\1/p' "$WORK/course.log")
        [ -n "$rate" ] || { tail -n 20 "$WORK/course.log"; die "no publication figure in the generator's log"; }
        published=$(best "$published" "$rate")
        local events
        events=$(sed -n 's/.*backfilled .*: [0-9]* events in [0-9.]* s (\([0-9]*\)\/s).*/\1/p' "$WORK/course.log")
        backfilled=$(best "$backfilled" "$events")
        memory=$(best "$memory" "$(sed -n 's/.*memory: *\([0-9]*\) MiB resident at the peak.*/\1/p' "$WORK/course.log")")
        seconds=$(sed -n 's/.*records acknowledged in \([0-9.]*\) s.*/\1/p' "$WORK/course.log")
        say "   round $round: catalogue $rate/s, backfill $events/s (kcat -P so far: $(printf '%.0f' "$catalogue_floor"), $(printf '%.0f' "$backfill_floor"))"
        [ "$round" = "${BENCH_ROUNDS:-3}" ] || kafka_java org.apache.kafka.tools.TopicCommand \
            --bootstrap-server "$KAFKA_BOOTSTRAP" --delete --topic "$topics.*" >/dev/null 2>&1 || true
    done
    rm -f "$WORK/catalogue.tsv" "$WORK/backfill.tsv"
    bench generator_catalogue_publish_course "$published" records/s "$catalogue_floor"
    bench generator_backfill_course "$backfilled" events/s "$backfill_floor"
    bench_time generator_peak_memory_course "$memory" MiB 1024
    say "   (floor for generator_peak_memory_course: the goal of 1 GiB, not a measured tool; the highest of the rounds)"

    # A restart of the last round's shop: the catalogue is found published, one event follows.
    local start end
    start=$(now)
    RUST_LOG=info "$gen" "${course[@]}" --count 1 --kafka-topic-prefix "$topics" 2>"$WORK/restart.log" ||
        { tail -n 20 "$WORK/restart.log"; die "the generator failed on restart"; }
    end=$(now)
    grep -q "not published again" "$WORK/restart.log" || die "the restart published the catalogue again"
    bench_time generator_restart_course "$(elapsed "$start" "$end")" s "$seconds"
    say "   (floor for generator_restart_course: the last publication's seconds, which a restart saves)"
}

# bench_topics PREFIX [EXTRA...]: creates the platform topics (and EXTRA ones) under PREFIX,
# deleted again when the benchmark exits.
bench_topics() {
    local prefix=$1 topic
    shift
    for topic in "${GM_EVENT_TOPICS[@]}" "${GM_COMPACTED_TOPICS[@]}" "$@"; do
        kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --create \
            --topic "$prefix$topic" --partitions "$GM_PARTITIONS" --replication-factor 1 >/dev/null
    done
    CLEANUP+=("kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server $KAFKA_BOOTSTRAP --delete --topic '$prefix.*'")
}

# The tables the stream writes, in the order the floor loads them.
STREAM_TABLES=(transactions product_view_events cart_events products users product_history user_history dead_letter_events)

# floor_partitions DB FIRST: the raw tables' day partitions of realtime database DB from day
# FIRST to tomorrow, made before a floor's timed load as the stream makes them before its
# transactions.
floor_partitions() {
    gm_psql "$PG_REALTIME_PORT" "$1" -c "SELECT raw_partitions_ensure(ARRAY(
        SELECT generate_series(DATE '$2', current_date + 1, interval '1 day')::date))" >/dev/null
}

# old_days DB FROM TO: day partitions FROM to TO days ago in DB's raw tables, each holding a copy
# of up to 20,000 of the newest transaction lines, not loaded by the warehouse yet (raw
# retention keeps them until `loaded_all`).
old_days() {
    local db=$1 columns shifted
    columns=$(written_columns "$PG_REALTIME_PORT" "$db" transactions)
    shifted=${columns//\"timestamp\"/\"timestamp\" - d * interval \'1 day\'}
    gm_psql "$PG_REALTIME_PORT" "$db" -c "SELECT raw_partitions_ensure(ARRAY(
            SELECT current_date - d FROM generate_series($3, $2) d))" \
        -c "INSERT INTO transactions ($columns)
            SELECT $shifted FROM (SELECT * FROM transactions ORDER BY ingest_seq DESC LIMIT 20000) t,
                generate_series($3, $2) d" \
        >/dev/null
}

# loaded_all DB: the warehouse marked as having loaded every raw row of DB so far: raw retention
# may then drop the old days.
loaded_all() {
    gm_psql "$PG_REALTIME_PORT" "$1" -c "INSERT INTO warehouse_loaded (source_table, last_ingest_seq)
            VALUES ('transactions', (SELECT max(ingest_seq) FROM transactions)),
                ('product_view_events', (SELECT max(ingest_seq) FROM product_view_events)),
                ('cart_events', (SELECT max(ingest_seq) FROM cart_events))
            ON CONFLICT (source_table) DO UPDATE SET last_ingest_seq = EXCLUDED.last_ingest_seq" >/dev/null
}

# copy_out PORT DB TABLE LOAD [REST]: TABLE's written columns of the rows `SELECT ... FROM TABLE
# REST` picks, copied out of DB on PORT into $WORK/TABLE.copy, and the \copy that loads them
# back appended to the psql script LOAD (a floor's timed load).
copy_out() {
    local port=$1 db=$2 table=$3 load=$4 rest=${5:-} columns
    columns=$(written_columns "$port" "$db" "$table")
    gm_psql "$port" "$db" -c "\\copy (SELECT $columns FROM $table $rest) TO '$WORK/$table.copy'"
    echo "\\copy $table ($columns) FROM '$WORK/$table.copy'" >>"$load"
}

# The columns written to table $3 of database $2 on port $1 (not the ones the database fills).
written_columns() {
    gm_psql "$1" "$2" -At -c "SELECT string_agg(quote_ident(column_name), ',' ORDER BY ordinal_position)
        FROM information_schema.columns WHERE table_name = '$3' AND is_identity = 'NO'
        AND column_name NOT IN ('created_at', 'received_at')"
}

# Row counts of the stream's tables in database $1, one "table count" per line.
stream_rows() {
    local table
    for table in "${STREAM_TABLES[@]}"; do
        printf '%s %s\n' "$table" "$(gm_psql "$PG_REALTIME_PORT" "$1" -At -c "SELECT count(*) FROM $table")"
    done
}

# The /metrics page served on localhost:$1.
scrape() {
    python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
        "http://127.0.0.1:$1/metrics" || die "nothing answered on http://127.0.0.1:$1/metrics"
}

# p50 and p99 in ms of the end-to-end histogram between two /metrics scrapes $1 and $2,
# interpolated within a bucket as Prometheus' histogram_quantile does.
latency_quantiles() {
    python3 - "$1" "$2" <<'PY'
import re, sys
def buckets(path):
    found = {}
    for line in open(path):
        m = re.match(r'globalmart_stream_end_to_end_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            found[float(m.group(1))] = float(m.group(2))
    return found
before, after = buckets(sys.argv[1]), buckets(sys.argv[2])
bounds = sorted(after)
counts = [after[b] - before.get(b, 0) for b in bounds]
total = counts[-1]
if total <= 0:
    sys.exit("no event was saved between the two scrapes")
def quantile(q):
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in zip(bounds, counts):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(cumulative - below, 1)
        lower, below = bound, cumulative
    return lower
print(f"{quantile(0.5) * 1000:.1f} {quantile(0.99) * 1000:.1f} {int(total)}")
PY
}

bench_stream() {
    local events=${BENCH_STREAM_EVENTS:-300000}
    say "== stream: release build"
    gm_build_release
    local gen=$GM_RELEASE_BIN/globalmart-generator
    local stream=$GM_RELEASE_BIN/globalmart-stream
    scripts/dev-up.sh >/dev/null

    local prefix="bench-stream-$$-" db="gm_bench_stream_$$" floor_db="gm_bench_floor_$$"
    bench_topics "$prefix"
    gm_psql "$PG_REALTIME_PORT" postgres -c "CREATE DATABASE $db" -c "CREATE DATABASE $floor_db"
    CLEANUP+=("gm_psql $PG_REALTIME_PORT postgres -c 'DROP DATABASE IF EXISTS $db WITH (FORCE)' -c 'DROP DATABASE IF EXISTS $floor_db WITH (FORCE)'")
    local metrics_port
    metrics_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    export KAFKA_TOPIC_PREFIX=$prefix POSTGRES_REALTIME_DB=$db STREAM_CONSUMER_GROUP=bench RUST_LOG=warn
    export GENERATOR_STATS_INTERVAL=1h METRICS_ADDR=127.0.0.1:0

    say "== stream: $events events into ${prefix}*, then saved from the backlog into $db"
    "$gen" --rate max --count "$events" --seed 1 2>"$WORK/backlog.log" || { tail -n 20 "$WORK/backlog.log"; die "the generator failed"; }
    # Like the generator's delivery figure: both sides take turns, the best run of each counts.
    local round summary messages rate best=0 best_floor=0 best_baseline=0 load="$WORK/floor.sql" start end floor
    for round in $(seq 1 "${BENCH_ROUNDS:-3}"); do
        # The baseline first: the floor is built from the rows our run leaves in $db.
        if [ -n "${BENCH_STREAM_BASELINE:-}" ]; then
            gm_psql "$PG_REALTIME_PORT" postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
            RUST_LOG=info "$BENCH_STREAM_BASELINE" --exit-when-idle 1 2>"$WORK/baseline.log" || { tail -n 20 "$WORK/baseline.log"; die "the baseline stream failed"; }
            local baseline
            baseline=$(grep 'saved: ' "$WORK/baseline.log" | tail -n 1)
            say "   round $round: baseline ${baseline#*saved: }"
            baseline=$(sed -n 's/.*saved: [0-9]* messages in [0-9.]* s (\([0-9]*\)\/s.*/\1/p' <<<"$baseline")
            best_baseline=$(best "$best_baseline" "$baseline")
        fi
        gm_psql "$PG_REALTIME_PORT" postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
        RUST_LOG=info "$stream" --exit-when-idle 1 2>"$WORK/ingest.log" || { tail -n 20 "$WORK/ingest.log"; die "the stream failed"; }
        summary=$(grep 'saved: ' "$WORK/ingest.log" | tail -n 1)
        messages=$(sed -n 's/.*saved: \([0-9]*\) messages.*/\1/p' <<<"$summary")
        rate=$(sed -n 's/.*saved: [0-9]* messages in [0-9.]* s (\([0-9]*\)\/s.*/\1/p' <<<"$summary")
        best=$(best "$best" "$rate")
        if [ "$round" = 1 ]; then
            say "   rows: $(stream_rows "$db" | tr '\n' ' ')"
            # Floor: the rows the stream wrote, copied out, then \copy'd by psql into the same
            # schema (same columns, keys and indexes) in one transaction.
            local table
            echo "BEGIN;" >"$load"
            for table in "${STREAM_TABLES[@]}"; do
                copy_out "$PG_REALTIME_PORT" "$db" "$table" "$load"
            done
            echo "COMMIT;" >>"$load"
        fi
        gm_psql "$PG_REALTIME_PORT" postgres -c "DROP DATABASE IF EXISTS $floor_db WITH (FORCE)" -c "CREATE DATABASE $floor_db"
        gm_migrate "$PG_REALTIME_PORT" "$floor_db" realtime >/dev/null
        floor_partitions "$floor_db" "$(date -u -d yesterday +%F)"
        start=$(now)
        gm_psql "$PG_REALTIME_PORT" "$floor_db" -f "$load"
        end=$(now)
        floor=$(awk -v m="$messages" -v t="$(elapsed "$start" "$end")" 'BEGIN { print m / t }')
        best_floor=$(best "$best_floor" "$floor")
        [ "$(stream_rows "$db")" = "$(stream_rows "$floor_db")" ] || die "the floor did not load the same rows"
        say "   round $round: stream ${summary#*saved: }"
        say "            psql \\copy of the same rows: $(printf '%.2f' "$(elapsed "$start" "$end")") s ($(printf '%.0f' "$floor")/s)"
    done
    bench stream_ingest "$best" events/s "$best_floor"
    if [ -n "${BENCH_STREAM_BASELINE:-}" ]; then
        bench stream_ingest_baseline "$best_baseline" events/s "$best_floor"
        say "   (this build / the baseline: $(awk -v a="$best" -v b="$best_baseline" 'BEGIN { printf "%.3f", a / b }'))"
    fi

    say "== stream: end-to-end latency (event timestamp to row committed), steady state, with"
    say "   housekeeping and raw retention dropping old days in every window"
    # Retention every 10 s (the first round 10 s after start), sweeps every second.
    STREAM_RAW_RETENTION_INTERVAL=10s STREAM_SWEEP_INTERVAL=1s METRICS_ADDR=127.0.0.1:$metrics_port \
        RUST_LOG=info "$stream" 2>"$WORK/latency.log" &
    local stream_pid=$! target old=19
    CLEANUP+=("kill $stream_pid")
    for target in 500 5000; do
        # Five days older than the retention, made before the generator starts (the 100,000 rows'
        # INSERT is the benchmark's setup, not the stream's work) and marked loaded by the
        # warehouse as the window starts: the next round of retention drops them inside it.
        old_days "$db" "$old" $((old - 4))
        old=$((old - 5))
        # The INSERT's writes (WAL, dirty buffers) settle before the window's traffic starts.
        sleep 3
        # The first 5 s are left out: a generator starts by publishing its whole catalogue.
        "$gen" --rate "$target" --duration 35s 2>"$WORK/latency-gen.log" &
        local gen_pid=$!
        sleep 5
        loaded_all "$db"
        scrape "$metrics_port" >"$WORK/before.prom"
        wait "$gen_pid" || { tail -n 20 "$WORK/latency-gen.log"; die "the generator failed"; }
        sleep 1
        scrape "$metrics_port" >"$WORK/after.prom"
        local p50 p99 observed
        read -r p50 p99 observed < <(latency_quantiles "$WORK/before.prom" "$WORK/after.prom")
        say "   $target events/s: $observed events over 30 s"
        bench_time "stream_latency_p50_$target" "$p50" ms 250
        bench_time "stream_latency_p99_$target" "$p99" ms 250
    done
    say "   (floor for the latency figures: the goal of 250 ms, not a measured tool)"
    local dropped
    dropped=$(grep -c 'RawRetention\] dropped 5 days' "$WORK/latency.log" || true)
    say "   raw retention dropped 5 old days in $dropped of the 2 windows"
    [ "$dropped" = 2 ] || die "raw retention did not drop the old days: $(grep -i retention "$WORK/latency.log" | tail -n 3)"
    kill "$stream_pid"
    wait "$stream_pid" || die "the stream did not stop cleanly: $(tail -n 5 "$WORK/latency.log")"
}

# The realtime tables the ETL reads, and the warehouse tables it fills with their identity column.
BATCH_SOURCES=(product_history user_history transactions product_view_events cart_events)
BATCH_DIMENSIONS=(dim_date:date_id dim_products:product_id_pk dim_customers:customer_id)
BATCH_FACTS=(fact_sales:sale_id fact_product_views:view_id fact_cart_events:cart_event_id)

# release_stack NAME: the release build, the local stack up, and the binaries as $GEN, $STREAM
# and $BATCH.
release_stack() {
    say "== $1: release build"
    gm_build_release
    GEN=$GM_RELEASE_BIN/globalmart-generator
    STREAM=$GM_RELEASE_BIN/globalmart-stream
    BATCH=$GM_RELEASE_BIN/globalmart-batch
    scripts/dev-up.sh >/dev/null
}

# realtime_load EVENTS: the generator's events into the benchmark's topics, saved by the stream
# into the benchmark's realtime database. No seed: the default shop, new events each time.
realtime_load() {
    "$GEN" --rate max --count "$1" 2>"$WORK/gen.log" || { tail -n 20 "$WORK/gen.log"; die "the generator failed"; }
    RUST_LOG=info "$STREAM" --exit-when-idle 1 2>"$WORK/stream.log" || { tail -n 20 "$WORK/stream.log"; die "the stream failed"; }
    say "   stream $(grep 'saved: ' "$WORK/stream.log" | tail -n 1 | sed 's/.*saved: //')"
}

# marks PORT DB TABLE:COLUMN...: "table max" per table, the highest value of COLUMN in TABLE.
marks() {
    local port=$1 db=$2 pair value
    shift 2
    for pair in "$@"; do
        value=$(gm_psql "$port" "$db" -At -c "SELECT coalesce(max(${pair#*:}), 0) FROM ${pair%%:*}") ||
            die "could not read the mark of ${pair%%:*} in $db"
        printf '%s %s\n' "${pair%%:*}" "$value"
    done
}

# mark FILE TABLE: TABLE's value in a marks file.
mark() { awk -v t="$2" '$1 == t { print $2 }' "$1"; }

# batch_floor MARKS: seconds for the floor of one ETL run: COPY out (psql \copy) of the source
# rows past the realtime marks, plus COPY in of the fact rows the run added (past the warehouse
# marks) into the floor warehouse, in one transaction. The dimension rows those facts point at
# and the facts' day partitions are made first, outside the timing (the floor's dimensions are
# plain copies: the rows a run expired stay current there, so they have no one-current-row
# index).
batch_floor() {
    local marks=$1 pair table key start end out in days
    start=$(now)
    for table in "${BATCH_SOURCES[@]}"; do
        gm_psql "$PG_REALTIME_PORT" "$BATCH_RT" -c "\\copy (SELECT * FROM $table WHERE ingest_seq > $(mark "$marks" "$table")) TO '$WORK/source.copy'"
    done
    end=$(now)
    out=$(elapsed "$start" "$end")
    for pair in "${BATCH_DIMENSIONS[@]}"; do
        table=${pair%%:*} key=${pair#*:}
        gm_psql "$PG_WAREHOUSE_PORT" "$BATCH_WH" -c "\\copy (SELECT * FROM $table WHERE $key > $(mark "$marks" "$table")) TO '$WORK/$table.copy'"
        gm_psql "$PG_WAREHOUSE_PORT" "$BATCH_FLOOR" -c "\\copy $table FROM '$WORK/$table.copy'"
    done
    # The facts' day partitions too (sql/warehouse/V8__facts_by_day.sql), those the run has.
    days=$(gm_psql "$PG_WAREHOUSE_PORT" "$BATCH_WH" -At -c "SELECT string_agg(right(c.relname, 8), ',')
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'fact_sales'::regclass")
    gm_psql "$PG_WAREHOUSE_PORT" "$BATCH_FLOOR" -c "SELECT fact_partitions_ensure(ARRAY(
        SELECT to_date(d, 'YYYYMMDD') FROM unnest(string_to_array('$days', ',')) d))" >/dev/null
    echo "BEGIN;" >"$WORK/facts.sql"
    for pair in "${BATCH_FACTS[@]}"; do
        table=${pair%%:*} key=${pair#*:}
        copy_out "$PG_WAREHOUSE_PORT" "$BATCH_WH" "$table" "$WORK/facts.sql" "WHERE $key > $(mark "$marks" "$table")"
    done
    echo "COMMIT;" >>"$WORK/facts.sql"
    start=$(now)
    gm_psql "$PG_WAREHOUSE_PORT" "$BATCH_FLOOR" -f "$WORK/facts.sql"
    end=$(now)
    in=$(elapsed "$start" "$end")
    say "   floor: COPY out of the source rows $(printf '%.2f' "$out") s + COPY in of the fact rows $(printf '%.2f' "$in") s" >&2
    awk -v a="$out" -v b="$in" 'BEGIN { print a + b }'
}

# etl_figures LOG: each table's rows and load time from the log of a `globalmart-batch` run.
etl_figures() {
    grep -E 'Extracted|Loaded' "$1" | sed 's/^.*INFO  */   /' || true
    # Each chunk's steps, where the run logged them (the scale bench's runs do).
    grep -E ' chunk: ' "$1" | sed -E 's/^.*DEBUG [^ ]* *chunk: (.*) table="?([a-z_]*)"? rows=([0-9]*).*$/     \2, \3 rows: \1/' || true
}

# batch_run LOG: seconds for one `globalmart-batch etl`, its figures shown.
batch_run() {
    local start end
    start=$(now)
    RUST_LOG=info "$BATCH" etl 2>"$1" || { tail -n 20 "$1"; die "the batch failed"; }
    end=$(now)
    etl_figures "$1" >&2
    elapsed "$start" "$end"
}

bench_batch() {
    local events=${BENCH_BATCH_EVENTS:-1000000} more=${BENCH_BATCH_INCREMENTAL_EVENTS:-150000}
    release_stack batch

    local prefix="bench-batch-$$-"
    BATCH_RT="gm_bench_batch_$$" BATCH_WH="gm_bench_batch_$$" BATCH_FLOOR="gm_bench_batch_floor_$$"
    bench_topics "$prefix"
    gm_psql "$PG_REALTIME_PORT" postgres -c "CREATE DATABASE $BATCH_RT"
    gm_psql "$PG_WAREHOUSE_PORT" postgres -c "CREATE DATABASE $BATCH_WH" -c "CREATE DATABASE $BATCH_FLOOR"
    CLEANUP+=("gm_psql $PG_REALTIME_PORT postgres -c 'DROP DATABASE IF EXISTS $BATCH_RT WITH (FORCE)'")
    CLEANUP+=("gm_psql $PG_WAREHOUSE_PORT postgres -c 'DROP DATABASE IF EXISTS $BATCH_WH WITH (FORCE)' -c 'DROP DATABASE IF EXISTS $BATCH_FLOOR WITH (FORCE)'")
    # Both warehouses get the schema first; the floor's dimensions take their keys as copied.
    local pair
    gm_migrate "$PG_WAREHOUSE_PORT" "$BATCH_WH" warehouse >/dev/null
    gm_migrate "$PG_WAREHOUSE_PORT" "$BATCH_FLOOR" warehouse >/dev/null
    for pair in "${BATCH_DIMENSIONS[@]:1}"; do
        gm_psql "$PG_WAREHOUSE_PORT" "$BATCH_FLOOR" -c "ALTER TABLE ${pair%%:*} ALTER COLUMN ${pair#*:} DROP IDENTITY" \
            -c "DROP INDEX uq_${pair%%:*}_current"
    done
    export KAFKA_TOPIC_PREFIX=$prefix POSTGRES_REALTIME_DB=$BATCH_RT POSTGRES_WAREHOUSE_DB=$BATCH_WH
    export STREAM_CONSUMER_GROUP=bench-batch RUST_LOG=warn GENERATOR_STATS_INTERVAL=1h METRICS_ADDR=127.0.0.1:0

    say "== batch: full build of the warehouse from $events events (generated, saved by the stream)"
    realtime_load "$events"
    marks "$PG_REALTIME_PORT" "$BATCH_RT" "${BATCH_SOURCES[@]/%/:0}" >"$WORK/marks"
    marks "$PG_WAREHOUSE_PORT" "$BATCH_WH" "${BATCH_DIMENSIONS[@]}" "${BATCH_FACTS[@]}" >>"$WORK/marks"
    local ours floor
    ours=$(batch_run "$WORK/full.log")
    floor=$(batch_floor "$WORK/marks")
    bench_time batch_full "$ours" s "$floor"

    say "== batch: incremental run after $more more events (5 minutes at 500 events/s)"
    marks "$PG_REALTIME_PORT" "$BATCH_RT" "${BATCH_SOURCES[@]/%/:ingest_seq}" >"$WORK/marks"
    marks "$PG_WAREHOUSE_PORT" "$BATCH_WH" "${BATCH_DIMENSIONS[@]}" "${BATCH_FACTS[@]}" >>"$WORK/marks"
    realtime_load "$more"
    ours=$(batch_run "$WORK/incremental.log")
    floor=$(batch_floor "$WORK/marks")
    bench_time batch_incremental "$ours" s "$floor"
}

# Sum of the stream's counter $2 (a metric's name) on the /metrics page in file $1.
counted() {
    awk -v name="$2" '$1 ~ "^" name "([{]|$)" { n += $2 } END { printf "%d\n", n }' "$1"
}

# scale_stream PORT SAMPLES: the stream over the backlog until idle, its consumed-messages and
# inserted-rows counters sampled every second as "active-seconds messages rows" lines appended
# to SAMPLES, continuing the active time of the runs before (the stream's time only, not the
# generator's or the batch's).
scale_stream() {
    local port=$1 samples=$2 offset=0 base=0 base_rows=0 start pid t lines
    if [ -s "$samples" ]; then
        read -r offset base base_rows < <(tail -n 1 "$samples")
    fi
    lines=$(wc -l <"$samples")
    start=$(now)
    METRICS_ADDR=127.0.0.1:$port RUST_LOG=info "$STREAM" --exit-when-idle 5 2>>"$WORK/scale-stream.log" &
    pid=$!
    CLEANUP+=("kill $pid")
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        if python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' \
            "http://127.0.0.1:$port/metrics" >"$WORK/scale.prom" 2>/dev/null; then
            t=$(elapsed "$start" "$(now)")
            awk -v o="$offset" -v t="$t" -v b="$base" -v br="$base_rows" \
                -v n="$(counted "$WORK/scale.prom" globalmart_stream_messages_total)" \
                -v r="$(counted "$WORK/scale.prom" globalmart_stream_rows_inserted_total)" \
                'BEGIN { printf "%.2f %d %d\n", o + t, b + n, br + r }' >>"$samples"
        fi
    done
    wait "$pid" || { tail -n 20 "$WORK/scale-stream.log"; die "the stream failed"; }
    # What follows its last message is not part of its pace: the idle seconds --exit-when-idle
    # waits, the check that everything is saved and the last sweep of abandoned carts before it
    # exits (10-15 s at a part's end, the exit only a one-shot run has). This run's samples are
    # held to the first second that saw its final count, so the next run's time continues from
    # there (counted, those seconds lowered the tenth holding a part's end).
    local active
    active=$(awk -v from="$lines" -v at="$offset" 'NR > from { n = $2; if (n != last) { at = $1; last = n } }
        END { printf "%.2f\n", at }' "$samples")
    awk -v from="$lines" -v active="$active" 'NR > from && $1 > active { $1 = active } { print }' \
        "$samples" >"$samples.tmp"
    mv "$samples.tmp" "$samples"
}

# scale_timed LOG ARGS...: the batch with ARGS; writes "seconds peak-RSS-MiB" to $WORK/timed.
# Called directly, not in a process substitution, so that its failure stops the run (a `die`
# in a subshell ended the subshell only, and the run went on with the log's text as figures).
scale_timed() {
    local log=$1
    shift
    RUST_LOG=info,globalmart_batch::etl=debug /usr/bin/time -f 'TIMED %e %M' "$BATCH" "$@" 2>"$log" || { tail -n 20 "$log"; die "globalmart-batch $* failed"; }
    sed -n 's/^TIMED \([0-9.]*\) \([0-9]*\)$/\1 \2/p' "$log" | awk '{ printf "%s %.0f\n", $1, $2 / 1024 }' >"$WORK/timed"
}

# bench_scale: a month of --profile course history (BENCH_SCALE_DAYS, default 30) backfilled in
# segments that end after day 1, day 7 and the last day; after each, the same increment
# (BENCH_SCALE_INCREMENT_EVENTS, default 150,000 events: 5 minutes at 500 events/s) generated,
# saved, and loaded by a timed `globalmart-batch etl` then `analytics`.
#
# Each point's increments are the first events of a day of their own, one of the three days
# after the history (which ends four days ago), so each point fills an empty day partition as
# the first runs of a day do. Until 2026-12-05 they were events of now, all in today's
# partition: the 30-day point inserted into a partition holding the six increments before it
# (900 k events), history or not, and that alone costs (2026-12-05, one statement by itself):
# 90 k views took 1.0-1.1 s to insert into a partition of 720 k, 0.7-0.8 s into one of 90 k.
bench_scale() {
    local days=${BENCH_SCALE_DAYS:-30} more=${BENCH_SCALE_INCREMENT_EVENTS:-150000}
    [ "$days" -ge 1 ] || die "BENCH_SCALE_DAYS must be 1 or more"
    release_stack scale
    # Room for the run's databases and topics (2026-12-02: 34 GB and 5 GB for 30 days, 10 GB
    # and 2 GB for 1, the catalogue's share): a full disk stops Kafka mid-run.
    local need=$((12 + days)) dir free
    for dir in "$KAFKA_DATA" /var/lib/postgresql; do
        [ -d "$dir" ] || continue
        free=$(df --output=avail -BG "$dir" | tail -n 1 | tr -dc 0-9)
        [ "$free" -ge "$need" ] || die "$days days of history need about $need GB free; $dir's disk has $free GB"
    done
    local begun
    begun=$(now)

    local prefix="bench-scale-$$-" rt="gm_bench_scale_$$" wh="gm_bench_scale_$$" floor_db="gm_bench_scale_floor_$$"
    local undo_from=${#CLEANUP[@]}
    bench_topics "$prefix"
    gm_psql "$PG_REALTIME_PORT" postgres -c "CREATE DATABASE $rt" -c "CREATE DATABASE $floor_db"
    gm_psql "$PG_WAREHOUSE_PORT" postgres -c "CREATE DATABASE $wh"
    CLEANUP+=("gm_psql $PG_REALTIME_PORT postgres -c 'DROP DATABASE IF EXISTS $rt WITH (FORCE)' -c 'DROP DATABASE IF EXISTS $floor_db WITH (FORCE)'")
    CLEANUP+=("gm_psql $PG_WAREHOUSE_PORT postgres -c 'DROP DATABASE IF EXISTS $wh WITH (FORCE)'")
    if [ "${BENCH_SCALE_KEEP:-0}" = 1 ]; then
        # Nothing of the above is undone, whatever the outcome: say what to drop.
        say "   kept at the end (BENCH_SCALE_KEEP=1): realtime and warehouse databases $rt, topics $prefix*;"
        say "   drop them with (after source scripts/lib/common.sh): $(printf '%s; ' "${CLEANUP[@]:$undo_from}")"
        CLEANUP=("${CLEANUP[@]:0:$undo_from}")
    fi
    export KAFKA_TOPIC_PREFIX=$prefix POSTGRES_REALTIME_DB=$rt POSTGRES_WAREHOUSE_DB=$wh
    export STREAM_CONSUMER_GROUP=bench-scale RUST_LOG=warn GENERATOR_STATS_INTERVAL=1h METRICS_ADDR=127.0.0.1:0
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

    local first checkpoints=() part_ends=() cp done_days=0 from to samples="$WORK/scale-samples" backfilled=0 n
    first=$(date -u -d "today - $((days + 3)) days" +%F)
    local last=0
    for cp in 1 7 "$days"; do
        if [ "$cp" -le "$days" ] && [ "$cp" -gt "$last" ]; then
            checkpoints+=("$cp")
            last=$cp
        fi
    done
    : >"$samples"
    local etl analytics rss base_etl="" base_analytics="" point=0
    for cp in "${checkpoints[@]}"; do
        from=$(date -u -d "$first + $done_days days" +%F)
        to=$(date -u -d "$first + $((cp - 1)) days" +%F)
        say "== scale: history days $((done_days + 1))-$cp of $days (--profile course, $from to $to)"
        # The catalogue (10 million users) once, with the first part; the later parts and the
        # increments are other periods of the same shop (the default one: no seed, so each run's
        # events are new and no increment repeats the ids of one before), whose catalogue the
        # topics hold.
        local publish=auto
        [ "$done_days" = 0 ] || publish=skip
        RUST_LOG=info "$GEN" --profile course --catalogue "$publish" --from "$from" --to "$to" 2>"$WORK/scale-gen.log" ||
            { tail -n 20 "$WORK/scale-gen.log"; die "the generator failed"; }
        n=$(sed -n 's/.*backfilled .*: \([0-9]*\) events in .*/\1/p' "$WORK/scale-gen.log" | tail -n 1)
        backfilled=$((backfilled + ${n:-0}))
        say "   generator: $(grep -o 'backfilled .*' "$WORK/scale-gen.log" | tail -n 1)"
        scale_stream "$port" "$samples"
        part_ends+=("$(tail -n 1 "$samples" | awk '{ print $2 }')")
        say "   stream: $(grep 'saved: ' "$WORK/scale-stream.log" | tail -n 1 | sed 's/.*saved: //')"
        # The warehouse catches up with the part (not the increment measured).
        scale_timed "$WORK/scale-catch-up.log" run
        read -r etl rss <"$WORK/timed"
        say "   warehouse: days $((done_days + 1))-$cp loaded and analysed in $(printf '%.1f' "$etl") s, peak $rss MiB"
        done_days=$cp
        # Three increments, the median measured: the scheduled run's increments follow one
        # another, while the first after a catch-up may also pay for what the catch-up left
        # (autovacuum of millions of new rows, a cache full of other days), and one increment
        # alone swings by seconds either way (2026-12-04: the second of two, the figure until
        # then, made the same build's 1-day ETL 5.6 s in one run and 6.9 s in the next). All
        # three are printed.
        #
        # The catch-up's writes are checkpointed first: each point's three runs then meet the
        # database as three runs in a row of the schedule do after a checkpoint (5 minutes
        # apart, checkpoint_timeout 15 minutes: docs/RUNNING.md, "Local stack"), the first
        # paying a full-page image for each page it is the first to change since. Left to the
        # catch-up's WAL, a checkpoint started anywhere among them (2026-12-05: under the
        # 30-day point's first, whose three then paid 4 to 18 thousand images in a statement,
        # where the 1-day point's, the catch-up having paid them, paid hardly any).
        local round etls=() analyses=() cp_peak=0 day refused
        refused=$(gm_psql "$PG_WAREHOUSE_PORT" postgres -c CHECKPOINT 2>&1) ||
            say "   no CHECKPOINT (${refused//$'\n'/ }; scripts/dev-up.sh grants $PG_USER pg_checkpoint): the runs meet whatever checkpoint the catch-up left"
        day=$(date -u -d "$first + $((days + point)) days" +%F)
        point=$((point + 1))
        for round in first second third; do
            say "== scale: the $round increment after $cp days: the first $more events of $day"
            "$GEN" --profile course --catalogue skip --from "$day" --to "$day" --count "$more" 2>"$WORK/scale-gen.log" ||
                { tail -n 20 "$WORK/scale-gen.log"; die "the generator failed"; }
            # Its own stream run, left out of the backfill's tenths.
            METRICS_ADDR=127.0.0.1:0 "$STREAM" --exit-when-idle 2 2>"$WORK/scale-increment.log" ||
                { tail -n 20 "$WORK/scale-increment.log"; die "the stream failed"; }
            scale_timed "$WORK/scale-etl-$cp.log" etl
            read -r etl rss <"$WORK/timed"
            cp_peak=$(best "$cp_peak" "$rss")
            scale_timed "$WORK/scale-analytics-$cp.log" analytics
            read -r analytics rss <"$WORK/timed"
            cp_peak=$(best "$cp_peak" "$rss")
            etls+=("$etl") analyses+=("$analytics")
            # Where the increment went: each fact's rows and load time, each chunk's steps
            # (extract, prepare, transform, load, commit), each analytics job's start (UTC time
            # of day).
            etl_figures "$WORK/scale-etl-$cp.log"
            grep -E 'Read [0-9,]* rows|Running|Complete' "$WORK/scale-analytics-$cp.log" |
                sed -E 's/^[0-9-]+T([0-9:]{8})\.[0-9]*Z +INFO +/   \1 /' || true
            say "   etl $(printf '%.1f' "$etl") s, analytics $(printf '%.1f' "$analytics") s, peak $cp_peak MiB"
        done
        etl=$(median "${etls[@]}") analytics=$(median "${analyses[@]}")
        say "   the median of the three: etl $(printf '%.1f' "$etl") s, analytics $(printf '%.1f' "$analytics") s"
        base_etl=${base_etl:-$etl} base_analytics=${base_analytics:-$analytics}
        bench_time "scale_increment_etl_after_${cp}d" "$etl" s "$base_etl"
        bench_time "scale_increment_analytics_after_${cp}d" "$analytics" s "$base_analytics"
        # The peak of the point's six runs (until 2026-12-04: of its last run only).
        bench_time "scale_batch_peak_rss_after_${cp}d" "$cp_peak" MiB 1024
    done
    say "   (floors: the same increment after 1 day; goals: ETL ratio 0.77 or more (1.3x), analytics 0.5 or more (2x), peak 1,024 MiB)"

    say "== scale: the COPY floor: the first 1,000,000 rows of the raw tables, psql \\copy into an empty schema"
    local table load="$WORK/scale-floor.sql" start end floor rows=0
    gm_migrate "$PG_REALTIME_PORT" "$floor_db" realtime >/dev/null
    floor_partitions "$floor_db" "$first"
    echo "BEGIN;" >"$load"
    for table in transactions product_view_events cart_events; do
        copy_out "$PG_REALTIME_PORT" "$rt" "$table" "$load" "ORDER BY ingest_seq LIMIT 333334"
        rows=$((rows + $(wc -l <"$WORK/$table.copy")))
    done
    echo "COMMIT;" >>"$load"
    start=$(now)
    gm_psql "$PG_REALTIME_PORT" "$floor_db" -f "$load"
    end=$(now)
    floor=$(awk -v m="$rows" -v t="$(elapsed "$start" "$end")" 'BEGIN { print m / t }')
    say "   $rows rows in $(printf '%.2f' "$(elapsed "$start" "$end")") s"

    # Tenths of what the stream consumed: the backfill's events and the catalogue's records (the
    # counter counts both; tenths of the events alone would end before the last days).
    local tenth messages
    messages=$(tail -n 1 "$samples" | awk '{ print $2 }')
    say "== scale: the stream's pace over each tenth of the backfill's $messages messages ($backfilled events, the rest catalogue records; stream time only)"
    local rows_rate by_rows=""
    while read -r tenth rate rows_rate; do
        bench "scale_stream_tenth_$tenth" "$rate" events/s "$floor"
        by_rows+=" $(awk -v r="$rows_rate" -v f="$floor" 'BEGIN { printf "%.0f (%.2f)", r, r / f }')"
    done < <(awk -v total="$messages" '
        { t[NR] = $1; n[NR] = $2; r[NR] = $3 }
        END {
            k = 1; prev_t = 0; prev_r = 0
            for (i = 1; i <= NR && k <= 10; i++) {
                while (k <= 10 && n[i] >= total * k / 10) {
                    # The time (and the rows inserted by then) the counter crossed k tenths,
                    # interpolated within the sample.
                    lo_t = (i > 1 ? t[i - 1] : 0); lo_n = (i > 1 ? n[i - 1] : 0); lo_r = (i > 1 ? r[i - 1] : 0)
                    frac = (n[i] > lo_n ? (total * k / 10 - lo_n) / (n[i] - lo_n) : 0)
                    at = lo_t + frac * (t[i] - lo_t); rows = lo_r + frac * (r[i] - lo_r)
                    printf "%d %.0f %.0f\n", k, (at > prev_t ? (total / 10) / (at - prev_t) : 0),
                        (at > prev_t ? (rows - prev_r) / (at - prev_t) : 0)
                    prev_t = at; prev_r = rows; k++
                }
            }
        }' "$samples")
    say "   (goals: the last tenth 0.8x the first or better; every tenth 0.7x the COPY floor or better)"
    # A tenth that holds a part's end holds the next stream's start too (not the exit after its
    # last message, see scale_stream); the first tenths are mostly the catalogue's upserts.
    say "   the parts end at tenth $(printf '%s\n' "${part_ends[@]}" | awk -v total="$messages" '{ printf "%s%.2f", (NR > 1 ? ", " : ""), $1 / total * 10 }')"
    # The floor counts rows, the tenths messages: a transaction's message is a row per line
    # (about 1.4 in the course's profile), a catalogue record a version row (besides its upsert).
    say "   rows inserted per second in each tenth (the floor's unit; ratio to the floor):$by_rows"

    local size name port_ db
    for size in "realtime:$PG_REALTIME_PORT:$rt" "warehouse:$PG_WAREHOUSE_PORT:$wh"; do
        IFS=: read -r name port_ db <<<"$size"
        say "   $name database: $(gm_psql "$port_" "$db" -At -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"
    done
    say "   the whole run: $(printf '%.0f' "$(elapsed "$begun" "$(now)")") s for $days days"
}

case "$TARGET" in
    generator) bench_generator ;;
    stream) bench_stream ;;
    batch) bench_batch ;;
    scale) bench_scale ;;
    all)
        bench_generator
        bench_stream
        bench_batch
        ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) die "unknown benchmark: $TARGET (generator, stream, batch, scale or all)" ;;
esac
