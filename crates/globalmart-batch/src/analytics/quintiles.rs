//! The RFM's scores as boundaries, so that a rerun of a date rescores only the customers whose
//! score can have changed (docs/ARCHITECTURE.md, "Running totals"). A score is a step function
//! of the measure's value that never falls as the value grows (ties share theirs), so it is
//! known from four values per measure: the lowest value scoring above 1, 2, 3 and 4. Between
//! two runs of a date the customers whose score changes are those whose totals changed (the
//! ETL marks them with its chunk's generation) and those lying between a boundary of the last
//! run and the same boundary now. The new boundaries come from the customers per score kept
//! with the snapshot (`rfm_quintiles`), the changed customers' old scores and new values, and
//! a few index reads of `agg_customer_totals` next to the old boundaries: never all customers.
//! A full scoring finds its boundaries from every customer's values ([`of_customers`]).

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int32Type, Int64Type};
use tokio_postgres::Transaction;

use crate::error::EtlError;
use crate::etl::plan;

/// One measure: its name in `rfm_quintiles`, its value as a bigint over `agg_customer_totals`
/// (the expression of its index, sql/warehouse/V11__rfm_quintiles.sql), the same over the
/// RFM's customers (`rfm.rs`: the plan's input and its rows alike), and its score column.
#[derive(Debug, Clone, Copy)]
pub struct Measure {
    pub name: &'static str,
    totals: &'static str,
    pub rows: &'static str,
    pub score: &'static str,
}

/// Recency by the time of the last order (µs), not its day: customers who all bought today
/// still differ in how recently. Frequency in orders, monetary value in cents.
pub const MEASURES: [Measure; 3] = [
    Measure {
        name: "recency",
        totals: "(extract(epoch FROM last_order - timestamptz 'epoch') * 1000000)::bigint",
        rows: "last_order",
        score: "recency_score",
    },
    Measure {
        name: "frequency",
        totals: "orders",
        rows: "CAST(frequency_count AS BIGINT)",
        score: "frequency_score",
    },
    Measure {
        name: "monetary",
        totals: "(spent * 100)::bigint",
        rows: "CAST(monetary_value * 100 AS BIGINT)",
        score: "monetary_score",
    },
];

/// The customers with one score of one measure, and their lowest and highest value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    pub customers: i64,
    pub lowest: Option<i64>,
    pub highest: Option<i64>,
}

/// One measure's buckets, by score 1 to 5.
pub type Buckets = [Bucket; 5];

/// What a date's analysis left: the last ETL generation it saw (None: computed from the facts)
/// and the buckets of each measure of [`MEASURES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quintiles {
    pub generation: Option<i64>,
    pub measures: [Buckets; 3],
}

impl Quintiles {
    /// The customers scored.
    pub fn customers(&self) -> i64 {
        self.measures[0].iter().map(|b| b.customers).sum()
    }
}

/// The lowest value scoring above k, for k = 1 to 4; None when no value does.
pub fn bounds(buckets: &Buckets) -> [Option<i64>; 4] {
    let mut bounds = [None; 4];
    for (k, bound) in bounds.iter_mut().enumerate() {
        *bound = (buckets[k + 1..].iter())
            .find(|b| b.customers > 0)
            .and_then(|b| b.lowest);
    }
    bounds
}

/// The score of `value` under `bounds`.
pub fn score(bounds: &[Option<i64>; 4], value: i64) -> i32 {
    1 + bounds.iter().flatten().filter(|b| value >= **b).count() as i32
}

/// The score of `value` under `bounds` as an SQL expression over the plan's `column`.
pub fn score_sql(bounds: &[Option<i64>; 4], column: &str) -> String {
    let steps: Vec<String> = (bounds.iter().flatten())
        .map(|b| format!(" + CAST({column} >= {b} AS INT)"))
        .collect();
    format!("CAST(1{} AS INT)", steps.concat())
}

