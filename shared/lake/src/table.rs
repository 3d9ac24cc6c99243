use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, Once};

use deltalake::DeltaTableError;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::transaction::TransactionError;
use url::Url;

use crate::{Error, Result, StorageConfig};

/// Marks a commit as one step of an application (Delta's `txn` action), so that a retried or
/// redelivered step is recognised and commits nothing the second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppTransaction {
    /// Who writes (for example `heartbeat` or `fetcher:orders`).
    pub app_id: String,
    /// Monotonic step number for that writer; a step at or below the committed one is a repeat.
    pub version: i64,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// A new table version was committed with `rows` rows.
    Committed { table_version: i64, rows: usize },
    /// The application transaction was already committed; nothing was written.
    AlreadyCommitted { committed_version: i64 },
}

/// The port every job appends through: one batch, one atomic commit.
pub trait TableAppender: Send + Sync {
    /// Appends `batch` as one commit, unless `txn` shows the same step is already committed.
    fn append(&self, batch: RecordBatch, txn: Option<AppTransaction>) -> impl Future<Output = Result<Appended>> + Send;
}

static REGISTER_HANDLERS: Once = Once::new();

/// Registers the S3 handlers with deltalake, once per process.
pub(crate) fn register_handlers() {
    REGISTER_HANDLERS.call_once(|| deltalake::aws::register_handlers(None));
}

/// Appends to a real Delta table (S3, or a local path in tests) through the lake's commit loop
/// ([`crate::Lake::commit_with_retries`]). The table is created by the first append, with the
/// batch's schema and the configured partition columns.
#[derive(Debug, Clone)]
pub struct DeltaAppender {
    url: Url,
    lake: crate::Lake,
    partition_columns: Vec<String>,
    table_properties: Vec<(String, String)>,
}

impl DeltaAppender {
    /// An appender for the table at `table_uri` (`s3://bucket/prefix` or `file:///path`).
    pub fn new(table_uri: &str, storage: &StorageConfig) -> Result<Self> {
        register_handlers();
        let url = Url::parse(table_uri).map_err(|e| Error::InvalidTableUri { uri: table_uri.to_string(), reason: e.to_string() })?;
        if !matches!(url.scheme(), "s3" | "s3a" | "file") {
            return Err(Error::InvalidTableUri { uri: table_uri.to_string(), reason: format!("scheme {:?} is not one of s3, s3a, file", url.scheme()) });
        }
        let lake = crate::Lake::new(table_uri, storage.clone())?;
        Ok(Self { url, lake, partition_columns: Vec::new(), table_properties: Vec::new() })
    }

    /// Partition columns used when the first append creates the table.
    pub fn with_partition_columns(mut self, columns: &[&str]) -> Self {
        self.partition_columns = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Delta table properties (`delta.*`) set when the first append creates the table.
    pub fn with_table_properties(mut self, properties: &[(&str, &str)]) -> Self {
        self.table_properties = properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self
    }

    /// The table's location.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// Whether a failed commit lost a race with another writer (someone else committed the same
/// version first, or a concurrent commit carried the same application-transaction id). The
/// work itself is fine: re-read the table, re-check the marker and commit again.
pub fn is_conflict(e: &DeltaTableError) -> bool {
    match e {
        DeltaTableError::VersionAlreadyExists(_) | DeltaTableError::CommitValidation { .. } => true,
        DeltaTableError::Transaction { source } => matches!(source, TransactionError::VersionAlreadyExists(_) | TransactionError::MaxCommitAttempts(_) | TransactionError::CommitConflict(_)),
        _ => false,
    }
}

impl TableAppender for DeltaAppender {
    async fn append(&self, batch: RecordBatch, txn: Option<AppTransaction>) -> Result<Appended> {
        let partitions: Vec<&str> = self.partition_columns.iter().map(String::as_str).collect();
        let properties: Vec<(&str, &str)> = self.table_properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let append =
            crate::Append { partitions: &partitions, txn: txn.as_ref().map(|t| (t.app_id.clone(), t.version)), metadata: None, properties: (!properties.is_empty()).then_some(properties.as_slice()) };
        let rows = batch.num_rows();
        let lake = &self.lake;
        lake.commit_with_retries(&self.url, |table| {
            let (batch, append, txn) = (batch.clone(), &append, &txn);
            async move {
                if let Some(t) = txn {
                    let committed = lake.txn_version(&table, &t.app_id).await?;
                    if table.version().is_some() && committed >= t.version {
                        return Ok::<_, Error>(crate::Attempt::Done(Appended::AlreadyCommitted { committed_version: committed }));
                    }
                }
                Ok(lake.try_append(table, batch, append).await?.attempt(|v| Appended::Committed { table_version: v, rows }))
            }
        })
        .await
    }
}

/// In-memory [`TableAppender`] for unit tests, with the same transaction semantics.
#[derive(Debug, Default)]
pub struct MemoryAppender {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    batches: Vec<RecordBatch>,
    txns: HashMap<String, i64>,
}

impl MemoryAppender {
    /// Every batch committed so far.
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.state.lock().map(|s| s.batches.clone()).unwrap_or_default()
    }
}

impl TableAppender for MemoryAppender {
    async fn append(&self, batch: RecordBatch, txn: Option<AppTransaction>) -> Result<Appended> {
        let mut state = self.state.lock().map_err(|_| Error::InvalidEvent("memory appender poisoned".into()))?;
        if let Some(txn) = &txn
            && let Some(&committed) = state.txns.get(&txn.app_id).filter(|c| **c >= txn.version)
        {
            return Ok(Appended::AlreadyCommitted { committed_version: committed });
        }
        let rows = batch.num_rows();
        state.batches.push(batch);
        if let Some(txn) = txn {
            state.txns.insert(txn.app_id, txn.version);
        }
        Ok(Appended::Committed { table_version: state.batches.len() as i64, rows })
    }
}
