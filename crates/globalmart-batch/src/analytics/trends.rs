//! `sales_trends`: orders, revenue, units, customers and average order value per daily, weekly
//! (ISO, from Monday), monthly and quarterly period, per category and for 'All', with the
//! revenue growth in percent against the calendar period just before (NULL when that period had
//! no sales). Labels carry the year: 2025-12-07, 2026-W01, 2025-12, 2025-Q4.

use chrono::NaiveDate;
use tokio_postgres::Transaction;

use super::Inputs;
use crate::error::EtlError;
use crate::etl::plan;
use crate::figures::Figures;

const PLAN: &str = "
WITH totals AS (
    SELECT period_type, CAST(arrow_cast(period_start, 'Date32') AS DATE) AS period_start,
        category, orders AS total_orders, revenue AS total_revenue, units AS total_units,
        customers AS unique_customers
    FROM periods
)
SELECT t.period_type, t.period_start, t.category, t.total_orders, t.total_revenue,
    t.total_units, t.unique_customers,
    round(CAST(t.total_revenue AS DOUBLE) / t.total_orders, 2) AS avg_order_value,
    CASE WHEN p.total_revenue > 0 THEN round(
        100.0 * (CAST(t.total_revenue AS DOUBLE) - CAST(p.total_revenue AS DOUBLE))
            / CAST(p.total_revenue AS DOUBLE), 2) END AS growth_rate
FROM totals t
LEFT JOIN totals p ON p.period_type = t.period_type AND p.category = t.category
    AND p.period_start = CASE t.period_type
        WHEN 'daily' THEN t.period_start - INTERVAL '1 day'
        WHEN 'weekly' THEN t.period_start - INTERVAL '7 days'
        WHEN 'monthly' THEN t.period_start - INTERVAL '1 month'
        ELSE t.period_start - INTERVAL '3 months' END";

/// Writes the snapshot of `date`; its figures count its rows.
pub async fn snapshot(
    tx: &Transaction<'_>,
    inputs: &Inputs,
    date: NaiveDate,
) -> Result<Figures, EtlError> {
    let rows = plan(&[("periods", &inputs.periods)], PLAN).await?;
    let written = super::stage_and_insert(tx, &rows, DELETE, INSERT, date).await?;
    Ok(Figures {
        extracted: inputs.periods.num_rows(),
        transformed: rows.num_rows(),
        loaded: written,
        ..Figures::default()
    })
}

const DELETE: &str = "DELETE FROM sales_trends WHERE analysis_date = $1";

/// The snapshot staged, with period labels by PostgreSQL's to_char (ISO week-numbering year
/// for weeks).
const INSERT: &str =
    "INSERT INTO sales_trends (analysis_date, period_type, period_value, period_start,
             category, total_orders, total_revenue, total_units, unique_customers,
             avg_order_value, growth_rate)
         SELECT $1, period_type,
             CASE period_type
                 WHEN 'daily' THEN to_char(period_start, 'YYYY-MM-DD')
                 WHEN 'weekly' THEN to_char(period_start, 'IYYY-\"W\"IW')
                 WHEN 'monthly' THEN to_char(period_start, 'YYYY-MM')
                 ELSE to_char(period_start, 'YYYY-\"Q\"Q') END,
             period_start, category, total_orders, total_revenue, total_units,
             unique_customers, avg_order_value, growth_rate
         FROM snapshot";
