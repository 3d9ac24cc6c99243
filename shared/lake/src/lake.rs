//! The lake: where every table lives (see [`crate::layout`]), a cache of opened tables, and
//! the one way to commit: re-read, check the application transaction, append, and on a lost race
//! try again a bounded number of times ([`Lake::commit_with_retries`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use deltalake::DeltaTable;
use deltalake::DeltaTableError;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{Action, MetadataExt, StructType};
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use url::Url;

use crate::{Error, Result, StorageConfig, read, write};

/// Table properties of every appended table: application transaction ids are kept 14 days
/// (longer than any SQS message lives), so the set of markers does not grow forever; the change
/// data feed is on so the batch layer reads only what was appended since its last run (appends
/// write no extra files for it); a checkpoint every [`CHECKPOINT_INTERVAL`] commits.
const TABLE_PROPERTIES: [(&str, &str); 4] =
    [("delta.setTransactionRetentionDuration", "interval 14 days"), ("delta.logRetentionDuration", "interval 30 days"), ("delta.enableChangeDataFeed", "true"), CHECKPOINT_INTERVAL];

/// A checkpoint every 10 commits (Delta's own default; delta-rs's is 100). Looking up a marker
/// that is not in the table (every task's first commit) replays the whole log since the last
/// checkpoint, one GET per commit file: with 100 commits between checkpoints the fetchers'
/// lookups made ingestion's S3 GETs grow with the square of the run (420 GETs for 100,000
/// orders, 2,256 for 300,000; issue 20), and an open replays as many.
pub const CHECKPOINT_INTERVAL: (&str, &str) = ("delta.checkpointInterval", "10");

/// The keyring's: no change data feed (an erasure's delete would copy the erased rows, wrapped
/// keys and all, into `_change_data/` files), statistics on `key_id` only (the log keeps no
/// subject token), and a week of log (an erased person's key ids leave the log within it).
pub const KEYRING_PROPERTIES: [(&str, &str); 5] = [
    ("delta.setTransactionRetentionDuration", "interval 14 days"),
    ("delta.logRetentionDuration", "interval 7 days"),
    ("delta.enableChangeDataFeed", "false"),
    ("delta.dataSkippingStatsColumns", "key_id"),
    CHECKPOINT_INTERVAL,
];

/// Where everything lives. Clones share the cache of opened tables.
///
/// On S3 it needs a multi-thread Tokio runtime (`#[tokio::main]`'s default). On a current-thread
/// one, delta-rs (deltalake-core 1.1) writes a checkpoint with the kernel's synchronous writer on
/// the runtime's only thread, the one that drives the S3 connections its requests wait on: the
/// tenth commit of a table never returned. With the checkpoint moved to a blocking thread, the
/// next fault showed: there each engine delta-rs builds runs a runtime of its own on a thread
/// that ends with the engine (`get_engine`, `TokioBackgroundExecutor`), and pooled S3
/// connections opened on it die with it, so later requests that reuse them fail with "error
/// sending request" (16 tasks retried in a 1M-order run; issue 20, docs/benchmarks.md).
#[derive(Debug, Clone)]
pub struct Lake {
    root: Url,
    storage: StorageConfig,
    /// Tables this process has opened, brought up to date on each use by reading only the
    /// commits since (a fresh open replays the log from the last checkpoint: up to a hundred
    /// object reads per open on a busy table).
    tables: Arc<Mutex<HashMap<Url, Cached>>>,
    /// Commit metadata this process has read, per table and version (see
    /// [`Lake::commit_metadata`]).
    metadata: Arc<Mutex<MetadataCache>>,
    /// The bucket's store behind a cache of its Delta log files ([`Lake::log_cache`]), made at
    /// first use.
    log_cache: Arc<std::sync::OnceLock<std::sync::Arc<crate::log_cache::LogCache>>>,
}

/// Per table, per commit version: the commit's [`Append::metadata`] (`None`: it has none).
type MetadataCache = HashMap<Url, HashMap<u64, Option<serde_json::Value>>>;

/// A cached table and the e-tag of its version's commit file: a table deleted and created again
/// with as many commits has a commit file of that version too, but not the same one.
#[derive(Debug, Clone)]
struct Cached {
    table: DeltaTable,
    tag: Option<String>,
}

/// What a commit attempt did.
#[derive(Debug)]
pub enum Written {
    /// Committed as this table version.
    Committed(i64),
    /// Another writer committed first: re-read the table and try again.
    Conflict,
}

impl Written {
    /// As an attempt of [`Lake::commit_with_retries`]: `done` of the committed version, or
    /// contended.
    pub fn attempt<T>(self, done: impl FnOnce(i64) -> T) -> Attempt<T> {
        match self {
            Written::Committed(v) => Attempt::Done(done(v)),
            Written::Conflict => Attempt::Contended,
        }
    }
}

/// What one attempt of [`Lake::commit_with_retries`] came to.
#[derive(Debug)]
pub enum Attempt<T> {
    /// Done (committed, or nothing left to commit).
    Done(T),
    /// Another writer committed first: re-read the table and try again.
    Contended,
}

/// Files uploaded for an append whose commit lost a race: kept so the next attempt, against the
/// table's new version, commits them again without encoding and uploading the same rows again
/// (with four fetchers on one table a lost race is common, and re-staging was most of a commit's
/// cost; issue 20). Reused only for the same rows under the same schema and partitioning;
/// otherwise removed and staged anew. What is left when the caller stops trying goes with
/// [`Lake::discard`].
#[derive(Debug)]
pub struct Pending {
    /// The table's store (the paths are relative to the table).
    store: std::sync::Arc<dyn deltalake::logstore::object_store::ObjectStore>,
    staged: write::Staged,
    batch: RecordBatch,
    schema: deltalake::arrow::datatypes::SchemaRef,
    partitions: Vec<String>,
}

/// What an append writes (see [`Lake::plan`]).
struct Plan<'a> {
    schema: deltalake::arrow::datatypes::SchemaRef,
    /// The batch adds columns: the commit carries the new schema.
    evolved: bool,
    partitions: Vec<&'a str>,
    stats: write::StatsColumns,
    properties: &'a [(&'a str, &'a str)],
}

/// Attempts of one commit before giving up with [`Error::Contended`] (retryable: the caller's
/// queue brings the work back later).
pub const COMMIT_ATTEMPTS: usize = 30;

