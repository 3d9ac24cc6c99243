//! Reading rows back without a query engine: the lookups of the ingestion and real-time paths
//! (which keys and versions a table already holds, a keyring's keys, the completed runs) are a
//! conjunction of equalities and ranges on a few columns. Files are pruned by their partition
//! values and their `add` statistics, the remaining ones read with the Parquet crate's async
//! reader (only the columns asked for) and their rows filtered with the same predicate.
//!
//! DataFusion does this and more ([`crate::read::scan`], `query` feature), but linking it is most
//! of a function's binary; the batch layer and the tools keep using it.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, new_null_array};
use deltalake::arrow::compute::{cast, filter_record_batch};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

use crate::{Error, Result};

/// Files a lookup reads at once.
const FILES_AT_ONCE: usize = 8;

/// A value a [`Filter`] compares with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scalar {
    Str(String),
    Int(i64),
}

impl From<&str> for Scalar {
    fn from(v: &str) -> Self {
        Scalar::Str(v.to_string())
    }
}

impl From<String> for Scalar {
    fn from(v: String) -> Self {
        Scalar::Str(v)
    }
}

impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v)
    }
}

/// Which rows to read: every condition must hold (a null never matches).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    conditions: Vec<(String, Condition)>,
}

#[derive(Debug, Clone)]
enum Condition {
    /// lo ≤ value ≤ hi.
    Between(Scalar, Scalar),
    /// value is one of these.
    In(Vec<Scalar>),
}

impl Filter {
    /// Rows where `column` = `value`.
    pub fn eq(column: &str, value: impl Into<Scalar>) -> Self {
        Filter::default().and_in(column, [value.into()])
    }

    /// Rows where `column` is one of `values`.
    pub fn is_in(column: &str, values: impl IntoIterator<Item = impl Into<Scalar>>) -> Self {
        Filter::default().and_in(column, values)
    }

    /// Rows where `lo` ≤ `column` ≤ `hi`.
    pub fn between(column: &str, lo: impl Into<Scalar>, hi: impl Into<Scalar>) -> Self {
        Filter::default().and_between(column, lo, hi)
    }

    /// This filter and `lo` ≤ `column` ≤ `hi`.
    pub fn and_between(mut self, column: &str, lo: impl Into<Scalar>, hi: impl Into<Scalar>) -> Self {
        self.conditions.push((column.to_string(), Condition::Between(lo.into(), hi.into())));
        self
    }

    /// This filter and `column` in `values`.
    pub fn and_in(mut self, column: &str, values: impl IntoIterator<Item = impl Into<Scalar>>) -> Self {
        let mut values: Vec<Scalar> = values.into_iter().map(Into::into).collect();
        values.sort();
        values.dedup();
        self.conditions.push((column.to_string(), Condition::In(values)));
        self
    }

    fn columns(&self) -> impl Iterator<Item = &str> {
        self.conditions.iter().map(|(c, _)| c.as_str())
    }

    /// Whether a file whose `column` lies in [`lo`, `hi`] may hold a matching row (missing
    /// bounds: it may).
    fn may_match(&self, bounds: impl Fn(&str) -> (Option<Scalar>, Option<Scalar>)) -> bool {
        // x ≤ y, or unknown (values of different kinds never prune).
        let le = |x: &Scalar, y: &Scalar| comparable(x, y).is_none() || x <= y;
        self.conditions.iter().all(|(column, cond)| {
            let (lo, hi) = bounds(column);
            let overlaps = |a: &Scalar, b: &Scalar| hi.as_ref().is_none_or(|hi| le(a, hi)) && lo.as_ref().is_none_or(|lo| le(lo, b));
            match cond {
                Condition::Between(a, b) => overlaps(a, b),
                Condition::In(values) => values.iter().any(|v| overlaps(v, v)),
            }
        })
    }

