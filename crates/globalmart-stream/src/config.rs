//! The stream's settings: Kafka, the realtime database, the consumer group and metrics, all read
//! by the one loader in globalmart-core.

use std::net::SocketAddr;

use clap::Parser;
use globalmart_core::config::{DbArgs, KafkaArgs, Realtime};

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

    /// Where to serve Prometheus metrics (GET /metrics).
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9102")]
    pub metrics_addr: SocketAddr,
}
