//! Delta plumbing shared by the transform, the marts and maintenance: sessions, progress
//! markers, change reads, upserts (MERGE) and partition replacement, each commit carrying the
//! markers of what it absorbed so a re-run or a concurrent run never applies anything twice.

use std::sync::Arc;

use alkasba_lake::Attempt;
use alkasba_lake::Lake;
use alkasba_lake::arrow::array::{ArrayRef, RecordBatch};
use alkasba_lake::arrow::compute::cast;
use alkasba_lake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use alkasba_lake::lake::is_conflict;
use deltalake::DeltaTable;
use deltalake::datafusion::datasource::{MemTable, TableProvider};
use deltalake::datafusion::physical_plan::collect;
use deltalake::datafusion::prelude::{SessionContext, lit};
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use url::Url;

use crate::{Error, Result};

/// Column every change read carries: `insert`, `update_preimage`, `update_postimage`, `delete`.
pub const CHANGE_TYPE: &str = "_change_type";

/// Properties of every silver table: the change data feed is what the marts read incrementally.
const SILVER_PROPERTIES: [(&str, &str); 3] = [("delta.enableChangeDataFeed", "true"), ("delta.logRetentionDuration", "interval 30 days"), ("delta.deletedFileRetentionDuration", "interval 7 days")];
/// Properties of every gold table.
const GOLD_PROPERTIES: [(&str, &str); 2] = [("delta.logRetentionDuration", "interval 30 days"), ("delta.deletedFileRetentionDuration", "interval 7 days")];

pub use alkasba_lake::read::session;

/// The table at `uri` as of now (from the lake's per-process cache, brought up to date), `None`
/// when no table exists there yet.
pub async fn open(lake: &Lake, uri: &Url) -> Result<Option<DeltaTable>> {
    let table = lake.current(uri).await?;
    Ok(table.version().is_some().then_some(table))
}

/// The marker value `app_id` has in `table` (0 when the table or the marker does not exist).
/// By convention a marker holds the next source version to read, so 0 means "nothing yet".
pub async fn marker(lake: &Lake, table: Option<&DeltaTable>, app_id: &str) -> Result<i64> {
    let Some(t) = table else { return Ok(0) };
    match recent_marker(t, app_id).await? {
        Some(v) => Ok(v),
        None => Ok(lake.txn_version(t, app_id).await?),
    }
}

/// Commits read back from the newest when looking for a marker before asking the log replay.
const RECENT_COMMITS: u64 = 4;

/// `app_id`'s marker from the table's newest commits, `None` when none of the last
/// [`RECENT_COMMITS`] carries it. The batch jobs commit their markers with every write, so the
/// newest commit (or the one before a compaction) usually has it: one small read, where the
/// log replay behind `Lake::txn_version` reads the whole log segment (on S3, a request per
/// commit since the last checkpoint) for every marker. Walking back from the newest commit,
/// the first marker found is the latest, as the log replay would have it.
async fn recent_marker(table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
    use deltalake::kernel::Action;
    let Some(newest) = table.version() else { return Ok(None) };
    for v in (newest.saturating_sub(RECENT_COMMITS - 1)..=newest).rev() {
        let Some(actions) = Lake::commit_actions(table, v).await? else { return Ok(None) };
        for action in actions {
            if let Action::Txn(t) = action
                && t.app_id == app_id
            {
                return Ok(Some(t.version));
            }
        }
    }
    Ok(None)
}

/// `table`'s current snapshot as a DataFusion table for `ctx`.
async fn provider(ctx: &SessionContext, table: &DeltaTable) -> Result<Arc<dyn TableProvider>> {
    let uri = table.table_url();
    table.update_datafusion_session(&ctx.state()).map_err(|e| Error::delta(uri, e))?;
    table.table_provider().await.map_err(|e| Error::query(uri, e))
}

/// Registers `table`'s current snapshot as `name` in `ctx`.
pub async fn register(ctx: &SessionContext, name: &str, table: &DeltaTable) -> Result<()> {
    let uri = table.table_url().clone();
    let provider = provider(ctx, table).await?;
    ctx.register_table(name, provider).map_err(|e| Error::query(format!("registering {uri}"), e))?;
    Ok(())
}

