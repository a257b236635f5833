//! `stream_offsets`: where each consumer group resumes, per (topic, partition). Written in the
//! transaction that saves the messages before it, so the database is the source of truth for
//! offsets (docs/ARCHITECTURE.md, "Effectively-once savers").

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, Error, Transaction as DbTransaction};

/// Offsets only move forward: an instance that lost a partition in a rebalance cannot set its
/// new owner back. The same for the latest event time (GREATEST ignores a NULL: a batch of only
/// catalogue records or dead letters leaves it).
const SAVE: &str = "
    INSERT INTO stream_offsets (consumer_group, topic, \"partition\", next_offset, event_time)
    SELECT $1, * FROM unnest($2::text[], $3::int4[], $4::int8[], $5::timestamptz[])
    ON CONFLICT (consumer_group, topic, \"partition\") DO UPDATE
        SET next_offset = GREATEST(stream_offsets.next_offset, EXCLUDED.next_offset),
            event_time = GREATEST(stream_offsets.event_time, EXCLUDED.event_time),
            updated_at = now()";

const STORED: &str =
    "SELECT topic, \"partition\", next_offset FROM stream_offsets WHERE consumer_group = $1";

/// Stores the offset each (topic, partition) resumes from for consumer group `group`, and the
/// latest event time saved from it.
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
