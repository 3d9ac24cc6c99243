//! The ports on AWS: S3 (state, outbox, live view) through the lake's object
//! store, Delta tables through the lake's commit loop, SQS and SNS.

use std::sync::Arc;

use alkasba_lake::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use alkasba_lake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use alkasba_lake::arrow::record_batch::RecordBatch;
use alkasba_lake::{Append, Attempt, Lake, layout};
use alkasba_pii::keyring_batch;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{self, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use url::Url;

use crate::engine::{AlertPublisher, LakeSink, Outbox, StateStore, Version};
use crate::state::{Alert, State};
use crate::webhook::EventQueue;
use crate::{Error, Result};

/// Where the real-time objects live under the lake root.
/// The state: JSON, zstd-compressed (windows, sets and per-customer times compress ~10x, and
/// the object is read and conditionally rewritten by every batch).
pub const STATE: &str = "_realtime/state.json.zst";
pub const OUTBOX: &str = "_realtime/outbox";
pub const LIVE: &str = alkasba_lake::layout::LIVE_VIEW;
/// The tables.
pub const EVENTS_TABLE: &str = layout::STORE_EVENTS;
pub const ALERTS_TABLE: &str = layout::ALERTS;

fn state_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::State { path: path.to_string(), reason: e.to_string() }
}

/// zstd level of the state object: the fastest levels already give most of the ratio.
const STATE_ZSTD_LEVEL: i32 = 1;

/// The state object's bytes.
pub fn encode_state(state: &State) -> Result<Vec<u8>> {
    let path = Path::from(STATE);
    let json = serde_json::to_vec(state).map_err(|e| state_err(&path, e))?;
    zstd::bulk::compress(&json, STATE_ZSTD_LEVEL).map_err(|e| state_err(&path, format!("compressing: {e}")))
}