/// The buckets of every customer of `customers` (the RFM plan's input, `rfm.rs`) by quintile
/// of their mid-rank, from each measure's value counts: one narrow grouping per measure, where
/// ranking every customer's row held all of them sorted in memory three times (738-916 MiB for
/// 1.85 million customers, 450 MiB with the counts: docs/PERFORMANCE.md).
pub async fn of_customers(customers: &RecordBatch) -> Result<[Buckets; 3], EtlError> {
    let parts: Vec<String> = (MEASURES.iter().enumerate())
        .map(|(i, m)| {
            format!(
                "SELECT CAST({i} AS INT) AS measure, CAST({value} AS BIGINT) AS value,
                     CAST(count(*) AS BIGINT) AS customers
                 FROM customers GROUP BY {value}",
                value = m.rows
            )
        })
        .collect();
    let counts = plan(&[("customers", customers)], &parts.join(" UNION ALL ")).await?;
    let measure = counts.column(0).as_primitive::<Int32Type>();
    let value = counts.column(1).as_primitive::<Int64Type>();
    let tied = counts.column(2).as_primitive::<Int64Type>();
    let mut values: [Vec<(i64, i64)>; 3] = Default::default();
    for i in 0..counts.num_rows() {
        // The measures are never NULL: a customer here has an order, its time and its amount.
        let of = usize::try_from(measure.value(i)).ok();
        if let Some(values) = of
            .and_then(|m| values.get_mut(m))
            .filter(|_| value.is_valid(i))
        {
            values.push((value.value(i), tied.value(i)));
        }
    }
    Ok(values.map(|mut values| {
        values.sort_unstable();
        by_mid_rank(&values)
    }))
}

/// The buckets of one measure's values, each with its customers, in value order. Tied customers
/// share the middle of their positions: with L customers below a value, E at it and N in all,
/// it scores 5 (2 L + E) / 2 N rounded down, plus one (so a value most customers share lands in
/// the middle rather than at an end: a single order is not a top frequency).
fn by_mid_rank(values: &[(i64, i64)]) -> Buckets {
    let all: i64 = values.iter().map(|(_, customers)| customers).sum();
    let mut buckets = [Bucket::default(); 5];
    let mut below = 0;
    for &(value, tied) in values {
        // Below 5: L + E is at most N, so 2 L + E is below 2 N.
        let index = usize::try_from(5 * (2 * below + tied) / (2 * all)).ok();
        if let Some(bucket) = index.and_then(|i| buckets.get_mut(i)) {
            bucket.customers += tied;
            bucket.lowest.get_or_insert(value);
            bucket.highest = Some(value);
        }
        below += tied;
    }
    buckets
}

/// The quintiles stored with the snapshot of `date`, if any.
pub async fn stored(tx: &Transaction<'_>, date: NaiveDate) -> Result<Option<Quintiles>, EtlError> {
    let rows = tx
        .query(
            "SELECT measure, score, customers, lowest, highest, generation FROM rfm_quintiles
             WHERE analysis_date = $1",
            &[&date],
        )
        .await?;
    if rows.len() != 15 {
        return Ok(None);
    }
    let mut measures = [[Bucket::default(); 5]; 3];
    let mut generation = None;
    for row in &rows {
        let name: String = row.try_get(0)?;
        let score: i32 = row.try_get(1)?;
        let m = MEASURES.iter().position(|m| m.name == name);
        let s = usize::try_from(score - 1).ok().filter(|s| *s < 5);
        let (Some(m), Some(s)) = (m, s) else {
            return Ok(None);
        };
        measures[m][s] = Bucket {
            customers: row.try_get(2)?,
            lowest: row.try_get(3)?,
            highest: row.try_get(4)?,
        };
        generation = row.try_get(5)?;
    }
    Ok(Some(Quintiles {
        generation,
        measures,
    }))
}

/// Stores `quintiles` as those of the snapshot of `date`.
pub async fn store(
    tx: &Transaction<'_>,
    date: NaiveDate,
    quintiles: &Quintiles,
) -> Result<(), EtlError> {
    let (mut names, mut scores, mut customers, mut lowest, mut highest) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (m, buckets) in MEASURES.iter().zip(&quintiles.measures) {
        for (s, b) in (1..).zip(buckets) {
            names.push(m.name);
            scores.push(s);
            customers.push(b.customers);
            lowest.push(b.lowest);
            highest.push(b.highest);
        }
    }
    tx.execute(
        "DELETE FROM rfm_quintiles WHERE analysis_date = $1",
        &[&date],
    )
    .await?;
    tx.execute(
        "INSERT INTO rfm_quintiles (analysis_date, measure, score, customers, lowest, highest,
             generation)
         SELECT $1, * , $7 FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[],
             $6::bigint[])",
        &[
            &date,
            &names,
            &scores,
            &customers,
            &lowest,
            &highest,
            &quintiles.generation,
        ],
    )
    .await?;
    Ok(())
}

/// A rerun's plan: the new quintiles, and which customers to score again (an SQL condition
/// over `agg_customer_totals`).
#[derive(Debug)]
pub struct Rerun {
    pub quintiles: Quintiles,
    pub customers: String,
}

