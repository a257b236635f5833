//! `globalmart-batch`: the warehouse ETL.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use deadpool_postgres::{Object, Pool};
use globalmart_batch::config::{Command, Config};
use globalmart_batch::error::EtlError;
use globalmart_batch::etl::{self, Settings};
use globalmart_batch::{analytics, quality, report, runs};
use globalmart_core::db::{connect_and_migrate, migrate, Db};
use globalmart_core::metrics;
use tokio_postgres::Client;
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
    let warehouse_pool =
        connect_and_migrate(&config.warehouse.settings, Db::Warehouse, name, 1, wait).await?;
    let mut warehouse = connection(&warehouse_pool, "warehouse").await?;
    let settings = Settings {
        chunk_rows: usize::try_from(config.chunk_rows).unwrap_or(usize::MAX),
        lock_timeout: config.lock_timeout,
    };
    // Connected (and migrated) only by the commands that read it.
    let realtime_pool = connect_and_migrate(&config.realtime.settings, Db::Realtime, name, 1, wait);
    const REDO: &str =
        "the run failed; its unfinished step was rolled back and the next run redoes it";
    match &config.command {
        Command::Etl => {
            let mut realtime = connection(&realtime_pool.await?, "realtime database").await?;
            etl::run(&mut realtime, &mut warehouse, &settings)
                .await
                .context(REDO)?;
        }
        Command::Analytics(day) => {
            analytics::run(&mut warehouse, day.date())
                .await
                .context(REDO)?;
        }
        Command::Run(repeat) => {
            let realtime_pool = realtime_pool.await?;
            let Some(every) = repeat.every else {
                let mut realtime = connection(&realtime_pool, "realtime database").await?;
                run_once(&mut realtime, &mut warehouse, &settings, repeat.day.date())
                    .await
                    .context(REDO)?;
                return Ok(ExitCode::SUCCESS);
            };
            let shutdown = globalmart_core::shutdown::on_signal()?;
            report::register();
            metrics::serve(config.metrics_addr, shutdown.clone()).await?;
            info!("a run every {every:?}; Ctrl+C or SIGTERM stops after the run in progress");
            // Each run takes its connections from the pools again: one a database dropped in
            // between (a restart, a terminated session) is replaced instead of failing every
            // run after it.
            drop(warehouse);
            loop {
                let run = async {
                    let mut warehouse = connection(&warehouse_pool, "warehouse").await?;
                    let mut realtime = connection(&realtime_pool, "realtime database").await?;
                    run_once(&mut realtime, &mut warehouse, &settings, repeat.day.date())
                        .await
                        .context(REDO)
                };
                if let Err(e) = run.await {
                    error!("{e:#}");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
            }
        }
        Command::Check { max_lag } => {
            let realtime = connection(&realtime_pool.await?, "realtime database").await?;
            let findings = quality::check(&realtime, &warehouse, *max_lag).await?;
            return Ok(report(&findings));
        }
        Command::Validate => {
            let realtime = connection(&realtime_pool.await?, "realtime database").await?;
            let findings = quality::validate(&realtime, &warehouse).await?;
            return Ok(report(&findings));
        }
        Command::Reset { .. } => {
            quality::reset(&warehouse).await?;
            migrate(&mut warehouse, Db::Warehouse).await?;
            info!("the warehouse is empty and migrated again");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One `run`: the ETL, then the analytics of `date`, recorded as one run.
async fn run_once(
    realtime: &mut Client,
    warehouse: &mut Client,
    settings: &Settings,
    date: NaiveDate,
) -> Result<(), EtlError> {
    runs::recorded(warehouse, "run", async |warehouse, run| {
        etl::steps(realtime, warehouse, settings, run).await?;
        analytics::jobs(warehouse, date, run).await?;
        Ok(())
    })
    .await
}

/// A connection from `pool`: the one it holds, or a new one if the database closed that.
async fn connection(pool: &Pool, db: &str) -> anyhow::Result<Object> {
    pool.get()
        .await
        .with_context(|| format!("connecting to the {db}"))
}

/// Prints the findings; failure when any check failed.
fn report(findings: &[quality::Finding]) -> ExitCode {
    println!("{}", quality::table(findings));
    if findings.iter().all(|f| f.failures == 0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