/// One append: the rows, the table's partition columns, the application transaction that makes
/// it exactly-once, and metadata kept in the commit's `commitInfo` under [`COMMIT_METADATA_KEY`]
/// (for example what a fetch task has done: data and progress in one atomic write).
#[derive(Debug, Clone, Default)]
pub struct Append<'a> {
    pub partitions: &'a [&'a str],
    pub txn: Option<(String, i64)>,
    pub metadata: Option<serde_json::Value>,
    /// Delta table properties set when this append creates the table (`None`: the lake's
    /// defaults for appended tables).
    pub properties: Option<&'a [(&'a str, &'a str)]>,
}

/// Commit files [`Lake::commit_metadata`] reads at once (a process that has not read a table's
/// log yet reads every commit since the run began).
const COMMIT_READS_AT_ONCE: usize = 16;

/// The `commitInfo` key of [`Append::metadata`].
pub const COMMIT_METADATA_KEY: &str = "alkasba";

impl Pending {
    /// The files a retry loop keeps between its attempts, out of their slot (the lock is never
    /// held across an await, so a poisoned one, from a panic elsewhere, is still usable).
    pub fn take(slot: &std::sync::Mutex<Option<Pending>>) -> Option<Pending> {
        slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Puts back what [`Pending::take`] took.
    pub fn put(slot: &std::sync::Mutex<Option<Pending>>, pending: Option<Pending>) {
        *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = pending;
    }
}

fn join(root: &Url, path: &str) -> Result<Url> {
    let base = root.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/{path}")).map_err(|e| Error::InvalidTableUri { uri: format!("{base}/{path}"), reason: e.to_string() })
}

impl Lake {
    /// The lake at `root` (`s3://bucket` or `s3://bucket/prefix`, `file:///dir` in tests).
    pub fn new(root: &str, storage: StorageConfig) -> Result<Self> {
        let bad = |reason: String| Error::InvalidTableUri { uri: format!("LAKE_ROOT {root}"), reason };
        let root = Url::parse(root.trim_end_matches('/')).map_err(|e| bad(e.to_string()))?;
        if !matches!(root.scheme(), "s3" | "s3a" | "file") {
            return Err(bad("scheme must be s3 or file".into()));
        }
        Ok(Self { root, storage, tables: Arc::default(), metadata: Arc::default(), log_cache: Arc::default() })
    }

    pub fn root(&self) -> &Url {
        &self.root
    }

    pub fn storage(&self) -> &StorageConfig {
        &self.storage
    }

    /// The object store of the lake root (plain objects beside the tables: control markers,
    /// real-time state), built from the same storage options as the tables.
    pub fn object_store(&self) -> Result<std::sync::Arc<dyn deltalake::logstore::object_store::ObjectStore>> {
        let root = &self.root;
        let builder = deltalake::DeltaTableBuilder::from_url(root.clone()).map_err(|e| Error::delta(root, e))?.with_storage_options(self.storage.storage_options());
        let log_store = builder.build_storage().map_err(|e| Error::delta(root, e))?;
        Ok(log_store.object_store(None))
    }

    /// The table at `path` (`silver/orders`, `gold/daily_sales`) under the lake root.
    pub fn table(&self, path: &str) -> Result<Url> {
        join(&self.root, path)
    }

    pub fn bronze(&self, source: &str, stream: &str) -> Result<Url> {
        join(&self.root, &crate::layout::bronze(source, stream))
    }

    pub fn quarantine(&self) -> Result<Url> {
        join(&self.root, crate::layout::QUARANTINE)
    }

    pub fn runs(&self) -> Result<Url> {
        join(&self.root, crate::layout::INGESTION_RUNS)
    }

    pub fn keyring(&self) -> Result<Url> {
        join(&self.root, crate::layout::KEYRING)
    }

    /// Opens a table handle; `version()` is `None` when the table does not exist yet.
    pub async fn open(&self, uri: &Url) -> Result<DeltaTable> {
        crate::table::register_handlers();
        if uri.scheme() == "file" {
            // A local table's directory must exist before deltalake opens it (S3 has no
            // directories).
            if let Ok(path) = uri.to_file_path() {
                std::fs::create_dir_all(&path).map_err(|e| Error::InvalidTableUri { uri: uri.to_string(), reason: format!("{}: {e}", path.display()) })?;
            }
        }
        let mut opts: HashMap<String, String> = self.storage.storage_options();
        opts.insert("timeout".into(), "120s".into());
        let root = self.log_cache(opts.clone())?;
        let mut table =
            deltalake::DeltaTableBuilder::from_url(uri.clone()).map_err(|e| delta(uri, e))?.with_storage_options(opts).with_storage_backend(root, uri.clone()).build().map_err(|e| delta(uri, e))?;
        // As `DeltaTable::try_from_url_with_storage_options`: a location without a table yet
        // opens (version `None`), for the first append to create it.
        match table.load().await {
            Ok(()) | Err(DeltaTableError::NotATable(_)) => Ok(table),
            Err(e) => Err(delta(uri, e)),
        }
    }

    /// The bucket's object store behind a cache of the commit files and checkpoints this process
    /// read or wrote ([`crate::log_cache`]), made once and shared by every table of the lake.
    fn log_cache(&self, opts: HashMap<String, String>) -> Result<std::sync::Arc<dyn deltalake::logstore::object_store::ObjectStore>> {
        if let Some(store) = self.log_cache.get() {
            return Ok(store.clone());
        }
        let root = &self.root;
        let log_store = deltalake::DeltaTableBuilder::from_url(root.clone()).map_err(|e| Error::delta(root, e))?.with_storage_options(opts).build_storage().map_err(|e| Error::delta(root, e))?;
        let store = std::sync::Arc::new(crate::log_cache::LogCache::new(log_store.root_object_store(None)));
        Ok(self.log_cache.get_or_init(|| store).clone())
    }

    /// The table at `uri` as of now, from this process's cache when it has it (reading only the
    /// commits since), else opened; `version()` is `None` when the table does not exist yet.
    pub async fn current(&self, uri: &Url) -> Result<DeltaTable> {
        let cached = self.tables.lock().ok().and_then(|m| m.get(uri).cloned());
        // `None`: not cached, or gone or replaced (the table was deleted, maybe recreated), or
        // unreadable: open afresh.
        let refreshed = match cached {
            None => None,
            Some(c) => self.refreshed(c).await.unwrap_or_else(|e| {
                tracing::debug!(table = %uri, error = %e, "reopening a cached table");
                None
            }),
        };
        let fresh = match refreshed {
            Some(c) => c,
            None => {
                let table = self.open(uri).await?;
                let tag = self.commit_tag(&table, true).await.map_err(|e| delta(uri, e))?.flatten();
                Cached { table, tag }
            }
        };
        if fresh.table.version().is_some()
            && let Ok(mut m) = self.tables.lock()
        {
            m.insert(uri.clone(), fresh.clone());
        }
        Ok(fresh.table)
    }

