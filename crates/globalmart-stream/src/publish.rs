//! Publishing alerts: each row of `alerts` (one per cause, written by `write::alerts` in the
//! same transaction as the rows behind it) is produced to alerts-topic as JSON, keyed by its entity, and marked
//! published once the broker has acknowledged it. The rows being published stay locked, so
//! several instances share the work without producing an alert twice; a crash between the
//! acknowledgement and the mark produces those alerts again after the restart, which consumers
//! recognise by `alert_key`.

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use globalmart_core::config::KafkaArgs;
use globalmart_core::kafka::{self, Refusals};
use globalmart_core::timestamp;
use globalmart_core::topics::Topic;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

/// Most alerts produced in one round.
const ROUND: i64 = 500;

/// The next round of alerts not yet published, locked: other instances skip them.
const UNPUBLISHED: &str = "
    SELECT alert_id, alert_key, alert_type, severity, entity_id, message, details,
        event_timestamp, created_at
    FROM alerts WHERE published_at IS NULL
    ORDER BY alert_id LIMIT $1 FOR UPDATE SKIP LOCKED";

const MARK_PUBLISHED: &str = "UPDATE alerts SET published_at = now() WHERE alert_id = ANY($1)";

/// Produces alerts to alerts-topic.
pub struct Publisher {
    producer: FutureProducer<Refusals>,
    topic: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A producer for alerts-topic on `kafka` (it connects lazily), reporting refused
    /// connections to `refusals`.
    pub fn new(kafka: &KafkaArgs, refusals: Refusals) -> Result<Publisher> {
        let producer = kafka::client_config(kafka, "globalmart-stream-alerts")?
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .create_with_context(refusals)
            .context("creating the Kafka producer for alerts (KAFKA_BOOTSTRAP_SERVERS)")?;
        Ok(Publisher {
            producer,
            topic: kafka.topic_name(Topic::Alerts),
        })
    }

    /// Publishes the alerts not yet published, a round at a time; returns how many.
    pub async fn publish(&self, pool: &Pool) -> Result<u64> {
        let mut published = 0;
        loop {
            let round = self.round(pool).await?;
            published += round;
            if round < ROUND as u64 {
                return Ok(published);
            }
        }
    }

    async fn round(&self, pool: &Pool) -> Result<u64> {
        let mut client = pool.get().await.context("getting a database connection")?;
        let tx = client.transaction().await?;
        let rows = tx.query(UNPUBLISHED, &[&ROUND]).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            let (id, entity): (i64, String) = (row.get("alert_id"), row.get("entity_id"));
            let (at, created): (DateTime<Utc>, DateTime<Utc>) =
                (row.get("event_timestamp"), row.get("created_at"));
            let value = json!({
                "alert_id": id,
                "alert_key": row.get::<_, String>("alert_key"),
                "alert_type": row.get::<_, String>("alert_type"),
                "severity": row.get::<_, String>("severity"),
                "entity_id": entity,
                "message": row.get::<_, String>("message"),
                "details": row.get::<_, Value>("details"),
                "event_timestamp": timestamp::format(&at),
                "created_at": timestamp::format(&created),
            });
            ids.push(id);
            messages.push((entity, value.to_string()));
        }
        let deliveries = messages.iter().map(|(key, payload)| {
            self.producer.send(
                FutureRecord::to(&self.topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
        });
        for delivery in futures::future::join_all(deliveries).await {
            delivery
                .map_err(|(e, _)| e)
                .context("producing an alert to alerts-topic")?;
        }
        tx.execute(MARK_PUBLISHED, &[&ids]).await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}
