//! Writing a date's snapshot of a job: its rows compared with the stored ones (read back as
//! Arrow, joined by key), and only those that differ written (docs/ARCHITECTURE.md, "Running
//! totals"). A whole snapshot larger than a part is compared a range of keys at a time, so the
//! stored rows, their comparison and the rows written are held for one part only.

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field};
use tokio_postgres::Transaction;
use tracing::info;

use crate::error::EtlError;
use crate::etl::{column_list, field, pg_type, plan, rows, schema, stage};
use crate::figures::{grouped, Figures};

/// Which stored rows of a date a snapshot's rows stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// All of them: stored keys the rows lack are removed.
    Whole,
    /// Those of the rows' keys only: the others stay as they are.
    Keys,
}

/// The most rows of a whole snapshot compared at once: after a month of the course's scenario
/// the RFM scores 1.85 million customers, whose stored rows, comparison and rows written side
/// by side took the batch past 1 GiB.
const PART_ROWS: usize = 500_000;

/// The snapshot being written: its table, the key of its rows within a date, and the date.
#[derive(Debug, Clone, Copy)]
struct Target<'a> {
    table: &'a str,
    key: &'a str,
    date: NaiveDate,
}

/// What comparing rows with the stored ones found.
#[derive(Debug, Default)]
struct Compared {
    added: usize,
    changed: usize,
    gone: usize,
}

/// Makes the snapshot of `date` in `table` (keyed by `key` within a date) equal to `rows`
/// (columns named as the table's, without analysis_date) over `extent`, the output of a plan
/// that read `read` rows. Only the rows that differ are written: the scheduled run analyses the
/// same date every few minutes, and between two runs few of a date's rows change (after a month
/// of the course's scenario about 40,000 of 1.9 million customers' scores), so a rerun costs
/// the rows that moved instead of writing back, or comparing in the database, every customer or
/// product. The rows written are left in the temporary table `written`; their created_at is the
/// transaction's time. Returns the figures and, with `Keys`, the stored rows the rows replaced
/// (those of their keys; none with `Whole`).
pub async fn replace(
    tx: &Transaction<'_>,
    table: &str,
    key: &str,
    date: NaiveDate,
    rows: &RecordBatch,
    extent: Extent,
    read: usize,
) -> Result<(Figures, Option<RecordBatch>), EtlError> {
    lock_snapshot(tx, table).await?;
    let target = Target { table, key, date };
    let (compared, replaced) = write(tx, target, rows, extent, PART_ROWS).await?;
    let written = compared.added + compared.changed;
    info!(
        "  {table} of {date}: {} new, {} changed, {} gone, {} unchanged",
        grouped(compared.added),
        grouped(compared.changed),
        grouped(compared.gone),
        grouped(rows.num_rows() - written)
    );
    let figures = Figures {
        extracted: read,
        transformed: rows.num_rows(),
        loaded: rows.num_rows(),
        ..Figures::default()
    };
    Ok((figures, replaced))
}

/// [`replace`]'s comparison and writes, a whole snapshot in parts of at most `part_rows`.
async fn write(
    tx: &Transaction<'_>,
    target: Target<'_>,
    rows: &RecordBatch,
    extent: Extent,
    part_rows: usize,
) -> Result<(Compared, Option<RecordBatch>), EtlError> {
    let key = target.key;
    let mut compared = Compared::default();
    let replaced = match extent {
        Extent::Keys => {
            let keys = rows.schema().index_of(key)?;
            stage(tx, "compared", &rows.project(&[keys])?).await?;
            let only = format!("AND {key} IN (SELECT {key} FROM compared)");
            let stored = stored(tx, target, rows, &only, Vec::new()).await?;
            compare(tx, target, rows, &stored, extent, "written", &mut compared).await?;
            Some(stored)
        }
        Extent::Whole => {
            // The keys as text once, for the parts' bounds and each part's rows.
            let keys = cast(rows.column(rows.schema().index_of(key)?), &DataType::Utf8)?;
            let keys = keys.as_string::<i32>();
            let bounds = bounds(keys, part_rows);
            for (i, range) in bounds.windows(2).enumerate() {
                let (low, high) = (range[0].as_deref(), range[1].as_deref());
                let part = within(rows, keys, low, high)?;
                // Byte order on both sides (Rust's for the rows, "C" for the stored keys), so a
                // key falls in the same part on both.
                let (mut only, mut settings) = (String::new(), Vec::new());
                for (bound, op, name) in [(low, ">=", "part_low"), (high, "<", "part_high")] {
                    if let Some(bound) = bound {
                        only += &format!(
                            " AND {key} COLLATE \"C\" {op} current_setting('globalmart.{name}')"
                        );
                        settings.push((name, bound.to_string()));
                    }
                }
                let stored = stored(tx, target, &part, &only, settings).await?;
                // The first part's rows written are the table `written`; the others' add to it.
                let staged = if i == 0 { "written" } else { "part" };
                compare(tx, target, &part, &stored, extent, staged, &mut compared).await?;
                if i > 0 {
                    tx.batch_execute("INSERT INTO written SELECT * FROM part; DROP TABLE part")
                        .await?;
                }
            }
            None
        }
    };
    Ok((compared, replaced))
}