    /// The rows of `batch` that match.
    fn mask(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let mut keep = vec![true; batch.num_rows()];
        for (column, cond) in &self.conditions {
            let array = batch.column_by_name(column).ok_or_else(|| Error::Query { uri: String::new(), reason: format!("no column {column}") })?;
            let values = scalars(array)?;
            for (row, k) in keep.iter_mut().enumerate() {
                *k = *k
                    && values[row].as_ref().is_some_and(|v| match cond {
                        Condition::Between(lo, hi) => lo <= v && v <= hi,
                        Condition::In(set) => set.binary_search(v).is_ok(),
                    });
            }
        }
        Ok(BooleanArray::from(keep))
    }
}

/// Both sides of a comparison are the same kind (a string bound never prunes an integer column).
fn comparable(a: &Scalar, b: &Scalar) -> Option<()> {
    matches!((a, b), (Scalar::Str(_), Scalar::Str(_)) | (Scalar::Int(_), Scalar::Int(_))).then_some(())
}

fn scalars(array: &ArrayRef) -> Result<Vec<Option<Scalar>>> {
    Ok(match array.data_type() {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => {
            let a = cast(array, &DataType::Int64)?;
            a.as_primitive::<deltalake::arrow::datatypes::Int64Type>().iter().map(|v| v.map(Scalar::Int)).collect()
        }
        _ => {
            let a = cast(array, &DataType::Utf8)?;
            a.as_string::<i32>().iter().map(|v| v.map(|s| Scalar::Str(s.to_string()))).collect()
        }
    })
}

fn json_scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::String(s) => Some(Scalar::Str(s.clone())),
        Value::Number(n) => n.as_i64().map(Scalar::Int),
        _ => None,
    }
}

