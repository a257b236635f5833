//! The ETL against real databases: realtime rows written by the stream's savers (from the
//! generator's events or from hand-made ones), then `etl::run` into the warehouse. Expected
//! figures come from SQL over the realtime tables, never from the ETL itself. The guide's
//! seven "Common Queries" run verbatim on the result.

mod common;

use std::time::Duration as StdDuration;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use globalmart_batch::analytics::{self, Basis};
use globalmart_batch::error::EtlError;
use globalmart_batch::etl::{self, Settings};
use globalmart_batch::figures::Figures;
use globalmart_core::db;
use globalmart_core::domain::Country;
use globalmart_testkit::TestStack;
use rust_decimal::Decimal;
use tokio_postgres::Client;

use common::{
    guide_queries, kettle, purchase, repo_file, save, shop, shopper, statements, ten, OtherLanes,
};

/// One ETL run over the test's databases (the outer error is the test's own set-up).
async fn etl(
    stack: &TestStack,
    chunk_rows: usize,
) -> Result<Result<Vec<(&'static str, Figures)>, EtlError>> {
    let mut realtime = stack.realtime_client().await?;
    let mut warehouse = stack.warehouse_client().await?;
    let mut extra = OtherLanes::connect(stack).await?;
    let settings = Settings {
        chunk_rows,
        lock_timeout: StdDuration::from_secs(2),
    };
    Ok(etl::run(&mut realtime, &mut warehouse, extra.lanes(), &settings).await)
}

/// The figures of one step.
fn of(reports: &[(&str, Figures)], table: &str) -> Figures {
    reports
        .iter()
        .find(|(step, _)| *step == table)
        .map(|(_, figures)| *figures)
        .unwrap_or_else(|| panic!("no step {table}"))
}

/// Each fact table and the realtime table of its events.
const FACTS: [(&str, &str); 3] = [
    ("fact_sales", "transactions"),
    ("fact_product_views", "product_view_events"),
    ("fact_cart_events", "cart_events"),
];

/// The events in realtime table `source` and the rows of fact table `fact`.
async fn counts(
    realtime: &Client,
    warehouse: &Client,
    fact: &str,
    source: &str,
) -> Result<(i64, i64)> {
    let events = number(realtime, &format!("SELECT count(*) FROM {source}")).await?;
    let facts = number(warehouse, &format!("SELECT count(*) FROM {fact}")).await?;
    Ok((events, facts))
}

async fn number(client: &Client, query: &str) -> Result<i64> {
    Ok(client.query_one(query, &[]).await?.get(0))
}

async fn text(client: &Client, query: &str) -> Result<String> {
    Ok(client.query_one(query, &[]).await?.get(0))
}

