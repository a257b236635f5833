//! Run bookkeeping in the warehouse: `batch_runs` (one row per run) and `batch_run_steps` (one
//! per step, with its figures), written outside the steps' transactions so a failure is
//! recorded too.

use tokio_postgres::Client;

use crate::error::EtlError;
use crate::step::Report;

/// Records a run of `command` as started; returns its id.
pub async fn start(client: &Client, command: &str) -> Result<i64, EtlError> {
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
        Ok(report) => ("succeeded", *report, None),
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
pub async fn finish(client: &Client, run: i64, error: Option<&str>) -> Result<(), EtlError> {
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
