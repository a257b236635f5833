//! `globalmart-stream`: Kafka topics into the realtime database, effectively once.

use std::process::ExitCode;

use globalmart_stream::{config::Config, consume};
use tracing::error;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = globalmart_core::config::load();
    globalmart_core::logging::init();
    match consume::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
