//! The ingestion-runs table (one row per completed run) and run completion.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use alkasba_lake::arrow::array::{Array, ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use alkasba_lake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use alkasba_lake::arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use deltalake::datafusion::prelude::{col, lit};

use crate::control::{Control, RunPlan, TaskProgress};
use crate::lake::Lake;
use crate::{Error, Result};

/// A completed run's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunTotals {
    pub pages: u64,
    pub fetched: u64,
    pub valid: u64,
    pub quarantined: u64,
    pub duplicates: u64,
    pub retried_pages: u64,
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
    let batches = lake.scan(&lake.runs()?, Some(col("status").eq(lit("completed"))), &["run_id", "source", "stream", "watermark_to"]).await?;
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

/// Totals of a run from its progress markers, if every planned page is committed; `None` while
/// pages are missing or a page went to the dead-letter queue.
pub fn completion(plan: &RunPlan, progress: &[TaskProgress]) -> Option<RunTotals> {
    let dead: BTreeSet<u64> = progress.iter().flat_map(|p| p.dead_pages.iter().copied()).collect();
    if !dead.is_empty() {
        return None;
    }
    let done = if plan.chain {
        progress.iter().any(|p| p.end)
    } else {
        let last_task = plan.tasks.iter().map(|(t, _)| *t).max();
        plan.tasks.iter().all(|(task, last)| {
            let mine = progress.iter().filter(|p| p.task == *task);
            let reached = mine.clone().map(|p| p.last_page).max().unwrap_or(0) >= *last;
            reached && (Some(*task) != last_task || mine.clone().any(|p| p.end))
        })
    };
    if !done {
        return None;
    }
    let mut t = RunTotals::default();
    for p in progress {
        t.pages += p.last_page + 1 - p.first_page;
        t.fetched += p.fetched;
        t.valid += p.valid;
        t.quarantined += p.quarantined;
        t.duplicates += p.duplicates;
        t.retried_pages += p.retried_pages;
    }
    Some(t)
}

/// Records the run as completed if it is; `Some` when it is (now or already).
pub async fn try_complete(lake: &Lake, control: &Control, plan: &RunPlan, now: DateTime<Utc>) -> Result<Option<RunTotals>> {
    let progress = control.progress(&plan.source, &plan.stream, &plan.run_id).await?;
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
            i(totals.fetched),
            i(totals.valid),
            i(totals.quarantined),
            i(totals.duplicates),
            i(totals.retried_pages),
        ],
    )
    .map_err(|e| Error::Batch(e.to_string()))?;
    let recorded = lake.append_once(&lake.runs()?, batch, (format!("run.{}", plan.run_id), 1), &[]).await?;
    if recorded {
        tracing::info!(run_id = %plan.run_id, source = %plan.source, stream = %plan.stream, watermark = watermark_to.as_deref().unwrap_or("-"),
            pages = totals.pages, fetched = totals.fetched, valid = totals.valid, quarantined = totals.quarantined,
            duplicates_skipped = totals.duplicates, pages_retried = totals.retried_pages, "run completed");
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
    /// Pages of that run handed to the dead-letter queue (the run cannot complete).
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
            }
            for p in control.progress(source, stream, &run).await? {
                s.pages_committed += p.last_page + 1 - p.first_page;
                s.fetched += p.fetched;
                s.dead_pages += p.dead_pages.len();
            }
            s.latest_run = Some(run);
        }
        out.push(s);
    }
    Ok(out)
}
