//! What the stream tells people and Prometheus: the guide's lines
//! (`[TransactionSaver] Batch processed: 245 records`) and the metrics served on /metrics.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus::{
    register_histogram, register_int_counter, register_int_counter_vec, register_int_gauge_vec,
};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGaugeVec};
use tracing::info;

use crate::save::Saved;

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
pub static ABANDONED_CARTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "globalmart_stream_abandoned_carts_total",
        "Sessions recorded as abandoned carts by the sweep"
    )
    .expect("metric registers once")
});
pub static ALERTS_PUBLISHED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "globalmart_stream_alerts_published_total",
        "Alerts produced to alerts-topic"
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
        // Fine below the 250 ms goal, and around it, so its p50 and p99 can be read from the
        // buckets (a p99 between 250 and 500 ms was a straight line between the two).
        vec![
            0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75,
            1.0, 2.5, 5.0, 10.0, 30.0, 60.0
        ]
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

/// Registers every metric, so a scrape shows each (counters at 0) before anything happened:
/// a dashboard's query then finds its series, and a rate starts from zero.
pub fn register() {
    LazyLock::force(&CONSUMED);
    LazyLock::force(&INSERTED);
    LazyLock::force(&DUPLICATES);
    LazyLock::force(&DEAD_LETTERS);
    LazyLock::force(&ABANDONED_CARTS);
    LazyLock::force(&ALERTS_PUBLISHED);
    LazyLock::force(&BATCH_SECONDS);
    LazyLock::force(&END_TO_END_SECONDS);
    LazyLock::force(&LAG);
}

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

/// What one run saved, for the summary it ends with.
#[derive(Debug, Default)]
pub struct Totals {
    messages: u64,
    rows: u64,
    dead_letters: u64,
    duplicates: u64,
    /// Spent saving (waiting for the database), of the time below.
    saving: Duration,
    /// From the first message received to the last commit.
    first_message: Option<Instant>,
    last_commit: Option<Instant>,
}

impl Totals {
    /// Notes that a message arrived (only the first one's time is kept).
    pub fn received(&mut self) {
        self.first_message.get_or_insert_with(Instant::now);
    }

    /// Adds another lane's run: its counts, and its times where they widen this one's span
    /// (the time spent saving adds up over the lanes, which save side by side).
    pub fn add(&mut self, other: Totals) {
        self.messages += other.messages;
        self.rows += other.rows;
        self.dead_letters += other.dead_letters;
        self.duplicates += other.duplicates;
        self.saving += other.saving;
        self.first_message = match (self.first_message, other.first_message) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_commit = self.last_commit.max(other.last_commit);
    }

    /// Adds a committed batch of `messages` messages.
    pub fn committed(&mut self, messages: usize, saved: &Saved, saving: Duration) {
        self.messages += messages as u64;
        self.saving += saving;
        self.rows += saved.transaction_lines
            + saved.product_views
            + saved.cart_events
            + saved.catalogue_versions;
        self.dead_letters += saved.dead_letters;
        self.duplicates += saved.duplicates;
        self.last_commit = Some(Instant::now());
    }

    /// Logs the summary line (scripts/bench.sh reads its rate).
    pub fn log(&self) {
        let seconds = match (self.first_message, self.last_commit) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        let rate = if seconds > 0.0 {
            self.messages as f64 / seconds
        } else {
            0.0
        };
        info!(
            "saved: {} messages in {seconds:.3} s ({rate:.0}/s; {:.3} s of it saving), {} rows inserted, {} dead letters, {} duplicates skipped",
            self.messages, self.saving.as_secs_f64(), self.rows, self.dead_letters, self.duplicates
        );
    }
}
