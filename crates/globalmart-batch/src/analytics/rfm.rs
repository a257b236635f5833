//! `rfm_analysis`: per customer (the real user_id) with at least one order up to the analysis
//! date: recency in days since the last order, frequency in orders (not lines), monetary value;
//! each scored 1-5 by quintile among those customers (recency by the time of the last order;
//! ties share their mid-rank's score; recent, frequent and big spenders score high), the three digits as `rfm_score`, and the
//! segment of [`SEGMENTS`].
//! The score is also written to the customer's current dim_customers row.

use chrono::NaiveDate;
use tokio_postgres::Transaction;

use datafusion::arrow::array::RecordBatch;
use tracing::warn;

use super::quintiles::{self, Quintiles, MEASURES};
use super::segments;
use super::{customer_totals, customers_schema, lock_snapshot, replace, Extent, Inputs};
use crate::error::EtlError;
use crate::etl::{plan, rows};
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

/// The RFM's rows of `customers` as of `day`, scored by the expressions `r`, `f` and `m`.
fn plan_sql(day: i32, [r, f, m]: [&str; 3]) -> String {
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

/// Serialises the RFM's reads of `agg_customer_totals` with the ETL's chunks, which commit
/// their changes under the same lock (`etl/totals.rs`): a session lock, released once read,
/// so that the ETL waits for the reads only (and the reads wait for no row). The savepoint
/// lets a failed read be rolled back so that the lock can be released.
const LOCK: &str = "SAVEPOINT totals_read;
    SELECT pg_advisory_lock(hashtext('globalmart.agg_totals'));";
const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext('globalmart.agg_totals'))";

/// The customers whose totals changed after generation $1.
const CHANGED: &str = "SELECT count(*) FROM agg_customer_totals WHERE generation > $1";

/// What the RFM scores: the customers read, whether they are all of them, and the quintiles
/// whose boundaries score them (None: from the customers' own values, `quintiles::of_customers`).
struct Scoring {
    customers: RecordBatch,
    extent: Extent,
    quintiles: Option<Quintiles>,
    generation: Option<i64>,
}

impl Scoring {
    /// Every customer of `customers`, by quintile of their mid-rank on each measure.
    fn all(customers: RecordBatch, generation: Option<i64>) -> Scoring {
        Scoring {
            customers,
            extent: Extent::Whole,
            quintiles: None,
            generation,
        }
    }
}

/// The score expressions of each measure under the boundaries of `quintiles`.
fn scores(quintiles: &Quintiles) -> [String; 3] {
    std::array::from_fn(|i| {
        quintiles::score_sql(&quintiles::bounds(&quintiles.measures[i]), MEASURES[i].rows)
    })
}

/// From the running totals: a rerun of a date scored from them before reads only the
/// customers whose score can have changed, anything else all customers.
async fn from_totals(tx: &Transaction<'_>, date: NaiveDate) -> Result<Scoring, EtlError> {
    let latest = "SELECT coalesce(max(generation), 0) FROM agg_customer_totals";
    let now: i64 = tx.query_one(latest, &[]).await?.try_get(0)?;
    let stored = quintiles::stored(tx, date).await?;
    // The quintiles of the date's last scoring from the totals, and the generation it saw.
    let last = stored.as_ref().and_then(|old| Some((old, old.generation?)));
    if let Some((old, since)) = last {
        // A rerun after days of catch-up finds most customers changed: reading them all once
        // then costs less than rescoring them a part at a time.
        let changed: i64 = (tx.query_one(CHANGED, &[&since]).await?).try_get(0)?;
        if changed.saturating_mul(4) <= old.customers() {
            if let Some(rerun) = quintiles::rerun(tx, date, old, since, now).await? {
                let customers = rows(
                    tx.client(),
                    &customer_totals(&rerun.customers),
                    &[],
                    customers_schema(),
                )
                .await?;
                return Ok(Scoring {
                    customers,
                    extent: Extent::Keys,
                    quintiles: Some(rerun.quintiles),
                    generation: Some(now),
                });
            }
            warn!(
                "[Analytics] rfm_quintiles of {date} disagree with agg_customer_totals: \
                 every customer is scored again"
            );
        }
    }
    let customers = rows(
        tx.client(),
        &customer_totals("TRUE"),
        &[],
        customers_schema(),
    )
    .await?;
    Ok(Scoring::all(customers, Some(now)))
}

/// Writes the snapshot of `date` and the customers' scores; its figures count the customers
/// scored.
pub async fn snapshot(
    tx: &Transaction<'_>,
    inputs: &Inputs,
    date: NaiveDate,
) -> Result<Figures, EtlError> {
    // Another run of the date waits until this one has written what it read.
    lock_snapshot(tx, "rfm_analysis").await?;
    let scoring = match &inputs.customers {
        Some(customers) => Scoring::all(customers.clone(), None),
        None => {
            tx.batch_execute(LOCK).await?;
            let scoring = from_totals(tx, date).await;
            if scoring.is_err() {
                // Best effort: if even this fails the connection is gone, and the lock with it.
                let _ = tx.batch_execute("ROLLBACK TO SAVEPOINT totals_read").await;
            }
            tx.execute(UNLOCK, &[]).await?;
            scoring?
        }
    };
    let Scoring {
        customers,
        extent,
        quintiles,
        generation,
    } = scoring;
    // Worked out after the totals' lock is released.
    let quintiles = match quintiles {
        Some(quintiles) => quintiles,
        None => Quintiles {
            generation,
            measures: quintiles::of_customers(&customers).await?,
        },
    };
    let scores = scores(&quintiles);
    let scores = scores.each_ref().map(String::as_str);
    let rows = plan(&[("customers", &customers)], &plan_sql(inputs.day, scores)).await?;
    // Not held beside the scored rows while they are compared and written (1.85 million
    // customers after a month of the course's scenario).
    drop(customers);
    let read = rows.num_rows();
    let (figures, replaced) =
        replace(tx, "rfm_analysis", "user_id", date, &rows, extent, read).await?;
    // The date's segment counts change with its rows, in the same transaction: a rerun adds
    // what its customers' rows changed, where counting every customer of the date again took
    // 0.86 s after a month of the course's scenario.
    let added = match &replaced {
        Some(replaced) => segments::add(tx, date, &rows, replaced, quintiles.customers()).await?,
        None => false,
    };
    if !added {
        segments::recount(tx, date).await?;
    }
    quintiles::store(tx, date, &quintiles).await?;
    let scored_date: Option<NaiveDate> = (tx.query_opt(SCORED, &[]).await?)
        .map(|row| row.try_get(0))
        .transpose()?;
    // Every row of the date when dim_customers holds another date's scores; else only the rows
    // this run wrote, which spares joining every customer with an order against the 10 million
    // current versions.
    if scored_date == Some(date) {
        tx.execute(&score_customers("written"), &[]).await?;
    } else {
        let all = "(SELECT user_id, rfm_score, rfm_segment FROM rfm_analysis
                    WHERE analysis_date = $1)";
        tx.execute(&score_customers(all), &[&date]).await?;
    }
    tx.execute(MARK_SCORED, &[&date]).await?;
    Ok(figures)
}
