# Shared settings and helpers of the scripts/ commands. Source it; do not run it.
#
# Caches live outside the clone so a fresh clone (CI) reuses the compiled dependencies and the
# Kafka jars: GLOBALMART_CACHE (default ~/.cache/globalmart) holds target/, kafka-<version>/,
# kafka-data/ and run/ (pid files and locks). GLOBALMART_LOGS (default logs/ in the clone) holds
# the logs.

GM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GM_CACHE=${GLOBALMART_CACHE:-$HOME/.cache/globalmart}
GM_LOGS=${GLOBALMART_LOGS:-$GM_ROOT/logs}
GM_RUN=$GM_CACHE/run
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$GM_CACHE/target}
# The binaries the demo and the tests run: the dev profile (our crates unoptimised, their
# dependencies at opt-level 1), built by gm_build and by the tests' own build, which reuses its
# artefacts. The benchmarks build release (gm_build_release).
GM_BIN=$CARGO_TARGET_DIR/debug
GM_RELEASE_BIN=$CARGO_TARGET_DIR/release

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$GM_ROOT/scripts/kafka/pom.xml")
KAFKA_HOME=$GM_CACHE/kafka-$KAFKA_VERSION
KAFKA_DATA=$GM_CACHE/kafka-data
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
KAFKA_BOOTSTRAP=localhost:$KAFKA_PORT
# The SASL_SSL listener of `dev-up.sh --secure`, its user (a documented development default,
# like the database passwords), certificates and the binaries' settings for it.
KAFKA_SECURE_PORT=9094
KAFKA_SASL_USER=globalmart
KAFKA_SASL_PASSWORD=globalmart-secret
GM_CERTS=$GM_CACHE/certs
GM_SECURE_ENV=$GM_CACHE/secure.env
KAFKA_PID_FILE=$GM_RUN/kafka.pid
PROMETHEUS_PORT=9090
PROMETHEUS_PID_FILE=$GM_RUN/prometheus.pid
PROMETHEUS_DATA=$GM_CACHE/prometheus-data

# The documented development defaults (.env.example lists them).
PG_WAREHOUSE_PORT=${POSTGRES_WAREHOUSE_PORT:-5432}
PG_WAREHOUSE_DB=${POSTGRES_WAREHOUSE_DB:-globalmart_warehouse}
PG_WAREHOUSE_PASSWORD=${POSTGRES_WAREHOUSE_PASSWORD:-warehouse_password}
PG_REALTIME_PORT=${POSTGRES_REALTIME_PORT:-5433}
PG_REALTIME_DB=${POSTGRES_REALTIME_DB:-globalmart_realtime}
PG_REALTIME_PASSWORD=${POSTGRES_REALTIME_PASSWORD:-realtime_password}
PG_USER=${POSTGRES_WAREHOUSE_USER:-globalmart_user}
# The least-privilege login roles (scripts/postgres/runtime-logins.sql).
PG_STREAM_PASSWORD=${GLOBALMART_STREAM_DB_PASSWORD:-stream_password}
PG_BATCH_PASSWORD=${GLOBALMART_BATCH_DB_PASSWORD:-batch_password}

# Event topics, then catalogue topics (compacted). Keep in step with globalmart-core's topics.rs.
GM_EVENT_TOPICS=(transactions-topic product-views-topic cart-events-topic alerts-topic)
GM_COMPACTED_TOPICS=(products-topic users-topic)
GM_PARTITIONS=3

mkdir -p "$GM_LOGS" "$GM_RUN"

say() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Stops with a clear message when Rust is missing (the machines come with Rust stable).
require_cargo() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust stable (rustup) first"
}

# Builds every binary of the workspace in the dev profile: the artefacts the demo runs and the
# test suite's build reuses (no dependency has a feature only the tests turn on, so nothing is
# compiled twice; a -p build would pick other features and compile dependencies again).
gm_build() {
    require_cargo
    gm_claim_target
    cargo build --workspace --bins --locked
}

# One target directory serves every clone (GLOBALMART_CACHE above), but cargo judges our own
# crates fresh from the source files it recorded at their last build: after a build from another
# clone it finds that clone's files unchanged and keeps its binaries, which run stale code. So the
# first build from a clone other than the last one removes our crates' artefacts (not the
# dependencies': about a minute to rebuild) and records this clone.
gm_claim_target() {
    local mark=$CARGO_TARGET_DIR/.globalmart-clone crate
    [ "$(cat "$mark" 2>/dev/null)" = "$GM_ROOT" ] && return 0
    if [ -d "$CARGO_TARGET_DIR" ]; then
        say "the build cache was last used by $(cat "$mark" 2>/dev/null || echo another clone): rebuilding this clone's crates"
        local packages=()
        for crate in "$GM_ROOT"/crates/*/; do packages+=(-p "$(basename "$crate")"); done
        cargo clean --quiet "${packages[@]}"
    fi
    mkdir -p "$CARGO_TARGET_DIR"
    echo "$GM_ROOT" >"$mark"
}

# Builds every binary of the workspace in release (the benchmarks), always the same set, so
# one build serves every benchmark.
gm_build_release() {
    require_cargo
    gm_claim_target
    cargo build --workspace --bins --release --locked
}

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (no sudo here)"
    fi
}

# Runs a command as the postgres OS user (peer authentication to the local clusters).
as_postgres() {
    if [ "$(id -un)" = postgres ]; then
        "$@"
    else
        as_root runuser -u postgres -- "$@"
    fi
}

# True when something accepts TCP connections on localhost:$1.
port_open() {
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Who listens on localhost:$1, for error messages.
port_owner() {
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1
    fi
}

# Runs one of Kafka's tools (a class name and its arguments) from the cached jars; its log
# (warnings only) goes to stderr, so stdout is the tool's answer.
kafka_java() {
    java -Dlog4j2.configurationFile="$GM_ROOT/scripts/kafka/tools-log4j2.properties" \
        -cp "$KAFKA_HOME/libs/*" "$@"
}

# True when $1 is the pid of a live process.
pid_alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null
}

# The pid in file $1, or nothing.
read_pid() {
    [ -f "$1" ] && tr -dc '0-9' <"$1" || true
}

# Runs $3... (psql, or a script that runs it) connected, through libpq's environment, as
# globalmart_user to port $1, database $2 (password from the defaults above).
gm_pg() {
    local port=$1 db=$2 password=$PG_WAREHOUSE_PASSWORD
    shift 2
    [ "$port" = "$PG_REALTIME_PORT" ] && password=$PG_REALTIME_PASSWORD
    PGHOST=localhost PGPORT=$port PGUSER=$PG_USER PGDATABASE=$db PGPASSWORD=$password \
        PGCONNECT_TIMEOUT=5 PGOPTIONS="-c client_min_messages=warning" "$@"
}

# psql as globalmart_user on port $1, database $2.
gm_psql() {
    local port=$1 db=$2
    shift 2
    gm_pg "$port" "$db" psql -X -q -v ON_ERROR_STOP=1 "$@"
}

# Applies the migrations of sql/$3 that database $2 on port $1 lacks, recording them where the
# binaries' runner looks (scripts/postgres/migrate.sh).
gm_migrate() {
    gm_pg "$1" "$2" "$GM_ROOT/scripts/postgres/migrate.sh" "$GM_ROOT/sql/$3"
}
