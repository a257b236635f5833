//! What the generator tells people and Prometheus: the guide's monitoring lines
//! (`[Transaction] Generated transaction … for user … - $129.99`), sampled to at most one per kind
//! per second so they stay readable at any rate; a statistics line every few seconds; the exit
//! summary; and the metrics served on /metrics.

use std::sync::LazyLock;
use std::time::Duration;

use globalmart_core::event::{CartAction, Event, ViewAction};
use globalmart_core::topics::Topic;
use prometheus::{register_histogram, register_int_counter, register_int_counter_vec};
use prometheus::{Histogram, IntCounter, IntCounterVec};
use rust_decimal::Decimal;
use tokio::time::Instant;
use tracing::info;

use crate::mix::Counts;
use crate::producer::Delivery;

// Registering a metric fails only if its name is taken twice in this binary: a programming
// error that every test run would show, hence `expect`.
pub static EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "globalmart_generator_events_total",
        "Records generated, by topic",
        &["topic"]
    )
    .expect("metric registers once")
});
pub static DELIVERY_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "globalmart_generator_delivery_errors_total",
        "Records the broker refused or that timed out, by topic",
        &["topic"]
    )
    .expect("metric registers once")
});
pub static DELIVERY_LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "globalmart_generator_delivery_latency_seconds",
        "From handing a record to the producer to the broker's acknowledgement",
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("metric registers once")
});
pub static QUEUE_FULL: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "globalmart_generator_queue_full_total",
        "Times the producer queue was full and generation waited for the broker"
    )
    .expect("metric registers once")
});

/// Registers every metric, so a scrape shows each (counters at 0, the per-topic ones for every
/// topic the generator writes) before anything happened: a dashboard's query then finds its
/// series, and a rate starts from zero.
pub fn register() {
    for topic in Topic::ALL.into_iter().filter(|t| *t != Topic::Alerts) {
        EVENTS.with_label_values(&[topic.name()]);
        DELIVERY_ERRORS.with_label_values(&[topic.name()]);
    }
    LazyLock::force(&DELIVERY_LATENCY);
    LazyLock::force(&QUEUE_FULL);
}

/// Samples monitoring lines and paces the statistics line.
#[derive(Debug)]
pub struct Monitor {
    /// The events counter of each topic, looked up once rather than per event.
    per_topic: Vec<(Topic, IntCounter)>,
    last_line: [Option<Instant>; 4],
    stats_every: Duration,
    last_stats: Instant,
    events_at_last_stats: u64,
}

const LINE_EVERY: Duration = Duration::from_secs(1);

impl Monitor {
    /// A monitor printing statistics every `stats_every`.
    pub fn new(stats_every: Duration) -> Monitor {
        Monitor {
            per_topic: Topic::ALL
                .into_iter()
                .map(|t| (t, EVENTS.with_label_values(&[t.name()])))
                .collect(),
            last_line: [None; 4],
            stats_every,
            last_stats: Instant::now(),
            events_at_last_stats: 0,
        }
    }

    /// Counts `event` and maybe prints its monitoring line. `now` is the time of the batch the
    /// event belongs to: one clock read per batch is plenty for sampling once a second.
    pub fn observe(&mut self, event: &Event, now: Instant) {
        let topic = event.topic();
        if let Some((_, counter)) = self.per_topic.iter().find(|(t, _)| *t == topic) {
            counter.inc();
        }
        let slot = match event {
            Event::Transaction(_) => 0,
            Event::ProductView(_) => 1,
            Event::Cart(_) => 2,
            Event::Product(_) | Event::User(_) => 3,
        };
        if self.last_line[slot].is_some_and(|t| now.duration_since(t) < LINE_EVERY) {
            return;
        }
        self.last_line[slot] = Some(now);
        info!("{}", line(event));
    }

