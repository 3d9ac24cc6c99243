//! Running fetch tasks: fetch pages, validate, seal, and commit each group of pages exactly once
//! to quarantine and bronze (with the task's progress in the same bronze commit); continue
//! before the deadline; bring failing pages back in later rounds, and dead-letter a page only
//! when its rounds are spent.
//!
//! * [`range`]: numbered pages (`Pages::Range`), several in flight.
//! * [`chain`]: cursor chains (`Pages::Chain`), one page after another.
//! * [`commit`]: a group of fetched pages to quarantine and bronze, and dead letters.

mod chain;
mod commit;
mod range;

use std::sync::Arc;
use std::time::Duration;

use alkasba_lake::Lake;
use alkasba_pii::{KeyService, Sealer, Tokenizer};
use chrono::Utc;
use serde::Serialize;
use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::control::Control;
use crate::http::{FetchFailure, Fetched};
use crate::ports::{MAX_DELAY_SECS, TaskQueue};
use crate::runs::Counts;
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
    /// Numbered pages of the next group fetched while a group commits (0: none; at most a
    /// group): they hide the commit's latency, and each is held parsed in memory meanwhile.
    /// Half a group of 20 measured best (docs/benchmarks.md, issue 20): a whole group added
    /// ~20 MB per fetcher and no speed.
    pub fetch_ahead_pages: u64,
    /// Stop starting work this long before the invocation's deadline.
    pub deadline_margin: Duration,
    /// A run older than this that has not completed is superseded by the next plan.
    pub max_run_age: Duration,
    /// Rounds a failing page gets (each round is the source's whole retry policy) before it is
    /// dead-lettered.
    pub page_retry_rounds: u32,
    /// The pause before a page's second round; it doubles each round, up to SQS's 15 minutes.
    pub page_retry_delay: Duration,
    /// Test-only crash points (none by default).
    pub crash: crate::crash::CrashPoints,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            pages_per_task: 20,
            pages_per_commit: 100,
            fetch_concurrency: 4,
            fetch_ahead_pages: 10,
            deadline_margin: Duration::from_secs(20),
            max_run_age: Duration::from_secs(900),
            page_retry_rounds: 4,
            page_retry_delay: Duration::from_secs(30),
            crash: Default::default(),
        }
    }
}

impl Tuning {
    /// The pause before round `round` (2, 3, ...) of a failing page.
    pub fn retry_delay(&self, round: u32) -> Duration {
        let factor = 1u32.checked_shl(round.saturating_sub(2)).unwrap_or(u32::MAX);
        self.page_retry_delay.saturating_mul(factor).min(Duration::from_secs(MAX_DELAY_SECS))
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
    #[serde(flatten)]
    pub counts: Counts,
    /// Pages given up on (their rounds spent) and handed to the dead-letter queue.
    pub dead_pages: Vec<u64>,
    /// A page failed its round: the task comes back later from it (`round` of the new message).
    pub retry_round: Option<u32>,
    pub commits: u64,
    pub commit_conflicts: u64,
    /// A continuation task was enqueued (deadline, or a failing page's next round).
    pub continued: bool,
    /// The run is now complete.
    pub run_completed: bool,
    /// KMS requests the process made while this task ran (one task at a time per fetcher, so
    /// the task's own; the cost figure of envelope encryption).
    pub kms_requests: u64,
    /// Where the task's time went.
    #[serde(flatten)]
    pub phases: Phases,
}

/// Wall time a task spent in each phase, in milliseconds, summed over its page groups: where
/// end-to-end time goes (issue 20). Phases follow one another within a task, so they add up to
/// nearly the task's duration; fetch time of numbered pages is the wall time of the group's
/// concurrent requests.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Phases {
    /// Waiting for the source's pages (pace, requests, retries' backoff).
    pub fetch_ms: u64,
    /// Wall time of the commits that ran with the next group's requests in flight beside them
    /// (numbered pages); their own phases are counted below as usual. Not part of the sum.
    pub fetch_ahead_ms: u64,
    /// Validating, tokenising and sealing records (the CPU path, `process_page`).
    pub process_ms: u64,
    /// Committing new per-person keys to the keyring.
    pub keyring_ms: u64,
    /// Committing invalid records to quarantine (at the same time as the keyring: the two
    /// overlap).
    pub quarantine_ms: u64,
    /// Committing to bronze: the duplicate lookup, the Parquet encoding and upload, the commit
    /// and any lost-race retries.
    pub bronze_ms: u64,
}

