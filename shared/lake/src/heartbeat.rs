//! The heartbeat job: one row per scheduled tick in the `ops/heartbeat` Delta table.
//!
//! It exists to prove the whole chain (template → event source → Lambda binary → Delta commit on
//! S3 → independent reader) and to give operators a "the lake is alive" table. Each tick commits
//! under the application transaction `heartbeat` with the tick's epoch second as its version, so
//! a redelivered tick commits nothing; a tick older than the newest recorded one counts as
//! already recorded.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use deltalake::arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::arrow::record_batch::RecordBatch;
use serde_json::Value;

use crate::{AppTransaction, Appended, Error, Result, TableAppender};

/// Prefix of the application id under which each tick's commit is marked (`heartbeat:<tick>`).
/// One id per tick, not one monotonic id for the schedule: ticks may commit concurrently or out
/// of order, and a high-water mark would then drop the earlier tick as "already recorded".
pub const APP_ID: &str = "heartbeat";
/// Tick markers older than this are forgotten by Delta (`delta.setTransactionRetentionDuration`),
/// so the table's log does not carry one marker per minute forever. A redelivery arrives within
/// minutes; a week is a wide margin. A checkpoint every 10 ticks: a tick's marker lookup replays
/// the log since the last one ([`crate::lake::CHECKPOINT_INTERVAL`]).
pub const TABLE_PROPERTIES: &[(&str, &str)] = &[("delta.setTransactionRetentionDuration", "interval 7 days"), crate::lake::CHECKPOINT_INTERVAL];
/// Partition column of the heartbeat table.
pub const PARTITION_COLUMN: &str = "tick_date";

/// A scheduled tick, from either event shape AWS delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// When the schedule meant to fire (not when the function ran).
    pub scheduled_time: DateTime<Utc>,
    /// What fired it: the rule or schedule ARN when known, else the event source.
    pub source: String,
}

impl Tick {
    /// Reads a tick from an EventBridge rule event (`{"detail-type":"Scheduled Event","time":..}`)
    /// or from an EventBridge Scheduler input (`{"scheduled_time":..,"schedule_arn":..}`).
    pub fn from_event(event: &Value) -> Result<Self> {
        let (time, source) = if let Some(t) = event.get("scheduled_time") {
            (t, event.get("schedule_arn").and_then(Value::as_str).unwrap_or("aws.scheduler"))
        } else if let Some(t) = event.get("time") {
            let source = event.get("resources").and_then(|r| r.get(0)).and_then(Value::as_str).or_else(|| event.get("source").and_then(Value::as_str)).unwrap_or("aws.events");
            (t, source)
        } else {
            return Err(Error::InvalidEvent("expected a scheduled event with `time` or a Scheduler input with `scheduled_time`".into()));
        };
        let time = time.as_str().ok_or_else(|| Error::InvalidEvent(format!("tick time {time} is not a string")))?;
        let scheduled_time = DateTime::parse_from_rfc3339(time).map_err(|e| Error::InvalidEvent(format!("tick time {time:?} is not RFC 3339: {e}")))?.with_timezone(&Utc);
        Ok(Self { scheduled_time, source: source.to_string() })
    }
}

/// Who recorded the tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The Lambda request id.
    pub request_id: String,
    /// The function's name.
    pub function_name: String,
}

/// The heartbeat table's schema.
pub fn schema() -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("tick_time", ts.clone(), false),
        Field::new(PARTITION_COLUMN, DataType::Utf8, false),
        Field::new("recorded_at", ts, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("function_name", DataType::Utf8, false),
        Field::new("request_id", DataType::Utf8, false),
    ]))
}

/// Records `tick` through `appender`, exactly once per tick.
pub async fn record_tick<A: TableAppender>(appender: &A, tick: &Tick, invocation: &Invocation, now: DateTime<Utc>) -> Result<Appended> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from(vec![tick.scheduled_time.timestamp_micros()]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![tick.scheduled_time.format("%Y-%m-%d").to_string()])),
        Arc::new(TimestampMicrosecondArray::from(vec![now.timestamp_micros()]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![tick.source.clone()])),
        Arc::new(StringArray::from(vec![invocation.function_name.clone()])),
        Arc::new(StringArray::from(vec![invocation.request_id.clone()])),
    ];
    let batch = RecordBatch::try_new(schema(), columns)?;
    let tick_id = tick.scheduled_time.to_rfc3339_opts(SecondsFormat::Secs, true);
    let txn = AppTransaction { app_id: format!("{APP_ID}:{tick_id}"), version: tick.scheduled_time.timestamp() };
    appender.append(batch, Some(txn)).await
}

