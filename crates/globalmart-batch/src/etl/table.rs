//! The verbs every warehouse table has: `extract`, `prepare`, `transform`, `load` (see
//! `etl/mod.rs`).

use datafusion::arrow::array::RecordBatch;
use tokio_postgres::{Client, Transaction};

use super::extract::Source;
use crate::error::EtlError;

/// A warehouse table filled from one realtime table, chunk by chunk.
pub trait Table {
    /// The warehouse table (also its step's name in batch_run_steps).
    const NAME: &'static str;
    /// The realtime table it reads, each column declared once.
    const SOURCE: Source;
    /// What its loaded and skipped rows are, for the progress line.
    const COUNTED_AS: (&'static str, &'static str);

    /// The source rows after `after`, up to `upto`, at most `limit`, in ingest order.
    async fn extract(
        realtime: &Client,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<RecordBatch, EtlError> {
        Self::SOURCE.read(realtime, after, upto, limit).await
    }

    /// Writes, in a transaction of its own before the chunk's, what the chunk's rows need
    /// that other tables' chunks may write too (nothing by default; see `facts.rs`).
    async fn prepare(_warehouse: &mut Client, _extracted: &RecordBatch) -> Result<(), EtlError> {
        Ok(())
    }

    /// The rows to load, from the extracted ones.
    async fn transform(
        tx: &Transaction<'_>,
        extracted: &RecordBatch,
    ) -> Result<RecordBatch, EtlError>;

    /// Writes the transformed rows; returns what it wrote and skipped.
    async fn load(
        tx: &Transaction<'_>,
        extracted: &RecordBatch,
        transformed: &RecordBatch,
    ) -> Result<Loaded, EtlError>;
}

/// What a load wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Rows written (new facts; new or completed dimension versions).
    pub rows: usize,
    /// Rows skipped: facts loaded before, catalogue versions that change nothing.
    pub skipped: usize,
}
