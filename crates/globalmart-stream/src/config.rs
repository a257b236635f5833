//! The stream's settings: Kafka, the realtime database, the consumer group and metrics, all read
//! by the one loader in globalmart-core.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use globalmart_core::config::{parse_duration, DbArgs, KafkaArgs, Realtime};
use rust_decimal::Decimal;

/// What to run instead of the stream.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Apply the realtime database's migrations and exit: run it as the owner role when the
    /// stream runs as a runtime role, which does not migrate (docs/USER_GUIDE.md, "Production").
    Migrate,
}

/// Consumes the event and catalogue topics and saves every event exactly once into the realtime
/// database, keeping the realtime metrics and alerts.
#[derive(Debug, Parser)]
#[command(name = "globalmart-stream", version, about)]
pub struct Config {
    /// Without a command: run the stream.
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub realtime: DbArgs<Realtime>,

    /// Kafka consumer group; instances in the same group share the partitions.
    #[arg(
        long = "group",
        env = "STREAM_CONSUMER_GROUP",
        default_value = "globalmart-stream"
    )]
    pub group: String,

    /// This instance's stable name in the group (Kafka static membership): restarted under the
    /// same name within the session timeout, it gets its partitions back at once instead of
    /// after a rebalance. Give each instance its own (a StatefulSet's pod name); a second
    /// instance with a name in use stops at start. Unset: dynamic membership.
    #[arg(long = "instance-id", env = "STREAM_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Most messages saved in one transaction.
    // 20,000 rather than 5,000: a batch's metric upserts touch each (minute, product) once
    // however many events it holds, so under load bigger batches cut the metrics' share of
    // the work (scripts/bench.sh stream, 2026-11-29: the metrics cost 20 % of the throughput
    // at 5,000, 10-12 % at 20,000). Light traffic is cut by STREAM_BATCH_WAIT_MS long before,
    // so latency does not change.
    #[arg(long, env = "STREAM_BATCH_SIZE", default_value = "20000",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,

    /// Longest wait, in milliseconds, before a partial batch is saved.
    #[arg(long, env = "STREAM_BATCH_WAIT_MS", default_value = "100",
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub batch_wait_ms: u64,

    /// Exit 0 once each lane is caught up and was idle for this many seconds (tests,
    /// benchmarks, one-shot loads).
    #[arg(long, env = "STREAM_EXIT_WHEN_IDLE", value_parser = clap::value_parser!(u64).range(1..))]
    pub exit_when_idle: Option<u64>,

    /// How long to wait at start for the realtime database to answer, in seconds.
    #[arg(long, env = "STREAM_DB_WAIT_SECONDS", default_value = "60",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub db_wait_seconds: u64,

    /// A transaction total at or above this is a high-value anomaly.
    #[arg(long, env = "STREAM_HIGH_VALUE_THRESHOLD", default_value = "3000")]
    pub high_value_threshold: Decimal,

    /// A line quantity at or above this is a high-quantity anomaly.
    #[arg(long, env = "STREAM_HIGH_QUANTITY_THRESHOLD", default_value = "50",
          value_parser = clap::value_parser!(i32).range(1..))]
    pub high_quantity_threshold: i32,

    /// Stock falling below this raises a low-stock alert.
    #[arg(long, env = "STREAM_LOW_STOCK_THRESHOLD", default_value = "10",
          value_parser = clap::value_parser!(i32).range(1..))]
    pub low_stock_threshold: i32,

    /// Two or more orders of at least this by one user within a minute are suspicious.
    #[arg(long, env = "STREAM_SUSPICIOUS_ORDER_AMOUNT", default_value = "1000")]
    pub suspicious_order_amount: Decimal,

    /// At least this many units of one product within 10 minutes raise a high-demand alert.
    #[arg(long, env = "STREAM_HIGH_DEMAND_UNITS", default_value = "20",
          value_parser = clap::value_parser!(i64).range(1..))]
    pub high_demand_units: i64,

    /// A product whose last hour of sales would empty its stock within this many hours raises
    /// one restock_needed alert per restock.
    #[arg(long, env = "STREAM_RESTOCK_HORIZON_HOURS", default_value = "24",
          value_parser = clap::value_parser!(i32).range(1..))]
    pub restock_horizon_hours: i32,

    /// A cart with items and no checkout, quiet this long (event time), is abandoned: 30m, 1h.
    #[arg(long, env = "STREAM_CART_ABANDON_AFTER", default_value = "30m", value_parser = parse_duration)]
    pub abandon_after: Duration,

    /// How often to look for abandoned carts: 30s, 1m.
    #[arg(long, env = "STREAM_SWEEP_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub sweep_interval: Duration,

    /// Metric windows older than this are deleted (hourly), and events older than this are
    /// saved without being counted in them: 7d, 48h.
    #[arg(long, env = "STREAM_METRICS_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub metrics_retention: Duration,

    /// Raw events (transactions, product_view_events, cart_events) are kept this long by event
    /// time, in whole days, and dropped only once the warehouse has loaded them: 7d, 30d. At
    /// least a day.
    #[arg(long, env = "STREAM_RAW_RETENTION", default_value = "7d", value_parser = at_least_a_day)]
    pub raw_retention: Duration,

    /// How often raw retention runs, the first round this long after start (so a stream back
    /// after a long stop has read into its backlog first): 10m, 1h.
    #[arg(long, env = "STREAM_RAW_RETENTION_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub raw_retention_interval: Duration,

    /// Where to serve Prometheus metrics (GET /metrics).
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9102")]
    pub metrics_addr: SocketAddr,
}

