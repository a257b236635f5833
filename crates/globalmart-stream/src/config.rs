//! The stream's settings: Kafka, the realtime database, the consumer group and metrics, all read
//! by the one loader in globalmart-core.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use globalmart_core::config::{parse_duration, DbArgs, KafkaArgs, Realtime};
use rust_decimal::Decimal;

use crate::tally::Thresholds;

/// Consumes the event and catalogue topics and saves every event exactly once into the realtime
/// database, keeping the realtime metrics and alerts.
#[derive(Debug, Parser)]
#[command(name = "globalmart-stream", version, about)]
pub struct Config {
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

    /// Exit 0 once caught up and idle for this many seconds (tests, benchmarks, one-shot loads).
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

    /// Metric windows older than this are deleted (hourly): 7d, 48h.
    #[arg(long, env = "STREAM_METRICS_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub metrics_retention: Duration,

    /// Where to serve Prometheus metrics (GET /metrics).
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9102")]
    pub metrics_addr: SocketAddr,
}

impl Config {
    /// The anomaly thresholds.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            high_value: self.high_value_threshold,
            high_quantity: self.high_quantity_threshold,
            low_stock: self.low_stock_threshold,
            suspicious_amount: self.suspicious_order_amount,
            high_demand_units: self.high_demand_units,
            restock_horizon_hours: self.restock_horizon_hours,
        }
    }
}
