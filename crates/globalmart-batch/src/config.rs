//! The batch's settings: both databases, how much to load per transaction, and what to run;
//! read by the one loader in globalmart-core.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
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

    /// Where `run --every` serves Prometheus metrics (GET /metrics).
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9103")]
    pub metrics_addr: SocketAddr,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Extract the realtime rows after each table's watermark, transform them with DataFusion
    /// and load the warehouse: dim_products and dim_customers (SCD2), then fact_sales,
    /// fact_product_views and fact_cart_events.
    Etl,
    /// Compute the analytics snapshot of a day: product_performance, rfm_analysis (scores
    /// written to dim_customers), customer_segments, sales_trends. Reads the running totals the
    /// ETL keeps, or the facts up to the day's end when later facts are loaded. A rerun on the
    /// same day replaces that day's snapshot.
    Analytics(Analysis),
    /// etl, then analytics: what cron and scripts/run_loop.sh run. With --every, runs again
    /// every interval until Ctrl+C / SIGTERM, serving /metrics on METRICS_ADDR meanwhile.
    Run(Repeat),
    /// Check the warehouse: duplicates, orphan and point-in-time keys, missing values, value
    /// ranges, SCD2 consistency, freshness. Prints a table; exits 1 when a check fails.
    Check {
        /// How far the newest loaded sale may lag behind the newest realtime one: 15m, 1h.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        max_lag: Duration,
    },
    /// Compare the facts with their realtime source up to the ETL's watermarks, over the days the
    /// realtime database keeps (STREAM_RAW_RETENTION): row counts, missing and extra keys, units
    /// and amounts. Prints a table; exits 1 on any difference.
    Validate,
    /// Apply the migrations of both databases and exit: run it as the owner role when the
    /// batch runs as a runtime role, which does not migrate (docs/USER_GUIDE.md, "Production").
    Migrate,
    /// Drop and recreate the warehouse (every table, then the migrations again; the owner
    /// role only).
    Reset {
        /// Yes, drop all warehouse data.
        #[arg(long)]
        yes: bool,
    },
}

/// The analysis date, and how often to run.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Repeat {
    #[command(flatten)]
    pub day: Day,
    /// Keep running: a run every this long (5m, 1h); a failed run is logged and the next one
    /// comes anyway.
    #[arg(long, value_parser = parse_duration)]
    pub every: Option<Duration>,
}

/// The analysis date, and what to compute it from.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Analysis {
    #[command(flatten)]
    pub day: Day,
    /// Compute from every fact instead of the running totals: an audit of the totals (the
    /// snapshot must come out the same), slower and with memory that grows with history.
    #[arg(long)]
    pub recompute: bool,
}

/// The analysis date.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Day {
    /// The day to analyse (facts up to its end), YYYY-MM-DD; default today (UTC).
    #[arg(long)]
    pub date: Option<NaiveDate>,
}

impl Day {
    /// The date given, or today in UTC.
    pub fn date(&self) -> NaiveDate {
        self.date.unwrap_or_else(|| chrono::Utc::now().date_naive())
    }
}
