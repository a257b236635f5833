//! The SCD2 rule, here once for every dimension (docs/ARCHITECTURE.md, "Point-in-time SCD2"):
//! - each new catalogue version of a key, in time order, whose versioned attributes differ from
//!   the version before it, expires the current row (`effective_end_date` = its time,
//!   `is_current` false) and becomes the new current row (`version` + 1), in one transaction;
//! - a version that changes none of them only overwrites the in-place attributes;
//! - an inferred member (created for a fact whose key had no record yet) is completed in place
//!   by the first version, so the facts already pointing at it stay right;
//! - a version not newer than the current row is a replay (or arrived out of order) and is
//!   skipped.

use std::marker::PhantomData;

use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use tokio_postgres::Transaction;

use super::extract::{field, pg_type, rows, schema, Source, TIMESTAMP};
use super::load::stage;
use super::table::{Loaded, Table};
use super::transform::plan;
use crate::error::EtlError;

/// A dimension: where its catalogue versions come from and how they become its rows.
pub trait Dimension {
    /// Its table, key and attributes.
    const SCD2: Scd2;
    /// The realtime history of its records, each column declared once.
    const SOURCE: Source;
    /// DataFusion SQL over `source` (the versions) and the [`Dimension::lookups`]: the versions
    /// as (key, at, versioned attributes, in-place attributes), named as the table's columns.
    const PREPARE: &'static str;

    /// Tables of reference data the preparation reads besides `source` (none by default).
    fn lookups() -> Result<Vec<(&'static str, RecordBatch)>, EtlError> {
        Ok(Vec::new())
    }

    /// What else new versions change, in the same transaction (nothing by default).
    async fn loaded(_tx: &Transaction<'_>, _extracted: &RecordBatch) -> Result<(), EtlError> {
        Ok(())
    }
}

/// The [`Table`] of dimension `D`: the same extract, transform and load for every dimension.
#[derive(Debug)]
pub struct DimensionTable<D>(PhantomData<D>);

impl<D: Dimension> Table for DimensionTable<D> {
    const NAME: &'static str = D::SCD2.table;
    const SOURCE: Source = D::SOURCE;
    const COUNTED_AS: (&'static str, &'static str) =
        ("new or completed versions", "unchanged or already loaded");

    async fn transform(
        tx: &Transaction<'_>,
        extracted: &RecordBatch,
    ) -> Result<RecordBatch, EtlError> {
        let lookups = D::lookups()?;
        let mut inputs = vec![("source", extracted)];
        inputs.extend(lookups.iter().map(|(name, rows)| (*name, rows)));
        let prepared = plan(&inputs, D::PREPARE).await?;
        D::SCD2.changes(tx, &prepared).await
    }

    async fn load(
        tx: &Transaction<'_>,
        extracted: &RecordBatch,
        transformed: &RecordBatch,
    ) -> Result<Loaded, EtlError> {
        let loaded = D::SCD2.apply(tx, transformed, extracted.num_rows()).await?;
        D::loaded(tx, extracted).await?;
        Ok(loaded)
    }
}

/// A dimension under the SCD2 rule: its warehouse table, natural key and attributes.
#[derive(Debug)]
pub struct Scd2 {
    /// The warehouse table.
    pub table: &'static str,
    /// The natural key column.
    pub key: &'static str,
    /// A change of any of these makes a new version.
    pub versioned: &'static [&'static str],
    /// Overwritten on the current version.
    pub in_place: &'static [&'static str],
}

impl Scd2 {
    /// The SCD2 changes that the catalogue versions in `prepared` (columns key, at, then the
    /// attributes) make to the current rows: see [`Scd2::plan`].
    pub async fn changes(
        &self,
        tx: &Transaction<'_>,
        prepared: &RecordBatch,
    ) -> Result<RecordBatch, EtlError> {
        let keys = plan(
            &[("prepared", prepared)],
            "SELECT DISTINCT key FROM prepared",
        )
        .await?;
        stage(tx, "touched", &keys).await?;
        let current = self.current(tx, prepared).await?;
        plan(&[("prepared", prepared), ("cur", &current)], &self.plan()).await
    }

