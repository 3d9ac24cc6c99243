//! An append without a query engine: the batch is split by partition, each part encoded as one
//! Parquet file in memory and put with If-None-Match, and the files' `add` actions (with column
//! statistics) committed through delta-rs's transaction API.
//!
//! delta-rs's own write operation plans every write as a DataFusion query, so linking it put the
//! whole query engine (about two thirds of the code) into every ingestion and real-time function,
//! which only ever append a batch. Its engine-free `RecordBatchWriter` cannot create a table in
//! the same commit as its first rows, cannot write through a store we choose (the keyring's files
//! must be put only if absent), and refuses schema evolution on a partitioned table; its
//! statistics builder is crate-private. What is left by hand here is the part no library exposes:
//! splitting rows by partition and the statistics JSON of the Delta protocol
//! (`numRecords`, `minValues`, `maxValues`, `nullCount`), computed from the Arrow columns.
//!
//! An append to an existing table is committed by [`commit`], which puts the commit file
//! itself: built without DataFusion, delta-rs's transaction refuses every table whose protocol
//! implies change data feed, invariants, CHECK constraints or generated columns (its writer
//! cannot enforce them without a query engine), and every lake table has the change data feed
//! on, which asks nothing of an append. [`commit`] checks instead that the table has none of
//! the things an append would have to enforce, and refuses it otherwise.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate};
use deltalake::DeltaTableError;
use deltalake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array, new_null_array};
use deltalake::arrow::compute::{cast, take_record_batch};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::kernel::transaction::{CommitData, TransactionError};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use deltalake::logstore::{CommitOrBytes, LogStoreRef};
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::DeltaOperation;
use deltalake::table::state::DeltaTableState;
use serde_json::{Map, Value};

use crate::{Error, Result};

/// Columns with statistics when the table does not say (`delta.dataSkippingNumIndexedCols`):
/// the Delta protocol's default.
const DEFAULT_INDEXED_COLUMNS: usize = 32;

/// Which columns get min/max/null-count statistics, from the table's configuration.
#[derive(Debug, Clone)]
pub(crate) enum StatsColumns {
    /// The first n columns of the schema (all when `None`).
    First(Option<usize>),
    /// Exactly these (`delta.dataSkippingStatsColumns`).
    Named(Vec<String>),
}

impl StatsColumns {
    /// From a table's `configuration` (or the properties a new table is created with).
    pub(crate) fn from_config<'a>(config: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let config: HashMap<&str, &str> = config.into_iter().collect();
        if let Some(named) = config.get("delta.dataSkippingStatsColumns") {
            return StatsColumns::Named(named.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect());
        }
        match config.get("delta.dataSkippingNumIndexedCols").and_then(|n| n.parse::<i64>().ok()) {
            Some(n) if n < 0 => StatsColumns::First(None),
            Some(n) => StatsColumns::First(Some(n as usize)),
            None => StatsColumns::First(Some(DEFAULT_INDEXED_COLUMNS)),
        }
    }

    fn wants(&self, index: usize, name: &str) -> bool {
        match self {
            StatsColumns::First(None) => true,
            StatsColumns::First(Some(n)) => index < *n,
            StatsColumns::Named(names) => names.iter().any(|c| c == name),
        }
    }
}

/// The files one append wrote: their `add` actions, and their paths (to remove them if the
/// commit is lost).
#[derive(Debug, Default)]
pub(crate) struct Staged {
    pub adds: Vec<Add>,
    pub paths: Vec<Path>,
}

/// The table schema `batch` is written under: the table's columns (those the batch lacks are
/// null), then the batch's new columns (nullable), in that order. `None` for `table` means the
/// batch creates the table. A column whose type differs from the table's is refused.
pub(crate) fn merged_schema(uri: &str, table: Option<&Schema>, batch: &Schema) -> Result<(SchemaRef, bool)> {
    let Some(table) = table else { return Ok((Arc::new(batch.clone()), false)) };
    let mut fields: Vec<Field> = table.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut evolved = false;
    for f in batch.fields() {
        match table.field_with_name(f.name()) {
            Ok(known) if same_type(known.data_type(), f.data_type()) => {}
            Ok(known) => {
                return Err(Error::Query { uri: uri.to_string(), reason: format!("column {} is {} in the table but {} in the rows appended", f.name(), known.data_type(), f.data_type()) });
            }
            Err(_) => {
                fields.push(f.as_ref().clone().with_nullable(true));
                evolved = true;
            }
        }
    }
    Ok((Arc::new(Schema::new(fields)), evolved))
}