/// Registers `table`'s current snapshot as `name`, every row an insert (a change read from
/// version 0), as a view: nothing is read until a query needs it.
pub async fn register_as_inserts(ctx: &SessionContext, name: &str, table: &DeltaTable) -> Result<()> {
    let view = as_inserts(ctx, table).await?;
    ctx.register_table(name, view.into_view()).map_err(|e| Error::query(format!("registering {name}"), e))?;
    Ok(())
}

/// `table`'s current snapshot with a [`CHANGE_TYPE`] column saying `insert` on every row.
async fn as_inserts(ctx: &SessionContext, table: &DeltaTable) -> Result<deltalake::datafusion::dataframe::DataFrame> {
    let uri = table.table_url().clone();
    ctx.read_table(provider(ctx, table).await?).and_then(|df| df.with_column(CHANGE_TYPE, lit("insert"))).map_err(|e| Error::query(&uri, e))
}

/// Registers `batches` (with `schema`) as `name`.
pub fn register_batches(ctx: &SessionContext, name: &str, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<()> {
    let mem = MemTable::try_new(schema, vec![batches]).map_err(|e| Error::query(format!("table {name}"), e))?;
    ctx.register_table(name, Arc::new(mem)).map_err(|e| Error::query(format!("table {name}"), e))?;
    Ok(())
}

/// The rows of `table` changed in versions `from..=to`, with a [`CHANGE_TYPE`] column. From
/// version 0 this is the whole snapshot (every row an insert: cheaper than replaying the log).
/// Reads the change data feed otherwise: appends are inserts (bronze needs no CDF files), MERGE
/// commits carry their own change files (silver has the feed enabled), and commits that do not
/// change data (compaction) yield nothing.
pub async fn changes(table: &DeltaTable, from: i64, to: i64) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let uri = table.table_url().clone();
    let ctx = session();
    if from == 0 {
        let df = as_inserts(&ctx, table).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|e| Error::query(&uri, e))?;
        return plain(schema, batches);
    }
    let plan = table.clone().scan_cdf().with_starting_version(from as u64).with_ending_version(to as u64).build(&ctx.state(), None).await.map_err(|e| Error::delta(&uri, e))?;
    let schema = plan.schema();
    let batches = collect(plan, ctx.task_ctx()).await.map_err(|e| Error::query(format!("{uri} changes {from}..={to}"), e))?;
    // The commit columns are not needed downstream.
    let keep: Vec<usize> = schema.fields().iter().enumerate().filter(|(_, f)| !matches!(f.name().as_str(), "_commit_version" | "_commit_timestamp")).map(|(i, _)| i).collect();
    let projected: SchemaRef = Arc::new(schema.project(&keep).map_err(|e| Error::query(&uri, e))?);
    let batches = batches.iter().map(|b| b.project(&keep)).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| Error::query(&uri, e))?;
    plain(projected, batches)
}

/// The live data files of `table`'s snapshot with their sizes in bytes, oldest first (by the
/// time each was written, then by path: the same order for the same snapshot), from the log:
/// no data file is read. Oldest first keeps rows written together (an ingestion's pages, in
/// order of modification) together, so a slice of files touches few of a target's partitions.
pub fn files(table: &DeltaTable) -> Result<Vec<(String, u64)>> {
    let uri = table.table_url().clone();
    let snapshot = table.snapshot().map_err(|e| Error::delta(&uri, e))?;
    let mut out: Vec<(i64, String, u64)> = snapshot.log_data().iter().map(|f| (f.modification_time(), f.path().into_owned(), f.size().max(0) as u64)).collect();
    out.sort();
    Ok(out.into_iter().map(|(_, p, s)| (p, s)).collect())
}

