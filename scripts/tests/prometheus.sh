#!/usr/bin/env bash
# Checks the monitoring set-up (run by scripts/test.sh after the Rust tests have built the
# binaries, with dev-up's --with-prometheus):
#   1. promtool accepts prometheus/prometheus.yml;
#   2. a Prometheus of its own, scraping a generator, a stream and a `globalmart-batch run
#      --every` started for this check (own topics, databases and ports), sees every target up
#      and our metric names, and every Prometheus query of the dashboards runs.
# It stops only the processes it started, by pid.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
source "$GM_ROOT/scripts/tests/lib.sh"
cd "$GM_ROOT"

command -v prometheus >/dev/null && command -v promtool >/dev/null ||
    die "prometheus and promtool are missing: run scripts/dev-up.sh --with-prometheus"
BIN=$GM_BIN
ID=gm_prom_check_$$
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    gm_psql "$PG_REALTIME_PORT" postgres -c "DROP DATABASE IF EXISTS $ID WITH (FORCE)" >/dev/null 2>&1 || true
    gm_psql "$PG_WAREHOUSE_PORT" postgres -c "DROP DATABASE IF EXISTS $ID WITH (FORCE)" >/dev/null 2>&1 || true
    kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --delete --topic "$ID-.*" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

check "promtool accepts prometheus/prometheus.yml" promtool check config prometheus/prometheus.yml

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
GEN_PORT=$(free_port) STREAM_PORT=$(free_port) BATCH_PORT=$(free_port) PROM_PORT=$(free_port)
gm_psql "$PG_REALTIME_PORT" postgres -c "CREATE DATABASE $ID" >/dev/null
gm_psql "$PG_WAREHOUSE_PORT" postgres -c "CREATE DATABASE $ID" >/dev/null
for topic in "${GM_EVENT_TOPICS[@]}" "${GM_COMPACTED_TOPICS[@]}"; do
    kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --create \
        --topic "$ID-$topic" --partitions "$GM_PARTITIONS" --replication-factor 1 >/dev/null
done
export KAFKA_TOPIC_PREFIX="$ID-" POSTGRES_REALTIME_DB=$ID POSTGRES_WAREHOUSE_DB=$ID
export STREAM_CONSUMER_GROUP=$ID GENERATOR_STATS_INTERVAL=1h RUST_LOG=warn
METRICS_ADDR=127.0.0.1:$GEN_PORT "$BIN/globalmart-generator" --rate 20 >"$WORK/generator.log" 2>&1 &
PIDS+=($!)
METRICS_ADDR=127.0.0.1:$STREAM_PORT "$BIN/globalmart-stream" >"$WORK/stream.log" 2>&1 &
PIDS+=($!)
METRICS_ADDR=127.0.0.1:$BATCH_PORT "$BIN/globalmart-batch" run --every 2s >"$WORK/batch.log" 2>&1 &
PIDS+=($!)
# Our scrape configuration, pointed at this check's ports, every second.
sed -e "s/localhost:9090/127.0.0.1:$PROM_PORT/" -e "s/localhost:9101/127.0.0.1:$GEN_PORT/" \
    -e "s/localhost:9102/127.0.0.1:$STREAM_PORT/" -e "s/localhost:9103/127.0.0.1:$BATCH_PORT/" \
    -e "s/scrape_interval: 5s/scrape_interval: 1s/" prometheus/prometheus.yml >"$WORK/prometheus.yml"
prometheus --config.file="$WORK/prometheus.yml" --web.listen-address="127.0.0.1:$PROM_PORT" \
    --storage.tsdb.path="$WORK/data" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)

# api PATH: Prometheus' JSON answer to GET /api/v1/PATH.
api() {
    python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
        "http://127.0.0.1:$PROM_PORT/api/v1/$1" 2>/dev/null
}

all_targets_up() {
    local waited=0
    while [ "$waited" -lt 90 ]; do
        if api targets | python3 -c '
import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
jobs = {t["labels"]["job"]: t["health"] for t in targets}
sys.exit(0 if len(jobs) == 4 and all(h == "up" for h in jobs.values()) else 1)'; then
            return 0
        fi
        sleep 1
        waited=$((waited + 1))
    done
    api targets >"$WORK/targets.json" || true
    return 1
}
check "prometheus, generator, stream and batch targets are all up" all_targets_up

# The names every scrape must show, beside every name the dashboards' queries use: a query naming
# a metric no binary exports would otherwise run fine and show nothing.
METRICS=(globalmart_generator_events_total globalmart_stream_messages_total
    globalmart_stream_end_to_end_seconds_bucket globalmart_stream_consumer_lag
    globalmart_batch_runs_total globalmart_batch_step_seconds)
our_metrics_scraped() {
    local waited=0 missing
    while [ "$waited" -lt 60 ]; do
        missing=$(python3 - "$(api "label/__name__/values")" "${METRICS[@]}" grafana/dashboards/*.json <<'PY'
import json, re, sys
scraped = set(json.loads(sys.argv[1])["data"])
wanted = {a for a in sys.argv[2:] if not a.endswith(".json")}
for path in (a for a in sys.argv[2:] if a.endswith(".json")):
    for panel in json.load(open(path))["panels"]:
        for target in panel.get("targets", []):
            wanted |= set(re.findall(r"\bglobalmart_[a-z0-9_]+", target.get("expr", "")))
print(" ".join(sorted(wanted - scraped)))
PY
        )
        [ -z "$missing" ] && return 0
        sleep 1
        waited=$((waited + 1))
    done
    echo "  not scraped: $missing" >&2
    return 1
}
check "our metric names and every name the dashboards use are scraped" our_metrics_scraped

dashboard_queries_run() {
    python3 - "$PROM_PORT" grafana/dashboards/*.json <<'PY'
import json, sys, urllib.parse, urllib.request
port, files = sys.argv[1], sys.argv[2:]
failed = 0
for path in files:
    for panel in json.load(open(path))["panels"]:
        for target in panel.get("targets", []):
            if "expr" not in target:
                continue
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": target["expr"]})
            answer = json.load(urllib.request.urlopen(url, timeout=5))
            if answer.get("status") != "success":
                print(f"  {panel['title']}: {answer}")
                failed += 1
sys.exit(1 if failed else 0)
PY
}
check "every Prometheus query of the dashboards runs" dashboard_queries_run

if [ "$FAILED" -gt 0 ]; then
    for log in "$WORK"/*.log "$WORK"/targets.json; do
        [ -f "$log" ] && { say "--- $log"; tail -n 15 "$log"; }
    done
fi
finish "monitoring"
