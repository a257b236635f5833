//! `globalmart-batch`: the warehouse ETL.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use globalmart_batch::config::{Command, Config};
use globalmart_batch::etl::{self, Settings};
use globalmart_core::db::{connect_and_migrate, Db};
use tracing::error;

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

async fn run(config: Config) -> anyhow::Result<()> {
    let wait = Duration::from_secs(config.db_wait_seconds);
    let name = "globalmart-batch";
    let realtime = connect_and_migrate(&config.realtime.settings, Db::Realtime, name, 1, wait);
    let warehouse = connect_and_migrate(&config.warehouse.settings, Db::Warehouse, name, 1, wait);
    let (realtime, warehouse) = tokio::try_join!(realtime, warehouse)?;
    let (mut realtime, mut warehouse) =
        tokio::try_join!(realtime.get(), warehouse.get()).context("connecting to the databases")?;
    match config.command {
        Command::Etl => {
            let settings = Settings {
                chunk_rows: usize::try_from(config.chunk_rows).unwrap_or(usize::MAX),
                lock_timeout: config.lock_timeout,
            };
            etl::run(&mut realtime, &mut warehouse, &settings)
                .await
                .context(
                "the ETL failed; its unfinished step was rolled back and the next run redoes it",
            )?;
        }
    }
    Ok(())
}
