//! What the batch tells Prometheus (served on METRICS_ADDR by `run --every`): runs by outcome,
//! each step's last duration and the rows it loaded or skipped, and when a run last succeeded.

use std::sync::LazyLock;

use prometheus::{
    register_gauge, register_gauge_vec, register_int_counter_vec, Gauge, GaugeVec, IntCounterVec,
};

use crate::figures::Figures;

// Registering fails only if a name is taken twice in this binary: a programming error every
// test run would show, hence `expect`.
static RUNS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "globalmart_batch_runs_total",
        "Batch runs, by command and outcome",
        &["command", "status"]
    )
    .expect("metric registers once")
});
static STEP_SECONDS: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "globalmart_batch_step_seconds",
        "How long each step's last run took",
        &["step"]
    )
    .expect("metric registers once")
});
static ROWS_LOADED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "globalmart_batch_rows_loaded_total",
        "Rows written, by step",
        &["step"]
    )
    .expect("metric registers once")
});
static ROWS_SKIPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "globalmart_batch_duplicates_skipped_total",
        "Rows loaded before (or catalogue versions that change nothing), by step",
        &["step"]
    )
    .expect("metric registers once")
});
static LAST_SUCCESS: LazyLock<Gauge> = LazyLock::new(|| {
    register_gauge!(
        "globalmart_batch_last_success_timestamp_seconds",
        "When the last successful run ended (Unix time)"
    )
    .expect("metric registers once")
});

/// Counts a step that succeeded.
pub fn step(name: &str, figures: &Figures) {
    STEP_SECONDS
        .with_label_values(&[name])
        .set(figures.duration.as_secs_f64());
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    ROWS_LOADED
        .with_label_values(&[name])
        .inc_by(count(figures.loaded));
    ROWS_SKIPPED
        .with_label_values(&[name])
        .inc_by(count(figures.skipped));
}

/// Counts a run that ended.
pub fn run(command: &str, succeeded: bool) {
    let status = if succeeded { "succeeded" } else { "failed" };
    RUNS.with_label_values(&[command, status]).inc();
    if succeeded {
        LAST_SUCCESS.set(chrono::Utc::now().timestamp() as f64);
    }
}

/// Registers every metric, so a scrape shows them before the first run ends.
pub fn register() {
    LazyLock::force(&RUNS);
    LazyLock::force(&STEP_SECONDS);
    LazyLock::force(&ROWS_LOADED);
    LazyLock::force(&ROWS_SKIPPED);
    LazyLock::force(&LAST_SUCCESS);
}
