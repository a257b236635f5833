//! `globalmart-stream`: Kafka topics into the realtime database, effectively once. Builds the
//! parts and runs the pipeline.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use globalmart_core::db::{self, Db};
use globalmart_core::kafka::Refusals;
use globalmart_core::{metrics, shutdown};
use globalmart_stream::config::Command;
use globalmart_stream::instance;
use globalmart_stream::pipeline::{self, Parts, Settings};
use globalmart_stream::publish::Publisher;
use globalmart_stream::source::{KafkaSource, LANES};
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
    let wait = Duration::from_secs(config.db_wait_seconds);
    if config.command == Some(Command::Migrate) {
        // db::migrate logs what it applied.
        let settings = &config.realtime.settings;
        db::apply_migrations(settings, Db::Realtime, "globalmart-stream", wait).await?;
        return Ok(());
    }
    let shutdown = shutdown::on_signal()?;
    globalmart_stream::register_metrics();
    metrics::serve(config.metrics_addr, shutdown.clone()).await?;
    info!(?config, "configuration loaded");
    let pool = db::connect_and_migrate(
        &config.realtime.settings,
        Db::Realtime,
        "globalmart-stream",
        // Each lane's two saves side by side (when behind) and its source's stored offsets,
        // housekeeping, and one to spare.
        8,
        wait,
    )
    .await?;
    // Held until the stream exits: no other instance runs under this identity meanwhile.
    let _identity = match &config.instance_id {
        Some(id) => Some(instance::claim(&config.realtime.settings, &config.group, id).await?),
        None => None,
    };
    let refusals = Refusals::new(shutdown.clone());
    let instance_id = config.instance_id.as_deref();
    let sources = (LANES.iter())
        .map(|lane| {
            KafkaSource::subscribe(
                &config.kafka,
                &config.group,
                instance_id,
                *lane,
                refusals.clone(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let parts = Parts {
        sources,
        pool,
        publisher: Publisher::new(&config.kafka, refusals.clone())?,
        shutdown,
    };
    let outcome = pipeline::run(parts, Settings::from(&config)).await;
    // A refused connection stopped the pipeline: that is the error to exit with.
    refusals.check()?;
    outcome
}
