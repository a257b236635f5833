//! `globalmart-stream`: Kafka topics into the realtime database, effectively once.

mod config;

use tracing::info;

fn main() -> anyhow::Result<()> {
    let config: config::Config = globalmart_core::config::load();
    globalmart_core::logging::init();
    info!(?config, "configuration loaded");
    anyhow::bail!(
        "saving events is not built yet (issue #5): this build only checks its configuration"
    )
}
