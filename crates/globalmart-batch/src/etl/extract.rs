//! Extract: realtime rows after a watermark, read with binary COPY straight into one Arrow
//! batch, and the highest `ingest_seq` that is safe to read up to
//! (docs/ARCHITECTURE.md, "Watermarks that never skip a row").
//!
//! COPY takes no bind parameters, so the values a COPY query needs (a watermark, a row limit, a
//! date) are bound to `set_config` first and read back in the query with `current_setting`:
//! the query text is always a constant of ours, and no value is ever formatted into it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, FixedSizeBinaryBuilder, Float64Builder,
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{pin_mut, TryStreamExt};
use globalmart_core::db::INGEST_LOCK;
use rust_decimal::Decimal;
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, CopyOutStream};
use uuid::Uuid;

use crate::error::EtlError;

/// The Arrow type of a `timestamptz` column.
pub const TIMESTAMP: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

/// The Arrow type of a `uuid` column: its 16 bytes, carried through the plans untouched.
pub const UUID: DataType = DataType::FixedSizeBinary(16);

/// A column to read: its name and Arrow type (text, int4, int8, numeric(p, s), timestamptz,
/// bool or float8 on the PostgreSQL side).
pub fn field(name: &str, data_type: DataType) -> Field {
    Field::new(name, data_type, true)
}

/// The highest `ingest_seq` of each table below which every row is committed: read while the
/// ingest lock is held exclusively, when no writer is in the middle of a transaction (see
/// [`INGEST_LOCK`]). Waits at most `lock_timeout` for the writers' transactions in flight.
pub async fn settled<const N: usize>(
    client: &mut Client,
    sources: [&Source; N],
    lock_timeout: std::time::Duration,
) -> Result<[i64; N], EtlError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT set_config('lock_timeout', $1, true)",
        &[&format!("{}ms", lock_timeout.as_millis())],
    )
    .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INGEST_LOCK])
        .await
        .map_err(|e| EtlError::IngestLock(globalmart_core::db::describe(&e)))?;
    let mut highest = [0; N];
    for (seq, source) in highest.iter_mut().zip(sources) {
        *seq = tx.query_one(&source.highest(), &[]).await?.get(0);
    }
    tx.commit().await?;
    Ok(highest)
}

/// Reads the rows of `query` (a constant of ours, reading its values with
/// `current_setting('globalmart.<name>')`) into one Arrow batch of `schema`, whose fields
/// match the query's columns in order. Each (name, value) of `values` is set first, for the
/// rest of the session.
pub async fn rows(
    client: &Client,
    query: &str,
    values: &[(&str, String)],
    schema: SchemaRef,
) -> Result<RecordBatch, EtlError> {
    if !values.is_empty() {
        // One round trip for all of them: a chunk's read is on the ETL's path.
        let names: Vec<&str> = values.iter().map(|(name, _)| *name).collect();
        let texts: Vec<&str> = values.iter().map(|(_, value)| value.as_str()).collect();
        client
            .execute(
                "SELECT set_config('globalmart.' || n, v, false)
                 FROM unnest($1::text[], $2::text[]) AS x(n, v)",
                &[&names, &texts],
            )
            .await?;
    }
    let stream = client
        .copy_out(&format!("COPY ({query}) TO STDOUT (FORMAT binary)"))
        .await?;
    read(stream, schema).await
}

/// Reads the rows of a binary COPY (its columns match `schema` in order) into one Arrow batch.
async fn read(stream: CopyOutStream, schema: SchemaRef) -> Result<RecordBatch, EtlError> {
    let types: Vec<Type> = schema
        .fields()
        .iter()
        .map(|f| pg_type(f.data_type()))
        .collect::<Result<_, _>>()?;
    let mut columns: Vec<Builder> = schema
        .fields()
        .iter()
        .map(|f| Builder::new(f.data_type()))
        .collect::<Result<_, _>>()?;
    let rows = BinaryCopyOutStream::new(stream, &types);
    pin_mut!(rows);
    while let Some(row) = rows.try_next().await? {
        for (i, column) in columns.iter_mut().enumerate() {
            column.push(&row, i)?;
        }
    }
    let arrays: Vec<ArrayRef> = columns.into_iter().map(Builder::finish).collect();
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// A column read from the realtime database: what is selected, and the Arrow column it
/// becomes.
#[derive(Debug, Clone, Copy)]
pub struct SourceColumn {
    /// The select expression (`line_item_id::text`).
    pub select: &'static str,
    /// The Arrow column's name.
    pub name: &'static str,
    pub kind: Kind,
}

/// The Arrow type of a column read: text, uuid (16 bytes), int4, numeric(precision, scale),
/// timestamptz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Uuid,
    Int,
    Numeric(u8, i8),
    Timestamp,
}

impl Kind {
    fn data_type(self) -> DataType {
        match self {
            Kind::Text => DataType::Utf8,
            Kind::Uuid => UUID,
            Kind::Int => DataType::Int32,
            Kind::Numeric(precision, scale) => DataType::Decimal128(precision, scale),
            Kind::Timestamp => TIMESTAMP,
        }
    }
}

/// `select AS name`, read as `kind`.
pub const fn column(select: &'static str, name: &'static str, kind: Kind) -> SourceColumn {
    SourceColumn { select, name, kind }
}

