//! `customer_segments`: one row per RFM segment of the analysis (customers, revenue, average
//! order value = revenue per order), from that date's `rfm_analysis`. Every analysis is kept in
//! `customer_segments_history`; `customer_segments` holds the latest one.
//!
//! The history's counts change with `rfm_analysis`, in the RFM's transaction (`rfm.rs`): a
//! rerun of a date adds what its rescored customers' rows changed ([`add`]), anything else
//! counts the date's rows ([`recount`]). The segments' job then publishes the date's counts.

use chrono::NaiveDate;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Decimal128Type, Int64Type};
use rust_decimal::Decimal;
use tokio_postgres::Transaction;

use super::rfm::SEGMENTS;
use crate::error::EtlError;
use crate::etl::plan;
use crate::figures::Figures;

/// Counts the segments of `date` from its `rfm_analysis` rows.
pub async fn recount(tx: &Transaction<'_>, date: NaiveDate) -> Result<(), EtlError> {
    let (names, descriptions) = names();
    tx.execute(
        "DELETE FROM customer_segments_history WHERE analysis_date = $1",
        &[&date],
    )
    .await?;
    tx.execute(
        "INSERT INTO customer_segments_history (analysis_date, segment_name,
             segment_description, customer_count, total_revenue, avg_order_value, order_count)
         SELECT $1, r.rfm_segment, d.description, count(*), sum(r.monetary_value),
             round(sum(r.monetary_value) / sum(r.frequency_count), 2), sum(r.frequency_count)
         FROM rfm_analysis r
         JOIN unnest($2::text[], $3::text[]) AS d(name, description) ON d.name = r.rfm_segment
         WHERE r.analysis_date = $1
         GROUP BY r.rfm_segment, d.description",
        &[&date, &names, &descriptions],
    )
    .await?;
    Ok(())
}

/// Adds to the segments of `date` what its `rfm_analysis` rows `fresh` changed, `stored` being
/// the rows they replaced (of the same customers; a new customer has none). False, changing
/// nothing that stays, when the stored counts cannot be added to: they do not count the
/// `customers` the date now has, or predate the orders' column.
pub async fn add(
    tx: &Transaction<'_>,
    date: NaiveDate,
    fresh: &RecordBatch,
    stored: &RecordBatch,
    customers: i64,
) -> Result<bool, EtlError> {
    let changes = plan(
        &[("fresh", fresh), ("stored", stored)],
        "SELECT arrow_cast(rfm_segment, 'Utf8') AS segment, CAST(sum(c) AS BIGINT) AS customers,
             CAST(sum(m) AS DECIMAL(18, 2)) AS revenue, CAST(sum(f) AS BIGINT) AS orders
         FROM (SELECT rfm_segment, CAST(1 AS BIGINT) AS c, monetary_value AS m,
                   CAST(frequency_count AS BIGINT) AS f FROM fresh
               UNION ALL
               SELECT rfm_segment, CAST(-1 AS BIGINT), -monetary_value,
                   -CAST(frequency_count AS BIGINT) FROM stored) d
         GROUP BY rfm_segment",
    )
    .await?;
    let segment: Vec<&str> = changes
        .column(0)
        .as_string::<i32>()
        .iter()
        .map(Option::unwrap_or_default)
        .collect();
    let counts = |i: usize| -> Vec<i64> {
        (changes.column(i).as_primitive::<Int64Type>().iter())
            .map(|v| v.unwrap_or(0))
            .collect()
    };
    let revenue = changes.column(2).as_primitive::<Decimal128Type>();
    let revenue: Vec<Decimal> = (revenue.iter())
        .map(|v| Decimal::from_i128_with_scale(v.unwrap_or(0), 2))
        .collect();
    let (names, descriptions) = names();
    tx.execute(
        ADD,
        &[
            &date,
            &segment,
            &counts(1),
            &revenue,
            &counts(3),
            &names,
            &descriptions,
        ],
    )
    .await?;
    tx.execute(
        "DELETE FROM customer_segments_history WHERE analysis_date = $1 AND customer_count = 0",
        &[&date],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT coalesce(sum(customer_count), 0)::bigint,
                 count(*) FILTER (WHERE order_count IS NULL)
             FROM customer_segments_history WHERE analysis_date = $1",
            &[&date],
        )
        .await?;
    Ok(row.try_get::<_, i64>(0)? == customers && row.try_get::<_, i64>(1)? == 0)
}

/// Adds the changes per segment ($2: names, $3: customers, $4: revenue, $5: orders) to the
/// counts of date $1; $6 and $7 name and describe every segment.
const ADD: &str = "
    INSERT INTO customer_segments_history AS h (analysis_date, segment_name, segment_description,
        customer_count, total_revenue, avg_order_value, order_count)
    SELECT $1, c.name, d.description, c.customers, c.revenue,
        coalesce(round(c.revenue / nullif(c.orders, 0), 2), 0), c.orders
    FROM unnest($2::text[], $3::bigint[], $4::numeric[], $5::bigint[])
        AS c(name, customers, revenue, orders)
    JOIN unnest($6::text[], $7::text[]) AS d(name, description) ON d.name = c.name
    ORDER BY c.name
    ON CONFLICT (analysis_date, segment_name) DO UPDATE SET
        customer_count = h.customer_count + excluded.customer_count,
        total_revenue = h.total_revenue + excluded.total_revenue,
        order_count = h.order_count + excluded.order_count,
        avg_order_value = coalesce(round((h.total_revenue + excluded.total_revenue)
            / nullif(h.order_count + excluded.order_count, 0), 2), 0)";

/// The segments' names and descriptions.
fn names() -> (Vec<&'static str>, Vec<&'static str>) {
    (
        SEGMENTS.iter().map(|s| s.0).collect(),
        SEGMENTS.iter().map(|s| s.2).collect(),
    )
}

/// Publishes the segments of `date` (counted with its RFM) as the latest, unless a later date's
/// are; its figures count the customers counted and the segments that have any.
pub async fn snapshot(tx: &Transaction<'_>, date: NaiveDate) -> Result<Figures, EtlError> {
    // The latest analysis only: rerunning an older date leaves the newer one in place.
    let latest: bool = tx
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM customer_segments_history WHERE analysis_date > $1)",
            &[&date],
        )
        .await?
        .get(0);
    if latest {
        tx.batch_execute("DELETE FROM customer_segments").await?;
        tx.execute(
            "INSERT INTO customer_segments (segment_name, segment_description, customer_count,
                 total_revenue, avg_order_value, analysis_date)
             SELECT segment_name, segment_description, customer_count, total_revenue,
                 avg_order_value, analysis_date
             FROM customer_segments_history WHERE analysis_date = $1",
            &[&date],
        )
        .await?;
    }
    let row = tx
        .query_one(
            "SELECT coalesce(sum(customer_count), 0)::bigint, count(*) FROM customer_segments_history
             WHERE analysis_date = $1",
            &[&date],
        )
        .await?;
    let count = |n: i64| usize::try_from(n).unwrap_or(usize::MAX);
    let written = count(row.try_get(1)?);
    Ok(Figures {
        extracted: count(row.try_get(0)?),
        transformed: written,
        loaded: written,
        ..Figures::default()
    })
}