/// The rows of `paths`, live files of `table`'s snapshot as [`files`] names them, as plain
/// batches. A path that is not live in that snapshot is an error, never skipped.
pub async fn read_files(table: &DeltaTable, paths: &[String]) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let uri = table.table_url().clone();
    let ctx = session();
    table.update_datafusion_session(&ctx.state()).map_err(|e| Error::delta(&uri, e))?;
    let scan = table.table_provider().with_file_paths(paths.iter().cloned()).build().await.map_err(|e| Error::query(&uri, e))?;
    let df = ctx.read_table(Arc::new(scan)).map_err(|e| Error::query(&uri, e))?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(|e| Error::query(format!("{uri} ({} files)", paths.len()), e))?;
    plain(schema, batches)
}

/// The last version `to` in `from..=last` such that the data files added by commits
/// `from..=to` stay within `budget` bytes (at least `from`): bounds what a change read holds in
/// memory whatever each commit carries. Reads each commit file (the change read reads them
/// anyway), 16 at a time; stops before a commit whose file is gone.
pub async fn versions_within(table: &DeltaTable, from: i64, last: i64, budget: u64) -> Result<i64> {
    use deltalake::kernel::Action;
    use futures::StreamExt;
    let mut sizes = futures::stream::iter(from..=last).map(|v| async move { Lake::commit_actions(table, v as u64).await.map(|a| (v, a)) }).buffered(16);
    let (mut to, mut bytes) = (from, 0u64);
    while let Some(next) = sizes.next().await {
        let (v, actions) = next?;
        let Some(actions) = actions else { break };
        let added: u64 = actions.iter().filter_map(|a| if let Action::Add(add) = a { add.data_change.then_some(add.size.max(0) as u64) } else { None }).sum();
        if v > from && bytes + added > budget {
            break;
        }
        bytes += added;
        to = v;
    }
    Ok(to)
}

/// `batches` with every string-like column as plain `Utf8` (DataFusion reads Parquet strings
/// as views; Delta tables, Athena and Trino want plain strings), and every field nullable. A
/// batch that cannot be converted is an error, never dropped.
pub fn plain(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let target = |t: &DataType| match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Dictionary(_, v) if matches!(v.as_ref(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) => DataType::Utf8,
        other => other.clone(),
    };
    let fields: Vec<Field> = schema.fields().iter().map(|f| Field::new(f.name(), target(f.data_type()), true)).collect();
    let out_schema: SchemaRef = Arc::new(Schema::new(fields));
    let out = batches
        .into_iter()
        .map(|b| {
            let cols: Vec<ArrayRef> =
                b.columns().iter().zip(out_schema.fields()).map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) }).collect::<std::result::Result<_, _>>()?;
            RecordBatch::try_new(out_schema.clone(), cols)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Data { what: "converting a batch to plain strings".into(), reason: e.to_string() })?;
    Ok((out_schema, out))
}

/// Runs `sql` in `ctx` and collects plain batches.
pub async fn query(ctx: &SessionContext, what: &str, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let df = ctx.sql(sql).await.map_err(|e| Error::query(what, e))?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(|e| Error::query(what, e))?;
    plain(schema, batches)
}

/// The distinct values of partition column `column` among `table`'s live files, sorted, from
/// its file list (no data file is read; a null partition value is left out).
pub fn partition_values(table: &DeltaTable, column: &str) -> Result<Vec<String>> {
    let uri = table.table_url().clone();
    let snapshot = table.snapshot().map_err(|e| Error::delta(&uri, e))?;
    let values: std::collections::BTreeSet<String> = snapshot.log_data().iter().filter_map(|f| f.partition_values_map().get(column).cloned().flatten()).collect();
    Ok(values.into_iter().collect())
}

/// The values of partition column `column` in which the commits `from..=to` of `table` added or
/// removed data files (compaction, which changes no data, is left out): the partitions those
/// versions rewrote. `None` when that cannot be told from the log (a commit already cleaned up,
/// a schema change, a remove without its partition values): the caller then takes every
/// partition as touched.
pub async fn touched_partitions(table: &DeltaTable, column: &str, from: i64, to: i64) -> Result<Option<Vec<String>>> {
    use deltalake::kernel::Action;
    let mut out = std::collections::BTreeSet::new();
    for v in from.max(0)..=to {
        let Some(actions) = Lake::commit_actions(table, v as u64).await? else { return Ok(None) };
        for action in actions {
            let value = match action {
                Action::Add(a) if a.data_change => a.partition_values.get(column).cloned(),
                Action::Remove(r) if r.data_change => match r.partition_values.as_ref().map(|p| p.get(column).cloned()) {
                    Some(v) => v,
                    None => return Ok(None),
                },
                Action::Metadata(_) => return Ok(None),
                _ => continue,
            };
            match value {
                Some(Some(v)) => {
                    out.insert(v);
                }
                // A null partition value, or a column the table is not partitioned by.
                Some(None) => {}
                None => return Ok(None),
            }
        }
    }
    Ok(Some(out.into_iter().collect()))
}

