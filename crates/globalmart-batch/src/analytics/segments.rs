//! `customer_segments`: one row per RFM segment of the analysis (customers, revenue, average
//! order value = revenue per order), from that date's `rfm_analysis`. Every analysis is kept in
//! `customer_segments_history`; `customer_segments` holds the latest one.

use chrono::NaiveDate;
use tokio_postgres::Transaction;

use super::rfm::SEGMENTS;
use crate::error::EtlError;
use crate::figures::Figures;

/// Writes the segments of `date`; its figures count the customers read and the segments that
/// have any.
pub async fn snapshot(tx: &Transaction<'_>, date: NaiveDate) -> Result<Figures, EtlError> {
    let names: Vec<&str> = SEGMENTS.iter().map(|s| s.0).collect();
    let descriptions: Vec<&str> = SEGMENTS.iter().map(|s| s.2).collect();
    tx.execute(
        "DELETE FROM customer_segments_history WHERE analysis_date = $1",
        &[&date],
    )
    .await?;
    let written = tx
        .execute(
            "INSERT INTO customer_segments_history (analysis_date, segment_name,
                 segment_description, customer_count, total_revenue, avg_order_value)
             SELECT $1, r.rfm_segment, d.description, count(*), sum(r.monetary_value),
                 round(sum(r.monetary_value) / sum(r.frequency_count), 2)
             FROM rfm_analysis r
             JOIN unnest($2::text[], $3::text[]) AS d(name, description) ON d.name = r.rfm_segment
             WHERE r.analysis_date = $1
             GROUP BY r.rfm_segment, d.description",
            &[&date, &names, &descriptions],
        )
        .await?;
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
    // The customers the segments just counted, not the snapshot counted again.
    let customers: i64 = tx
        .query_one(
            "SELECT coalesce(sum(customer_count), 0)::bigint FROM customer_segments_history
             WHERE analysis_date = $1",
            &[&date],
        )
        .await?
        .get(0);
    let count = |n: i64| usize::try_from(n).unwrap_or(usize::MAX);
    let written = usize::try_from(written).unwrap_or(usize::MAX);
    Ok(Figures {
        extracted: count(customers),
        transformed: written,
        loaded: written,
        ..Figures::default()
    })
}