/// Types that hold the same values for the lake's purposes: string and binary layouts read back
/// by delta-rs differ from the ones a writer builds (views, large offsets), timestamps' zones
/// are spelled `UTC` or `+00:00`.
fn same_type(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    match (a, b) {
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) | (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => true,
        (Timestamp(u1, z1), Timestamp(u2, z2)) => u1 == u2 && z1.is_some() == z2.is_some(),
        _ => a == b,
    }
}

/// `batch` with `schema`'s columns, in its order: missing ones null, others cast when their
/// layout differs (see [`same_type`]).
pub(crate) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => Ok(cast(c, f.data_type())?),
            None => Ok(new_null_array(f.data_type(), rows)),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Splits `batch` (already [`conform`]ed) by the values of `partitions`, writes one Parquet file
/// per part under `store` (If-None-Match: file names are random and never meant to replace
/// anything), and returns their `add` actions.
pub(crate) async fn stage(store: &Arc<dyn ObjectStore>, uri: &str, batch: &RecordBatch, partitions: &[&str], stats: &StatsColumns) -> Result<Staged> {
    let mut staged = Staged::default();
    for (values, rows) in split(uri, batch, partitions)? {
        let part = if rows.len() == batch.num_rows() { batch.clone() } else { take_record_batch(batch, &UInt32Array::from(rows))? };
        let file_columns: Vec<usize> = (0..part.num_columns()).filter(|i| !partitions.contains(&part.schema().field(*i).name().as_str())).collect();
        let file = part.project(&file_columns)?;
        let bytes = encode(uri, &file)?;
        let mut dir = String::new();
        for (name, value) in partitions.iter().zip(&values) {
            dir.push_str(&format!("{name}={}/", value.as_deref().unwrap_or("__HIVE_DEFAULT_PARTITION__")));
        }
        let name = format!("{dir}part-00000-{}-c000.zstd.parquet", uuid::Uuid::new_v4());
        let path = Path::parse(&name).map_err(|e| Error::Query { uri: uri.to_string(), reason: format!("partition value cannot be a path: {e}") })?;
        let size = bytes.len() as i64;
        staged.paths.push(path.clone());
        put_new(store.as_ref(), &path, bytes).await.map_err(|e| Error::delta_store(uri, e))?;
        staged.adds.push(Add {
            path: path.to_string(),
            partition_values: partitions.iter().zip(values).map(|(p, v)| (p.to_string(), v)).collect(),
            size,
            modification_time: chrono::Utc::now().timestamp_millis(),
            data_change: true,
            stats: Some(statistics(&file, stats).to_string()),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        });
    }
    Ok(staged)
}

/// Writer features an append honours by writing rows only: the change data feed (an insert's
/// change data is its `add`), append-only, the legacy protocol's implied invariants, CHECK
/// constraints and generated columns (refused below when the table actually declares one),
/// and features that concern readers, checkpoints or other operations.
const APPENDABLE_FEATURES: [&str; 10] =
    ["appendOnly", "changeDataFeed", "invariants", "checkConstraints", "generatedColumns", "timestampNtz", "deletionVectors", "v2Checkpoint", "vacuumProtocolCheck", "checkpointProtection"];

/// Refuses a table that an append without a query engine would write wrongly: one declaring
/// a CHECK constraint, an invariant, a generated or identity column, column mapping, or a
/// writer feature outside [`APPENDABLE_FEATURES`].
fn check_appendable(uri: &str, state: &DeltaTableState) -> Result<()> {
    let refuse = |what: String| Err(Error::Query { uri: uri.to_string(), reason: format!("{what}: the lake's writers only append rows and cannot enforce it (write to it with the batch layer)") });
    let metadata = state.metadata();
    if let Some(k) = metadata.configuration().keys().find(|k| k.starts_with("delta.constraints.") || k.as_str() == "delta.columnMapping.mode" && metadata.configuration()[k.as_str()] != "none") {
        return refuse(format!("the table sets {k}"));
    }
    let schema = state.schema();
    for field in schema.fields() {
        if let Some(k) = field.metadata().keys().find(|k| k.starts_with("delta.invariants") || k.starts_with("delta.generationExpression") || k.starts_with("delta.identity")) {
            return refuse(format!("column {} declares {k}", field.name()));
        }
    }
    if let Some(features) = state.protocol().writer_features() {
        for f in features {
            let name = f.to_string();
            if !APPENDABLE_FEATURES.contains(&name.as_str()) {
                return refuse(format!("the table needs writer feature {name}"));
            }
        }
    }
    Ok(())
}

