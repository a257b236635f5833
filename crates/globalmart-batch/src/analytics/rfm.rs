//! `rfm_analysis`: per customer (the real user_id) with at least one order up to the analysis
//! date: recency in days since the last order, frequency in orders (not lines), monetary value;
//! each scored 1-5 by quintile among those customers (recency by the time of the last order;
//! ties share their mid-rank's score; recent, frequent and big spenders score high), the three digits as `rfm_score`, and the
//! segment of [`SEGMENTS`].
//! The score is also written to the customer's current dim_customers row.

use chrono::NaiveDate;
use tokio_postgres::Transaction;

use super::{replace, Inputs};
use crate::error::EtlError;
use crate::etl::plan;
use crate::figures::Figures;

/// The segment map: the first rule (on the scores r, f, m) that holds names the segment.
pub const SEGMENTS: [(&str, &str, &str); 9] = [
    (
        "Champions",
        "r >= 4 AND f >= 4 AND m >= 4",
        "Bought recently, buy often and spend the most",
    ),
    (
        "Cannot Lose Them",
        "r <= 2 AND f >= 4 AND m >= 4",
        "Frequent big spenders who have not bought for a while",
    ),
    ("At Risk", "r <= 2 AND f >= 3", "Bought often, but long ago"),
    (
        "Loyal Customers",
        "r >= 3 AND f >= 4",
        "Buy often and bought recently",
    ),
    (
        "Potential Loyalists",
        "r >= 3 AND f >= 2",
        "Recent customers with more than one order",
    ),
    (
        "New Customers",
        "r >= 4 AND f = 1",
        "Bought once, very recently",
    ),
    (
        "Promising",
        "r = 3 AND f = 1",
        "Bought once, fairly recently",
    ),
    ("Lost", "r = 1", "Bought once or twice, long ago"),
    ("Hibernating", "TRUE", "Bought once or twice, some time ago"),
];

/// A score from 1 to 5: the fifth of the customers, ordered by `order`, that the customer's
/// mid-rank falls in. Tied customers share the middle of their positions (the usual treatment
/// of ties), so a value most customers share lands in the middle rather than at an end: a
/// single order is not a top frequency because most customers have one, and a day on which
/// everyone bought is not the worst recency.
fn quintile(order: &str) -> String {
    let window = format!("OVER (ORDER BY {order})");
    format!(
        "CAST(floor(5.0 * ((rank() {window} + cume_dist() {window} * count(*) OVER ()) / 2.0 - 0.5)
             / count(*) OVER ()) AS INT) + 1"
    )
}

fn plan_sql(day: i32) -> String {
    let segment: Vec<String> = SEGMENTS
        .iter()
        .map(|(name, rule, _)| format!("WHEN {rule} THEN '{name}'"))
        .collect();
    format!(
        "WITH customers AS (
             SELECT user_id, CAST({day} - last_day AS INT) AS recency_days, last_order,
                 frequency_count, monetary_value
             FROM customers
         ), scored AS (
             SELECT *, {r} AS r, {f} AS f, {m} AS m FROM customers
         )
         SELECT user_id, recency_days, frequency_count, monetary_value, r AS recency_score,
             f AS frequency_score, m AS monetary_score,
             concat(CAST(r AS VARCHAR), CAST(f AS VARCHAR), CAST(m AS VARCHAR)) AS rfm_score,
             CASE {segments} END AS rfm_segment
         FROM scored",
        // By the time of the last order, not its day: customers who all bought today still
        // differ in how recently.
        r = quintile("last_order"),
        f = quintile("frequency_count"),
        m = quintile("monetary_value"),
        segments = segment.join(" "),
    )
}

/// The scores of `source` (rows of user_id, rfm_score, rfm_segment) onto the customers' current
/// rows, only where they differ.
fn score_customers(source: &str) -> String {
    format!(
        "UPDATE dim_customers d SET rfm_score = s.rfm_score, customer_segment = s.rfm_segment,
             updated_at = now()
         FROM {source} s WHERE d.user_id = s.user_id AND d.is_current
             AND (d.rfm_score IS DISTINCT FROM s.rfm_score
                  OR d.customer_segment IS DISTINCT FROM s.rfm_segment)"
    )
}

/// The date whose scores dim_customers holds, locked until the commit.
const SCORED: &str = "SELECT analysis_date FROM rfm_scored FOR UPDATE";

const MARK_SCORED: &str = "
    INSERT INTO rfm_scored (analysis_date) VALUES ($1)
    ON CONFLICT (only_row) DO UPDATE SET analysis_date = $1, updated_at = now()";

/// Writes the snapshot of `date` and the customers' scores; its figures count the customers
/// analysed.
pub async fn snapshot(
    tx: &Transaction<'_>,
    inputs: &Inputs,
    date: NaiveDate,
) -> Result<Figures, EtlError> {
    let rows = plan(&[("customers", &inputs.customers)], &plan_sql(inputs.day)).await?;
    let read = inputs.customers.num_rows();
    let figures = replace(tx, "rfm_analysis", "user_id", date, &rows, read).await?;
    let scored: Option<NaiveDate> = (tx.query_opt(SCORED, &[]).await?)
        .map(|row| row.try_get(0))
        .transpose()?;
    // Every row of the date when dim_customers holds another date's scores; else only the rows
    // this run wrote, which spares joining every customer with an order against the 10 million
    // current versions.
    if scored == Some(date) {
        tx.execute(&score_customers("written"), &[]).await?;
    } else {
        let all = "(SELECT user_id, rfm_score, rfm_segment FROM rfm_analysis
                    WHERE analysis_date = $1)";
        tx.execute(&score_customers(all), &[&date]).await?;
    }
    tx.execute(MARK_SCORED, &[&date]).await?;
    Ok(figures)
}
