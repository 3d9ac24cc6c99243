//! Numbered pages (`Pages::Range`): groups of `pages_per_commit` pages, several in flight; the
//! next group is fetched while the previous one commits, so the source is read while our own
//! work (sealing, Parquet, S3, the commit) runs.

use std::ops::RangeInclusive;

use alkasba_pii::KeyService;
use alkasba_sources::{Next, Stream, next_page, page_url, total_pages};
use futures::StreamExt;
use tokio::time::Instant;
use url::Url;

use super::{Group, Ingest, Run, TaskReport};
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

/// Pages `pages` of the task's URL, `concurrency` requests in flight, yielded in page order.
fn page_stream<'a>(
    http: &'a HttpSource,
    stream: &'a Stream,
    base: &'a Url,
    pages: RangeInclusive<u64>,
    deadline: Instant,
    concurrency: usize,
) -> impl futures::Stream<Item = (u64, std::result::Result<Fetched, FetchFailure>)> + 'a {
    let urls: Vec<(u64, Url)> = pages.filter_map(|p| page_url(stream, base, p).map(|u| (p, u))).collect();
    futures::stream::iter(urls).map(move |(p, u)| async move { (p, http.fetch(stream, &u, deadline).await) }).buffered(concurrency.max(1))
}

/// Where the pages of a group stopped joining it.
struct Scan {
    /// The task's last page (a `follow` task learns it from the reported total).
    last: u64,
    follow: bool,
    /// The stream ended in this group.
    end: bool,
    cut: Cut,
}

impl<Q: TaskQueue, K: KeyService> Ingest<Q, K> {
    /// Takes page `page`'s outcome into `group` (processed at once); `false` when the group
    /// stops there: the end of the stream (an empty page, or the reported total), the
    /// deadline, or a page that failed this round and still has rounds left.
    async fn accept(&self, run: &mut Run<'_, K>, group: &mut Group, scan: &mut Scan, page: u64, result: std::result::Result<Fetched, FetchFailure>) -> Result<bool> {
        match result {
            Err(f) if f.out_of_time => {
                scan.cut = Cut::Deadline;
                Ok(false)
            }
            Err(failure) => {
                if Self::failed_rounds(run, page) < self.settings.page_retry_rounds {
                    scan.cut = Cut::Failed(page);
                    return Ok(false);
                }
                group.dead(page, failure);
                Ok(true)
            }
            Ok(fetched) => {
                let stream = &run.prep.stream;
                let empty = fetched.page.is_empty();
                let total = total_pages(stream, &fetched.page).map(|t| t.min(alkasba_sources::MAX_PAGES));
                let at_end = empty || total.is_some_and(|t| page >= t) || matches!(next_page(stream, &fetched.page), Ok(Next::Done));
                if let Some(t) = total.filter(|_| scan.follow) {
                    scan.last = scan.last.max(t);
                }
                self.add_page(run, group, page, fetched).await?;
                if at_end && scan.follow {
                    scan.end = true;
                    return Ok(false);
                }
                Ok(true)
            }
        }
    }

    pub(super) async fn run_range(&self, run: &mut Run<'_, K>, first: u64, last: u64, follow: bool, report: &mut TaskReport) -> Result<()> {
        // Shared references of the task's lifetime: usable while `run` is lent to a commit.
        let (task, entry, prep) = (run.task, run.entry, run.prep);
        let stream = &prep.stream;
        let (per_commit, concurrency) = (self.settings.pages_per_commit, self.settings.fetch_concurrency);
        let mut next = first.max(run.committed + 1);
        let mut scan = Scan { last, follow, end: false, cut: Cut::None };
        report.pages_skipped = next - first;
        // The next group, fetched while the previous one was committing: (its first page, its
        // results).
        let mut ahead: Option<(u64, Results)> = None;
        loop {
            if next > scan.last && !follow {
                return Ok(());
            }
            if Instant::now() >= run.deadline {
                return self.continue_task(task, Pages::Range { first: next, last: scan.last.max(next), follow }, None, false, report).await;
            }
            let group_last = (next + per_commit - 1).min(scan.last.max(next));
            // The pages fetched ahead for this group, if any, then the rest of the group, each
            // processed as soon as it and every page before it have an outcome (the contiguous
            // prefix: a page that ends the group ends its fetching too).
            let mut group = Group::default();
            group.done.expect_pages(group_last + 1 - next);
            let mut open = true;
            let mut rest = next;
            if let Some((_, results)) = ahead.take().filter(|(from, _)| *from == next) {
                for (page, r) in results {
                    rest = page + 1;
                    if !self.accept(run, &mut group, &mut scan, page, r).await? {
                        open = false;
                        break;
                    }
                }
            }
            if open && rest <= group_last {
                let t = std::time::Instant::now();
                let processing = group.process_ms;
                let mut pages = std::pin::pin!(page_stream(&entry.http, stream, &task.url, rest..=group_last, run.deadline, concurrency));
                while let Some((page, r)) = pages.next().await {
                    if !self.accept(run, &mut group, &mut scan, page, r).await? {
                        break;
                    }
                }
                report.phases.fetch_ms += super::ms_since(t).saturating_sub(group.process_ms - processing);
            }
            let group_first = next;
            let end = scan.end;
            if let Some(top) = group.last {
                next = top + 1;
                // Fetch the next group while this one commits: only pages known to exist (up
                // to the task's last page, no end seen), and only if this invocation goes on.
                let more = matches!(scan.cut, Cut::None) && !end && next <= scan.last && Instant::now() < run.deadline && self.settings.fetch_ahead_pages > 0;
                if more {
                    let ahead_last = (next + per_commit.min(self.settings.fetch_ahead_pages) - 1).min(scan.last);
                    let t = std::time::Instant::now();
                    let fetch_ahead = page_stream(&entry.http, stream, &task.url, next..=ahead_last, run.deadline, concurrency).collect::<Results>();
                    let (committed, fetched) = tokio::join!(self.commit_group(run, group, group_first, end, report), fetch_ahead);
                    report.phases.fetch_ahead_ms += super::ms_since(t);
                    committed?;
                    ahead = Some((next, fetched));
                } else {
                    self.commit_group(run, group, group_first, end, report).await?;
                }
            }
            match std::mem::replace(&mut scan.cut, Cut::None) {
                Cut::None if end => return Ok(()),
                Cut::None => {}
                Cut::Deadline => return self.continue_task(task, Pages::Range { first: next, last: scan.last.max(next), follow }, None, false, report).await,
                Cut::Failed(page) => return self.continue_task(task, Pages::Range { first: page, last: scan.last.max(page), follow }, None, true, report).await,
            }
        }
    }
}
