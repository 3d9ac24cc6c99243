//! Table maintenance: compaction to a target file size (z-ordered on the usual filters where it
//! pays), a checkpoint, vacuum with a safe retention and expired-log clean-up, table by table.
//!
//! * Resumable: each table is one chunk, committed on its own; a run stops starting tables near
//!   its deadline and the next run goes on (a table already compact costs one log read).
//! * Never destructive concurrently with itself: a table is maintained only under its lease, an
//!   object `_maintain.lease` in the table's root held exclusively ([`crate::lease`]: conditional
//!   puts, taken over only when expired). Readers and the other jobs ignore
//!   it (Delta ignores files starting with `_` outside the log, and vacuum never deletes them).
//! * Every table of the registry ([`crate::registry`]), the keyring and the real-time tables
//!   included; vacuum runs in full mode, so files no commit references (a lost race, a killed
//!   writer) are removed once older than the retention.
//! * Safe for readers and writers: compaction commits only rewrite files (no data change), so
//!   appends and MERGEs running at the same time keep their commits (a conflicting MERGE retries);
//!   vacuum never deletes a file younger than the table's `deletedFileRetentionDuration` (7
//!   days by default), so time travel within it keeps working.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::time::Duration;

use alkasba_lake::Lake;
use deltalake::DeltaTable;
use deltalake::operations::optimize::OptimizeType;
use deltalake::{FilterLiteral, FilterOp, FilterValue};
use serde::Serialize;

use alkasba_lake::layout::TableSpec;

use crate::{Error, Result, lease, registry, tables};

/// Maintenance settings.
#[derive(Debug, Clone)]
pub struct MaintainOptions {
    /// Compaction target file size in bytes.
    pub target_size: u64,
    /// Vacuum retention; `None` uses each table's `deletedFileRetentionDuration` (7 days by
    /// default). Shorter than the table's own setting is refused by the vacuum itself.
    pub retention: Option<chrono::Duration>,
    /// Vacuum retention of the keyring, shorter than the other tables': its unreferenced files
    /// (a writer killed between upload and commit) hold wrapped keys, which an erasure must not
    /// leave behind for a week. Longer than any writer's run (a Lambda lives at most 15
    /// minutes), so a file uploaded for a commit still under way is never removed.
    pub keyring_retention: chrono::Duration,
    /// How long a lease holds before another run may take it over (longer than one table's
    /// maintenance can take: a Lambda lives at most 15 minutes).
    pub lease: Duration,
    /// Who holds leases (a request id).
    pub owner: String,
}

impl Default for MaintainOptions {
    fn default() -> Self {
        Self { target_size: 128 * 1024 * 1024, retention: None, keyring_retention: chrono::Duration::hours(1), lease: Duration::from_secs(20 * 60), owner: format!("maintain-{}", std::process::id()) }
    }
}

/// What maintaining one table did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TableReport {
    pub table: String,
    pub files_before: usize,
    pub files_after: usize,
    /// Partitions (1 for an unpartitioned table).
    pub partitions: usize,
    /// Bytes of the live files after maintenance.
    pub bytes_after: u64,
    /// Files in the fullest partition after maintenance.
    pub worst_partition_files: usize,
    /// Files beyond what each partition's size needs at the target size (0: fully compact).
    pub excess_files: usize,
    pub files_compacted: u64,
    pub files_written: u64,
    pub checkpoint_version: Option<i64>,
    /// The table had no `delta.checkpointInterval` and was given the lake's
    /// ([`alkasba_lake::lake::CHECKPOINT_INTERVAL`]).
    pub checkpoint_interval_set: bool,
    pub vacuumed: usize,
    pub logs_removed: usize,
    pub note: String,
}

/// Files and bytes per partition value.
type PartitionFiles = BTreeMap<String, (usize, u64)>;

