//! The ingestion-runs table (one row per completed run) and run completion.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use alkasba_lake::arrow::array::{Array, ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use alkasba_lake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use alkasba_lake::arrow::record_batch::RecordBatch;
use alkasba_lake::read::Filter;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::control::{Control, RunPlan};
use crate::{Error, Result};
use alkasba_lake::Lake;

/// What was counted of records and pages: one shape for a commit's progress, a task's report and
/// a run's totals (flattened into each, so their JSON keeps the same keys).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Records read from the source's pages.
    pub fetched: u64,
    /// Records written to bronze.
    pub valid: u64,
    /// Records written to quarantine.
    pub quarantined: u64,
    /// Records skipped as already in bronze (same key and version).
    pub duplicates: u64,
    /// Pages that needed more than one request.
    pub retried_pages: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Self) {
        self.fetched += o.fetched;
        self.valid += o.valid;
        self.quarantined += o.quarantined;
        self.duplicates += o.duplicates;
        self.retried_pages += o.retried_pages;
    }
}

/// A completed run's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunTotals {
    pub pages: u64,
    #[serde(flatten)]
    pub counts: Counts,
}

/// What one bronze commit of a task did: kept in the commit itself (its `commitInfo`, see
/// `alkasba_lake::Append::metadata`), so data and progress are one atomic write and a task killed
/// at any point leaves either both or neither.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskProgress {
    pub run_id: String,
    pub task: u32,
    /// The redrive this commit belongs to (0: the planned task).
    #[serde(default)]
    pub redrive: u32,
    pub first_page: u64,
    pub last_page: u64,
    /// The last page of the whole stream was reached.
    pub end: bool,
    #[serde(flatten)]
    pub counts: Counts,
    /// Pages of `first_page..=last_page` handed to the dead-letter queue (not landed).
    pub dead_pages: Vec<u64>,
    /// Largest cursor value seen.
    pub max_cursor: Option<String>,
}

impl TaskProgress {
    /// Whether this commit landed `page` of `task`.
    fn landed(&self, task: u32, page: u64) -> bool {
        self.task == task && (self.first_page..=self.last_page).contains(&page) && !self.dead_pages.contains(&page)
    }
}

/// Every commit of `plan`'s run in its bronze table, oldest first (read from the Delta log from
/// the version the run was planned at).
pub async fn progress(lake: &Lake, plan: &RunPlan) -> Result<Vec<TaskProgress>> {
    let uri = lake.bronze(&plan.source, &plan.stream)?;
    let mut out = Vec::new();
    for (version, meta) in lake.commit_metadata(&uri, plan.bronze_from).await? {
        let Some(p) = meta.get("progress") else { continue };
        let p: TaskProgress = serde_json::from_value(p.clone()).map_err(|e| Error::Task(format!("{uri} version {version}: unreadable task progress: {e}")))?;
        if p.run_id == plan.run_id {
            out.push(p);
        }
    }
    Ok(out)
}

/// Pages of a run that went to the dead-letter queue and have not landed since, as
/// `(task, page)`.
pub fn dead_pages(progress: &[TaskProgress]) -> BTreeSet<(u32, u64)> {
    progress.iter().flat_map(|p| p.dead_pages.iter().map(move |d| (p.task, *d))).filter(|(t, d)| !progress.iter().any(|q| q.landed(*t, *d))).collect()
}

/// What the ledger says about a stream.
#[derive(Debug, Clone, Default)]
pub struct StreamState {
    /// The newest committed watermark.
    pub watermark: Option<String>,
    /// Runs recorded as completed.
    pub completed: HashSet<String>,
}

fn schema() -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("stream", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("opened_at", DataType::Utf8, false),
        Field::new("completed_at", ts, false),
        Field::new("watermark_from", DataType::Utf8, true),
        Field::new("watermark_to", DataType::Utf8, true),
        Field::new("pages", DataType::Int64, false),
        Field::new("fetched", DataType::Int64, false),
        Field::new("valid", DataType::Int64, false),
        Field::new("quarantined", DataType::Int64, false),
        Field::new("duplicates_skipped", DataType::Int64, false),
        Field::new("pages_retried", DataType::Int64, false),
    ]))
}

