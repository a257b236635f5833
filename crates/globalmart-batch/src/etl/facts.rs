//! What every fact table shares: each event gets the keys of the dimension versions valid at its
//! time (a user or product with no record yet gets an inferred member first), then is merged on
//! its natural key (`event_id` and its time), so an event loaded before is skipped and counted.
//! A fact table declares its [`Fact`]; [`FactTable`] is its [`Table`].
//!
//! The fact tables load side by side (`etl/mod.rs`), so what a chunk writes that the others
//! share (inferred members, the calendar) is written by its preparation, a short transaction
//! of its own under the totals' lock, before the chunk's transaction; its table's day
//! partitions just before that (docs/ARCHITECTURE.md, "Lanes").

use std::marker::PhantomData;

use chrono::NaiveDate;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Transaction};

use super::dim_products::category_groups;
use super::extract::{field, rows, schema, Source, TIMESTAMP};
use super::load::{column_list, stage};
use super::table::{Loaded, Table};
use super::totals::{self, Totals};
use super::transaction;
use super::transform::plan;
use crate::error::EtlError;

/// A fact table: where its events come from and how they become its rows.
pub trait Fact {
    /// The warehouse table.
    const NAME: &'static str;
    /// The realtime table of its events, each column declared once.
    const SOURCE: Source;
    /// DataFusion SQL over `source` (the events), `customers`, `products` and `geography` (the
    /// dimension versions of the events' keys): one row per event, its columns named as the
    /// table's, `event_id` among them.
    const TRANSFORM: &'static str;
    /// The column the rows are inserted in the order of.
    const TIME: &'static str;
    /// What its events tell of their product, as `product_name, category, price` over
    /// `source` (NULL where they carry none): it fills the product's inferred member.
    const PRODUCT_SEEN: &'static str;
    /// What adds the chunk's new facts to the analytics' running totals and the customers'
    /// purchase totals (one of `totals.rs`'s).
    const TOTALS: Totals;
}

/// The [`Table`] of fact `F`: the same extract, transform and load for every fact.
#[derive(Debug)]
pub struct FactTable<F>(PhantomData<F>);

impl<F: Fact> Table for FactTable<F> {
    const NAME: &'static str = F::NAME;
    const SOURCE: Source = F::SOURCE;
    const COUNTED_AS: (&'static str, &'static str) = ("new records", "duplicates skipped");