/// The state in a state object's bytes.
pub fn decode_state(bytes: &[u8]) -> Result<State> {
    let path = Path::from(STATE);
    let json = zstd::stream::decode_all(bytes).map_err(|e| state_err(&path, format!("not a zstd state object: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| state_err(&path, format!("not a state object: {e}")))
}

fn outbox_path(name: &str) -> Path {
    Path::from(format!("{OUTBOX}/{name}.json"))
}

/// Marks that an outbox's alerts were published (a tiny object beside it, so the state object is
/// not rewritten for it).
fn published_path(name: &str) -> Path {
    Path::from(format!("{OUTBOX}/{name}.published"))
}

/// State, outbox and live view in S3.
#[derive(Debug, Clone)]
pub struct S3State {
    store: Arc<dyn ObjectStore>,
}

impl S3State {
    pub fn new(lake: &Lake) -> Result<Self> {
        Ok(Self { store: lake.object_store()? })
    }

    /// Over any object store (unit tests use the in-memory one).
    pub fn over(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }
}

/// `None` without an ETag or version: the next save is then a create, which fails as a conflict
/// (never an unconditional overwrite).
fn version_of(e_tag: Option<String>, version: Option<String>) -> Option<Version> {
    if e_tag.is_none() && version.is_none() {
        return None;
    }
    serde_json::to_string(&(e_tag, version)).ok()
}

impl StateStore for S3State {
    async fn load(&self) -> Result<(State, Option<Version>)> {
        let path = Path::from(STATE);
        match self.store.get(&path).await {
            Ok(r) => {
                let meta = r.meta.clone();
                let bytes = r.bytes().await.map_err(|e| state_err(&path, e))?;
                let state = decode_state(&bytes)?;
                Ok((state, version_of(meta.e_tag, meta.version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok((State::default(), None)),
            Err(e) => Err(state_err(&path, e)),
        }
    }

    async fn save(&self, state: &State, version: Option<&Version>) -> Result<Option<Version>> {
        let path = Path::from(STATE);
        let mode = match version {
            None => PutMode::Create,
            Some(v) => {
                let (e_tag, version): (Option<String>, Option<String>) = serde_json::from_str(v).map_err(|e| state_err(&path, e))?;
                PutMode::Update(UpdateVersion { e_tag, version })
            }
        };
        let body = encode_state(state)?;
        match self.store.put_opts(&path, PutPayload::from(body), PutOptions { mode, ..Default::default() }).await {
            Ok(r) => Ok(version_of(r.e_tag, r.version)),
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => Err(Error::StateConflict),
            Err(e) => Err(state_err(&path, e)),
        }
    }

    async fn put_outbox(&self, name: &str, outbox: &Outbox) -> Result<()> {
        let path = outbox_path(name);
        let body = serde_json::to_vec(outbox).map_err(|e| state_err(&path, e))?;
        self.store.put(&path, PutPayload::from(body)).await.map_err(|e| state_err(&path, e))?;
        Ok(())
    }

    async fn get_outbox(&self, name: &str) -> Result<Option<Outbox>> {
        let path = outbox_path(name);
        match self.store.get(&path).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| state_err(&path, e))?;
                Ok(Some(serde_json::from_slice(&bytes).map_err(|e| state_err(&path, e))?))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(state_err(&path, e)),
        }
    }

    async fn delete_outbox(&self, name: &str) -> Result<()> {
        for path in [published_path(name), outbox_path(name)] {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(state_err(&path, e)),
            }
        }
        Ok(())
    }

    async fn mark_published(&self, name: &str) -> Result<()> {
        let path = published_path(name);
        self.store.put(&path, PutPayload::from_static(b"1")).await.map_err(|e| state_err(&path, e))?;
        Ok(())
    }

    async fn is_published(&self, name: &str) -> Result<bool> {
        let path = published_path(name);
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(state_err(&path, e)),
        }
    }

    async fn put_live(&self, view: &serde_json::Value) -> Result<()> {
        let path = Path::from(LIVE);
        let body = serde_json::to_vec(view).map_err(|e| state_err(&path, e))?;
        self.store.put(&path, PutPayload::from(body)).await.map_err(|e| state_err(&path, e))?;
        Ok(())
    }
}

/// The Delta tables. Table handles stay open between invocations (the lake's cache) and are
/// brought up to date incrementally (reading only new log entries).
#[derive(Debug)]
pub struct DeltaSink {
    lake: Lake,
    events: Url,
    alerts: Url,
    keyring: Url,
    quarantine: Url,
}

impl DeltaSink {
    pub fn new(lake: Lake) -> Result<Self> {
        let events = lake.table(EVENTS_TABLE)?;
        let alerts = lake.table(ALERTS_TABLE)?;
        let keyring = lake.keyring()?;
        let quarantine = lake.quarantine()?;
        Ok(Self { lake, events, alerts, keyring, quarantine })
    }

    /// Appends the rows `build` makes from the outboxes above the table's committed
    /// generation, marked with the highest of them; retries lost commit races (re-reading the
    /// mark, so work another instance committed meanwhile is not written twice).
    async fn append_outboxes(&self, uri: &Url, outboxes: &[Outbox], partitions: &[&str], build: impl Fn(&[&Outbox]) -> Result<Option<RecordBatch>>) -> Result<()> {
        let build = &build;
        self.lake
            .commit_with_retries(uri, |table| async move {
                let mark = self.lake.txn_version(&table, APP_ID).await?;
                let fresh: Vec<&Outbox> = outboxes.iter().filter(|o| o.generation as i64 > mark).collect();
                let Some(top) = fresh.last().map(|o| o.generation as i64) else {
                    return Ok(Attempt::Done(()));
                };
                let Some(batch) = build(&fresh)? else {
                    return Ok(Attempt::Done(()));
                };
                let append = Append { partitions, txn: Some((APP_ID.to_string(), top)), metadata: None, properties: None };
                Ok::<_, Error>(self.lake.try_append(table, batch, &append).await?.attempt(|_| ()))
            })
            .await
    }
}

fn ts(ms: i64) -> i64 {
    ms * 1000
}

fn date_of(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

fn utc_ts(name: &str) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false)
}

/// The bronze events batch: one row per delivery, the record sealed as JSON text.
pub fn events_batch(outboxes: &[&Outbox]) -> Result<RecordBatch> {
    let e: Vec<&crate::event::StoreEvent> = outboxes.iter().flat_map(|o| o.events.iter().filter(|e| e.invalid.is_empty())).collect();
    let generations: Vec<i64> = outboxes.iter().flat_map(|o| o.events.iter().filter(|e| e.invalid.is_empty()).map(|_| o.generation as i64)).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("delivery_id", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("record_key", DataType::Utf8, true),
        utc_ts("signed_at"),
        utc_ts("received_at"),
        Field::new("record", DataType::Utf8, false),
        Field::new("email_token", DataType::Utf8, true),
        Field::new("generation", DataType::Int64, false),
        Field::new("event_date", DataType::Utf8, false),
    ]));
    let token = |e: &&crate::event::StoreEvent| e.tokens.get("email_token").cloned().flatten();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(e.iter().map(|e| e.delivery_id.as_str()))),
        Arc::new(StringArray::from_iter_values(e.iter().map(|e| e.topic.as_str()))),
        Arc::new(StringArray::from_iter(e.iter().map(|e| e.key.as_deref()))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(e.iter().map(|e| e.signed_at * 1_000_000)).with_timezone("UTC")),
        Arc::new(TimestampMicrosecondArray::from_iter_values(e.iter().map(|e| ts(e.received_at_ms))).with_timezone("UTC")),
        Arc::new(StringArray::from_iter_values(e.iter().map(|e| e.record.to_string()))),
        Arc::new(StringArray::from_iter(e.iter().map(token))),
        Arc::new(Int64Array::from_iter_values(generations)),
        Arc::new(StringArray::from_iter_values(e.iter().map(|e| date_of(e.at())))),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// The quarantine rows of the outboxes' invalid payloads (the ingestion's quarantine table, run
