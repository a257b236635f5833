//! Analytics over the warehouse, one snapshot per analysis date: product performance, RFM (with
//! its score written back to the customer), customer segments and sales trends. Their inputs,
//! totals per product, customer and period, are read once into Arrow: the running totals the
//! ETL keeps (`etl/totals.rs`), whose size follows the shop and not its history (the RFM reads
//! its customers' itself, on a rerun only those whose score can move: `quintiles.rs`), or the
//! same recomputed from the facts up to the end of the date (`--recompute`, or a date with later
//! facts). Each job is one DataFusion plan over them; that date's snapshot is made equal to its
//! rows in one transaction, writing only the rows that differ.

mod products;
mod quintiles;
mod rfm;
mod segments;
mod snapshot;
mod trends;

use std::time::Instant;

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use tokio_postgres::{Client, Transaction};
use tracing::info;

use crate::error::EtlError;
use crate::etl::{field, plan, rows, schema, stage, transaction};
use crate::figures::{grouped, human, Figures};
use crate::history;
use snapshot::{lock_snapshot, replace, Extent};

/// What the jobs read: per current product its totals, per customer with orders their
/// totals, per period and category its sales; from the running totals the ETL keeps, or
/// recomputed from the facts (`--recompute`, and any date with facts after it).
#[derive(Debug)]
pub struct Inputs {
    /// The current products: product_id, product_name, category.
    products: RecordBatch,
    /// Per product: views, viewers, cart_adds, orders, units, revenue, buyers (viewers who
    /// bought it).
    product_totals: RecordBatch,
    /// Per customer with an order: last_day (days since 1970-01-01), last_order (µs),
    /// frequency_count (orders), monetary_value; None from the running totals, which the RFM
    /// reads itself (a rerun reads only the customers whose score can change).
    customers: Option<RecordBatch>,
    /// Per period (daily, weekly, monthly, quarterly) and category (and 'All'): period_start
    /// (days since 1970-01-01), orders, revenue, units, customers.
    periods: RecordBatch,
    /// The analysis date as days since 1970-01-01.
    day: i32,
    /// The rows read to build these.
    read: usize,
}

/// Where the inputs of an analysis come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The running totals when no fact is later than the analysis date (they are the totals
    /// up to now), else the facts.
    Totals,
    /// The facts, always: an audit of the running totals.
    Recompute,
}

/// One analytics job: its table and what it counted.
#[derive(Debug, Clone, Copy)]
enum Job {
    ProductPerformance,
    Rfm,
    CustomerSegments,
    SalesTrends,
}

impl Job {
    const ALL: [Job; 4] = [
        Job::ProductPerformance,
        Job::Rfm,
        Job::CustomerSegments,
        Job::SalesTrends,
    ];

    fn table(self) -> &'static str {
        match self {
            Job::ProductPerformance => "product_performance",
            Job::Rfm => "rfm_analysis",
            Job::CustomerSegments => "customer_segments",
            Job::SalesTrends => "sales_trends",
        }
    }

    /// What one row of its output is, for "Analyzed 1,000 products".
    fn rows(self) -> &'static str {
        match self {
            Job::ProductPerformance => "products",
            Job::Rfm => "customers",
            Job::CustomerSegments => "segments",
            Job::SalesTrends => "period and category rows",
        }
    }
}

/// Runs every job for `date` as run `analytics`; returns each job's figures, in order.
pub async fn run(
    warehouse: &mut Client,
    date: NaiveDate,
    basis: Basis,
) -> Result<Vec<(&'static str, Figures)>, EtlError> {
    history::recorded(warehouse, "analytics", async |warehouse, run| {
        jobs(warehouse, date, basis, run).await
    })
    .await
}

