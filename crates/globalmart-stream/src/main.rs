//! `globalmart-stream`: Kafka topics into the realtime database, effectively once.

use std::process::ExitCode;

use globalmart_stream::{config::Config, consume};
use tracing::error;

/// Parsing a message allocates a handful of small strings and frees them a batch later; the
/// system allocator spent a fifth of the stream's time on that, mimalloc much less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