    async fn prepare(warehouse: &mut Client, extracted: &RecordBatch) -> Result<(), EtlError> {
        let days = days(extracted).await?;
        // The table's day partitions, in a statement of their own: making one locks the table
        // (sql/warehouse/V13__partitions_per_table.sql).
        warehouse.execute(PARTITIONS, &[&F::NAME, &days]).await?;
        let tx = transaction(warehouse).await?;
        seen(&tx, extracted, F::PRODUCT_SEEN).await?;
        tx.batch_execute(KNOWN).await?;
        tx.batch_execute(totals::LOCK).await?;
        tx.batch_execute(INFER).await?;
        tx.execute(CALENDAR, &[&days]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn transform(
        tx: &Transaction<'_>,
        extracted: &RecordBatch,
    ) -> Result<RecordBatch, EtlError> {
        with_keys(tx, F::NAME, extracted, F::TRANSFORM).await
    }

    async fn load(
        tx: &Transaction<'_>,
        _extracted: &RecordBatch,
        transformed: &RecordBatch,
    ) -> Result<Loaded, EtlError> {
        let loaded = merge(tx, F::NAME, F::TIME, transformed).await?;
        totals::add(tx, &F::TOTALS).await?;
        Ok(loaded)
    }
}

/// The UTC calendar day of `ts` as dim_date's yyyymmdd key.
macro_rules! date_id {
    ($ts:literal) => {
        concat!(
            "CAST(date_part('year', ",
            $ts,
            ") * 10000 + date_part('month', ",
            $ts,
            ") * 100 + date_part('day', ",
            $ts,
            ") AS INT)"
        )
    };
}

/// The dimension versions valid at `$ts` of the event `$e`: its customer and geography always,
/// its product when it names one (`$product_join`: JOIN or LEFT JOIN).
macro_rules! at_event_time {
    ($e:literal, $product_join:literal) => {
        concat!(
            " JOIN customers c ON c.user_id = ",
            $e,
            ".user_id AND ",
            $e,
            ".ts >= c.valid_from AND ",
            $e,
            ".ts < c.valid_to ",
            $product_join,
            " products p ON p.product_id = ",
            $e,
            ".product_id AND ",
            $e,
            ".ts >= p.valid_from AND ",
            $e,
            ".ts < p.valid_to",
            " JOIN geography g ON g.country = ",
            $e,
            ".country"
        )
    };
}
/// The source of a session event's fact (a product view or a cart event, from `$table`): the
/// columns every session event has (who, in which session and country, the product it names),
/// then its own (`$own`), then its time. Used where `column`, `Kind` and `Source` are in scope.
macro_rules! session_event_source {
    ($table:literal, $rows:literal, [$($own:expr),* $(,)?]) => {
        Source {
            table: $table,
            rows: $rows,
            columns: &[
                column("event_id", "event_id", Kind::Uuid),
                column("event_type", "event_type", Kind::Text),
                column("user_id", "user_id", Kind::Text),
                column("session_id", "session_id", Kind::Text),
                column("country", "country", Kind::Text),
                column("product_id", "product_id", Kind::Text),
                column("product_name", "product_name", Kind::Text),
                column("category", "category", Kind::Text),
                column("price", "price", Kind::Numeric(12, 2)),
                $($own,)*
                column("\"timestamp\"", "ts", Kind::Timestamp),
            ],
        }
    };
}

/// A session event's fact columns, named as the table's: its keys at the event's time (a
/// product only when the event names one), its session, its own columns (`$own`, read from
/// `e`), its time.
macro_rules! session_event_transform {
    ($own:literal) => {
        concat!(
            "SELECT e.event_id, e.event_type, c.customer_id, p.product_id_pk, g.geography_id, ",
            $crate::etl::facts::date_id!("e.ts"),
            " AS date_id, e.session_id, ",
            $own,
            ", e.ts AS event_timestamp FROM source e",
            $crate::etl::facts::at_event_time!("e", "LEFT JOIN")
        )
    };
}
pub(super) use {at_event_time, date_id, session_event_source, session_event_transform};

/// Inferred members for the users and products the events name that have no dimension row
/// yet, valid since 1970 so every fact finds them, with what the events tell of them (a user's
/// country; a product's name, category and price), so a feed without catalogue topics still
/// has useful dimensions. An inferred member lacking a field gains it from later events; its
/// record completes it in place.
const INFER: &str = "
    INSERT INTO dim_customers (user_id, country, effective_start_date, is_inferred)
    SELECT u.user_id, u.country, '1970-01-01 00:00:00+00'::timestamptz, TRUE FROM seen_users u
    WHERE NOT EXISTS (SELECT 1 FROM dim_customers d WHERE d.user_id = u.user_id)
    ORDER BY 1
    ON CONFLICT (user_id) WHERE is_current DO NOTHING;
    UPDATE dim_customers d SET country = u.country, updated_at = now()
    FROM seen_users u
    WHERE d.user_id = u.user_id AND d.is_inferred AND d.country IS NULL
        AND u.country IS NOT NULL;
    INSERT INTO dim_products (product_id, product_name, category, category_group, price,
        effective_start_date, is_inferred)
    SELECT p.product_id, p.product_name, p.category, p.category_group, p.price,
        '1970-01-01 00:00:00+00'::timestamptz, TRUE FROM seen_products p
    WHERE NOT EXISTS (SELECT 1 FROM dim_products d WHERE d.product_id = p.product_id)
    ORDER BY 1
    ON CONFLICT (product_id) WHERE is_current DO NOTHING;
    UPDATE dim_products d SET product_name = coalesce(d.product_name, p.product_name),
        category = coalesce(d.category, p.category),
        category_group = coalesce(d.category_group, p.category_group),
        price = coalesce(d.price, p.price), updated_at = now()
    FROM seen_products p
    WHERE d.product_id = p.product_id AND d.is_inferred
        AND (d.product_name IS NULL AND p.product_name IS NOT NULL
             OR d.category IS NULL AND p.category IS NOT NULL
             OR d.price IS NULL AND p.price IS NOT NULL);";

/// Leaves out of `seen_users` and `seen_products` the members [`INFER`] has nothing to do for:
/// those whose every row is complete where the events could fill it (or no longer inferred).
/// Run before the totals' lock: looking every member up in dimensions of millions was most of
/// a preparation's time, which the other lanes' chunks waited for. A member left out stays so,
/// as rows are never removed, an inferred member only gains fields, and a completed one stays
/// completed; one kept that another chunk infers meanwhile is found by [`INFER`] under the
/// lock. Each member is one index probe (`bool_and` of no rows is NULL: a member without a row
/// is kept).
const KNOWN: &str = "
    DELETE FROM seen_users u
    WHERE (SELECT bool_and(NOT (d.is_inferred AND d.country IS NULL AND u.country IS NOT NULL))
           FROM dim_customers d WHERE d.user_id = u.user_id);
    DELETE FROM seen_products p
    WHERE (SELECT bool_and(NOT (d.is_inferred
                AND (d.product_name IS NULL AND p.product_name IS NOT NULL
                     OR d.category IS NULL AND p.category IS NOT NULL
                     OR d.price IS NULL AND p.price IS NOT NULL)))
           FROM dim_products d WHERE d.product_id = p.product_id);";

/// Each user of the events with the country of their latest event.
const SEEN_USERS: &str =
    "SELECT user_id, last_value(country ORDER BY ts) AS country FROM source GROUP BY user_id";

/// The users the events name (`seen_users` of the versions' queries).
const USER_KEYS: &str = "SELECT DISTINCT user_id FROM source";

/// The products the events name (`seen_products` of the versions' queries).
const PRODUCT_KEYS: &str = "SELECT DISTINCT product_id FROM source WHERE product_id IS NOT NULL";

/// Each product of the events with what its latest event tells of it (`{seen}`: the fact's
/// [`Fact::PRODUCT_SEEN`]) and the group of that category.
fn seen_products(seen: &str) -> String {
    format!(
        "SELECT s.product_id, s.product_name, s.category, g.category_group, s.price
         FROM (SELECT product_id, last_value(product_name ORDER BY ts) AS product_name,
                   last_value(category ORDER BY ts) AS category,
                   last_value(price ORDER BY ts) AS price
               FROM (SELECT product_id, ts, {seen} FROM source WHERE product_id IS NOT NULL) e
               GROUP BY product_id) s
         LEFT JOIN category_groups g ON g.category = s.category"
    )
}

/// The customer versions of the users the events name, with the time range each is valid for. A
/// key's first version also covers the time before it: an event older than the first record
/// of its user belongs to that first version.
const CUSTOMER_VERSIONS: &str = "
    SELECT d.customer_id, d.user_id,
        CASE WHEN d.version = 1 THEN '1970-01-01 00:00:00+00' ELSE d.effective_start_date END
            AS valid_from,
        d.effective_end_date AS valid_to
    FROM dim_customers d WHERE d.user_id IN (SELECT user_id FROM seen_users)";

/// The product versions of the products the events name, valid the same way.
const PRODUCT_VERSIONS: &str = "
    SELECT d.product_id_pk, d.product_id,
        CASE WHEN d.version = 1 THEN '1970-01-01 00:00:00+00' ELSE d.effective_start_date END
            AS valid_from,
        d.effective_end_date AS valid_to
    FROM dim_products d WHERE d.product_id IN (SELECT product_id FROM seen_products)";

/// The UTC days of the events (dim_date's days, the facts' partitions).
const DAYS: &str = "SELECT DISTINCT CAST(ts AS DATE) AS day FROM source";

/// The day partitions $2 of fact table $1.
const PARTITIONS: &str = "SELECT fact_partitions_ensure($1, $2::date[])";

/// dim_date rows for every day from the earliest to the latest fact day, the chunk's days ($1)
/// included.
const CALENDAR: &str = "
    INSERT INTO dim_date (date_id, \"date\", year, quarter, month, week, day, day_of_week,
        day_name, month_name, is_weekend)
    SELECT to_char(d, 'YYYYMMDD')::int, d, extract(year FROM d), extract(quarter FROM d),
        extract(month FROM d), extract(week FROM d), extract(day FROM d), extract(isodow FROM d),
        trim(to_char(d, 'Day')), trim(to_char(d, 'Month')), extract(isodow FROM d) >= 6
    FROM (SELECT min(day) AS first, max(day) AS last FROM unnest($1::date[]) day) s,
        LATERAL (SELECT least(s.first, min(\"date\")) AS first,
                        greatest(s.last, max(\"date\")) AS last FROM dim_date) r,
        LATERAL generate_series(r.first, r.last, interval '1 day') g,
        LATERAL (SELECT g::date AS d) day
    ON CONFLICT (date_id) DO NOTHING";

/// The UTC days of the events in `extracted`.
async fn days(extracted: &RecordBatch) -> Result<Vec<NaiveDate>, EtlError> {
    let days = plan(&[("source", extracted)], DAYS).await?;
    let column = days.column(0).as_primitive::<Date32Type>();
    Ok(column
        .iter()
        .flatten()
        // Days of valid timestamps: always in chrono's range.
        .filter_map(Date32Type::to_naive_date_opt)
        .collect())
}

/// Stages the users (`seen_users`) and products (`seen_products`) the events name, with what
/// they tell of them (`product_seen`: see [`Fact::PRODUCT_SEEN`]).
async fn seen(
    tx: &Transaction<'_>,
    extracted: &RecordBatch,
    product_seen: &str,
) -> Result<(), EtlError> {
    let users_seen = plan(&[("source", extracted)], SEEN_USERS).await?;
    stage(tx, "seen_users", &users_seen).await?;
    let groups = category_groups()?;
    let products_seen = plan(
        &[("source", extracted), ("category_groups", &groups)],
        &seen_products(product_seen),
    )
    .await?;
    stage(tx, "seen_products", &products_seen).await
}

/// The rows of fact table `table` for the events in `extracted`, by `transform` (see
/// [`Fact::TRANSFORM`]); one per event, or an error. Their dimension members exist: the
/// chunk's preparation inferred those missing.
async fn with_keys(
    tx: &Transaction<'_>,
    table: &'static str,
    extracted: &RecordBatch,
    transform: &str,
) -> Result<RecordBatch, EtlError> {
    for (name, keys) in [("seen_users", USER_KEYS), ("seen_products", PRODUCT_KEYS)] {
        stage(tx, name, &plan(&[("source", extracted)], keys).await?).await?;
    }
    let customers = versions(tx, CUSTOMER_VERSIONS, "customer_id", "user_id").await?;
    // For the running totals, which need the user of each row inserted (`totals.rs`): a hash
    // join with the chunk's own customers, where a key lookup per row into dim_customers (10
    // million rows after 30 days) read from disk (0.94 and 0.66 s of an increment's sales and
    // views, against 0.19 and 0.18 s).
    stage(tx, "chunk_customers", &customers).await?;
    let products = versions(tx, PRODUCT_VERSIONS, "product_id_pk", "product_id").await?;
    let geography = geography(tx).await?;
    let keyed = plan(
        &[
            ("source", extracted),
            ("customers", &customers),
            ("products", &products),
            ("geography", &geography),
        ],
        transform,
    )
    .await?;
    if keyed.num_rows() != extracted.num_rows() {
        return Err(EtlError::Unmatched {
            step: table,
            extracted: extracted.num_rows(),
            transformed: keyed.num_rows(),
        });
    }
    Ok(keyed)
}

/// Inserts `rows` (columns named as `table`'s, `event_id` among them) into fact table `table`
/// in the order of column `time`, its partition key, skipping events loaded before (an event
/// keeps its time, so the natural key (`event_id`, `time`) meets its row). The calendar and the
/// day partitions have the rows' days: the chunk's preparation made them. The rows inserted
/// are left in the temporary table `inserted` for the running totals (`totals.rs`): they need
/// not be looked up again in every day partition.
async fn merge(
    tx: &Transaction<'_>,
    table: &'static str,
    time: &'static str,
    rows: &RecordBatch,
) -> Result<Loaded, EtlError> {
    stage(tx, "staged", rows).await?;
    let columns = column_list(rows);
    // Identifiers from the table's own constants and plan.
    let insert =
        format!("INSERT INTO {table} ({columns}) SELECT {columns} FROM staged ORDER BY {time}");
    // A chunk rarely holds an event loaded before (the watermark moves with the chunk), so the
    // rows are first inserted as they are: no conflict check ahead of each row, and the staged
    // rows are the rows inserted. An event loaded before fails that on its key, and the chunk
    // merges instead.
    tx.batch_execute(&format!("SAVEPOINT {PLAIN_INSERT}"))
        .await?;
    match tx.execute(&insert, &[]).await {
        Ok(inserted) => {
            tx.batch_execute(&format!(
                "RELEASE SAVEPOINT {PLAIN_INSERT}; ALTER TABLE staged RENAME TO inserted"
            ))
            .await?;
            return Ok(Loaded {
                rows: usize::try_from(inserted).unwrap_or(usize::MAX),
                skipped: 0,
            });
        }
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            tx.batch_execute(&format!("ROLLBACK TO SAVEPOINT {PLAIN_INSERT}"))
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE inserted (LIKE {table}) ON COMMIT DROP"
    ))
    .await?;
    let merged = tx
        .execute(
            &format!(
                "WITH merged AS (
                     INSERT INTO {table} ({columns}) SELECT {columns} FROM staged ORDER BY {time}
                     ON CONFLICT (event_id, {time}) DO NOTHING RETURNING *)
                 INSERT INTO inserted SELECT * FROM merged"
            ),
            &[],
        )
        .await?;
    let loaded = usize::try_from(merged).unwrap_or(usize::MAX);
    Ok(Loaded {
        rows: loaded,
        skipped: rows.num_rows() - loaded,
    })
}

/// The savepoint a chunk's rows are first inserted under, as they are.
const PLAIN_INSERT: &str = "plain_insert";

/// Versions of one dimension for the staged keys: surrogate key, natural key, validity.
async fn versions(
    tx: &Transaction<'_>,
    query: &str,
    surrogate: &str,
    natural: &str,
) -> Result<RecordBatch, EtlError> {
    let fields = vec![
        field(surrogate, DataType::Int64),
        field(natural, DataType::Utf8),
        field("valid_from", TIMESTAMP),
        field("valid_to", TIMESTAMP),
    ];
    rows(tx.client(), query, &[], schema(fields)).await
}

/// The current geography of each country.
async fn geography(tx: &Transaction<'_>) -> Result<RecordBatch, EtlError> {
    let fields = vec![
        field("geography_id", DataType::Int32),
        field("country", DataType::Utf8),
    ];
    rows(tx.client(), GEOGRAPHY, &[], schema(fields)).await
}

const GEOGRAPHY: &str = "SELECT geography_id, country FROM dim_geography WHERE is_current";
