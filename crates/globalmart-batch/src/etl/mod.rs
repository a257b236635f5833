//! The warehouse ETL (docs/ARCHITECTURE.md, "Small plans over Arrow"). Every warehouse table it
//! fills is one module implementing [`Table`]: `extract` (its realtime rows after the
//! watermark, into Arrow), `transform` (DataFusion plans, with the warehouse keys they need)
//! and `load` (COPY into staging, set-based merge). The runner here is the same for every
//! table: chunks of at most `chunk_rows`, each one warehouse transaction that also moves the
//! table's watermark, so a failure rolls the chunk back and the next run redoes it.
//!
//! Dimensions come first (`dim_products`, `dim_customers`: each declares a `scd2::Dimension`,
//! loaded by the one SCD2 rule), then the facts that point at them (`fact_sales`,
//! `fact_product_views`, `fact_cart_events`: each declares a `facts::Fact`), side by side, each
//! on a pair of connections of its own: the sales on the first, the views and the cart events
//! on their [`Lanes`] (docs/ARCHITECTURE.md, "Lanes").

mod dim_customers;
mod dim_products;
mod extract;
mod fact_cart_events;
mod fact_product_views;
mod fact_sales;
mod facts;
mod load;
mod scd2;
mod table;
mod totals;
mod transform;

use std::time::{Duration, Instant};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::max;
use datafusion::arrow::datatypes::Int64Type;
use tokio_postgres::{Client, Transaction};
use tracing::{debug, info};

pub(crate) use extract::{field, pg_type, rows, schema};
pub(crate) use load::{column_list, stage};
pub(crate) use transform::plan;

use crate::error::EtlError;
use crate::figures::{grouped, human, Figures};
use crate::history;
use dim_customers::DimCustomers;
use dim_products::DimProducts;
use fact_cart_events::FactCartEvents;
use fact_product_views::FactProductViews;
use fact_sales::FactSales;
use facts::FactTable;
use load::{advance_watermark, lock_watermark, watermark};
use scd2::DimensionTable;
use table::Table;

/// How the ETL reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Source rows per warehouse transaction.
    pub chunk_rows: usize,
    /// How long to wait for the realtime writers' transactions in flight.
    pub lock_timeout: Duration,
}

/// A pair of connections a fact table loads on, beside the first pair (docs/ARCHITECTURE.md,
/// "Lanes").
#[derive(Debug)]
pub struct Lane<'a> {
    /// A realtime connection of its own: an extract sets session values, then reads them.
    pub realtime: &'a Client,
    /// A warehouse connection of its own, for its chunks' transactions.
    pub warehouse: &'a mut Client,
}

/// The lanes of the views and of the cart events (the sales load on the first pair).
pub type Lanes<'a> = [Lane<'a>; 2];

/// Runs the whole ETL as run `etl`; returns each table's figures, in order.
pub async fn run(
    realtime: &mut Client,
    warehouse: &mut Client,
    lanes: Lanes<'_>,
    settings: &Settings,
) -> Result<Vec<(&'static str, Figures)>, EtlError> {
    history::recorded(warehouse, "etl", async |warehouse, run| {
        tables(realtime, warehouse, lanes, settings, run).await
    })
    .await
}

/// Fills every table as part of run `run`: the dimensions in order, then the facts side by
/// side; returns each table's figures in the order above.
pub async fn tables(
    realtime: &mut Client,
    warehouse: &mut Client,
    lanes: Lanes<'_>,
    settings: &Settings,
    run: i64,
) -> Result<Vec<(&'static str, Figures)>, EtlError> {
    type Products = DimensionTable<DimProducts>;
    type Customers = DimensionTable<DimCustomers>;
    type Sales = FactTable<FactSales>;
    type Views = FactTable<FactProductViews>;
    type Carts = FactTable<FactCartEvents>;
    let sources = [
        &Products::SOURCE,
        &Customers::SOURCE,
        &Sales::SOURCE,
        &Views::SOURCE,
        &Carts::SOURCE,
    ];
    let [products, customers, sales, views, carts] =
        extract::settled(realtime, sources, settings.lock_timeout).await?;
    let realtime = &*realtime;
    let products = step::<Products>(realtime, warehouse, run, products, settings).await?;
    let customers = step::<Customers>(realtime, warehouse, run, customers, settings).await?;
    let [views_lane, carts_lane] = lanes;
    let (sales, views, carts) = futures::try_join!(
        step::<Sales>(realtime, warehouse, run, sales, settings),
        step::<Views>(
            views_lane.realtime,
            views_lane.warehouse,
            run,
            views,
            settings
        ),
        step::<Carts>(
            carts_lane.realtime,
            carts_lane.warehouse,
            run,
            carts,
            settings
        ),
    )?;
    Ok(vec![products, customers, sales, views, carts])
}

