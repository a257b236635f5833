//! The batch's settings: both databases and metrics, read by the one loader in globalmart-core.

use std::net::SocketAddr;

use clap::Parser;
use globalmart_core::config::{DbArgs, Realtime, Warehouse};

/// Moves new realtime rows into the warehouse (SCD2 dimensions, facts) and computes the
/// analytics tables. Run by cron or scripts/run_loop.sh.
#[derive(Debug, Parser)]
#[command(name = "globalmart-batch", version, about)]
pub struct Config {
    #[command(flatten)]
    pub realtime: DbArgs<Realtime>,

    #[command(flatten)]
    pub warehouse: DbArgs<Warehouse>,

    /// Where to serve Prometheus metrics (GET /metrics).
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9103")]
    pub metrics_addr: SocketAddr,
}
