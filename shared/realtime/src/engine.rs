//! The `realtime` function's logic. One batch of queue messages:
//! 1. read the state (with its version), apply the new deliveries, evaluate the rules;
//! 2. write the batch's events, keys and alerts as an outbox object, then commit the state
//!    with a conditional write (another instance committed first: drop the outbox, go to 1);
//! 3. publish the batch's alerts at once (the urgent part; no personal data, concurrently) and
//!    record that with a small mark beside the outbox (the state is not rewritten for it);
//! 4. once the pending outboxes hold enough events or the oldest is old enough (micro-batches),
//!    write them to the lake in one commit per table (keyring, then events, then quarantined
//!    payloads, then alerts), marked
//!    with the application transaction `realtime` = the highest generation written, so a repeat
//!    commits nothing; then drop them from the state. Outboxes are flushed as a prefix in
//!    generation order, so the single high-water mark never skips one;
//! 5. refresh the live view.
//!    A crash after 2 leaves a committed outbox reference that a later invocation flushes (and, if
//!    its alerts were never published, publishes them once it is clearly orphaned).

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::{StoreEvent, WireKey};
use crate::rules::RulesFile;
use crate::state::{Alert, PendingRef, State};
use crate::{Error, Result};

/// An outbox whose alerts are not yet published is its owner's to publish for this long; after
/// it, the owner is presumed dead and whoever flushes publishes them.
const ORPHAN_AFTER_MS: i64 = 30_000;
/// Conditional-write retries before giving up (the batch is then retried by SQS).
const MAX_ATTEMPTS: usize = 50;
/// Alerts published at once.
const PUBLISH_CONCURRENCY: usize = 8;

/// An opaque object version (ETag) for conditional writes.
pub type Version = String;

/// What one outbox object holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outbox {
    pub generation: u64,
    pub keys: Vec<WireKey>,
    pub events: Vec<StoreEvent>,
    pub alerts: Vec<Alert>,
}

/// The state object, outbox objects and live view (S3 conditional writes in Lambda).
pub trait StateStore: Send + Sync {
    /// The state and its version; default state and `None` when there is none yet.
    fn load(&self) -> impl Future<Output = Result<(State, Option<Version>)>> + Send;
    /// Writes the state if it is still at `version` ([`Error::StateConflict`] otherwise) and
    /// returns its new version.
    fn save(&self, state: &State, version: Option<&Version>) -> impl Future<Output = Result<Option<Version>>> + Send;
    fn put_outbox(&self, name: &str, outbox: &Outbox) -> impl Future<Output = Result<()>> + Send;
    /// `None` when it is gone (someone flushed and deleted it).
    fn get_outbox(&self, name: &str) -> impl Future<Output = Result<Option<Outbox>>> + Send;
    /// Deletes the outbox and its published mark.
    fn delete_outbox(&self, name: &str) -> impl Future<Output = Result<()>> + Send;
    /// Records that the outbox's alerts were published.
    fn mark_published(&self, name: &str) -> impl Future<Output = Result<()>> + Send;
    fn is_published(&self, name: &str) -> impl Future<Output = Result<bool>> + Send;
    fn put_live(&self, view: &serde_json::Value) -> impl Future<Output = Result<()>> + Send;
}

/// The lake tables (keyring, bronze events, quarantine, alerts).
pub trait LakeSink: Send + Sync {
    /// Writes `outboxes` (in generation order) as one commit per table, skipping those at or
    /// below the table's committed generation.
    fn write(&self, outboxes: &[Outbox]) -> impl Future<Output = Result<()>> + Send;
}

impl<T: LakeSink> LakeSink for std::sync::Arc<T> {
    async fn write(&self, outboxes: &[Outbox]) -> Result<()> {
        self.as_ref().write(outboxes).await
    }
}

