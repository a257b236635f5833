//! Data quality: `check` (the warehouse on its own) and `validate` (the facts against the
//! realtime source). Each check counts offending rows; the commands print one table line per
//! check and fail when any count is not zero.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::NaiveDate;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use globalmart_core::db::RAW_HORIZON;
use tokio_postgres::Client;

use crate::error::EtlError;
use crate::etl::{field, plan, rows, schema};

/// One line of a quality report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was checked.
    pub check: String,
    /// Where.
    pub table: &'static str,
    /// Offending rows (0 = passed).
    pub failures: i64,
}

/// The checks of the warehouse on its own: (check, table, SQL counting offending rows).
const CHECKS: [(&str, &str, &str); 16] = [
    (
        "duplicate event_id",
        "fact_sales",
        "SELECT count(*) FROM (SELECT event_id FROM fact_sales GROUP BY event_id HAVING count(*) > 1) d",
    ),
    (
        "duplicate event_id",
        "fact_product_views",
        "SELECT count(*) FROM (SELECT event_id FROM fact_product_views GROUP BY event_id HAVING count(*) > 1) d",
    ),
    (
        "duplicate event_id",
        "fact_cart_events",
        "SELECT count(*) FROM (SELECT event_id FROM fact_cart_events GROUP BY event_id HAVING count(*) > 1) d",
    ),
    (
        "orphan customer, product, geography or date key",
        "fact_sales",
        "SELECT count(*) FROM fact_sales f
         WHERE NOT EXISTS (SELECT 1 FROM dim_customers c WHERE c.customer_id = f.customer_id)
            OR NOT EXISTS (SELECT 1 FROM dim_products p WHERE p.product_id_pk = f.product_id_pk)
            OR NOT EXISTS (SELECT 1 FROM dim_geography g WHERE g.geography_id = f.geography_id)
            OR NOT EXISTS (SELECT 1 FROM dim_date d WHERE d.date_id = f.date_id)",
    ),
    (
        "orphan customer or product key",
        "fact_product_views",
        "SELECT count(*) FROM fact_product_views f
         WHERE NOT EXISTS (SELECT 1 FROM dim_customers c WHERE c.customer_id = f.customer_id)
            OR (f.product_id_pk IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM dim_products p WHERE p.product_id_pk = f.product_id_pk))",
    ),
    (
        "orphan customer or product key",
        "fact_cart_events",
        "SELECT count(*) FROM fact_cart_events f
         WHERE NOT EXISTS (SELECT 1 FROM dim_customers c WHERE c.customer_id = f.customer_id)
            OR (f.product_id_pk IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM dim_products p WHERE p.product_id_pk = f.product_id_pk))",
    ),
    (
        "key of a version not valid at the sale's time",
        "fact_sales",
        "SELECT count(*) FROM fact_sales f
         JOIN dim_customers c USING (customer_id) JOIN dim_products p USING (product_id_pk)
         WHERE f.transaction_timestamp >= c.effective_end_date
            OR f.transaction_timestamp >= p.effective_end_date
            OR (c.version > 1 AND f.transaction_timestamp < c.effective_start_date)
            OR (p.version > 1 AND f.transaction_timestamp < p.effective_start_date)",
    ),
    (
        "missing product key on a view",
        "fact_product_views",
        "SELECT count(*) FROM fact_product_views WHERE event_type = 'view' AND product_id_pk IS NULL",
    ),
    (
        "missing product key on an add, remove or update",
        "fact_cart_events",
        "SELECT count(*) FROM fact_cart_events
         WHERE event_type <> 'checkout' AND product_id_pk IS NULL",
    ),
    (
        "quantity, price or total out of range",
        "fact_sales",
        "SELECT count(*) FROM fact_sales WHERE quantity <= 0 OR unit_price < 0
            OR total_amount <> quantity * unit_price - discount_amount",
    ),
    (
        "not exactly one current version",
        "dim_customers",
        "SELECT count(*) FROM (SELECT user_id FROM dim_customers GROUP BY user_id
                               HAVING count(*) FILTER (WHERE is_current) <> 1) k",
    ),
    (
        "not exactly one current version",
        "dim_products",
        "SELECT count(*) FROM (SELECT product_id FROM dim_products GROUP BY product_id
                               HAVING count(*) FILTER (WHERE is_current) <> 1) k",
    ),
    (
        "gap or overlap between versions",
        "dim_products",
        "SELECT count(*) FROM (SELECT effective_end_date, lead(effective_start_date)
                 OVER (PARTITION BY product_id ORDER BY version) AS next FROM dim_products) v
         WHERE next IS NOT NULL AND next <> effective_end_date",
    ),
    (
        "gap or overlap between versions",
        "dim_customers",
        "SELECT count(*) FROM (SELECT effective_end_date, lead(effective_start_date)
                 OVER (PARTITION BY user_id ORDER BY version) AS next FROM dim_customers) v
         WHERE next IS NOT NULL AND next <> effective_end_date",
    ),
    (
        "missing name, category or price",
        "dim_products",
        "SELECT count(*) FROM dim_products
         WHERE NOT is_inferred AND (product_name IS NULL OR category IS NULL OR price IS NULL)",
    ),
    (
        "conversion rate outside 0..100",
        "product_performance",
        "SELECT count(*) FROM product_performance WHERE conversion_rate NOT BETWEEN 0 AND 100",
    ),
];