/// The rerun of the snapshot of `date` whose quintiles are `old`, seeing the totals up to
/// generation `now`; None when what is stored disagrees with the totals (then every customer
/// is scored again). Runs under the totals' lock: nothing changes them meanwhile.
pub async fn rerun(
    tx: &Transaction<'_>,
    date: NaiveDate,
    old: &Quintiles,
    since: i64,
    now: i64,
) -> Result<Option<Rerun>, EtlError> {
    let values: Vec<String> = MEASURES
        .iter()
        .map(|m| format!("({})::bigint", m.totals))
        .collect();
    let scores: Vec<String> = MEASURES.iter().map(|m| format!("r.{}", m.score)).collect();
    let changed = tx
        .query(
            &format!(
                "SELECT {}, {} FROM agg_customer_totals a
                 LEFT JOIN rfm_analysis r ON r.analysis_date = $1 AND r.user_id = a.user_id
                 WHERE a.generation > $2",
                values.join(", "),
                scores.join(", ")
            ),
            &[&date, &since],
        )
        .await?;
    let mut measures = [[Bucket::default(); 5]; 3];
    let mut between = Vec::new();
    for (i, m) in MEASURES.iter().enumerate() {
        let moved = (changed.iter())
            .map(|row| Ok((row.try_get::<_, Option<i32>>(i + 3)?, row.try_get(i)?)))
            .collect::<Result<Vec<_>, EtlError>>()?;
        let Some(buckets) = rescore(tx, m, &old.measures[i], &moved).await? else {
            return Ok(None);
        };
        let (before, after) = (bounds(&old.measures[i]), bounds(&buckets));
        for (b, a) in before.iter().zip(&after) {
            let (low, high) = match (b, a) {
                (Some(b), Some(a)) if a != b => (*a.min(b), *a.max(b)),
                // A boundary that appears or goes: every value from it up.
                (Some(x), None) | (None, Some(x)) => (*x, i64::MAX),
                _ => continue,
            };
            let v = m.totals;
            between.push(format!("({v} >= {low} AND {v} < {high})"));
        }
        measures[i] = buckets;
    }
    between.push(format!("generation > {since}"));
    Ok(Some(Rerun {
        quintiles: Quintiles {
            generation: Some(now),
            measures,
        },
        customers: between.join(" OR "),
    }))
}

/// One measure's buckets now, from `old` and, per customer changed since, its old score (none
/// when new) and its value now; None when they disagree with the totals.
async fn rescore(
    tx: &Transaction<'_>,
    m: &Measure,
    old: &Buckets,
    moved: &[(Option<i32>, i64)],
) -> Result<Option<Buckets>, EtlError> {
    let before = bounds(old);
    // The old buckets with the changes: still the same value ranges.
    let mut now = *old;
    for &(old_score, value) in moved {
        if let Some(s) = old_score.and_then(|s| usize::try_from(s - 1).ok()) {
            if let Some(b) = now.get_mut(s) {
                b.customers -= 1;
            }
        }
        let b = &mut now[(score(&before, value) - 1) as usize];
        b.customers += 1;
        b.lowest = Some(b.lowest.map_or(value, |l| l.min(value)));
        b.highest = Some(b.highest.map_or(value, |h| h.max(value)));
    }
    if now.iter().any(|b| b.customers < 0) {
        return Ok(None);
    }
    let total: i64 = now.iter().map(|b| b.customers).sum();
    let mut below = [0; 6];
    for j in 0..5 {
        below[j + 1] = below[j] + now[j].customers;
    }
    // Per k: the new boundary and the customers below it.
    let mut cuts = [(None, total); 4];
    for (k, cut) in (1..).zip(cuts.iter_mut()) {
        // The value at this position is the boundary, or the next value is: the first whose
        // ties' middle position reaches k fifths (10 L + 5 E >= 2 k N, `by_mid_rank`'s rule).
        let position = k * total / 5;
        let Some(j) = (0..5).find(|&j| position < below[j + 1]) else {
            break;
        };
        let low = if j == 0 {
            i64::MIN
        } else {
            before[j - 1].unwrap_or(i64::MAX)
        };
        let high = if j == 4 {
            i64::MAX
        } else {
            before[j].unwrap_or(i64::MAX)
        };
        let bucket = now[j];
        let found = match (bucket.lowest, bucket.highest) {
            (Some(l), Some(h)) if l == h => Some((l, below[j], bucket.customers)),
            _ => {
                let offset = position - below[j];
                walk(tx, m, (low, high), offset, bucket.customers, below[j]).await?
            }
        };
        let Some((value, less, equal)) = found else {
            return Ok(None);
        };
        *cut = if 10 * less + 5 * equal >= 2 * k * total {
            (Some(value), less)
        } else {
            (extreme(tx, m, "min", ">", value).await?, less + equal)
        };
    }
    let mut buckets = [Bucket::default(); 5];
    let mut floor = 0;
    for (s, bucket) in buckets.iter_mut().enumerate() {
        let (upper, under) = cuts.get(s).copied().unwrap_or((None, total));
        let customers = under - floor;
        floor = under;
        if customers <= 0 {
            continue;
        }
        let lowest = match s {
            0 => extreme(tx, m, "min", "<", i64::MAX).await?,
            _ => cuts[s - 1].0,
        };
        let highest = extreme(tx, m, "max", "<", upper.unwrap_or(i64::MAX)).await?;
        *bucket = Bucket {
            customers,
            lowest,
            highest,
        };
    }
    Ok(Some(buckets))
}

