//! A month of the generator's history (its backfill on a simulated clock, small scale), saved by
//! the stream's savers and loaded by `globalmart-batch run`: what an analyst sees after 30 days.

mod common;

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use globalmart_core::event::Event;
use globalmart_generator::mix::{Mix, MixSettings, TRANSACTION_SHARE};
use globalmart_generator::timeline::{Period, Shape, Timeline};
use globalmart_testkit::TestStack;

use common::{batch, guide_queries, save};

/// The nine segments the README names.
const SEGMENTS: [&str; 9] = [
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "New Customers",
    "Promising",
    "At Risk",
    "Cannot Lose Them",
    "Hibernating",
    "Lost",
];

/// October 2026's first 30 days, 1,000 customers, 200 orders a day: the generator's backfill
/// as `generate::run` produces it (catalogue first, then one event per time of the timeline).
fn october(seed: u64) -> Vec<Event> {
    let start = Utc
        .with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
        .single()
        .expect("a date");
    let period = Period {
        start,
        end: start + Duration::days(30),
    };
    let settings = MixSettings {
        users: 1_000,
        products: 200,
        anomaly_share: 0.02,
        catalogue_change_rate: 0.005,
        active_sessions: 50,
    };
    let mut mix = Mix::new(settings, seed, seed, period);
    let mut records: Vec<Event> = mix.catalogue.events().collect();
    let per_day = 200.0 / TRANSACTION_SHARE;
    let timeline = Timeline::new(seed, Shape::default(), per_day, period);
    records.extend(timeline.map(|at| mix.next(at)));
    records
}

#[tokio::test]
async fn a_backfilled_month_gives_every_rfm_segment_and_thirty_days_of_trend() -> Result<()> {
    let stack = TestStack::new().await?;
    let records = october(2026);
    let mut realtime = stack.realtime_client().await?;
    for chunk in records.chunks(10_000) {
        save(&mut realtime, chunk).await?;
    }
    let out = batch(&stack, ["run"]).run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let warehouse = stack.warehouse_client().await?;
    // The guide's Common Query 3, "Daily Sales Trend", as the demo runs it.
    let daily_sales_trend = &guide_queries()?[2];
    assert!(daily_sales_trend.contains("d.date,"), "{daily_sales_trend}");
    let days: Vec<NaiveDate> = (warehouse.query(daily_sales_trend.as_str(), &[]).await?)
        .iter()
        .map(|row| row.get(0))
        .collect();
    let first = NaiveDate::from_ymd_opt(2026, 10, 1).expect("a date");
    let october: Vec<NaiveDate> = (0..30).rev().map(|d| first + Duration::days(d)).collect();
    assert_eq!(
        days, october,
        "one row per day of the backfill, latest first"
    );

    let segments: BTreeMap<String, i64> = (warehouse
        .query(
            "SELECT rfm_segment, count(*) FROM rfm_analysis GROUP BY rfm_segment",
            &[],
        )
        .await?)
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let customers: i64 = segments.values().sum();
    eprintln!("{customers} customers in RFM: {segments:?}");
    let missing: Vec<&str> = SEGMENTS
        .into_iter()
        .filter(|s| !segments.contains_key(*s))
        .collect();
    assert!(missing.is_empty(), "no {missing:?} among {segments:?}");
    // Heavy-tailed activity: some customers never buy, most buyers buy more than once.
    assert!(
        (400..=900).contains(&customers),
        "{customers} of 1,000 customers bought: {segments:?}"
    );
    Ok(())
}