/// Live files and their bytes per partition value of the table's (single) partition column;
/// one entry keyed "" for an unpartitioned table.
fn files_per_partition(table: &DeltaTable) -> Result<(Option<String>, PartitionFiles)> {
    let uri = table.table_url().clone();
    let state = table.snapshot().map_err(|e| Error::delta(&uri, e))?;
    let column = state.metadata().partition_columns().first().cloned();
    let mut out: PartitionFiles = BTreeMap::new();
    for file in state.snapshot().try_log_data().map_err(|e| Error::delta(&uri, e))?.iter() {
        let value = column.as_ref().and_then(|c| file.partition_values_map().remove(c).flatten()).unwrap_or_default();
        let e = out.entry(value).or_default();
        e.0 += 1;
        e.1 += file.size().max(0) as u64;
    }
    Ok((column, out))
}

/// Files a partition of `bytes` needs at `target` bytes per file (at least one).
fn needed(bytes: u64, target: u64) -> usize {
    bytes.div_ceil(target.max(1)).max(1) as usize
}

/// The table's maintenance lease (see [`crate::lease`]), beside its log.
const LEASE: &str = "_maintain.lease";

/// Maintains one table under its lease.
pub async fn table(lake: &Lake, target: &TableSpec, opts: &MaintainOptions) -> Result<TableReport> {
    let mut report = TableReport { table: target.path.clone(), ..Default::default() };
    let uri = lake.table(&target.path)?;
    let Some(table) = tables::open(lake, &uri).await? else {
        report.note = "no table yet".into();
        return Ok(report);
    };
    let store = table.log_store().object_store(None);
    let lease = match lease::take(store, object_store::path::Path::from(LEASE), &opts.owner, lease::Mode::Exclusive, opts.lease, Duration::ZERO).await? {
        lease::Taken::Held(lease) => lease,
        lease::Taken::Busy { holder, .. } => {
            report.note = format!("another maintenance run ({holder}) holds the lease");
            return Ok(report);
        }
    };
    let result = maintain_held(table, target, opts, &mut report).await;
    // Released even after a failure; an unreleased lease expires on its own.
    lease.release_or_warn().await;
    result.map(|()| report)
}

async fn maintain_held(table: DeltaTable, target: &TableSpec, opts: &MaintainOptions, report: &mut TableReport) -> Result<()> {
    let uri = table.table_url().clone();
    // Only crowded partitions are rewritten: more than one file, and more files than the
    // partition's size needs at the target size. Z-ordering rewrites whatever it is given, so a
    // compact partition (or a large one already in target-size files) would be rewritten on
    // every run.
    let (column, per) = files_per_partition(&table)?;
    report.files_before = per.values().map(|(n, _)| n).sum();
    let crowded: Vec<&str> = per.iter().filter(|(_, (n, bytes))| *n > 1 && *n > needed(*bytes, opts.target_size)).map(|(v, _)| v.as_str()).collect();
    let table = if crowded.is_empty() {
        report.note = "already compact".into();
        table
    } else {
        let kind = if target.zorder.is_empty() { OptimizeType::Compact } else { OptimizeType::ZOrder(target.zorder.clone()) };
        let target_size = NonZeroU64::new(opts.target_size.max(1024 * 1024)).unwrap_or(NonZeroU64::MIN);
        let filters: Vec<FilterLiteral<'_>> = match &column {
            Some(c) => vec![(c.as_str(), FilterOp::In, FilterValue::Set(crowded.clone()))],
            None => Vec::new(),
        };
        let (table, metrics) = table.optimize().with_type(kind).with_target_size(target_size).with_filters(&filters).with_max_concurrent_tasks(2).await.map_err(|e| Error::delta(&uri, e))?;
        report.files_compacted = metrics.num_files_removed;
        report.files_written = metrics.num_files_added;
        table
    };
    let table = with_checkpoint_interval(table, report).await?;
    deltalake::checkpoints::create_checkpoint(&table, None).await.map_err(|e| Error::delta(&uri, e))?;
    report.checkpoint_version = table.version().map(|v| v as i64);
    // Full mode: besides the files the log removed, every file under the table that no commit
    // references (uploaded for a commit that lost its race or whose writer was killed) goes once
    // it is older than the retention.
    let mut vacuum = table.vacuum().with_mode(deltalake::operations::vacuum::VacuumMode::Full);
    if target.path == alkasba_lake::layout::KEYRING {
        vacuum = vacuum.with_retention_period(opts.keyring_retention).with_enforce_retention_duration(false);
    } else if let Some(r) = opts.retention {
        vacuum = vacuum.with_retention_period(r);
    }
    let (table, vm) = vacuum.await.map_err(|e| Error::delta(&uri, e))?;
    report.vacuumed = vm.files_deleted.len();
    report.logs_removed = deltalake::checkpoints::cleanup_metadata(&table, None).await.map_err(|e| Error::delta(&uri, e))?;
    let after = files_per_partition(&table)?.1;
    report.files_after = after.values().map(|(n, _)| n).sum();
    report.partitions = after.len();
    report.bytes_after = after.values().map(|(_, b)| b).sum();
    report.worst_partition_files = after.values().map(|(n, _)| *n).max().unwrap_or(0);
    report.excess_files = after.values().map(|(n, b)| n.saturating_sub(needed(*b, opts.target_size))).sum();
    Ok(())
}