/// What saving a batch decides by: the anomaly and stock thresholds (what makes a transaction,
/// a line, a stock level or a product's demand worth an alert) and how far back the windowed
/// metrics count. Set from [`Config`]; the defaults are the documented ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// A transaction total at or above this is a high-value anomaly.
    pub high_value: Decimal,
    /// A line quantity at or above this is a high-quantity anomaly.
    pub high_quantity: i32,
    /// Stock falling below this raises a low-stock alert.
    pub low_stock: i32,
    /// Two orders of at least this by one user within a minute are suspicious.
    pub suspicious_amount: Decimal,
    /// At least this many units of one product within 10 minutes is high demand.
    pub high_demand_units: i64,
    /// Stock that the last hour's sales would empty within this many hours needs a restock.
    pub restock_horizon_hours: i32,
    /// Events older than this (wall clock) count in no metric window, nor in high demand or
    /// the sales pace of restock_needed (counted from those windows): housekeeping deletes
    /// those windows (STREAM_METRICS_RETENTION), so a backfill would write them for nothing.
    pub metrics_retention: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            high_value: Decimal::from(3000),
            high_quantity: 50,
            low_stock: 10,
            suspicious_amount: Decimal::from(1000),
            high_demand_units: 20,
            restock_horizon_hours: 24,
            metrics_retention: Duration::from_secs(7 * 86_400),
        }
    }
}

impl Thresholds {
    /// critical >= 10000, high >= 6500, else medium (for totals at or above `high_value`).
    pub fn value_severity(total: Decimal) -> &'static str {
        if total >= Decimal::from(10_000) {
            "critical"
        } else if total >= Decimal::from(6_500) {
            "high"
        } else {
            "medium"
        }
    }

    /// critical >= 100, high >= 75, else medium (for quantities at or above `high_quantity`).
    pub fn quantity_severity(quantity: i32) -> &'static str {
        match quantity {
            q if q >= 100 => "critical",
            q if q >= 75 => "high",
            _ => "medium",
        }
    }
}

impl Config {
    /// The anomaly thresholds and the metrics' retention.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            high_value: self.high_value_threshold,
            high_quantity: self.high_quantity_threshold,
            low_stock: self.low_stock_threshold,
            suspicious_amount: self.suspicious_order_amount,
            high_demand_units: self.high_demand_units,
            restock_horizon_hours: self.restock_horizon_hours,
            metrics_retention: self.metrics_retention,
        }
    }
}

/// A duration of at least a day (STREAM_RAW_RETENTION): an event older than the retention is
/// older than a day, the age from which the stream keeps an event's message in case it has to
/// become a dead letter (`batcher.rs`).
fn at_least_a_day(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration < Duration::from_secs(86_400) {
        return Err(format!("{value} is less than a day (1d)"));
    }
    Ok(duration)
}
