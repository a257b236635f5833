//! Run bookkeeping in the warehouse: `batch_runs` (one row per run) and `batch_run_steps` (one
//! per step, with its figures), written outside the steps' transactions so a failure is
//! recorded too. A run whose process died (SIGKILL, power loss) cannot record its end; each run
//! holds an advisory lock on its session for as long as it runs, so the next run can tell such
//! a run from one still going and records it as failed.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tracing::{info, warn};

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
    close_interrupted(warehouse).await?;
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

/// The advisory lock a run holds while it runs: (RUN_LOCK, its id). Ids wrap at 2^31, the
/// lock's second key being an int.
const RUN_LOCK: i32 = 0x474d_5255;
const RUN_KEY: &str = "(run_id % 2147483647)::int";

/// Records a run of `command` as started, holding its lock; returns its id.
async fn start(client: &mut Client, command: &str) -> Result<i64, EtlError> {
    // One transaction: no other run can see this row before its lock is held.
    let tx = client.transaction().await?;
    let run = tx
        .query_one(
            &format!(
                "WITH run AS (INSERT INTO batch_runs (command) VALUES ($1) RETURNING run_id)
                 SELECT run_id, pg_advisory_lock($2, {RUN_KEY})::text FROM run"
            ),
            &[&command, &RUN_LOCK],
        )
        .await?
        .get(0);
    tx.commit().await?;
    Ok(run)
}

/// Records as failed every run still marked running whose lock nobody holds: its process
/// ended before it could say how the run went. Their unfinished steps were rolled back.
async fn close_interrupted(client: &Client) -> Result<(), EtlError> {
    const WHY: &str = "interrupted: the process running it ended before the run did \
        (its unfinished step was rolled back)";
    let rows = client
        .query(
            &format!(
                "UPDATE batch_runs SET status = 'failed', finished_at = now(), error = $2
                 WHERE status = 'running' AND NOT EXISTS (
                     SELECT 1 FROM pg_locks l
                     WHERE l.locktype = 'advisory' AND l.objsubid = 2
                       AND l.database = (SELECT oid FROM pg_database
                                         WHERE datname = current_database())
                       AND l.classid = $1::int::oid AND l.objid = {RUN_KEY}::oid)
                 RETURNING run_id"
            ),
            &[&RUN_LOCK, &WHY],
        )
        .await?;
    let runs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    if runs.is_empty() {
        return Ok(());
    }
    client
        .execute(
            "UPDATE batch_run_steps SET status = 'failed', finished_at = now(), error = $2
             WHERE run_id = ANY($1) AND status = 'running'",
            &[&runs, &WHY],
        )
        .await?;
    warn!(
        ?runs,
        "earlier runs ended with their process, unrecorded; now recorded as failed"
    );
    Ok(())
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
    // `run --every` keeps its session: the lock goes with the run, not with the process.
    client
        .execute(
            &format!(
                "SELECT pg_advisory_unlock($2, {RUN_KEY})::text FROM batch_runs WHERE run_id = $1"
            ),
            &[&run, &RUN_LOCK],
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
