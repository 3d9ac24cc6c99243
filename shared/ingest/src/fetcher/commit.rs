//! A group of fetched pages to the lake: keys first, then quarantine, then bronze with the
//! task's marker and progress in the same commit; and the dead letters of pages given up on.

use std::collections::HashSet;

use alkasba_lake::read::Filter;
use alkasba_lake::{Append, Attempt, Pending, Written};
use alkasba_pii::{KeyService, keyring_batch};
use chrono::Utc;

use super::{Ingest, PageResult, Run, TaskReport, ms_since};
use crate::crash::Step;
use crate::http::FetchFailure;
use crate::ports::TaskQueue;
use crate::runs::{Counts, TaskProgress};
use crate::task::{DeadLetter, FetchTask, Pages};
use crate::{Error, Result};
use alkasba_records::record::{INGEST_DATE, Origin, Prepared, Processed, Row, quarantine_batch};

impl<Q: TaskQueue, K: KeyService> Ingest<Q, K> {
    /// Processes and commits pages `group_first..` (each `Ok` or given up on); `end`: the last
    /// page of the stream is among them.
    pub(super) async fn commit_group(&self, run: &mut Run<'_, K>, group: Vec<PageResult>, group_first: u64, end: bool, report: &mut TaskReport) -> Result<()> {
        let (task, prep) = (run.task, run.prep);
        let app_id = task.app_id();
        let now = Utc::now();
        let group_last = group.iter().map(PageResult::page).max().unwrap_or(group_first);
        let mut g = TaskReport::default();
        let mut urls: Vec<(u64, String)> = Vec::new();
        let mut done = Processed::default();
        let t = std::time::Instant::now();
        for r in group {
            match r {
                PageResult::Dead { page, failure } => {
                    self.dead_letter(run, page, &failure).await?;
                    g.dead_pages.push(page);
                }
                PageResult::Ok { page, fetched } => {
                    if fetched.attempts > 1 {
                        g.counts.retried_pages += 1;
                    }
                    let url = fetched.page.url.to_string();
                    prep.process_page(fetched.page.body, Origin { run_id: &task.run_id, page, url: &url }, &self.tokens, &mut run.sealer, &mut done).await?;
                    urls.push((page, url));
                }
            }
        }
        report.phases.process_ms += ms_since(t);
        let Processed { rows, quarantined: qrows, fetched, duplicates, max_cursor, .. } = done;
        g.counts.fetched = fetched;
        g.counts.duplicates = duplicates;
        self.settings.crash.hit(Step::BeforeWrite);
        // Keys first: nothing sealed under a key may be committed before the key. The keyring
        // and quarantine commits go to different tables and both precede bronze: made together.
        let new_keys = run.sealer.take_new_keys();
        let url_of = |p: u64| urls.iter().find(|(q, _)| *q == p).map(|(_, u)| u.clone()).unwrap_or_default();
        g.counts.quarantined = qrows.len() as u64;
        let quarantine = if qrows.is_empty() { None } else { Some(quarantine_batch(&prep.id, &qrows, &task.run_id, url_of, now)?) };
        let keyring = async {
            let t = std::time::Instant::now();
            if !new_keys.is_empty() {
                self.lake.append(&self.lake.keyring()?, keyring_batch(&new_keys).map_err(Error::Pii)?, &[]).await?;
            }
            Ok::<_, Error>(ms_since(t))
        };
        let quarantined = async {
            let t = std::time::Instant::now();
            if let Some(batch) = quarantine {
                self.lake.append_once(&self.lake.quarantine()?, batch, (app_id.clone(), group_last as i64), &[INGEST_DATE]).await?;
            }
            Ok::<_, Error>(ms_since(t))
        };
        // Bronze's files are staged meanwhile, against the version of bronze this process read
        // last: the commit below uses them when its checks find every row new (the common
        // case) and stages again otherwise. Files staged are invisible until a commit names
        // them; the keys still commit first.
        let uri = self.lake.bronze(&task.source, &task.stream)?;
        let pending = &std::sync::Mutex::new(None);
        let prestaged = async {
            let t = std::time::Instant::now();
            if !rows.is_empty()
                && let Some(table) = self.lake.cached(&uri)
            {
                let staged = async {
                    let batch = prep.bronze_batch(&rows, &task.run_id, now)?;
                    self.lake.prestage(&table, batch, &Append { partitions: &[INGEST_DATE], ..Append::default() }, pending).await.map_err(Error::from)
                };
                if let Err(e) = staged.await {
                    tracing::debug!(table = %uri, error = %e, "bronze files not staged ahead: staged at commit");
                }
            }
            ms_since(t)
        };
        let (keyring_ms, quarantine_ms, prestage_ms) = tokio::join!(keyring, quarantined, prestaged);
        report.phases.keyring_ms += keyring_ms?;
        report.phases.quarantine_ms += quarantine_ms?;
        tracing::debug!(prestage_ms, "bronze files staged beside the keyring and quarantine commits");
        self.settings.crash.hit(Step::BeforeBronze);
        // Bronze: re-read, skip pages a racing copy of this task committed, drop rows already in
        // the table (same key and version), commit with the task's marker and its progress; on a
        // lost race, do it all again against the new table version.
        let progress = |valid: u64, duplicates: u64| TaskProgress {
            run_id: task.run_id.clone(),
            task: task.task,
            redrive: task.redrive,
            first_page: group_first,
            last_page: group_last,
            end,
            counts: Counts { valid, duplicates, ..g.counts },
            dead_pages: g.dead_pages.clone(),
            max_cursor: max_cursor.clone(),
        };
        let (rows, progress, report_conflicts) = (&rows, &progress, std::sync::atomic::AtomicU64::new(0));
        let t = std::time::Instant::now();
        let committed = self
            .lake
            .commit_with_retries(&uri, |table| {
                let (app_id, report_conflicts) = (&app_id, &report_conflicts);
                async move {
                    let t1 = std::time::Instant::now();
                    let done = self.lake.txn_version(&table, app_id).await? as u64;
                    if done >= group_last {
                        return Ok::<_, Error>(Attempt::Done(None));
                    }
                    let todo: Vec<&Row> = rows.iter().filter(|r| r.page > done).collect();
                    let existing = self.existing(&table, prep, &todo).await?;
                    let fresh: Vec<Row> = todo.into_iter().filter(|r| !existing.contains(&(r.key.clone(), r.version.clone()))).cloned().collect();
                    let dups = rows.iter().filter(|r| r.page > done).count() - fresh.len();
                    tracing::debug!(lookup_ms = t1.elapsed().as_millis() as u64, fresh = fresh.len(), "bronze: markers and duplicates looked up");
                    let p = progress(fresh.len() as u64, g.counts.duplicates + dups as u64);
                    let meta = serde_json::json!({ "progress": p });
                    let batch = prep.bronze_batch(&fresh, &task.run_id, now)?;
                    let append = Append { partitions: &[INGEST_DATE], txn: Some((app_id.clone(), group_last as i64)), metadata: Some(meta), properties: None };
                    // The files of a lost race are committed again when the rows are the same.
                    Ok(match self.lake.try_append_kept(table, batch, &append, pending).await? {
                        Written::Committed(v) => {
                            tracing::debug!(version = v, rows = fresh.len(), pages = ?(group_first..=group_last), "bronze commit");
                            Attempt::Done(Some(p))
                        }
                        Written::Conflict => {
                            report_conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            Attempt::Contended
                        }
                    })
                }
            })
            .await;
        // Files of a last lost race not committed after all (a racing copy committed the group).
        self.lake.discard(Pending::take(pending)).await;
        let committed = committed?;
        report.phases.bronze_ms += ms_since(t);
        self.settings.crash.hit(Step::AfterCommit);
        report.commit_conflicts += report_conflicts.into_inner();
        // `None`: a racing copy of this task committed the group (its counts are in its commit).
        if let Some(p) = committed {
            report.commits += 1;
            report.counts.valid += p.counts.valid;
            report.counts.duplicates += p.counts.duplicates;
        }
        report.pages_committed += group_last + 1 - group_first - g.dead_pages.len() as u64;
        report.counts += Counts { valid: 0, duplicates: 0, ..g.counts };
        report.dead_pages.extend(g.dead_pages);
        Ok(())
    }