/// Runs every check of the warehouse, plus freshness: the newest sale in the warehouse may be
/// at most `max_lag` older than the newest one in the realtime database.
pub async fn check(
    realtime: &Client,
    warehouse: &Client,
    max_lag: Duration,
) -> Result<Vec<Finding>, EtlError> {
    let mut findings = Vec::with_capacity(CHECKS.len() + 1);
    for (check, table, sql) in CHECKS {
        let failures: i64 = warehouse.query_one(sql, &[]).await?.get(0);
        findings.push(Finding {
            check: check.to_owned(),
            table,
            failures,
        });
    }
    let newest = "SELECT extract(epoch FROM max(\"timestamp\"))::float8 FROM transactions";
    let source: Option<f64> = realtime.query_one(newest, &[]).await?.get(0);
    let loaded: Option<f64> = warehouse
        .query_one(
            "SELECT extract(epoch FROM max(transaction_timestamp))::float8 FROM fact_sales",
            &[],
        )
        .await?
        .get(0);
    let behind = match (source, loaded) {
        (Some(s), Some(l)) => (s - l).max(0.0),
        (Some(_), None) => f64::INFINITY,
        (None, _) => 0.0,
    };
    findings.push(Finding {
        check: format!(
            "newest sale more than {} s behind realtime",
            max_lag.as_secs()
        ),
        table: "fact_sales",
        failures: i64::from(behind > max_lag.as_secs_f64()),
    });
    Ok(findings)
}

/// A fact table and its realtime source, compared key by key up to the ETL's watermark of the
/// source ($watermark) and from the first day the realtime database keeps ($since, raw
/// retention): (fact, its keys, source, the source's keys).
const SOURCES: [(&str, &str, &str, &str); 3] = [
    (
        "fact_sales",
        "SELECT event_id::text FROM fact_sales
         WHERE transaction_timestamp >= current_setting('globalmart.since')::date::timestamp
             AT TIME ZONE 'UTC'",
        "transactions",
        "SELECT line_item_id::text FROM transactions
         WHERE ingest_seq <= current_setting('globalmart.watermark')::int8",
    ),
    (
        "fact_product_views",
        "SELECT event_id::text FROM fact_product_views
         WHERE event_timestamp >= current_setting('globalmart.since')::date::timestamp
             AT TIME ZONE 'UTC'",
        "product_view_events",
        "SELECT event_id::text FROM product_view_events
         WHERE ingest_seq <= current_setting('globalmart.watermark')::int8",
    ),
    (
        "fact_cart_events",
        "SELECT event_id::text FROM fact_cart_events
         WHERE event_timestamp >= current_setting('globalmart.since')::date::timestamp
             AT TIME ZONE 'UTC'",
        "cart_events",
        "SELECT event_id::text FROM cart_events
         WHERE ingest_seq <= current_setting('globalmart.watermark')::int8",
    ),
];

