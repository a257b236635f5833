//! Raw retention (docs/ARCHITECTURE.md, "Raw retention"): the raw event tables are partitioned
//! by day of event time (`sql/realtime/V11__raw_partitions.sql`). Before a batch is saved, the
//! days of its events get their partitions; the housekeeping drops the days older than
//! STREAM_RAW_RETENTION that the warehouse has loaded and every event partition has read past,
//! and moves the horizon, the first day kept. An event from before the horizon is not saved
//! again: it becomes a dead letter (`Batch::retired`).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{NaiveDate, TimeDelta, Utc};
use globalmart_core::db::{INGEST_LOCK, RAW_HORIZON};
use tokio_postgres::{Client, Error};

/// How long the retention waits for the raw tables (the ingest lock, then the tables' own)
/// before it gives up until the next round, rather than stall the stream's saves.
const WAIT: &str = "200 milliseconds";

/// Creates the partitions of `days` (those not before the horizon); returns the horizon.
pub async fn ensure(client: &Client, days: &BTreeSet<NaiveDate>) -> Result<NaiveDate, Error> {
    let days: Vec<NaiveDate> = days.iter().copied().collect();
    let row = client
        .query_one("SELECT raw_partitions_ensure($1)", &[&days])
        .await?;
    row.try_get(0)
}

/// One round: the partitions of yesterday, today and tomorrow made ahead of the events (a new
/// day's first batch then waits for none), and the days older than `keep` dropped where the
/// warehouse has loaded them. Returns the days dropped and the horizon after.
pub async fn apply(client: &Client, keep: Duration) -> Result<(i32, NaiveDate), Error> {
    let today = Utc::now().date_naive();
    let near = (-1..=1)
        .filter_map(|d| today.checked_add_signed(TimeDelta::days(d)))
        .collect();
    ensure(client, &near).await?;
    let keep = TimeDelta::from_std(keep).unwrap_or(TimeDelta::MAX);
    let keep_from = Utc::now()
        .checked_sub_signed(keep)
        .map_or(NaiveDate::MIN, |t| t.date_naive());
    // Without a day to drop, the function returns before the ingest lock
    // (`sql/realtime/V16__retention_locks_only_to_drop.sql`).
    let dropped: i32 = client
        .query_one(
            "SELECT raw_retention_apply($1, $2::text::interval, $3)",
            &[&keep_from, &WAIT, &INGEST_LOCK],
        )
        .await?
        .try_get(0)?;
    let horizon: NaiveDate = client.query_one(RAW_HORIZON, &[]).await?.try_get(0)?;
    Ok((dropped, horizon))
}