    /// Keeps `table`, as a commit of this process just left it, in the cache: the next
    /// [`Lake::current`] of `uri` then reads only the commits after it (a mart built from one
    /// just written opens it without reading that commit back).
    pub async fn remember(&self, uri: &Url, table: &DeltaTable) -> Result<()> {
        if table.version().is_none() {
            return Ok(());
        }
        let tag = self.commit_tag(table, true).await.map_err(|e| delta(uri, e))?.flatten();
        if let Ok(mut m) = self.tables.lock() {
            m.insert(uri.clone(), Cached { table: table.clone(), tag });
        }
        Ok(())
    }

    /// The e-tag of the commit file of `table`'s version: `None` when the table has no version
    /// yet or the file is gone, `Some(None)` when the store gives no e-tag. With `kept`, the
    /// tag this process's commit-file cache holds when it holds one: right after the table was
    /// opened, updated or committed to, that file was just listed, read or written, so the
    /// cache is as fresh as a request would be. Without it, always a request (what tells a table
    /// deleted and created again).
    async fn commit_tag(&self, table: &DeltaTable, kept: bool) -> std::result::Result<Option<Option<String>>, DeltaTableError> {
        let Some(v) = table.version() else { return Ok(None) };
        if kept
            && let Some(cache) = self.log_cache.get()
            && let Some(path) = Self::commit_path(table, v)
            && let Some(tag) = cache.kept_tag(&path)
        {
            return Ok(Some(tag));
        }
        Self::head_tag(table, v).await
    }

    /// A commit file's name under the table's root.
    fn commit_file(version: u64) -> String {
        format!("_delta_log/{version:020}.json")
    }

    /// The store path of `table`'s commit file of `version` (as the log cache names it).
    fn commit_path(table: &DeltaTable, version: u64) -> Option<deltalake::logstore::object_store::path::Path> {
        use deltalake::logstore::object_store::path::Path;
        let dir = Path::from_url_path(table.table_url().path()).ok()?;
        Some(Path::from(format!("{dir}/{}", Self::commit_file(version))))
    }

