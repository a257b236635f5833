//! `run --every`: the ETL and the analytics again and again, until Ctrl+C or SIGTERM. A failed
//! run is logged and the next one comes anyway; each run takes its connections from the pools
//! again, so one a database dropped in between (a restart, a terminated session) is replaced
//! instead of failing every run after it. Only a refused connection (a changed password), which
//! every later run would meet too, stops it.

use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use deadpool_postgres::Pool;
use globalmart_core::db::{self, Db, DbError};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::analytics::{self, Basis};
use crate::error::EtlError;
use crate::etl::{self, Lane, Lanes, Settings};
use crate::history;

/// What to say when a run fails.
pub const REDO: &str =
    "the run failed; its unfinished step was rolled back and the next run redoes it";

/// One `run`: the ETL, then the analytics of `date`, recorded as one run.
pub async fn run_once(
    realtime: &mut Client,
    warehouse: &mut Client,
    lanes: Lanes<'_>,
    settings: &Settings,
    date: NaiveDate,
) -> Result<(), EtlError> {
    history::recorded(warehouse, "run", async |warehouse, run| {
        etl::tables(realtime, warehouse, lanes, settings, run).await?;
        analytics::jobs(warehouse, date, Basis::Totals, run).await?;
        Ok(())
    })
    .await
}

/// Runs `work` on connections from the pools (each of at least 3): a realtime and a warehouse
/// one, and the ETL's other [`Lanes`]. A failure of `work` says the next run redoes it.
pub async fn connected<T>(
    realtime: &Pool,
    warehouse: &Pool,
    work: impl AsyncFnOnce(&mut Client, &mut Client, Lanes<'_>) -> Result<T, EtlError>,
) -> anyhow::Result<T> {
    let mut first_realtime = db::get(realtime, Db::Realtime).await?;
    let mut first_warehouse = db::get(warehouse, Db::Warehouse).await?;
    let views_realtime = db::get(realtime, Db::Realtime).await?;
    let mut views_warehouse = db::get(warehouse, Db::Warehouse).await?;
    let carts_realtime = db::get(realtime, Db::Realtime).await?;
    let mut carts_warehouse = db::get(warehouse, Db::Warehouse).await?;
    let lanes = [
        Lane {
            realtime: &views_realtime,
            warehouse: &mut views_warehouse,
        },
        Lane {
            realtime: &carts_realtime,
            warehouse: &mut carts_warehouse,
        },
    ];
    work(&mut first_realtime, &mut first_warehouse, lanes)
        .await
        .context(REDO)
}

/// A run every `every` until `shutdown`, on connections from the two pools; the analysis date
/// is `date`, or each run's today (UTC). An error only for a refused connection.
pub async fn every(
    every: Duration,
    realtime: &Pool,
    warehouse: &Pool,
    settings: &Settings,
    date: Option<NaiveDate>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    info!("a run every {every:?}; Ctrl+C or SIGTERM stops after the run in progress");
    loop {
        let date = date.unwrap_or_else(|| chrono::Utc::now().date_naive());
        let run = connected(realtime, warehouse, async |realtime, warehouse, lanes| {
            run_once(realtime, warehouse, lanes, settings, date).await
        });
        if let Err(e) = run.await {
            // A refused connection will be refused next time too: stop, naming the settings.
            if matches!(e.downcast_ref(), Some(DbError::Refused { .. })) {
                return Err(e);
            }
            error!("{e:#}");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
    Ok(())
}