/// A realtime table read incrementally by `ingest_seq`, each of its columns declared once.
#[derive(Debug)]
pub struct Source {
    /// The realtime table.
    pub table: &'static str,
    /// What its rows are, for the progress lines ("transaction lines").
    pub rows: &'static str,
    /// The columns read, in order (`ingest_seq` follows them).
    pub columns: &'static [SourceColumn],
}

impl Source {
    /// The next `limit` rows after `after`, up to `upto`, in ingest order.
    pub async fn read(
        &self,
        client: &Client,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<RecordBatch, EtlError> {
        let select: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} AS {}", c.select, c.name))
            .collect();
        // Identifiers from this source's constants; the values are bound (see the module).
        let query = format!(
            "SELECT {}, ingest_seq FROM {}
             WHERE ingest_seq > current_setting('globalmart.after')::int8
                 AND ingest_seq <= current_setting('globalmart.upto')::int8
             ORDER BY ingest_seq LIMIT current_setting('globalmart.limit')::int8",
            select.join(", "),
            self.table
        );
        let values = [
            ("after", after.to_string()),
            ("upto", upto.to_string()),
            ("limit", limit.to_string()),
        ];
        rows(client, &query, &values, self.schema()).await
    }

    /// The highest `ingest_seq` of the table.
    fn highest(&self) -> String {
        format!("SELECT coalesce(max(ingest_seq), 0) FROM {}", self.table)
    }

    /// The Arrow schema of [`Source::read`]'s rows.
    fn schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| field(c.name, c.kind.data_type()))
            .collect();
        fields.push(field("ingest_seq", DataType::Int64));
        schema(fields)
    }
}

/// The PostgreSQL type that reads into (or writes from) an Arrow type.
pub fn pg_type(data_type: &DataType) -> Result<Type, EtlError> {
    Ok(match data_type {
        DataType::Utf8 => Type::TEXT,
        DataType::FixedSizeBinary(16) => Type::UUID,
        DataType::Int32 => Type::INT4,
        DataType::Int64 => Type::INT8,
        DataType::Decimal128(_, _) => Type::NUMERIC,
        DataType::Timestamp(TimeUnit::Microsecond, _) => Type::TIMESTAMPTZ,
        DataType::Boolean => Type::BOOL,
        DataType::Float64 => Type::FLOAT8,
        other => return Err(EtlError::UnsupportedType(other.clone())),
    })
}

/// An Arrow column being filled from COPY rows.
enum Builder {
    Text(StringBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Int(Int32Builder),
    Long(Int64Builder),
    Numeric(Decimal128Builder, u32),
    Timestamp(TimestampMicrosecondBuilder),
    Bool(BooleanBuilder),
    Float(Float64Builder),
}

impl Builder {
    fn new(data_type: &DataType) -> Result<Builder, EtlError> {
        Ok(match data_type {
            DataType::Utf8 => Builder::Text(StringBuilder::new()),
            DataType::FixedSizeBinary(16) => Builder::Uuid(FixedSizeBinaryBuilder::new(16)),
            DataType::Int32 => Builder::Int(Int32Builder::new()),
            DataType::Int64 => Builder::Long(Int64Builder::new()),
            DataType::Decimal128(precision, scale) => Builder::Numeric(
                Decimal128Builder::new().with_precision_and_scale(*precision, *scale)?,
                u32::try_from(*scale).map_err(|_| EtlError::UnsupportedType(data_type.clone()))?,
            ),
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Builder::Timestamp(TimestampMicrosecondBuilder::new())
            }
            DataType::Boolean => Builder::Bool(BooleanBuilder::new()),
            DataType::Float64 => Builder::Float(Float64Builder::new()),
            other => return Err(EtlError::UnsupportedType(other.clone())),
        })
    }

    fn push(
        &mut self,
        row: &tokio_postgres::binary_copy::BinaryCopyOutRow,
        i: usize,
    ) -> Result<(), EtlError> {
        match self {
            Builder::Text(b) => b.append_option(row.try_get::<Option<&str>>(i)?),
            Builder::Uuid(b) => match row.try_get::<Option<Uuid>>(i)? {
                Some(id) => b.append_value(id.as_bytes())?,
                None => b.append_null(),
            },
            Builder::Int(b) => b.append_option(row.try_get::<Option<i32>>(i)?),
            Builder::Long(b) => b.append_option(row.try_get::<Option<i64>>(i)?),
            Builder::Numeric(b, scale) => {
                b.append_option(row.try_get::<Option<Decimal>>(i)?.map(|mut d| {
                    d.rescale(*scale);
                    d.mantissa()
                }))
            }
            Builder::Timestamp(b) => b.append_option(
                row.try_get::<Option<DateTime<Utc>>>(i)?
                    .map(|t| t.timestamp_micros()),
            ),
            Builder::Bool(b) => b.append_option(row.try_get::<Option<bool>>(i)?),
            Builder::Float(b) => b.append_option(row.try_get::<Option<f64>>(i)?),
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Text(mut b) => Arc::new(b.finish()),
            Builder::Uuid(mut b) => Arc::new(b.finish()),
            Builder::Int(mut b) => Arc::new(b.finish()),
            Builder::Long(mut b) => Arc::new(b.finish()),
            Builder::Numeric(mut b, _) => Arc::new(b.finish()),
            Builder::Timestamp(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Float(mut b) => Arc::new(b.finish()),
        }
    }
}

/// A schema from its fields.
pub fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}
