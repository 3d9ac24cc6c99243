//! Opening runs: read the watermark, ask the store for its newest change, plan the pages.

use std::collections::HashMap;

use alkasba_sources::{Paginator, first_url, page_count, with_param};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;

use crate::control::RunPlan;
use crate::fetcher::Ingest;
use crate::ports::TaskQueue;
use crate::runs::{self, StreamState};
use crate::task::{FetchTask, Pages};
use crate::{Error, Result};
use alkasba_records::record::Prepared;
use alkasba_records::validate::timestamp_micros;

/// What the planner did for one stream.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub stream: String,
    pub run_id: Option<String>,
    pub tasks: usize,
    pub pages: u64,
    pub note: String,
}

/// `watermark` minus `secs`, in the watermark's own format.
pub fn minus_secs(watermark: &str, secs: u64) -> Option<String> {
    let micros = timestamp_micros(watermark)? - secs as i64 * 1_000_000;
    let t = DateTime::from_timestamp_micros(micros)?;
    Some(if watermark.ends_with('Z') { t.format("%Y-%m-%dT%H:%M:%SZ").to_string() } else { t.format("%Y-%m-%dT%H:%M:%S").to_string() })
}

/// Noon (UTC) of `date` (`YYYY-MM-DD`): the `now` to plan a past day's daily feeds with.
pub fn noon_of(date: &str) -> Result<DateTime<Utc>> {
    let d = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").map_err(|e| Error::Config(format!("{date:?} is not a YYYY-MM-DD date: {e}")))?;
    d.and_hms_opt(12, 0, 0).map(|t| t.and_utc()).ok_or_else(|| Error::Config(format!("{date:?}: no noon that day")))
}

