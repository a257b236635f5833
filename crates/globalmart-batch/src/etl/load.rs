//! Load: an Arrow batch into a temporary staging table by binary COPY (the set-based merges
//! read it from there), and the watermarks that move in the same transaction.

use chrono::DateTime;
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray, Float64Array,
    Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Decimal128Type, Float64Type, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use futures::pin_mut;
use rust_decimal::Decimal;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use crate::error::EtlError;

/// Creates the temporary table `name` (dropped at commit) with the batch's columns and copies
/// the batch into it. Text that DataFusion produced as views or large strings is written as
/// text.
pub async fn stage(tx: &Transaction<'_>, name: &str, batch: &RecordBatch) -> Result<(), EtlError> {
    let columns: Vec<Values> = batch
        .columns()
        .iter()
        .map(|array| Values::of(array.as_ref()))
        .collect::<Result<_, _>>()?;
    let types: Vec<Type> = columns.iter().map(Values::pg_type).collect();
    let definition: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .zip(&types)
        .map(|(f, t)| format!("{} {}", f.name(), t.name()))
        .collect();
    // Names come from our own plans, never from input.
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE {name} ({}) ON COMMIT DROP",
        definition.join(", ")
    ))
    .await?;
    let sink = tx
        .copy_in(&format!("COPY {name} FROM STDIN (FORMAT binary)"))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    let mut row: Vec<Cell> = Vec::with_capacity(columns.len());
    for i in 0..batch.num_rows() {
        row.clear();
        row.extend(columns.iter().map(|c| c.cell(i)));
        let refs: Vec<&(dyn ToSql + Sync)> = row.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
        writer.as_mut().write(&refs).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// The names of the columns of `rows`, comma separated: the column list of a statement that
/// moves them from their staging table into a table with the same column names.
pub fn column_list(rows: &RecordBatch) -> String {
    let names: Vec<&str> = rows
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    names.join(", ")
}

/// The watermark of `source` as last committed (0 before its first chunk), not locked.
pub async fn watermark(client: &impl GenericClient, source: &str) -> Result<i64, EtlError> {
    let row = client
        .query_one(
            "SELECT coalesce((SELECT last_ingest_seq FROM etl_watermarks WHERE source_table = $1), 0)",
            &[&source],
        )
        .await?;
    Ok(row.get(0))
}

/// The watermark of `source`, locked until the transaction ends so two runs never load the
/// same rows at once (the second waits, then starts after the first one's rows).
pub async fn lock_watermark(tx: &Transaction<'_>, source: &str) -> Result<i64, EtlError> {
    tx.execute(
        "INSERT INTO etl_watermarks (source_table) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&source],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT last_ingest_seq FROM etl_watermarks WHERE source_table = $1 FOR UPDATE",
            &[&source],
        )
        .await?;
    Ok(row.get(0))
}

/// Moves the watermark of `source` to `seq`, in the transaction that loaded the rows.
pub async fn advance_watermark(
    tx: &Transaction<'_>,
    source: &str,
    seq: i64,
) -> Result<(), EtlError> {
    tx.execute(
        "UPDATE etl_watermarks SET last_ingest_seq = $2, updated_at = now()
         WHERE source_table = $1",
        &[&source, &seq],
    )
    .await?;
    Ok(())
}

/// An Arrow column read row by row (cheap clones: the buffers are shared).
enum Values {
    Text(StringArray),
    Uuid(FixedSizeBinaryArray),
    Int(Int32Array),
    Long(Int64Array),
    Numeric(Decimal128Array, u32),
    Timestamp(TimestampMicrosecondArray),
    Bool(BooleanArray),
    Float(Float64Array),
    Date(Date32Array),
}

impl Values {
    /// Text of any width is written as text and timestamps of any unit as microseconds.
    fn of(array: &dyn Array) -> Result<Values, EtlError> {
        Ok(match array.data_type() {
            DataType::Utf8 => Values::Text(array.as_string::<i32>().clone()),
            DataType::Utf8View | DataType::LargeUtf8 => {
                Values::Text(cast(array, &DataType::Utf8)?.as_string::<i32>().clone())
            }
            DataType::FixedSizeBinary(16) => Values::Uuid(array.as_fixed_size_binary().clone()),
            DataType::Int32 => Values::Int(array.as_primitive().clone()),
            DataType::Int64 => Values::Long(array.as_primitive().clone()),
            DataType::Decimal128(_, scale) => Values::Numeric(
                array.as_primitive::<Decimal128Type>().clone(),
                u32::try_from(*scale)
                    .map_err(|_| EtlError::UnsupportedType(array.data_type().clone()))?,
            ),
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Values::Timestamp(array.as_primitive().clone())
            }
            DataType::Timestamp(_, _) => Values::Timestamp(
                cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?
                    .as_primitive()
                    .clone(),
            ),
            DataType::Boolean => Values::Bool(array.as_boolean().clone()),
            DataType::Float64 => Values::Float(array.as_primitive::<Float64Type>().clone()),
            DataType::Date32 => Values::Date(array.as_primitive::<Date32Type>().clone()),
            other => return Err(EtlError::UnsupportedType(other.clone())),
        })
    }

    fn pg_type(&self) -> Type {
        match self {
            Values::Text(_) => Type::TEXT,
            Values::Uuid(_) => Type::UUID,
            Values::Int(_) => Type::INT4,
            Values::Long(_) => Type::INT8,
            Values::Numeric(..) => Type::NUMERIC,
            Values::Timestamp(_) => Type::TIMESTAMPTZ,
            Values::Bool(_) => Type::BOOL,
            Values::Float(_) => Type::FLOAT8,
            Values::Date(_) => Type::DATE,
        }
    }

    fn cell(&self, i: usize) -> Cell<'_> {
        let valid = |a: &dyn Array| a.is_valid(i);
        match self {
            Values::Text(a) if valid(a) => Cell::Text(a.value(i)),
            Values::Uuid(a) if valid(a) => Cell::Uuid(a.value(i)),
            Values::Int(a) if valid(a) => Cell::Int(a.value(i)),
            Values::Long(a) if valid(a) => Cell::Long(a.value(i)),
            Values::Numeric(a, scale) if valid(a) => {
                Cell::Numeric(Decimal::from_i128_with_scale(a.value(i), *scale))
            }
            Values::Timestamp(a) if valid(a) => Cell::Timestamp(a.value(i)),
            Values::Bool(a) if valid(a) => Cell::Bool(a.value(i)),
            Values::Float(a) if valid(a) => Cell::Float(a.value(i)),
            Values::Date(a) if valid(a) => Cell::Date(a.value(i)),
            _ => Cell::Null,
        }
    }
}

