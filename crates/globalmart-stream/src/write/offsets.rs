//! `stream_offsets`: where each consumer group resumes, per (topic, partition). Written in the
//! transaction that saves the messages before it, so the database is the source of truth for
//! offsets (docs/ARCHITECTURE.md, "Effectively-once savers").

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, Error, Transaction as DbTransaction};

/// Offsets only move forward: an instance that lost a partition in a rebalance cannot set its
/// new owner back. Two event times go with them (a batch of only catalogue records or dead
/// letters leaves both): `event_time`, the greatest ever saved, which raw retention reads (a
/// day is not dropped while a partition may still write it), and `batch_event_time`, the
/// latest of the newest batch saved, which the abandoned-cart sweep reads: a backfill of days
/// older than what the partition held moves it back, so the backfill's sessions are judged in
/// their own time, not as of the newer events (before their checkouts were read).
const SAVE: &str = "
    INSERT INTO stream_offsets (consumer_group, topic, \"partition\", next_offset, event_time,
        batch_event_time)
    SELECT $1, u.*, u.event_time
    FROM unnest($2::text[], $3::int4[], $4::int8[], $5::timestamptz[])
        AS u(topic, \"partition\", next_offset, event_time)
    ON CONFLICT (consumer_group, topic, \"partition\") DO UPDATE
        SET next_offset = GREATEST(stream_offsets.next_offset, EXCLUDED.next_offset),
            event_time = GREATEST(stream_offsets.event_time, EXCLUDED.event_time),
            batch_event_time = CASE WHEN EXCLUDED.next_offset > stream_offsets.next_offset
                THEN coalesce(EXCLUDED.batch_event_time, stream_offsets.batch_event_time)
                ELSE stream_offsets.batch_event_time END,
            updated_at = now()";

const STORED: &str =
    "SELECT topic, \"partition\", next_offset FROM stream_offsets WHERE consumer_group = $1";

/// Stores the offset each (topic, partition) resumes from for consumer group `group`, and the
/// latest event time of this batch from it.
pub async fn save(
    tx: &DbTransaction<'_>,
    group: &str,
    next_offsets: &BTreeMap<(String, i32), i64>,
    event_times: &BTreeMap<(String, i32), DateTime<Utc>>,
) -> Result<(), Error> {
    let topic: Vec<&str> = next_offsets.keys().map(|(t, _)| t.as_str()).collect();
    let partition: Vec<i32> = next_offsets.keys().map(|(_, p)| *p).collect();
    let offset: Vec<i64> = next_offsets.values().copied().collect();
    let event_time: Vec<Option<DateTime<Utc>>> = next_offsets
        .keys()
        .map(|k| event_times.get(k).copied())
        .collect();
    tx.execute(SAVE, &[&group, &topic, &partition, &offset, &event_time])
        .await?;
    Ok(())
}

/// The stored next offsets of consumer group `group`, per (topic, partition): where its
/// consumers resume.
pub async fn stored_offsets(
    client: &Client,
    group: &str,
) -> Result<HashMap<(String, i32), i64>, Error> {
    let rows = client.query(STORED, &[&group]).await?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}
