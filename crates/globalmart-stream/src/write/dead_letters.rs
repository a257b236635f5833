//! `dead_letter_events`: messages that could not become events, whole (key and payload), with
//! the reason. Keyed by (topic, partition, offset): a replayed bad message is not stored twice.

use tokio_postgres::{Error, Transaction as DbTransaction};

use crate::batcher::Received;

const INSERT: &str = "
    INSERT INTO dead_letter_events (topic, \"partition\", \"offset\", key, payload, reason)
    SELECT * FROM unnest($1::text[], $2::int4[], $3::int8[], $4::bytea[], $5::bytea[],
        $6::text[])
    ON CONFLICT DO NOTHING";

/// Saves the dead letters; returns (inserted, offered).
pub async fn save(
    tx: &DbTransaction<'_>,
    letters: &[(Received, String)],
) -> Result<(u64, u64), Error> {
    let topic: Vec<&str> = letters.iter().map(|(m, _)| m.topic.as_str()).collect();
    let partition: Vec<i32> = letters.iter().map(|(m, _)| m.partition).collect();
    let offset: Vec<i64> = letters.iter().map(|(m, _)| m.offset).collect();
    let key: Vec<Option<&[u8]>> = letters.iter().map(|(m, _)| m.key.as_deref()).collect();
    let payload: Vec<Option<&[u8]>> = letters.iter().map(|(m, _)| m.payload.as_deref()).collect();
    let reason: Vec<&str> = letters.iter().map(|(_, r)| r.as_str()).collect();
    let inserted = tx
        .execute(
            INSERT,
            &[&topic, &partition, &offset, &key, &payload, &reason],
        )
        .await?;
    Ok((inserted, letters.len() as u64))
}