/// Fills table `T` with its source rows up to `upto`, recorded as a step of `run`, with the
/// guide's progress lines.
async fn step<T: Table>(
    realtime: &Client,
    warehouse: &mut Client,
    run: i64,
    upto: i64,
    settings: &Settings,
) -> Result<(&'static str, Figures), EtlError> {
    info!("[ETL] Processing {}...", T::NAME);
    history::step_started(warehouse, run, T::NAME).await?;
    let outcome = chunks::<T>(realtime, warehouse, upto, settings.chunk_rows).await;
    history::step_finished(warehouse, run, T::NAME, outcome.as_ref()).await?;
    let figures = outcome?;
    info!(
        "  Extracted: {} {}",
        grouped(figures.extracted),
        T::SOURCE.rows
    );
    info!("  Transformed: {} records", grouped(figures.transformed));
    let (loaded, skipped) = T::COUNTED_AS;
    info!(
        "  Loaded: {} {loaded} ({} {skipped}) in {}",
        grouped(figures.loaded),
        grouped(figures.skipped),
        human(figures.duration)
    );
    Ok((T::NAME, figures))
}

/// The source rows up to `upto` through `T`'s extract, prepare, transform and load, at most
/// `chunk` rows per warehouse transaction, each moving the watermark. The rows are read and
/// prepared before the chunk's transaction locks the watermark; if another run moved it
/// meanwhile (it loaded them), the chunk starts again from there.
async fn chunks<T: Table>(
    realtime: &Client,
    warehouse: &mut Client,
    upto: i64,
    chunk: usize,
) -> Result<Figures, EtlError> {
    let started = Instant::now();
    let mut figures = Figures::default();
    loop {
        let after = watermark(warehouse, T::SOURCE.table).await?;
        if after >= upto {
            break;
        }
        let mut steps = Steps::default();
        let extracted = T::extract(realtime, after, upto, chunk).await?;
        let Some(last) = last_seq(&extracted) else {
            break;
        };
        steps.done("extract");
        T::prepare(warehouse, &extracted).await?;
        steps.done("prepare");
        let tx = transaction(warehouse).await?;
        if lock_watermark(&tx, T::SOURCE.table).await? != after {
            tx.rollback().await?;
            continue;
        }
        let transformed = T::transform(&tx, &extracted).await?;
        steps.done("transform");
        let loaded = T::load(&tx, &extracted, &transformed).await?;
        steps.done("load");
        advance_watermark(&tx, T::SOURCE.table, last).await?;
        tx.commit().await?;
        steps.done("commit");
        debug!(
            table = T::NAME,
            rows = extracted.num_rows(),
            "chunk: {steps}"
        );
        // Told to the realtime database after the commit, so it is never ahead of what the
        // warehouse holds: raw retention drops no row past it (docs/ARCHITECTURE.md, "Raw
        // retention"). A report lost to a crash right here is made good by the next chunk.
        report_loaded(realtime, T::SOURCE.table, last).await?;
        figures.add(Figures {
            extracted: extracted.num_rows(),
            transformed: transformed.num_rows(),
            loaded: loaded.rows,
            skipped: loaded.skipped,
            duration: Duration::ZERO,
        });
        if extracted.num_rows() == chunk {
            info!(
                "  ... {} {} so far",
                grouped(figures.extracted),
                T::SOURCE.rows
            );
        }
    }
    figures.duration = started.elapsed();
    Ok(figures)
}

/// How long each step of a chunk took, for the debug log: where a slow run's time went.
struct Steps {
    since: Instant,
    taken: Vec<(&'static str, Duration)>,
}

impl Default for Steps {
    fn default() -> Steps {
        Steps {
            since: Instant::now(),
            taken: Vec::new(),
        }
    }
}

impl Steps {
    /// Step `name` ended now.
    fn done(&mut self, name: &'static str) {
        let now = Instant::now();
        self.taken.push((name, now - self.since));
        self.since = now;
    }
}

impl std::fmt::Display for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, took)) in self.taken.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{name} {}", human(*took))?;
        }
        Ok(())
    }
}

/// What the batch's warehouse transactions run with (docs/ARCHITECTURE.md, "Running totals"):
/// room to sort a catch-up chunk's orders per period in memory (200,000 sale lines sorted on
/// disk with the default 4 MB). JIT compilation is off on every connection of ours
/// (`globalmart_core::db::SESSION`).
const SETTINGS: &str = "SET LOCAL work_mem = '64MB'";

/// A warehouse transaction of the batch (an ETL chunk, an analytics job), with [`SETTINGS`].
pub(crate) async fn transaction(warehouse: &mut Client) -> Result<Transaction<'_>, EtlError> {
    let tx = warehouse.transaction().await?;
    tx.batch_execute(SETTINGS).await?;
    Ok(tx)
}

/// Records in the realtime database that the warehouse holds `table`'s rows up to `seq`.
async fn report_loaded(realtime: &Client, table: &str, seq: i64) -> Result<(), EtlError> {
    realtime
        .execute(
            "INSERT INTO warehouse_loaded (source_table, last_ingest_seq) VALUES ($1, $2)
             ON CONFLICT (source_table) DO UPDATE SET updated_at = now(),
                 last_ingest_seq = greatest(warehouse_loaded.last_ingest_seq, excluded.last_ingest_seq)",
            &[&table, &seq],
        )
        .await?;
    Ok(())
}

/// The `ingest_seq` of the batch's last row (the extract orders by it).
fn last_seq(rows: &RecordBatch) -> Option<i64> {
    let column = rows.column_by_name("ingest_seq")?;
    max(column.as_primitive::<Int64Type>())
}
