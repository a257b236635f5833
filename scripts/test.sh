#!/usr/bin/env bash
# The whole test suite, exactly what CI runs (.ci/run): brings up the local stack (installing
# what is missing), checks the stack scripts themselves, then formatting, lints and every Rust
# test against the real broker and PostgreSQL, then the scheduling scripts and the monitoring.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$GM_ROOT"

require_cargo

say "== local stack (with Prometheus, for the monitoring checks)"
scripts/dev-up.sh --with-prometheus
say "== stack scripts"
scripts/tests/stack.sh
say "== format and lints"
gm_claim_target
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
say "== tests"
results=$GM_LOGS/cargo-test.log
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$results"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite, summed over cargo's per-binary results.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "rust tests: %d passed, %d failed\n", p, f }' "$results"
say "== scheduling scripts (with the batch the tests built)"
scripts/tests/schedule.sh || status=1
say "== monitoring (Prometheus scraping the binaries the tests built)"
scripts/tests/prometheus.sh || status=1
exit "$status"
