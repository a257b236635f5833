//! The batch killed mid-run (SIGKILL, by the pid of the process this test started) and run
//! again leaves the same warehouse as one clean run: every dimension version and fact, by
//! natural key, checksummed. A killed run is recorded as interrupted, and `run --every` carries
//! on after the databases drop its sessions.

mod common;

use std::process::Stdio;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{ensure, Result};
use globalmart_core::db::Db;
use globalmart_testkit::{database_env, TestStack};
use tokio_postgres::Client;

use common::{batch, save, shop};

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-batch");

/// The warehouse by natural keys (surrogate keys depend on insert order): one checksum per
/// table.
const CHECKSUMS: &str = "
    SELECT 'dim_products', count(*), md5(coalesce(string_agg(concat_ws('|', product_id, version,
        product_name, category, price, rating, effective_start_date, effective_end_date,
        is_current, is_inferred), ',' ORDER BY product_id, version), '')) FROM dim_products
    UNION ALL
    SELECT 'dim_customers', count(*), md5(coalesce(string_agg(concat_ws('|', user_id, version,
        email, age_group, country, total_transactions, total_spent, effective_start_date,
        effective_end_date, is_current), ',' ORDER BY user_id, version), '')) FROM dim_customers
    UNION ALL
    SELECT 'fact_sales', count(*), md5(coalesce(string_agg(concat_ws('|', f.event_id,
        c.user_id, c.version, p.product_id, p.version, f.date_id, f.quantity, f.total_amount),
        ',' ORDER BY f.event_id), ''))
    FROM fact_sales f JOIN dim_customers c USING (customer_id) JOIN dim_products p USING (product_id_pk)
    UNION ALL
    SELECT 'fact_product_views', count(*), md5(coalesce(string_agg(concat_ws('|', f.event_id,
        c.user_id, c.version, p.product_id, p.version, f.event_type), ',' ORDER BY f.event_id), ''))
    FROM fact_product_views f JOIN dim_customers c USING (customer_id)
        LEFT JOIN dim_products p USING (product_id_pk)
    UNION ALL
    SELECT 'fact_cart_events', count(*), md5(coalesce(string_agg(concat_ws('|', f.event_id,
        c.user_id, c.version, p.product_id, p.version, f.event_type, f.cart_value), ','
        ORDER BY f.event_id), ''))
    FROM fact_cart_events f JOIN dim_customers c USING (customer_id)
        LEFT JOIN dim_products p USING (product_id_pk)
    UNION ALL
    SELECT 'etl_watermarks', count(*), md5(coalesce(string_agg(source_table || '=' || last_ingest_seq,
        ',' ORDER BY source_table), '')) FROM etl_watermarks";