/// Runs every job for `date` as part of run `run`.
pub async fn jobs(
    warehouse: &mut Client,
    date: NaiveDate,
    basis: Basis,
    run: i64,
) -> Result<Vec<(&'static str, Figures)>, EtlError> {
    let started = Instant::now();
    let from_facts = basis == Basis::Recompute || facts_after(warehouse, date).await?;
    let inputs = if from_facts {
        if basis == Basis::Totals {
            info!(
                "[Analytics] facts later than {date} are loaded: {date} is computed from the facts"
            );
        }
        Inputs::recompute(warehouse, date).await?
    } else {
        Inputs::totals(warehouse, date).await?
    };
    info!(
        "[Analytics] Read {} rows of {} in {}",
        grouped(inputs.read),
        if from_facts {
            "facts"
        } else {
            "running totals"
        },
        human(started.elapsed())
    );
    let mut done = Vec::with_capacity(Job::ALL.len());
    for job in Job::ALL {
        info!("[Analytics] Running {}_job...", job.table());
        history::step_started(warehouse, run, job.table()).await?;
        let started = Instant::now();
        let outcome = async {
            let tx = transaction(warehouse).await?;
            let figures = match job {
                Job::ProductPerformance => products::snapshot(&tx, &inputs, date).await?,
                Job::Rfm => rfm::snapshot(&tx, &inputs, date).await?,
                Job::CustomerSegments => segments::snapshot(&tx, date).await?,
                Job::SalesTrends => trends::snapshot(&tx, &inputs, date).await?,
            };
            tx.commit().await?;
            Ok(Figures {
                duration: started.elapsed(),
                ..figures
            })
        }
        .await;
        history::step_finished(warehouse, run, job.table(), outcome.as_ref()).await?;
        let figures = outcome?;
        info!("  Analyzed {} {}", grouped(figures.loaded), job.rows());
        info!("  Updated {} table", job.table());
        done.push((job.table(), figures));
    }
    Ok(done)
}

/// Whether any fact is later than the end of `date` (the running totals would count it).
const LATER: &str = "
    SELECT EXISTS (SELECT 1 FROM fact_sales WHERE transaction_timestamp >= $1::date + 1)
        OR EXISTS (SELECT 1 FROM fact_product_views WHERE event_timestamp >= $1::date + 1)
        OR EXISTS (SELECT 1 FROM fact_cart_events WHERE event_timestamp >= $1::date + 1)";

async fn facts_after(warehouse: &Client, date: NaiveDate) -> Result<bool, EtlError> {
    Ok(warehouse.query_one(LATER, &[&date]).await?.get(0))
}

/// Every sale line up to the end of the analysis date ($until), with its customer, its
/// product and the product's category as of the sale.
const SALES: &str = "
    SELECT f.transaction_id::text, c.user_id, p.product_id, coalesce(p.category, ''),
        f.quantity, f.total_amount,
        (f.transaction_timestamp AT TIME ZONE 'UTC')::date - DATE '1970-01-01',
        (extract(epoch FROM f.transaction_timestamp) * 1000000)::bigint
    FROM fact_sales f JOIN dim_customers c USING (customer_id)
        JOIN dim_products p USING (product_id_pk)
    WHERE f.transaction_timestamp < current_setting('globalmart.until')::date + 1";

/// Every product view up to the end of the analysis date.
const VIEWS: &str = "
    SELECT c.user_id, p.product_id
    FROM fact_product_views f JOIN dim_customers c USING (customer_id)
        JOIN dim_products p USING (product_id_pk)
    WHERE f.event_type = 'view'
        AND f.event_timestamp < current_setting('globalmart.until')::date + 1";

/// Every cart add up to the end of the analysis date.
const CART_ADDS: &str = "
    SELECT p.product_id FROM fact_cart_events f JOIN dim_products p USING (product_id_pk)
    WHERE f.event_type = 'add_to_cart'
        AND f.event_timestamp < current_setting('globalmart.until')::date + 1";

const PRODUCTS: &str =
    "SELECT product_id, product_name, category FROM dim_products WHERE is_current";

/// The running totals of the products (`agg_product_totals`).
const PRODUCT_TOTALS: &str = "
    SELECT product_id, views, viewers, cart_adds, orders, units, revenue, buyers
    FROM agg_product_totals";

/// The running totals of the customers with orders (`agg_customer_totals`) where
/// `condition` holds, as [`customers_schema`].
fn customer_totals(condition: &str) -> String {
    format!(
        "SELECT user_id, (last_order AT TIME ZONE 'UTC')::date - DATE '1970-01-01',
             (extract(epoch FROM last_order) * 1000000)::bigint, orders, spent
         FROM agg_customer_totals WHERE {condition}"
    )
}