/// The rows of `table` matching `filter`, with only `columns` (all when empty), in the table's
/// types.
pub async fn select(table: &DeltaTable, filter: Option<&Filter>, columns: &[&str]) -> Result<Vec<RecordBatch>> {
    let uri = table.table_url().to_string();
    let query = |reason: String| Error::Query { uri: uri.clone(), reason };
    let Ok(state) = table.snapshot() else { return Ok(Vec::new()) };
    let table_schema = state.snapshot().arrow_schema();
    let wanted: Vec<&str> = if columns.is_empty() { table_schema.fields().iter().map(|f| f.name().as_str()).collect() } else { columns.to_vec() };
    let out_schema: SchemaRef =
        Arc::new(Schema::new(wanted.iter().map(|c| table_schema.field_with_name(c).map(|f| f.as_ref().clone()).map_err(|_| query(format!("no column {c}")))).collect::<Result<Vec<Field>>>()?));
    // The columns read: those asked for and those filtered on.
    let mut read: Vec<&str> = wanted.clone();
    if let Some(f) = filter {
        for c in f.columns() {
            table_schema.field_with_name(c).map_err(|_| query(format!("no column {c} to filter on")))?;
            if !read.contains(&c) {
                read.push(c);
            }
        }
    }
    let read_schema: SchemaRef = Arc::new(Schema::new(read.iter().filter_map(|c| table_schema.field_with_name(c).ok().cloned()).collect::<Vec<Field>>()));
    let store = table.log_store().object_store(None);
    // The files that may hold a matching row.
    let mut candidates = Vec::new();
    for file in state.log_data().iter() {
        if file.deletion_vector_descriptor().is_some() {
            return Err(query(format!("file {} has a deletion vector, which this reader does not apply", file.path())));
        }
        let partitions = file.partition_values_map();
        if let Some(f) = filter {
            let stats: Option<Value> = file.stats().and_then(|s| serde_json::from_str(&s).ok());
            let may = f.may_match(|column| match partitions.get(column) {
                Some(v) => {
                    let v = v.as_ref().map(|s| match table_schema.field_with_name(column).map(|f| f.data_type().is_integer()) {
                        Ok(true) => s.parse().map(Scalar::Int).unwrap_or(Scalar::Str(s.clone())),
                        _ => Scalar::Str(s.clone()),
                    });
                    (v.clone(), v)
                }
                None => {
                    let bound = |side: &str| stats.as_ref().and_then(|s| s.get(side)).and_then(|m| m.get(column)).and_then(json_scalar);
                    (bound("minValues"), bound("maxValues"))
                }
            });
            if !may {
                continue;
            }
        }
        candidates.push((file.path().to_string(), file.object_store_path(), partitions));
    }
    // One GET per file, FILES_AT_ONCE at a time: the files these lookups read are one commit's
    // worth of rows (a few MB at most), and one request costs less than the footer and column
    // range requests of an async reader.
    let bodies: Vec<_> = futures::stream::iter(candidates.iter().map(|(_, path, _)| {
        let (store, uri) = (&store, &uri);
        async move { store.get(path).await.map_err(|e| Error::delta_store(uri, e))?.bytes().await.map_err(|e| Error::delta_store(uri, e)) }
    }))
    .buffered(FILES_AT_ONCE)
    .try_collect()
    .await?;
    let mut out = Vec::new();
    for ((name, _, partitions), bytes) in candidates.iter().zip(bodies) {
        let unreadable = |e: deltalake::parquet::errors::ParquetError| query(format!("reading {name}: {e}"));
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(unreadable)?;
        let file_schema = builder.schema().clone();
        let indices: Vec<usize> = read.iter().filter_map(|c| file_schema.index_of(c).ok()).collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        for b in builder.with_projection(mask).build().map_err(unreadable)? {
            let b = b?;
            let rows = b.num_rows();
            let columns = read_schema
                .fields()
                .iter()
                .map(|f| {
                    let column: ArrayRef = match (b.column_by_name(f.name()), partitions.get(f.name())) {
                        (Some(c), _) => c.clone(),
                        (None, Some(Some(v))) => cast(&(Arc::new(deltalake::arrow::array::StringArray::from(vec![v.as_str(); rows])) as ArrayRef), f.data_type())?,
                        _ => new_null_array(f.data_type(), rows),
                    };
                    Ok(if column.data_type() == f.data_type() { column } else { cast(&column, f.data_type())? })
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            let batch = RecordBatch::try_new(read_schema.clone(), columns)?;
            let batch = match filter {
                Some(f) => filter_record_batch(&batch, &f.mask(&batch)?)?,
                None => batch,
            };
            if batch.num_rows() > 0 {
                let indices: Vec<usize> = wanted.iter().filter_map(|c| read_schema.index_of(c).ok()).collect();
                out.push(batch.project(&indices)?.with_schema(out_schema.clone())?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(lo: Option<Scalar>, hi: Option<Scalar>) -> impl Fn(&str) -> (Option<Scalar>, Option<Scalar>) {
        move |_| (lo.clone(), hi.clone())
    }

    #[test]
    fn files_are_pruned_only_when_no_row_can_match() {
        let s = |v: &str| Some(Scalar::from(v));
        let f = Filter::between("k", "c", "e");
        assert!(f.may_match(bounds(s("a"), s("c"))));
        assert!(f.may_match(bounds(s("d"), s("d"))));
        assert!(f.may_match(bounds(s("a"), s("z"))), "a file spanning the whole range");
        assert!(!f.may_match(bounds(s("f"), s("z"))));
        assert!(!f.may_match(bounds(s("a"), s("b"))));
        assert!(f.may_match(bounds(None, None)), "no statistics: read it");
        let f = Filter::is_in("k", [3_i64, 9]);
        assert!(f.may_match(bounds(Some(Scalar::Int(1)), Some(Scalar::Int(4)))));
        assert!(!f.may_match(bounds(Some(Scalar::Int(4)), Some(Scalar::Int(8)))));
        let f = Filter::eq("k", "x").and_between("n", 1_i64, 2_i64);
        assert!(!f.may_match(|c| if c == "k" { (s("x"), s("x")) } else { (Some(Scalar::Int(5)), Some(Scalar::Int(6))) }));
    }

    #[test]
    fn rows_are_filtered_and_nulls_never_match() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(deltalake::arrow::array::StringArray::from(vec![Some("a"), None, Some("c")])), Arc::new(deltalake::arrow::array::Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let m = Filter::between("k", "a", "b").mask(&batch).unwrap();
        assert_eq!(m, BooleanArray::from(vec![true, false, false]));
        let m = Filter::is_in("n", [2_i64, 3]).mask(&batch).unwrap();
        assert_eq!(m, BooleanArray::from(vec![false, true, true]));
    }
}