    /// Hands a page whose rounds are spent to the dead-letter queue, with its raw response
    /// sealed under `errors/` and, as the letter's task, the page's redrive: that page alone
    /// (its own marker), or for a chain the rest of the chain from it.
    async fn dead_letter(&self, run: &mut Run<'_, K>, page: u64, f: &FetchFailure) -> Result<()> {
        let task = run.task;
        let mut error_object = None;
        if let Some(body) = &f.body {
            let key = format!("{}/{}/{}/page-{page:06}-{}.sealed", task.source, task.stream, task.run_id, uuid::Uuid::new_v4().simple());
            // The raw response may hold personal data: sealed under the task's data key, bound
            // to its own key name.
            let sealed = run.sealer.seal_blob(&format!("errors/{key}"), body).await.map_err(Error::Pii)?;
            error_object = Some(self.control.put_error(&key, sealed).await?);
        }
        let pages = match task.pages {
            Pages::Range { follow, .. } => Pages::Range { first: page, last: page, follow },
            Pages::Chain { .. } => Pages::Chain { step: page },
        };
        let url = match task.pages {
            Pages::Range { .. } => task.url.clone(),
            Pages::Chain { .. } => f.url.clone(),
        };
        let redrive = FetchTask { url, pages, round: 0, redrive: task.redrive + 1, ..task.clone() };
        let letter = DeadLetter {
            task: Some(redrive),
            raw_message: None,
            page: Some(page),
            url: Some(f.url.to_string()),
            reason: f.reason.clone(),
            status: f.status,
            attempts: f.attempts,
            error_object,
            at: Utc::now().to_rfc3339(),
        };
        tracing::error!(run_id = %task.run_id, task = task.task, page, reason = %f.reason, status = ?f.status, attempts = f.attempts, rounds = self.settings.page_retry_rounds,
            "page given up on after its rounds: dead-lettered (the run completes once it is redriven)");
        // For a person: the alarm on this metric (issue 21's template) says a page needs a look.
        metrics::counter!("PagesDeadLettered").increment(1);
        self.queue.send_dead(&letter).await
    }

