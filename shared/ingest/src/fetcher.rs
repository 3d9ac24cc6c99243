//! Running fetch tasks: fetch pages, validate, seal, and commit each group of pages exactly once
//! to quarantine and bronze; continue before the deadline; dead-letter poison pages.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use alkasba_pii::{KeyService, Sealer, Tokenizer, keyring_batch};
use alkasba_sources::{Next, next_page, page_url, total_pages};
use chrono::Utc;
use deltalake::datafusion::prelude::{col, lit};
use futures::StreamExt;
use serde::Serialize;
use tokio::time::Instant;
use url::Url;

use crate::catalog::Catalog;
use crate::control::{Control, TaskProgress};
use crate::http::{FetchFailure, Fetched};
use crate::lake::{Lake, Written};
use crate::ports::TaskQueue;
use crate::record::{INGEST_DATE, Origin, Prepared, Processed, Row, quarantine_batch};
use crate::task::{DeadLetter, FetchTask, Pages};
use crate::{Error, Result, runs};

/// Tuning, with the defaults in one place (see [`crate::settings`]).
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Pages per task when a run is planned.
    pub pages_per_task: u64,
    /// Pages per commit.
    pub pages_per_commit: u64,
    /// Pages fetched at once by one fetcher.
    pub fetch_concurrency: usize,
    /// Stop starting work this long before the invocation's deadline.
    pub deadline_margin: Duration,
    /// A run older than this that has not completed is superseded by the next plan.
    pub max_run_age: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self { pages_per_task: 20, pages_per_commit: 20, fetch_concurrency: 4, deadline_margin: Duration::from_secs(20), max_run_age: Duration::from_secs(900) }
    }
}

/// Everything ingestion needs, built once per process.
pub struct Ingest<Q, K> {
    pub catalog: Catalog,
    pub lake: Lake,
    pub control: Control,
    pub queue: Q,
    pub keys: Arc<K>,
    pub tokens: Tokenizer,
    pub settings: Tuning,
}

/// What one task invocation did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TaskReport {
    pub pages_committed: u64,
    pub pages_skipped: u64,
    pub fetched: u64,
    pub valid: u64,
    pub quarantined: u64,
    pub duplicates: u64,
    pub retried_pages: u64,
    pub dead_pages: Vec<u64>,
    pub commits: u64,
    pub commit_conflicts: u64,
    /// A continuation task was enqueued (deadline).
    pub continued: bool,
    /// The run is now complete.
    pub run_completed: bool,
    /// KMS requests the process made while this task ran (one task at a time per fetcher, so
    /// the task's own; the cost figure of envelope encryption).
    pub kms_requests: u64,
}

/// A page's outcome inside a group.
enum PageResult {
    Ok { page: u64, fetched: Fetched },
    Dead { page: u64, failure: FetchFailure },
}

