//! Run bookkeeping in the warehouse: `batch_runs` (one row per run) and `batch_run_steps` (one
//! per step, with its figures), written outside the steps' transactions so a failure is
//! recorded too.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tracing::info;

use crate::error::EtlError;
use crate::report;
use crate::step::Report;

/// Runs `work` as run `command`: recorded in batch_runs whatever happens, between the guide's
/// start and end lines.
pub async fn recorded<T>(
    warehouse: &mut Client,
    command: &str,
    work: impl AsyncFnOnce(&mut Client, i64) -> Result<T, EtlError>,
) -> Result<T, EtlError> {
    let started = Instant::now();
    let run = start(warehouse, command).await?;
    info!("=== Batch Processing Started ===");
    let outcome = work(warehouse, run).await;
    let error = outcome.as_ref().err().map(ToString::to_string);
    finish(warehouse, run, error.as_deref()).await?;
    report::run(command, outcome.is_ok());
    if outcome.is_ok() {
        info!(
            "[Complete] Batch processing finished in {}",
            human(started.elapsed())
        );
    }
    outcome
}

/// Records a run of `command` as started; returns its id.
async fn start(client: &Client, command: &str) -> Result<i64, EtlError> {
    let row = client
        .query_one(
            "INSERT INTO batch_runs (command) VALUES ($1) RETURNING run_id",
            &[&command],
        )
        .await?;
    Ok(row.get(0))
}

/// Records that `step` of `run` started.
pub async fn step_started(client: &Client, run: i64, step: &str) -> Result<(), EtlError> {
    client
        .execute(
            "INSERT INTO batch_run_steps (run_id, step, started_at, status)
             VALUES ($1, $2, now(), 'running')",
            &[&run, &step],
        )
        .await?;
    Ok(())
}

/// Records how `step` of `run` ended: its figures, or its error.
pub async fn step_finished(
    client: &Client,
    run: i64,
    step: &str,
    outcome: Result<&Report, &EtlError>,
) -> Result<(), EtlError> {
    let figure = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let (status, report, error) = match outcome {
        Ok(report) => {
            report::step(step, report);
            ("succeeded", *report, None)
        }
        Err(e) => ("failed", Report::default(), Some(e.to_string())),
    };
    let duration = i64::try_from(report.duration.as_millis()).unwrap_or(i64::MAX);
    client
        .execute(
            "UPDATE batch_run_steps SET finished_at = now(), status = $3, rows_extracted = $4,
                 rows_transformed = $5, rows_loaded = $6, duplicates_skipped = $7,
                 duration_ms = CASE WHEN $3 = 'succeeded' THEN $8
                     ELSE (extract(epoch FROM now() - started_at) * 1000)::bigint END,
                 error = $9
             WHERE run_id = $1 AND step = $2",
            &[
                &run,
                &step,
                &status,
                &figure(report.extracted),
                &figure(report.loaded.transformed),
                &figure(report.loaded.loaded),
                &figure(report.loaded.skipped),
                &duration,
                &error,
            ],
        )
        .await?;
    Ok(())
}

/// Records the end of `run`: succeeded, or failed with `error`.
async fn finish(client: &Client, run: i64, error: Option<&str>) -> Result<(), EtlError> {
    let status = if error.is_some() {
        "failed"
    } else {
        "succeeded"
    };
    client
        .execute(
            "UPDATE batch_runs SET finished_at = now(), status = $2, error = $3 WHERE run_id = $1",
            &[&run, &status, &error],
        )
        .await?;
    Ok(())
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
pub fn human(duration: Duration) -> String {
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