    /// (key, version) pairs of `rows` already in the table, read with a filter that prunes files
    /// by their key and version statistics.
    async fn existing(&self, table: &deltalake::DeltaTable, prep: &Prepared, rows: &[&Row]) -> Result<HashSet<(String, String)>> {
        if rows.is_empty() || table.version().is_none() {
            return Ok(HashSet::new());
        }
        let vmin = rows.iter().map(|r| r.version.as_str()).min().unwrap_or_default();
        let vmax = rows.iter().map(|r| r.version.as_str()).max().unwrap_or_default();
        let mut filter = Filter::between(alkasba_records::record::VERSION, vmin, vmax);
        match &prep.int_key_column {
            Some(c) => {
                let ids: Vec<i64> = rows.iter().filter_map(|r| r.key.parse().ok()).collect();
                if let (Some(lo), Some(hi)) = (ids.iter().min(), ids.iter().max()) {
                    filter = filter.and_between(c, *lo, *hi);
                }
            }
            None => {
                let kmin = rows.iter().map(|r| r.key.as_str()).min().unwrap_or_default();
                let kmax = rows.iter().map(|r| r.key.as_str()).max().unwrap_or_default();
                filter = filter.and_between(alkasba_records::record::KEY, kmin, kmax);
            }
        }
        let batches = self.lake.select_table(table, Some(&filter), &[alkasba_records::record::KEY, alkasba_records::record::VERSION]).await?;
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