/// When pending outboxes go to the lake. The scheduled tick (every minute) writes them: a
/// batch does not, unless the tick has fallen behind. A batch that writes the lake holds the
/// deliveries queued behind it for the writes (about a second per 5,000 events here), which is
/// what set the tail of alert latency (issue 20, docs/benchmarks.md); the tick runs beside the
/// batches, and only its state update can make one batch retry its conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// A batch writes the pending outboxes itself once they hold this many events...
    pub min_events: usize,
    /// ... or once the oldest is this old (milliseconds): the tick is late or missing.
    pub max_age_ms: i64,
    /// At most this many events per lake write (one commit per table): a flush writes the
    /// pending outboxes as a prefix in generation order, this many events at a time, so its
    /// memory does not grow with the backlog.
    pub chunk_events: usize,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self { min_events: 50_000, max_age_ms: 120_000, chunk_events: 5_000 }
    }
}

/// Where alerts are announced (SNS in Lambda).
pub trait AlertPublisher: Send + Sync {
    fn publish(&self, alert: &Alert) -> impl Future<Output = Result<()>> + Send;
}

/// What one batch did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct BatchReport {
    pub events: usize,
    pub duplicates: usize,
    /// Deliveries of a record older than the state holds (in the events table, in no window).
    pub outdated: usize,
    pub alerts: Vec<String>,
    pub generation: u64,
    pub attempts: usize,
    pub flushed: usize,
    /// Milliseconds: read + apply + outbox + conditional write (the commit point).
    pub commit_ms: u64,
    /// Milliseconds writing the Delta tables.
    pub lake_ms: u64,
    /// Milliseconds publishing alerts.
    pub publish_ms: u64,
    /// Milliseconds for the whole batch.
    pub total_ms: u64,
}