/// Watermark and completed runs of every stream (one scan of the ledger).
pub async fn states(lake: &Lake) -> Result<HashMap<(String, String), StreamState>> {
    let batches = lake.select(&lake.runs()?, Some(&Filter::eq("status", "completed")), &["run_id", "source", "stream", "watermark_to"]).await?;
    let mut out: HashMap<(String, String), StreamState> = HashMap::new();
    for b in batches {
        let s = |i: usize| alkasba_lake::read::strings(b.column(i));
        let (run, src, st, wm) = (s(0)?, s(1)?, s(2)?, s(3)?);
        for i in 0..b.num_rows() {
            let e = out.entry((src.value(i).to_string(), st.value(i).to_string())).or_default();
            e.completed.insert(run.value(i).to_string());
            if !wm.is_null(i) {
                let w = wm.value(i).to_string();
                if e.watermark.as_ref().is_none_or(|cur| w > *cur) {
                    e.watermark = Some(w);
                }
            }
        }
    }
    Ok(out)
}

/// Totals of a run from its commits, if every planned page has landed; `None` while pages are
/// missing or a dead-lettered page has not landed since.
pub fn completion(plan: &RunPlan, progress: &[TaskProgress]) -> Option<RunTotals> {
    if !dead_pages(progress).is_empty() {
        return None;
    }
    let done = if plan.chain {
        progress.iter().any(|p| p.end)
    } else {
        // Tasks cover consecutive ranges in task order: each starts after the one before.
        let mut tasks = plan.tasks.clone();
        tasks.sort();
        let last_task = tasks.last().map(|(t, _)| *t);
        let firsts = std::iter::once(1).chain(tasks.iter().map(|(_, last)| last + 1));
        tasks.iter().zip(firsts).all(|((task, last), first)| {
            let every_page = (first..=*last).all(|page| progress.iter().any(|p| p.landed(*task, page)));
            every_page && (Some(*task) != last_task || progress.iter().any(|p| p.task == *task && p.end))
        })
    };
    if !done {
        return None;
    }
    let mut t = RunTotals::default();
    for p in progress {
        t.pages += p.last_page + 1 - p.first_page - p.dead_pages.len() as u64;
        t.counts += p.counts;
    }
    Some(t)
}

/// Records the run as completed if it is; `Some` when it is (now or already).
pub async fn try_complete(lake: &Lake, plan: &RunPlan, now: DateTime<Utc>) -> Result<Option<RunTotals>> {
    let progress = progress(lake, plan).await?;
    let Some(totals) = completion(plan, &progress) else { return Ok(None) };
    let watermark_to = plan.watermark_to.clone().or_else(|| progress.iter().filter_map(|p| p.max_cursor.clone()).max());
    let i = |v: u64| -> ArrayRef { Arc::new(Int64Array::from(vec![v as i64])) };
    let s = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let o = |v: Option<&str>| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            s(&plan.run_id),
            s(&plan.source),
            s(&plan.stream),
            s("completed"),
            s(&plan.opened_at),
            Arc::new(TimestampMicrosecondArray::from(vec![now.timestamp_micros()]).with_timezone("UTC")),
            o(plan.watermark_from.as_deref()),
            o(watermark_to.as_deref()),
            i(totals.pages),
            i(totals.counts.fetched),
            i(totals.counts.valid),
            i(totals.counts.quarantined),
            i(totals.counts.duplicates),
            i(totals.counts.retried_pages),
        ],
    )
    .map_err(|e| Error::Batch(e.to_string()))?;
    let recorded = lake.append_once(&lake.runs()?, batch, (format!("run.{}", plan.run_id), 1), &[]).await?;
    if recorded {
        tracing::info!(run_id = %plan.run_id, source = %plan.source, stream = %plan.stream, watermark = watermark_to.as_deref().unwrap_or("-"),
            pages = totals.pages, fetched = totals.counts.fetched, valid = totals.counts.valid, quarantined = totals.counts.quarantined,
            duplicates_skipped = totals.counts.duplicates, pages_retried = totals.counts.retried_pages, "run completed");
    }
    Ok(Some(totals))
}