impl<Q: TaskQueue, K: KeyService> Ingest<Q, K> {
    /// Runs one task until it is done or `deadline` (minus the margin) is near.
    pub async fn run_task(&self, task: &FetchTask, deadline: Instant) -> Result<TaskReport> {
        let (entry, prep) = self.catalog.stream(&task.source, &task.stream)?;
        let app_id = task.app_id();
        let bronze_uri = self.lake.bronze(&task.source, &task.stream)?;
        let bronze = self.lake.open(&bronze_uri).await?;
        let committed = self.lake.txn_version(&bronze, &app_id).await? as u64;
        let work_deadline = deadline.checked_sub(self.settings.deadline_margin).unwrap_or(deadline);
        let mut sealer = Sealer::new(self.keys.clone());
        let mut report = TaskReport { kms_requests: self.keys.requests(), ..TaskReport::default() };
        let stream = &prep.stream;

        match task.pages.clone() {
            Pages::Range { first, last, follow } => {
                let mut next = first.max(committed + 1);
                let mut last = last;
                report.pages_skipped = next - first;
                let mut end = false;
                loop {
                    if next > last && !follow {
                        break;
                    }
                    if end {
                        break;
                    }
                    if Instant::now() >= work_deadline {
                        self.continue_task(task, Pages::Range { first: next, last: last.max(next), follow }, &mut report).await?;
                        break;
                    }
                    let group_last = (next + self.settings.pages_per_commit - 1).min(last.max(next));
                    let urls: Vec<(u64, Url)> = (next..=group_last).filter_map(|p| page_url(stream, &task.url, p).map(|u| (p, u))).collect();
                    let results: Vec<std::result::Result<PageResult, u64>> = futures::stream::iter(urls)
                        .map(|(p, u)| async move {
                            match entry.http.fetch(stream, &u, work_deadline).await {
                                Ok(f) => Ok(PageResult::Ok { page: p, fetched: f }),
                                Err(f) if f.out_of_time => Err(p),
                                Err(f) => Ok(PageResult::Dead { page: p, failure: f }),
                            }
                        })
                        .buffered(self.settings.fetch_concurrency.max(1))
                        .collect()
                        .await;
                    // Keep the contiguous prefix of pages that have an outcome; stop at the end
                    // of the stream (an empty page, or the reported total).
                    let mut group = Vec::new();
                    let mut stopped = false;
                    for r in results {
                        match r {
                            Err(_) => {
                                stopped = true;
                                break;
                            }
                            Ok(PageResult::Ok { page, fetched }) => {
                                let empty = fetched.page.records(stream).map(|r| r.is_empty()).unwrap_or(true);
                                let total = total_pages(stream, &fetched.page);
                                let at_end = empty || total.is_some_and(|t| page >= t) || matches!(next_page(stream, &fetched.page), Ok(Next::Done));
                                if let Some(t) = total.filter(|_| follow) {
                                    last = last.max(t);
                                }
                                group.push(PageResult::Ok { page, fetched });
                                if at_end && follow {
                                    end = true;
                                    break;
                                }
                            }
                            Ok(dead) => group.push(dead),
                        }
                    }
                    if group.is_empty() {
                        self.continue_task(task, Pages::Range { first: next, last: last.max(next), follow }, &mut report).await?;
                        break;
                    }
                    let group_first = next;
                    next = group
                        .iter()
                        .map(|g| match g {
                            PageResult::Ok { page, .. } | PageResult::Dead { page, .. } => *page,
                        })
                        .max()
                        .unwrap_or(next)
                        + 1;
                    self.commit_group(task, prep, &mut sealer, group, group_first, end, &mut report).await?;
                    if stopped {
                        self.continue_task(task, Pages::Range { first: next, last: last.max(next), follow }, &mut report).await?;
                        break;
                    }
                }
            }
            Pages::Chain { step } => {
                let mut step = step;
                let mut url = task.url.clone();
                // Steps already committed: walk past them without committing (the next URL is
                // only known from each page).
                while step <= committed {
                    let f = entry.http.fetch(stream, &url, work_deadline).await.map_err(|f| Error::Task(format!("re-walking committed step {step}: {}", f.reason)))?;
                    report.pages_skipped += 1;
                    match next_page(stream, &f.page)? {
                        Next::Done => {
                            self.write_marker(task, step, step, true, &TaskReport::default(), None).await?;
                            return self.finish(task, report).await;
                        }
                        Next::Url(u) => url = u,
                    }
                    step += 1;
                }
                loop {
                    if Instant::now() >= work_deadline {
                        let mut t = task.clone();
                        t.url = url.clone();
                        self.continue_task(&t, Pages::Chain { step }, &mut report).await?;
                        break;
                    }
                    let group_first = step;
                    let mut group = Vec::new();
                    let mut end = false;
                    let mut stopped = false;
                    while (group.len() as u64) < self.settings.pages_per_commit {
                        match entry.http.fetch(stream, &url, work_deadline).await {
                            Ok(f) => {
                                let next = next_page(stream, &f.page)?;
                                group.push(PageResult::Ok { page: step, fetched: f });
                                step += 1;
                                match next {
                                    Next::Done => {
                                        end = true;
                                        break;
                                    }
                                    Next::Url(u) => url = u,
                                }
                            }
                            Err(f) if f.out_of_time => {
                                stopped = true;
                                break;
                            }
                            Err(f) => {
                                // A chain cannot go past a page it cannot read.
                                group.push(PageResult::Dead { page: step, failure: f });
                                end = true;
                                break;
                            }
                        }
                    }
                    if !group.is_empty() {
                        self.commit_group(task, prep, &mut sealer, group, group_first, end, &mut report).await?;
                    }
                    if end {
                        break;
                    }
                    if stopped {
                        let mut t = task.clone();
                        t.url = url.clone();
                        self.continue_task(&t, Pages::Chain { step }, &mut report).await?;
                        break;
                    }
                }
            }
        }
        self.finish(task, report).await
    }

