//! One ETL step (a warehouse table) run incrementally: chunks of new realtime rows after the
//! step's watermark, each extracted, transformed and loaded in one warehouse transaction that
//! also moves the watermark. A failure rolls the chunk back; the next run redoes it.

use std::time::{Duration, Instant};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::max;
use datafusion::arrow::datatypes::Int64Type;
use tokio_postgres::Client;
use tracing::info;

use crate::dimensions::{Dimension, CUSTOMERS, PRODUCTS};
use crate::error::EtlError;
use crate::extract::{self, Source};
use crate::facts::{Fact, CARTS, SALES, VIEWS};
use crate::load::{advance_watermark, lock_watermark};
use crate::runs::grouped;

/// What a step (or a chunk of it) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Rows that came out of the transform.
    pub transformed: usize,
    /// Rows written (new facts; new or completed dimension versions).
    pub loaded: usize,
    /// Rows skipped: facts loaded before, catalogue versions that change nothing.
    pub skipped: usize,
}

/// Totals of a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Rows read from the realtime database.
    pub extracted: usize,
    /// What the transforms and loads did with them.
    pub loaded: Loaded,
    /// How long the step took.
    pub duration: Duration,
}

/// The ETL steps, in the order they run: dimensions before the facts that point at them.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Dimension(&'static Dimension),
    Fact(&'static Fact),
}

/// Every step, in order.
pub const STEPS: [Step; 5] = [
    Step::Dimension(&PRODUCTS),
    Step::Dimension(&CUSTOMERS),
    Step::Fact(&SALES),
    Step::Fact(&VIEWS),
    Step::Fact(&CARTS),
];

impl Step {
    /// The warehouse table it fills (also the step's name in batch_run_steps).
    pub fn name(self) -> &'static str {
        match self {
            Step::Dimension(d) => d.table,
            Step::Fact(f) => f.table,
        }
    }

    /// The realtime table it reads.
    pub fn source(self) -> &'static Source {
        match self {
            Step::Dimension(d) => &d.source,
            Step::Fact(f) => &f.source,
        }
    }

    /// Runs the step over the source rows up to `upto` (see [`extract::settled`]), at most
    /// `chunk` rows per transaction.
    pub async fn run(
        self,
        realtime: &Client,
        warehouse: &mut Client,
        upto: i64,
        chunk: usize,
    ) -> Result<Report, EtlError> {
        let started = Instant::now();
        let mut report = Report::default();
        loop {
            let tx = warehouse.transaction().await?;
            let after = lock_watermark(&tx, self.source().table).await?;
            if after >= upto {
                break;
            }
            let query = self.source().query(after, upto, chunk);
            let stream = realtime.copy_out(&extract::copy_of(&query)).await?;
            let batch = extract::read(stream, self.source().schema()).await?;
            let Some(last) = last_seq(&batch) else {
                break;
            };
            let loaded = match self {
                Step::Dimension(d) => d.apply(&tx, &batch).await?,
                Step::Fact(f) => f.apply(&tx, &batch).await?,
            };
            advance_watermark(&tx, self.source().table, last).await?;
            tx.commit().await?;
            report.extracted += batch.num_rows();
            report.loaded.transformed += loaded.transformed;
            report.loaded.loaded += loaded.loaded;
            report.loaded.skipped += loaded.skipped;
            if batch.num_rows() == chunk {
                info!(
                    "  ... {} {} so far",
                    grouped(report.extracted),
                    self.source().rows
                );
            }
        }
        report.duration = started.elapsed();
        Ok(report)
    }
}

/// The `ingest_seq` of the batch's last row (the extract orders by it).
fn last_seq(batch: &RecordBatch) -> Option<i64> {
    let column = batch.column_by_name("ingest_seq")?;
    max(column.as_primitive::<Int64Type>())
}
