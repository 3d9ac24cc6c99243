//! `alkasba ingest backfill`: a full or catch-up load through the planner and fetcher code,
//! run here with a progress bar instead of through SQS.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alkasba_ingest::MessageOutcome;
use alkasba_ingest::ports::{SqsQueue, TaskQueue};
use alkasba_ingest::task::{DeadLetter, FetchTask};
use alkasba_pii::KmsKeys;
use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::stack::settings;

/// Runs tasks here; dead letters go to the real dead-letter queue.
struct LocalQueue {
    tasks: Mutex<Vec<FetchTask>>,
    /// Tasks to run later (a failing page's next round), with when.
    later: Mutex<Vec<(Instant, FetchTask)>>,
    sqs: SqsQueue,
}

impl LocalQueue {
    /// The tasks ready to run: those queued, and the delayed ones whose time has come; when
    /// only delayed tasks are left, waits for the first of them. Empty when nothing is left.
    async fn ready(&self) -> Vec<FetchTask> {
        loop {
            let now = Instant::now();
            let mut ready: Vec<FetchTask> = self.tasks.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
            let next = match self.later.lock() {
                Ok(mut later) => {
                    let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut *later).into_iter().partition(|(at, _)| *at <= now);
                    ready.extend(due.into_iter().map(|(_, t)| t));
                    *later = wait;
                    later.iter().map(|(at, _)| *at).min()
                }
                Err(_) => None,
            };
            match (ready.is_empty(), next) {
                (false, _) | (true, None) => return ready,
                (true, Some(at)) => tokio::time::sleep(at.saturating_duration_since(now)).await,
            }
        }
    }
}

