#!/usr/bin/env bash
# Checks the local-stack scripts on the running stack (run by scripts/test.sh after dev-up.sh):
#   1. dev-up.sh run again changes nothing;
#   2. dev-down.sh stops what dev-up.sh started;
#   3. dev-up.sh after dev-down.sh brings back the topics, a message written before, and a row
#      written before.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
cd "$GM_ROOT"

source "$GM_ROOT/scripts/tests/lib.sh"

MARK="stack-check-$(date +%s%N)"
TOPIC=gm-stack-check
DB=gm_stack_check
OUT=$GM_LOGS/stack-check.log

second_up_changes_nothing() {
    scripts/dev-up.sh >"$OUT" 2>&1 && grep -q '^changes: none' "$OUT"
}
check "dev-up.sh run twice: the second run changes nothing" second_up_changes_nothing

# Leave a message and a row behind.
kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --create --if-not-exists \
    --topic "$TOPIC" --partitions 1 --replication-factor 1 >>"$OUT" 2>&1
printf '%s\n' "$MARK" | kcat -b "$KAFKA_BOOTSTRAP" -P -t "$TOPIC" -k "$MARK"
gm_psql "$PG_REALTIME_PORT" postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
gm_psql "$PG_REALTIME_PORT" "$DB" -c "CREATE TABLE marks (mark text)" -c "INSERT INTO marks VALUES ('$MARK')"

started_clusters=$(ls "$GM_RUN"/postgres-*.started-by-dev-up 2>/dev/null || true)

everything_dev_up_started_is_stopped() {
    scripts/dev-down.sh >>"$OUT" 2>&1 || return 1
    port_open "$KAFKA_PORT" && return 1
    local marker cluster port
    for marker in $started_clusters; do
        cluster=$(basename "$marker" .started-by-dev-up)
        port=$(pg_lsclusters -h | awk -v c="${cluster#postgres-*-}" '$2 == c { print $3 }')
        pg_isready -q -h localhost -p "$port" && return 1
    done
    return 0
}
check "dev-down.sh stops Kafka and the clusters dev-up.sh started" everything_dev_up_started_is_stopped

up_again() {
    scripts/dev-up.sh >>"$OUT" 2>&1
}
check "dev-up.sh after dev-down.sh succeeds" up_again

all_topics_back() {
    local listing topic
    listing=$(kcat -b "$KAFKA_BOOTSTRAP" -L -m 10)
    for topic in "${GM_EVENT_TOPICS[@]}" "${GM_COMPACTED_TOPICS[@]}"; do
        grep -q "topic \"$topic\" with $GM_PARTITIONS partitions" <<<"$listing" || return 1
    done
}
check "the six topics are back with $GM_PARTITIONS partitions each" all_topics_back

message_kept() {
    kcat -b "$KAFKA_BOOTSTRAP" -C -t "$TOPIC" -o beginning -e -q 2>/dev/null | grep -qx "$MARK"
}
check "a message written before dev-down.sh is still in its topic" message_kept

row_kept() {
    [ "$(gm_psql "$PG_REALTIME_PORT" "$DB" -tAc 'SELECT mark FROM marks')" = "$MARK" ]
}
check "a row written before dev-down.sh is still in its table" row_kept

gm_psql "$PG_REALTIME_PORT" postgres -c "DROP DATABASE IF EXISTS $DB"
kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --delete --topic "$TOPIC" >>"$OUT" 2>&1 || true

finish "stack scripts (details in $OUT)"