    /// The e-tag of `table`'s commit file of `version`, asked of the store (`None`: gone).
    async fn head_tag(table: &DeltaTable, version: u64) -> std::result::Result<Option<Option<String>>, DeltaTableError> {
        use deltalake::logstore::object_store::{self, ObjectStoreExt};
        let store = table.log_store().object_store(None);
        match store.head(&object_store::path::Path::from(Self::commit_file(version))).await {
            Ok(meta) => Ok(Some(meta.e_tag)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(DeltaTableError::ObjectStore { source: e }),
        }
    }

    /// `cached` brought up to date, `None` if the commit it stands on is gone or is not the one
    /// it read: a table deleted and created again must not be written as if it still had the
    /// old log.
    ///
    /// The update lists the log from its last checkpoint, and the log cache notes each listed
    /// commit file's e-tag: when that listing showed the commit `cached` stands on, its e-tag
    /// there answers, and no request of its own is made (it was a HEAD per refresh: 4 of a
    /// fetcher task's ~33 requests to S3, issue 20). When it did not (the commit is the
    /// checkpoint's own, or gone), the store is asked, as before. What the update read from a
    /// replaced log is dropped with `cached`: the table is opened afresh.
    async fn refreshed(&self, mut cached: Cached) -> std::result::Result<Option<Cached>, DeltaTableError> {
        let Some(before) = cached.table.version() else { return Ok(None) };
        let watched = self.log_cache.get().zip(Self::commit_path(&cached.table, before));
        let take_listed = || watched.as_ref().and_then(|(cache, path)| cache.take_listed(path));
        // Forget what an earlier listing showed: only this update's listing counts.
        take_listed();
        cached.table.update_incremental(None).await?;
        let listed = take_listed();
        let stood_on = match listed {
            Some(tag) => Some(tag),
            None => Self::head_tag(&cached.table, before).await?,
        };
        if stood_on.as_ref() != Some(&cached.tag) {
            return Ok(None);
        }
        if cached.table.version() != Some(before) {
            match self.commit_tag(&cached.table, true).await? {
                Some(tag) => cached.tag = tag,
                None => return Ok(None),
            }
        }
        Ok(Some(cached))
    }

    /// The committed version of application transaction `app_id` (0 when none).
    pub async fn txn_version(&self, table: &DeltaTable, app_id: &str) -> Result<i64> {
        if table.version().is_none() {
            return Ok(0);
        }
        let uri = table.table_url().clone();
        let snapshot = table.snapshot().map_err(|e| delta(&uri, e))?;
        let v = snapshot.transaction_version(table.log_store().as_ref(), app_id).await.map_err(|e| delta(&uri, e))?;
        Ok(v.unwrap_or(0))
    }

    /// Appends `batch` as one commit carrying `append`'s marker and metadata, failing fast (no
    /// automatic retry) if another writer committed since `table` was read: the caller re-reads,
    /// re-checks its markers and duplicates, and tries again (see [`Lake::commit_with_retries`]).
    /// Creates the table on first write. The files of a commit that did not happen are removed.
    pub async fn try_append(&self, table: DeltaTable, batch: RecordBatch, append: &Append<'_>) -> Result<Written> {
        let mut pending = None;
        let written = self.try_append_pending(table, batch, append, &mut pending).await;
        self.discard(pending).await;
        written
    }

    /// [`Lake::try_append`], keeping the files of a lost race in `pending` for the next attempt
    /// (reused there if it appends the same rows; see [`Pending`]). After the last attempt, pass
    /// what is left to [`Lake::discard`].
    pub async fn try_append_pending(&self, table: DeltaTable, batch: RecordBatch, append: &Append<'_>, pending: &mut Option<Pending>) -> Result<Written> {
        let uri = table.table_url().clone();
        let snapshot = table.snapshot().ok();
        let plan = self.plan(&table, &batch, append)?;
        let (schema, partitions, properties) = (&plan.schema, &plan.partitions, plan.properties);
        let log_store = table.log_store();
        let columns: StructType = schema.as_ref().try_into_kernel().map_err(|e| Error::delta(&uri, e.into()))?;
        let evolution = match (snapshot, plan.evolved) {
            (Some(state), true) => Some(Action::Metadata(state.metadata().clone().with_schema(&columns).map_err(|e| Error::delta(&uri, e.into()))?)),
            _ => None,
        };
        // The files of the last lost race (or of `prestage`), if they hold these rows under this
        // schema and layout.
        let t0 = std::time::Instant::now();
        let reusable = self.stage_planned(&table, batch, &plan, pending).await?;
        let staged_ms = t0.elapsed().as_millis() as u64;
        let Some(staged) = pending.as_ref().map(|p| &p.staged) else { return Err(Error::InvalidEvent(format!("{uri}: nothing staged"))) };
        let adds: Vec<Action> = staged.adds.iter().cloned().map(Action::Add).collect();
        let committed: std::result::Result<u64, Option<Error>> = match snapshot {
            // The first append creates the table with its rows, in one commit (version 0).
            None => {
                let created = CreateBuilder::new()
                    .with_log_store(log_store.clone())
                    .with_columns(columns.fields().cloned())
                    .with_partition_columns(partitions.iter().map(|p| p.to_string()))
                    .with_configuration(properties.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))))
                    .with_save_mode(SaveMode::ErrorIfExists)
                    .with_commit_properties(creation_properties(append))
                    .with_actions(adds)
                    .await;
                match created {
                    Ok(t) => Ok(t.version().unwrap_or_default()),
                    // Another writer created it first: a lost race like any other.
                    Err(_) if log_store.is_delta_table_location().await.unwrap_or(false) => Err(None),
                    Err(e) => Err(Some(Error::delta(&uri, e))),
                }
            }
            Some(state) => {
                let actions = evolution.into_iter().chain(adds).collect();
                let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by: (!partitions.is_empty()).then(|| partitions.iter().map(|p| p.to_string()).collect()), predicate: None };
                let metadata = append.metadata.iter().map(|m| (COMMIT_METADATA_KEY.to_string(), m.clone())).collect();
                let txns = append.txn.iter().map(|(app, v)| Transaction::new(app, *v)).collect();
                match write::commit(uri.as_str(), &log_store, state, actions, operation, metadata, txns).await {
                    Ok(Some(v)) => {
                        self.checkpoint_if_due(&table, state, v).await;
                        Ok(v)
                    }
                    Ok(None) => Err(None),
                    Err(e) => Err(Some(e)),
                }
            }
        };
        tracing::debug!(table = %uri, reused = reusable, staged_ms, commit_ms = (t0.elapsed().as_millis() as u64).saturating_sub(staged_ms), "append attempt");
        match committed {
            Ok(v) => {
                // Committed: the files are the table's now.
                *pending = None;
                Ok(Written::Committed(v as i64))
            }
            Err(None) => {
                tracing::info!(table = %uri, files = staged.paths.len(), "commit race lost: its files kept for the next attempt");
                if snapshot.is_none() {
                    // The table another writer created may differ in schema or layout.
                    self.discard(pending.take()).await;
                }
                Ok(Written::Conflict)
            }
            Err(Some(e)) => {
                self.discard(pending.take()).await;
                Err(e)
            }
        }
    }

    /// [`Lake::try_append_pending`] for a retry loop, whose attempts keep the files of a lost
    /// race in `slot` between them (the loop passes what is left to [`Lake::discard`] at its end).
    pub async fn try_append_kept(&self, table: DeltaTable, batch: RecordBatch, append: &Append<'_>, slot: &std::sync::Mutex<Option<Pending>>) -> Result<Written> {
        let mut pending = Pending::take(slot);
        let written = self.try_append_pending(table, batch, append, &mut pending).await;
        Pending::put(slot, pending);
        written
    }

    /// What an append of `batch` to `table` writes: the merged schema, the partitioning, the
    /// statistics columns and the properties of a table it creates.
    fn plan<'a>(&self, table: &'a DeltaTable, batch: &RecordBatch, append: &Append<'a>) -> Result<Plan<'a>> {
        let uri = table.table_url();
        let keyring = self.keyring().is_ok_and(|k| k.as_str().trim_end_matches('/') == uri.as_str().trim_end_matches('/'));
        let snapshot = table.snapshot().ok();
        let (schema, evolved) = write::merged_schema(uri.as_str(), snapshot.map(|s| s.snapshot().arrow_schema()).as_deref(), batch.schema().as_ref())?;
        let properties: &[(&str, &str)] = append.properties.unwrap_or(if keyring { &KEYRING_PROPERTIES } else { &TABLE_PROPERTIES });
        let (stats, partitions): (write::StatsColumns, Vec<&str>) = match snapshot {
            Some(s) => {
                (write::StatsColumns::from_config(s.metadata().configuration().iter().map(|(k, v)| (k.as_str(), v.as_str()))), s.metadata().partition_columns().iter().map(String::as_str).collect())
            }
            None => (write::StatsColumns::from_config(properties.iter().copied()), append.partitions.to_vec()),
        };
        Ok(Plan { schema, evolved, partitions, stats, properties })
    }

    /// Stages `batch` as planned into `pending`, unless `pending` already holds exactly these
    /// rows under this schema and layout (then `Ok(true)`: reused).
    async fn stage_planned(&self, table: &DeltaTable, batch: RecordBatch, plan: &Plan<'_>, pending: &mut Option<Pending>) -> Result<bool> {
        let reusable = table.version().is_some() && pending.as_ref().is_some_and(|p| p.schema == plan.schema && p.partitions.iter().eq(plan.partitions.iter()) && p.batch == batch);
        if !reusable {
            self.discard(pending.take()).await;
            let store = table.log_store().object_store(None);
            let conformed = write::conform(&batch, &plan.schema)?;
            let staged = write::stage(&store, table.table_url().as_str(), &conformed, &plan.partitions, &plan.stats).await?;
            *pending = Some(Pending { store, staged, batch, schema: plan.schema.clone(), partitions: plan.partitions.iter().map(|p| p.to_string()).collect() });
        }
        Ok(reusable)
    }

    /// Stages `batch`'s files for an append to `table` (a version of it this process read
    /// before, see [`Lake::cached`]) ahead of the commit, into `slot`: the append that follows
    /// ([`Lake::try_append_kept`] with the same slot) commits them as they are when its rows,
    /// schema and layout turn out the same, and stages again otherwise. Lets the upload overlap
    /// bringing the table up to date and the caller's checks against it.
    pub async fn prestage(&self, table: &DeltaTable, batch: RecordBatch, append: &Append<'_>, slot: &std::sync::Mutex<Option<Pending>>) -> Result<()> {
        if table.version().is_none() {
            return Ok(());
        }
        let plan = self.plan(table, &batch, append)?;
        let mut pending = Pending::take(slot);
        let staged = self.stage_planned(table, batch, &plan, &mut pending).await;
        Pending::put(slot, pending);
        staged.map(|_| ())
    }

    /// The version of the table at `uri` this process read last, if any (no request made).
    pub fn cached(&self, uri: &Url) -> Option<DeltaTable> {
        self.tables.lock().ok().and_then(|m| m.get(uri).map(|c| c.table.clone()))
    }

    /// Removes the files of an append that will not be committed (see [`Pending`]).
    pub async fn discard(&self, pending: Option<Pending>) {
        let Some(p) = pending else { return };
        let mut removed = 0;
        for path in &p.staged.paths {
            match p.store.delete(path).await {
                Ok(()) => removed += 1,
                // Left for maintain's full vacuum (removes unreferenced files past the retention).
                Err(e) => tracing::warn!(file = %path, error = %e, "could not remove a file of a commit that did not happen"),
            }
        }
        tracing::info!(files_removed = removed, files_written = p.staged.paths.len(), "files of a commit that did not happen removed");
    }

    /// Writes a checkpoint when `version` is a multiple of the table's checkpoint interval, as
    /// delta-rs's writers do after a commit, so a fresh open replays at most that many commits
    /// between `maintain` runs. A failure only delays it (the next due commit or `maintain`).
    async fn checkpoint_if_due(&self, table: &DeltaTable, state: &deltalake::table::state::DeltaTableState, version: u64) {
        let interval = state.metadata().configuration().get("delta.checkpointInterval").and_then(|v| v.parse::<u64>().ok()).unwrap_or(100).max(1);
        if !version.is_multiple_of(interval) {
            return;
        }
        let mut at = table.clone();
        let done = match at.load_version(version).await {
            Ok(()) => deltalake::checkpoints::create_checkpoint(&at, None).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            tracing::warn!(table = %table.table_url(), version, error = %e, "could not write the checkpoint due at this version");
        }
    }

    /// The one commit loop of the lake: `attempt` gets the table as of now and either commits
    /// (or finds nothing left to do) or reports that another writer committed first; then the
    /// table is read again and `attempt` runs again, after a short jittered pause (two writers
    /// that collided do not collide again in step), at most [`COMMIT_ATTEMPTS`] times. Giving
    /// up is [`Error::Contended`], which is retryable.
    pub async fn commit_with_retries<T, E, F, Fut>(&self, uri: &Url, mut attempt: F) -> Result<T, E>
    where
        E: From<Error>,
        F: FnMut(DeltaTable) -> Fut,
        Fut: Future<Output = Result<Attempt<T>, E>>,
    {
        let mut pauses = ExponentialBuilder::default().with_min_delay(Duration::from_millis(10)).with_max_delay(Duration::from_secs(2)).with_max_times(COMMIT_ATTEMPTS).with_jitter().build();
        for n in 1..=COMMIT_ATTEMPTS {
            let t = std::time::Instant::now();
            let table = self.current(uri).await?;
            tracing::debug!(table = %uri, read_ms = t.elapsed().as_millis() as u64, "table brought up to date");
            match attempt(table).await? {
                Attempt::Done(v) => return Ok(v),
                Attempt::Contended => {
                    tracing::debug!(table = %uri, attempt = n, "commit race lost; re-reading");
                    if let Some(p) = pauses.next() {
                        tokio::time::sleep(p).await;
                    }
                }
            }
        }
        Err(Error::Contended { uri: uri.to_string(), attempts: COMMIT_ATTEMPTS }.into())
    }

    /// Appends `batch` once under `txn` (skipped if that marker is committed), retrying lost
    /// commit races. `true` when this call committed it.
    pub async fn append_once(&self, uri: &Url, batch: RecordBatch, txn: (String, i64), partitions: &[&str]) -> Result<bool> {
        self.append_once_with(uri, batch, &Append { partitions, txn: Some(txn), metadata: None, properties: None }).await
    }

    /// [`Lake::append_once`] with every option of [`Append`]; `append.txn` must be set.
    pub async fn append_once_with(&self, uri: &Url, batch: RecordBatch, append: &Append<'_>) -> Result<bool> {
        let txn = append.txn.clone().ok_or_else(|| Error::InvalidEvent(format!("{uri}: an exactly-once append needs a marker")))?;
        let pending = std::sync::Mutex::new(None);
        let done = self
            .commit_with_retries(uri, |table| {
                let (batch, txn, pending) = (batch.clone(), &txn, &pending);
                async move {
                    if self.txn_version(&table, &txn.0).await? >= txn.1 {
                        return Ok::<_, Error>(Attempt::Done(false));
                    }
                    Ok(self.try_append_kept(table, batch, append, pending).await?.attempt(|_| true))
                }
            })
            .await;
        self.discard(Pending::take(&pending)).await;
        done
    }

    /// Appends `batch` (no marker), retrying lost commit races (for example two writers creating
    /// the table at once).
    pub async fn append(&self, uri: &Url, batch: RecordBatch, partitions: &[&str]) -> Result<()> {
        let append = Append { partitions, txn: None, metadata: None, properties: None };
        let pending = std::sync::Mutex::new(None);
        let done = self
            .commit_with_retries(uri, |table| {
                let (batch, append, pending) = (batch.clone(), &append, &pending);
                async move { Ok::<_, Error>(self.try_append_kept(table, batch, append, pending).await?.attempt(|_| ())) }
            })
            .await;
        self.discard(Pending::take(&pending)).await;
        done
    }

    /// The actions of `table`'s commit `version`, `None` when its commit file is gone (cleaned
    /// up by `maintain` after the log retention).
    pub async fn commit_actions(table: &DeltaTable, version: u64) -> Result<Option<Vec<deltalake::kernel::Action>>> {
        let uri = table.table_url();
        let Some(bytes) = table.log_store().read_commit_entry(version).await.map_err(|e| Error::delta(uri, e))? else { return Ok(None) };
        deltalake::logstore::get_actions(version, &bytes).map(Some).map_err(|e| Error::delta(uri, e))
    }

    /// The [`Append::metadata`] of every commit of `uri` from version `from` to the newest, with
    /// its version, oldest first. Commit files never change, so what this process has read is
    /// kept and only newer commits are read (a fetcher asks after every task).
    pub async fn commit_metadata(&self, uri: &Url, from: i64) -> Result<Vec<(i64, serde_json::Value)>> {
        let table = self.current(uri).await?;
        let Some(newest) = table.version() else { return Ok(Vec::new()) };
        let from = from.max(0) as u64;
        let missing: Vec<u64> = match self.metadata.lock() {
            Ok(m) => (from..=newest).filter(|v| !m.get(uri).is_some_and(|known| known.contains_key(v))).collect(),
            Err(_) => (from..=newest).collect(),
        };
        use futures::{StreamExt, TryStreamExt};
        let read: Vec<(u64, Option<serde_json::Value>)> = futures::stream::iter(missing.iter().map(|v| {
            let table = &table;
            async move {
                let actions = Self::commit_actions(table, *v).await?.unwrap_or_default();
                let meta = actions.into_iter().find_map(|a| match a {
                    deltalake::kernel::Action::CommitInfo(mut info) => info.info.remove(COMMIT_METADATA_KEY),
                    _ => None,
                });
                Ok::<_, Error>((*v, meta))
            }
        }))
        .buffer_unordered(COMMIT_READS_AT_ONCE)
        .try_collect()
        .await?;
        // A poisoned lock only means another task panicked mid-insert; the map is still sound.
        let mut cache = self.metadata.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = cache.entry(uri.clone()).or_default();
        known.extend(read);
        Ok((from..=newest).filter_map(|v| known.get(&v).cloned().flatten().map(|m| (v as i64, m))).collect())
    }

    /// Rows of `uri` matching `filter` (see [`read::select`]); empty when the table does not exist.
    pub async fn select(&self, uri: &Url, filter: Option<&read::Filter>, columns: &[&str]) -> Result<Vec<RecordBatch>> {
        match read::open_table(uri, &self.storage).await? {
            None => Ok(Vec::new()),
            Some(t) => read::select(&t, filter, columns).await,
        }
    }

    /// Rows of an already opened table matching `filter` (see [`read::select`]).
    pub async fn select_table(&self, table: &DeltaTable, filter: Option<&read::Filter>, columns: &[&str]) -> Result<Vec<RecordBatch>> {
        if table.version().is_none() {
            return Ok(Vec::new());
        }
        read::select(table, filter, columns).await
    }

    /// Rows of `uri` matching `filter`; empty when the table does not exist.
    #[cfg(feature = "query")]
    pub async fn scan(&self, uri: &Url, filter: Option<deltalake::datafusion::prelude::Expr>, columns: &[&str]) -> Result<Vec<RecordBatch>> {
        match read::open_table(uri, &self.storage).await? {
            None => Ok(Vec::new()),
            Some(t) => Ok(read::scan(&t, filter, columns).await?),
        }
    }

    /// Rows of an already opened table.
    #[cfg(feature = "query")]
    pub async fn scan_table(&self, table: &DeltaTable, filter: Option<deltalake::datafusion::prelude::Expr>, columns: &[&str]) -> Result<Vec<RecordBatch>> {
        if table.version().is_none() {
            return Ok(Vec::new());
        }
        read::scan(table, filter, columns).await
    }
}