/// Gives a table without a `delta.checkpointInterval` the lake's (tables the lake creates have it
/// from their first commit; older ones, and those other writers create, get it here). Without
/// it delta-rs checkpoints every 100 commits, and a marker lookup or an open replays up to as
/// many commit files (issue 20). A table that sets its own interval keeps it.
async fn with_checkpoint_interval(table: DeltaTable, report: &mut TableReport) -> Result<DeltaTable> {
    let (key, value) = alkasba_lake::lake::CHECKPOINT_INTERVAL;
    if table.snapshot().map_err(|e| Error::delta(table.table_url(), e))?.metadata().configuration().contains_key(key) {
        return Ok(table);
    }
    let uri = table.table_url().clone();
    let props = std::collections::HashMap::from([(key.to_string(), value.to_string())]);
    let table = table.set_tbl_properties().with_properties(props).with_commit_properties(alkasba_lake::commit_properties()).await.map_err(|e| Error::delta(&uri, e))?;
    tracing::info!(table = %uri, interval = value, "checkpoint interval set");
    report.checkpoint_interval_set = true;
    Ok(table)
}

/// Maintains every table (or those whose path starts with one of `only`), one at a time,
/// stopping before the deadline (`keep_going`); the next run goes on.
pub async fn maintain(lake: &Lake, only: Option<&[String]>, opts: &MaintainOptions, keep_going: impl Fn() -> bool) -> Result<Vec<TableReport>> {
    let registry = registry::registry();
    let all = registry.tables();
    if let Some(only) = only
        && let Some(bad) = only.iter().find(|o| !all.iter().any(|t| t.path.starts_with(o.as_str())))
    {
        return Err(Error::Config(format!("no table matches {bad:?}; tables: {}", all.iter().map(|t| t.path.as_str()).collect::<Vec<_>>().join(", "))));
    }
    let mut out = Vec::new();
    for t in all.iter().filter(|t| only.is_none_or(|o| o.iter().any(|p| t.path.starts_with(p.as_str())))) {
        if !keep_going() {
            tracing::warn!(table = %t.path, "stopping before the deadline; the next run goes on");
            break;
        }
        let span = tracing::info_span!("maintain", table = %t.path);
        let r = tracing::Instrument::instrument(table(lake, t, opts), span).await?;
        tracing::info!(table = %r.table, files_before = r.files_before, files_after = r.files_after, compacted = r.files_compacted, vacuumed = r.vacuumed, logs_removed = r.logs_removed, note = %r.note, "maintained");
        out.push(r);
    }
    Ok(out)
}