/// Milliseconds since `t`.
pub(crate) fn ms_since(t: std::time::Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// A group of pages on its way to one commit. Each page is processed as it joins (in page
/// order) and its body dropped then: holding a whole group's pages until the commit is what
/// bounded the group's size in memory (issue 20). Pages given up on wait here for their dead letters.
#[derive(Default)]
struct Group {
    /// The group's last page so far.
    last: Option<u64>,
    /// Its valid rows, quarantined records and counts.
    done: alkasba_records::record::Processed,
    /// Each page's URL, for its quarantined records.
    urls: Vec<(u64, String)>,
    /// Pages given up on, with why.
    dead: Vec<(u64, FetchFailure)>,
    /// Pages that took more than one request.
    retried_pages: u64,
    /// Time spent processing its pages.
    process_ms: u64,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.last.is_none()
    }

    fn dead(&mut self, page: u64, failure: FetchFailure) {
        self.dead.push((page, failure));
        self.last = Some(page);
    }
}

impl<Q: TaskQueue, K: KeyService> Ingest<Q, K> {
    /// Adds page `page` to `group`: validated, tokenised and sealed now.
    async fn add_page(&self, run: &mut Run<'_, K>, group: &mut Group, page: u64, fetched: Fetched) -> Result<()> {
        let t = std::time::Instant::now();
        if fetched.attempts > 1 {
            group.retried_pages += 1;
        }
        let url = fetched.page.url.to_string();
        let origin = alkasba_records::record::Origin { run_id: &run.task.run_id, page, url: &url };
        run.prep.process_page(&fetched.page, origin, &self.tokens, &mut run.sealer, &mut group.done).await?;
        group.urls.push((page, url));
        group.last = Some(page);
        group.process_ms += ms_since(t);
        Ok(())
    }
}

/// What a task invocation reads and writes through: the task, its stream, and its sealer.
struct Run<'a, K: KeyService> {
    task: &'a FetchTask,
    entry: &'a crate::catalog::SourceEntry,
    prep: &'a alkasba_records::record::Prepared,
    sealer: Sealer<K>,
    deadline: Instant,
    /// The marker committed before this invocation (last page or step).
    committed: u64,
}

/// What is known of a task message's earlier deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The queue counts this as the message's first receive (SQS `ApproximateReceiveCount` 1):
    /// no earlier invocation of it can have committed pages, so its marker is not looked up
    /// before fetching. The lookup replays bronze's log since its last checkpoint (one GET per
    /// commit file), once per task (issue 20). A continued task's message starts past its
    /// committed pages already. A duplicate the queue delivers alongside (standard queues
    /// deliver at least once) fetches its pages again, and its commits still keep only what no
    /// copy committed: the marker is checked at every commit.
    First,
    /// Received before, or not known: committed pages are looked up first and skipped.
    Again,
}

impl Delivery {
    /// From an SQS message's `ApproximateReceiveCount` attribute; [`Delivery::Again`] when it
    /// is missing or unreadable.
    pub fn from_receive_count(count: Option<&str>) -> Self {
        if count.and_then(|c| c.trim().parse::<u32>().ok()) == Some(1) { Self::First } else { Self::Again }
    }
}

