//! `fact_cart_events` from `cart_events`: adds, removes, quantity updates and checkouts; a
//! checkout names no product.

use super::extract::{column, Kind, Source};
use super::facts::{session_event_source, session_event_transform, Fact};
use super::totals::{self, Totals};

/// The `fact_cart_events` fact.
#[derive(Debug)]
pub struct FactCartEvents;

impl Fact for FactCartEvents {
    const NAME: &'static str = "fact_cart_events";
    const SOURCE: Source = session_event_source!(
        "cart_events",
        "cart events",
        [
            column("quantity", "quantity", Kind::Int),
            column("cart_value", "cart_value", Kind::Numeric(14, 2)),
        ]
    );
    const TRANSFORM: &'static str = session_event_transform!("e.quantity, e.cart_value");
    const TIME: &'static str = "event_timestamp";
    const PRODUCT_SEEN: &'static str = "product_name, category, price";
    const TOTALS: Totals = totals::CART_EVENTS;
}
