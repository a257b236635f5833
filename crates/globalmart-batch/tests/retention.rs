//! Raw retention with the real ETL: a day of raw events goes only once the warehouse has loaded
//! it (the ETL held behind keeps it), `validate` then compares the days kept, and events of a
//! removed day saved again (a replay) become dead letters instead of coming back: nothing lost,
//! nothing saved twice.

mod common;

use std::time::Duration as StdDuration;

use anyhow::Result;
use chrono::NaiveDate;
use globalmart_batch::etl::{self, Settings};
use globalmart_batch::quality;
use globalmart_core::db::INGEST_LOCK;
use globalmart_core::domain::Country;
use globalmart_core::event::Event;
use globalmart_stream::retention;
use globalmart_testkit::TestStack;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use common::{kettle, purchase, save, save_counting, shopper, view, OtherLanes};

const DAY: i64 = 24 * 60;
const WEEK: StdDuration = StdDuration::from_secs(7 * 86_400);

/// Two purchases and a view by each of three customers on day `day` after 2025-12-07.
fn day_of_shopping(day: i64) -> Vec<Event> {
    (1..=3)
        .flat_map(|i| {
            let user = format!("USER_{i:08}");
            let at = day * DAY + 10 * i;
            [
                view(&user, "PROD_00000001", at),
                purchase(&user, "PROD_00000001", 10, at + 1),
                purchase(&user, "PROD_00000001", 10, at + 2),
            ]
        })
        .collect()
}

async fn count(client: &Client, query: &str) -> Result<i64> {
    Ok(client.query_one(query, &[]).await?.get(0))
}

/// Raw rows per day, as "2025-12-07:6/3" (transaction lines / views).
async fn raw_days(realtime: &Client) -> Result<Vec<String>> {
    let rows = realtime
        .query(
            "SELECT d::text || ':' || t || '/' || v FROM (
                 SELECT (\"timestamp\" AT TIME ZONE 'UTC')::date AS d, count(*) AS t
                 FROM transactions GROUP BY 1) a
             FULL JOIN (SELECT (\"timestamp\" AT TIME ZONE 'UTC')::date AS d, count(*) AS v
                        FROM product_view_events
                        GROUP BY 1) b USING (d)
             ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

#[tokio::test]
async fn a_day_goes_only_once_loaded_and_a_replay_of_it_is_not_saved_again() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    let mut warehouse = stack.warehouse_client().await?;
    let mut extra = OtherLanes::connect(&stack).await?;
    let settings = Settings {
        chunk_rows: 1000,
        lock_timeout: StdDuration::from_secs(5),
    };
    let mut catalogue = vec![kettle(10, 4, 0)];
    catalogue.extend((1..=3).map(|i| shopper(&format!("USER_{i:08}"), Country::Germany, 0)));
    save(&mut realtime, &catalogue).await?;

    // Day 0 loaded, days 1 and 2 saved after the ETL ran: the ETL is behind on them.
    let days: Vec<Vec<Event>> = (0..3).map(day_of_shopping).collect();
    save(&mut realtime, &days[0]).await?;
    etl::run(&mut realtime, &mut warehouse, extra.lanes(), &settings).await?;
    save(&mut realtime, &days[1]).await?;
    save(&mut realtime, &days[2]).await?;
    let before = raw_days(&realtime).await?;
    assert_eq!(
        before,
        ["2025-12-07:6/3", "2025-12-08:6/3", "2025-12-09:6/3"],
        "three days saved"
    );

    // Every day is older than a week, but only day 0 is loaded: only it goes.
    let (dropped, horizon) = retention::apply(&realtime, WEEK).await?;
    assert_eq!((dropped, horizon), (1, date(2025, 12, 8)));
    assert_eq!(
        raw_days(&realtime).await?,
        ["2025-12-08:6/3", "2025-12-09:6/3"]
    );
    // Nothing more goes while the ETL stays behind.
    assert_eq!(retention::apply(&realtime, WEEK).await?.0, 0);
    // A round takes the ingest lock only with a day older than the retention: while a save
    // holds it, a round with none returns at once and one with a day gives up after its wait.
    let mut saver = stack.realtime_client().await?;
    let in_flight = saver.transaction().await?;
    in_flight
        .execute("SELECT pg_advisory_xact_lock($1)", &[&INGEST_LOCK])
        .await?;
    assert_eq!(retention::apply(&realtime, WEEK * 52 * 10).await?.0, 0);
    let waited = retention::apply(&realtime, WEEK).await;
    assert_eq!(
        waited.as_ref().err().and_then(|e| e.code()),
        Some(&SqlState::LOCK_NOT_AVAILABLE),
        "{waited:?}"
    );
    in_flight.rollback().await?;

    // Caught up: day 1 goes too; day 2 stays, the day the stream last saved events of (more
    // of it may still come).
    etl::run(&mut realtime, &mut warehouse, extra.lanes(), &settings).await?;
    let (dropped, horizon) = retention::apply(&realtime, WEEK).await?;
    assert_eq!((dropped, horizon), (1, date(2025, 12, 9)));
    assert_eq!(raw_days(&realtime).await?, ["2025-12-09:6/3"]);
    // The warehouse has all of it, and agrees with the days the realtime database keeps.
    let findings = quality::validate(&realtime, &warehouse).await?;
    assert!(
        findings.iter().all(|f| f.failures == 0),
        "{}",
        quality::table(&findings)
    );
    assert!(
        findings
            .iter()
            .any(|f| f.check.contains("since 2025-12-09")),
        "{}",
        quality::table(&findings)
    );
    assert_eq!(
        count(&warehouse, "SELECT count(*) FROM fact_sales").await?,
        18
    );
    assert_eq!(
        count(&warehouse, "SELECT count(*) FROM fact_product_views").await?,
        9
    );

    // Days 0 and 1 saved again (a replay): dead letters with the reason, not raw rows, not
    // counted again in the realtime metrics; day 2's events meet their rows.
    let revenue = "SELECT (sum(total_revenue) * 100)::bigint FROM sales_per_minute";
    let counted = count(&realtime, revenue).await?;
    let saved = save_counting(&mut realtime, &days.concat()).await?;
    assert_eq!(saved.dead_letters, 18, "{saved:?}");
    assert_eq!(
        saved.transaction_lines + saved.product_views,
        0,
        "{saved:?}"
    );
    assert_eq!(raw_days(&realtime).await?, ["2025-12-09:6/3"]);
    assert_eq!(count(&realtime, revenue).await?, counted);
    let reasons = realtime
        .query(
            "SELECT DISTINCT regexp_replace(reason, 'event time [^ ]+', 'event time T')
             FROM dead_letter_events",
            &[],
        )
        .await?;
    let reasons: Vec<String> = reasons.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        reasons,
        [
            "event time T is before 2025-12-09, the first day the realtime database keeps \
          (STREAM_RAW_RETENTION); that day is in the warehouse"
        ]
    );
    // And the ETL loads nothing twice.
    etl::run(&mut realtime, &mut warehouse, extra.lanes(), &settings).await?;
    assert_eq!(
        count(&warehouse, "SELECT count(*) FROM fact_sales").await?,
        18
    );
    Ok(())
}
