//! The `etl` command: every step in order, with the guide's progress lines, and the run and
//! its steps recorded in batch_runs / batch_run_steps.

use std::time::Duration;

use tokio_postgres::Client;
use tracing::info;

use crate::error::EtlError;
use crate::extract;
use crate::runs::{self, grouped, human};
use crate::step::{Report, Step, STEPS};

/// How the ETL reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Source rows per warehouse transaction.
    pub chunk_rows: usize,
    /// How long to wait for the realtime writers' transactions in flight.
    pub lock_timeout: Duration,
}

/// Runs every step as run `etl`; returns each step's figures.
pub async fn run(
    realtime: &mut Client,
    warehouse: &mut Client,
    settings: &Settings,
) -> Result<Vec<(Step, Report)>, EtlError> {
    runs::recorded(warehouse, "etl", async |warehouse, run| {
        steps(realtime, warehouse, settings, run).await
    })
    .await
}

/// Runs every step as part of run `run`.
pub async fn steps(
    realtime: &mut Client,
    warehouse: &mut Client,
    settings: &Settings,
    run: i64,
) -> Result<Vec<(Step, Report)>, EtlError> {
    let sources: Vec<&str> = STEPS.iter().map(|s| s.source().table).collect();
    let settled = extract::settled(realtime, &sources, settings.lock_timeout).await?;
    let mut reports = Vec::with_capacity(STEPS.len());
    for (step, upto) in STEPS.into_iter().zip(settled) {
        info!("[ETL] Processing {}...", step.name());
        runs::step_started(warehouse, run, step.name()).await?;
        let outcome = step
            .run(realtime, warehouse, upto, settings.chunk_rows)
            .await;
        runs::step_finished(warehouse, run, step.name(), outcome.as_ref()).await?;
        let report = outcome?;
        let loaded = report.loaded;
        info!(
            "  Extracted: {} {}",
            grouped(report.extracted),
            step.source().rows
        );
        info!("  Transformed: {} records", grouped(loaded.transformed));
        let (new, skipped) = match step {
            Step::Dimension(_) => ("new or completed versions", "unchanged or already loaded"),
            Step::Fact(_) => ("new records", "duplicates skipped"),
        };
        info!(
            "  Loaded: {} {new} ({} {skipped}) in {}",
            grouped(loaded.loaded),
            grouped(loaded.skipped),
            human(report.duration)
        );
        reports.push((step, report));
    }
    Ok(reports)
}
