//! The batch's command line: --help explains both databases' keys, a bad value names its key,
//! `etl` says what it did like the guide, and a failing step exits non-zero, keeps nothing of
//! that step and is redone by the next run.

mod common;

use anyhow::Result;
use globalmart_core::config::Secret;
use globalmart_core::db::{Db, PgSettings};
use globalmart_core::domain::Country;
use globalmart_testkit::{Cli, TestStack};

use common::{batch, kettle, purchase, save, shop, shopper};

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-batch");

#[test]
fn help_lists_both_databases_keys() -> Result<()> {
    let out = Cli::new(BIN).args(["--help"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for db in ["REALTIME", "WAREHOUSE"] {
        for field in ["HOST", "PORT", "USER", "PASSWORD", "DB"] {
            let key = format!("POSTGRES_{db}_{field}");
            assert!(
                out.stdout.contains(&key),
                "--help lacks {key}:\n{}",
                out.stdout
            );
        }
    }
    assert!(out.stdout.contains("etl"), "{}", out.stdout);
    Ok(())
}

#[test]
fn a_bad_metrics_address_names_the_key() -> Result<()> {
    let out = Cli::new(BIN)
        .args(["etl"])
        .env("METRICS_ADDR", "nowhere")
        .run()?;
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("invalid METRICS_ADDR \"nowhere\""),
        "{}",
        out.stderr
    );
    Ok(())
}

#[tokio::test]
async fn etl_says_what_it_loaded_like_the_guide() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    let anna = "USER_00000001";
    save(
        &mut realtime,
        &[
            kettle(10, 4, 0),
            shopper(anna, Country::Germany, 0),
            purchase(anna, "PROD_00000001", 10, 30),
        ],
    )
    .await?;
    let out = batch(&stack, ["etl"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for line in [
        "=== Batch Processing Started ===",
        "[ETL] Processing fact_sales...",
        "Extracted: 1 transaction lines",
        "Transformed: 1 records",
        "Loaded: 1 new records (0 duplicates skipped)",
        "[Complete] Batch processing finished in",
    ] {
        assert!(out.stderr.contains(line), "no {line:?} in:\n{}", out.stderr);
    }
    let warehouse = stack.warehouse_client().await?;
    let sales: i64 = warehouse
        .query_one("SELECT count(*) FROM fact_sales", &[])
        .await?
        .get(0);
    assert_eq!(sales, 1);
    Ok(())
}

#[tokio::test]
async fn a_failed_step_exits_non_zero_keeps_nothing_of_it_and_the_next_run_redoes_it() -> Result<()>
{
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    let warehouse = stack.warehouse_client().await?;
    let anna = "USER_00000001";
    save(
        &mut realtime,
        &[
            kettle(10, 4, 0),
            shopper(anna, Country::Germany, 0),
            purchase(anna, "PROD_00000001", 10, 30),
            purchase(anna, "PROD_00000001", 10, 31),
        ],
    )
    .await?;
    // A sale from a country the warehouse does not know (written past the stream's checks).
    realtime
        .execute(
            "UPDATE transactions SET country = 'Atlantis' WHERE \"timestamp\" = (
                 SELECT max(\"timestamp\") FROM transactions)",
            &[],
        )
        .await?;
    let out = batch(&stack, ["etl"]).run()?;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("fact_sales: 2 rows extracted but 1 transformed"),
        "{}",
        out.stderr
    );
    let count = |query: &'static str| {
        let warehouse = &warehouse;
        async move { Ok::<i64, anyhow::Error>(warehouse.query_one(query, &[]).await?.get(0)) }
    };
    // The dimensions before it are loaded; nothing of fact_sales is, its watermark unmoved.
    assert_eq!(count("SELECT count(*) FROM dim_products").await?, 1);
    assert_eq!(count("SELECT count(*) FROM fact_sales").await?, 0);
    assert_eq!(
        count(
            "SELECT count(*) FROM etl_watermarks
             WHERE source_table = 'transactions' AND last_ingest_seq > 0"
        )
        .await?,
        0
    );
    let (status, error): (String, String) = warehouse
        .query_one(
            "SELECT status, error FROM batch_run_steps WHERE step = 'fact_sales'",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))?;
    assert_eq!(status, "failed");
    assert!(
        error.contains("2 rows extracted but 1 transformed"),
        "{error}"
    );

    // Fixed at the source, the next run loads both sales.
    realtime
        .execute(
            "UPDATE transactions SET country = 'Germany' WHERE country = 'Atlantis'",
            &[],
        )
        .await?;
    let out = batch(&stack, ["etl"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(count("SELECT count(*) FROM fact_sales").await?, 2);
    assert_eq!(
        count("SELECT count(*) FROM batch_runs WHERE status = 'failed'").await?,
        1
    );
    Ok(())
}

#[tokio::test]
async fn as_its_runtime_role_the_batch_runs_and_validates_but_cannot_reset() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    save(&mut realtime, &shop(5, 0.01, 3_000, 10)).await?;
    let as_batch = |settings: &PgSettings| PgSettings {
        user: "globalmart_batch".into(),
        password: Secret::new("batch_password"),
        ..settings.clone()
    };
    let (realtime_role, warehouse_role) = (as_batch(&stack.realtime), as_batch(&stack.warehouse));
    let cli = |args: &[&str]| {
        let mut cli = Cli::new(BIN)
            .database(Db::Realtime, &realtime_role)
            .database(Db::Warehouse, &warehouse_role);
        for arg in args {
            cli = cli.args([*arg]);
        }
        cli
    };
    let run = cli(&["run", "--date", "2025-12-07"]).run()?;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("this role does not migrate"),
        "{}",
        run.stderr
    );
    let validate = cli(&["validate"]).run()?;
    assert_eq!(
        validate.code,
        Some(0),
        "{}{}",
        validate.stdout,
        validate.stderr
    );
    let sales: i64 = stack
        .warehouse_client()
        .await?
        .query_one("SELECT count(*) FROM fact_sales", &[])
        .await?
        .get(0);
    assert!(sales > 0, "the runtime role loaded no sale");
    // Dropping the warehouse is the owner's.
    let reset = cli(&["reset", "--yes"]).run()?;
    assert_eq!(reset.code, Some(1), "{}", reset.stderr);
    assert!(reset.stderr.contains("must be owner"), "{}", reset.stderr);
    Ok(())
}
