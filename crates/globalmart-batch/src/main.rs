//! `globalmart-batch`: the warehouse ETL and analytics. Builds the parts (pools, and for
//! `run --every` the metrics endpoint and shutdown signal) and runs the command.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use globalmart_batch::analytics::Basis;
use globalmart_batch::config::{Command, Config};
use globalmart_batch::etl::{self, Settings};
use globalmart_batch::schedule::{self, REDO};
use globalmart_batch::{analytics, monitoring, quality, reset};
use globalmart_core::db::{self, apply_migrations, connect_and_migrate, Db};
use globalmart_core::{metrics, shutdown};
use tracing::{error, info};

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = globalmart_core::config::load();
    globalmart_core::logging::init();
    match run(config).await {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let wait = Duration::from_secs(config.db_wait_seconds);
    let name = "globalmart-batch";
    if config.command == (Command::Reset { yes: false }) {
        error!("reset drops every warehouse table and its data: run `globalmart-batch reset --yes` to do it");
        return Ok(ExitCode::from(2));
    }
    if config.command == Command::Migrate {
        for (settings, db) in [
            (&config.warehouse.settings, Db::Warehouse),
            (&config.realtime.settings, Db::Realtime),
        ] {
            // db::migrate logs what it applied.
            apply_migrations(settings, db, name, wait).await?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Three connections to each database: the ETL loads its three fact tables side by side
    // (etl::Lanes).
    let warehouse_pool =
        connect_and_migrate(&config.warehouse.settings, Db::Warehouse, name, 3, wait).await?;
    let settings = Settings {
        chunk_rows: usize::try_from(config.chunk_rows).unwrap_or(usize::MAX),
        lock_timeout: config.lock_timeout,
    };
    // Connected (and migrated) only by the commands that read it.
    let realtime_pool = connect_and_migrate(&config.realtime.settings, Db::Realtime, name, 3, wait);
    match &config.command {
        Command::Etl => {
            let realtime_pool = realtime_pool.await?;
            schedule::connected(&realtime_pool, &warehouse_pool, async |rt, wh, lanes| {
                etl::run(rt, wh, lanes, &settings).await
            })
            .await?;
        }
        Command::Analytics(analysis) => {
            let mut warehouse = db::get(&warehouse_pool, Db::Warehouse).await?;
            let basis = if analysis.recompute {
                Basis::Recompute
            } else {
                Basis::Totals
            };
            analytics::run(&mut warehouse, analysis.day.date(), basis)
                .await
                .context(REDO)?;
        }
        Command::Run(repeat) => {
            let realtime_pool = realtime_pool.await?;
            let Some(every) = repeat.every else {
                let date = repeat.day.date();
                schedule::connected(&realtime_pool, &warehouse_pool, async |rt, wh, lanes| {
                    schedule::run_once(rt, wh, lanes, &settings, date).await
                })
                .await?;
                return Ok(ExitCode::SUCCESS);
            };
            let shutdown = shutdown::on_signal()?;
            monitoring::register();
            metrics::serve(config.metrics_addr, shutdown.clone()).await?;
            schedule::every(
                every,
                &realtime_pool,
                &warehouse_pool,
                &settings,
                repeat.day.date,
                &shutdown,
            )
            .await?;
        }
        Command::Check { max_lag } => {
            let realtime = db::get(&realtime_pool.await?, Db::Realtime).await?;
            let warehouse = db::get(&warehouse_pool, Db::Warehouse).await?;
            let findings = quality::check(&realtime, &warehouse, *max_lag).await?;
            return Ok(print_findings(&findings));
        }
        Command::Validate => {
            let realtime = db::get(&realtime_pool.await?, Db::Realtime).await?;
            let warehouse = db::get(&warehouse_pool, Db::Warehouse).await?;
            let findings = quality::validate(&realtime, &warehouse).await?;
            return Ok(print_findings(&findings));
        }
        // Done before connecting for the other commands, above.
        Command::Migrate => {}
        Command::Reset { .. } => {
            let mut warehouse = db::get(&warehouse_pool, Db::Warehouse).await?;
            reset::reset(&mut warehouse).await?;
            info!("the warehouse is empty and migrated again");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the findings; failure when any check failed.
fn print_findings(findings: &[quality::Finding]) -> ExitCode {
    println!("{}", quality::table(findings));
    if findings.iter().all(|f| f.failures == 0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
