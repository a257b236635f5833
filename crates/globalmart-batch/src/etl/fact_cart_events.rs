//! `fact_cart_events` from `cart_events`: adds, removes, quantity updates and checkouts; a
//! checkout names no product.

use datafusion::arrow::array::RecordBatch;
use tokio_postgres::Transaction;

use super::extract::{column, Kind, Source};
use super::facts::{self, at_event_time, date_id};
use super::{Loaded, Table};
use crate::error::EtlError;

/// The `fact_cart_events` step.
#[derive(Debug)]
pub struct FactCartEvents;

/// The fact's columns, named as the table's.
const TRANSFORM: &str = concat!(
    "SELECT e.event_id, e.event_type, c.customer_id, p.product_id_pk, g.geography_id, ",
    date_id!("e.ts"),
    " AS date_id, e.session_id, e.quantity, e.cart_value, e.ts AS event_timestamp
     FROM source e",
    at_event_time!("e", "LEFT JOIN")
);

impl Table for FactCartEvents {
    const NAME: &'static str = "fact_cart_events";
    const SOURCE: Source = Source {
        table: "cart_events",
        rows: "cart events",
        columns: &[
            column("event_id", "event_id", Kind::Uuid),
            column("event_type", "event_type", Kind::Text),
            column("user_id", "user_id", Kind::Text),
            column("session_id", "session_id", Kind::Text),
            column("country", "country", Kind::Text),
            column("product_id", "product_id", Kind::Text),
            column("quantity", "quantity", Kind::Int),
            column("cart_value", "cart_value", Kind::Numeric(14, 2)),
            column("\"timestamp\"", "ts", Kind::Timestamp),
        ],
    };
    const COUNTED_AS: (&'static str, &'static str) = facts::COUNTED_AS;

    async fn transform(
        tx: &Transaction<'_>,
        extracted: &RecordBatch,
    ) -> Result<RecordBatch, EtlError> {
        facts::with_keys(tx, Self::NAME, extracted, TRANSFORM).await
    }

    async fn load(
        tx: &Transaction<'_>,
        _extracted: &RecordBatch,
        transformed: &RecordBatch,
    ) -> Result<Loaded, EtlError> {
        facts::merge(tx, Self::NAME, "event_timestamp", transformed).await
    }
}