impl TaskQueue for LocalQueue {
    async fn send_tasks(&self, tasks: &[FetchTask]) -> alkasba_ingest::Result<()> {
        if let Ok(mut t) = self.tasks.lock() {
            t.extend_from_slice(tasks);
        }
        Ok(())
    }
    async fn send_later(&self, task: &FetchTask, delay: Duration) -> alkasba_ingest::Result<()> {
        if let Ok(mut t) = self.later.lock() {
            t.push((Instant::now() + delay, task.clone()));
        }
        Ok(())
    }
    async fn send_dead(&self, letter: &DeadLetter) -> alkasba_ingest::Result<()> {
        self.sqs.send_dead(letter).await
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD` (inclusive).
pub fn parse_dates(s: &str) -> std::result::Result<Vec<chrono::NaiveDate>, String> {
    let day = |d: &str| chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|e| format!("{d:?} is not a YYYY-MM-DD date: {e}"));
    let (from, to) = match s.split_once("..") {
        Some((a, b)) => (day(a)?, day(b)?),
        None => (day(s)?, day(s)?),
    };
    if to < from {
        return Err(format!("{s}: the range ends before it starts"));
    }
    Ok(from.iter_days().take_while(|d| *d <= to).collect())
}

pub async fn backfill(sdk: &aws_config::SdkConfig, stack: Option<&str>, streams: Vec<String>, workers: usize, dates: Option<Vec<chrono::NaiveDate>>, json: bool) -> Result<()> {
    let s = settings(sdk, stack).await?;
    let queue = LocalQueue { tasks: Mutex::new(Vec::new()), later: Mutex::new(Vec::new()), sqs: s.sqs(sdk) };
    let ingest = Arc::new(s.build_with(sdk, queue).await?);
    let only = (!streams.is_empty()).then_some(streams);
    let moments: Vec<chrono::DateTime<chrono::Utc>> = match dates {
        None => vec![chrono::Utc::now()],
        Some(days) => days.iter().map(|d| alkasba_ingest::planner::noon_of(&d.to_string())).collect::<std::result::Result<_, _>>()?,
    };
    let mut summaries = Vec::new();
    let mut failed = 0;
    for now in moments {
        if !json {
            eprintln!("planning as of {now}");
        }
        let summary = backfill_at(&ingest, only.as_deref(), workers, now, json).await?;
        failed += summary["failed_tasks"].as_u64().unwrap_or(0);
        summaries.push(summary);
    }
    if json {
        println!("{}", serde_json::json!({ "runs": summaries }));
    }
    if failed > 0 {
        bail!("{failed} tasks failed twice; rerun the backfill to resume (committed pages are skipped)");
    }
    Ok(())
}

/// Plans as of `now` and runs every task; the summary of what it did (JSON, as `--json` prints
/// it).
async fn backfill_at(ingest: &Arc<alkasba_ingest::Ingest<LocalQueue, KmsKeys>>, only: Option<&[String]>, workers: usize, now: chrono::DateTime<chrono::Utc>, json: bool) -> Result<serde_json::Value> {
    let planned = ingest.plan(only, now).await?;
    let mut total_pages = 0;
    let mut streams = Vec::new();
    for p in &planned {
        match p {
            Ok(p) => {
                if !json {
                    eprintln!("{}: {} ({} tasks, {} pages)", p.stream, p.note, p.tasks, p.pages);
                }
                streams.push(serde_json::json!({ "stream": p.stream, "run_id": p.run_id, "note": p.note, "tasks": p.tasks, "pages": p.pages }));
                total_pages += p.pages;
            }
            Err((stream, e)) => {
                if !json {
                    eprintln!("{stream}: planning failed: {e}");
                }
                streams.push(serde_json::json!({ "stream": stream, "error": e.to_string() }));
            }
        }
    }
    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(total_pages.max(1)) };
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} pages {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let started = Instant::now();
    let mut records = 0u64;
    let mut pages = 0u64;
    let mut failed = 0u64;
    loop {
        let batch = ingest.queue.ready().await;
        if batch.is_empty() {
            break;
        }
        let mut results = futures::stream::iter(batch.into_iter().map(|t| {
            let ingest = ingest.clone();
            async move {
                let body = serde_json::to_string(&t).unwrap_or_default();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
                let report = ingest.run_task(&t, alkasba_ingest::Delivery::Again, deadline).await;
                (t, body, report)
            }
        }))
        .buffer_unordered(workers.max(1));
        use futures::StreamExt;
        while let Some((task, body, report)) = results.next().await {
            match report {
                Ok(r) => {
                    records += r.counts.fetched;
                    pages += r.pages_committed;
                    bar.inc(r.pages_committed);
                    bar.set_message(format!("{records} records, {:.0}/s", records as f64 / started.elapsed().as_secs_f64().max(0.001)));
                }
                Err(e) => {
                    if !json {
                        bar.println(format!("task {} of run {} failed: {e}", task.task, task.run_id));
                    }
                    // The same handling as the function: retryable goes back in the queue,
                    // permanent to the dead-letter queue.
                    if ingest.handle_message(&body, alkasba_ingest::Delivery::Again, tokio::time::Instant::now() + Duration::from_secs(3600)).await == MessageOutcome::Retry {
                        failed += 1;
                    }
                }
            }
        }
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    if !json {
        eprintln!("{records} records in {seconds:.1}s ({:.0} records/s)", records as f64 / seconds.max(0.001));
    }
    Ok(serde_json::json!({
        "as_of": now.to_rfc3339(),
        "streams": streams,
        "records": records,
        "pages_committed": pages,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "records_per_second": (records as f64 / seconds.max(0.001)).round(),
        "failed_tasks": failed,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_a_day_or_an_inclusive_range() {
        assert_eq!(super::parse_dates("2026-10-01").unwrap().len(), 1);
        let r = super::parse_dates("2026-09-29..2026-10-02").unwrap();
        assert_eq!((r.len(), r[0].to_string(), r[3].to_string()), (4, "2026-09-29".into(), "2026-10-02".into()));
        assert!(super::parse_dates("2026-10-02..2026-10-01").unwrap_err().contains("ends before"));
        assert!(super::parse_dates("yesterday").unwrap_err().contains("YYYY-MM-DD"));
    }
}
