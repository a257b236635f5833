//! `globalmart-batch`: the warehouse ETL and analytics.

mod config;

use tracing::info;

fn main() -> anyhow::Result<()> {
    let config: config::Config = globalmart_core::config::load();
    globalmart_core::logging::init();
    info!(?config, "configuration loaded");
    anyhow::bail!(
        "the warehouse ETL is not built yet (issue #7): this build only checks its configuration"
    )
}
