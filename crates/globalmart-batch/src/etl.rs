//! The `etl` command: every step in order, with the guide's progress lines, and the run and
//! its steps recorded in batch_runs / batch_run_steps.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tracing::info;

use crate::error::EtlError;
use crate::extract;
use crate::runs;
use crate::step::{Report, Step, STEPS};

/// How the ETL reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Source rows per warehouse transaction.
    pub chunk_rows: usize,
    /// How long to wait for the realtime writers' transactions in flight.
    pub lock_timeout: Duration,
}

/// Runs every step; returns each step's figures. The run is recorded whatever happens.
pub async fn run(
    realtime: &mut Client,
    warehouse: &mut Client,
    settings: &Settings,
) -> Result<Vec<(Step, Report)>, EtlError> {
    let started = Instant::now();
    let run = runs::start(warehouse, "etl").await?;
    info!("=== Batch Processing Started ===");
    let outcome = steps(realtime, warehouse, settings, run).await;
    let error = outcome.as_ref().err().map(ToString::to_string);
    runs::finish(warehouse, run, error.as_deref()).await?;
    if outcome.is_ok() {
        info!(
            "[Complete] Batch processing finished in {}",
            human(started.elapsed())
        );
    }
    outcome
}

async fn steps(
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

/// 15234 as "15,234".
pub fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "4m 32s" from a minute on, "3.2s" below.
fn human(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds >= 60 {
        format!("{}m {}s", seconds / 60, seconds % 60)
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(15234), "15,234");
        assert_eq!(grouped(1234567), "1,234,567");
    }

    #[test]
    fn durations_read_like_the_guide() {
        assert_eq!(human(Duration::from_secs(272)), "4m 32s");
        assert_eq!(human(Duration::from_millis(3240)), "3.2s");
    }
}