/// The function's JSON answer for a recorded tick.
pub fn response(tick: &Tick, appended: &Appended) -> Value {
    let tick_time = tick.scheduled_time.to_rfc3339_opts(SecondsFormat::Secs, true);
    match appended {
        Appended::Committed { table_version, rows } => serde_json::json!({
            "status": "committed", "tick": tick_time, "table_version": table_version, "rows": rows,
        }),
        Appended::AlreadyCommitted { committed_version } => serde_json::json!({
            "status": "already_recorded", "tick": tick_time, "committed_tick": committed_version,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeltaAppender, MemoryAppender, StorageConfig};
    use serde_json::json;

    fn inv() -> Invocation {
        Invocation { request_id: "req-1".into(), function_name: "heartbeat".into() }
    }

    #[test]
    fn parses_both_event_shapes() {
        let rule = json!({"detail-type": "Scheduled Event", "source": "aws.events",
            "time": "2026-11-25T10:00:00Z", "resources": ["arn:aws:events:us-east-1:1:rule/x"]});
        let tick = Tick::from_event(&rule).unwrap();
        assert_eq!(tick.source, "arn:aws:events:us-east-1:1:rule/x");
        let sched = json!({"scheduled_time": "2026-11-25T10:05:00Z", "schedule_arn": "arn:s"});
        let tick2 = Tick::from_event(&sched).unwrap();
        assert_eq!((tick2.scheduled_time - tick.scheduled_time).num_seconds(), 300);
    }

    #[test]
    fn rejects_events_without_a_time() {
        let err = Tick::from_event(&json!({"hello": 1})).unwrap_err();
        assert!(err.to_string().contains("scheduled_time"), "{err}");
        let err = Tick::from_event(&json!({"time": "yesterday"})).unwrap_err();
        assert!(err.to_string().contains("yesterday"), "{err}");
    }

    #[tokio::test]
    async fn a_redelivered_tick_commits_once() {
        let appender = MemoryAppender::default();
        let tick = Tick::from_event(&json!({"time": "2026-11-25T10:00:00Z"})).unwrap();
        let first = record_tick(&appender, &tick, &inv(), Utc::now()).await.unwrap();
        assert!(matches!(first, Appended::Committed { rows: 1, .. }));
        let again = record_tick(&appender, &tick, &inv(), Utc::now()).await.unwrap();
        assert!(matches!(again, Appended::AlreadyCommitted { .. }));
        assert_eq!(appender.batches().len(), 1);
    }

    #[tokio::test]
    async fn writes_a_real_delta_table_on_local_disk() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("file://{}", dir.path().display());
        let storage = StorageConfig { endpoint_url: None, region: "us-east-1".into() };
        let appender = DeltaAppender::new(&uri, &storage).unwrap().with_partition_columns(&[PARTITION_COLUMN]);
        for minute in 0..3 {
            let t = format!("2026-11-25T10:0{minute}:00Z");
            let tick = Tick::from_event(&json!({ "time": t })).unwrap();
            let out = record_tick(&appender, &tick, &inv(), Utc::now()).await.unwrap();
            assert_eq!(out, Appended::Committed { table_version: minute, rows: 1 });
        }
        let tick = Tick::from_event(&json!({"time": "2026-11-25T10:01:00Z"})).unwrap();
        let out = record_tick(&appender, &tick, &inv(), Utc::now()).await.unwrap();
        assert!(matches!(out, Appended::AlreadyCommitted { .. }), "{out:?}");
        assert!(dir.path().join("_delta_log/00000000000000000002.json").exists());
        assert!(!dir.path().join("_delta_log/00000000000000000003.json").exists());
        assert!(dir.path().join("tick_date=2026-11-25").is_dir());
    }

    /// Ticks of one schedule share an application-transaction id, so two ticks committing at
    /// once conflict in Delta; both must still land, exactly once each (CI flake of 2026-11-26).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_ticks_all_land_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("file://{}", dir.path().display());
        let storage = StorageConfig { endpoint_url: None, region: "us-east-1".into() };
        let appender = std::sync::Arc::new(DeltaAppender::new(&uri, &storage).unwrap().with_partition_columns(&[PARTITION_COLUMN]).with_table_properties(TABLE_PROPERTIES));
        let first = Tick::from_event(&json!({"time": "2026-11-25T09:59:00Z"})).unwrap();
        record_tick(appender.as_ref(), &first, &inv(), Utc::now()).await.unwrap();
        let mut tasks = Vec::new();
        for second in 0..8 {
            let appender = appender.clone();
            tasks.push(tokio::spawn(async move {
                let tick = Tick::from_event(&json!({ "time": format!("2026-11-25T10:00:0{second}Z") })).unwrap();
                record_tick(appender.as_ref(), &tick, &inv(), Utc::now()).await
            }));
        }
        for task in tasks {
            let out = task.await.unwrap().unwrap_or_else(|e| panic!("a concurrent tick failed: {e}"));
            assert!(matches!(out, Appended::Committed { rows: 1, .. }), "{out:?}");
        }
        let table = deltalake::open_table(url::Url::parse(&uri).unwrap()).await.unwrap();
        assert_eq!(table.version(), Some(8));
        let first_again = record_tick(appender.as_ref(), &first, &inv(), Utc::now()).await.unwrap();
        assert!(matches!(first_again, Appended::AlreadyCommitted { .. }), "{first_again:?}");
    }

    #[test]
    fn rejects_unknown_schemes() {
        let storage = StorageConfig { endpoint_url: None, region: "us-east-1".into() };
        let err = DeltaAppender::new("gopher://x/y", &storage).unwrap_err();
        assert!(err.to_string().contains("gopher"), "{err}");
    }
}