/// Properties of every batch commit: the lake's commit properties (no automatic retry, no
/// expired-log clean-up) carrying the markers.
fn commit_props(txns: &[(String, i64)]) -> CommitProperties {
    alkasba_lake::commit_properties().with_application_transactions(txns.iter().map(|(a, v)| Transaction::new(a, *v)).collect())
}

/// Keeps the table a commit just left in the lake's cache (best effort: without it the next
/// open reads the commit back).
async fn remember(lake: &Lake, uri: &Url, table: &DeltaTable) {
    if let Err(e) = lake.remember(uri, table).await {
        tracing::debug!(table = %uri, error = %e, "not cached after the commit");
    }
}

/// Whether `table` already carries every one of `markers` at or beyond its value (the work they
/// stand for is in). No markers: never.
async fn absorbed(lake: &Lake, table: &DeltaTable, markers: &[(String, i64)]) -> Result<bool> {
    if markers.is_empty() {
        return Ok(false);
    }
    for (app, v) in markers {
        if marker(lake, table.version().is_some().then_some(table), app).await? < *v {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What an upsert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    /// Committed as this version.
    Committed { version: i64, rows: usize },
    /// A concurrent run had already absorbed this work (its marker is committed).
    AlreadyDone,
}

/// How to upsert rows into a silver table.
#[derive(Debug, Clone, Copy)]
pub struct UpsertSpec<'a> {
    /// Primary-key columns.
    pub keys: &'a [&'a str],
    /// The column whose larger value wins: a row only replaces an older one.
    pub seq: &'a str,
    /// The partition column (part of the match, so MERGE reads only the partitions touched).
    pub partition: Option<&'a str>,
}

/// Upserts `batches` (already one row per key) into the table at `uri` with MERGE: a newer row
/// (larger `seq`) replaces the stored one, an older or equal one changes nothing (late and
/// out-of-order versions), a new key is inserted. The commit carries `markers` (app id, next
/// source position); if every one is already at or beyond its value, nothing is written.
pub async fn upsert(lake: &Lake, uri: &Url, schema: SchemaRef, batches: Vec<RecordBatch>, spec: UpsertSpec<'_>, markers: &[(String, i64)]) -> Result<Upserted> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    // A write needs at least one batch, even an empty one, to know the schema.
    let batches = if batches.is_empty() { vec![RecordBatch::new_empty(schema.clone())] } else { batches };
    let (batches, schema) = (&batches, &schema);
    lake.commit_with_retries(uri, |table| async move {
        if absorbed(lake, &table, markers).await? {
            return Ok(Attempt::Done(Upserted::AlreadyDone));
        }
        let props = commit_props(markers);
        let result = if table.version().is_none() || rows == 0 {
            // A new table (its rows are already one per key), or only a marker to move.
            let mut w = table.write(batches.clone()).with_save_mode(SaveMode::Append).with_schema_mode(SchemaMode::Merge).with_commit_properties(props);
            if let Some(p) = spec.partition {
                w = w.with_partition_columns([p.to_string()]);
            }
            w = w.with_configuration(SILVER_PROPERTIES.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))));
            w.await.map(|t| t.version().unwrap_or_default() as i64)
        } else {
            let ctx = session();
            let source = ctx.read_batches(batches.clone()).map_err(|e| Error::query(uri, e))?;
            let mut on: Vec<String> = spec.keys.iter().map(|k| format!("t.{k} = s.{k}")).collect();
            if let Some(p) = spec.partition {
                on.push(format!("t.{p} = s.{p}"));
            }
            let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let merged = table
                .merge(source, on.join(" AND "))
                .with_source_alias("s")
                .with_target_alias("t")
                .with_merge_schema(true)
                .with_commit_properties(props)
                .when_matched_update(|u| columns.iter().fold(u.predicate(format!("s.{seq} > t.{seq}", seq = spec.seq)), |u, c| u.update(c.as_str(), format!("s.{c}"))))
                .and_then(|m| m.when_not_matched_insert(|i| columns.iter().fold(i, |i, c| i.set(c.as_str(), format!("s.{c}")))))
                .map_err(|e| Error::delta(uri, e))?;
            merged.await.map(|(t, _)| t.version().unwrap_or_default() as i64)
        };
        match result {
            Ok(version) => Ok(Attempt::Done(Upserted::Committed { version, rows })),
            Err(e) if is_conflict(&e) => Ok(Attempt::Contended),
            Err(e) => Err(Error::delta(uri, e)),
        }
    })
    .await
}