    async fn finish(&self, task: &FetchTask, mut report: TaskReport) -> Result<TaskReport> {
        report.kms_requests = self.keys.requests().saturating_sub(report.kms_requests);
        if !report.continued {
            if let Some(plan) = self.control.plan(&task.source, &task.stream, &task.run_id).await? {
                report.run_completed = runs::try_complete(&self.lake, &self.control, &plan, Utc::now()).await?.is_some();
            }
        }
        tracing::info!(run_id = %task.run_id, task = task.task, pages = report.pages_committed, fetched = report.fetched, valid = report.valid,
            quarantined = report.quarantined, duplicates = report.duplicates, retried_pages = report.retried_pages,
            dead_pages = report.dead_pages.len(), commits = report.commits, conflicts = report.commit_conflicts,
            continued = report.continued, run_completed = report.run_completed, kms_requests = report.kms_requests, "task done");
        Ok(report)
    }

    async fn continue_task(&self, task: &FetchTask, pages: Pages, report: &mut TaskReport) -> Result<()> {
        let mut t = task.clone();
        t.pages = pages;
        tracing::info!(run_id = %task.run_id, task = task.task, pages = ?t.pages, "deadline near: continuing in a new message");
        self.queue.send_tasks(&[t]).await?;
        report.continued = true;
        Ok(())
    }

    async fn write_marker(&self, task: &FetchTask, first: u64, last: u64, end: bool, r: &TaskReport, max_cursor: Option<String>) -> Result<()> {
        let p = TaskProgress {
            task: task.task,
            first_page: first,
            last_page: last,
            end,
            fetched: r.fetched,
            valid: r.valid,
            quarantined: r.quarantined,
            duplicates: r.duplicates,
            retried_pages: r.retried_pages,
            dead_pages: r.dead_pages.clone(),
            max_cursor,
        };
        self.control.write_progress(&task.source, &task.stream, &task.run_id, &p).await
    }