pub use crate::table::is_conflict;

/// The properties every ingestion and batch commit starts from: no automatic retry (a conflict
/// comes back to the caller, which re-reads, re-checks its markers and tries again) and no
/// expired-log clean-up after the commit: `maintain` does it, table by table under its lease,
/// where delta-rs would list the whole `_delta_log` after every commit (on S3, a LIST of a
/// month of commits per commit).
pub fn commit_properties() -> CommitProperties {
    CommitProperties::default().with_max_retries(0).with_cleanup_expired_logs(Some(false))
}

/// [`commit_properties`] with `append`'s marker and metadata, for the commit that creates a table.
fn creation_properties(append: &Append<'_>) -> CommitProperties {
    let mut props = commit_properties();
    if let Some((app, v)) = &append.txn {
        props = props.with_application_transaction(Transaction::new(app, *v));
    }
    if let Some(m) = &append.metadata {
        props = props.with_metadata([(COMMIT_METADATA_KEY.to_string(), m.clone())]);
    }
    props
}

fn delta(uri: &Url, e: DeltaTableError) -> Error {
    Error::delta(uri, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::Int64Array;
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    fn batch(v: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v]))]).unwrap()
    }

    #[tokio::test]
    async fn a_cached_table_follows_other_writers_and_a_recreated_table() {
        let dir = tempfile::tempdir().unwrap();
        let root = format!("file://{}", dir.path().display());
        let storage = || StorageConfig { endpoint_url: None, region: "us-east-1".into() };
        let (lake, other) = (Lake::new(&root, storage()).unwrap(), Lake::new(&root, storage()).unwrap());
        let uri = lake.table("t/x").unwrap();
        lake.append(&uri, batch(1), &[]).await.unwrap();
        assert_eq!(lake.current(&uri).await.unwrap().version(), Some(0));
        // Another process commits: the cached handle reads the new commit.
        other.append(&uri, batch(2), &[]).await.unwrap();
        assert_eq!(lake.current(&uri).await.unwrap().version(), Some(1));
        // The table is deleted and created again elsewhere: the cache must not stand on the old log.
        std::fs::remove_dir_all(dir.path().join("t/x")).unwrap();
        Lake::new(&root, storage()).unwrap().append(&uri, batch(3), &[]).await.unwrap();
        assert_eq!(lake.current(&uri).await.unwrap().version(), Some(0));
        lake.append(&uri, batch(4), &[]).await.unwrap();
        let rows: usize = lake.select(&uri, None, &["v"]).await.unwrap().iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 2, "the recreated table's row and ours");
        // Replaced by another table with as many commits (the version's commit file exists, but
        // it is another file): the cache must read the new table, not mix the two logs.
        assert_eq!(lake.current(&uri).await.unwrap().version(), Some(1));
        std::fs::remove_dir_all(dir.path().join("t/x")).unwrap();
        let third = Lake::new(&root, storage()).unwrap();
        third.append(&uri, batch(5), &[]).await.unwrap();
        third.append(&uri, batch(6), &[]).await.unwrap();
        third.append(&uri, batch(7), &[]).await.unwrap();
        let t = lake.current(&uri).await.unwrap();
        assert_eq!(t.version(), Some(2));
        let mut values: Vec<i64> = lake.select_table(&t, None, &["v"]).await.unwrap().iter().flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()).collect();
        values.sort();
        assert_eq!(values, [5, 6, 7]);
    }
}

