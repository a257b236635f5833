//! `globalmart-generator`: realistic e-commerce events into Kafka.

use std::process::ExitCode;

use globalmart_generator::{config::Config, run};
use tracing::error;

/// Building an event allocates a handful of small strings; at a million events a second the
/// system allocator is a fifth of the work, mimalloc much less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = globalmart_core::config::load();
    globalmart_core::logging::init();
    match run::run(config).await {
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