    async fn dead_letter(&self, task: &FetchTask, page: u64, f: &FetchFailure, sealer: &mut Sealer<K>) -> Result<()> {
        let mut error_object = None;
        if let Some(body) = &f.body {
            let key = format!("{}/{}/{}/page-{page:06}-{}.sealed", task.source, task.stream, task.run_id, uuid::Uuid::new_v4().simple());
            // The raw response may hold personal data: sealed under the task's data key, bound
            // to its own key name.
            let sealed = sealer.seal_blob(&format!("errors/{key}"), body).await.map_err(Error::Pii)?;
            error_object = Some(self.control.put_error(&key, sealed).await?);
        }
        let letter = DeadLetter {
            task: Some(task.clone()),
            raw_message: None,
            page: Some(page),
            url: Some(f.url.to_string()),
            reason: f.reason.clone(),
            status: f.status,
            attempts: f.attempts,
            error_object,
            at: Utc::now().to_rfc3339(),
        };
        tracing::error!(run_id = %task.run_id, task = task.task, page, reason = %f.reason, status = ?f.status, attempts = f.attempts, "page dead-lettered");
        self.queue.send_dead(&letter).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_group(&self, task: &FetchTask, prep: &Prepared, sealer: &mut Sealer<K>, group: Vec<PageResult>, group_first: u64, end: bool, report: &mut TaskReport) -> Result<()> {
        let app_id = task.app_id();
        let now = Utc::now();
        let group_last = group
            .iter()
            .map(|g| match g {
                PageResult::Ok { page, .. } | PageResult::Dead { page, .. } => *page,
            })
            .max()
            .unwrap_or(group_first);
        let mut g = TaskReport::default();
        let mut urls: Vec<(u64, String)> = Vec::new();
        let mut done = Processed::default();
        for r in group {
            match r {
                PageResult::Dead { page, failure } => {
                    self.dead_letter(task, page, &failure, sealer).await?;
                    g.dead_pages.push(page);
                }
                PageResult::Ok { page, fetched } => {
                    if fetched.attempts > 1 {
                        g.retried_pages += 1;
                    }
                    let url = fetched.page.url.to_string();
                    prep.process_page(fetched.page.body, Origin { run_id: &task.run_id, page, url: &url }, &self.tokens, sealer, &mut done).await?;
                    urls.push((page, url));
                }
            }
        }
        let Processed { rows, quarantined: qrows, fetched, duplicates, max_cursor, .. } = done;
        g.fetched = fetched;
        g.duplicates = duplicates;
        // Keys first: nothing sealed under a key may be committed before the key.
        let new_keys = sealer.take_new_keys();
        if !new_keys.is_empty() {
            self.lake.append(&self.lake.keyring()?, keyring_batch(&new_keys).map_err(Error::Pii)?, &[]).await?;
        }
        let url_of = |p: u64| urls.iter().find(|(q, _)| *q == p).map(|(_, u)| u.clone()).unwrap_or_default();
        g.quarantined = qrows.len() as u64;
        if !qrows.is_empty() {
            let batch = quarantine_batch(&prep.id, &qrows, &task.run_id, url_of, now)?;
            self.lake.append_once(&self.lake.quarantine()?, batch, (app_id.clone(), group_last as i64), &[INGEST_DATE]).await?;
        }
        // Bronze: re-read, skip pages a racing copy of this task committed, drop rows already
        // in the table (same key and version), commit with the task's marker; on a lost race,
        // do it all again against the new table version.
        let uri = self.lake.bronze(&task.source, &task.stream)?;
        let mut committed_here = false;
        for _ in 0..30 {
            let table = self.lake.current(&uri).await?;
            let done = self.lake.txn_version(&table, &app_id).await? as u64;
            if done >= group_last {
                break;
            }
            let todo: Vec<&Row> = rows.iter().filter(|r| r.page > done).collect();
            let existing = self.existing(&table, prep, &todo).await?;
            let fresh: Vec<Row> = todo.into_iter().filter(|r| !existing.contains(&(r.key.clone(), r.version.clone()))).cloned().collect();
            let dups = rows.iter().filter(|r| r.page > done).count() - fresh.len();
            let batch = prep.bronze_batch(&fresh, &task.run_id, now)?;
            match self.lake.try_append(table, batch, Some((app_id.clone(), group_last as i64)), &[INGEST_DATE]).await? {
                Written::Committed(v) => {
                    tracing::debug!(version = v, rows = fresh.len(), pages = ?(group_first..=group_last), "bronze commit");
                    g.duplicates += dups as u64;
                    g.valid = fresh.len() as u64;
                    committed_here = true;
                    report.commits += 1;
                    break;
                }
                Written::Conflict => report.commit_conflicts += 1,
            }
        }
        if !committed_here {
            let table = self.lake.current(&uri).await?;
            if (self.lake.txn_version(&table, &app_id).await? as u64) < group_last {
                return Err(Error::Lake(alkasba_lake::Error::InvalidEvent(format!("{uri}: lost 30 commit races in a row"))));
            }
        }
        self.write_marker(task, group_first, group_last, end, &g, max_cursor).await?;
        report.pages_committed += group_last + 1 - group_first - g.dead_pages.len() as u64;
        report.fetched += g.fetched;
        report.valid += g.valid;
        report.quarantined += g.quarantined;
        report.duplicates += g.duplicates;
        report.retried_pages += g.retried_pages;
        report.dead_pages.extend(g.dead_pages);
        Ok(())
    }

    /// (key, version) pairs of `rows` already in the table, read with a filter that prunes files
    /// by their key and version statistics.
    async fn existing(&self, table: &deltalake::DeltaTable, prep: &Prepared, rows: &[&Row]) -> Result<HashSet<(String, String)>> {
        if rows.is_empty() || table.version().is_none() {
            return Ok(HashSet::new());
        }
        let vmin = rows.iter().map(|r| r.version.as_str()).min().unwrap_or_default();
        let vmax = rows.iter().map(|r| r.version.as_str()).max().unwrap_or_default();
        let mut filter = col(crate::record::VERSION).between(lit(vmin), lit(vmax));
        match &prep.int_key_column {
            Some(c) => {
                let ids: Vec<i64> = rows.iter().filter_map(|r| r.key.parse().ok()).collect();
                if let (Some(lo), Some(hi)) = (ids.iter().min(), ids.iter().max()) {
                    filter = filter.and(col(c.as_str()).between(lit(*lo), lit(*hi)));
                }
            }
            None => {
                let kmin = rows.iter().map(|r| r.key.as_str()).min().unwrap_or_default();
                let kmax = rows.iter().map(|r| r.key.as_str()).max().unwrap_or_default();
                filter = filter.and(col(crate::record::KEY).between(lit(kmin), lit(kmax)));
            }
        }
        let batches = self.lake.scan_table(table, Some(filter), &[crate::record::KEY, crate::record::VERSION]).await?;
        let wanted: HashSet<(&str, &str)> = rows.iter().map(|r| (r.key.as_str(), r.version.as_str())).collect();
        let mut out = HashSet::new();
        for b in batches {
            let (k, v) = (alkasba_lake::read::strings(b.column(0))?, alkasba_lake::read::strings(b.column(1))?);
            for i in 0..b.num_rows() {
                if wanted.contains(&(k.value(i), v.value(i))) {
                    out.insert((k.value(i).to_string(), v.value(i).to_string()));
                }
            }
        }
        Ok(out)
    }
}

/// What became of one queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Done (committed, or dead-lettered with its reason): delete the message.
    Done,
    /// A retryable failure: leave the message for SQS to redeliver (partial batch failure).
    Retry,
}

