//! A group of fetched pages to the lake: keys first, then quarantine, then bronze with the
//! task's marker and progress in the same commit; and the dead letters of pages given up on.

use std::collections::{HashMap, HashSet};

use alkasba_lake::read::Filter;
use alkasba_lake::{Append, Attempt, Pending, Written};
use alkasba_pii::{KeyService, keyring_batch};
use chrono::Utc;

use super::{Group, Ingest, Run, TaskReport, ms_since};
use crate::crash::Step;
use crate::http::FetchFailure;
use crate::ports::TaskQueue;
use crate::runs::{Counts, TaskProgress};
use crate::task::{DeadLetter, FetchTask, Pages};
use crate::{Error, Result};
use alkasba_lake::arrow::array::{Array, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray};
use alkasba_lake::arrow::compute::filter_record_batch;
use alkasba_lake::arrow::datatypes::Int64Type;
use alkasba_lake::arrow::error::ArrowError;
use alkasba_records::record::{INGEST_DATE, Prepared, Processed, quarantine_batch};

impl<Q: TaskQueue, K: KeyService> Ingest<Q, K> {
    /// Commits `group` (pages `group_first..`, each processed or given up on); `end`: the last
    /// page of the stream is among them.
    pub(super) async fn commit_group(&self, run: &mut Run<'_, K>, group: Group, group_first: u64, end: bool, report: &mut TaskReport) -> Result<()> {
        let (task, prep) = (run.task, run.prep);
        let app_id = task.app_id();
        let now = Utc::now();
        let group_last = group.last.unwrap_or(group_first);
        let mut g = TaskReport::default();
        let Group { done, urls, dead, retried_pages, process_ms, .. } = group;
        g.counts.retried_pages = retried_pages;
        for (page, failure) in dead {
            self.dead_letter(run, page, &failure).await?;
            g.dead_pages.push(page);
        }
        report.phases.process_ms += process_ms;
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
        // The group's bronze batch, from the builders its rows were appended to as they were
        // processed (no row objects held), once: a commit that must leave some out (a racing
        // copy's pages, rows already in the table) filters this batch rather than rebuilding
        // it. Peak memory per group is then the batch and its Parquet, which lets groups be
        // larger.
        let batch = prep.bronze_rows_batch(rows, &task.run_id, now)?;
        let candidates = Candidates::of(&batch)?;
        // Bronze's files are staged meanwhile, against the version of bronze this process read
        // last: the commit below uses them when its checks find every row new (the common
        // case) and stages again otherwise. Files staged are invisible until a commit names
        // them; the keys still commit first.
        let uri = self.lake.bronze(&task.source, &task.stream)?;
        let pending = &std::sync::Mutex::new(None);
        let prestaged = async {
            let t = std::time::Instant::now();
            if batch.num_rows() > 0
                && let Some(table) = self.lake.cached(&uri)
                && let Err(e) = self.lake.prestage(&table, batch.clone(), &Append { partitions: &[INGEST_DATE], ..Append::default() }, pending).await
            {
                tracing::debug!(table = %uri, error = %e, "bronze files not staged ahead: staged at commit");
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
        let (batch, candidates, progress, report_conflicts) = (&batch, &candidates, &progress, std::sync::atomic::AtomicU64::new(0));
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
                    let todo: Vec<usize> = (0..candidates.len()).filter(|&i| candidates.page(i) > done).collect();
                    let existing = self.existing(&table, prep, candidates, &todo).await?;
                    let keep: Vec<bool> = (0..candidates.len()).map(|i| candidates.page(i) > done && !existing.contains(&i)).collect();
                    let fresh = keep.iter().filter(|k| **k).count();
                    let dups = todo.len() - fresh;
                    tracing::debug!(lookup_ms = t1.elapsed().as_millis() as u64, fresh, "bronze: markers and duplicates looked up");
                    let p = progress(fresh as u64, g.counts.duplicates + dups as u64);
                    let meta = serde_json::json!({ "progress": p });
                    let batch = if fresh == batch.num_rows() { batch.clone() } else { filter_record_batch(batch, &BooleanArray::from(keep)).map_err(|e| Error::Lake(e.into()))? };
                    let append = Append { partitions: &[INGEST_DATE], txn: Some((app_id.clone(), group_last as i64)), metadata: Some(meta), properties: None };
                    // The files of a lost race are committed again when the rows are the same.
                    Ok(match self.lake.try_append_kept(table, batch, &append, pending).await? {
                        Written::Committed(v) => {
                            tracing::debug!(version = v, rows = fresh, pages = ?(group_first..=group_last), "bronze commit");
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

    /// Which of the candidates `todo` are already in the table (same key and version), read
    /// with a filter that prunes files by their key and version statistics.
    async fn existing(&self, table: &deltalake::DeltaTable, prep: &Prepared, candidates: &Candidates, todo: &[usize]) -> Result<HashSet<usize>> {
        if todo.is_empty() || table.version().is_none() {
            return Ok(HashSet::new());
        }
        let vmin = todo.iter().map(|&i| candidates.version(i)).min().unwrap_or_default();
        let vmax = todo.iter().map(|&i| candidates.version(i)).max().unwrap_or_default();
        let mut filter = Filter::between(alkasba_records::record::VERSION, vmin, vmax);
        match &prep.int_key_column {
            Some(c) => {
                let ids: Vec<i64> = todo.iter().filter_map(|&i| candidates.key(i).parse().ok()).collect();
                if let (Some(lo), Some(hi)) = (ids.iter().min(), ids.iter().max()) {
                    filter = filter.and_between(c, *lo, *hi);
                }
            }
            None => {
                let kmin = todo.iter().map(|&i| candidates.key(i)).min().unwrap_or_default();
                let kmax = todo.iter().map(|&i| candidates.key(i)).max().unwrap_or_default();
                filter = filter.and_between(alkasba_records::record::KEY, kmin, kmax);
            }
        }
        let batches = self.lake.select_table(table, Some(&filter), &[alkasba_records::record::KEY, alkasba_records::record::VERSION]).await?;
        let wanted: HashMap<(&str, &str), usize> = todo.iter().map(|&i| ((candidates.key(i), candidates.version(i)), i)).collect();
        let mut out = HashSet::new();
        for b in batches {
            let (k, v) = (alkasba_lake::read::strings(b.column(0))?, alkasba_lake::read::strings(b.column(1))?);
            for i in 0..b.num_rows() {
                if let Some(found) = wanted.get(&(k.value(i), v.value(i))) {
                    out.insert(*found);
                }
            }
        }
        Ok(out)
    }
}

/// The key, version and page of each row of a group's bronze batch (its first columns), for
/// the commit's checks.
struct Candidates {
    keys: StringArray,
    versions: StringArray,
    pages: Int64Array,
}

impl Candidates {
    fn of(batch: &RecordBatch) -> Result<Self> {
        let missing = |what: String| Error::Lake(alkasba_lake::Error::Arrow(ArrowError::SchemaError(what)));
        let column = |name: &str| batch.column_by_name(name).cloned().ok_or_else(|| missing(format!("the bronze batch has no {name} column")));
        let pages = column(alkasba_records::record::PAGE)?;
        Ok(Self {
            keys: alkasba_lake::read::strings(&column(alkasba_records::record::KEY)?)?,
            versions: alkasba_lake::read::strings(&column(alkasba_records::record::VERSION)?)?,
            pages: pages.as_primitive_opt::<Int64Type>().cloned().ok_or_else(|| missing("the bronze batch's page column is not Int64".into()))?,
        })
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn key(&self, i: usize) -> &str {
        self.keys.value(i)
    }

    fn version(&self, i: usize) -> &str {
        self.versions.value(i)
    }

    fn page(&self, i: usize) -> u64 {
        self.pages.value(i) as u64
    }
}
