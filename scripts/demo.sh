#!/usr/bin/env bash
# The README's first command. Today (foundation): brings up the local stack, builds the three
# binaries and shows what each one takes (--help). The end-to-end demo
# (events flowing, a batch run, a summary of every table) grows here as the binaries land.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$GM_ROOT"

require_cargo

say "== 1/3 local stack"
scripts/dev-up.sh
say ""
# A debug build: it shares the test suite's cache. The full demo (issue #10) builds in release.
say "== 2/3 build (first time: about 10 minutes on 2 cores; cached in $CARGO_TARGET_DIR)"
cargo build --locked --bins
say ""
say "== 3/3 the binaries"
for bin in globalmart-generator globalmart-stream globalmart-batch; do
    say ""
    say "--- $bin --help"
    "$CARGO_TARGET_DIR/debug/$bin" --help
done
cat <<EOT

The stack is running:
  realtime PostgreSQL  PGPASSWORD=realtime_password psql -h localhost -p 5433 -U globalmart_user -d globalmart_realtime -c '\dt'
  warehouse PostgreSQL PGPASSWORD=warehouse_password psql -h localhost -p 5432 -U globalmart_user -d globalmart_warehouse -c '\dt'
  Kafka                kcat -b localhost:9092 -L
Stop it with scripts/dev-down.sh (add --purge to delete the data).
EOT
