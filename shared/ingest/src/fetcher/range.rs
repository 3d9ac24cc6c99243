//! Numbered pages (`Pages::Range`): groups of `pages_per_commit` pages, several in flight, each
//! group committed before the next starts.

use alkasba_pii::KeyService;
use alkasba_sources::{Next, next_page, page_url, total_pages};
use futures::StreamExt;
use tokio::time::Instant;
use url::Url;

use super::{Ingest, PageResult, Run, TaskReport};
use crate::Result;
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

impl<Q: TaskQueue, K: KeyService> Ingest<Q, K> {
    pub(super) async fn run_range(&self, run: &mut Run<'_, K>, first: u64, last: u64, follow: bool, report: &mut TaskReport) -> Result<()> {
        let stream = &run.prep.stream;
        let mut next = first.max(run.committed + 1);
        let mut last = last;
        report.pages_skipped = next - first;
        loop {
            if next > last && !follow {
                return Ok(());
            }
            if Instant::now() >= run.deadline {
                return self.continue_task(run.task, Pages::Range { first: next, last: last.max(next), follow }, None, false, report).await;
            }
            let group_last = (next + self.settings.pages_per_commit - 1).min(last.max(next));
            let urls: Vec<(u64, Url)> = (next..=group_last).filter_map(|p| page_url(stream, &run.task.url, p).map(|u| (p, u))).collect();
            let (http, deadline) = (&run.entry.http, run.deadline);
            let results: Vec<(u64, std::result::Result<crate::http::Fetched, crate::http::FetchFailure>)> =
                futures::stream::iter(urls).map(|(p, u)| async move { (p, http.fetch(stream, &u, deadline).await) }).buffered(self.settings.fetch_concurrency.max(1)).collect().await;
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
                self.commit_group(run, group, group_first, end, report).await?;
            }
            match cut {
                Cut::None if end => return Ok(()),
                Cut::None => {}
                Cut::Deadline => return self.continue_task(run.task, Pages::Range { first: next, last: last.max(next), follow }, None, false, report).await,
                Cut::Failed(page) => return self.continue_task(run.task, Pages::Range { first: page, last: last.max(page), follow }, None, true, report).await,
            }
        }
    }
}