impl<Q: TaskQueue, K: KeyService> Ingest<Q, K> {
    /// Handles one fetch-task message body: runs it; a retryable failure is left to SQS, a
    /// permanent one (an unreadable message, an unknown stream) goes to the dead-letter queue
    /// with its reason at once.
    pub async fn handle_message(&self, body: &str, deadline: Instant) -> MessageOutcome {
        let task: FetchTask = match serde_json::from_str(body) {
            Ok(t) => t,
            Err(e) => {
                let reason = format!("not a fetch task: {e}");
                tracing::error!(%reason, "message dead-lettered");
                let letter = DeadLetter {
                    task: None,
                    raw_message: Some(body.chars().take(4_000).collect()),
                    page: None,
                    url: None,
                    reason,
                    status: None,
                    attempts: 1,
                    error_object: None,
                    at: Utc::now().to_rfc3339(),
                };
                return match self.queue.send_dead(&letter).await {
                    Ok(()) => MessageOutcome::Done,
                    Err(_) => MessageOutcome::Retry,
                };
            }
        };
        let span = tracing::info_span!("task", run_id = %task.run_id, stream = %format!("{}.{}", task.source, task.stream), task = task.task);
        match tracing::Instrument::instrument(self.run_task(&task, deadline), span).await {
            Ok(_) => MessageOutcome::Done,
            Err(e) if e.is_retryable() => {
                tracing::warn!(run_id = %task.run_id, task = task.task, error = %e, "task failed; SQS will redeliver it");
                MessageOutcome::Retry
            }
            Err(e) => {
                tracing::error!(run_id = %task.run_id, task = task.task, error = %e, "task failed permanently; dead-lettered");
                let letter =
                    DeadLetter { task: Some(task), raw_message: None, page: None, url: None, reason: e.to_string(), status: None, attempts: 1, error_object: None, at: Utc::now().to_rfc3339() };
                match self.queue.send_dead(&letter).await {
                    Ok(()) => MessageOutcome::Done,
                    Err(_) => MessageOutcome::Retry,
                }
            }
        }
    }
}