/// Replaces the rows of the table at `uri` that match `predicate` (all rows when `None`) with
/// `batches`, in one commit carrying `markers`. Readers see the old rows or the new ones, never
/// a mix. Skipped when every marker is already committed.
pub async fn replace(lake: &Lake, uri: &Url, schema: SchemaRef, batches: Vec<RecordBatch>, predicate: Option<&str>, partition: Option<&str>, markers: &[(String, i64)]) -> Result<Upserted> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let batches = if batches.is_empty() { vec![RecordBatch::new_empty(schema)] } else { batches };
    let batches = &batches;
    lake.commit_with_retries(uri, |table| async move {
        if absorbed(lake, &table, markers).await? {
            return Ok(Attempt::Done(Upserted::AlreadyDone));
        }
        let creating = table.version().is_none();
        let mut w = table.write(batches.clone()).with_commit_properties(commit_props(markers));
        w = match predicate {
            // Nothing to replace: only the markers move (an empty append).
            Some(_) if !creating && rows == 0 => w.with_save_mode(SaveMode::Append),
            Some(p) if !creating => w.with_save_mode(SaveMode::Overwrite).with_replace_where(p.to_string()),
            _ => w.with_save_mode(SaveMode::Overwrite).with_schema_mode(SchemaMode::Overwrite),
        };
        if let Some(p) = partition {
            w = w.with_partition_columns([p.to_string()]);
        }
        if creating {
            w = w.with_configuration(GOLD_PROPERTIES.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))));
        }
        match w.await {
            Ok(t) => {
                remember(lake, uri, &t).await;
                Ok(Attempt::Done(Upserted::Committed { version: t.version().unwrap_or_default() as i64, rows }))
            }
            Err(e) if is_conflict(&e) => Ok(Attempt::Contended),
            Err(e) => Err(Error::delta(uri, e)),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use alkasba_lake::StorageConfig;
    use alkasba_lake::arrow::array::{Int64Array, StringArray};

    fn batch(rows: &[(i64, i64, &str)]) -> (SchemaRef, Vec<RecordBatch>) {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("seq", DataType::Int64, true), Field::new("v", DataType::Utf8, true)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            ],
        )
        .unwrap();
        (schema, vec![b])
    }

    async fn values(lake: &Lake, uri: &Url) -> Vec<(i64, String)> {
        let t = open(lake, uri).await.unwrap().unwrap();
        let mut out = Vec::new();
        for b in alkasba_lake::read::scan(&t, None, &["id", "v"]).await.unwrap() {
            let ids = cast(b.column(0), &DataType::Int64).unwrap();
            let vs = alkasba_lake::read::strings(b.column(1)).unwrap();
            let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
            out.extend((0..b.num_rows()).map(|i| (ids.value(i), vs.value(i).to_string())));
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn newer_versions_win_older_and_late_ones_change_nothing_and_markers_skip_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(&format!("file://{}", dir.path().display()), StorageConfig { endpoint_url: None, region: "us-east-1".into() }).unwrap();
        let uri = Url::parse(&format!("file://{}/silver/t", dir.path().display())).unwrap();
        let spec = UpsertSpec { keys: &["id"], seq: "seq", partition: None };
        let (s, b) = batch(&[(1, 10, "a"), (2, 10, "b")]);
        assert!(matches!(upsert(&lake, &uri, s, b, spec, &[("m".into(), 1)]).await.unwrap(), Upserted::Committed { .. }));
        // A late, older version of 1, a newer version of 2, a new key 3.
        let (s, b) = batch(&[(1, 5, "old"), (2, 20, "b2"), (3, 1, "c")]);
        assert!(matches!(upsert(&lake, &uri, s.clone(), b.clone(), spec, &[("m".into(), 2)]).await.unwrap(), Upserted::Committed { .. }));
        assert_eq!(values(&lake, &uri).await, vec![(1, "a".into()), (2, "b2".into()), (3, "c".into())]);
        // The same work again (a redelivery): its marker is committed, nothing is written.
        assert_eq!(upsert(&lake, &uri, s, b, spec, &[("m".into(), 2)]).await.unwrap(), Upserted::AlreadyDone);
        let t = open(&lake, &uri).await.unwrap().unwrap();
        assert_eq!(t.version(), Some(1));
        assert_eq!(marker(&lake, Some(&t), "m").await.unwrap(), 2);
        // A step that read no rows (e.g. only compaction commits) still moves its marker.
        let (s, _) = batch(&[]);
        assert!(matches!(upsert(&lake, &uri, s, Vec::new(), spec, &[("m".into(), 7)]).await.unwrap(), Upserted::Committed { rows: 0, .. }));
        let t = open(&lake, &uri).await.unwrap().unwrap();
        assert_eq!(marker(&lake, Some(&t), "m").await.unwrap(), 7);
        assert_eq!(values(&lake, &uri).await.len(), 3);
        // More commits than the recent ones read carry another job's marker: "m" still comes
        // from the log replay, "o" from the newest commit, a marker never written is 0.
        for i in 1..=RECENT_COMMITS as i64 + 1 {
            let (s, _) = batch(&[]);
            upsert(&lake, &uri, s, Vec::new(), spec, &[("o".into(), i)]).await.unwrap();
        }
        let t = open(&lake, &uri).await.unwrap().unwrap();
        assert_eq!(recent_marker(&t, "m").await.unwrap(), None);
        assert_eq!(marker(&lake, Some(&t), "m").await.unwrap(), 7);
        assert_eq!(marker(&lake, Some(&t), "o").await.unwrap(), RECENT_COMMITS as i64 + 1);
        assert_eq!(marker(&lake, Some(&t), "never").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn replace_swaps_only_the_matching_rows_and_skips_absorbed_work() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(&format!("file://{}", dir.path().display()), StorageConfig { endpoint_url: None, region: "us-east-1".into() }).unwrap();
        let uri = Url::parse(&format!("file://{}/gold/g", dir.path().display())).unwrap();
        let (s, b) = batch(&[(1, 1, "a"), (2, 1, "b")]);
        replace(&lake, &uri, s.clone(), b, None, None, &[("in".into(), 3)]).await.unwrap();
        let (_, b) = batch(&[(2, 2, "b2")]);
        assert!(matches!(replace(&lake, &uri, s.clone(), b.clone(), Some("id IN (2)"), None, &[("in".into(), 4)]).await.unwrap(), Upserted::Committed { .. }));
        assert_eq!(values(&lake, &uri).await, vec![(1, "a".into()), (2, "b2".into())]);
        assert_eq!(replace(&lake, &uri, s.clone(), b, Some("id IN (2)"), None, &[("in".into(), 4)]).await.unwrap(), Upserted::AlreadyDone);
        // Nothing touched (an input moved without changing a date): only the markers move.
        assert!(matches!(replace(&lake, &uri, s, Vec::new(), Some("false"), None, &[("in".into(), 5)]).await.unwrap(), Upserted::Committed { rows: 0, .. }));
        assert_eq!(values(&lake, &uri).await, vec![(1, "a".into()), (2, "b2".into())]);
    }
}