#[cfg(test)]
mod write_tests {
    use super::*;
    use deltalake::arrow::array::{Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    fn lake(dir: &std::path::Path) -> Lake {
        Lake::new(&format!("file://{}", dir.display()), StorageConfig { endpoint_url: None, region: "us-east-1".into() }).unwrap()
    }

    fn rows(fields: &[(&str, Vec<Option<&str>>)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(fields.iter().map(|(n, _)| Field::new(*n, DataType::Utf8, true)).collect::<Vec<_>>()));
        RecordBatch::try_new(schema, fields.iter().map(|(_, v)| Arc::new(StringArray::from(v.clone())) as _).collect()).unwrap()
    }

    /// A partitioned table takes a new column, each partition's rows land in its own directory
    /// with statistics, the pruned reader finds them by partition and by statistics, and a
    /// checkpoint is written at the table's interval.
    #[tokio::test]
    async fn partitioned_appends_evolve_the_schema_are_pruned_and_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let uri = lake.table("t/p").unwrap();
        let props: [(&str, &str); 2] = [("delta.checkpointInterval", "3"), ("delta.enableChangeDataFeed", "true")];
        let first = Append { partitions: &["d"], properties: Some(&props), ..Default::default() };
        let table = lake.current(&uri).await.unwrap();
        lake.try_append(table, rows(&[("k", vec![Some("a"), Some("b")]), ("d", vec![Some("2026-12-01"), Some("2026-12-02")])]), &first).await.unwrap();
        lake.append(&uri, rows(&[("k", vec![Some("c")]), ("d", vec![Some("2026-12-02")]), ("note", vec![Some("new")])]), &["d"]).await.unwrap();
        lake.append(&uri, rows(&[("k", vec![Some("e")]), ("d", vec![None])]), &["d"]).await.unwrap();
        let t = lake.current(&uri).await.unwrap();
        assert_eq!(t.version(), Some(2));
        assert!(dir.path().join("t/p/d=2026-12-02").is_dir() && dir.path().join("t/p/d=__HIVE_DEFAULT_PARTITION__").is_dir());
        assert!(!dir.path().join("t/p/_delta_log/00000000000000000003.checkpoint.parquet").exists());
        lake.append(&uri, rows(&[("k", vec![Some("f")]), ("d", vec![Some("2026-12-03")])]), &["d"]).await.unwrap();
        assert!(dir.path().join("t/p/_delta_log/00000000000000000003.checkpoint.parquet").exists(), "a checkpoint every 3 commits");
        let got = |f: read::Filter| {
            let lake = lake.clone();
            let uri = uri.clone();
            async move {
                let mut out: Vec<String> = Vec::new();
                for b in lake.select(&uri, Some(&f), &["k", "note"]).await.unwrap() {
                    let (k, n) = (read::strings(b.column(0)).unwrap(), read::strings(b.column(1)).unwrap());
                    out.extend((0..b.num_rows()).map(|i| format!("{}:{}", k.value(i), if n.is_null(i) { "-" } else { n.value(i) })));
                }
                out.sort();
                out
            }
        };
        assert_eq!(got(read::Filter::eq("d", "2026-12-02")).await, ["b:-", "c:new"]);
        assert_eq!(got(read::Filter::between("k", "d", "z")).await, ["e:-", "f:-"]);
        assert_eq!(got(read::Filter::is_in("k", ["a", "f"]).and_in("d", ["2026-12-03"])).await, ["f:-"]);
        // The statistics the reader pruned with are in the log, and DataFusion-free readers agree
        // with the row count.
        let t = lake.current(&uri).await.unwrap();
        let stats: Vec<serde_json::Value> = t.snapshot().unwrap().log_data().iter().filter_map(|f| serde_json::from_str(&f.stats()?).ok()).collect();
        assert_eq!(stats.iter().map(|s| s["numRecords"].as_u64().unwrap()).sum::<u64>(), 5);
        assert!(stats.iter().all(|s| s["minValues"]["k"].is_string()), "{stats:?}");
    }

