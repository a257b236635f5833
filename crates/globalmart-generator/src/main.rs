//! `globalmart-generator`: realistic e-commerce events into Kafka.

mod config;

use tracing::info;

fn main() -> anyhow::Result<()> {
    let config: config::Config = globalmart_core::config::load();
    globalmart_core::logging::init();
    info!(?config, "configuration loaded");
    anyhow::bail!(
        "event generation is not built yet (issue #4): this build only checks its configuration"
    )
}