    /// Applies `changes` (of [`Scd2::changes`]) made from `offered` catalogue versions:
    /// completes inferred members, expires and inserts versions, overwrites the in-place
    /// attributes.
    pub async fn apply(
        &self,
        tx: &Transaction<'_>,
        changes: &RecordBatch,
        offered: usize,
    ) -> Result<Loaded, EtlError> {
        stage(tx, "scd", changes).await?;
        let (table, key) = (self.table, self.key);
        let attributes = self.attributes();
        let set = |columns: &[&str]| -> String {
            let pairs: Vec<String> = columns.iter().map(|c| format!("{c} = s.{c}")).collect();
            pairs.join(", ")
        };
        // Identifiers below are this dimension's own constants.
        let completed = tx
            .execute(
                &format!(
                    "UPDATE {table} d SET {}, is_inferred = FALSE, updated_at = now()
                     FROM scd s WHERE s.completes AND d.{key} = s.key AND d.is_current",
                    set(&attributes)
                ),
                &[],
            )
            .await?;
        tx.execute(
            &format!(
                "UPDATE {table} d SET effective_end_date = f.at, is_current = FALSE,
                     updated_at = now()
                 FROM (SELECT key, min(at) AS at FROM scd
                       WHERE changed AND NOT completes AND had_current GROUP BY key) f
                 WHERE d.{key} = f.key AND d.is_current"
            ),
            &[],
        )
        .await?;
        let columns = attributes.join(", ");
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO {table} ({key}, {columns}, effective_start_date,
                         effective_end_date, is_current, version)
                     SELECT key, {columns}, at, coalesce(next_at, '9999-12-31 00:00:00+00'),
                         next_at IS NULL, version
                     FROM scd WHERE changed AND NOT completes ORDER BY key, at"
                ),
                &[],
            )
            .await?;
        // Only where the latest version changed nothing versioned (a changed one was inserted
        // or completed whole above), and only rows whose in-place attributes differ: a row
        // rewritten to equal values still costs a new row version and its index entries, and
        // looking up every new key's just-inserted row was a sixth of the course's first day's
        // customers load.
        let of = |alias: &str| -> String {
            let columns: Vec<String> = self
                .in_place
                .iter()
                .map(|c| format!("{alias}.{c}"))
                .collect();
            columns.join(", ")
        };
        tx.execute(
            &format!(
                "UPDATE {table} d SET {} FROM scd s
                 WHERE s.latest AND NOT s.changed AND d.{key} = s.key AND d.is_current
                     AND ({}) IS DISTINCT FROM ({})",
                set(self.in_place),
                of("d"),
                of("s")
            ),
            &[],
        )
        .await?;
        let changed = count(changes, "changed")?;
        Ok(Loaded {
            rows: usize::try_from(inserted + completed).unwrap_or(usize::MAX),
            skipped: offered.saturating_sub(changed),
        })
    }

    fn attributes(&self) -> Vec<&'static str> {
        self.versioned
            .iter()
            .chain(self.in_place)
            .copied()
            .collect()
    }

    /// The current rows of the keys in `touched`, with the attribute types of `prepared`.
    async fn current(
        &self,
        tx: &Transaction<'_>,
        prepared: &RecordBatch,
    ) -> Result<RecordBatch, EtlError> {
        let mut fields = vec![
            field("key", DataType::Utf8),
            field("effective_start_date", TIMESTAMP),
            field("version", DataType::Int32),
            field("is_inferred", DataType::Boolean),
        ];
        let mut select = Vec::new();
        for name in self.attributes() {
            let data_type = match prepared.schema().field_with_name(name)?.data_type() {
                DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                other => other.clone(),
            };
            select.push(format!("d.{name}::{}", pg_type(&data_type)?.name()));
            fields.push(field(name, data_type));
        }
        // One probe of the current-row index per key: for a chunk of many keys (the course's
        // first day loads 10 million customers in chunks of 200,000) the planner would scan
        // every current row instead, 4.3 s a chunk at 10 million against 1.4 s probing (the
        // LIMIT keeps the subquery a subquery).
        let query = format!(
            "SELECT d.{key}, d.effective_start_date, d.version, d.is_inferred, {}
             FROM touched t CROSS JOIN LATERAL (
                 SELECT * FROM {table} c WHERE c.{key} = t.key AND c.is_current LIMIT 1) d",
            select.join(", "),
            key = self.key,
            table = self.table,
        );
        rows(tx.client(), &query, &[], schema(fields)).await
    }

    /// The SCD2 rule as one plan over the current rows (`cur`) and the new versions
    /// (`prepared`). Output: one row per new version that changes a versioned attribute
    /// (`changed`, with its `version`, the time the next one starts, and whether it completes
    /// an inferred member), plus the latest version of each key if it changes nothing (for the
    /// in-place attributes); `had_current` tells a key with a current row (to expire) from a
    /// new one.
    fn plan(&self) -> String {
        let attributes = self.attributes().join(", ");
        let staged_attributes: Vec<String> =
            self.attributes().iter().map(|a| format!("s.{a}")).collect();
        let order = "OVER (PARTITION BY key ORDER BY staged, at)";
        let differs: Vec<String> = self
            .versioned
            .iter()
            .map(|a| format!("(lag({a}) {order} IS DISTINCT FROM {a})"))
            .collect();
        let per_key = "OVER (PARTITION BY key ORDER BY at)";
        format!(
            "WITH seq AS (
                 SELECT key, effective_start_date AS at, {attributes}, FALSE AS staged,
                     version AS base, is_inferred AS inferred
                 FROM cur
                 UNION ALL
                 SELECT s.key, s.at, {staged}, TRUE AS staged, c.version AS base,
                     c.is_inferred AS inferred
                 FROM prepared s LEFT JOIN cur c ON c.key = s.key
                 WHERE c.key IS NULL OR c.is_inferred OR s.at > c.effective_start_date
             ), marked AS (
                 SELECT *,
                     (lag(key) {order} IS NULL) OR {differs}
                         OR (coalesce(inferred, FALSE) AND NOT coalesce(lag(staged) {order}, TRUE))
                         AS changed,
                     row_number() OVER (PARTITION BY key ORDER BY at DESC) = 1 AS latest
                 FROM seq
             ), changes AS (
                 SELECT key, at, {attributes}, lead(at) {per_key} AS next_at,
                     CAST(coalesce(base, 0) + CAST(row_number() {per_key} AS INT)
                         - CASE WHEN coalesce(inferred, FALSE) THEN 1 ELSE 0 END AS INT) AS version,
                     coalesce(inferred, FALSE) AND row_number() {per_key} = 1 AS completes,
                     TRUE AS changed, latest, base IS NOT NULL AS had_current
                 FROM marked WHERE staged AND changed
             )
             SELECT * FROM changes
             UNION ALL
             SELECT key, at, {attributes}, CASE WHEN FALSE THEN at END AS next_at,
                 CAST(NULL AS INT) AS version, FALSE AS completes, FALSE AS changed, latest,
                 base IS NOT NULL AS had_current
             FROM marked WHERE staged AND NOT changed AND latest",
            staged = staged_attributes.join(", "),
            differs = differs.join(" OR "),
        )
    }
}

/// How many rows of `batch` have the boolean column `name` true.
fn count(batch: &RecordBatch, name: &str) -> Result<usize, EtlError> {
    let column = batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
        .ok_or_else(|| {
            EtlError::DataFusion(datafusion::error::DataFusionError::Plan(format!(
                "no boolean column {name}"
            )))
        })?;
    Ok(column.true_count())
}