impl<Q: TaskQueue, K: KeyService> Ingest<Q, K> {
    /// Runs one task until it is done or `deadline` (minus the margin) is near.
    pub async fn run_task(&self, task: &FetchTask, delivery: Delivery, deadline: Instant) -> Result<TaskReport> {
        let (entry, prep) = self.catalog.stream(&task.source, &task.stream)?;
        let committed = match delivery {
            Delivery::First => 0,
            Delivery::Again => {
                let bronze = self.lake.current(&self.lake.bronze(&task.source, &task.stream)?).await?;
                self.lake.txn_version(&bronze, &task.app_id()).await? as u64
            }
        };
        let work_deadline = deadline.checked_sub(self.settings.deadline_margin).unwrap_or(deadline);
        if Instant::now() >= work_deadline {
            // Continuing would only send the same task on and on without reading a page.
            let left = deadline.saturating_duration_since(Instant::now()).as_secs();
            return Err(Error::Config(format!(
                "DEADLINE_MARGIN_SECS ({} s) leaves no time in this invocation ({left} s left): lower it, or raise the function's timeout",
                self.settings.deadline_margin.as_secs()
            )));
        }
        let deadline = work_deadline;
        // A task planned before any fetcher of the source had learned a pace (a first load)
        // carries none; a sandbox that joins such a run later (Lambda adds pollers while the
        // queue stays deep) reads the pace the run's earlier tasks recorded instead of starting
        // slow: one small GET, once per cold sandbox.
        let pace = match task.pace {
            Some(rate) => Some(rate),
            None if entry.http.pace().is_fresh() => self.learned_pace(&task.source, Utc::now()).await,
            None => None,
        };
        if let Some(rate) = pace
            && entry.http.pace().open_at(rate)
        {
            tracing::debug!(rate, "opening at the pace a fetcher of this source learned");
        }
        let sealer = Sealer::new(self.keys.clone(), alkasba_pii::kms_context(&task.source, &task.stream));
        let mut run = Run { task, entry, prep, sealer, deadline, committed };
        let mut report = TaskReport { kms_requests: self.keys.requests(), ..TaskReport::default() };
        match task.pages.clone() {
            Pages::Range { first, last, follow } => self.run_range(&mut run, first, last, follow, &mut report).await?,
            Pages::Chain { step } => self.run_chain(&mut run, step, &mut report).await?,
        }
        self.finish(task, report).await
    }

    /// Rounds page `page` has failed, this one included, when it fails now.
    fn failed_rounds(run: &Run<'_, K>, page: u64) -> u32 {
        match run.task.pages {
            Pages::Range { first, .. } if first == page => run.task.round + 1,
            Pages::Chain { step } if step == page => run.task.round + 1,
            _ => 1,
        }
    }

    async fn finish(&self, task: &FetchTask, mut report: TaskReport) -> Result<TaskReport> {
        report.kms_requests = self.keys.requests().saturating_sub(report.kms_requests);
        self.record_pace(task).await;
        if !report.continued
            && let Some(plan) = self.control.plan(&task.source, &task.stream, &task.run_id).await?
        {
            report.run_completed = runs::try_complete(&self.lake, &plan, Utc::now()).await?.is_some();
        }
        metrics::counter!("RecordsFetched").increment(report.counts.fetched);
        metrics::counter!("RecordsQuarantined").increment(report.counts.quarantined);
        tracing::info!(run_id = %task.run_id, task = task.task, redrive = task.redrive, pages = report.pages_committed, fetched = report.counts.fetched, valid = report.counts.valid,
            quarantined = report.counts.quarantined, duplicates = report.counts.duplicates, retried_pages = report.counts.retried_pages,
            dead_pages = report.dead_pages.len(), retry_round = ?report.retry_round, commits = report.commits, conflicts = report.commit_conflicts,
            continued = report.continued, run_completed = report.run_completed, kms_requests = report.kms_requests,
            fetch_ms = report.phases.fetch_ms, fetch_ahead_ms = report.phases.fetch_ahead_ms, process_ms = report.phases.process_ms, keyring_ms = report.phases.keyring_ms, quarantine_ms = report.phases.quarantine_ms, bronze_ms = report.phases.bronze_ms, "task done");
        Ok(report)
    }