    /// Prints the statistics line when it is due.
    pub fn maybe_stats(&mut self, counts: Counts, delivery: Delivery) {
        let elapsed = self.last_stats.elapsed();
        if elapsed < self.stats_every {
            return;
        }
        let rate = (counts.events() - self.events_at_last_stats) as f64 / elapsed.as_secs_f64();
        info!(
            "[Stats] {} events ({} views, {} cart, {} transactions, {} anomalies), {} catalogue changes | {:.0} events/s | delivered {}, failed {}, in flight {}",
            counts.events(),
            counts.views,
            counts.cart_events,
            counts.transactions,
            counts.anomalies,
            counts.catalogue_changes,
            rate,
            delivery.delivered,
            delivery.failed,
            delivery.in_flight()
        );
        self.last_stats = Instant::now();
        self.events_at_last_stats = counts.events();
    }
}

/// The guide's monitoring line for one record.
pub fn line(event: &Event) -> String {
    match event {
        Event::Transaction(t) => format!(
            "[Transaction] Generated transaction {} for user {} - ${}",
            t.transaction_id, t.user_id, t.total_amount
        ),
        Event::ProductView(v) => match &v.action {
            ViewAction::View(p) => {
                format!(
                    "[Product View] User {} viewed product {}",
                    v.user_id, p.product_id
                )
            }
            ViewAction::Search(s) => {
                format!(
                    "[Product View] User {} searched \"{}\"",
                    v.user_id, s.search_query
                )
            }
            ViewAction::Filter(f) => {
                let price =
                    |p: Option<Decimal>| p.map_or_else(|| "any".to_owned(), |p| p.to_string());
                format!(
                    "[Product View] User {} filtered {} by ${}-${}",
                    v.user_id,
                    f.filter_category.as_deref().unwrap_or("any category"),
                    price(f.min_price),
                    price(f.max_price)
                )
            }
            ViewAction::Compare(c) => format!(
                "[Product View] User {} compared {} products",
                v.user_id,
                c.product_ids.len()
            ),
        },
        Event::Cart(c) => match &c.action {
            CartAction::AddToCart(i) => format!(
                "[Cart Event] User {} added {}x {} to cart",
                c.user_id, i.quantity, i.product_id
            ),
            CartAction::RemoveFromCart(i) => format!(
                "[Cart Event] User {} removed {} from cart",
                c.user_id, i.product_id
            ),
            CartAction::UpdateQuantity(q) => format!(
                "[Cart Event] User {} changed {} from {} to {}",
                c.user_id, q.item.product_id, q.old_quantity, q.new_quantity
            ),
            CartAction::Checkout(k) => format!(
                "[Cart Event] User {} checked out {} items - ${}",
                c.user_id, k.total_items, k.total_value
            ),
        },
        Event::Product(p) => format!(
            "[Catalogue] Product {} \"{}\" at ${}, {} in stock",
            p.product_id, p.name, p.price, p.inventory
        ),
        Event::User(u) => format!(
            "[Catalogue] User {} in {}, {}",
            u.user_id,
            u.country.as_str(),
            u.email
        ),
    }
}

/// The closing summary.
pub fn summary(counts: Counts, catalogue: u64, delivery: Delivery, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
    format!(
        "=== GlobalMart Data Generation Finished ===\n\
         generated: {} events in {:.1} s ({:.0}/s): {} views, {} cart events, {} transactions ({} anomalies)\n\
         catalogue: {} records at start, {} changes\n\
         delivery:  {} sent, {} delivered, {} failed, {} undelivered\n\
         memory:    {} MiB resident at the peak",
        counts.events(),
        seconds,
        counts.events() as f64 / seconds,
        counts.views,
        counts.cart_events,
        counts.transactions,
        counts.anomalies,
        catalogue,
        counts.catalogue_changes,
        delivery.sent,
        delivery.delivered,
        delivery.failed,
        delivery.in_flight(),
        globalmart_core::metrics::peak_memory_mib().map_or("?".into(), |m| m.to_string())
    )
}
