#!/usr/bin/env bash
# Brings up GlobalMart's local stack on a machine without Docker (docs/USER_GUIDE.md, Setup) and prints a
# status table:
#   - PostgreSQL: globalmart_warehouse on 5432 and a second cluster with globalmart_realtime on
#     5433, role globalmart_user with the documented passwords, migrations applied, and the
#     least-privilege login roles globalmart_stream and globalmart_batch;
#   - Apache Kafka (the real broker, single-node KRaft) on localhost:9092 from Maven Central jars
#     cached in ~/.cache/globalmart, with the six topics, 3 partitions each;
#   - kcat, to peek at topics.
# Installs what is missing (Debian packages, Kafka jars). Idempotent: a second run changes
# nothing and says so. Logs: logs/dev-up.log and logs/kafka.log in the repository.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<EOF
usage: scripts/dev-up.sh [--with-prometheus] [--secure] [--help]

Starts PostgreSQL (5432 warehouse, 5433 realtime) and Apache Kafka $KAFKA_VERSION (9092), creates
the databases, role, schemas and topics, and prints a status table. Safe to run again.

  --with-prometheus  also install and start Prometheus on 127.0.0.1:$PROMETHEUS_PORT, scraping the
                     binaries' /metrics as prometheus/prometheus.yml says.
  --secure           the same stack secured as a production one is: a local CA and certificates
                     (scripts/make-certs.sh, in \$GLOBALMART_CACHE/certs), a SASL_SSL listener on
                     localhost:$KAFKA_SECURE_PORT (a client certificate required, and user
                     $KAFKA_SASL_USER by PLAIN, SCRAM-SHA-256 and -512,
                     allowed what scripts/kafka-grant.sh grants the stream and the generator),
                     and PostgreSQL taking TCP connections over TLS only (scram-sha-256). Writes
                     the binaries' settings for it to $GM_SECURE_ENV. Without the flag, a stack
                     made secure before is made plaintext again.

Environment: GLOBALMART_CACHE (default ~/.cache/globalmart) holds the Kafka jars and data.
Stop with scripts/dev-down.sh (add --purge to delete the data too).
EOF
}
WITH_PROMETHEUS=0
SECURE=0
for arg in "$@"; do
    case "$arg" in
        -h | --help) usage; exit 0 ;;
        --with-prometheus) WITH_PROMETHEUS=1 ;;
        --secure) SECURE=1 ;;
        *) usage >&2; die "unknown argument: $arg" ;;
    esac
done

SETUP_LOG=$GM_LOGS/dev-up.log
printf '\n=== dev-up.sh %s ===\n' "$(date -u +%FT%TZ)" >>"$SETUP_LOG"
CHANGES=()
changed() { CHANGES+=("$1"); say "  + $1"; }

# Runs a step's command with its output in logs/dev-up.log; on failure shows the end of it.
logged() {
    if ! "$@" >>"$SETUP_LOG" 2>&1; then
        tail -n 20 "$SETUP_LOG" >&2
        die "failed: $* (full output in $SETUP_LOG)"
    fi
}

# Starts "$@" detached, output appended to log $2, its pid recorded in file $1 (what
# dev-down.sh stops); prints the pid. setsid: it outlives this script and ignores the
# terminal's Ctrl+C.
start_recorded() {
    local pid_file=$1 log=$2
    shift 2
    setsid "$@" >>"$log" 2>&1 </dev/null &
    echo "$!" >"$pid_file"
    echo "$!"
}

# Waits up to $4 seconds for "${@:5}" to succeed while pid $2 lives; otherwise shows the end
# of log $3 and stops, naming $1.
await_ready() {
    local name=$1 pid=$2 log=$3 seconds=$4 i
    shift 4
    for i in $(seq 1 $((seconds * 2))); do
        "$@" && return
        pid_alive "$pid" || break
        sleep 0.5
    done
    tail -n 30 "$log" >&2
    die "$name did not become ready (pid $pid); see $log"
}

# ------------------------------------------------------------------------------------------
# Packages
# ------------------------------------------------------------------------------------------
ensure_packages() {
    local missing=()
    command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
    command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
    command -v kcat >/dev/null 2>&1 || missing+=(kcat)
    command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]} from Debian's packages..."
        logged as_root apt-get update
        logged as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
        changed "installed ${missing[*]}"
    fi
}

