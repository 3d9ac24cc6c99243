//! The first transform of a silver table: bronze's whole snapshot, read in slices of files so
//! that memory stays bounded however large bronze has grown.
//!
//! The change data feed cannot replay bronze from version 0 once maintenance has compacted and
//! vacuumed it (the files of the early versions are gone), so a silver table built from nothing
//! reads a *snapshot* of bronze. Read whole, that costs ~5.3 GB of memory per million orders
//! (docs/benchmarks.md, "Scale: 1M and 3M orders"): more than one Lambda has past ~1.9M orders.
//! Instead the snapshot is pinned at version `V` and its live files (oldest first) are read a
//! slice at a time, at most [`super::TransformOptions::max_step_bytes`] of Parquet per slice
//! (at least one file). Each slice is merged and committed with two markers:
//!
//! - `<marker>#backfill` = `V + 1`: the snapshot being read (0: none), so a later run reads the
//!   same snapshot;
//! - `<marker>#backfill@V` = files of that snapshot merged so far.
//!
//! The last slice also commits the table's own marker (`V + 1`): from then on, steps read the
//! change data feed after `V`. A run killed between slices resumes at the next slice. The
//! backfill starts again from bronze's current snapshot when the pinned version can no longer be
//! loaded (its log expired) or when a file still to read has been rewritten since: by compaction
//! (vacuum would delete it) or by an erasure (the old file still holds the tokens it replaced,
//! and silver must not get them back). Rows already merged are merged again, which changes
//! nothing (a row only replaces one with a smaller `seq`).

use deltalake::DeltaTable;
use serde::Serialize;

use crate::tables;
use crate::{Error, Result};

/// Progress of a backfill, reported with each step.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Backfill {
    /// The bronze version whose snapshot is read.
    pub snapshot: i64,
    /// Files of that snapshot merged before this step, and after it.
    pub files_from: usize,
    pub files_to: usize,
    /// Live files in that snapshot.
    pub files: usize,
    /// Parquet bytes this step read.
    pub bytes: u64,
}

impl Backfill {
    /// Whether files remain after this step.
    pub fn more(&self) -> bool {
        self.files_to < self.files
    }
}

/// The next slice of a backfill: the table pinned at the snapshot, and which files to read.
pub struct Slice {
    pub table: DeltaTable,
    pub paths: Vec<String>,
    pub progress: Backfill,
}

fn snapshot_id(app: &str) -> String {
    format!("{app}#backfill")
}

fn files_id(app: &str, snapshot: i64) -> String {
    format!("{app}#backfill@{snapshot}")
}

impl Slice {
    /// The markers committed with this slice's rows (see the module documentation).
    pub fn markers(&self, app: &str) -> Vec<(String, i64)> {
        let p = &self.progress;
        let mut m = vec![(snapshot_id(app), p.snapshot + 1), (files_id(app, p.snapshot), p.files_to as i64)];
        if !p.more() {
            m.push((app.to_string(), p.snapshot + 1));
        }
        m
    }
}

/// The slice to read next for the silver table whose marker is `app` (`silver` as it is now,
/// `None` when it does not exist), at most `budget` bytes of Parquet (at least one file).
pub async fn next_slice(lake: &alkasba_lake::Lake, bronze: &DeltaTable, silver: Option<&DeltaTable>, app: &str, budget: u64) -> Result<Slice> {
    let current = bronze.version().unwrap_or_default() as i64;
    let pinned = tables::marker(lake, silver, &snapshot_id(app)).await? - 1;
    let resumed = if pinned >= 0 { resume(lake, bronze, silver, app, pinned).await? } else { None };
    let (table, snapshot, files_from, files) = match resumed {
        Some(r) => r,
        None => (bronze.clone(), current, 0, tables::files(bronze)?),
    };
    let (mut files_to, mut bytes) = (files_from, 0u64);
    while let Some((_, size)) = files.get(files_to) {
        if files_to > files_from && bytes + size > budget {
            break;
        }
        bytes += size;
        files_to += 1;
    }
    let paths = files[files_from..files_to].iter().map(|(p, _)| p.clone()).collect();
    Ok(Slice { table, paths, progress: Backfill { snapshot, files_from, files_to, files: files.len(), bytes } })
}

/// The backfill pinned at `pinned` where it stopped: the table at that version, the files merged
/// so far, its files. `None` (start again from the current snapshot: rows merged already change
/// nothing) when that version can no longer be loaded (its log expired), or when a file still to
/// read is no longer live in bronze: compaction rewrote it (and vacuum may delete it), or an
/// erasure did, and reading the old file would bring back the tokens it replaced.
async fn resume(lake: &alkasba_lake::Lake, bronze: &DeltaTable, silver: Option<&DeltaTable>, app: &str, pinned: i64) -> Result<Option<(DeltaTable, i64, usize, Vec<(String, u64)>)>> {
    let uri = bronze.table_url();
    let done = tables::marker(lake, silver, &files_id(app, pinned)).await?;
    let done = usize::try_from(done).map_err(|_| Error::Data { what: files_id(app, pinned), reason: format!("{done} files") })?;
    let current = bronze.version().unwrap_or_default() as i64;
    let table = if pinned == current {
        bronze.clone()
    } else {
        let mut t = bronze.clone();
        if let Err(e) = t.load_version(pinned as u64).await {
            tracing::warn!(table = %uri, pinned, current, error = %e, "the backfill's snapshot cannot be loaded any more; starting again from the current one");
            return Ok(None);
        }
        t
    };
    let files = tables::files(&table)?;
    let done = done.min(files.len());
    if pinned != current {
        let live: std::collections::HashSet<String> = tables::files(bronze)?.into_iter().map(|(p, _)| p).collect();
        if let Some((gone, _)) = files[done..].iter().find(|(p, _)| !live.contains(p)) {
            tracing::warn!(table = %uri, pinned, current, file = %gone, "a file of the backfill's snapshot was rewritten since (compaction or erasure); starting again from the current snapshot");
            return Ok(None);
        }
    }
    Ok(Some((table, pinned, done, files)))
}
