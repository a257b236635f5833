//! What the stream tells people and Prometheus: the guide's lines
//! (`[TransactionSaver] Batch processed: 245 records`) and the metrics served on /metrics.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_int_counter, register_int_counter_vec, register_int_gauge_vec,
};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGaugeVec};
use tracing::info;

use crate::sink::Saved;

// Registering fails only if a name is taken twice in this binary: a programming error every
// test run would show, hence `expect`.
pub static CONSUMED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "globalmart_stream_messages_total",
        "Messages consumed, by topic",
        &["topic"]
    )
    .expect("metric registers once")
});
pub static INSERTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "globalmart_stream_rows_inserted_total",
        "Rows inserted, by table",
        &["table"]
    )
    .expect("metric registers once")
});
pub static DUPLICATES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "globalmart_stream_duplicates_skipped_total",
        "Rows the tables already had (replays), skipped"
    )
    .expect("metric registers once")
});
pub static DEAD_LETTERS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "globalmart_stream_dead_letters_total",
        "Messages that failed to parse or validate, saved to dead_letter_events"
    )
    .expect("metric registers once")
});
pub static BATCH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "globalmart_stream_batch_seconds",
        "Time to save one batch (one transaction)",
        vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
    )
    .expect("metric registers once")
});
pub static END_TO_END_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "globalmart_stream_end_to_end_seconds",
        "From an event's timestamp to the commit of its row",
        vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]
    )
    .expect("metric registers once")
});
pub static LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "globalmart_stream_consumer_lag",
        "Messages not yet saved, per assigned partition",
        &["topic", "partition"]
    )
    .expect("metric registers once")
});

/// Logs the guide's line for each saver that saved something, and counts it.
pub fn saved(saved: &Saved) {
    for (saver, table, records) in [
        ("TransactionSaver", "transactions", saved.transaction_lines),
        (
            "ProductViewSaver",
            "product_view_events",
            saved.product_views,
        ),
        ("CartEventSaver", "cart_events", saved.cart_events),
        (
            "CatalogueSaver",
            "catalogue_history",
            saved.catalogue_versions,
        ),
        ("DeadLetterSaver", "dead_letter_events", saved.dead_letters),
    ] {
        if records > 0 {
            INSERTED.with_label_values(&[table]).inc_by(records);
            info!("[{saver}] Batch processed: {records} records");
        }
    }
    DEAD_LETTERS.inc_by(saved.dead_letters);
    DUPLICATES.inc_by(saved.duplicates);
    if saved.duplicates > 0 {
        info!(
            "{} records were saved before (replay), skipped",
            saved.duplicates
        );
    }
}