# ------------------------------------------------------------------------------------------
# PostgreSQL
# ------------------------------------------------------------------------------------------
PG_MAJOR=""
declare -A PG_NOTE

pg_major() {
    ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1
}

# The Debian cluster name serving $1, if any.
cluster_on_port() {
    pg_lsclusters -h 2>/dev/null | awk -v port="$1" '$3 == port { print $2; exit }'
}

# pg_ctlcluster ACTION ($3: start, restart) of cluster $2 on port $1, then waits until it answers.
cluster_do() {
    local port=$1 cluster=$2 i
    logged as_root pg_ctlcluster "$PG_MAJOR" "$cluster" "$3"
    for i in $(seq 1 60); do
        pg_isready -q -h localhost -p "$port" && return
        sleep 0.5
    done
    die "PostgreSQL on port $port did not become ready after $3; see /var/log/postgresql/postgresql-$PG_MAJOR-$cluster.log"
}

# Makes a PostgreSQL server answer on port $1; creates cluster $2 when nothing is there.
ensure_server() {
    local port=$1 name=$2 cluster
    cluster=$(cluster_on_port "$port")
    if pg_isready -q -h localhost -p "$port"; then
        PG_NOTE[$port]="cluster ${cluster:-(not managed here)}"
        [ -n "$cluster" ] && PG_NOTE[$port]="cluster $PG_MAJOR/$cluster"
        return
    fi
    if port_open "$port"; then
        die "port $port is taken by something that is not PostgreSQL ($(port_owner "$port")); stop it or free the port"
    fi
    if [ -z "$cluster" ]; then
        say "creating PostgreSQL cluster $PG_MAJOR/$name on port $port..."
        logged as_root pg_createcluster "$PG_MAJOR" "$name" --port "$port"
        cluster=$name
        changed "created cluster $PG_MAJOR/$name (port $port)"
    fi
    say "starting PostgreSQL cluster $PG_MAJOR/$cluster on port $port..."
    cluster_do "$port" "$cluster" start
    touch "$GM_RUN/postgres-$PG_MAJOR-$cluster.started-by-dev-up"
    changed "started cluster $PG_MAJOR/$cluster (port $port)"
    PG_NOTE[$port]="cluster $PG_MAJOR/$cluster"
}

# PostgreSQL settings for an ingest-heavy load on our machine kind (docs/RUNNING.md, "Local
# stack"). The defaults (128 MB of shared buffers, a checkpoint per GB of WAL)
# made a month's backfill write mostly full-page images: checkpoints every few seconds, each
# page's first change after one logged whole. Two clusters, Kafka and the binaries share 24 GiB.
PG_SETTINGS=(max_wal_size=8GB checkpoint_timeout=15min wal_compression=lz4
    effective_cache_size=12GB maintenance_work_mem=256MB)
# Shared buffers per cluster: 8 GB for the warehouse, whose 5-minute run touches
# customers all over its customer tables (10 million customers and their running totals,
# several GB after a month: at 4 GB it read them back from the kernel's cache every run), 4 GB
# for the realtime database; on a machine with less than 24 GiB, 35 % and 18 % of its memory.
# Written as SHOW prints them (whole GB as such), so that a rerun finds them set.
shared_buffers() {
    local mb=$(($(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo) * $1 / 100))
    [ "$mb" -lt "$2" ] || mb=$2
    if [ $((mb % 1024)) = 0 ]; then echo "$((mb / 1024))GB"; else echo "${mb}MB"; fi
}
PG_WAREHOUSE_SHARED_BUFFERS=$(shared_buffers 35 8192)
PG_REALTIME_SHARED_BUFFERS=$(shared_buffers 18 4096)

