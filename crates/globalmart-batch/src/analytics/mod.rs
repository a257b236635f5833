//! Analytics over the warehouse facts, one snapshot per analysis date: product performance,
//! RFM (with its score written back to the customer), customer segments and sales trends. The
//! facts up to the end of the analysis date are read once into Arrow; each job is one
//! DataFusion plan over them whose rows replace that date's snapshot in one transaction.

mod products;
mod rfm;
mod segments;
mod trends;

use std::time::Instant;

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use tokio_postgres::{Client, Transaction};
use tracing::info;

use crate::error::EtlError;
use crate::etl::{column_list, field, rows, schema, stage};
use crate::figures::{grouped, Figures};
use crate::history;

/// The facts the jobs read, with natural keys: every sale line (its product's category as
/// of the sale), product view and cart add up to the end of the analysis date, and the current
/// products.
#[derive(Debug)]
pub struct Facts {
    sales: RecordBatch,
    views: RecordBatch,
    cart_adds: RecordBatch,
    products: RecordBatch,
    /// The analysis date as days since 1970-01-01.
    day: i32,
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
) -> Result<Vec<(&'static str, Figures)>, EtlError> {
    history::recorded(warehouse, "analytics", async |warehouse, run| {
        jobs(warehouse, date, run).await
    })
    .await
}

/// Runs every job for `date` as part of run `run`.
pub async fn jobs(
    warehouse: &mut Client,
    date: NaiveDate,
    run: i64,
) -> Result<Vec<(&'static str, Figures)>, EtlError> {
    let facts = Facts::read(warehouse, date).await?;
    let mut done = Vec::with_capacity(Job::ALL.len());
    for job in Job::ALL {
        info!("[Analytics] Running {}_job...", job.table());
        history::step_started(warehouse, run, job.table()).await?;
        let started = Instant::now();
        let outcome = async {
            let tx = warehouse.transaction().await?;
            let figures = match job {
                Job::ProductPerformance => products::snapshot(&tx, &facts, date).await?,
                Job::Rfm => rfm::snapshot(&tx, &facts, date).await?,
                Job::CustomerSegments => segments::snapshot(&tx, date).await?,
                Job::SalesTrends => trends::snapshot(&tx, &facts, date).await?,
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

impl Facts {
    /// Reads the facts up to the end of `date`.
    async fn read(warehouse: &Client, date: NaiveDate) -> Result<Facts, EtlError> {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let day = i32::try_from((date - epoch).num_days()).unwrap_or(i32::MAX);
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
        let products = rows(
            warehouse,
            PRODUCTS,
            &[],
            schema(vec![
                text("product_id"),
                text("product_name"),
                text("category"),
            ]),
        )
        .await?;
        Ok(Facts {
            sales,
            views,
            cart_adds,
            products,
            day,
        })
    }
}

/// Replaces the snapshot of `date` in `table` with `rows` (columns named as the table's,
/// without analysis_date), the output of a plan that read `read` rows.
async fn replace(
    tx: &Transaction<'_>,
    table: &str,
    date: NaiveDate,
    rows: &RecordBatch,
    read: usize,
) -> Result<Figures, EtlError> {
    let columns = column_list(rows);
    // The table and column names are this module's own.
    let written = stage_and_insert(
        tx,
        rows,
        &format!("DELETE FROM {table} WHERE analysis_date = $1"),
        &format!(
            "INSERT INTO {table} (analysis_date, {columns}) SELECT $1, {columns} FROM snapshot"
        ),
        date,
    )
    .await?;
    Ok(Figures {
        extracted: read,
        transformed: rows.num_rows(),
        loaded: written,
        ..Figures::default()
    })
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
    let written = tx.execute(insert, &[&date]).await?;
    Ok(usize::try_from(written).unwrap_or(usize::MAX))
}
