//! Facts from the raw events: each event gets the keys of the dimension versions valid at its
//! time (a user or product with no record yet gets an inferred member first), then is merged
//! on its natural key, so an event loaded before is skipped and counted.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use tokio_postgres::Transaction;

use crate::dimensions::refresh_customer_totals;
use crate::error::EtlError;
use crate::extract::{self, field, read, Source, TIMESTAMP};
use crate::load::stage;
use crate::step::Loaded;
use crate::transform::plan;

/// A fact table and how it is built.
#[derive(Debug)]
pub struct Fact {
    /// The step's name and warehouse table.
    pub table: &'static str,
    /// The realtime table it is built from.
    pub source: Source,
    /// DataFusion SQL over `source`, `customers`, `products` and `geography`.
    transform: &'static str,
    /// Warehouse SQL moving the rows of `staged` into the table; skips keys loaded before.
    merge: &'static str,
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

/// `fact_sales`: one row per transaction line (`event_id` = line_item_id).
pub const SALES: Fact = Fact {
    table: "fact_sales",
    source: Source {
        table: "transactions",
        rows: "transaction lines",
        select: "line_item_id::text, transaction_id::text, user_id, product_id, quantity, price,
                 payment_method, country, \"timestamp\"",
        fields: || {
            vec![
                field("line_item_id", DataType::Utf8),
                field("transaction_id", DataType::Utf8),
                field("user_id", DataType::Utf8),
                field("product_id", DataType::Utf8),
                field("quantity", DataType::Int32),
                field("price", DataType::Decimal128(12, 2)),
                field("payment_method", DataType::Utf8),
                field("country", DataType::Utf8),
                field("ts", TIMESTAMP),
            ]
        },
    },
    transform: concat!(
        "SELECT s.line_item_id AS event_id, s.transaction_id, c.customer_id, p.product_id_pk,
             g.geography_id, ",
        date_id!("s.ts"),
        " AS date_id, s.quantity, s.price AS unit_price,
             CAST(0 AS DECIMAL(12, 2)) AS discount_amount,
             CAST(s.price * CAST(s.quantity AS DECIMAL(10, 0)) AS DECIMAL(14, 2)) AS total_amount,
             s.payment_method, s.ts AS transaction_timestamp
         FROM source s",
        at_event_time!("s", "JOIN")
    ),
    merge: "INSERT INTO fact_sales (event_id, transaction_id, customer_id, product_id_pk,
                geography_id, date_id, quantity, unit_price, discount_amount, total_amount,
                payment_method, transaction_timestamp)
            SELECT event_id::uuid, transaction_id::uuid, customer_id, product_id_pk,
                geography_id, date_id, quantity, unit_price, discount_amount, total_amount,
                payment_method, transaction_timestamp
            FROM staged ORDER BY transaction_timestamp
            ON CONFLICT (event_id) DO NOTHING",
};

/// `fact_product_views`: views, searches, filters and compares (no product but a view's).
pub const VIEWS: Fact = Fact {
    table: "fact_product_views",
    source: Source {
        table: "product_view_events",
        rows: "product view events",
        select: "event_id::text, event_type, user_id, session_id, country, product_id,
                 view_duration, search_query, \"timestamp\"",
        fields: || {
            vec![
                field("event_id", DataType::Utf8),
                field("event_type", DataType::Utf8),
                field("user_id", DataType::Utf8),
                field("session_id", DataType::Utf8),
                field("country", DataType::Utf8),
                field("product_id", DataType::Utf8),
                field("view_duration", DataType::Int32),
                field("search_query", DataType::Utf8),
                field("ts", TIMESTAMP),
            ]
        },
    },
    transform: concat!(
        "SELECT v.event_id, v.event_type, c.customer_id, p.product_id_pk, g.geography_id, ",
        date_id!("v.ts"),
        " AS date_id, v.session_id, v.view_duration, v.search_query, v.ts AS event_timestamp
         FROM source v",
        at_event_time!("v", "LEFT JOIN")
    ),
    merge: "INSERT INTO fact_product_views (event_id, event_type, customer_id, product_id_pk,
                geography_id, date_id, session_id, view_duration, search_query, event_timestamp)
            SELECT event_id::uuid, event_type, customer_id, product_id_pk, geography_id, date_id,
                session_id, view_duration, search_query, event_timestamp
            FROM staged ORDER BY event_timestamp
            ON CONFLICT (event_id) DO NOTHING",
};