/// A run id that sorts by time.
pub fn new_run_id(now: DateTime<Utc>) -> String {
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

impl<Q: TaskQueue, K: alkasba_pii::KeyService> Ingest<Q, K> {
    /// Plans a run for every stream (or only `only`, `source.stream` names). A failing stream
    /// does not stop the others; its error is in the result.
    pub async fn plan(&self, only: Option<&[String]>, now: DateTime<Utc>) -> Result<Vec<std::result::Result<Planned, (String, Error)>>> {
        if let Some(only) = only {
            let known: Vec<&str> = self.catalog.sources.values().flat_map(|e| e.streams.values().map(|p| p.id.as_str())).collect();
            if let Some(bad) = only.iter().find(|s| !known.contains(&s.as_str())) {
                return Err(Error::Config(format!("unknown stream {bad:?}; known: {}", known.join(", "))));
            }
        }
        let states = runs::states(&self.lake).await?;
        let mut out = Vec::new();
        for entry in self.catalog.sources.values() {
            for prep in entry.streams.values() {
                if only.is_some_and(|o| !o.contains(&prep.id)) {
                    continue;
                }
                let state = states.get(&(entry.source.name.clone(), prep.stream.name.clone())).cloned().unwrap_or_default();
                let span = tracing::info_span!("plan", stream = %prep.id);
                let r = tracing::Instrument::instrument(self.plan_stream(&entry.source.name, prep, &state, now), span).await;
                match &r {
                    Ok(p) => tracing::info!(stream = %p.stream, run_id = ?p.run_id, tasks = p.tasks, pages = p.pages, note = %p.note, "planned"),
                    Err(e) => tracing::error!(stream = %prep.id, error = %e, "planning failed"),
                }
                out.push(r.map_err(|e| (prep.id.clone(), e)));
            }
        }
        Ok(out)
    }

    async fn plan_stream(&self, source: &str, prep: &Prepared, state: &StreamState, now: DateTime<Utc>) -> Result<Planned> {
        let (entry, _) = self.catalog.stream(source, &prep.stream.name)?;
        let stream = &prep.stream;
        let skip = |note: String| Planned { stream: prep.id.clone(), run_id: None, tasks: 0, pages: 0, note };
        // An unfinished run: complete it if its pages are all in, else leave it alone until it
        // is older than max_run_age (a stuck run is then superseded: the next run starts from
        // the same watermark, so nothing is lost).
        if let Some(last) = self.control.runs(source, &stream.name).await?.last()
            && !state.completed.contains(last)
            && let Some(plan) = self.control.plan(source, &stream.name, last).await?
        {
            let done = runs::try_complete(&self.lake, &plan, now).await?.is_some();
            let opened = DateTime::parse_from_rfc3339(&plan.opened_at).map(|t| t.with_timezone(&Utc)).unwrap_or(now);
            if done {
                // Its watermark is now committed; plan the next run from it.
                return Box::pin(self.plan_stream(source, prep, &runs::states(&self.lake).await?.remove(&(source.to_string(), stream.name.clone())).unwrap_or_default(), now)).await;
            }
            if (now - opened).to_std().unwrap_or_default() < self.settings.max_run_age {
                return Ok(skip(format!("run {last} is still in progress")));
            }
            tracing::warn!(run_id = %last, "superseding a run that did not complete in time");
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let from = match (&stream.cursor, &state.watermark) {
            (Some(c), Some(w)) => Some(minus_secs(w, c.lookback_secs).ok_or_else(|| Error::Config(format!("{}: watermark {w:?} is not a timestamp", prep.id)))?),
            _ => None,
        };
        // The store's newest change, read before any page: the watermark this run commits.
        let mut watermark_to = None;
        if let Some(c) = stream.cursor.as_ref().filter(|c| !c.latest_params.is_empty()) {
            let mut url = first_url(&entry.source, stream, None, now.date_naive());
            for (k, v) in c.latest_params.iter().chain(c.params.iter()) {
                url = with_param(&url, k, v);
            }
            let page = entry.http.fetch(stream, &url, deadline).await.map_err(|f| Error::Task(format!("{}: newest record: {} ({})", prep.id, f.reason, f.url)))?.page;
            // Only the first record is read (the newest, by the latest params' order).
            let first: Option<serde_json::Value> = page.records().next().and_then(|r| serde_json::from_str(r).ok());
            watermark_to = first.as_ref().and_then(|r| prep.cursor(r)).map(str::to_string);
            // How far the lake is behind the store: 0 while ingestion keeps up, whatever the
            // shop's activity; growing when runs stop completing (the WatermarkLag alarms).
            if let (Some(to), Some(w)) = (watermark_to.as_deref().and_then(timestamp_micros), state.watermark.as_deref().and_then(timestamp_micros)) {
                metrics::gauge!("WatermarkLagSeconds", "Stream" => prep.id.clone()).set(((to - w).max(0) / 1_000_000) as f64);
            }
            if let (Some(to), Some(w)) = (&watermark_to, &state.watermark)
                && to <= w
            {
                return Ok(skip(format!("no change since {w}")));
            }
            if watermark_to.is_none() {
                return Ok(skip("the stream is empty".into()));
            }
        }
        let run_id = new_run_id(now);
        let pace = self.learned_pace(source, now).await;
        let first = first_url(&entry.source, stream, from.as_deref(), now.date_naive());
        let mut tasks = Vec::new();
        let mut pages = 0;
        let chain = !matches!(&stream.paginator, Paginator::PageNumber { total_pages_header: Some(_), .. });
        if chain {
            tasks.push(FetchTask { run_id: run_id.clone(), source: source.into(), stream: stream.name.clone(), task: 0, url: first, pages: Pages::Chain { step: 1 }, round: 0, redrive: 0, pace });
        } else {
            let page = entry.http.fetch(stream, &first, deadline).await.map_err(|f| Error::Task(format!("{}: first page: {} ({})", prep.id, f.reason, f.url)))?.page;
            let total = if page.is_empty() { 0 } else { page_count(stream, &page)?.unwrap_or(1) };
            pages = total;
            let per = self.settings.pages_per_task.max(1);
            let mut start = 1;
            let mut n = 0;
            while start <= total {
                let last = (start + per - 1).min(total);
                tasks.push(FetchTask {
                    run_id: run_id.clone(),
                    source: source.into(),
                    stream: stream.name.clone(),
                    task: n,
                    url: first.clone(),
                    pages: Pages::Range { first: start, last, follow: last == total },
                    round: 0,
                    redrive: 0,
                    pace,
                });
                start = last + 1;
                n += 1;
            }
        }
        // The run's commits come after the bronze table's version now: its progress is read from
        // there on (see `runs::progress`).
        let bronze_from = self.lake.current(&self.lake.bronze(source, &stream.name)?).await?.version().map_or(0, |v| v as i64 + 1);
        let plan = RunPlan {
            bronze_from,
            run_id: run_id.clone(),
            source: source.into(),
            stream: stream.name.clone(),
            opened_at: now.to_rfc3339(),
            watermark_from: from,
            watermark_to,
            tasks: tasks
                .iter()
                .filter_map(|t| match t.pages {
                    Pages::Range { last, .. } => Some((t.task, last)),
                    Pages::Chain { .. } => None,
                })
                .collect(),
            chain,
        };
        // The plan is written before any task exists, so a fetcher always finds it.
        self.control.write_plan(&plan).await?;
        if tasks.is_empty() {
            runs::try_complete(&self.lake, &plan, now).await?;
            return Ok(Planned { stream: prep.id.clone(), run_id: Some(run_id), tasks: 0, pages: 0, note: "no records to read".into() });
        }
        self.queue.send_tasks(&tasks).await?;
        Ok(Planned { stream: prep.id.clone(), run_id: Some(run_id), tasks: tasks.len(), pages, note: if chain { "cursor chain".into() } else { "pages planned".into() } })
    }
}

impl<Q: TaskQueue, K: alkasba_pii::KeyService> Ingest<Q, K> {
    /// The pace a fetcher of `source` last reached, if recorded in the last day (older, the
    /// store may have changed: slow start). A read failure only costs the fetchers a slow start.
    pub(crate) async fn learned_pace(&self, source: &str, now: DateTime<Utc>) -> Option<f64> {
        let learned = match self.control.pace(source).await {
            Ok(p) => p?,
            Err(e) => {
                tracing::warn!(source, error = %e, "could not read the learned pace: fetchers start slow");
                return None;
            }
        };
        let at = DateTime::parse_from_rfc3339(&learned.at).ok()?.with_timezone(&Utc);
        ((now - at) < chrono::Duration::days(1) && learned.rate.is_finite() && learned.rate > 0.0).then_some(learned.rate)
    }
}

/// Parses `name=url,name=url` (the `SOURCE_BASE_URLS` setting).
pub fn parse_base_urls(s: &str) -> Result<HashMap<String, url::Url>> {
    let mut out = HashMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, u) = part.split_once('=').ok_or_else(|| Error::Config(format!("SOURCE_BASE_URLS: {part:?} is not name=url")))?;
        let url = url::Url::parse(u).map_err(|e| Error::Config(format!("SOURCE_BASE_URLS: {name}: {e}")))?;
        out.insert(name.to_string(), url);
    }
    Ok(out)
}

#[cfg(test)]
mod noon_tests {
    #[test]
    fn noon_of_a_date_and_a_clear_error() {
        assert_eq!(super::noon_of("2026-10-01").unwrap().to_rfc3339(), "2026-10-01T12:00:00+00:00");
        assert!(super::noon_of("01/10/2026").unwrap_err().to_string().contains("YYYY-MM-DD"));
    }
}