#[tokio::test]
async fn every_event_becomes_one_fact_pointing_at_the_version_valid_at_its_time() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    let warehouse = stack.warehouse_client().await?;
    // Over ten days, so customers differ in recency and the RFM segments all occur.
    let records = shop(7, 0.02, 6_000, 150);
    // Two loads with a run between them: the second run takes only what is new.
    let (first, second) = records.split_at(records.len() / 2);
    save(&mut realtime, first).await?;
    let reports = etl(&stack, 1_000).await??;
    assert!(of(&reports, "fact_sales").loaded > 0);
    save(&mut realtime, second).await?;
    etl(&stack, 1_000).await??;

    // One fact per source event, with the same quantities and amounts.
    for (fact, source) in FACTS {
        let (expected, loaded) = counts(&realtime, &warehouse, fact, source).await?;
        assert_eq!(loaded, expected, "{fact}");
        assert!(loaded > 0, "{fact} is empty");
    }
    let realtime_sales = text(
        &realtime,
        "SELECT sum(quantity) || '/' || sum(quantity * price) FROM transactions",
    )
    .await?;
    let warehouse_sales = text(
        &warehouse,
        "SELECT sum(quantity) || '/' || sum(total_amount) FROM fact_sales",
    )
    .await?;
    assert_eq!(warehouse_sales, realtime_sales);

    // The guide's duplicate check finds nothing.
    let duplicates = warehouse
        .query(
            "SELECT event_id, COUNT(*) FROM fact_sales GROUP BY event_id HAVING COUNT(*) > 1",
            &[],
        )
        .await?;
    assert!(duplicates.is_empty());

    // Each fact points at the customer and product versions valid at its time (a key's first
    // version also covers the time before it).
    for (fact, ts, dimension, key) in [
        (
            "fact_sales",
            "transaction_timestamp",
            "dim_customers",
            "customer_id",
        ),
        (
            "fact_sales",
            "transaction_timestamp",
            "dim_products",
            "product_id_pk",
        ),
        (
            "fact_product_views",
            "event_timestamp",
            "dim_products",
            "product_id_pk",
        ),
        (
            "fact_cart_events",
            "event_timestamp",
            "dim_customers",
            "customer_id",
        ),
    ] {
        let wrong = number(
            &warehouse,
            &format!(
                "SELECT count(*) FROM {fact} f JOIN {dimension} d USING ({key})
                 WHERE f.{ts} < CASE WHEN d.version = 1 THEN '-infinity' ELSE
                     d.effective_start_date END
                    OR f.{ts} >= d.effective_end_date"
            ),
        )
        .await?;
        assert_eq!(wrong, 0, "{fact} -> {dimension}");
    }

    // One product version per catalogue record that changed name, category or price.
    let versions = number(
        &realtime,
        "SELECT count(*) FROM (
             SELECT (name, category, price) IS DISTINCT FROM lag((name, category, price))
                 OVER (PARTITION BY product_id ORDER BY updated_at) AS changed
             FROM product_history) v WHERE changed",
    )
    .await?;
    assert_eq!(
        number(&warehouse, "SELECT count(*) FROM dim_products").await?,
        versions
    );
    assert!(
        versions > 50,
        "the flow changed no product: {versions} versions"
    );
    // One current row per key, and versions that follow each other without gap or overlap.
    for (table, key) in [("dim_products", "product_id"), ("dim_customers", "user_id")] {
        let broken = number(
            &warehouse,
            &format!(
                "SELECT count(*) FROM (
                     SELECT is_current, effective_end_date, version,
                         lead(effective_start_date) OVER w AS next_start,
                         lead(version) OVER w AS next_version
                     FROM {table} WINDOW w AS (PARTITION BY {key} ORDER BY version)) v
                 WHERE (next_start IS NULL) <> is_current
                    OR (next_start IS NOT NULL AND (next_start <> effective_end_date
                        OR next_version <> version + 1))"
            ),
        )
        .await?;
        assert_eq!(broken, 0, "{table}");
    }

    // Customer totals: orders and spend of every current customer row.
    let realtime_totals = text(
        &realtime,
        "SELECT count(DISTINCT transaction_id) || '/' || sum(quantity * price) FROM transactions",
    )
    .await?;
    let warehouse_totals = text(
        &warehouse,
        "SELECT sum(total_transactions) || '/' || sum(total_spent) FROM dim_customers
         WHERE is_current",
    )
    .await?;
    assert_eq!(warehouse_totals, realtime_totals);

    // After the day's analytics, the guide's seven queries return rows; query 7 Champions.
    let mut analyst = stack.warehouse_client().await?;
    let day = (ten() + Duration::seconds(150 * 6_000)).date_naive();
    analytics::run(&mut analyst, day, Basis::Totals).await?;
    let queries = guide_queries()?;
    assert_eq!(queries.len(), 7);
    assert!(queries[6].contains("rfm_segment = 'Champions'"));
    for query in &queries {
        let rows = warehouse.query(query.as_str(), &[]).await?;
        assert!(!rows.is_empty(), "no rows from {query}");
    }
    // docs/USER_GUIDE.md shows the same seven, and every other statement it gives runs too.
    let documented = user_guide_statements()?;
    for query in &queries {
        assert!(documented.contains(query), "not in the user guide: {query}");
    }
    for statement in &documented {
        warehouse.batch_execute(statement).await.map_err(|e| {
            anyhow::anyhow!("docs/USER_GUIDE.md: {statement}: {}", db::describe(&e))
        })?;
    }

    // A run with nothing new loads nothing; a replay of everything (watermarks reset) loads
    // nothing either and counts every fact as a duplicate.
    let idle = etl(&stack, 1_000).await??;
    assert!(idle.iter().all(|(_, r)| r.extracted == 0 && r.loaded == 0));
    warehouse
        .execute("UPDATE etl_watermarks SET last_ingest_seq = 0", &[])
        .await?;
    let replay = etl(&stack, 1_000).await??;
    let sales = of(&replay, "fact_sales");
    assert_eq!(sales.loaded, 0);
    assert_eq!(
        sales.skipped as i64,
        number(&realtime, "SELECT count(*) FROM transactions").await?
    );
    assert!(replay.iter().all(|(_, r)| r.loaded == 0));
    assert_eq!(
        number(&warehouse, "SELECT count(*) FROM dim_products").await?,
        versions
    );

    // Every run and step is recorded.
    let runs = number(
        &warehouse,
        "SELECT count(*) FROM batch_runs WHERE status = 'succeeded' AND finished_at IS NOT NULL",
    )
    .await?;
    assert_eq!(runs, 5);
    let recorded_skips = number(
        &warehouse,
        "SELECT duplicates_skipped FROM batch_run_steps
         WHERE step = 'fact_sales' ORDER BY run_id DESC LIMIT 1",
    )
    .await?;
    assert_eq!(recorded_skips, sales.skipped as i64);
    Ok(())
}

