//! Runs the catalogue's queries with DataFusion over the Delta tables themselves: each request
//! opens a session, registers the tables its query reads (from the lake's per-process table
//! cache, brought up to date: one log listing per table), binds the filters and collects.

use std::sync::Arc;

use alkasba_lake::Lake;
use alkasba_lake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use alkasba_lake::arrow::compute::cast;
use alkasba_lake::arrow::datatypes::{DataType, Float64Type, Int64Type};
use serde::Serialize;
use serde_json::Value;

use crate::params::Filters;
use crate::queries::{Query, query};
use crate::{Error, Result};

/// A query's answer: column names once, then rows of values (numbers, strings, booleans,
/// nulls; dates and timestamps as ISO strings, decimals as numbers).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Answer {
    /// The values of column `name`.
    pub fn column(&self, name: &str) -> Option<Vec<&Value>> {
        let i = self.columns.iter().position(|c| c == name)?;
        Some(self.rows.iter().map(|r| &r[i]).collect())
    }
}

/// The query engine over one lake.
#[derive(Clone)]
pub struct Engine {
    lake: Arc<Lake>,
}

impl Engine {
    pub fn new(lake: Arc<Lake>) -> Self {
        Self { lake }
    }

    /// The lake it reads.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Runs the query named `name` with `filters`.
    pub async fn run(&self, name: &str, filters: &Filters) -> Result<Answer> {
        let q = query(name).ok_or_else(|| Error::NotFound(format!("query {name:?}")))?;
        self.run_query(q, filters).await
    }

    async fn run_query(&self, q: &Query, filters: &Filters) -> Result<Answer> {
        let failed = |e: &dyn std::fmt::Display| Error::Query { query: q.name.to_string(), reason: e.to_string() };
        let ctx = alkasba_lake::read::session();
        // The tables are brought up to date concurrently (a log listing each).
        let tables = futures::future::try_join_all(q.sources.iter().map(|s| async move {
            let path = s.path.resolve();
            let table = self.lake.current(&self.lake.table(&path)?).await?;
            if table.version().is_none() {
                return Err(Error::NoTable(path));
            }
            Ok::<_, Error>((s.name, table))
        }))
        .await?;
        for (name, table) in tables {
            table.update_datafusion_session(&ctx.state()).map_err(|e| failed(&e))?;
            let provider = table.table_provider().await.map_err(|e| failed(&e))?;
            ctx.register_table(name, provider).map_err(|e| failed(&e))?;
        }
        let sql = q.sql.replace("{grain}", filters.grain.unit());
        let df = ctx.sql(&sql).await.map_err(|e| failed(&e))?.with_param_values(filters.values()).map_err(|e| failed(&e))?;
        let batches = df.collect().await.map_err(|e| failed(&e))?;
        let columns = match batches.first() {
            Some(b) => b.schema().fields().iter().map(|f| f.name().clone()).collect(),
            None => Vec::new(),
        };
        let mut rows = Vec::new();
        for b in &batches {
            rows.extend(to_rows(b).map_err(|e| failed(&e))?);
        }
        tracing::debug!(query = q.name, rows = rows.len(), "query answered");
        Ok(Answer { columns, rows })
    }
}

/// A batch as rows of JSON values. Written here rather than with arrow-json, whose writer gives
/// an object per row (the names repeated on every row) and decimals as strings: the pages want
/// names once and numbers they can chart.
fn to_rows(batch: &RecordBatch) -> std::result::Result<Vec<Vec<Value>>, alkasba_lake::arrow::error::ArrowError> {
    let columns: Vec<Vec<Value>> = batch.columns().iter().map(values).collect::<std::result::Result<_, _>>()?;
    Ok((0..batch.num_rows()).map(|i| columns.iter().map(|c| c[i].clone()).collect()).collect())
}

fn values(array: &ArrayRef) -> std::result::Result<Vec<Value>, alkasba_lake::arrow::error::ArrowError> {
    let n = array.len();
    let out = match array.data_type() {
        DataType::Boolean => {
            let a = array.as_boolean();
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { Value::Bool(a.value(i)) }).collect()
        }
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let c = cast(array, &DataType::Int64)?;
            let a = c.as_primitive::<Int64Type>();
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { Value::from(a.value(i)) }).collect()
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) | DataType::Decimal256(..) => {
            let c = cast(array, &DataType::Float64)?;
            let a = c.as_primitive::<Float64Type>();
            // NaN and infinities have no JSON form: null.
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { serde_json::Number::from_f64(a.value(i)).map_or(Value::Null, Value::Number) }).collect()
        }
        _ => {
            let c = cast(array, &DataType::Utf8)?;
            let a = c.as_string::<i32>();
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { Value::String(a.value(i).to_string()) }).collect()
        }
    };
    Ok(out)
}