/// Commits `actions` as the version after `state`'s, putting the commit file only if absent.
/// `Ok(None)`: another writer committed that version first (re-read and try again).
pub(crate) async fn commit(
    uri: &str,
    log_store: &LogStoreRef,
    state: &DeltaTableState,
    actions: Vec<Action>,
    operation: DeltaOperation,
    metadata: HashMap<String, Value>,
    txns: Vec<Transaction>,
) -> Result<Option<u64>> {
    check_appendable(uri, state)?;
    let version = state.version() + 1;
    let data = CommitData::new(actions, operation, metadata, txns);
    let failed = |e: TransactionError| Error::Delta { uri: uri.to_string(), source: Box::new(DeltaTableError::from(e)) };
    let bytes = data.get_bytes().map_err(failed)?;
    let operation_id = uuid::Uuid::new_v4();
    // As delta-rs commits: log stores with conditional puts take the bytes, the others a
    // temporary file they rename into place.
    let entry = if ["DefaultLogStore", "LakeFSLogStore"].contains(&log_store.name().as_str()) {
        CommitOrBytes::LogBytes(bytes)
    } else {
        let tmp = Path::from_iter(["_delta_log", &format!("_commit_{operation_id}.json.tmp")]);
        log_store.object_store(Some(operation_id)).put(&tmp, bytes.into()).await.map_err(|e| Error::delta_store(uri, e))?;
        CommitOrBytes::TmpCommit(tmp)
    };
    match log_store.write_commit_entry(version, entry.clone(), operation_id).await {
        Ok(()) => Ok(Some(version)),
        Err(TransactionError::VersionAlreadyExists(_)) => {
            if matches!(entry, CommitOrBytes::TmpCommit(_)) {
                log_store.abort_commit_entry(version, entry, operation_id).await.map_err(failed)?;
            }
            Ok(None)
        }
        Err(e) => Err(failed(e)),
    }
}

/// Puts a data file only if nothing is at `path` (If-None-Match): a writer adds files and never
/// replaces one, which the bucket policy demands of the keyring's writers (docs/security.md).
async fn put_new(store: &dyn ObjectStore, path: &Path, bytes: Vec<u8>) -> deltalake::logstore::object_store::Result<()> {
    store.put_opts(path, PutPayload::from(bytes), PutOptions { mode: PutMode::Create, ..Default::default() }).await.map(|_| ())
}

/// One part's partition values, in the table's partition column order.
type PartitionValues = Vec<Option<String>>;

