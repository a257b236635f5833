//! What can make an ETL step fail; each message says what failed and with what.

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use globalmart_core::db::describe;

/// A failed ETL step. The step's transaction is rolled back; the next run redoes it.
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    #[error("{}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("DataFusion: {0}")]
    DataFusion(#[from] DataFusionError),
    #[error("Arrow: {0}")]
    Arrow(#[from] ArrowError),
    #[error("no text column {0} in the rows read")]
    MissingColumn(&'static str),
    #[error("no PostgreSQL mapping for Arrow type {0}")]
    UnsupportedType(DataType),
    #[error(
        "could not take the ingest lock of the realtime database ({0}): a writer transaction \
         has been open longer than the lock timeout"
    )]
    IngestLock(String),
    #[error(
        "{step}: {extracted} rows extracted but {transformed} transformed; every row must match \
         exactly one dimension version (check the dimensions' validity ranges)"
    )]
    Unmatched {
        step: &'static str,
        extracted: usize,
        transformed: usize,
    },
}