# The settings of PG_SETTINGS and shared_buffers=$2 on the cluster on port $1, when it is
# managed here; restarts it when one needs that (shared_buffers), else reloads.
ensure_pg_settings() {
    local port=$1 cluster setting name value changed_names=() restart
    cluster=$(cluster_on_port "$port")
    [ -n "$cluster" ] || return 0
    for setting in "${PG_SETTINGS[@]}" "shared_buffers=$2"; do
        name=${setting%%=*} value=${setting#*=}
        [ "$(as_postgres psql -X -q -p "$port" -d postgres -tAc "SHOW $name")" = "$value" ] && continue
        as_postgres psql -X -q -p "$port" -d postgres -c "ALTER SYSTEM SET $name = '$value'" >>"$SETUP_LOG"
        changed_names+=("'$name'")
    done
    [ ${#changed_names[@]} -gt 0 ] || return 0
    restart=$(as_postgres psql -X -q -p "$port" -d postgres -tAc "SELECT count(*) FROM pg_settings
        WHERE context = 'postmaster' AND name IN ($(IFS=,; echo "${changed_names[*]}"))")
    if [ "$restart" != 0 ]; then
        say "restarting PostgreSQL cluster $PG_MAJOR/$cluster on port $port for its new settings..."
        cluster_do "$port" "$cluster" restart
    else
        as_postgres psql -X -q -p "$port" -d postgres -c "SELECT pg_reload_conf()" >>"$SETUP_LOG"
    fi
    changed "PostgreSQL on port $port: shared_buffers=$2 ${PG_SETTINGS[*]}"
}

# Role globalmart_user with password $2 and database $3 on port $1.
ensure_role_and_db() {
    local port=$1 password=$2 db=$3 su_ok=1
    as_postgres psql -X -q -p "$port" -d postgres -tAc 'SELECT 1' >/dev/null 2>&1 || su_ok=0
    if [ $su_ok -eq 1 ]; then
        local sql="psql -X -q -v ON_ERROR_STOP=1 -p $port -d postgres -tA"
        if [ -z "$(as_postgres $sql -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" ]; then
            # CREATEDB: the test suite creates a database per test. CREATEROLE: the migrations
            # create the read-only globalmart_reader role for Grafana.
            logged as_postgres $sql -c "CREATE ROLE $PG_USER LOGIN CREATEDB CREATEROLE PASSWORD '$password'"
            changed "created role $PG_USER on port $port"
        elif ! PGPASSWORD=$password psql -X -h localhost -p "$port" -U "$PG_USER" -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
            logged as_postgres $sql -c "ALTER ROLE $PG_USER LOGIN CREATEDB CREATEROLE PASSWORD '$password'"
            changed "reset the password of $PG_USER on port $port"
        fi
        # pg_signal_backend lets the test suite drop its databases WITH (FORCE) while a
        # read-only test client (another role) is still disconnecting; pg_checkpoint lets
        # `scripts/bench.sh scale` start each point's runs after a checkpoint.
        local granted
        for granted in pg_signal_backend pg_checkpoint; do
            [ -z "$(as_postgres $sql -c "SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
                 JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = '$granted' AND u.rolname = '$PG_USER'")" ] || continue
            logged as_postgres $sql -c "GRANT $granted TO $PG_USER"
            changed "granted $granted to $PG_USER on port $port"
        done
        if [ -z "$(as_postgres $sql -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
            logged as_postgres $sql -c "CREATE DATABASE $db OWNER $PG_USER"
            changed "created database $db on port $port"
        fi
    elif ! PGPASSWORD=$password psql -X -h localhost -p "$port" -U "$PG_USER" -d "$db" -tAc 'SELECT 1' >/dev/null 2>&1; then
        die "the PostgreSQL on port $port is not managed here and $PG_USER cannot log in to $db: create the role (password '$password', CREATEDB) and the database there, or free the port"
    fi
}

# Applies the migrations of sql/$3 that database $2 on port $1 lacks (each file runs once per
# database, whether this script or a binary applies it first).
ensure_schema() {
    local applied
    applied=$(gm_migrate "$1" "$2" "$3" 2>>"$SETUP_LOG") || die "migrating $2 failed (details in logs/dev-up.log)"
    [ -z "$applied" ] || { echo "$applied" >>"$SETUP_LOG"; changed "applied sql/$3 migrations to $2: $(echo $applied | sed 's/applied //g')"; }
}

# The binaries' least-privilege login roles, globalmart_stream and globalmart_batch, on the
# cluster on port $1 (scripts/postgres/runtime-logins.sql; after the migrations, which create
# the group roles they join). Skipped on a server not managed here.
ensure_runtime_logins() {
    local port=$1 existed
    as_postgres psql -X -q -p "$port" -d postgres -tAc 'SELECT 1' >/dev/null 2>&1 || return 0
    existed=$(as_postgres psql -X -q -p "$port" -d postgres -tAc "SELECT count(*) FROM pg_roles WHERE rolname IN ('globalmart_stream', 'globalmart_batch')")
    logged as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres \
        -v stream_password="$PG_STREAM_PASSWORD" -v batch_password="$PG_BATCH_PASSWORD" \
        -f "$GM_ROOT/scripts/postgres/runtime-logins.sql"
    [ "$existed" = 2 ] || changed "created the runtime roles globalmart_stream and globalmart_batch on port $port"
}

# TLS for the cluster on port $1 (--secure): our server certificate, and TCP connections
# without TLS refused by a block of pg_hba.conf this script owns; without --secure the block is
# removed (the certificate may stay: plaintext clients are welcome again). Reloads on a change.
ensure_pg_tls() {
    local port=$1 cluster conf_dir hba begin="# globalmart dev-up --secure: begin" end="# globalmart dev-up --secure: end"
    cluster=$(cluster_on_port "$port")
    [ -n "$cluster" ] || { [ "$SECURE" -eq 0 ] && return; die "--secure needs a cluster managed here on port $port"; }
    conf_dir=/etc/postgresql/$PG_MAJOR/$cluster
    hba=$conf_dir/pg_hba.conf
    local has_block=0 reload=0
    as_root grep -qF "$begin" "$hba" && has_block=1
    if [ "$SECURE" -eq 1 ]; then
        local cert=$conf_dir/globalmart-server.pem key=$conf_dir/globalmart-server.key
        if ! cmp -s "$GM_CERTS/server.pem" "$cert" 2>/dev/null; then
            as_root install -o postgres -g postgres -m 644 "$GM_CERTS/server.pem" "$cert"
            as_root install -o postgres -g postgres -m 600 "$GM_CERTS/server.key" "$key"
            as_postgres psql -X -q -p "$port" -d postgres -c "ALTER SYSTEM SET ssl = on" \
                -c "ALTER SYSTEM SET ssl_cert_file = '$cert'" -c "ALTER SYSTEM SET ssl_key_file = '$key'" >>"$SETUP_LOG"
            reload=1
        fi
        if [ $has_block -eq 0 ]; then
            # First in the file: pg_hba.conf takes the first line that matches.
            local tmp
            tmp=$(mktemp)
            { printf '%s\n' "$begin" "hostnossl all all 0.0.0.0/0 reject" "hostnossl all all ::/0 reject" "$end"
              as_root cat "$hba"; } >"$tmp"
            as_root cp "$tmp" "$hba"
            rm -f "$tmp"
            reload=1
        fi
        [ $reload -eq 1 ] && changed "PostgreSQL on port $port: TLS only over TCP (certificate of $GM_CERTS)"
    elif [ $has_block -eq 1 ]; then
        as_root sed -i "/^$begin\$/,/^$end\$/d" "$hba"
        reload=1
        changed "PostgreSQL on port $port: plaintext accepted again"
    fi
    if [ $reload -eq 1 ]; then
        as_postgres psql -X -q -p "$port" -d postgres -c "SELECT pg_reload_conf()" >>"$SETUP_LOG"
    fi
}

# The settings that point the binaries at the secured stack (--secure), for scripts/demo.sh
# --secure and for a shell: `set -a; source $GM_SECURE_ENV; set +a`.
write_secure_env() {
    local rendered
    rendered=$(cat <<EOT
# Written by scripts/dev-up.sh --secure: the binaries' settings for the secured local stack.
KAFKA_BOOTSTRAP_SERVERS=localhost:$KAFKA_SECURE_PORT
KAFKA_SECURITY_PROTOCOL=SASL_SSL
KAFKA_SASL_MECHANISM=SCRAM-SHA-512
KAFKA_SASL_USERNAME=$KAFKA_SASL_USER
KAFKA_SASL_PASSWORD=$KAFKA_SASL_PASSWORD
KAFKA_SSL_CA_LOCATION=$GM_CERTS/ca.pem
KAFKA_SSL_CERTIFICATE_LOCATION=$GM_CERTS/client.pem
KAFKA_SSL_KEY_LOCATION=$GM_CERTS/client.key
POSTGRES_WAREHOUSE_SSLMODE=verify-full
POSTGRES_WAREHOUSE_SSLROOTCERT=$GM_CERTS/ca.pem
POSTGRES_REALTIME_SSLMODE=verify-full
POSTGRES_REALTIME_SSLROOTCERT=$GM_CERTS/ca.pem
EOT
)
    if [ "$(cat "$GM_SECURE_ENV" 2>/dev/null)" != "$rendered" ]; then
        printf '%s\n' "$rendered" >"$GM_SECURE_ENV"
        changed "wrote $GM_SECURE_ENV"
    fi
}

# ------------------------------------------------------------------------------------------
# Kafka
# ------------------------------------------------------------------------------------------
ensure_kafka_jars() {
    # The jars are those of this exact pom: a change to it (a version, a logging binding)
    # fetches them again.
    local pom_sum
    pom_sum=$(sha256sum "$GM_ROOT/scripts/kafka/pom.xml" | cut -d' ' -f1)
    if [ -f "$KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar" ] && [ "$(cat "$KAFKA_HOME/pom.sha256" 2>/dev/null)" = "$pom_sum" ]; then
        return
    fi
    say "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_HOME..."
    rm -rf "$KAFKA_HOME.partial"
    logged mvn -B -q -f "$GM_ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME.partial/libs"
    mkdir -p "$KAFKA_HOME"
    rm -rf "$KAFKA_HOME/libs"
    mv "$KAFKA_HOME.partial/libs" "$KAFKA_HOME/libs"
    rm -rf "$KAFKA_HOME.partial"
    echo "$pom_sum" >"$KAFKA_HOME/pom.sha256"
    changed "fetched Kafka $KAFKA_VERSION jars ($(ls "$KAFKA_HOME/libs" | wc -l) files)"
}

ensure_kafka_config() {
    local config=$KAFKA_HOME/config/server.properties rendered
    mkdir -p "$KAFKA_HOME/config" "$KAFKA_DATA"
    local templates=("$GM_ROOT/scripts/kafka/server.properties")
    [ "$SECURE" -eq 1 ] && templates+=("$GM_ROOT/scripts/kafka/secure.properties")
    rendered=$(cat "${templates[@]}" | sed -e "s|@BROKER_PORT@|$KAFKA_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@LOG_DIR@|$KAFKA_DATA|g" \
        -e "s|@SECURE_PORT@|$KAFKA_SECURE_PORT|g" -e "s|@CERTS@|$GM_CERTS|g" \
        -e "s|@PLAIN_USERS@|user_$KAFKA_SASL_USER=\"$KAFKA_SASL_PASSWORD\"|g")
    if [ ! -f "$config" ] || [ "$(cat "$config")" != "$rendered" ]; then
        printf '%s\n' "$rendered" >"$config"
        changed "wrote $config"
        KAFKA_CONFIG_CHANGED=1
    fi
    if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
        local cluster_id
        cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$SETUP_LOG")
        logged kafka_java kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$config"
        changed "formatted Kafka storage in $KAFKA_DATA (cluster $cluster_id)"
    fi
}

kafka_answers() {
    kcat -b "$KAFKA_BOOTSTRAP" -L -m 3 >/dev/null 2>&1
}

ensure_kafka_running() {
    local pid
    pid=$(read_pid "$KAFKA_PID_FILE")
    if pid_alive "$pid" && [ "$KAFKA_CONFIG_CHANGED" -eq 1 ]; then
        say "restarting Kafka (pid $pid) with its new configuration..."
        kill "$pid"
        for _ in $(seq 1 60); do pid_alive "$pid" || break; sleep 0.5; done
        pid_alive "$pid" && die "Kafka (pid $pid) did not stop within 30 s"
    fi
    if pid_alive "$pid" && kafka_answers; then
        return
    fi
    if ! pid_alive "$pid" && port_open "$KAFKA_PORT"; then
        die "port $KAFKA_PORT is taken by a process dev-up.sh did not start ($(port_owner "$KAFKA_PORT")); stop it or free the port"
    fi
    if ! pid_alive "$pid"; then
        port_open "$KAFKA_CONTROLLER_PORT" &&
            die "port $KAFKA_CONTROLLER_PORT (Kafka controller) is taken ($(port_owner "$KAFKA_CONTROLLER_PORT"))"
        say "starting Apache Kafka $KAFKA_VERSION (KRaft) on $KAFKA_BOOTSTRAP..."
        pid=$(start_recorded "$KAFKA_PID_FILE" "$GM_LOGS/kafka.log" java -Xms256m -Xmx1g -XX:+UseG1GC \
            -Dlog4j2.configurationFile="$GM_ROOT/scripts/kafka/log4j2.properties" \
            -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$KAFKA_HOME/config/server.properties")
        changed "started Kafka (pid $pid)"
    fi
    await_ready "Kafka on $KAFKA_BOOTSTRAP" "$pid" "$GM_LOGS/kafka.log" 60 kafka_answers
}

# Partition count of topic $1 (empty if it does not exist), from a kcat metadata listing in $2.
topic_partitions() {
    sed -n "s/^  topic \"$1\" with \([0-9]*\) partitions:/\1/p" <<<"$2"
}

ensure_topics() {
    local listing topic
    listing=$(kcat -b "$KAFKA_BOOTSTRAP" -L -m 10)
    for topic in "${GM_EVENT_TOPICS[@]}" "${GM_COMPACTED_TOPICS[@]}"; do
        [ -n "$(topic_partitions "$topic" "$listing")" ] && continue
        local extra=()
        [[ " ${GM_COMPACTED_TOPICS[*]} " == *" $topic "* ]] && extra=(--config cleanup.policy=compact)
        logged kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
            --create --if-not-exists --topic "$topic" --partitions "$GM_PARTITIONS" --replication-factor 1 "${extra[@]}"
        changed "created topic $topic"
    done
}

# The SCRAM credentials of the --secure user (PLAIN users are in the broker's configuration).
# Idempotent: setting them again changes nothing a client sees.
ensure_kafka_scram_user() {
    local mechanism
    # One mechanism per request: the broker refuses two changes to one user in one.
    for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
        logged kafka_java kafka.admin.ConfigCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --alter \
            --entity-type users --entity-name "$KAFKA_SASL_USER" \
            --add-config "$mechanism=[password=$KAFKA_SASL_PASSWORD]"
    done
}

# ------------------------------------------------------------------------------------------
# Prometheus (only with --with-prometheus)
# ------------------------------------------------------------------------------------------
prometheus_ready() {
    curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" >/dev/null 2>&1
}

ensure_prometheus() {
    if ! command -v prometheus >/dev/null 2>&1; then
        say "installing prometheus from Debian's packages..."
        logged as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
        # The package starts its own service (all interfaces, its own config); ours replaces it.
        as_root invoke-rc.d prometheus stop >>"$SETUP_LOG" 2>&1 || true
        as_root update-rc.d prometheus disable >>"$SETUP_LOG" 2>&1 || true
        changed "installed prometheus"
    fi
    local pid
    pid=$(read_pid "$PROMETHEUS_PID_FILE")
    pid_alive "$pid" && prometheus_ready && return
    if ! pid_alive "$pid"; then
        port_open "$PROMETHEUS_PORT" &&
            die "port $PROMETHEUS_PORT is taken by a process dev-up.sh did not start ($(port_owner "$PROMETHEUS_PORT"))"
        mkdir -p "$PROMETHEUS_DATA"
        pid=$(start_recorded "$PROMETHEUS_PID_FILE" "$GM_LOGS/prometheus.log" prometheus \
            --config.file="$GM_ROOT/prometheus/prometheus.yml" \
            --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --storage.tsdb.path="$PROMETHEUS_DATA")
        changed "started Prometheus (pid $pid)"
    fi
    await_ready "Prometheus on 127.0.0.1:$PROMETHEUS_PORT" "$pid" "$GM_LOGS/prometheus.log" 30 prometheus_ready
}

# ------------------------------------------------------------------------------------------
# Status
# ------------------------------------------------------------------------------------------
print_status() {
    local listing topic parts ok=0 total=0
    listing=$(kcat -b "$KAFKA_BOOTSTRAP" -L -m 10 2>/dev/null || true)
    say ""
    printf '%-22s %-16s %s\n' COMPONENT ADDRESS STATUS
    printf '%-22s %-16s %s\n' postgres-warehouse "localhost:$PG_WAREHOUSE_PORT" \
        "$(pg_isready -q -h localhost -p "$PG_WAREHOUSE_PORT" && echo up || echo DOWN) (${PG_NOTE[$PG_WAREHOUSE_PORT]:-?}, db $PG_WAREHOUSE_DB)"
    printf '%-22s %-16s %s\n' postgres-realtime "localhost:$PG_REALTIME_PORT" \
        "$(pg_isready -q -h localhost -p "$PG_REALTIME_PORT" && echo up || echo DOWN) (${PG_NOTE[$PG_REALTIME_PORT]:-?}, db $PG_REALTIME_DB)"
    printf '%-22s %-16s %s\n' kafka "$KAFKA_BOOTSTRAP" \
        "$(kafka_answers && echo up || echo DOWN) (Apache Kafka $KAFKA_VERSION, KRaft, pid $(read_pid "$KAFKA_PID_FILE"))"
    if [ "$SECURE" -eq 1 ]; then
        printf '%-22s %-16s %s\n' kafka-sasl-ssl "localhost:$KAFKA_SECURE_PORT" \
            "$(port_open "$KAFKA_SECURE_PORT" && echo up || echo DOWN) (SASL_SSL, user $KAFKA_SASL_USER; settings in $GM_SECURE_ENV)"
    fi
    if [ "$WITH_PROMETHEUS" -eq 1 ]; then
        printf '%-22s %-16s %s\n' prometheus "127.0.0.1:$PROMETHEUS_PORT" \
            "$(prometheus_ready && echo up || echo DOWN) (pid $(read_pid "$PROMETHEUS_PID_FILE"), prometheus/prometheus.yml)"
    fi
    for topic in "${GM_EVENT_TOPICS[@]}" "${GM_COMPACTED_TOPICS[@]}"; do
        parts=$(topic_partitions "$topic" "$listing")
        total=$((total + 1))
        [ -n "$parts" ] && ok=$((ok + 1))
        printf '%-22s %-16s %s\n' "  $topic" "" "${parts:-MISSING} partitions"
    done
    say ""
    say "logs: $GM_LOGS (dev-up.log, kafka.log); PostgreSQL: /var/log/postgresql/"
    if [ ${#CHANGES[@]} -eq 0 ]; then
        say "changes: none (everything was already up)"
    else
        say "changes: ${#CHANGES[@]}"
    fi
    [ "$ok" -eq "$total" ] || die "$((total - ok)) topic(s) missing"
}

say "GlobalMart local stack (cache: $GM_CACHE)"
ensure_packages
PG_MAJOR=$(pg_major)
[ -n "$PG_MAJOR" ] || die "no PostgreSQL server found under /usr/lib/postgresql after installing"
ensure_server "$PG_WAREHOUSE_PORT" main
ensure_server "$PG_REALTIME_PORT" realtime
ensure_pg_settings "$PG_WAREHOUSE_PORT" "$PG_WAREHOUSE_SHARED_BUFFERS"
ensure_pg_settings "$PG_REALTIME_PORT" "$PG_REALTIME_SHARED_BUFFERS"
ensure_role_and_db "$PG_WAREHOUSE_PORT" "$PG_WAREHOUSE_PASSWORD" "$PG_WAREHOUSE_DB"
ensure_role_and_db "$PG_REALTIME_PORT" "$PG_REALTIME_PASSWORD" "$PG_REALTIME_DB"
ensure_schema "$PG_WAREHOUSE_PORT" "$PG_WAREHOUSE_DB" warehouse
ensure_schema "$PG_REALTIME_PORT" "$PG_REALTIME_DB" realtime
ensure_runtime_logins "$PG_WAREHOUSE_PORT"
ensure_runtime_logins "$PG_REALTIME_PORT"
if [ "$SECURE" -eq 1 ]; then
    [ -f "$GM_CERTS/server-keystore.pem" ] || changed "made a local CA and certificates in $GM_CERTS"
    logged bash "$GM_ROOT/scripts/make-certs.sh" "$GM_CERTS"
fi
ensure_pg_tls "$PG_WAREHOUSE_PORT"
ensure_pg_tls "$PG_REALTIME_PORT"
ensure_kafka_jars
KAFKA_CONFIG_CHANGED=0
ensure_kafka_config
ensure_kafka_running
ensure_topics
if [ "$SECURE" -eq 1 ]; then
    ensure_kafka_scram_user
    # One user runs both binaries here: it gets both sets, as documented.
    logged "$GM_ROOT/scripts/kafka-grant.sh" --bootstrap-server "$KAFKA_BOOTSTRAP" \
        --stream "User:$KAFKA_SASL_USER" --generator "User:$KAFKA_SASL_USER"
    write_secure_env
fi
[ "$WITH_PROMETHEUS" -eq 1 ] && ensure_prometheus
print_status
