#!/usr/bin/env bash
# Grants the stream's and the generator's Kafka principals what each needs on a cluster with an
# authorizer, and nothing more (docs/USER_GUIDE.md, "Kafka authorization"), with Kafka's own
# kafka-acls tool from the jars scripts/dev-up.sh cached. Safe to run again.
#   scripts/kafka-grant.sh --bootstrap-server HOST:PORT [--command-config FILE]
#       [--stream User:stream] [--generator User:generator] [--topic-prefix PREFIX]
#       [--group globalmart-stream]
# The stream: Read and Describe on the five saved topics, Read on its group, Write and Describe
# on alerts-topic. The generator: Write and Describe on the five topics it produces to, Read on
# products-topic and users-topic and on its group globalmart-generator (it records there which
# catalogue the topics hold).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
[ -d "$KAFKA_HOME/libs" ] || die "no Kafka jars in $KAFKA_HOME: run scripts/dev-up.sh first"

BOOTSTRAP=""
CONFIG=()
STREAM=User:stream
GENERATOR=User:generator
PREFIX=""
GROUP=globalmart-stream
while [ $# -gt 0 ]; do
    case "$1" in
        --bootstrap-server) BOOTSTRAP=${2:?--bootstrap-server needs HOST:PORT}; shift 2 ;;
        --command-config) CONFIG=(--command-config "${2:?--command-config needs a file}"); shift 2 ;;
        --stream) STREAM=${2:?--stream needs a principal such as User:stream}; shift 2 ;;
        --generator) GENERATOR=${2:?--generator needs a principal such as User:generator}; shift 2 ;;
        --topic-prefix) PREFIX=${2?--topic-prefix needs a prefix}; shift 2 ;;
        --group) GROUP=${2:?--group needs the stream consumer group}; shift 2 ;;
        -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[ -n "$BOOTSTRAP" ] || die "--bootstrap-server is required (see --help)"

topics() {
    local topic
    for topic in "$@"; do printf -- '--topic\n%s%s\n' "$PREFIX" "$topic"; done
}
# $1: principal; the rest: operations and resources.
allow() {
    local principal=$1
    shift
    kafka_java org.apache.kafka.tools.AclCommand --bootstrap-server "$BOOTSTRAP" "${CONFIG[@]}" \
        --add --allow-principal "$principal" "$@" >/dev/null
}
mapfile -t SAVED < <(topics transactions-topic product-views-topic cart-events-topic products-topic users-topic)
mapfile -t CATALOGUE < <(topics products-topic users-topic)
mapfile -t ALERTS < <(topics alerts-topic)

allow "$STREAM" --operation Read --operation Describe "${SAVED[@]}"
allow "$STREAM" --operation Read --group "$GROUP"
allow "$STREAM" --operation Write --operation Describe "${ALERTS[@]}"
allow "$GENERATOR" --operation Write --operation Describe "${SAVED[@]}"
allow "$GENERATOR" --operation Read "${CATALOGUE[@]}"
allow "$GENERATOR" --operation Read --group globalmart-generator
say "granted: $STREAM (stream, group $GROUP) and $GENERATOR (generator) on $BOOTSTRAP${PREFIX:+, topics prefixed $PREFIX}"
