//! Extract: realtime rows after a watermark, read with binary COPY straight into one Arrow
//! batch, and the highest `ingest_seq` that is safe to read up to.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{pin_mut, TryStreamExt};
use globalmart_core::db::INGEST_LOCK;
use rust_decimal::Decimal;
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, CopyOutStream};

use crate::error::EtlError;

/// The Arrow type of a `timestamptz` column.
pub const TIMESTAMP: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

/// A column to read: its name and Arrow type (text, int4, int8, numeric(p, s), timestamptz or
/// bool on the PostgreSQL side).
pub fn field(name: &str, data_type: DataType) -> Field {
    Field::new(name, data_type, true)
}

/// The highest `ingest_seq` of each table below which every row is committed: read while the
/// ingest lock is held exclusively, when no writer is in the middle of a transaction (see
/// [`INGEST_LOCK`]). Waits at most `lock_timeout` for the writers' transactions in flight.
pub async fn settled(
    client: &mut Client,
    tables: &[&str],
    lock_timeout: std::time::Duration,
) -> Result<Vec<i64>, EtlError> {
    let tx = client.transaction().await?;
    // SET LOCAL takes no parameters; the value is our own integer.
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        lock_timeout.as_millis()
    ))
    .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INGEST_LOCK])
        .await
        .map_err(|e| EtlError::IngestLock(globalmart_core::db::describe(&e)))?;
    let mut highest = Vec::with_capacity(tables.len());
    for table in tables {
        // Table names are our own constants, never input.
        let row = tx
            .query_one(
                &format!("SELECT coalesce(max(ingest_seq), 0) FROM {table}"),
                &[],
            )
            .await?;
        highest.push(row.get(0));
    }
    tx.commit().await?;
    Ok(highest)
}

/// The COPY statement that sends the rows of `query` in binary.
pub fn copy_of(query: &str) -> String {
    format!("COPY ({query}) TO STDOUT (FORMAT binary)")
}

/// Reads the rows of a binary COPY (started with [`copy_of`]; its columns match `schema` in
/// order) into one Arrow batch.
pub async fn read(stream: CopyOutStream, schema: SchemaRef) -> Result<RecordBatch, EtlError> {
    let types: Vec<Type> = schema
        .fields()
        .iter()
        .map(|f| pg_type(f.data_type()))
        .collect::<Result<_, _>>()?;
    let mut columns: Vec<Column> = schema
        .fields()
        .iter()
        .map(|f| Column::new(f.data_type()))
        .collect::<Result<_, _>>()?;
    let rows = BinaryCopyOutStream::new(stream, &types);
    pin_mut!(rows);
    while let Some(row) = rows.try_next().await? {
        for (i, column) in columns.iter_mut().enumerate() {
            column.push(&row, i)?;
        }
    }
    let arrays: Vec<ArrayRef> = columns.into_iter().map(Column::finish).collect();
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// A realtime table read incrementally: its columns (the last one `ingest_seq`) as a select
/// list and as Arrow fields.
#[derive(Debug)]
pub struct Source {
    /// The realtime table.
    pub table: &'static str,
    /// What its rows are, for the progress lines ("transaction lines").
    pub rows: &'static str,
    /// The select list, in the order of `fields`.
    pub select: &'static str,
    /// The Arrow fields of the select list.
    pub fields: fn() -> Vec<Field>,
}

impl Source {
    /// The next `limit` rows after `after`, up to `upto`, in ingest order.
    pub fn query(&self, after: i64, upto: i64, limit: usize) -> String {
        // Integers of our own, not input: COPY takes no bind parameters.
        format!(
            "SELECT {}, ingest_seq FROM {} WHERE ingest_seq > {after} AND ingest_seq <= {upto} \
             ORDER BY ingest_seq LIMIT {limit}",
            self.select, self.table
        )
    }

    /// The Arrow schema of [`Source::query`]'s rows.
    pub fn schema(&self) -> SchemaRef {
        let mut fields = (self.fields)();
        fields.push(field("ingest_seq", DataType::Int64));
        schema(fields)
    }
}

/// The PostgreSQL type that reads into (or writes from) an Arrow type.
pub fn pg_type(data_type: &DataType) -> Result<Type, EtlError> {
    Ok(match data_type {
        DataType::Utf8 => Type::TEXT,
        DataType::Int32 => Type::INT4,
        DataType::Int64 => Type::INT8,
        DataType::Decimal128(_, _) => Type::NUMERIC,
        DataType::Timestamp(TimeUnit::Microsecond, _) => Type::TIMESTAMPTZ,
        DataType::Boolean => Type::BOOL,
        other => return Err(EtlError::UnsupportedType(other.clone())),
    })
}

/// An Arrow column being filled from COPY rows.
enum Column {
    Text(StringBuilder),
    Int(Int32Builder),
    Long(Int64Builder),
    Numeric(Decimal128Builder, u32),
    Timestamp(TimestampMicrosecondBuilder),
    Bool(BooleanBuilder),
}

impl Column {
    fn new(data_type: &DataType) -> Result<Column, EtlError> {
        Ok(match data_type {
            DataType::Utf8 => Column::Text(StringBuilder::new()),
            DataType::Int32 => Column::Int(Int32Builder::new()),
            DataType::Int64 => Column::Long(Int64Builder::new()),
            DataType::Decimal128(precision, scale) => Column::Numeric(
                Decimal128Builder::new().with_precision_and_scale(*precision, *scale)?,
                u32::try_from(*scale).map_err(|_| EtlError::UnsupportedType(data_type.clone()))?,
            ),
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Column::Timestamp(TimestampMicrosecondBuilder::new())
            }
            DataType::Boolean => Column::Bool(BooleanBuilder::new()),
            other => return Err(EtlError::UnsupportedType(other.clone())),
        })
    }

    fn push(
        &mut self,
        row: &tokio_postgres::binary_copy::BinaryCopyOutRow,
        i: usize,
    ) -> Result<(), EtlError> {
        match self {
            Column::Text(b) => b.append_option(row.try_get::<Option<&str>>(i)?),
            Column::Int(b) => b.append_option(row.try_get::<Option<i32>>(i)?),
            Column::Long(b) => b.append_option(row.try_get::<Option<i64>>(i)?),
            Column::Numeric(b, scale) => {
                b.append_option(row.try_get::<Option<Decimal>>(i)?.map(|mut d| {
                    d.rescale(*scale);
                    d.mantissa()
                }))
            }
            Column::Timestamp(b) => b.append_option(
                row.try_get::<Option<DateTime<Utc>>>(i)?
                    .map(|t| t.timestamp_micros()),
            ),
            Column::Bool(b) => b.append_option(row.try_get::<Option<bool>>(i)?),
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Column::Text(mut b) => Arc::new(b.finish()),
            Column::Int(mut b) => Arc::new(b.finish()),
            Column::Long(mut b) => Arc::new(b.finish()),
            Column::Numeric(mut b, _) => Arc::new(b.finish()),
            Column::Timestamp(mut b) => Arc::new(b.finish()),
            Column::Bool(mut b) => Arc::new(b.finish()),
        }
    }
}

/// A schema from its fields.
pub fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}
