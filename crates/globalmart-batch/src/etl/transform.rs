//! Transform: one DataFusion SQL plan over named Arrow batches.

use std::sync::Arc;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

use crate::error::EtlError;

/// Runs `sql` over `tables` (each registered under its name) and returns the result as one
/// batch.
pub async fn plan(tables: &[(&str, &RecordBatch)], sql: &str) -> Result<RecordBatch, EtlError> {
    let ctx = SessionContext::new();
    for (name, batch) in tables {
        ctx.register_batch(*name, (*batch).clone())?;
    }
    let frame = ctx.sql(sql).await?;
    let planned = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    // The batches' own schema: an aggregate may widen a decimal's precision beyond what the
    // plan announced (a sum of sums), and the values are what gets loaded.
    let schema = batches.first().map_or(planned, RecordBatch::schema);
    Ok(concat_batches(&schema, &batches)?)
}
