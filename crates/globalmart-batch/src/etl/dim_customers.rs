//! `dim_customers` from `user_history`, SCD2: a new email, age band or country makes a new
//! version; the age and registration date are overwritten on the current one. The purchase
//! totals (orders, spend) are the customer's, on whichever version is current: recounted here
//! for new versions, added to by each chunk of new sales (`totals.rs`), never making a version.

use std::collections::BTreeSet;

use datafusion::arrow::array::{AsArray, RecordBatch};
use tokio_postgres::Transaction;

use super::extract::{column, Kind, Source};
use super::scd2::{Dimension, Scd2};
use crate::error::EtlError;

/// The `dim_customers` dimension.
#[derive(Debug)]
pub struct DimCustomers;

/// Overwrites the purchase totals of the current rows of users $1 from all their sales,
/// whichever version those point to; a new version without an RFM score takes the one of the
/// version before it (the score is the customer's, and the analytics only rewrite scores that
/// change: `analytics/rfm.rs`).
const REFRESH_TOTALS: &str = "
    UPDATE dim_customers d SET total_transactions = a.orders, total_spent = a.spent,
        avg_order_value = round(a.spent / a.orders, 2),
        first_transaction_date = a.first, last_transaction_date = a.last,
        rfm_score = coalesce(d.rfm_score, p.rfm_score),
        customer_segment = coalesce(d.customer_segment, p.customer_segment),
        updated_at = now()
    FROM (SELECT c.user_id, count(DISTINCT f.transaction_id)::int AS orders,
              sum(f.total_amount) AS spent, min(f.transaction_timestamp) AS first,
              max(f.transaction_timestamp) AS last
          FROM fact_sales f JOIN dim_customers c ON c.customer_id = f.customer_id
          WHERE c.user_id IN (SELECT unnest($1::text[]))
          GROUP BY c.user_id) a
        LEFT JOIN LATERAL (
            SELECT x.rfm_score, x.customer_segment FROM dim_customers x
            WHERE x.user_id = a.user_id AND NOT x.is_current
            ORDER BY x.effective_start_date DESC LIMIT 1) p ON TRUE
    WHERE d.user_id = a.user_id AND d.is_current";

impl Dimension for DimCustomers {
    const SCD2: Scd2 = Scd2 {
        table: "dim_customers",
        key: "user_id",
        versioned: &["email", "age_group", "country"],
        in_place: &["age", "registration_date"],
    };
    const SOURCE: Source = Source {
        table: "user_history",
        rows: "user versions",
        columns: &[
            column("user_id", "user_id", Kind::Text),
            column("updated_at", "updated_at", Kind::Timestamp),
            column("email", "email", Kind::Text),
            column("age", "age", Kind::Int),
            column("country", "country", Kind::Text),
            column("registration_date", "registration_date", Kind::Timestamp),
        ],
    };
    /// The age band is versioned, the age itself is not.
    const PREPARE: &'static str = "
        SELECT user_id AS key, updated_at AS at, email,
            CASE WHEN age < 25 THEN '18-24' WHEN age < 35 THEN '25-34'
                 WHEN age < 45 THEN '35-44' WHEN age < 55 THEN '45-54'
                 WHEN age < 65 THEN '55-64' ELSE '65+' END AS age_group,
            country, age, registration_date
        FROM source";

    /// A new version starts with the customer's purchase totals, like the one it follows.
    async fn loaded(tx: &Transaction<'_>, extracted: &RecordBatch) -> Result<(), EtlError> {
        refresh_totals(tx, extracted).await
    }
}

/// Recounts the purchase totals of the users in the `user_id` column of `extracted` (rows
/// read from the realtime database, whose text columns are plain strings).
async fn refresh_totals(tx: &Transaction<'_>, extracted: &RecordBatch) -> Result<(), EtlError> {
    let users: BTreeSet<&str> = extracted
        .column_by_name("user_id")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or(EtlError::MissingColumn("user_id"))?
        .iter()
        .flatten()
        .collect();
    let users: Vec<&str> = users.into_iter().collect();
    tx.execute(REFRESH_TOTALS, &[&users]).await?;
    Ok(())
}
