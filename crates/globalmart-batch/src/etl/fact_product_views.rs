//! `fact_product_views` from `product_view_events`: views, searches, filters and comparisons;
//! only a view names a product.

use datafusion::arrow::array::RecordBatch;
use tokio_postgres::Transaction;

use super::extract::{column, Kind, Source};
use super::facts::{self, at_event_time, date_id};
use super::{Loaded, Table};
use crate::error::EtlError;

/// The `fact_product_views` step.
#[derive(Debug)]
pub struct FactProductViews;

/// The fact's columns, named as the table's.
const TRANSFORM: &str = concat!(
    "SELECT v.event_id, v.event_type, c.customer_id, p.product_id_pk, g.geography_id, ",
    date_id!("v.ts"),
    " AS date_id, v.session_id, v.view_duration, v.search_query, v.ts AS event_timestamp
     FROM source v",
    at_event_time!("v", "LEFT JOIN")
);

impl Table for FactProductViews {
    const NAME: &'static str = "fact_product_views";
    const SOURCE: Source = Source {
        table: "product_view_events",
        rows: "product view events",
        columns: &[
            column("event_id", "event_id", Kind::Uuid),
            column("event_type", "event_type", Kind::Text),
            column("user_id", "user_id", Kind::Text),
            column("session_id", "session_id", Kind::Text),
            column("country", "country", Kind::Text),
            column("product_id", "product_id", Kind::Text),
            column("view_duration", "view_duration", Kind::Int),
            column("search_query", "search_query", Kind::Text),
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
