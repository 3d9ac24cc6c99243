//! Numbered pages (`Pages::Range`): groups of `pages_per_commit` pages, several in flight; the
//! next group is fetched while the previous one commits, so the source is read while our own
//! work (sealing, Parquet, S3, the commit) runs.

use std::ops::RangeInclusive;

use alkasba_pii::KeyService;
use alkasba_sources::{Next, Stream, next_page, page_url, total_pages};
use futures::StreamExt;
use tokio::time::Instant;
use url::Url;

use super::{Ingest, PageResult, Run, TaskReport};
use crate::Result;
use crate::http::{FetchFailure, Fetched, HttpSource};
use crate::ports::TaskQueue;
use crate::task::Pages;

/// How a group's fetching ended.
enum Cut {
    /// Every page of the group has an outcome.
    None,
    /// The deadline came before this page.
    Deadline,
    /// This page failed its round: the task comes back for it later.
    Failed(u64),
}

/// A group's pages and what became of each request, in page order.
type Results = Vec<(u64, std::result::Result<Fetched, FetchFailure>)>;

/// Pages `pages` of the task's URL, `concurrency` requests in flight, in page order.
async fn fetch_pages(http: &HttpSource, stream: &Stream, base: &Url, pages: RangeInclusive<u64>, deadline: Instant, concurrency: usize) -> Results {
    let urls: Vec<(u64, Url)> = pages.filter_map(|p| page_url(stream, base, p).map(|u| (p, u))).collect();
    futures::stream::iter(urls).map(|(p, u)| async move { (p, http.fetch(stream, &u, deadline).await) }).buffered(concurrency.max(1)).collect().await
}

impl<Q: TaskQueue, K: KeyService> Ingest<Q, K> {
    pub(super) async fn run_range(&self, run: &mut Run<'_, K>, first: u64, last: u64, follow: bool, report: &mut TaskReport) -> Result<()> {
        // Shared references of the task's lifetime: usable while `run` is lent to a commit.
        let (task, entry, prep) = (run.task, run.entry, run.prep);
        let stream = &prep.stream;
        let (per_commit, concurrency) = (self.settings.pages_per_commit, self.settings.fetch_concurrency);
        let mut next = first.max(run.committed + 1);
        let mut last = last;
        report.pages_skipped = next - first;
        // The next group, fetched while the previous one was committing: (its first page, its
        // results).
        let mut ahead: Option<(u64, Results)> = None;
        loop {
            if next > last && !follow {
                return Ok(());
            }
            if Instant::now() >= run.deadline {
                return self.continue_task(task, Pages::Range { first: next, last: last.max(next), follow }, None, false, report).await;
            }
            let group_last = (next + per_commit - 1).min(last.max(next));
            // The pages fetched ahead for this group, if any, then the rest of the group.
            let mut results = match ahead.take() {
                Some((from, results)) if from == next => results,
                _ => Vec::new(),
            };
            let rest = results.last().map_or(next, |(p, _)| p + 1);
            if rest <= group_last {
                let t = std::time::Instant::now();
                results.extend(fetch_pages(&entry.http, stream, &task.url, rest..=group_last, run.deadline, concurrency).await);
                report.phases.fetch_ms += super::ms_since(t);
            }
            // Keep the contiguous prefix of pages that have an outcome; stop at the end of the
            // stream (an empty page, or the reported total), at the deadline, or at a page that
            // failed this round and still has rounds left.
            let mut group = Vec::new();
            let mut end = false;
            let mut cut = Cut::None;
            for (page, r) in results {
                match r {
                    Err(f) if f.out_of_time => {
                        cut = Cut::Deadline;
                        break;
                    }
                    Err(failure) => {
                        if Self::failed_rounds(run, page) < self.settings.page_retry_rounds {
                            cut = Cut::Failed(page);
                            break;
                        }
                        group.push(PageResult::Dead { page, failure });
                    }
                    Ok(fetched) => {
                        let empty = fetched.page.records(stream).map(|r| r.is_empty()).unwrap_or(true);
                        let total = total_pages(stream, &fetched.page).map(|t| t.min(alkasba_sources::MAX_PAGES));
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
                }
            }
            let group_first = next;
            if let Some(top) = group.iter().map(PageResult::page).max() {
                next = top + 1;
                // Fetch the next group while this one commits: only pages known to exist (up
                // to the task's last page, no end seen), and only if this invocation goes on.
                let more = matches!(cut, Cut::None) && !end && next <= last && Instant::now() < run.deadline && self.settings.fetch_ahead_pages > 0;
                if more {
                    let ahead_last = (next + per_commit.min(self.settings.fetch_ahead_pages) - 1).min(last);
                    let t = std::time::Instant::now();
                    let deadline = run.deadline;
                    let (committed, fetched) =
                        tokio::join!(self.commit_group(run, group, group_first, end, report), fetch_pages(&entry.http, stream, &task.url, next..=ahead_last, deadline, concurrency));
                    report.phases.fetch_ahead_ms += super::ms_since(t);
                    committed?;
                    ahead = Some((next, fetched));
                } else {
                    self.commit_group(run, group, group_first, end, report).await?;
                }
            }
            match cut {
                Cut::None if end => return Ok(()),
                Cut::None => {}
                Cut::Deadline => return self.continue_task(task, Pages::Range { first: next, last: last.max(next), follow }, None, false, report).await,
                Cut::Failed(page) => return self.continue_task(task, Pages::Range { first: page, last: last.max(page), follow }, None, true, report).await,
            }
        }
    }
}
