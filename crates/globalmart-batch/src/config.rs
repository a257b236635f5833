//! The batch's settings: both databases, how much to load per transaction, and what to run;
//! read by the one loader in globalmart-core.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use globalmart_core::config::{parse_duration, DbArgs, Realtime, Warehouse};

/// Moves new realtime rows into the warehouse (SCD2 dimensions, facts). Run by cron or
/// scripts/run_loop.sh; settings come from flags, the environment or `.env`, and go before the
/// command: `globalmart-batch --chunk-rows 50000 etl`.
#[derive(Debug, Parser)]
#[command(name = "globalmart-batch", version, about)]
pub struct Config {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub realtime: DbArgs<Realtime>,

    #[command(flatten)]
    pub warehouse: DbArgs<Warehouse>,

    /// Source rows per warehouse transaction (each moves its table's watermark).
    #[arg(long, env = "BATCH_CHUNK_ROWS", default_value = "200000",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_rows: u64,

    /// How long to wait for the stream's transactions in flight before giving up: 30s, 2m.
    #[arg(long, env = "BATCH_LOCK_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub lock_timeout: Duration,

    /// How long to wait at start for the databases to answer, in seconds.
    #[arg(long, env = "BATCH_DB_WAIT_SECONDS", default_value = "60",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub db_wait_seconds: u64,

    /// Where to serve Prometheus metrics (GET /metrics).
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9103")]
    pub metrics_addr: SocketAddr,
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Extract the realtime rows after each table's watermark, transform them with DataFusion
    /// and load the warehouse: dim_products and dim_customers (SCD2), then fact_sales,
    /// fact_product_views and fact_cart_events.
    Etl,
}

impl Command {
    /// Its name in batch_runs.
    pub fn name(self) -> &'static str {
        match self {
            Command::Etl => "etl",
        }
    }
}