/// (version, price, is_current) of the kettle's rows, and the version each sale points at.
#[tokio::test]
async fn two_runs_at_once_load_every_event_once_and_count_it_once() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    let warehouse = stack.warehouse_client().await?;
    save(&mut realtime, &shop(7, 0.02, 3_000, 150)).await?;
    // Small chunks, so the runs' chunks interleave: a chunk read while the other run loads the
    // same rows finds the watermark moved when it locks it, and reads again from there.
    let (a, b) = tokio::join!(etl(&stack, 500), etl(&stack, 500));
    let (a, b) = (a??, b??);

    for (fact, source) in FACTS {
        let (expected, loaded) = counts(&realtime, &warehouse, fact, source).await?;
        assert!(expected > 0, "no {source} saved");
        assert_eq!(loaded, expected, "{fact}");
        // Loaded by one run or the other, never by both (the second would skip it).
        let (a, b) = (of(&a, fact), of(&b, fact));
        assert_eq!(
            i64::try_from(a.loaded + b.loaded)?,
            expected,
            "{fact}: {a:?} {b:?}"
        );
        assert_eq!(a.skipped + b.skipped, 0, "{fact}: {a:?} {b:?}");
    }
    // And added to the running totals once.
    for (total, facts) in [
        (
            "SELECT sum(views) FROM agg_product_totals",
            "SELECT count(*) FROM fact_product_views WHERE event_type = 'view'",
        ),
        (
            "SELECT sum(cart_adds) FROM agg_product_totals",
            "SELECT count(*) FROM fact_cart_events WHERE event_type = 'add_to_cart'",
        ),
        (
            "SELECT sum(units) FROM agg_product_totals",
            "SELECT sum(quantity) FROM fact_sales",
        ),
    ] {
        let counted = number(&warehouse, &format!("SELECT ({total})::int8")).await?;
        assert_eq!(
            counted,
            number(&warehouse, &format!("SELECT ({facts})::int8")).await?,
            "{total}"
        );
    }
    Ok(())
}

