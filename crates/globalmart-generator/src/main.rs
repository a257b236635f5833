//! `globalmart-generator`: realistic e-commerce events into Kafka. Builds the parts (the
//! output, the metrics endpoint, the shutdown signal) and runs the generation.

use std::process::ExitCode;

use anyhow::Result;
use globalmart_core::kafka::Refusals;
use globalmart_core::{metrics, shutdown};
use globalmart_generator::config::Config;
use globalmart_generator::generate;
use globalmart_generator::producer::{Delivery, Output};
use tracing::error;

/// Building an event allocates a handful of small strings; at a million events a second the
/// system allocator is a fifth of the work, mimalloc much less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = globalmart_core::config::load();
    globalmart_core::logging::init();
    match run(&config).await {
        Ok(delivery) if delivery.failed + delivery.in_flight() == 0 => ExitCode::SUCCESS,
        Ok(delivery) => {
            error!(
                "{} of {} records were not delivered",
                delivery.failed + delivery.in_flight(),
                delivery.sent
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: &Config) -> Result<Delivery> {
    let shutdown = shutdown::on_signal()?;
    globalmart_generator::monitoring::register();
    metrics::serve(config.metrics_addr, shutdown.clone()).await?;
    let refusals = Refusals::new(shutdown.clone());
    let output = Output::for_config(config, refusals.clone())?;
    let delivery = generate::run(config, output, shutdown).await;
    // A refused connection stopped the run: that is the error to exit with.
    refusals.check()?;
    delivery
}