async fn checksums(warehouse: &Client) -> Result<Vec<(String, i64, String)>> {
    Ok(warehouse
        .query(CHECKSUMS, &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

async fn count(client: &Client, table: &str) -> Result<i64> {
    Ok(client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0))
}

/// Each run's status, and whether its error says it was interrupted.
async fn runs(warehouse: &Client) -> Result<Vec<(String, bool)>> {
    Ok(warehouse
        .query("SELECT status, error FROM batch_runs ORDER BY run_id", &[])
        .await?
        .iter()
        .map(|r| {
            let error: Option<String> = r.get(1);
            let interrupted = error.is_some_and(|e| e.starts_with("interrupted"));
            (r.get(0), interrupted)
        })
        .collect())
}

async fn running_steps(warehouse: &Client) -> Result<i64> {
    Ok(warehouse
        .query_one(
            "SELECT count(*) FROM batch_run_steps WHERE status = 'running'",
            &[],
        )
        .await?
        .get(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_is_closed_as_interrupted_only_once_its_session_is_gone() -> Result<()> {
    let stack = TestStack::new().await?;
    let out = batch(&stack, ["etl"]).run()?; // the schema, and a first run
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // A run still going: its row, and the lock its session holds (the batch's protocol).
    let alive = stack.warehouse_client().await?;
    alive
        .execute(
            "WITH run AS (INSERT INTO batch_runs (command) VALUES ('etl') RETURNING run_id)
             SELECT pg_advisory_lock(1196249685, (run_id % 2147483647)::int)::text FROM run",
            &[],
        )
        .await?;
    // A run whose process died: its row and a step, no lock.
    let warehouse = stack.warehouse_client().await?;
    warehouse
        .execute(
            "WITH run AS (INSERT INTO batch_runs (command) VALUES ('etl') RETURNING run_id)
             INSERT INTO batch_run_steps (run_id, step, started_at, status)
             SELECT run_id, 'fact_sales', now(), 'running' FROM run",
            &[],
        )
        .await?;

    let out = batch(&stack, ["etl"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let after = [
        ("succeeded".into(), false),
        ("running".into(), false),
        ("failed".into(), true),
        ("succeeded".into(), false),
    ];
    assert_eq!(runs(&warehouse).await?, after);
    assert_eq!(running_steps(&warehouse).await?, 0);

    // Its session gone, the run that was going is interrupted too.
    drop(alive);
    let started = Instant::now();
    while warehouse
        .query_one(
            // This database's: a batch running beside the test (another database) holds its own.
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1196249685
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await?
        .get::<_, i64>(0)
        > 0
    {
        ensure!(
            started.elapsed() < StdDuration::from_secs(10),
            "the closed session's lock is still held after 10 s"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    let out = batch(&stack, ["etl"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let statuses = runs(&warehouse).await?;
    assert_eq!(statuses[1], ("failed".into(), true), "{statuses:?}");
    assert_eq!(statuses.len(), 5);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_killed_mid_run_then_rerun_equals_a_clean_run() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    let warehouse = stack.warehouse_client().await?;
    save(&mut realtime, &shop(5, 0.02, 10_000, 30)).await?;
    let views = count(&realtime, "product_view_events").await?;

    // Small chunks, so the run has many transactions to be killed between (or inside).
    let mut child = std::process::Command::new(BIN)
        .env_clear()
        .envs(database_env(Db::Realtime, &stack.realtime))
        .envs(database_env(Db::Warehouse, &stack.warehouse))
        .env("BATCH_CHUNK_ROWS", "100")
        .arg("etl")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    while count(&warehouse, "fact_sales").await? == 0 {
        ensure!(
            started.elapsed() < StdDuration::from_secs(120),
            "the ETL loaded no sale in 2 minutes"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    child.kill()?; // SIGKILL, to the process this test started
    child.wait()?;
    let loaded_when_killed = count(&warehouse, "fact_product_views").await?;
    assert!(
        loaded_when_killed < views,
        "the kill came after the run had finished: nothing was tested"
    );

    let out = batch(&stack, ["etl"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let after_kill = checksums(&warehouse).await?;
    assert_eq!(count(&warehouse, "fact_product_views").await?, views);
    // The killed run could not record its end: the rerun found its lock gone, recorded it as
    // failed, steps included, and then succeeded.
    assert_eq!(
        runs(&warehouse).await?,
        [("failed".into(), true), ("succeeded".into(), false)]
    );
    assert_eq!(running_steps(&warehouse).await?, 0);

    // A clean run over the same realtime rows, into an emptied warehouse.
    let out = batch(&stack, ["reset", "--yes"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = batch(&stack, ["etl"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let warehouse = stack.warehouse_client().await?;
    assert_eq!(checksums(&warehouse).await?, after_kill);
    Ok(())
}

/// Runs recorded as succeeded after run `after`.
async fn succeeded_after(warehouse: &Client, after: i64) -> Result<i64> {
    Ok(warehouse
        .query_one(
            "SELECT count(*) FROM batch_runs WHERE status = 'succeeded' AND run_id > $1",
            &[&after],
        )
        .await?
        .get(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn run_every_carries_on_after_the_databases_drop_its_sessions() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    save(&mut realtime, &shop(6, 0.02, 2_000, 30)).await?;
    let mut child = std::process::Command::new(BIN)
        .env_clear()
        .envs(database_env(Db::Realtime, &stack.realtime))
        .envs(database_env(Db::Warehouse, &stack.warehouse))
        .env("METRICS_ADDR", "127.0.0.1:0")
        .args(["run", "--every", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let warehouse = stack.warehouse_client().await?;
    let outcome = async {
        let started = Instant::now();
        while succeeded_after(&warehouse, 0).await? == 0 {
            ensure!(
                started.elapsed() < StdDuration::from_secs(60),
                "no run succeeded in 60 s"
            );
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        // Both databases end the batch's sessions, as a restart or an administrator would.
        for client in [&realtime, &warehouse] {
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()
                       AND application_name = 'globalmart-batch'",
                    &[],
                )
                .await?;
        }
        let last: i64 = warehouse
            .query_one("SELECT coalesce(max(run_id), 0) FROM batch_runs", &[])
            .await?
            .get(0);
        let terminated = Instant::now();
        while succeeded_after(&warehouse, last).await? == 0 {
            ensure!(
                terminated.elapsed() < StdDuration::from_secs(30),
                "no run succeeded in the 30 s after the sessions were terminated"
            );
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        Ok(())
    }
    .await;
    child.kill()?; // the process this test started
    child.wait()?;
    outcome
}