/// Where a stream's latest run stands (the `alkasba ingest status` view).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StreamStatus {
    /// `source.stream`.
    pub stream: String,
    /// The newest committed watermark.
    pub watermark: Option<String>,
    /// The newest run the planner opened.
    pub latest_run: Option<String>,
    /// That run is recorded as completed.
    pub completed: bool,
    /// Pages of that run in bronze so far.
    pub pages_committed: u64,
    /// Pages planned (`None` for a cursor chain, whose length is unknown).
    pub pages_planned: Option<u64>,
    /// Records of that run fetched so far.
    pub fetched: u64,
    /// Pages of that run in the dead-letter queue that have not landed since (the run cannot
    /// complete until they do: redrive them, or the next plan supersedes the run).
    pub dead_pages: usize,
}

/// The status of every `(source, stream)` in `streams`.
pub async fn status(lake: &Lake, control: &Control, streams: &[(String, String)]) -> Result<Vec<StreamStatus>> {
    let states = states(lake).await?;
    let mut out = Vec::new();
    for (source, stream) in streams {
        let state = states.get(&(source.clone(), stream.clone())).cloned().unwrap_or_default();
        let mut s = StreamStatus { stream: format!("{source}.{stream}"), watermark: state.watermark, ..Default::default() };
        if let Some(run) = control.runs(source, stream).await?.pop() {
            s.completed = state.completed.contains(&run);
            if let Some(plan) = control.plan(source, stream, &run).await? {
                s.pages_planned = (!plan.chain).then(|| plan.tasks.iter().map(|(_, last)| *last).max().unwrap_or(0));
                let progress = progress(lake, &plan).await?;
                for p in &progress {
                    s.pages_committed += p.last_page + 1 - p.first_page - p.dead_pages.len() as u64;
                    s.fetched += p.counts.fetched;
                }
                s.dead_pages = dead_pages(&progress).len();
            }
            s.latest_run = Some(run);
        }
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(tasks: Vec<(u32, u64)>, chain: bool) -> RunPlan {
        RunPlan { run_id: "r".into(), source: "s".into(), stream: "x".into(), opened_at: String::new(), watermark_from: None, watermark_to: None, tasks, chain, bronze_from: 0 }
    }

    fn p(task: u32, first: u64, last: u64, end: bool, dead: &[u64]) -> TaskProgress {
        TaskProgress { run_id: "r".into(), task, first_page: first, last_page: last, end, counts: Counts { fetched: 1, ..Counts::default() }, dead_pages: dead.to_vec(), ..Default::default() }
    }

    #[test]
    fn a_range_run_completes_when_every_page_landed_and_dead_pages_were_redriven() {
        let plan = plan(vec![(0, 3), (1, 5)], false);
        let mut progress = vec![p(0, 1, 2, false, &[]), p(1, 4, 5, true, &[])];
        assert!(completion(&plan, &progress).is_none(), "page 3 is missing");
        progress.push(p(0, 3, 3, false, &[3]));
        assert!(completion(&plan, &progress).is_none(), "page 3 is dead");
        assert_eq!(dead_pages(&progress).into_iter().collect::<Vec<_>>(), [(0, 3)]);
        progress.push(TaskProgress { redrive: 1, ..p(0, 3, 3, false, &[]) });
        let t = completion(&plan, &progress).expect("complete once the redrive landed page 3");
        assert_eq!(t.pages, 5);
        assert!(completion(&plan, &[p(0, 1, 3, false, &[]), p(1, 4, 5, false, &[])]).is_none(), "the last task has not seen the end");
    }

    #[test]
    fn a_chain_completes_at_its_end_with_no_dead_step_left() {
        let plan = plan(vec![], true);
        let mut progress = vec![p(0, 1, 4, false, &[4])];
        assert!(completion(&plan, &progress).is_none());
        progress.push(TaskProgress { redrive: 1, ..p(0, 4, 6, true, &[]) });
        assert_eq!(completion(&plan, &progress).map(|t| t.pages), Some(6));
    }
}
