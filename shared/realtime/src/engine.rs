//! The `realtime` function's logic. One batch of queue messages:
//! 1. read the state (with its version), apply the new deliveries, evaluate the rules;
//! 2. write the batch's events, keys and alerts as an outbox object, then commit the state
//!    with a conditional write (another instance committed first: drop the outbox, go to 1);
//! 3. flush outbox objects: publish the alerts, then write the lake (keyring, then events, then
//!    alerts: each commit marked with the outbox's generation, so a repeat commits nothing), and
//!    drop the flushed references from the state;
//! 4. refresh the live view.
//! A crash after 2 leaves a committed outbox reference that the next invocation flushes.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::{StoreEvent, WireKey};
use crate::rules::RulesFile;
use crate::state::{Alert, PendingRef, State};
use crate::{Error, Result};

/// Someone else's outbox is flushed by us only after this long (it is probably orphaned).
const ORPHAN_AFTER_MS: i64 = 30_000;
/// Conditional-write retries before giving up (the batch is then retried by SQS).
const MAX_ATTEMPTS: usize = 50;

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
    fn delete_outbox(&self, name: &str) -> impl Future<Output = Result<()>> + Send;
    fn put_live(&self, view: &serde_json::Value) -> impl Future<Output = Result<()>> + Send;
}

/// The lake tables (keyring, bronze events, alerts), written idempotently per generation.
pub trait LakeSink: Send + Sync {
    fn write(&self, outbox: &Outbox) -> impl Future<Output = Result<()>> + Send;
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
        let mut settled = false;
        for attempt in 1..=MAX_ATTEMPTS {
            report.attempts = attempt;
            let (mut state, version) = self.store.load().await?;
            let applied = state.apply(&events, &self.rules);
            report.duplicates = applied.duplicates;
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
            state.pending.push(PendingRef { generation, object: object.clone(), created_ms: now_ms() });
            match self.store.save(&state, version.as_ref()).await {
                Ok(new_version) => {
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
            Some((state, version, object, outbox)) => self.flush_from(state, version, Some((object, outbox))).await?,
            None => self.flush_timed().await?,
        };
        (report.flushed, report.lake_ms, report.publish_ms) = (flushed, lake_ms, publish_ms);
        report.total_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Flushes orphaned outboxes (a scheduled tick, or a batch of duplicates only).
    pub async fn flush(&self) -> Result<usize> {
        Ok(self.flush_timed().await?.0)
    }

    async fn flush_timed(&self) -> Result<(usize, u64, u64)> {
        let (state, version) = self.store.load().await?;
        self.flush_from(state, version, None).await
    }

    /// Writes committed outbox objects to the lake and the topic: `own` (just committed, still
    /// in memory) at once, others' once orphaned; then drops their references from the state
    /// and refreshes the live view. `state` and `version` are what this instance last read or
    /// wrote, saving a read when nobody else wrote since. Returns how many were flushed.
    async fn flush_from(&self, mut state: State, mut version: Option<Version>, own: Option<(String, Outbox)>) -> Result<(usize, u64, u64)> {
        let (mut lake_ms, mut publish_ms) = (0, 0);
        let now = now_ms();
        let own_name = own.as_ref().map(|(n, _)| n.clone());
        let mut due: Vec<PendingRef> = state.pending.iter().filter(|p| Some(&p.object) == own_name.as_ref() || now - p.created_ms > ORPHAN_AFTER_MS).cloned().collect();
        due.sort_by_key(|p| p.generation);
        let mut own = own;
        let mut done = Vec::new();
        for p in &due {
            let outbox = match own.take_if(|(n, _)| *n == p.object) {
                Some((_, o)) => o,
                None => match self.store.get_outbox(&p.object).await? {
                    Some(o) => o,
                    None => {
                        done.push(p.object.clone());
                        continue;
                    }
                },
            };
            // Alerts first: they carry no personal data and are the urgent part; the state
            // commit already decided them, and the outbox makes the table write follow.
            let t = std::time::Instant::now();
            for a in &outbox.alerts {
                self.alerts.publish(a).await?;
                tracing::warn!(alert = %a.alert_id, kind = %a.kind, severity = ?a.severity, "alert");
            }
            publish_ms += t.elapsed().as_millis() as u64;
            let t = std::time::Instant::now();
            self.lake.write(&outbox).await?;
            lake_ms += t.elapsed().as_millis() as u64;
            done.push(p.object.clone());
        }
        if !done.is_empty() {
            let mut saved = false;
            for _ in 0..MAX_ATTEMPTS {
                state.pending.retain(|p| !done.contains(&p.object));
                match self.store.save(&state, version.as_ref()).await {
                    Ok(_) => {
                        saved = true;
                        break;
                    }
                    Err(Error::StateConflict) => (state, version) = self.store.load().await?,
                    Err(e) => return Err(e),
                }
            }
            if !saved {
                return Err(Error::State { path: "state".into(), reason: format!("lost {MAX_ATTEMPTS} conditional writes in a row") });
            }
            for o in &done {
                self.store.delete_outbox(o).await?;
            }
        }
        self.store.put_live(&state.live_view(&self.rules, now_ms())).await?;
        Ok((done.len(), lake_ms, publish_ms))
    }
}