/// The realtime engine: built once per instance.
pub struct Engine<S, L, P> {
    pub rules: RulesFile,
    pub store: S,
    pub lake: L,
    pub alerts: P,
    pub flush: FlushPolicy,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl<S: StateStore, L: LakeSink, P: AlertPublisher> Engine<S, L, P> {
    /// Applies `events` exactly once, flushes, and refreshes the live view.
    pub async fn process(&self, events: Vec<StoreEvent>) -> Result<BatchReport> {
        let started = std::time::Instant::now();
        let mut report = BatchReport::default();
        let mut mine: Option<(State, Option<Version>, String, Outbox)> = None;
        let mut triggered: Vec<i64> = Vec::new();
        let mut settled = false;
        for attempt in 1..=MAX_ATTEMPTS {
            report.attempts = attempt;
            let (mut state, version) = self.store.load().await?;
            let applied = state.apply(&events, &self.rules);
            report.duplicates = applied.duplicates;
            report.outdated = applied.outdated;
            if applied.accepted.is_empty() && applied.alerts.is_empty() {
                report.generation = state.generation;
                settled = true;
                break;
            }
            state.generation += 1;
            let generation = state.generation;
            let object = format!("{generation:012}-{}", uuid::Uuid::new_v4().simple());
            let mut keys: Vec<WireKey> = applied.accepted.iter().flat_map(|e| e.keys.iter().cloned()).collect();
            keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
            keys.dedup_by(|a, b| a.key_id == b.key_id);
            let outbox = Outbox { generation, keys, events: applied.accepted, alerts: applied.alerts };
            self.store.put_outbox(&object, &outbox).await?;
            let events = outbox.events.len();
            state.pending.push(PendingRef { generation, object: object.clone(), created_ms: now_ms(), events, alerts_published: outbox.alerts.is_empty() });
            match self.store.save(&state, version.as_ref()).await {
                Ok(new_version) => {
                    // When each alert's triggering delivery reached the webhook.
                    triggered = outbox.alerts.iter().filter_map(|a| a.trigger_delivery.as_ref()).filter_map(|d| outbox.events.iter().find(|e| &e.delivery_id == d).map(|e| e.received_at_ms)).collect();
                    report.events = outbox.events.len();
                    report.alerts = outbox.alerts.iter().map(|a| a.alert_id.clone()).collect();
                    report.generation = generation;
                    mine = Some((state, new_version, object, outbox));
                    settled = true;
                    break;
                }
                Err(Error::StateConflict) => {
                    self.store.delete_outbox(&object).await?;
                    // Both instances retry at once otherwise.
                    tokio::time::sleep(Duration::from_millis(5 + (attempt as u64 * 7) % 40)).await;
                    continue;
                }
                Err(e) => {
                    self.store.delete_outbox(&object).await.ok();
                    return Err(e);
                }
            }
        }
        if !settled {
            return Err(Error::State { path: "state".into(), reason: format!("lost {MAX_ATTEMPTS} conditional writes in a row") });
        }
        report.commit_ms = started.elapsed().as_millis() as u64;
        let (flushed, lake_ms, publish_ms) = match mine {
            Some((state, version, object, outbox)) => self.flush_from(state, version, Some((object, outbox)), false).await?,
            None => self.flush_timed(false).await?,
        };
        (report.flushed, report.lake_ms, report.publish_ms) = (flushed, lake_ms, publish_ms);
        report.total_ms = started.elapsed().as_millis() as u64;
        if report.outdated > 0 {
            tracing::info!(
                outdated = report.outdated,
                "deliveries of a record older than the one applied or modified over an hour before they arrived: in the events table, counted in no window (late or replayed deliveries, deliveries held back by the store, or the store's clock behind ours: `alkasba doctor` checks it)"
            );
        }
        // For the dashboard and alarms (EMF in Lambda; nothing where no recorder is installed):
        // events applied, and for each alert raised, the time from its triggering delivery's
        // arrival at the webhook to its publication.
        metrics::counter!("EventsApplied").increment(report.events as u64);
        metrics::counter!("AlertsRaised").increment(report.alerts.len() as u64);
        let published = now_ms();
        for arrived in triggered {
            metrics::histogram!("AlertLatencyMs").record((published - arrived).max(0) as f64);
        }
        Ok(report)
    }

    /// Writes every pending outbox to the lake now, whatever the policy says (a scheduled
    /// tick: the last events of a quiet period must not wait for more traffic). Returns how many
    /// outboxes were written.
    pub async fn flush(&self) -> Result<usize> {
        Ok(self.flush_timed(true).await?.0)
    }

    async fn flush_timed(&self, force: bool) -> Result<(usize, u64, u64)> {
        let (state, version) = self.store.load().await?;
        self.flush_from(state, version, None, force).await
    }

    /// Announces `alerts` on the topic, several at once; `orphaned` when they are a dead
    /// instance's.
    async fn publish(&self, alerts: &[Alert], orphaned: bool) -> Result<()> {
        for chunk in alerts.chunks(PUBLISH_CONCURRENCY) {
            // Futures built in a loop, not a closure: a closure's borrow of `self` would make
            // the future's `Send` bound higher-ranked, which callers cannot spawn.
            let mut sends = Vec::with_capacity(chunk.len());
            for a in chunk {
                sends.push(self.alerts.publish(a));
            }
            futures::future::try_join_all(sends).await?;
            for a in chunk {
                tracing::warn!(alert = %a.alert_id, kind = %a.kind, severity = ?a.severity, orphaned, "alert");
            }
        }
        Ok(())
    }

    /// Saves `change` applied to the state, reloading and re-applying it on conflicts.
    async fn update(&self, state: &mut State, version: &mut Option<Version>, change: impl Fn(&mut State)) -> Result<()> {
        for _ in 0..MAX_ATTEMPTS {
            change(state);
            match self.store.save(state, version.as_ref()).await {
                Ok(v) => {
                    *version = v;
                    return Ok(());
                }
                Err(Error::StateConflict) => (*state, *version) = self.store.load().await?,
                Err(e) => return Err(e),
            }
        }
        Err(Error::State { path: "state".into(), reason: format!("lost {MAX_ATTEMPTS} conditional writes in a row") })
    }

    /// Publishes `own`'s alerts, then writes the pending outboxes to the lake if the policy (or
    /// `force`) says so, and refreshes the live view. `state` and `version` are what this
    /// instance last read or wrote. Returns (outboxes written, lake ms, publish ms).
    async fn flush_from(&self, mut state: State, mut version: Option<Version>, own: Option<(String, Outbox)>, force: bool) -> Result<(usize, u64, u64)> {
        let (mut lake_ms, mut publish_ms) = (0, 0);
        let t = std::time::Instant::now();
        if let Some((name, outbox)) = own.as_ref().filter(|(_, o)| !o.alerts.is_empty()) {
            self.publish(&outbox.alerts, false).await?;
            self.store.mark_published(name).await?;
        }
        publish_ms += t.elapsed().as_millis() as u64;
        let mut written = 0;
        loop {
            let now = now_ms();
            let events: usize = state.pending.iter().map(|p| p.events).sum();
            let oldest = state.pending.iter().map(|p| p.created_ms).min();
            let due = !state.pending.is_empty() && (force || events >= self.flush.min_events || oldest.is_some_and(|o| now - o >= self.flush.max_age_ms));
            if !due {
                break;
            }
            if !force {
                tracing::warn!(events, oldest_ms = oldest.map(|o| now - o), "a batch writes the pending events to the lake itself: the tick is late or missing");
            }
            let mut refs = state.pending.clone();
            refs.sort_by_key(|p| p.generation);
            // This write's share: a prefix of at most `chunk_events` events (at least one outbox).
            let mut sum = 0;
            let share = refs.iter().position(|p| {
                sum += p.events;
                sum > self.flush.chunk_events
            });
            refs.truncate(share.unwrap_or(refs.len()).max(1));
            // Whose alerts are out: no alerts, our own (just published), or marked.
            // The object-store round trips of a flush run concurrently (futures built in loops:
            // see `publish`).
            let mut checks = Vec::with_capacity(refs.len());
            for p in &refs {
                let own_now = own.as_ref().is_some_and(|(n, _)| *n == p.object);
                checks.push(async move { Ok::<bool, Error>(p.alerts_published || own_now || self.store.is_published(&p.object).await?) });
            }
            let published = futures::future::try_join_all(checks).await?;
            // A prefix in generation order: stop at an outbox whose alerts its (live) owner has
            // not published yet.
            let cut = refs.iter().zip(&published).position(|(p, done)| !done && now - p.created_ms <= ORPHAN_AFTER_MS).unwrap_or(refs.len());
            refs.truncate(cut);
            let mut reads = Vec::with_capacity(refs.len());
            for p in &refs {
                let own = own.as_ref().filter(|(n, _)| *n == p.object).map(|(_, o)| o.clone());
                reads.push(async move {
                    match own {
                        Some(o) => Ok(Some(o)),
                        // Gone: flushed and deleted by another instance.
                        None => self.store.get_outbox(&p.object).await,
                    }
                });
            }
            let read = futures::future::try_join_all(reads).await?;
            let mut outboxes = Vec::with_capacity(refs.len());
            for ((_, done), outbox) in refs.iter().zip(&published).zip(read) {
                if let Some(o) = outbox {
                    if !done {
                        let t = std::time::Instant::now();
                        self.publish(&o.alerts, true).await?;
                        publish_ms += t.elapsed().as_millis() as u64;
                    }
                    outboxes.push(o);
                }
            }
            if !outboxes.is_empty() {
                let t = std::time::Instant::now();
                self.lake.write(&outboxes).await?;
                lake_ms += t.elapsed().as_millis() as u64;
            }
            let done: Vec<String> = refs.iter().map(|p| p.object.clone()).collect();
            if !done.is_empty() {
                self.update(&mut state, &mut version, |s| s.pending.retain(|p| !done.contains(&p.object))).await?;
                let mut deletes = Vec::with_capacity(done.len());
                for o in &done {
                    deletes.push(self.store.delete_outbox(o));
                }
                futures::future::try_join_all(deletes).await?;
            }
            written += done.len();
            if done.is_empty() {
                // The prefix stops at an outbox whose live owner has not published its alerts.
                break;
            }
        }
        self.store.put_live(&state.live_view(&self.rules, now_ms())).await?;
        Ok((written, lake_ms, publish_ms))
    }
}
