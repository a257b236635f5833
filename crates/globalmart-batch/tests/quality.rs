//! check, validate and reset on a loaded warehouse: clean data passes, each planted defect (a
//! duplicate fact, an orphan key, a missing row, a warehouse behind by more than --max-lag) is
//! caught and the command exits 1, and reset refuses without --yes; analytics takes its day
//! from --date.

mod common;

use anyhow::Result;
use globalmart_core::domain::Country;
use globalmart_testkit::TestStack;

use common::{batch, kettle, purchase, save, shopper};

/// Three sales loaded into the warehouse.
async fn loaded() -> Result<TestStack> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    let anna = "USER_00000001";
    save(
        &mut realtime,
        &[
            kettle(10, 4, 0),
            shopper(anna, Country::Germany, 0),
            purchase(anna, "PROD_00000001", 10, 30),
            purchase(anna, "PROD_00000001", 10, 31),
            purchase(anna, "PROD_00000001", 10, 32),
        ],
    )
    .await?;
    let out = batch(&stack, ["etl"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    Ok(stack)
}

#[tokio::test]
async fn clean_data_passes_every_check_and_validation() -> Result<()> {
    let stack = loaded().await?;
    for command in ["check", "validate"] {
        let out = batch(&stack, [command]).run()?;
        assert_eq!(
            out.code,
            Some(0),
            "{command}:\n{}{}",
            out.stdout,
            out.stderr
        );
        assert!(out.stdout.contains(", 0 failed"), "{}", out.stdout);
    }
    Ok(())
}

#[tokio::test]
async fn a_duplicate_fact_fails_check_and_validate() -> Result<()> {
    let stack = loaded().await?;
    let warehouse = stack.warehouse_client().await?;
    warehouse
        .batch_execute(
            // The key is (event_id, time): the same event a second later is a second row.
            "INSERT INTO fact_sales (event_id, transaction_id, customer_id, product_id_pk,
                 geography_id, date_id, quantity, unit_price, total_amount, payment_method,
                 transaction_timestamp)
             SELECT event_id, transaction_id, customer_id, product_id_pk, geography_id, date_id,
                 quantity, unit_price, total_amount, payment_method,
                 transaction_timestamp + interval '1 second'
             FROM fact_sales
             WHERE extract(hour FROM transaction_timestamp AT TIME ZONE 'UTC') < 23 LIMIT 1",
        )
        .await?;
    let out = batch(&stack, ["check"]).run()?;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("duplicate event_id")
                && l.contains("fact_sales")
                && l.contains("FAILED (1 rows)")),
        "{}",
        out.stdout
    );
    let out = batch(&stack, ["validate"]).run()?;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("row count differs") && l.contains("FAILED (1 rows)")),
        "{}",
        out.stdout
    );
    Ok(())
}

#[tokio::test]
async fn an_orphan_key_fails_check() -> Result<()> {
    let stack = loaded().await?;
    let warehouse = stack.warehouse_client().await?;
    warehouse
        .batch_execute(
            // No foreign key stops it (sql/warehouse/V7__facts_without_foreign_keys.sql).
            "UPDATE fact_sales SET customer_id = 999999
             WHERE sale_id = (SELECT min(sale_id) FROM fact_sales)",
        )
        .await?;
    let out = batch(&stack, ["check"]).run()?;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.lines().any(|l| l.starts_with("orphan customer")
            && l.contains("fact_sales")
            && l.contains("FAILED (1 rows)")),
        "{}",
        out.stdout
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_row_fails_validate() -> Result<()> {
    let stack = loaded().await?;
    let warehouse = stack.warehouse_client().await?;
    warehouse
        .execute(
            "DELETE FROM fact_sales WHERE sale_id = (SELECT min(sale_id) FROM fact_sales)",
            &[],
        )
        .await?;
    let out = batch(&stack, ["validate"]).run()?;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    for check in ["source rows missing", "units and amount differ"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(check) && l.contains("FAILED")),
            "{check}:\n{}",
            out.stdout
        );
    }
    Ok(())
}

#[tokio::test]
async fn reset_refuses_without_yes_and_empties_the_warehouse_with_it() -> Result<()> {
    let stack = loaded().await?;
    let warehouse = stack.warehouse_client().await?;
    let sales = "SELECT count(*) FROM fact_sales";
    let out = batch(&stack, ["reset"]).run()?;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("reset --yes"), "{}", out.stderr);
    assert_eq!(warehouse.query_one(sales, &[]).await?.get::<_, i64>(0), 3);

    let out = batch(&stack, ["reset", "--yes"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let warehouse = stack.warehouse_client().await?;
    assert_eq!(warehouse.query_one(sales, &[]).await?.get::<_, i64>(0), 0);
    let markets: i64 = warehouse
        .query_one("SELECT count(*) FROM dim_geography", &[])
        .await?
        .get(0);
    assert_eq!(markets, 5, "the reference data is back");
    // And the next ETL loads everything again.
    let out = batch(&stack, ["etl"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(warehouse.query_one(sales, &[]).await?.get::<_, i64>(0), 3);
    Ok(())
}

#[tokio::test]
async fn check_fails_when_the_newest_sale_lags_more_than_max_lag() -> Result<()> {
    let stack = loaded().await?;
    // A sale an hour after the last one loaded, not loaded yet.
    let mut realtime = stack.realtime_client().await?;
    save(
        &mut realtime,
        &[purchase("USER_00000001", "PROD_00000001", 10, 92)],
    )
    .await?;
    let out = batch(&stack, ["check", "--max-lag", "30m"]).run()?;
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let line = (out.stdout.lines())
        .find(|l| l.contains("newest sale more than 1800 s behind realtime"))
        .unwrap_or_default();
    assert!(line.contains(" 1"), "{}", out.stdout);
    let out = batch(&stack, ["check", "--max-lag", "2h"]).run()?;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    Ok(())
}

#[tokio::test]
async fn analytics_takes_its_day_from_the_command_line() -> Result<()> {
    let stack = loaded().await?;
    let warehouse = stack.warehouse_client().await?;
    // Anna's last order is on 2025-12-07: 0 days before that day, 3 before the 10th.
    for (date, recency) in [("2025-12-07", 0), ("2025-12-10", 3)] {
        let out = batch(&stack, ["analytics", "--date", date]).run()?;
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let days: i32 = warehouse
            .query_one(
                "SELECT recency_days FROM rfm_analysis WHERE analysis_date = $1::text::date",
                &[&date],
            )
            .await?
            .get(0);
        assert_eq!(days, recency, "recency as of {date}");
    }
    // A day after every fact reads the running totals; --recompute the facts; the same answer.
    for recompute in [false, true] {
        let command = batch(&stack, ["analytics", "--date", "2025-12-10"]);
        let out = if recompute {
            command.args(["--recompute"])
        } else {
            command
        }
        .run()?;
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let read = if recompute {
            "of facts"
        } else {
            "of running totals"
        };
        assert!(out.stderr.contains(read), "{recompute}: {}", out.stderr);
        let days: i32 = warehouse
            .query_one(
                "SELECT recency_days FROM rfm_analysis WHERE analysis_date = '2025-12-10'",
                &[],
            )
            .await?
            .get(0);
        assert_eq!(days, 3, "recompute: {recompute}");
    }
    let out = batch(&stack, ["analytics", "--date", "yesterday"]).run()?;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--date"), "{}", out.stderr);
    Ok(())
}
