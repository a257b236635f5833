//! `fact_sales` from `transactions`: one row per transaction line (`event_id` = its
//! line_item_id), keyed to the customer and product versions valid at the sale. New sales add
//! to their customers' purchase totals (`totals.rs`).

use super::extract::{column, Kind, Source};
use super::facts::{at_event_time, date_id, Fact};
use super::totals::{self, Totals};

/// The `fact_sales` fact.
#[derive(Debug)]
pub struct FactSales;

/// The fact's columns, named as the table's.
const TRANSFORM: &str = concat!(
    "SELECT s.line_item_id AS event_id, s.transaction_id, c.customer_id, p.product_id_pk,
         g.geography_id, ",
    date_id!("s.ts"),
    " AS date_id, s.quantity, s.price AS unit_price,
         CAST(0 AS DECIMAL(12, 2)) AS discount_amount,
         CAST(s.price * CAST(s.quantity AS DECIMAL(10, 0)) AS DECIMAL(14, 2)) AS total_amount,
         s.payment_method, s.ts AS transaction_timestamp
     FROM source s",
    at_event_time!("s", "JOIN")
);

impl Fact for FactSales {
    const NAME: &'static str = "fact_sales";
    const SOURCE: Source = Source {
        table: "transactions",
        rows: "transaction lines",
        columns: &[
            column("line_item_id", "line_item_id", Kind::Uuid),
            column("transaction_id", "transaction_id", Kind::Uuid),
            column("user_id", "user_id", Kind::Text),
            column("product_id", "product_id", Kind::Text),
            column("quantity", "quantity", Kind::Int),
            column("price", "price", Kind::Numeric(12, 2)),
            column("payment_method", "payment_method", Kind::Text),
            column("country", "country", Kind::Text),
            column("\"timestamp\"", "ts", Kind::Timestamp),
        ],
    };
    const TRANSFORM: &'static str = TRANSFORM;
    const TIME: &'static str = "transaction_timestamp";
    const PRODUCT_SEEN: &'static str =
        "CAST(NULL AS VARCHAR) AS product_name, CAST(NULL AS VARCHAR) AS category, price";
    const TOTALS: Totals = totals::SALES;
}