async fn kettle_history(warehouse: &Client) -> Result<(Vec<(i32, Decimal, bool)>, Vec<i32>)> {
    let versions = warehouse
        .query(
            "SELECT version, price, is_current FROM dim_products
             WHERE product_id = 'PROD_00000001' ORDER BY version",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let sales = warehouse
        .query(
            "SELECT p.version FROM fact_sales f JOIN dim_products p USING (product_id_pk)
             ORDER BY f.transaction_timestamp",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok((versions, sales))
}

async fn customer_versions(warehouse: &Client, user: &str) -> Result<Vec<(i32, String, i32)>> {
    Ok(warehouse
        .query(
            "SELECT version, country, total_transactions FROM dim_customers
             WHERE user_id = $1 ORDER BY version",
            &[&user],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

#[tokio::test]
async fn a_price_change_makes_a_version_and_sales_point_at_the_one_of_their_time() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    let warehouse = stack.warehouse_client().await?;
    let (anna, ben) = ("USER_00000001", "USER_00000002");
    // 10:00 the kettle at 10; Anna in Germany, Ben in France; Anna buys at 10:30.
    save(
        &mut realtime,
        &[
            kettle(10, 4, 0),
            shopper(anna, Country::Germany, 0),
            shopper(ben, Country::France, 0),
            purchase(anna, "PROD_00000001", 10, 30),
        ],
    )
    .await?;
    etl(&stack, 1_000).await??;
    // 11:00 the price goes to 12 and Anna moves to the UK; 11:30 both buy; 11:45 only the
    // kettle's rating changes (not a versioned attribute).
    save(
        &mut realtime,
        &[
            kettle(12, 4, 60),
            shopper(anna, Country::Uk, 60),
            purchase(anna, "PROD_00000001", 12, 90),
            purchase(ben, "PROD_00000001", 12, 91),
            kettle(12, 5, 105),
        ],
    )
    .await?;
    etl(&stack, 1_000).await??;

    let (versions, sales) = kettle_history(&warehouse).await?;
    assert_eq!(
        versions,
        vec![(1, Decimal::from(10), false), (2, Decimal::from(12), true)]
    );
    assert_eq!(sales, vec![1, 2, 2]);
    let boundary: DateTime<Utc> = warehouse
        .query_one(
            "SELECT effective_end_date FROM dim_products
             WHERE product_id = 'PROD_00000001' AND version = 1",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(boundary, ten() + Duration::minutes(60));
    let rating: Decimal = warehouse
        .query_one(
            "SELECT rating FROM dim_products WHERE product_id = 'PROD_00000001' AND is_current",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(rating, Decimal::from(5));

    // Anna's move is a new version carrying her totals; Ben's purchase alone is not.
    assert_eq!(
        customer_versions(&warehouse, anna).await?,
        vec![(1, "Germany".into(), 1), (2, "UK".into(), 2)]
    );
    assert_eq!(
        customer_versions(&warehouse, ben).await?,
        vec![(1, "France".into(), 1)]
    );
    let anna_sales: Vec<i32> = warehouse
        .query(
            "SELECT c.version FROM fact_sales f JOIN dim_customers c USING (customer_id)
             WHERE c.user_id = $1 ORDER BY f.transaction_timestamp",
            &[&anna],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(anna_sales, vec![1, 2]);
    Ok(())
}

#[tokio::test]
async fn a_sale_before_its_records_gets_inferred_members_that_the_records_complete() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    let warehouse = stack.warehouse_client().await?;
    let cara = "USER_00000003";
    save(&mut realtime, &[purchase(cara, "PROD_00000001", 10, 30)]).await?;
    etl(&stack, 1_000).await??;
    let member = "SELECT p.product_id_pk, p.is_inferred, p.product_name, p.version
                  FROM fact_sales f JOIN dim_products p USING (product_id_pk)";
    let before = warehouse.query_one(member, &[]).await?;
    assert!(before.get::<_, bool>(1));
    assert_eq!(before.get::<_, Option<String>>(2), None);

    save(
        &mut realtime,
        &[kettle(10, 4, 0), shopper(cara, Country::Japan, 0)],
    )
    .await?;
    etl(&stack, 1_000).await??;
    let after = warehouse.query_one(member, &[]).await?;
    assert_eq!(after.get::<_, i64>(0), before.get::<_, i64>(0));
    assert!(!after.get::<_, bool>(1));
    assert_eq!(after.get::<_, Option<String>>(2).as_deref(), Some("Kettle"));
    assert_eq!(after.get::<_, i32>(3), 1);
    assert_eq!(
        customer_versions(&warehouse, cara).await?,
        vec![(1, "Japan".into(), 1)]
    );
    Ok(())
}

#[tokio::test]
async fn a_row_still_in_flight_holds_the_run_back_and_is_loaded_by_the_next() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut writer = stack.realtime_client().await?;
    let mut other = stack.realtime_client().await?;
    let warehouse = stack.warehouse_client().await?;
    // A writer holds the ingest lock with a version not committed yet, as the stream does
    // mid-batch; another writer commits a later one meanwhile.
    let tx = writer.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1)",
        &[&globalmart_core::db::INGEST_LOCK],
    )
    .await?;
    tx.execute(
        "INSERT INTO product_history (product_id, updated_at, name, category, price, inventory)
         VALUES ('PROD_00000001', $1, 'Kettle', 'Kitchen Utensils', 10, 100)",
        &[&ten()],
    )
    .await?;
    save(&mut other, &[shopper("USER_00000004", Country::Usa, 0)]).await?;

    // The run cannot know whether a lower ingest_seq is still to come: it stops, loads
    // nothing and says why.
    let refused = etl(&stack, 1_000).await?;
    assert!(
        matches!(refused, Err(EtlError::IngestLock(_))),
        "{refused:?}"
    );
    assert_eq!(
        number(&warehouse, "SELECT count(*) FROM dim_customers").await?,
        0
    );
    assert_eq!(
        text(&warehouse, "SELECT status FROM batch_runs").await?,
        "failed"
    );

    tx.commit().await?;
    etl(&stack, 1_000).await??;
    for table in ["dim_products", "dim_customers"] {
        assert_eq!(
            number(&warehouse, &format!("SELECT count(*) FROM {table}")).await?,
            1,
            "{table}"
        );
    }
    Ok(())
}

/// The SQL statements of docs/USER_GUIDE.md's ```sql blocks, and the Grafana panel query left
/// out too (its `$__timeFilter` macro is Grafana's; the dashboards test expands those).
fn user_guide_statements() -> Result<Vec<String>> {
    let text = repo_file("docs/USER_GUIDE.md")?;
    Ok(text
        .split("```sql\n")
        .skip(1)
        .flat_map(|block| statements(block.split("```").next().unwrap_or_default()))
        .filter(|s| !s.contains("$__"))
        .collect())
}
