//! `high_value_anomalies` (a transaction total at or above the threshold) and
//! `high_quantity_anomalies` (a line quantity at or above it), from the transactions a batch
//! inserted. Keyed by transaction or line item: recorded once however often they are seen; the
//! critical ones raise an alert, keyed the same way.

use chrono::{DateTime, Utc};
use globalmart_core::event::Transaction;
use rust_decimal::Decimal;
use tokio_postgres::{Error, Transaction as DbTransaction};
use uuid::Uuid;

use crate::config::Thresholds;
use crate::write::alerts::{self, Alert};

const HIGH_VALUE: &str = "
    WITH recorded AS (
        INSERT INTO high_value_anomalies (transaction_id, user_id, total_amount, severity,
            country, payment_method, transaction_timestamp)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::numeric[], $4::text[], $5::text[],
            $6::text[], $7::timestamptz[])
        ON CONFLICT DO NOTHING
        RETURNING *
    )
    SELECT 'high_value:' || transaction_id AS alert_key,
        'high_value_transaction' AS alert_type, severity, user_id AS entity_id,
        format('Transaction %s by %s for %s (%s)', transaction_id, user_id, total_amount,
            country) AS message,
        jsonb_build_object('transaction_id', transaction_id, 'user_id', user_id,
            'total_amount', total_amount, 'country', country,
            'payment_method', payment_method)::text AS details,
        transaction_timestamp AS event_timestamp
    FROM recorded WHERE severity = 'critical'";

const HIGH_QUANTITY: &str = "
    WITH recorded AS (
        INSERT INTO high_quantity_anomalies (line_item_id, transaction_id, user_id, product_id,
            quantity, severity, transaction_timestamp)
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int4[],
            $6::text[], $7::timestamptz[])
        ON CONFLICT DO NOTHING
        RETURNING *
    )
    SELECT 'high_quantity:' || line_item_id AS alert_key,
        'high_quantity_order' AS alert_type, severity, user_id AS entity_id,
        format('%s units of %s in transaction %s by %s', quantity, product_id,
            transaction_id, user_id) AS message,
        jsonb_build_object('transaction_id', transaction_id, 'line_item_id', line_item_id,
            'user_id', user_id, 'product_id', product_id, 'quantity', quantity)::text
            AS details,
        transaction_timestamp AS event_timestamp
    FROM recorded WHERE severity = 'critical'";

/// One anomalous line or transaction.
#[derive(Debug, Clone, PartialEq)]
struct Anomaly {
    key: Uuid,
    transaction_id: Uuid,
    user_id: String,
    product_id: Option<String>,
    amount: Decimal,
    quantity: i32,
    severity: &'static str,
    country: &'static str,
    payment_method: &'static str,
    at: DateTime<Utc>,
}

/// The anomalies of some transactions.
#[derive(Debug, Default)]
pub struct Anomalies {
    high_value: Vec<Anomaly>,
    high_quantity: Vec<Anomaly>,
}

impl Anomalies {
    /// The anomalies of `transactions` (those a batch inserted) by `thresholds`.
    pub fn detect(transactions: &[&Transaction], thresholds: &Thresholds) -> Anomalies {
        let mut found = Anomalies::default();
        for t in transactions {
            for (i, line) in t.products.iter().enumerate() {
                if line.quantity >= thresholds.high_quantity {
                    found.high_quantity.push(Anomaly {
                        key: t.line_item_id(i),
                        product_id: Some(line.product_id.clone()),
                        quantity: line.quantity,
                        severity: Thresholds::quantity_severity(line.quantity),
                        ..anomaly(t)
                    });
                }
            }
            if t.total_amount >= thresholds.high_value {
                found.high_value.push(Anomaly {
                    key: t.transaction_id,
                    severity: Thresholds::value_severity(t.total_amount),
                    ..anomaly(t)
                });
            }
        }
        found
    }

    /// Records the anomalies; returns the alerts of those new and critical.
    pub async fn save(&self, tx: &DbTransaction<'_>) -> Result<Vec<Alert>, Error> {
        let v = AnomalyColumns::from(&self.high_value[..]);
        let mut raised = alerts::of(
            &tx.query(
                HIGH_VALUE,
                &[
                    &v.key,
                    &v.user_id,
                    &v.amount,
                    &v.severity,
                    &v.country,
                    &v.payment_method,
                    &v.at,
                ],
            )
            .await?,
        );
        let q = AnomalyColumns::from(&self.high_quantity[..]);
        raised.extend(alerts::of(
            &tx.query(
                HIGH_QUANTITY,
                &[
                    &q.key,
                    &q.transaction_id,
                    &q.user_id,
                    &q.product_id,
                    &q.quantity,
                    &q.severity,
                    &q.at,
                ],
            )
            .await?,
        ));
        Ok(raised)
    }
}

/// An anomaly's fields from its transaction.
fn anomaly(t: &Transaction) -> Anomaly {
    Anomaly {
        key: t.transaction_id,
        transaction_id: t.transaction_id,
        user_id: t.user_id.clone(),
        product_id: None,
        amount: t.total_amount,
        quantity: 0,
        severity: "medium",
        country: t.country.as_str(),
        payment_method: t.payment_method.as_str(),
        at: t.timestamp,
    }
}

#[derive(Default)]
struct AnomalyColumns<'a> {
    key: Vec<Uuid>,
    transaction_id: Vec<Uuid>,
    user_id: Vec<&'a str>,
    product_id: Vec<Option<&'a str>>,
    amount: Vec<Decimal>,
    quantity: Vec<i32>,
    severity: Vec<&'static str>,
    country: Vec<&'static str>,
    payment_method: Vec<&'static str>,
    at: Vec<DateTime<Utc>>,
}

impl<'a> From<&'a [Anomaly]> for AnomalyColumns<'a> {
    fn from(anomalies: &'a [Anomaly]) -> Self {
        let mut c = AnomalyColumns::default();
        for a in anomalies {
            c.key.push(a.key);
            c.transaction_id.push(a.transaction_id);
            c.user_id.push(&a.user_id);
            c.product_id.push(a.product_id.as_deref());
            c.amount.push(a.amount);
            c.quantity.push(a.quantity);
            c.severity.push(a.severity);
            c.country.push(a.country);
            c.payment_method.push(a.payment_method);
            c.at.push(a.at);
        }
        c
    }
}