/// One value on its way to COPY.
#[derive(Debug)]
enum Cell<'a> {
    Null,
    Text(&'a str),
    /// A uuid's 16 bytes.
    Uuid(&'a [u8]),
    Int(i32),
    Long(i64),
    Numeric(Decimal),
    Timestamp(i64),
    Bool(bool),
    Float(f64),
    /// Days since 1970-01-01.
    Date(i32),
}

impl ToSql for Cell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Text(v) => v.to_sql(ty, out),
            Cell::Uuid(bytes) => Uuid::from_slice(bytes)?.to_sql(ty, out),
            Cell::Int(v) => v.to_sql(ty, out),
            Cell::Long(v) => v.to_sql(ty, out),
            Cell::Numeric(v) => v.to_sql(ty, out),
            Cell::Timestamp(micros) => DateTime::from_timestamp_micros(*micros)
                .ok_or("timestamp out of range")?
                .to_sql(ty, out),
            Cell::Bool(v) => v.to_sql(ty, out),
            Cell::Float(v) => v.to_sql(ty, out),
            Cell::Date(days) => chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|epoch| {
                    epoch.checked_add_signed(chrono::Duration::days(i64::from(*days)))
                })
                .ok_or("date out of range")?
                .to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Each cell is checked against its column's type by the call it delegates to.
        true
    }

    to_sql_checked!();
}