    /// Records the pace this process has reached for the task's source, for the next run's
    /// fetchers to open at (one small PUT per task; a failure only costs them a slow start).
    async fn record_pace(&self, task: &FetchTask) {
        let Some(rate) = self.pace_now(task).filter(|r| *r > crate::pace::PaceTuning::default().initial) else { return };
        let learned = crate::control::LearnedPace { rate, at: Utc::now().to_rfc3339() };
        if let Err(e) = self.control.put_pace(&task.source, &learned).await {
            tracing::warn!(source = %task.source, error = %e, "could not record the learned pace: the next run's fetchers start slow");
        }
    }

    /// The request rate this process allows itself now for `task`'s source.
    fn pace_now(&self, task: &FetchTask) -> Option<f64> {
        self.catalog.stream(&task.source, &task.stream).ok().map(|(entry, _)| entry.http.pace().stats().rate)
    }

    /// Sends the rest of `task` (`pages`, from `url` for a chain) back to the queue: at once
    /// when the deadline is near, or after a pause when its first page failed this round.
    async fn continue_task(&self, task: &FetchTask, pages: Pages, url: Option<url::Url>, failed_round: bool, report: &mut TaskReport) -> Result<()> {
        let first = |p: &Pages| match p {
            Pages::Range { first, .. } => *first,
            Pages::Chain { step } => *step,
        };
        let same_first = first(&pages) == first(&task.pages);
        let mut t = task.clone();
        t.round = match (failed_round, same_first) {
            (true, true) => task.round + 1,
            (true, false) => 1,
            (false, true) => task.round,
            (false, false) => 0,
        };
        t.pages = pages;
        // Whoever takes the rest opens at this process's pace.
        t.pace = self.pace_now(task);
        if let Some(u) = url {
            t.url = u;
        }
        report.continued = true;
        if failed_round {
            let delay = self.settings.retry_delay(t.round + 1);
            report.retry_round = Some(t.round + 1);
            tracing::warn!(run_id = %task.run_id, task = task.task, pages = ?t.pages, round = t.round + 1, delay_secs = delay.as_secs(), "a page failed this round; the task comes back for it later");
            self.queue.send_later(&t, delay).await
        } else {
            tracing::info!(run_id = %task.run_id, task = task.task, pages = ?t.pages, "deadline near: continuing in a new message");
            self.queue.send_tasks(&[t]).await
        }
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
    /// with its reason at once. A dead letter moved back from the dead-letter queue runs the
    /// task it carries (a dead page's redrive).
    pub async fn handle_message(&self, body: &str, delivery: Delivery, deadline: Instant) -> MessageOutcome {
        let task: FetchTask = match serde_json::from_str(body) {
            Ok(t) => t,
            Err(e) => match serde_json::from_str::<DeadLetter>(body) {
                Ok(DeadLetter { task: Some(t), .. }) => {
                    tracing::info!(run_id = %t.run_id, task = t.task, redrive = t.redrive, "a dead letter came back: running its task");
                    t
                }
                _ => {
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
            },
        };
        let span = tracing::info_span!("task", run_id = %task.run_id, stream = %format!("{}.{}", task.source, task.stream), task = task.task);
        match tracing::Instrument::instrument(self.run_task(&task, delivery, deadline), span).await {
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

#[cfg(test)]
mod delivery_tests {
    use super::Delivery;

    #[test]
    fn only_a_receive_count_of_one_is_a_first_delivery() {
        assert_eq!(Delivery::from_receive_count(Some("1")), Delivery::First);
        for again in [Some("2"), Some("17"), Some(""), Some("one"), None] {
            assert_eq!(Delivery::from_receive_count(again), Delivery::Again, "{again:?}");
        }
    }
}