/// `fact_cart_events`: adds, removes, quantity updates and checkouts (no product).
pub const CARTS: Fact = Fact {
    table: "fact_cart_events",
    source: Source {
        table: "cart_events",
        rows: "cart events",
        select: "event_id::text, event_type, user_id, session_id, country, product_id, quantity,
                 cart_value, \"timestamp\"",
        fields: || {
            vec![
                field("event_id", DataType::Utf8),
                field("event_type", DataType::Utf8),
                field("user_id", DataType::Utf8),
                field("session_id", DataType::Utf8),
                field("country", DataType::Utf8),
                field("product_id", DataType::Utf8),
                field("quantity", DataType::Int32),
                field("cart_value", DataType::Decimal128(14, 2)),
                field("ts", TIMESTAMP),
            ]
        },
    },
    transform: concat!(
        "SELECT e.event_id, e.event_type, c.customer_id, p.product_id_pk, g.geography_id, ",
        date_id!("e.ts"),
        " AS date_id, e.session_id, e.quantity, e.cart_value, e.ts AS event_timestamp
         FROM source e",
        at_event_time!("e", "LEFT JOIN")
    ),
    merge: "INSERT INTO fact_cart_events (event_id, event_type, customer_id, product_id_pk,
                geography_id, date_id, session_id, quantity, cart_value, event_timestamp)
            SELECT event_id::uuid, event_type, customer_id, product_id_pk, geography_id, date_id,
                session_id, quantity, cart_value, event_timestamp
            FROM staged ORDER BY event_timestamp
            ON CONFLICT (event_id) DO NOTHING",
};

/// Inferred members for the users and products of `keys` that have no dimension row yet;
/// valid since 1970, so every fact finds them. Their record completes them in place.
const INFER: &str = "
    INSERT INTO dim_customers (user_id, effective_start_date, is_inferred)
    SELECT DISTINCT k.user_id, '1970-01-01 00:00:00+00'::timestamptz, TRUE FROM keys k
    WHERE NOT EXISTS (SELECT 1 FROM dim_customers d WHERE d.user_id = k.user_id)
    ORDER BY 1
    ON CONFLICT (user_id) WHERE is_current DO NOTHING;
    INSERT INTO dim_products (product_id, effective_start_date, is_inferred)
    SELECT DISTINCT k.product_id, '1970-01-01 00:00:00+00'::timestamptz, TRUE FROM keys k
    WHERE k.product_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM dim_products d WHERE d.product_id = k.product_id)
    ORDER BY 1
    ON CONFLICT (product_id) WHERE is_current DO NOTHING;";

/// The customer versions of the users in `keys`, with the time range each is valid for. A
/// key's first version also covers the time before it: an event older than the first record
/// of its user belongs to that first version.
const CUSTOMER_VERSIONS: &str = "
    SELECT d.customer_id, d.user_id,
        CASE WHEN d.version = 1 THEN '1970-01-01 00:00:00+00' ELSE d.effective_start_date END
            AS valid_from,
        d.effective_end_date AS valid_to
    FROM dim_customers d WHERE d.user_id IN (SELECT user_id FROM keys)";

/// The product versions of the products in `keys`, valid the same way.
const PRODUCT_VERSIONS: &str = "
    SELECT d.product_id_pk, d.product_id,
        CASE WHEN d.version = 1 THEN '1970-01-01 00:00:00+00' ELSE d.effective_start_date END
            AS valid_from,
        d.effective_end_date AS valid_to
    FROM dim_products d WHERE d.product_id IN (SELECT product_id FROM keys)";