/// `webhook`, source `webhook`), or `None` when there are none. Their records are sealed as
/// ingestion seals them.
pub fn quarantine_rows(outboxes: &[&Outbox], now: chrono::DateTime<chrono::Utc>) -> Result<Option<RecordBatch>> {
    let mut by_stream: std::collections::BTreeMap<String, Vec<alkasba_records::QuarantineRow>> = std::collections::BTreeMap::new();
    for e in outboxes.iter().flat_map(|o| o.events.iter()).filter(|e| !e.invalid.is_empty()) {
        let stream = e.topic.split_once('.').and_then(|(r, _)| crate::event::stream_of(r)).map(|(s, t)| format!("{s}.{t}")).unwrap_or_else(|| format!("webhook.{}", e.topic));
        by_stream.entry(stream).or_default().push(alkasba_records::QuarantineRow { key: e.key.clone(), page: 0, reasons: e.invalid.clone(), record: e.record.to_string() });
    }
    let batches = by_stream.iter().map(|(stream, rows)| alkasba_records::quarantine_batch(stream, rows, "webhook", |_| "webhook".to_string(), now)).collect::<std::result::Result<Vec<_>, _>>()?;
    let Some(first) = batches.first() else { return Ok(None) };
    Ok(Some(alkasba_lake::arrow::compute::concat_batches(&first.schema(), &batches)?))
}

/// The alerts batch.
pub fn alerts_batch(alerts: &[Alert]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("alert_id", DataType::Utf8, false),
        Field::new("rule", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("subject", DataType::Utf8, false),
        utc_ts("at"),
        Field::new("trigger_delivery", DataType::Utf8, true),
        Field::new("evidence", DataType::Utf8, false),
        Field::new("alert_date", DataType::Utf8, false),
    ]));
    let sev = |a: &Alert| serde_json::to_value(a.severity).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(alerts.iter().map(|a| a.alert_id.as_str()))),
        Arc::new(StringArray::from_iter_values(alerts.iter().map(|a| a.rule.as_str()))),
        Arc::new(StringArray::from_iter_values(alerts.iter().map(|a| a.kind.as_str()))),
        Arc::new(StringArray::from_iter_values(alerts.iter().map(sev))),
        Arc::new(StringArray::from_iter_values(alerts.iter().map(|a| a.subject.as_str()))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(alerts.iter().map(|a| a.at * 1_000_000)).with_timezone("UTC")),
        Arc::new(StringArray::from_iter(alerts.iter().map(|a| a.trigger_delivery.as_deref()))),
        Arc::new(StringArray::from_iter_values(alerts.iter().map(|a| a.evidence.to_string()))),
        Arc::new(StringArray::from_iter_values(alerts.iter().map(|a| date_of(a.at)))),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// The application-transaction id of the realtime commits; its version is the highest outbox