/// The running totals of the periods (`agg_sales_periods`).
const PERIOD_TOTALS: &str = "
    SELECT period_type, period_start - DATE '1970-01-01', category, orders, revenue, units,
        customers
    FROM agg_sales_periods";

/// Per product, from the facts: the columns of `agg_product_totals`.
const RECOMPUTE_PRODUCTS: &str = "
WITH viewed AS (
    SELECT product_id, count(*) AS views, count(DISTINCT user_id) AS viewers
    FROM views GROUP BY product_id
), added AS (
    SELECT product_id, count(*) AS cart_adds FROM cart_adds GROUP BY product_id
), sold AS (
    SELECT product_id, count(DISTINCT transaction_id) AS orders, sum(quantity) AS units,
        sum(total_amount) AS revenue
    FROM sales GROUP BY product_id
), converted AS (
    SELECT v.product_id, count(*) AS buyers
    FROM (SELECT DISTINCT user_id, product_id FROM views) v
    JOIN (SELECT DISTINCT user_id, product_id FROM sales) s
        ON s.user_id = v.user_id AND s.product_id = v.product_id
    GROUP BY v.product_id
), keys AS (
    SELECT product_id FROM viewed UNION SELECT product_id FROM added
    UNION SELECT product_id FROM sold
)
SELECT k.product_id, CAST(coalesce(v.views, 0) AS BIGINT) AS views,
    CAST(coalesce(v.viewers, 0) AS BIGINT) AS viewers,
    CAST(coalesce(a.cart_adds, 0) AS BIGINT) AS cart_adds,
    CAST(coalesce(s.orders, 0) AS BIGINT) AS orders,
    CAST(coalesce(s.units, 0) AS BIGINT) AS units,
    CAST(coalesce(s.revenue, 0) AS DECIMAL(18, 2)) AS revenue,
    CAST(coalesce(c.buyers, 0) AS BIGINT) AS buyers
FROM keys k
LEFT JOIN viewed v ON v.product_id = k.product_id
LEFT JOIN added a ON a.product_id = k.product_id
LEFT JOIN sold s ON s.product_id = k.product_id
LEFT JOIN converted c ON c.product_id = k.product_id";

/// Per customer with an order, from the facts.
const RECOMPUTE_CUSTOMERS: &str = "
SELECT user_id, max(day) AS last_day, max(at_us) AS last_order,
    CAST(count(DISTINCT transaction_id) AS INT) AS frequency_count,
    CAST(sum(total_amount) AS DECIMAL(16, 2)) AS monetary_value
FROM sales GROUP BY user_id";

/// Per period and category (and 'All'), from the facts.
const RECOMPUTE_PERIODS: &str = "
WITH lines AS (
    SELECT transaction_id, user_id, category, quantity, total_amount,
        CAST(arrow_cast(day, 'Date32') AS DATE) AS day
    FROM sales
), periods AS (
    SELECT 'daily' AS period_type, day AS period_start, * FROM lines
    UNION ALL
    SELECT 'weekly', CAST(date_trunc('week', day) AS DATE), * FROM lines
    UNION ALL
    SELECT 'monthly', CAST(date_trunc('month', day) AS DATE), * FROM lines
    UNION ALL
    SELECT 'quarterly', CAST(date_trunc('quarter', day) AS DATE), * FROM lines
), both AS (
    SELECT period_type, period_start, category, transaction_id, user_id, quantity, total_amount
    FROM periods
    UNION ALL
    SELECT period_type, period_start, 'All', transaction_id, user_id, quantity, total_amount
    FROM periods
)
SELECT period_type, arrow_cast(period_start, 'Int32') AS period_start, category,
    CAST(count(DISTINCT transaction_id) AS BIGINT) AS orders,
    CAST(sum(total_amount) AS DECIMAL(18, 2)) AS revenue,
    CAST(sum(quantity) AS BIGINT) AS units,
    CAST(count(DISTINCT user_id) AS BIGINT) AS customers
FROM both GROUP BY period_type, period_start, category";

