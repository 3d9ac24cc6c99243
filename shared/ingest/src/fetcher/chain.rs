//! Cursor chains (`Pages::Chain`): each page names the next, so pages are read one after another
//! and a chain cannot go past a page it cannot read.

use alkasba_pii::KeyService;
use alkasba_sources::{Next, next_page};
use tokio::time::Instant;

use super::{Group, Ingest, Run, TaskReport};
use crate::ports::TaskQueue;
use crate::task::Pages;
use crate::{Error, Result};

impl<Q: TaskQueue, K: KeyService> Ingest<Q, K> {
    pub(super) async fn run_chain(&self, run: &mut Run<'_, K>, step: u64, report: &mut TaskReport) -> Result<()> {
        // A shared reference of the task's lifetime: usable while `run` is lent.
        let prep = run.prep;
        let stream = &prep.stream;
        let mut step = step;
        let mut url = run.task.url.clone();
        // Steps already committed: walk past them without committing (the next URL is only
        // known from each page).
        while step <= run.committed {
            let f = run.entry.http.fetch(stream, &url, run.deadline).await.map_err(|f| Error::Task(format!("re-walking committed step {step}: {}", f.reason)))?;
            report.pages_skipped += 1;
            match next_page(stream, &f.page)? {
                // The commit of that step said so already.
                Next::Done => return Ok(()),
                Next::Url(u) => url = u,
            }
            step += 1;
        }
        loop {
            if Instant::now() >= run.deadline {
                return self.continue_task(run.task, Pages::Chain { step }, Some(url), false, report).await;
            }
            let group_first = step;
            let mut group = Group::default();
            group.done.expect_pages(self.settings.pages_per_commit);
            let mut end = false;
            // Stops this invocation: the deadline, a page failing its round (comes back later),
            // or a page given up on (dead-lettered; its redrive goes on from it).
            let mut stop: Option<(Pages, bool)> = None;
            // Pages read into the group (a page given up on ends it).
            while (group.urls.len() as u64) < self.settings.pages_per_commit {
                let t = std::time::Instant::now();
                let fetched = run.entry.http.fetch(stream, &url, run.deadline).await;
                report.phases.fetch_ms += super::ms_since(t);
                match fetched {
                    Ok(f) => {
                        let next = next_page(stream, &f.page)?;
                        // Processed now: only the group's rows are held until the commit.
                        self.add_page(run, &mut group, step, f).await?;
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
                        stop = Some((Pages::Chain { step }, false));
                        break;
                    }
                    Err(_) if Self::failed_rounds(run, step) < self.settings.page_retry_rounds => {
                        stop = Some((Pages::Chain { step }, true));
                        break;
                    }
                    Err(failure) => {
                        group.dead(step, failure);
                        end = true;
                        break;
                    }
                }
            }
            let gave_up = !group.dead.is_empty();
            if !group.is_empty() {
                // A chain given up on has not reached its end: its redrive has.
                self.commit_group(run, group, group_first, end && !gave_up, report).await?;
            }
            if let Some((pages, failed)) = stop {
                return self.continue_task(run.task, pages, Some(url), failed, report).await;
            }
            if end {
                return Ok(());
            }
        }
    }
}
