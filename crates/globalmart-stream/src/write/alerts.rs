//! `alerts`: one row per cause (a critical anomaly, a stock crossing, a restock warning, a
//! high-demand window), keyed by `alert_key`, written by [`record`] and nothing else, in the
//! same transaction as the rows behind it. The writers that detect a cause return its alert
//! with the message and details they phrased in SQL; `publish` later produces each row to
//! alerts-topic.

use chrono::{DateTime, Utc};
use tokio_postgres::{Error, Row, Transaction as DbTransaction};

/// The columns a writer's statement returns for each alert it raises, in this order:
/// alert_key, alert_type, severity, entity_id, message, details (JSON text), event_timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    key: String,
    kind: String,
    severity: String,
    entity: String,
    message: String,
    /// JSON, as text: kept exactly as the writer's SQL built it.
    details: String,
    at: DateTime<Utc>,
}

impl From<&Row> for Alert {
    fn from(row: &Row) -> Alert {
        Alert {
            key: row.get("alert_key"),
            kind: row.get("alert_type"),
            severity: row.get("severity"),
            entity: row.get("entity_id"),
            message: row.get("message"),
            details: row.get("details"),
            at: row.get("event_timestamp"),
        }
    }
}

/// The alerts of the rows a statement returned.
pub fn of(rows: &[Row]) -> Vec<Alert> {
    rows.iter().map(Alert::from).collect()
}

/// Keyed by cause: an alert raised again (a replay, another instance) is recorded once.
const INSERT: &str = "
    INSERT INTO alerts (alert_key, alert_type, severity, entity_id, message, details,
        event_timestamp)
    SELECT k, t, s, e, m, d::jsonb, a
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::timestamptz[]) WITH ORDINALITY AS x(k, t, s, e, m, d, a, n)
    ORDER BY n
    ON CONFLICT (alert_key) DO NOTHING";

/// Records `alerts`, in order; those recorded before are left as they are.
pub async fn record(tx: &DbTransaction<'_>, alerts: &[Alert]) -> Result<(), Error> {
    if alerts.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&Alert) -> &str| alerts.iter().map(f).collect::<Vec<&str>>();
    let at: Vec<DateTime<Utc>> = alerts.iter().map(|a| a.at).collect();
    tx.execute(
        INSERT,
        &[
            &column(|a| &a.key),
            &column(|a| &a.kind),
            &column(|a| &a.severity),
            &column(|a| &a.entity),
            &column(|a| &a.message),
            &column(|a| &a.details),
            &at,
        ],
    )
    .await?;
    Ok(())
}
