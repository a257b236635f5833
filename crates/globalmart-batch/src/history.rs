//! Run bookkeeping in the warehouse: `batch_runs` (one row per run) and `batch_run_steps` (one
//! per step, with its figures), written outside the steps' transactions so a failure is
//! recorded too. A run whose process died (SIGKILL, power loss) cannot record its end; each run
//! holds an advisory lock on its session for as long as it runs, so the next run can tell such
//! a run from one still going and records it as failed.

use std::time::Instant;

use tokio_postgres::Client;
use tracing::{info, warn};

use crate::error::EtlError;
use crate::figures::{human, Figures};
use crate::monitoring;

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
    monitoring::run(command, outcome.is_ok());
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

/// The lock's second key, from a run's id.
macro_rules! run_key {
    () => {
        "(run_id % 2147483647)::int"
    };
}

/// Records a run as started and takes its lock; $1 the command, $2 [`RUN_LOCK`].
const START: &str = concat!(
    "WITH run AS (INSERT INTO batch_runs (command) VALUES ($1) RETURNING run_id)
     SELECT run_id, pg_advisory_lock($2, ",
    run_key!(),
    ")::text FROM run"
);

/// Runs marked running whose lock nobody holds, recorded as failed with reason $2.
const CLOSE_INTERRUPTED: &str = concat!(
    "UPDATE batch_runs SET status = 'failed', finished_at = now(), error = $2
     WHERE status = 'running' AND NOT EXISTS (
         SELECT 1 FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.objsubid = 2
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid = $1::int::oid AND l.objid = ",
    run_key!(),
    "::oid)
     RETURNING run_id"
);

/// Releases run $1's lock.
const UNLOCK: &str = concat!(
    "SELECT pg_advisory_unlock($2, ",
    run_key!(),
    ")::text FROM batch_runs WHERE run_id = $1"
);

/// Records a run of `command` as started, holding its lock; returns its id.
async fn start(client: &mut Client, command: &str) -> Result<i64, EtlError> {
    // One transaction: no other run can see this row before its lock is held.
    let tx = client.transaction().await?;
    let run = tx.query_one(START, &[&command, &RUN_LOCK]).await?.get(0);
    tx.commit().await?;
    Ok(run)
}

/// Records as failed every run still marked running whose lock nobody holds: its process
/// ended before it could say how the run went. Their unfinished steps were rolled back.
async fn close_interrupted(client: &Client) -> Result<(), EtlError> {
    const WHY: &str = "interrupted: the process running it ended before the run did \
        (its unfinished step was rolled back)";
    let rows = client.query(CLOSE_INTERRUPTED, &[&RUN_LOCK, &WHY]).await?;
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
    outcome: Result<&Figures, &EtlError>,
) -> Result<(), EtlError> {
    let figure = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let (status, figures, error) = match outcome {
        Ok(figures) => {
            monitoring::step(step, figures);
            ("succeeded", *figures, None)
        }
        Err(e) => ("failed", Figures::default(), Some(e.to_string())),
    };
    let duration = i64::try_from(figures.duration.as_millis()).unwrap_or(i64::MAX);
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
                &figure(figures.extracted),
                &figure(figures.transformed),
                &figure(figures.loaded),
                &figure(figures.skipped),
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
    client.execute(UNLOCK, &[&run, &RUN_LOCK]).await?;
    Ok(())
}
