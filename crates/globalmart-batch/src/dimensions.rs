//! SCD2 dimensions from the catalogue histories. The rule lives here once and serves every
//! dimension:
//! - each new catalogue version of a key, in time order, whose versioned attributes differ from
//!   the version before it, expires the current row (`effective_end_date` = its time,
//!   `is_current` false) and becomes the new current row (`version` + 1), in one transaction;
//! - a version that changes none of them only overwrites the in-place attributes;
//! - an inferred member (created for a fact whose key had no record yet) is completed in place
//!   by the first version, so the facts already pointing at it stay right;
//! - a version not newer than the current row is a replay (or arrived out of order) and is
//!   skipped.

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use globalmart_core::domain::CategoryGroup;
use std::sync::Arc;
use tokio_postgres::Transaction;

use crate::error::EtlError;
use crate::extract::{self, field, read, Source, TIMESTAMP};
use crate::load::stage;
use crate::step::Loaded;
use crate::transform::plan;

/// A dimension: its warehouse table, natural key, attributes, and how its catalogue history
/// becomes rows of (key, at, versioned..., in_place...).
#[derive(Debug)]
pub struct Dimension {
    /// The step's name and warehouse table.
    pub table: &'static str,
    /// The realtime history it is built from.
    pub source: Source,
    /// The natural key column.
    key: &'static str,
    /// A change of any of these makes a new version.
    versioned: &'static [&'static str],
    /// Overwritten on the current version.
    in_place: &'static [&'static str],
    /// DataFusion SQL over `source` (and `category_groups`): key, at, versioned, in_place.
    prepare: &'static str,
}

/// `dim_products` from `product_history`.
pub const PRODUCTS: Dimension = Dimension {
    table: "dim_products",
    source: Source {
        table: "product_history",
        rows: "product versions",
        select: "product_id, updated_at, name, category, price, rating",
        fields: || {
            vec![
                field("product_id", DataType::Utf8),
                field("updated_at", TIMESTAMP),
                field("name", DataType::Utf8),
                field("category", DataType::Utf8),
                field("price", DataType::Decimal128(12, 2)),
                field("rating", DataType::Decimal128(3, 1)),
            ]
        },
    },
    key: "product_id",
    versioned: &["product_name", "category", "price"],
    in_place: &["category_group", "rating"],
    prepare: "SELECT s.product_id AS key, s.updated_at AS at, s.name AS product_name, s.category,
                  s.price, g.category_group, s.rating
              FROM source s LEFT JOIN category_groups g ON g.category = s.category",
};

/// `dim_customers` from `user_history`. The age band is versioned, the age itself is not.
pub const CUSTOMERS: Dimension = Dimension {
    table: "dim_customers",
    source: Source {
        table: "user_history",
        rows: "user versions",
        select: "user_id, updated_at, email, age, country, registration_date",
        fields: || {
            vec![
                field("user_id", DataType::Utf8),
                field("updated_at", TIMESTAMP),
                field("email", DataType::Utf8),
                field("age", DataType::Int32),
                field("country", DataType::Utf8),
                field("registration_date", TIMESTAMP),
            ]
        },
    },
    key: "user_id",
    versioned: &["email", "age_group", "country"],
    in_place: &["age", "registration_date"],
    prepare: "SELECT user_id AS key, updated_at AS at, email,
                  CASE WHEN age < 25 THEN '18-24' WHEN age < 35 THEN '25-34'
                       WHEN age < 45 THEN '35-44' WHEN age < 55 THEN '45-54'
                       WHEN age < 65 THEN '55-64' ELSE '65+' END AS age_group,
                  country, age, registration_date
              FROM source",
};