const WATERMARK: &str = "SELECT last_ingest_seq FROM etl_watermarks WHERE source_table = $1";

/// Compares each fact table with its realtime source up to the ETL's watermark: row counts,
/// keys missing from the warehouse, keys the source does not have, and for sales the units
/// and amounts.
pub async fn validate(realtime: &Client, warehouse: &Client) -> Result<Vec<Finding>, EtlError> {
    // Days raw retention removed are compared no more: the warehouse alone holds them.
    let since: NaiveDate = realtime.query_one(RAW_HORIZON, &[]).await?.try_get(0)?;
    let from_since = [("since", since.to_string())];
    let mut findings = Vec::new();
    for (fact, fact_keys, source, source_keys) in SOURCES {
        let watermark: i64 = warehouse
            .query_opt(WATERMARK, &[&source])
            .await?
            .map(|r| r.get(0))
            .unwrap_or(0);
        let source_keys = keys(
            realtime,
            source_keys,
            &[("watermark", watermark.to_string())],
        )
        .await?;
        let fact_keys = keys(warehouse, fact_keys, &from_since).await?;
        let compared = plan(
            &[("source", &source_keys), ("fact", &fact_keys)],
            "SELECT
                 (SELECT count(*) FROM source) - (SELECT count(*) FROM fact) AS difference,
                 (SELECT count(*) FROM source s
                  WHERE NOT EXISTS (SELECT 1 FROM fact f WHERE f.key = s.key)) AS missing,
                 (SELECT count(*) FROM fact f
                  WHERE NOT EXISTS (SELECT 1 FROM source s WHERE s.key = f.key)) AS extra",
        )
        .await?;
        let value = |column: usize| -> i64 {
            compared
                .column(column)
                .as_primitive_opt::<Int64Type>()
                .map_or(0, |a| a.value(0))
        };
        for (i, what) in [
            "row count differs from the source",
            "source rows missing",
            "rows the source does not have",
        ]
        .into_iter()
        .enumerate()
        {
            findings.push(Finding {
                check: what.to_owned(),
                table: fact,
                failures: value(i).abs(),
            });
        }
    }
    let watermark: i64 = warehouse
        .query_opt(WATERMARK, &[&"transactions"])
        .await?
        .map(|r| r.get(0))
        .unwrap_or(0);
    let source: String = realtime
        .query_one(
            "SELECT coalesce(sum(quantity), 0) || ' units, ' || coalesce(sum(quantity * price), 0)
             FROM transactions WHERE ingest_seq <= $1",
            &[&watermark],
        )
        .await?
        .get(0);
    let loaded: String = warehouse
        .query_one(
            "SELECT coalesce(sum(quantity), 0) || ' units, ' || coalesce(sum(total_amount), 0)
             FROM fact_sales WHERE transaction_timestamp >= $1::date::timestamp AT TIME ZONE 'UTC'",
            &[&since],
        )
        .await?
        .get(0);
    let kept = if since > NaiveDate::default() {
        format!(", since {since}")
    } else {
        String::new()
    };
    findings.push(Finding {
        check: format!("units and amount differ from the source ({loaded} vs {source}{kept})"),
        table: "fact_sales",
        failures: i64::from(loaded != source),
    });
    Ok(findings)
}

/// The keys a query returns, as a one-column (`key`) batch.
async fn keys(
    client: &Client,
    query: &str,
    values: &[(&str, String)],
) -> Result<RecordBatch, EtlError> {
    rows(
        client,
        query,
        values,
        schema(vec![field("key", DataType::Utf8)]),
    )
    .await
}

/// The findings as a table, worst first; the last line says whether all passed.
pub fn table(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(5);
    let mut out = format!("{:<width$}  {:<20}  result\n", "check", "table");
    for f in findings {
        let result = if f.failures == 0 {
            "ok".to_owned()
        } else {
            format!("FAILED ({} rows)", f.failures)
        };
        let _ = writeln!(out, "{:<width$}  {:<20}  {result}", f.check, f.table);
    }
    let failed = findings.iter().filter(|f| f.failures != 0).count();
    let _ = write!(out, "{} checks, {} failed", findings.len(), failed);
    out
}
