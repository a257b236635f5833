//! `fact_product_views` from `product_view_events`: views, searches, filters and comparisons;
//! only a view names a product.

use super::extract::{column, Kind, Source};
use super::facts::{session_event_source, session_event_transform, Fact};
use super::totals::{self, Totals};

/// The `fact_product_views` fact.
#[derive(Debug)]
pub struct FactProductViews;

impl Fact for FactProductViews {
    const NAME: &'static str = "fact_product_views";
    const SOURCE: Source = session_event_source!(
        "product_view_events",
        "product view events",
        [
            column("view_duration", "view_duration", Kind::Int),
            column("search_query", "search_query", Kind::Text),
        ]
    );
    const TRANSFORM: &'static str = session_event_transform!("e.view_duration, e.search_query");
    const TIME: &'static str = "event_timestamp";
    const PRODUCT_SEEN: &'static str = "product_name, category, price";
    const TOTALS: Totals = totals::VIEWS;
}
