//! `globalmart-stream`: Kafka topics into the realtime database, effectively once. Builds the
//! parts and runs the pipeline.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use globalmart_core::db::{self, Db};
use globalmart_core::{metrics, shutdown};
use globalmart_stream::pipeline::{self, Parts, Settings};
use globalmart_stream::publish::Publisher;
use globalmart_stream::source::KafkaSource;
use globalmart_stream::Config;
use tracing::{error, info};

/// Parsing a message allocates a handful of small strings and frees them a batch later; the
/// system allocator spent a fifth of the stream's time on that, mimalloc much less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = globalmart_core::config::load();
    globalmart_core::logging::init();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<()> {
    let shutdown = shutdown::on_signal()?;
    globalmart_stream::register_metrics();
    metrics::serve(config.metrics_addr, shutdown.clone()).await?;
    info!(?config, "configuration loaded");
    let pool = db::connect_and_migrate(
        &config.realtime.settings,
        Db::Realtime,
        "globalmart-stream",
        4,
        Duration::from_secs(config.db_wait_seconds),
    )
    .await?;
    let parts = Parts {
        source: KafkaSource::subscribe(&config.kafka, &config.group)?,
        pool,
        publisher: Publisher::new(&config.kafka)?,
        shutdown,
    };
    pipeline::run(parts, Settings::from(&config)).await
}