/// Row indices per distinct tuple of partition values (as Delta writes them: strings, `None`
/// for null), in a stable order.
fn split(uri: &str, batch: &RecordBatch, partitions: &[&str]) -> Result<Vec<(PartitionValues, Vec<u32>)>> {
    if partitions.is_empty() {
        return Ok(vec![(Vec::new(), (0..batch.num_rows() as u32).collect())]);
    }
    let columns = partitions
        .iter()
        .map(|p| {
            let c = batch.column_by_name(p).ok_or_else(|| Error::Query { uri: uri.to_string(), reason: format!("partition column {p} is not in the rows appended") })?;
            match c.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Date32 | DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Boolean => {
                    Ok(cast(c, &DataType::Utf8)?)
                }
                other => Err(Error::Query { uri: uri.to_string(), reason: format!("partition column {p} has type {other}, which the lake does not partition by") }),
            }
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let mut groups: BTreeMap<PartitionValues, Vec<u32>> = BTreeMap::new();
    for row in 0..batch.num_rows() {
        let key: Vec<Option<String>> = columns.iter().map(|c| c.as_string::<i32>()).map(|s| s.is_valid(row).then(|| s.value(row).to_string())).collect();
        groups.entry(key).or_default().push(row as u32);
    }
    Ok(groups.into_iter().collect())
}

/// How the lake's own appends encode `batch` as Parquet: Zstandard (level 1). Snappy, delta-rs's
/// default, has no entropy coding: it left base64 ciphertext (every sealed value) at 8 bits per
/// 6 and the clear nested JSON text barely smaller; Zstandard at its fastest level costs about
/// the same CPU and stores bronze in about half the bytes (issue 20, docs/benchmarks.md). Every
/// reader we name (delta-rs, DuckDB, Athena, Trino, Spark) reads it.
///
/// Dictionary encoding stays on (the Parquet default) except for text and binary columns whose
/// values are mostly distinct ([`mostly_distinct`]): sealed values, keys, versions, nested JSON.
/// There the writer interned every value until its dictionary page was full, then fell back to
/// plain encoding anyway: on a fetcher's group of 10,000 orders those twelve columns took 64 of
/// the ~90 ms of encoding with a dictionary and 29 ms without, and came out smaller; bronze went
/// from 399 to 384 bytes per order (docs/benchmarks.md, issue 20). Columns of few values (a
/// status, a currency) keep their dictionary: half the bytes there, and readers filter on it.
pub fn parquet_properties(batch: &RecordBatch) -> WriterProperties {
    let mut props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if mostly_distinct(column) {
            props = props.set_column_dictionary_enabled(field.name().as_str().into(), false);
        }
    }
    props.build()
}

/// Values sampled per column to judge its cardinality.
const CARDINALITY_SAMPLE: usize = 1024;

/// Whether `column` is text or binary whose first [`CARDINALITY_SAMPLE`] non-null values are
/// more than half distinct: a dictionary would hold nearly every value. A sample, not the whole
/// column: enough to tell ids and ciphertext from categories, at a cost that does not grow with
/// the batch.
fn mostly_distinct(column: &ArrayRef) -> bool {
    fn judge<'a>(values: impl Iterator<Item = Option<&'a [u8]>>) -> bool {
        let sample: Vec<&[u8]> = values.flatten().take(CARDINALITY_SAMPLE).collect();
        let distinct: std::collections::HashSet<&[u8]> = sample.iter().copied().collect();
        sample.len() >= 2 && distinct.len() * 2 > sample.len()
    }
    match column.data_type() {
        DataType::Utf8 => judge(column.as_string::<i32>().iter().map(|v| v.map(str::as_bytes))),
        DataType::LargeUtf8 => judge(column.as_string::<i64>().iter().map(|v| v.map(str::as_bytes))),
        DataType::Utf8View => judge(column.as_string_view().iter().map(|v| v.map(str::as_bytes))),
        DataType::Binary => judge(column.as_binary::<i32>().iter()),
        DataType::LargeBinary => judge(column.as_binary::<i64>().iter()),
        DataType::BinaryView => judge(column.as_binary_view().iter()),
        _ => false,
    }
}

/// Rows per Parquet row group of the files the lake appends. The writer holds a row group's
/// encoded pages (and a zstd context per column) until the group closes: a fetcher's group of
/// 10,000 orders in one row group took ~10 MB more at its peak than in row groups of 4,096
/// (`alkasba-bench floor --memory 100`, docs/benchmarks.md), for 1% more bytes; readers prune
/// by row group, so smaller ones cost them nothing.
const ROW_GROUP_ROWS: usize = 4096;

/// The largest buffer [`encode`] reserves ahead; a larger file grows from there.
const MAX_PRESIZED: usize = 256 << 20;

/// One Parquet file in memory ([`parquet_properties`]), as the lake's appends write it; `uri`
/// names the table in the error. Public so the benchmark's floor encodes as a fetcher does.
pub fn encode(uri: &str, batch: &RecordBatch) -> Result<Vec<u8>> {
    let props = parquet_properties(batch);
    let failed = |e: deltalake::parquet::errors::ParquetError| Error::Query { uri: uri.to_string(), reason: format!("encoding Parquet: {e}") };
    // The file's buffer sized once for the largest it can be in practice (the batch's Arrow
    // bytes; Parquet is smaller), instead of doubling from empty: each doubling copied all it
    // held into pages never touched before, a tenth of a fetcher's page faults (`perf record
    // -e page-faults`, issue 20). The spare capacity is address space only: pages never
    // written are never resident.
    let estimate = batch.get_array_memory_size().min(MAX_PRESIZED);
    let mut writer = ArrowWriter::try_new(Vec::with_capacity(estimate), batch.schema(), Some(props)).map_err(failed)?;
    writer.write(batch).map_err(failed)?;
    writer.into_inner().map_err(failed)
}