/// dim_date rows for every day from the earliest to the latest fact day, staged ones included.
const CALENDAR: &str = "
    INSERT INTO dim_date (date_id, \"date\", year, quarter, month, week, day, day_of_week,
        day_name, month_name, is_weekend)
    SELECT to_char(d, 'YYYYMMDD')::int, d, extract(year FROM d), extract(quarter FROM d),
        extract(month FROM d), extract(week FROM d), extract(day FROM d), extract(isodow FROM d),
        trim(to_char(d, 'Day')), trim(to_char(d, 'Month')), extract(isodow FROM d) >= 6
    FROM (SELECT to_date(min(date_id)::text, 'YYYYMMDD') AS first,
                 to_date(max(date_id)::text, 'YYYYMMDD') AS last FROM staged) s,
        LATERAL (SELECT least(s.first, min(\"date\")) AS first,
                        greatest(s.last, max(\"date\")) AS last FROM dim_date) r,
        LATERAL generate_series(r.first, r.last, interval '1 day') g,
        LATERAL (SELECT g::date AS d) day
    ON CONFLICT (date_id) DO NOTHING";

impl Fact {
    /// Loads the events in `batch` (rows of [`Fact::source`]).
    pub async fn apply(
        &self,
        tx: &Transaction<'_>,
        batch: &RecordBatch,
    ) -> Result<Loaded, EtlError> {
        let keys = plan(
            &[("source", batch)],
            "SELECT DISTINCT user_id, product_id FROM source",
        )
        .await?;
        stage(tx, "keys", &keys).await?;
        tx.batch_execute(INFER).await?;
        let customers = versions(tx, CUSTOMER_VERSIONS, "customer_id", "user_id").await?;
        let products = versions(tx, PRODUCT_VERSIONS, "product_id_pk", "product_id").await?;
        let geography = geography(tx).await?;
        let rows = plan(
            &[
                ("source", batch),
                ("customers", &customers),
                ("products", &products),
                ("geography", &geography),
            ],
            self.transform,
        )
        .await?;
        if rows.num_rows() != batch.num_rows() {
            return Err(EtlError::Unmatched {
                step: self.table,
                extracted: batch.num_rows(),
                transformed: rows.num_rows(),
            });
        }
        stage(tx, "staged", &rows).await?;
        tx.batch_execute(CALENDAR).await?;
        let loaded = usize::try_from(tx.execute(self.merge, &[]).await?).unwrap_or(usize::MAX);
        if self.table == SALES.table {
            tx.batch_execute("CREATE TEMP TABLE buyers ON COMMIT DROP AS SELECT DISTINCT user_id AS key FROM keys")
                .await?;
            refresh_customer_totals(tx, "buyers").await?;
        }
        Ok(Loaded {
            transformed: rows.num_rows(),
            loaded,
            skipped: rows.num_rows() - loaded,
        })
    }
}

/// Versions of one dimension for the staged keys: surrogate key, natural key, validity.
async fn versions(
    tx: &Transaction<'_>,
    query: &str,
    surrogate: &str,
    natural: &str,
) -> Result<RecordBatch, EtlError> {
    let stream = tx.copy_out(&extract::copy_of(query)).await?;
    let schema = extract::schema(vec![
        field(surrogate, DataType::Int64),
        field(natural, DataType::Utf8),
        field("valid_from", TIMESTAMP),
        field("valid_to", TIMESTAMP),
    ]);
    read(stream, schema).await
}

/// The current geography of each country.
async fn geography(tx: &Transaction<'_>) -> Result<RecordBatch, EtlError> {
    let query = "SELECT geography_id, country FROM dim_geography WHERE is_current";
    let stream = tx.copy_out(&extract::copy_of(query)).await?;
    let schema = extract::schema(vec![
        field("geography_id", DataType::Int32),
        field("country", DataType::Utf8),
    ]);
    read(stream, schema).await
}