/// Writes the rows of `rows` that differ from `stored` (staged as table `staged`), and with
/// `Whole` removes the stored keys `rows` lacks; adds what it found to `compared`.
async fn compare(
    tx: &Transaction<'_>,
    Target { table, key, date }: Target<'_>,
    rows: &RecordBatch,
    stored: &RecordBatch,
    extent: Extent,
    staged: &str,
    compared: &mut Compared,
) -> Result<(), EtlError> {
    let fields = rows.schema();
    let names: Vec<&str> = fields.fields().iter().map(|f| f.name().as_str()).collect();
    // Compared as Arrow values of the plan's types, the stored ones read as such: a value the
    // table rounds differently from the plan would only be written again, never missed.
    let differs: Vec<String> = (names.iter())
        .map(|c| format!("(f.{c} IS DISTINCT FROM t.{c})"))
        .collect();
    let diff = plan(
        &[("fresh", rows), ("stored", stored)],
        &format!(
            "SELECT f.*, t.{key} IS NULL AS added__ FROM fresh f
             LEFT JOIN stored t ON t.{key} = f.{key}
             WHERE t.{key} IS NULL OR {}",
            differs.join(" OR ")
        ),
    )
    .await?;
    let added = (diff.column(names.len()).as_boolean_opt()).map_or(0, |a| a.true_count());
    let written = diff.project(&(0..names.len()).collect::<Vec<_>>())?;
    compared.added += added;
    compared.changed += written.num_rows() - added;
    let columns = column_list(rows);
    let new = (names.iter())
        .map(|c| format!("s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    stage(tx, staged, &written).await?;
    // The table, key and column names are this module's own.
    tx.execute(
        &format!(
            "MERGE INTO {table} t USING {staged} s ON t.analysis_date = $1 AND t.{key} = s.{key}
             WHEN MATCHED THEN UPDATE SET ({columns}) = ({new}), created_at = now()
             WHEN NOT MATCHED THEN INSERT (analysis_date, {columns}) VALUES ($1, {new})"
        ),
        &[&date],
    )
    .await?;
    // Stored keys the plan no longer has: rare (the totals only add customers and products).
    let gone = match extent {
        Extent::Whole => (stored.num_rows() + added).saturating_sub(rows.num_rows()),
        Extent::Keys => 0,
    };
    if gone > 0 {
        let keys = plan(
            &[("fresh", rows), ("stored", stored)],
            &format!(
                "SELECT t.{key} FROM stored t LEFT JOIN fresh f ON f.{key} = t.{key}
                 WHERE f.{key} IS NULL"
            ),
        )
        .await?;
        stage(tx, "gone", &keys).await?;
        tx.execute(
            &format!(
                "DELETE FROM {table} t USING gone g
                 WHERE t.analysis_date = $1 AND t.{key} = g.{key}"
            ),
            &[&date],
        )
        .await?;
        tx.batch_execute("DROP TABLE gone").await?;
    }
    compared.gone += gone;
    Ok(())
}

/// The bounds of the parts of rows with keys `keys`, in byte order, each part at most `size`
/// rows: [None, k1, k2, ..., None], part i holding the keys from bound i (None: from the
/// lowest) up to, not including, bound i + 1 (None: to the highest).
fn bounds(keys: &StringArray, size: usize) -> Vec<Option<String>> {
    let mut bounds = vec![None];
    if keys.len() > size {
        let mut sorted: Vec<&str> = keys.iter().flatten().collect();
        sorted.sort_unstable();
        bounds.extend((sorted.iter().step_by(size).skip(1)).map(|k| Some(k.to_string())));
    }
    bounds.push(None);
    bounds
}

/// The rows of `rows` whose key (in `keys`, row for row) is at least `low` and below `high`
/// (byte order; None: no bound).
fn within(
    rows: &RecordBatch,
    keys: &StringArray,
    low: Option<&str>,
    high: Option<&str>,
) -> Result<RecordBatch, EtlError> {
    if low.is_none() && high.is_none() {
        return Ok(rows.clone());
    }
    let mask: BooleanArray = keys
        .iter()
        .map(|k| Some(k.is_some_and(|k| low.is_none_or(|l| k >= l) && high.is_none_or(|h| k < h))))
        .collect();
    Ok(filter_record_batch(rows, &mask)?)
}

/// Takes the lock of `table`'s snapshots until the commit: one run at a time per table, so
/// what is stored is what the comparison saw.
pub async fn lock_snapshot(tx: &Transaction<'_>, table: &str) -> Result<(), EtlError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('globalmart.snapshot.' || $1))",
        &[&table],
    )
    .await?;
    Ok(())
}

/// The target's stored snapshot (its rows where the condition `only` holds, if any, which may
/// read `settings` as `globalmart.<name>`): the columns of `like`, read as its Arrow types.
async fn stored(
    tx: &Transaction<'_>,
    Target { table, date, .. }: Target<'_>,
    like: &RecordBatch,
    only: &str,
    mut settings: Vec<(&str, String)>,
) -> Result<RecordBatch, EtlError> {
    let fields: Vec<Field> = (like.schema().fields().iter())
        .map(|f| match f.data_type() {
            // The plans' strings may be views; they are read as plain strings.
            DataType::Utf8View | DataType::LargeUtf8 => field(f.name(), DataType::Utf8),
            other => field(f.name(), other.clone()),
        })
        .collect();
    let select = (fields.iter())
        .map(|f| Ok(format!("{}::{}", f.name(), pg_type(f.data_type())?.name())))
        .collect::<Result<Vec<_>, EtlError>>()?;
    settings.push(("date", date.to_string()));
    rows(
        tx.client(),
        &format!(
            "SELECT {} FROM {table}
             WHERE analysis_date = current_setting('globalmart.date')::date {only}",
            select.join(", ")
        ),
        &settings,
        schema(fields),
    )
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::Schema;
    use globalmart_testkit::TestStack;

    use super::*;

    /// A snapshot of `customer_segments_history` (keyed by segment name): (name, customers),
    /// the other figures the same number.
    fn segments(rows: &[(&str, i64)]) -> RecordBatch {
        let names: StringArray = rows.iter().map(|r| Some(r.0)).collect();
        let counts: Int64Array = rows.iter().map(|r| Some(r.1)).collect();
        let (names, counts) = (Arc::new(names), Arc::new(counts));
        let columns: Vec<Arc<dyn datafusion::arrow::array::Array>> =
            vec![names.clone(), names, counts.clone(), counts.clone(), counts];
        let schema = Schema::new(vec![
            field("segment_name", DataType::Utf8),
            field("segment_description", DataType::Utf8),
            field("customer_count", DataType::Int64),
            field("total_revenue", DataType::Int64),
            field("avg_order_value", DataType::Int64),
        ]);
        RecordBatch::try_new(Arc::new(schema), columns).expect("a valid batch")
    }

    /// (name, customers) of `query`'s rows, in byte order.
    async fn names_and_counts(tx: &Transaction<'_>, query: &str) -> Vec<(String, i64)> {
        let mut rows: Vec<(String, i64)> = (tx.query(query, &[]).await.expect("rows").iter())
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        rows.sort();
        rows
    }

    /// Keys whose byte order differs from a language's ('B' < 'a' < 'b'), in parts of two:
    /// each key's stored and new rows meet in the same part, a stored key the rows lack is
    /// removed from whichever part holds it, and `written` gathers every part's rows written.
    #[tokio::test]
    async fn a_whole_snapshot_in_parts_writes_what_differs_and_removes_what_is_gone() {
        let stack = TestStack::new().await.expect("the test stack");
        let mut warehouse = stack.warehouse_client().await.expect("a connection");
        let date = NaiveDate::from_ymd_opt(2026, 1, 5).expect("a date");
        let target = Target {
            table: "customer_segments_history",
            key: "segment_name",
            date,
        };
        let tx = warehouse.transaction().await.expect("a transaction");
        let first = segments(&[("B", 1), ("_x", 2), ("a", 3), ("b", 4), ("Zz", 5)]);
        let (found, replaced) = write(&tx, target, &first, Extent::Whole, 2)
            .await
            .expect("written");
        assert_eq!((found.added, found.changed, found.gone), (5, 0, 0));
        assert!(replaced.is_none());
        let second = segments(&[("B", 1), ("a", 30), ("b", 4), ("c", 6), ("Zz", 50)]);
        tx.batch_execute("DROP TABLE written")
            .await
            .expect("dropped");
        let (found, _) = write(&tx, target, &second, Extent::Whole, 2)
            .await
            .expect("written");
        assert_eq!((found.added, found.changed, found.gone), (1, 2, 1));
        let expected = |rows: &[(&str, i64)]| {
            let mut rows: Vec<(String, i64)> =
                rows.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            rows.sort();
            rows
        };
        let stored = "SELECT segment_name, customer_count FROM customer_segments_history
                      WHERE analysis_date = DATE '2026-01-05'";
        assert_eq!(
            names_and_counts(&tx, stored).await,
            expected(&[("B", 1), ("a", 30), ("b", 4), ("c", 6), ("Zz", 50)])
        );
        assert_eq!(
            names_and_counts(&tx, "SELECT segment_name, customer_count FROM written").await,
            expected(&[("a", 30), ("c", 6), ("Zz", 50)])
        );
    }

    #[test]
    fn parts_hold_at_most_their_size_and_every_row_once() {
        let rows = segments(&[("b", 1), ("B", 2), ("a", 3), ("_x", 4), ("Zz", 5)]);
        let keys = rows.column(0).as_string::<i32>();
        let cut = bounds(keys, 2);
        assert_eq!(
            cut,
            vec![None, Some("_x".to_string()), Some("b".to_string()), None]
        );
        let sizes: Vec<usize> = (cut.windows(2))
            .map(|b| within(&rows, keys, b[0].as_deref(), b[1].as_deref()))
            .map(|part| part.expect("a part").num_rows())
            .collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert_eq!(bounds(keys, 5), vec![None, None]);
    }
}
