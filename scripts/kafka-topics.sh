#!/usr/bin/env bash
# Kafka's own kafka-topics tool, from the jars scripts/dev-up.sh cached (no Kafka install
# needed): list, describe, create or alter topics. Arguments go to the tool unchanged.
#   scripts/kafka-topics.sh --bootstrap-server localhost:9092 --list
#   scripts/kafka-topics.sh --bootstrap-server localhost:9092 --describe --topic transactions-topic
#   scripts/kafka-topics.sh --bootstrap-server localhost:9092 --alter --topic transactions-topic --partitions 6
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
[ -d "$KAFKA_HOME/libs" ] || die "no Kafka jars in $KAFKA_HOME: run scripts/dev-up.sh first"
if [ $# -eq 0 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    [ $# -eq 0 ] && exit 2
fi
kafka_java org.apache.kafka.tools.TopicCommand "$@"
