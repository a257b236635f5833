//! `fact_cart_events` from `cart_events`: adds, removes, quantity updates and checkouts; a
//! checkout names no product.

use super::extract::{column, Kind, Source};
use super::facts::{at_event_time, date_id, Fact};
use super::totals::{self, Totals};

/// The `fact_cart_events` fact.
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

impl Fact for FactCartEvents {
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
            column("product_name", "product_name", Kind::Text),
            column("category", "category", Kind::Text),
            column("price", "price", Kind::Numeric(12, 2)),
            column("quantity", "quantity", Kind::Int),
            column("cart_value", "cart_value", Kind::Numeric(14, 2)),
            column("\"timestamp\"", "ts", Kind::Timestamp),
        ],
    };
    const TRANSFORM: &'static str = TRANSFORM;
    const TIME: &'static str = "event_timestamp";
    const PRODUCT_SEEN: &'static str = "product_name, category, price";
    const TOTALS: Totals = totals::CART_EVENTS;
}