/// The Delta statistics of one file: row count, and per chosen top-level column its null count
/// and, for types with an order readers prune by (strings, integers, floats, dates,
/// timestamps), its minimum and maximum. Timestamps are written to the millisecond, as the
/// protocol says (the maximum rounded up, so it still bounds the column).
fn statistics(batch: &RecordBatch, columns: &StatsColumns) -> Value {
    let (mut min, mut max, mut nulls) = (Map::new(), Map::new(), Map::new());
    for (i, field) in batch.schema().fields().iter().enumerate() {
        if !columns.wants(i, field.name()) {
            continue;
        }
        let array = batch.column(i);
        nulls.insert(field.name().clone(), Value::from(array.null_count()));
        if let Some((lo, hi)) = bounds(array) {
            min.insert(field.name().clone(), lo);
            max.insert(field.name().clone(), hi);
        }
    }
    serde_json::json!({ "numRecords": batch.num_rows(), "minValues": min, "maxValues": max, "nullCount": nulls })
}

fn bounds(array: &ArrayRef) -> Option<(Value, Value)> {
    use deltalake::arrow::compute::{max, max_string, min, min_string};
    use deltalake::arrow::datatypes::*;
    fn prim<T: ArrowNumericType>(a: &ArrayRef) -> Option<(Value, Value)>
    where
        T::Native: Into<serde_json::Number>,
    {
        let a = a.as_primitive::<T>();
        Some((Value::Number(min(a)?.into()), Value::Number(max(a)?.into())))
    }
    match array.data_type() {
        DataType::Utf8 => {
            let s = array.as_string::<i32>();
            Some((Value::from(min_string(s)?), Value::from(max_string(s)?)))
        }
        DataType::LargeUtf8 | DataType::Utf8View => bounds(&cast(array, &DataType::Utf8).ok()?),
        DataType::Int8 => prim::<Int8Type>(array),
        DataType::Int16 => prim::<Int16Type>(array),
        DataType::Int32 => prim::<Int32Type>(array),
        DataType::Int64 => prim::<Int64Type>(array),
        DataType::UInt8 => prim::<UInt8Type>(array),
        DataType::UInt16 => prim::<UInt16Type>(array),
        DataType::UInt32 => prim::<UInt32Type>(array),
        DataType::UInt64 => prim::<UInt64Type>(array),
        DataType::Float32 | DataType::Float64 => {
            let a = cast(array, &DataType::Float64).ok()?;
            let a = a.as_primitive::<Float64Type>();
            // NaN orders above everything in Arrow but has no JSON form: no bounds then.
            if a.iter().flatten().any(f64::is_nan) {
                return None;
            }
            Some((serde_json::Number::from_f64(min(a)?).map(Value::Number)?, serde_json::Number::from_f64(max(a)?).map(Value::Number)?))
        }
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            let day = |d: i32| NaiveDate::from_num_days_from_ce_opt(d + 719_163).map(|d| Value::from(d.format("%Y-%m-%d").to_string()));
            Some((day(min(a)?)?, day(max(a)?)?))
        }
        DataType::Timestamp(_, _) => {
            let micros = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None)).ok()?;
            let a = micros.as_primitive::<TimestampMicrosecondType>();
            let (lo, hi) = (min(a)?, max(a)?);
            let at = |us: i64| DateTime::from_timestamp_micros(us).map(|t| Value::from(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()));
            Some((at(lo.div_euclid(1000) * 1000)?, at((hi + 999).div_euclid(1000) * 1000)?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use deltalake::arrow::datatypes::TimeUnit;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            Field::new("d", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![3, 1, 2])),
                Arc::new(StringArray::from(vec![Some("b"), None, Some("a")])),
                Arc::new(TimestampMicrosecondArray::from(vec![1_000_500, 2_000_000, 1_500_001]).with_timezone("UTC")),
                Arc::new(StringArray::from(vec!["x", "y", "x"])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn dictionaries_are_kept_for_columns_of_few_values_only() {
        use deltalake::parquet::schema::types::ColumnPath;
        let ids: Vec<String> = (0..3000).map(|i| format!("order-{i}")).collect();
        let statuses: Vec<&str> = (0..3000).map(|i| ["completed", "processing", "refunded"][i % 3]).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false), Field::new("status", DataType::Utf8, false), Field::new("n", DataType::Int64, false)]));
        let b = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(ids)), Arc::new(StringArray::from(statuses)), Arc::new(Int64Array::from_iter_values(0..3000))]).unwrap();
        let props = parquet_properties(&b);
        assert!(!props.dictionary_enabled(&ColumnPath::from("id")), "ids are all distinct: no dictionary");
        assert!(props.dictionary_enabled(&ColumnPath::from("status")), "three statuses: dictionary");
        assert!(props.dictionary_enabled(&ColumnPath::from("n")), "non-text columns keep the default");
        // Both read back the same.
        let mut w = ArrowWriter::try_new(tempfile::tempfile().unwrap(), b.schema(), Some(props)).unwrap();
        w.write(&b).unwrap();
        let file = w.into_inner().unwrap();
        let read: Vec<RecordBatch> = deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 4096).unwrap().collect::<std::result::Result<_, _>>().unwrap();
        assert_eq!(deltalake::arrow::compute::concat_batches(&b.schema(), &read).unwrap(), b);
    }

    #[test]
    fn statistics_bound_every_value() {
        let s = statistics(&batch(), &StatsColumns::First(Some(32)));
        assert_eq!(s["numRecords"], 3);
        assert_eq!(s["minValues"]["id"], 1);
        assert_eq!(s["maxValues"]["id"], 3);
        assert_eq!(s["minValues"]["name"], "a");
        assert_eq!(s["nullCount"]["name"], 1);
        // 1.0005 s rounds down for the minimum, 2.000000 s stays for the maximum.
        assert_eq!(s["minValues"]["at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(s["maxValues"]["at"], "1970-01-01T00:00:02.000Z");
        let only = statistics(&batch(), &StatsColumns::from_config([("delta.dataSkippingStatsColumns", "name")]));
        assert_eq!(only["nullCount"].as_object().unwrap().len(), 1, "{only}");
    }

    #[tokio::test]
    async fn a_data_file_is_never_replaced() {
        use deltalake::logstore::object_store::{ObjectStoreExt, memory::InMemory};
        let store = InMemory::new();
        let path = Path::from("part-00000-a-c000.snappy.parquet");
        put_new(&store, &path, b"keys".to_vec()).await.unwrap();
        let again = put_new(&store, &path, b"other keys".to_vec()).await.unwrap_err();
        assert!(matches!(again, deltalake::logstore::object_store::Error::AlreadyExists { .. }), "{again}");
        assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap().as_ref(), b"keys");
    }

    #[test]
    fn rows_split_by_partition_value() {
        let parts = split("t", &batch(), &["d"]).unwrap();
        assert_eq!(parts, vec![(vec![Some("x".to_string())], vec![0, 2]), (vec![Some("y".to_string())], vec![1])]);
        assert!(split("t", &batch(), &["at"]).unwrap_err().to_string().contains("does not partition by"));
    }

    #[test]
    fn a_changed_column_type_is_refused_and_new_columns_are_added() {
        let table = Schema::new(vec![Field::new("id", DataType::Utf8, false)]);
        let err = merged_schema("t", Some(&table), batch().schema().as_ref()).unwrap_err();
        assert!(err.to_string().contains("column id is Utf8 in the table but Int64"), "{err}");
        let table = Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("old", DataType::Utf8, true)]);
        let (merged, evolved) = merged_schema("t", Some(&table), batch().schema().as_ref()).unwrap();
        assert!(evolved);
        let names: Vec<&str> = merged.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "old", "name", "at", "d"]);
        let conformed = conform(&batch(), &merged).unwrap();
        assert_eq!(conformed.column(1).null_count(), 3);
    }
}