/// The lowest (`min`) or highest (`max`) value of measure `m` that is below (`<`) or above
/// (`>`) `bound`: one step along its index.
async fn extreme(
    tx: &Transaction<'_>,
    m: &Measure,
    which: &str,
    side: &str,
    bound: i64,
) -> Result<Option<i64>, EtlError> {
    let row = tx
        .query_one(
            &format!(
                "SELECT {which}({v})::bigint FROM agg_customer_totals WHERE {v} {side} $1::bigint",
                v = m.totals
            ),
            &[&bound],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// In the bucket of values in `range` (its `customers`, `below` customers under it), the value
/// at `offset`, with the customers below it and those sharing it; read along the measure's
/// index from the nearer end of the bucket. None when the bucket has fewer customers.
async fn walk(
    tx: &Transaction<'_>,
    m: &Measure,
    (low, high): (i64, i64),
    offset: i64,
    customers: i64,
    below: i64,
) -> Result<Option<(i64, i64, i64)>, EtlError> {
    let v = m.totals;
    let from_low = offset <= customers - 1 - offset;
    let (order, skip) = if from_low {
        ("ASC", offset)
    } else {
        ("DESC", customers - 1 - offset)
    };
    let Some(row) = tx
        .query_opt(
            &format!(
                "SELECT ({v})::bigint FROM agg_customer_totals
                 WHERE {v} >= $1::bigint AND {v} < $2::bigint
                 ORDER BY {v} {order} OFFSET $3 LIMIT 1"
            ),
            &[&low, &high, &skip],
        )
        .await?
    else {
        return Ok(None);
    };
    let value: i64 = row.try_get(0)?;
    let count = |a: i64, b: i64| {
        let sql = format!(
            "SELECT count(*) FROM agg_customer_totals
             WHERE {v} >= $1::bigint AND {v} < $2::bigint"
        );
        async move { Ok::<i64, EtlError>(tx.query_one(&sql, &[&a, &b]).await?.try_get(0)?) }
    };
    let less = if from_low {
        below + count(low, value).await?
    } else {
        below + customers - count(value, high).await?
    };
    // The values are whole numbers: those equal to `value` are the range up to the next one.
    let equal = count(value, value.saturating_add(1)).await?;
    Ok(Some((value, less, equal)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(customers: i64, lowest: i64, highest: i64) -> Bucket {
        Bucket {
            customers,
            lowest: Some(lowest),
            highest: Some(highest),
        }
    }

    #[test]
    fn customers_fall_in_the_fifth_of_their_middle_position() {
        // Ten customers, one per value: two to a fifth.
        let ten: Vec<(i64, i64)> = (1..=10).map(|v| (v, 1)).collect();
        assert_eq!(
            by_mid_rank(&ten),
            [
                bucket(2, 1, 2),
                bucket(2, 3, 4),
                bucket(2, 5, 6),
                bucket(2, 7, 8),
                bucket(2, 9, 10)
            ]
        );
        // Six of ten tied at the lowest value: their middle position (3.5 of 10) is in the
        // second fifth, the two at 2 (7.5) in the fourth, the two at 3 (9.5) in the fifth.
        assert_eq!(
            by_mid_rank(&[(1, 6), (2, 2), (3, 2)]),
            [
                Bucket::default(),
                bucket(6, 1, 1),
                Bucket::default(),
                bucket(2, 2, 2),
                bucket(2, 3, 3)
            ]
        );
    }

    #[test]
    fn bounds_are_the_lowest_value_of_the_next_customers_up() {
        let buckets = [
            bucket(2, 1, 3),
            Bucket::default(),
            bucket(5, 7, 7),
            bucket(1, 9, 9),
            Bucket::default(),
        ];
        let b = bounds(&buckets);
        assert_eq!(b, [Some(7), Some(7), Some(9), None]);
        assert_eq!(
            [0, 6, 7, 8, 9, 100].map(|v| score(&b, v)),
            [1, 1, 3, 3, 4, 4]
        );
        assert_eq!(
            score_sql(&b, "x"),
            "CAST(1 + CAST(x >= 7 AS INT) + CAST(x >= 7 AS INT) + CAST(x >= 9 AS INT) AS INT)"
        );
    }
}
