//! `fact_product_views` from `product_view_events`: views, searches, filters and comparisons;
//! only a view names a product.

use super::extract::{column, Kind, Source};
use super::facts::{at_event_time, date_id, Fact};
use super::totals::{self, Totals};

/// The `fact_product_views` fact.
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

impl Fact for FactProductViews {
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
            column("product_name", "product_name", Kind::Text),
            column("category", "category", Kind::Text),
            column("price", "price", Kind::Numeric(12, 2)),
            column("view_duration", "view_duration", Kind::Int),
            column("search_query", "search_query", Kind::Text),
            column("\"timestamp\"", "ts", Kind::Timestamp),
        ],
    };
    const TRANSFORM: &'static str = TRANSFORM;
    const TIME: &'static str = "event_timestamp";
    const PRODUCT_SEEN: &'static str = "product_name, category, price";
    const TOTALS: Totals = totals::VIEWS;
}
