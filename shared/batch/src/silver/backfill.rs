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
//! change data feed after `V`. A run killed between slices resumes at the next slice. If the
//! pinned version can no longer be loaded (its log expired), the backfill restarts from bronze's
//! current snapshot: rows already merged are merged again, which changes nothing (a row only
//! replaces one with a smaller `seq`).

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
    let (table, snapshot) = if pinned < 0 || pinned == current {
        (bronze.clone(), current)
    } else {
        let mut t = bronze.clone();
        match t.load_version(pinned as u64).await {
            Ok(()) => (t, pinned),
            Err(e) => {
                let uri = bronze.table_url();
                tracing::warn!(table = %uri, pinned, current, error = %e, "the backfill's snapshot cannot be loaded any more; restarting from the current one (rows merged already change nothing)");
                (bronze.clone(), current)
            }
        }
    };
    let files_from = if snapshot == pinned {
        usize::try_from(tables::marker(lake, silver, &files_id(app, snapshot)).await?).map_err(|_| Error::Data { what: files_id(app, snapshot), reason: "negative file count".into() })?
    } else {
        0
    };
    let files = tables::files(&table)?;
    let (mut files_to, mut bytes) = (files_from.min(files.len()), 0u64);
    while let Some((_, size)) = files.get(files_to) {
        if files_to > files_from && bytes + size > budget {
            break;
        }
        bytes += size;
        files_to += 1;
    }
    let paths = files[files_from.min(files.len())..files_to].iter().map(|(p, _)| p.clone()).collect();
    Ok(Slice { table, paths, progress: Backfill { snapshot, files_from, files_to, files: files.len(), bytes } })
}