impl Dimension {
    /// Applies the catalogue versions in `batch` (rows of [`Dimension::source`]).
    pub async fn apply(
        &self,
        tx: &Transaction<'_>,
        batch: &RecordBatch,
    ) -> Result<Loaded, EtlError> {
        let groups = category_groups()?;
        let prepared = plan(
            &[("source", batch), ("category_groups", &groups)],
            self.prepare,
        )
        .await?;
        let keys = plan(
            &[("prepared", &prepared)],
            "SELECT DISTINCT key FROM prepared",
        )
        .await?;
        stage(tx, "touched", &keys).await?;
        let current = self.current(tx, &prepared).await?;
        let changes = plan(&[("prepared", &prepared), ("cur", &current)], &self.scd2()).await?;
        stage(tx, "scd", &changes).await?;
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
                 FROM (SELECT key, min(at) AS at FROM scd WHERE changed AND NOT completes
                       GROUP BY key) f
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
        tx.execute(
            &format!(
                "UPDATE {table} d SET {} FROM scd s
                 WHERE s.latest AND d.{key} = s.key AND d.is_current",
                set(self.in_place)
            ),
            &[],
        )
        .await?;
        if self.table == CUSTOMERS.table {
            // A new version starts with the customer's purchase totals, like the one it follows.
            refresh_customer_totals(tx, "touched").await?;
        }
        let changed = count(&changes, "changed")?;
        Ok(Loaded {
            transformed: changes.num_rows(),
            loaded: usize::try_from(inserted + completed).unwrap_or(usize::MAX),
            skipped: batch.num_rows().saturating_sub(changed),
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
            select.push(format!(
                "d.{name}::{}",
                extract::pg_type(&data_type)?.name()
            ));
            fields.push(field(name, data_type));
        }
        let query = format!(
            "SELECT d.{key}, d.effective_start_date, d.version, d.is_inferred, {}
             FROM {table} d JOIN touched t ON t.key = d.{key} WHERE d.is_current",
            select.join(", "),
            key = self.key,
            table = self.table,
        );
        let stream = tx.copy_out(&extract::copy_of(&query)).await?;
        read(stream, extract::schema(fields)).await
    }

    /// The SCD2 rule as one plan over the current rows (`cur`) and the new versions
    /// (`prepared`). Output: one row per new version that changes a versioned attribute
    /// (`changed`, with its `version`, the time the next one starts, and whether it completes
    /// an inferred member), plus the latest version of each key if it changes nothing (for the
    /// in-place attributes).
    fn scd2(&self) -> String {
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
                     TRUE AS changed, latest
                 FROM marked WHERE staged AND changed
             )
             SELECT * FROM changes
             UNION ALL
             SELECT key, at, {attributes}, CASE WHEN FALSE THEN at END AS next_at,
                 CAST(NULL AS INT) AS version, FALSE AS completes, FALSE AS changed, latest
             FROM marked WHERE staged AND NOT changed AND latest",
            staged = staged_attributes.join(", "),
            differs = differs.join(" OR "),
        )
    }
}

/// Overwrites the purchase totals of the current `dim_customers` rows of the users in table
/// `users` (column `key`) from all their sales, whichever version those point to.
pub async fn refresh_customer_totals(tx: &Transaction<'_>, users: &str) -> Result<(), EtlError> {
    tx.execute(
        &format!(
            "UPDATE dim_customers d SET total_transactions = a.orders, total_spent = a.spent,
                 avg_order_value = round(a.spent / a.orders, 2),
                 first_transaction_date = a.first, last_transaction_date = a.last,
                 updated_at = now()
             FROM (SELECT c.user_id, count(DISTINCT f.transaction_id)::int AS orders,
                       sum(f.total_amount) AS spent, min(f.transaction_timestamp) AS first,
                       max(f.transaction_timestamp) AS last
                   FROM fact_sales f JOIN dim_customers c ON c.customer_id = f.customer_id
                   WHERE c.user_id IN (SELECT key FROM {users})
                   GROUP BY c.user_id) a
             WHERE d.user_id = a.user_id AND d.is_current"
        ),
        &[],
    )
    .await?;
    Ok(())
}

/// The group of each of the 100 categories, from the domain model.
fn category_groups() -> Result<RecordBatch, EtlError> {
    let pairs: Vec<(&str, &str)> = CategoryGroup::ALL
        .iter()
        .flat_map(|g| g.categories().iter().map(move |c| (*c, g.name())))
        .collect();
    let categories: StringArray = pairs.iter().map(|p| Some(p.0)).collect();
    let groups: StringArray = pairs.iter().map(|p| Some(p.1)).collect();
    Ok(RecordBatch::try_new(
        extract::schema(vec![
            Field::new("category", DataType::Utf8, false),
            Field::new("category_group", DataType::Utf8, false),
        ]),
        vec![Arc::new(categories), Arc::new(groups)],
    )?)
}

/// How many rows of `batch` have the boolean column `name` true.
fn count(batch: &RecordBatch, name: &str) -> Result<usize, EtlError> {
    let column = batch
        .column_by_name(name)
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<datafusion::arrow::array::BooleanArray>()
        })
        .ok_or_else(|| {
            EtlError::DataFusion(datafusion::error::DataFusionError::Plan(format!(
                "no boolean column {name}"
            )))
        })?;
    Ok(column.true_count())
}