impl Inputs {
    /// The running totals (the state after the latest ETL chunk).
    async fn totals(warehouse: &Client, date: NaiveDate) -> Result<Inputs, EtlError> {
        let products = products(warehouse).await?;
        let product_totals = rows(warehouse, PRODUCT_TOTALS, &[], product_totals_schema()).await?;
        let periods = rows(warehouse, PERIOD_TOTALS, &[], periods_schema()).await?;
        let read = products.num_rows() + product_totals.num_rows() + periods.num_rows();
        Ok(Inputs {
            products,
            product_totals,
            customers: None,
            periods,
            day: days(date),
            read,
        })
    }

    /// The same from the facts up to the end of `date`.
    async fn recompute(warehouse: &Client, date: NaiveDate) -> Result<Inputs, EtlError> {
        let until = [("until", date.to_string())];
        let text = |name: &str| field(name, DataType::Utf8);
        let sales = rows(
            warehouse,
            SALES,
            &until,
            schema(vec![
                text("transaction_id"),
                text("user_id"),
                text("product_id"),
                text("category"),
                field("quantity", DataType::Int32),
                field("total_amount", DataType::Decimal128(14, 2)),
                field("day", DataType::Int32),
                field("at_us", DataType::Int64),
            ]),
        )
        .await?;
        let views = rows(
            warehouse,
            VIEWS,
            &until,
            schema(vec![text("user_id"), text("product_id")]),
        )
        .await?;
        let cart_adds = rows(
            warehouse,
            CART_ADDS,
            &until,
            schema(vec![text("product_id")]),
        )
        .await?;
        let products = products(warehouse).await?;
        let read = sales.num_rows() + views.num_rows() + cart_adds.num_rows() + products.num_rows();
        let facts = [
            ("sales", &sales),
            ("views", &views),
            ("cart_adds", &cart_adds),
        ];
        Ok(Inputs {
            products,
            product_totals: plan(&facts, RECOMPUTE_PRODUCTS).await?,
            customers: Some(plan(&facts, RECOMPUTE_CUSTOMERS).await?),
            periods: plan(&facts, RECOMPUTE_PERIODS).await?,
            day: days(date),
            read,
        })
    }
}

async fn products(warehouse: &Client) -> Result<RecordBatch, EtlError> {
    let text = |name: &str| field(name, DataType::Utf8);
    let fields = vec![text("product_id"), text("product_name"), text("category")];
    rows(warehouse, PRODUCTS, &[], schema(fields)).await
}

fn product_totals_schema() -> SchemaRef {
    let long = |name: &str| field(name, DataType::Int64);
    schema(vec![
        field("product_id", DataType::Utf8),
        long("views"),
        long("viewers"),
        long("cart_adds"),
        long("orders"),
        long("units"),
        field("revenue", DataType::Decimal128(18, 2)),
        long("buyers"),
    ])
}

fn customers_schema() -> SchemaRef {
    schema(vec![
        field("user_id", DataType::Utf8),
        field("last_day", DataType::Int32),
        field("last_order", DataType::Int64),
        field("frequency_count", DataType::Int32),
        field("monetary_value", DataType::Decimal128(16, 2)),
    ])
}

fn periods_schema() -> SchemaRef {
    let long = |name: &str| field(name, DataType::Int64);
    schema(vec![
        field("period_type", DataType::Utf8),
        field("period_start", DataType::Int32),
        field("category", DataType::Utf8),
        long("orders"),
        field("revenue", DataType::Decimal128(18, 2)),
        long("units"),
        long("customers"),
    ])
}

/// `date` as days since 1970-01-01.
fn days(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    i32::try_from((date - epoch).num_days()).unwrap_or(i32::MAX)
}

/// A row count PostgreSQL reported, as usize.
fn count(rows: u64) -> usize {
    usize::try_from(rows).unwrap_or(usize::MAX)
}

/// Stages `rows` as table `snapshot`, runs `delete` then `insert` (both taking the date as
/// $1) and returns how many rows `insert` wrote.
async fn stage_and_insert(
    tx: &Transaction<'_>,
    rows: &RecordBatch,
    delete: &str,
    insert: &str,
    date: NaiveDate,
) -> Result<usize, EtlError> {
    stage(tx, "snapshot", rows).await?;
    tx.execute(delete, &[&date]).await?;
    Ok(count(tx.execute(insert, &[&date]).await?))
}