/// generation in the table.
pub const APP_ID: &str = "realtime";

impl LakeSink for DeltaSink {
    async fn write(&self, outboxes: &[Outbox]) -> Result<()> {
        let mut keys = Vec::new();
        for o in outboxes {
            for k in &o.keys {
                keys.push(k.to_row().ok_or_else(|| Error::BadMessage { id: format!("outbox {}", o.generation), reason: "a wrapped key is not valid base64".into() })?);
            }
        }
        // Keys first: nothing sealed under a key may reach the lake before the key.
        self.append_outboxes(&self.keyring, outboxes, &[], |fresh| {
            let ids: std::collections::HashSet<&str> = fresh.iter().flat_map(|o| o.keys.iter().map(|k| k.key_id.as_str())).collect();
            let mut rows: Vec<_> = keys.iter().filter(|k| ids.contains(k.key_id.as_str())).cloned().collect();
            rows.sort_by(|a, b| a.key_id.cmp(&b.key_id));
            rows.dedup_by(|a, b| a.key_id == b.key_id);
            Ok(if rows.is_empty() { None } else { Some(keyring_batch(&rows)?) })
        })
        .await?;
        let valid = |o: &&Outbox| o.events.iter().any(|e| e.invalid.is_empty());
        self.append_outboxes(&self.events, outboxes, &["event_date"], |fresh| Ok(if fresh.iter().any(valid) { Some(events_batch(fresh)?) } else { None })).await?;
        // Invalid payloads are rare: the quarantine table is not even opened without one.
        if outboxes.iter().any(|o| o.events.iter().any(|e| !e.invalid.is_empty())) {
            let now = chrono::Utc::now();
            self.append_outboxes(&self.quarantine, outboxes, &[alkasba_records::record::INGEST_DATE], |fresh| quarantine_rows(fresh, now)).await?;
        }
        self.append_outboxes(&self.alerts, outboxes, &["alert_date"], |fresh| {
            let alerts: Vec<Alert> = fresh.iter().flat_map(|o| o.alerts.iter().cloned()).collect();
            Ok(if alerts.is_empty() { None } else { Some(alerts_batch(&alerts)?) })
        })
        .await?;
        Ok(())
    }
}

/// SNS topic.
#[derive(Debug, Clone)]
pub struct SnsAlerts {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsAlerts {
    pub fn new(sdk: &aws_config::SdkConfig, topic_arn: impl Into<String>) -> Self {
        Self { client: aws_sdk_sns::Client::new(sdk), topic_arn: topic_arn.into() }
    }
}

impl AlertPublisher for SnsAlerts {
    async fn publish(&self, alert: &Alert) -> Result<()> {
        let message = serde_json::to_string(alert).map_err(|e| Error::Aws { service: "sns", operation: "publish", reason: e.to_string() })?;
        let attr = |v: &str| aws_sdk_sns::types::MessageAttributeValue::builder().data_type("String").string_value(v).build();
        let kind = attr(&alert.kind).map_err(|e| Error::Aws { service: "sns", operation: "publish", reason: e.to_string() })?;
        self.client.publish().topic_arn(&self.topic_arn).subject(format!("Alkasba alert: {}", alert.kind)).message(message).message_attributes("kind", kind).send().await.map_err(|e| Error::Aws {
            service: "sns",
            operation: "publish",
            reason: format!("{}", aws_sdk_sns::error::DisplayErrorContext(&e)),
        })?;
        Ok(())
    }
}

/// The store-events queue.
#[derive(Debug, Clone)]
pub struct SqsEvents {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsEvents {
    pub fn new(sdk: &aws_config::SdkConfig, url: impl Into<String>) -> Self {
        Self { client: aws_sdk_sqs::Client::new(sdk), url: url.into() }
    }
}

impl EventQueue for SqsEvents {
    async fn send(&self, body: String) -> Result<()> {
        self.client.send_message().queue_url(&self.url).message_body(body).send().await.map_err(|e| Error::Aws {
            service: "sqs",
            operation: "send_message",
            reason: format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
        })?;
        Ok(())
    }
}
