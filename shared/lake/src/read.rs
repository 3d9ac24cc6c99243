//! Reading Delta tables back: [`select`] (keyrings, dedupe lookups, run ledgers: a few columns
//! under a conjunction of equalities and ranges, no query engine) and, with the `query` feature,
//! [`scan`] and [`session`] through DataFusion (the batch layer, the dashboard, the tools).

use std::collections::HashMap;

use deltalake::DeltaTable;
#[cfg(feature = "query")]
use deltalake::arrow::record_batch::RecordBatch;
#[cfg(feature = "query")]
use deltalake::datafusion::prelude::{Expr, SessionContext};
use url::Url;

use crate::{Error, Result, StorageConfig};

/// Opens the table at `uri`, or `None` when no table exists there yet.
pub async fn open_table(uri: &Url, storage: &StorageConfig) -> Result<Option<DeltaTable>> {
    crate::table::register_handlers();
    let mut table = deltalake::DeltaTableBuilder::from_url(uri.clone()).map_err(|e| Error::delta(uri, e))?.with_storage_options(storage.storage_options()).build().map_err(|e| Error::delta(uri, e))?;
    match table.load().await {
        Ok(()) => Ok(Some(table)),
        Err(deltalake::DeltaTableError::NotATable(_)) => Ok(None),
        // A local path that does not exist yet (S3 answers NotATable instead).
        Err(deltalake::DeltaTableError::KernelError(k)) if k.to_string().contains("does not exist") => Ok(None),
        Err(e) => Err(Error::delta(uri, e)),
    }
}

pub use crate::select::{Filter, Scalar, select};

/// The rows of `table` matching `filter`, with only `columns` (all when empty).
#[cfg(feature = "query")]
pub async fn scan(table: &DeltaTable, filter: Option<Expr>, columns: &[&str]) -> Result<Vec<RecordBatch>> {
    let uri: Url = table.table_url().clone();
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).map_err(|e| Error::delta(&uri, e))?;
    let provider = table.table_provider().await.map_err(|e| Error::Query { uri: uri.to_string(), reason: e.to_string() })?;
    let mut df = ctx.read_table(provider).map_err(|e| Error::Query { uri: uri.to_string(), reason: e.to_string() })?;
    if let Some(f) = filter {
        df = df.filter(f).map_err(|e| Error::Query { uri: uri.to_string(), reason: e.to_string() })?;
    }
    if !columns.is_empty() {
        df = df.select_columns(columns).map_err(|e| Error::Query { uri: uri.to_string(), reason: e.to_string() })?;
    }
    df.collect().await.map_err(|e| Error::Query { uri: uri.to_string(), reason: e.to_string() })
}

/// A DataFusion session for our SQL: plain UTF-8 strings (what Delta, Athena and Trino call
/// `string`), identifiers as written. The batch layer's marts and the dashboard's queries run in
/// it, so both read the same types.
#[cfg(feature = "query")]
pub fn session() -> SessionContext {
    let mut cfg = deltalake::datafusion::execution::config::SessionConfig::new().with_information_schema(false);
    cfg.options_mut().sql_parser.map_string_types_to_utf8view = false;
    cfg.options_mut().execution.parquet.schema_force_view_types = false;
    cfg.options_mut().sql_parser.enable_ident_normalization = false;
    SessionContext::new_with_config(cfg)
}

/// Storage options as a map (for callers building their own tables).
pub fn options(storage: &StorageConfig) -> HashMap<String, String> {
    storage.storage_options()
}

/// A column as plain UTF-8 strings, whatever string layout the reader chose (DataFusion reads
/// Parquet strings as views).
pub fn strings(array: &deltalake::arrow::array::ArrayRef) -> Result<deltalake::arrow::array::StringArray> {
    use deltalake::arrow::array::AsArray;
    let cast = deltalake::arrow::compute::cast(array, &deltalake::arrow::datatypes::DataType::Utf8)?;
    Ok(cast.as_string::<i32>().clone())
}

/// A column as plain binary values (see [`strings`]).
pub fn binaries(array: &deltalake::arrow::array::ArrayRef) -> Result<deltalake::arrow::array::BinaryArray> {
    use deltalake::arrow::array::AsArray;
    let cast = deltalake::arrow::compute::cast(array, &deltalake::arrow::datatypes::DataType::Binary)?;
    Ok(cast.as_binary::<i32>().clone())
}