    /// A table declaring something an append would have to enforce (here a generated column)
    /// is refused, naming it.
    #[tokio::test]
    async fn a_table_with_a_generated_column_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake(dir.path());
        let uri = lake.table("t/g").unwrap();
        let generated = Field::new("g", DataType::Utf8, true).with_metadata([("delta.generationExpression".to_string(), "upper(k)".to_string())].into());
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), generated]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["a"])), Arc::new(StringArray::from(vec!["A"]))]).unwrap();
        lake.append(&uri, batch, &[]).await.unwrap();
        let err = lake.append(&uri, rows(&[("k", vec![Some("b")])]), &[]).await.unwrap_err().to_string();
        assert!(err.contains("column g declares delta.generationExpression") && err.contains("cannot enforce"), "{err}");
    }
}

#[cfg(test)]
mod metadata_tests {
    use super::*;
    use deltalake::arrow::array::Int64Array;
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    #[tokio::test]
    async fn commit_metadata_comes_back_from_the_log_with_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(&format!("file://{}", dir.path().display()), StorageConfig { endpoint_url: None, region: "us-east-1".into() }).unwrap();
        let uri = lake.table("t/m").unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        for i in 0..3 {
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![i]))]).unwrap();
            let meta = (i != 1).then(|| serde_json::json!({ "n": i }));
            let append = Append { partitions: &[], txn: Some(("app".into(), i + 1)), metadata: meta, properties: None };
            let table = lake.current(&uri).await.unwrap();
            assert!(matches!(lake.try_append(table, batch, &append).await.unwrap(), Written::Committed(_)));
        }
        let got = lake.commit_metadata(&uri, 0).await.unwrap();
        assert_eq!(got, vec![(0, serde_json::json!({"n": 0})), (2, serde_json::json!({"n": 2}))]);
        // Read again from the cache, and from a later version.
        assert_eq!(lake.commit_metadata(&uri, 1).await.unwrap(), vec![(2, serde_json::json!({"n": 2}))]);
    }

    fn parquet_files(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(parquet_files(&p));
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
        out
    }

    #[tokio::test]
    async fn a_writer_that_loses_the_race_removes_the_files_it_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        let root = format!("file://{}", dir.path().display());
        let storage = || StorageConfig { endpoint_url: None, region: "us-east-1".into() };
        let (lake, other) = (Lake::new(&root, storage()).unwrap(), Lake::new(&root, storage()).unwrap());
        let uri = lake.table("t/race").unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true), Field::new("d", DataType::Utf8, true)]));
        let batch = |v: i64| RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![v])), Arc::new(deltalake::arrow::array::StringArray::from(vec!["x"]))]).unwrap();
        let append = Append { partitions: &["d"], ..Default::default() };
        lake.append(&uri, batch(1), &["d"]).await.unwrap();
        let stale = lake.current(&uri).await.unwrap();
        other.append(&uri, batch(2), &["d"]).await.unwrap();
        // Written against version 0 while version 1 exists: the race is lost.
        assert!(matches!(lake.try_append(stale, batch(3), &append).await.unwrap(), Written::Conflict));
        let table = lake.current(&uri).await.unwrap();
        let mut referenced: Vec<String> = table.get_file_uris().unwrap().map(|u| u.rsplit('/').next().unwrap().to_string()).collect();
        let mut on_disk = parquet_files(&dir.path().join("t/race"));
        referenced.sort();
        on_disk.sort();
        assert_eq!(on_disk, referenced, "no file of the lost commit is left");
        assert_eq!(on_disk.len(), 2);
    }

    /// A lost race keeps its files for the next attempt: the same rows commit them without a
    /// second upload; other rows replace them (the first set removed); `discard` removes what
    /// is left.
    #[tokio::test]
    async fn the_files_of_a_lost_race_are_committed_by_the_next_attempt_of_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let root = format!("file://{}", dir.path().display());
        let storage = || StorageConfig { endpoint_url: None, region: "us-east-1".into() };
        let (lake, other) = (Lake::new(&root, storage()).unwrap(), Lake::new(&root, storage()).unwrap());
        let uri = lake.table("t/reuse").unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true), Field::new("d", DataType::Utf8, true)]));
        let batch = |v: i64| RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![v])), Arc::new(deltalake::arrow::array::StringArray::from(vec!["x"]))]).unwrap();
        let append = Append { partitions: &["d"], ..Default::default() };
        let files = || {
            let mut f = parquet_files(&dir.path().join("t/reuse"));
            f.sort();
            f
        };
        lake.append(&uri, batch(1), &["d"]).await.unwrap();
        let stale = lake.current(&uri).await.unwrap();
        other.append(&uri, batch(2), &["d"]).await.unwrap();
        let mut pending = None;
        assert!(matches!(lake.try_append_pending(stale, batch(3), &append, &mut pending).await.unwrap(), Written::Conflict));
        let kept = files();
        assert_eq!(kept.len(), 3, "the lost race's file is kept");
        // The same rows against the new version: committed with the file already there.
        let fresh = lake.current(&uri).await.unwrap();
        assert!(matches!(lake.try_append_pending(fresh, batch(3), &append, &mut pending).await.unwrap(), Written::Committed(2)));
        assert!(pending.is_none());
        assert_eq!(files(), kept, "no second upload");
        let table = lake.current(&uri).await.unwrap();
        assert_eq!(table.get_file_uris().unwrap().count(), 3);

        // Other rows after a lost race: the kept file goes, the new one is staged.
        let stale = lake.current(&uri).await.unwrap();
        other.append(&uri, batch(4), &["d"]).await.unwrap();
        assert!(matches!(lake.try_append_pending(stale, batch(5), &append, &mut pending).await.unwrap(), Written::Conflict));
        let committed = lake_files(&lake, &uri).await;
        let lost = files().into_iter().find(|f| !kept.contains(f) && !committed.contains(f)).unwrap();
        let fresh = lake.current(&uri).await.unwrap();
        assert!(matches!(lake.try_append_pending(fresh, batch(6), &append, &mut pending).await.unwrap(), Written::Committed(_)));
        assert!(!files().contains(&lost), "the file of rows never committed is removed");

        // Given up on: discard removes the kept files.
        let stale = lake.current(&uri).await.unwrap();
        other.append(&uri, batch(7), &["d"]).await.unwrap();
        assert!(matches!(lake.try_append_pending(stale, batch(8), &append, &mut pending).await.unwrap(), Written::Conflict));
        lake.discard(pending.take()).await;
        let mut referenced = lake_files(&lake, &uri).await;
        let mut on_disk = files();
        referenced.sort();
        on_disk.sort();
        assert_eq!(on_disk, referenced, "nothing unreferenced is left");
    }

    #[tokio::test]
    async fn files_staged_ahead_are_committed_when_the_rows_are_the_same_and_removed_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let root = format!("file://{}", dir.path().display());
        let storage = || StorageConfig { endpoint_url: None, region: "us-east-1".into() };
        let (lake, other) = (Lake::new(&root, storage()).unwrap(), Lake::new(&root, storage()).unwrap());
        let uri = lake.table("t/ahead").unwrap();
        let files = || {
            let mut f = parquet_files(&dir.path().join("t/ahead"));
            f.sort();
            f
        };
        let append = Append::default();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let batch = |v: i64| RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![v]))]).unwrap();
        assert!(lake.cached(&uri).is_none(), "nothing read yet: nothing to stage against");
        lake.append(&uri, batch(1), &[]).await.unwrap();
        lake.current(&uri).await.unwrap();
        // Staged against the version read last, while another writer commits: the commit
        // against the new version takes the staged file as it is.
        let slot = std::sync::Mutex::new(None);
        lake.prestage(&lake.cached(&uri).unwrap(), batch(2), &append, &slot).await.unwrap();
        other.append(&uri, batch(9), &[]).await.unwrap();
        let staged = files();
        assert_eq!(staged.len(), 3);
        let fresh = lake.current(&uri).await.unwrap();
        assert!(matches!(lake.try_append_kept(fresh, batch(2), &append, &slot).await.unwrap(), Written::Committed(2)));
        assert_eq!(files(), staged, "no second upload");
        assert_eq!(lake_files(&lake, &uri).await.len(), 3);
        // Other rows than those staged (the checks found duplicates): staged again, the file
        // staged ahead removed.
        lake.prestage(&lake.cached(&uri).unwrap(), batch(3), &append, &slot).await.unwrap();
        let ahead: Vec<String> = files().into_iter().filter(|f| !staged.contains(f)).collect();
        assert_eq!(ahead.len(), 1);
        let fresh = lake.current(&uri).await.unwrap();
        assert!(matches!(lake.try_append_kept(fresh, batch(4), &append, &slot).await.unwrap(), Written::Committed(3)));
        assert!(!files().contains(&ahead[0]), "the file of rows never committed is removed");
        let (mut referenced, on_disk) = (lake_files(&lake, &uri).await, files());
        referenced.sort();
        assert_eq!(on_disk, referenced, "nothing unreferenced is left");
    }

    async fn lake_files(lake: &Lake, uri: &Url) -> Vec<String> {
        lake.current(uri).await.unwrap().get_file_uris().unwrap().map(|u| u.rsplit('/').next().unwrap().to_string()).collect()
    }
}
