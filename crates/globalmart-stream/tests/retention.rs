//! Raw retention through Kafka: after the days the warehouse loaded were dropped, a stream that
//! replays every message the topics still hold (a new consumer group) keeps the events of the
//! dropped days as dead letters with their reason and meets the kept days' rows: nothing is
//! saved twice, nothing counted twice, nothing lost.

mod common;

use anyhow::Result;
use chrono::TimeDelta;
use common::{events, produce_all, rows, run, stream, texts};
use globalmart_core::event::Event;
use globalmart_testkit::TestStack;
use tokio_postgres::Client;
use uuid::Uuid;

/// `records`' events (no catalogue) moved `days` earlier, as new events (new ids).
fn earlier(records: &[Event], days: i64) -> Vec<Event> {
    let shift = TimeDelta::days(days);
    records
        .iter()
        .filter_map(|record| match record.clone() {
            Event::Transaction(mut t) => {
                t.transaction_id = Uuid::new_v4();
                t.timestamp -= shift;
                Some(Event::Transaction(t))
            }
            Event::ProductView(mut v) => {
                v.event_id = Uuid::new_v4();
                v.timestamp -= shift;
                Some(Event::ProductView(v))
            }
            Event::Cart(mut c) => {
                c.event_id = Uuid::new_v4();
                c.timestamp -= shift;
                Some(Event::Cart(c))
            }
            Event::Product(_) | Event::User(_) => None,
        })
        .collect()
}

/// The stream as another consumer group, `name`: it reads every message the topics hold.
fn in_group(stack: &TestStack, name: &str) -> std::process::Command {
    let mut command = stream(stack);
    command.env(
        "STREAM_CONSUMER_GROUP",
        format!("{}-{name}", stack.group_id),
    );
    command
}

/// What a replay must not change: raw rows, revenue counted per minute (the windows metric
/// retention keeps: a stream's start prunes older ones), units sold.
async fn state(client: &Client) -> Result<Vec<String>> {
    texts(
        client,
        "SELECT (SELECT count(*) FROM transactions) || ' lines, '
             || (SELECT count(*) FROM product_view_events) || ' views, '
             || (SELECT count(*) FROM cart_events) || ' cart events, '
             || (SELECT coalesce(sum(total_revenue), 0) FROM sales_per_minute
                 WHERE window_start > now() - interval '6 days') || ' revenue, '
             || (SELECT coalesce(sum(units_sold), 0) FROM product_stock) || ' units'",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_after_retention_keeps_removed_days_as_dead_letters_and_saves_nothing_twice(
) -> Result<()> {
    let stack = TestStack::new().await?;
    // The last two hours, and a backfilled day ten days ago.
    let recent = events(2_000);
    let old = earlier(&recent, 10);
    let mut records = recent.clone();
    records.extend(old.iter().cloned());
    produce_all(&stack, &records).await?;
    run(stream(&stack)).await?;
    let client = stack.realtime_client().await?;
    let saved = state(&client).await?;

    // The warehouse has loaded everything (what the batch reports after its chunks).
    client
        .batch_execute(
            "INSERT INTO warehouse_loaded (source_table, last_ingest_seq)
             SELECT 'transactions', max(ingest_seq) FROM transactions
             UNION ALL SELECT 'product_view_events', max(ingest_seq) FROM product_view_events
             UNION ALL SELECT 'cart_events', max(ingest_seq) FROM cart_events",
        )
        .await?;
    // The stream's own housekeeping drops it: a round a second after start, before it exits
    // idle (the default retention, 7 days).
    let mut housekeeping = stream(&stack);
    housekeeping.env("STREAM_RAW_RETENTION_INTERVAL", "1s");
    let log = run(housekeeping).await?;
    assert!(log.contains("[RawRetention] dropped"), "{log}");
    let horizon: chrono::NaiveDate = client
        .query_one("SELECT horizon FROM raw_retention", &[])
        .await?
        .get(0);
    let old_day = (chrono::Utc::now() - TimeDelta::days(10)).date_naive();
    assert!(horizon > old_day, "horizon {horizon}");
    let kept = state(&client).await?;
    assert_ne!(kept, saved, "the old day's rows were not dropped");
    assert_eq!(
        rows(&client, "transactions").await?,
        common::lines(&recent),
        "only the recent lines stay"
    );

    // Every message again, by another consumer group: the dropped day's events become dead
    // letters, the kept ones meet their rows.
    run(in_group(&stack, "replay")).await?;
    assert_eq!(state(&client).await?, kept);
    let retired = texts(
        &client,
        "SELECT count(*)::text FROM dead_letter_events
         WHERE reason LIKE 'event time % is before %, the first day the realtime database keeps%'",
    )
    .await?;
    assert_eq!(retired, [old.len().to_string()]);
    assert_eq!(
        rows(&client, "dead_letter_events").await?,
        i64::try_from(old.len())?
    );
    // A second replay adds nothing: dead letters are keyed by their message.
    run(in_group(&stack, "again")).await?;
    assert_eq!(state(&client).await?, kept);
    assert_eq!(
        rows(&client, "dead_letter_events").await?,
        i64::try_from(old.len())?
    );
    Ok(())
}
