//! Test support (feature `testkit`): the ingestion library end to end on one machine without
//! AWS — a real simulator over HTTP, a real Delta lake on the local file system, an in-memory
//! queue and local keys. Used by this crate's pipeline test and by the batch layer's tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alkasba_lake::StorageConfig;
use alkasba_pii::{LocalKeys, Tokenizer};
use alkasba_sim::{AppState, SimConfig, serve};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::json;
use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::control::Control;
use crate::ports::MemoryQueue;
use crate::{Ingest, TaskReport, Tuning};
use alkasba_lake::Lake;
use alkasba_runtime::StaticSecrets;

/// Ingestion against a local simulator and a local lake.
pub struct Local {
    pub ingest: Ingest<MemoryQueue, LocalKeys>,
    /// The simulator's base URL.
    pub base: String,
    pub sim: Arc<AppState>,
}

/// Starts a simulator with `cfg` on a free loopback port and an ingestion stack writing to a
/// Delta lake under `dir`.
pub async fn local(cfg: SimConfig, dir: &std::path::Path, tuning: Tuning) -> Local {
    let creds = cfg.credentials.clone();
    let (addr, sim, _) = serve(cfg, "127.0.0.1:0".parse().expect("loopback address")).await.expect("simulator starts");
    let base = format!("http://{addr}");
    let ingest = against(&base, &creds, dir, tuning).await;
    Local { ingest, base, sim }
}

/// An ingestion stack reading every shipped source at `base` (a simulator, or a test server
/// serving other payloads) with `creds`, writing to a Delta lake under `dir`.
pub async fn against(base: &str, creds: &alkasba_sim::Credentials, dir: &std::path::Path, tuning: Tuning) -> Ingest<MemoryQueue, LocalKeys> {
    let secrets = StaticSecrets(HashMap::from([
        ("${stack}/store/credentials".to_string(), json!({"consumer_key": creds.consumer_key, "consumer_secret": creds.consumer_secret})),
        ("${stack}/feeds/competitor-prices".to_string(), json!({"api_key": creds.feed_api_key})),
        ("${stack}/feeds/exchange-rates".to_string(), json!({"token": creds.fx_token})),
    ]));
    let urls = ["alkasba_store", "competitor_prices", "exchange_rates"].iter().map(|s| (s.to_string(), base.parse().expect("base URL"))).collect();
    let catalog = Catalog::load(None, &urls, &secrets).await.expect("shipped sources load");
    let storage = StorageConfig { endpoint_url: None, region: "us-east-1".into() };
    let lake = Lake::new(&format!("file://{}", dir.display()), storage).expect("local lake");
    let control = Control::for_lake(&lake).expect("control store");
    Ingest {
        catalog,
        lake,
        control,
        queue: MemoryQueue::default(),
        keys: Arc::new(LocalKeys::random().expect("local keys")),
        tokens: Tokenizer::new("a test token key of at least 32 bytes").expect("token key"),
        settings: tuning,
    }
}

impl Local {
    /// Plans `streams` as of `now`, then runs queued tasks (all at once) until the queue is
    /// empty; panics on any failure (this is test support).
    pub async fn run_at(&self, streams: &[&str], now: DateTime<Utc>) -> Vec<TaskReport> {
        run_all(&self.ingest, streams, now).await
    }

    /// [`Local::run_at`] now.
    pub async fn run(&self, streams: &[&str]) -> Vec<TaskReport> {
        self.run_at(streams, Utc::now()).await
    }
}

/// Plans `streams` of `ingest` as of `now`, then runs queued tasks until the queue is empty;
/// panics on any failure (this is test support).
pub async fn run_all(ingest: &Ingest<MemoryQueue, LocalKeys>, streams: &[&str], now: DateTime<Utc>) -> Vec<TaskReport> {
    let only: Vec<String> = streams.iter().map(|s| s.to_string()).collect();
    for r in ingest.plan(Some(&only), now).await.expect("planning") {
        r.expect("a stream planned");
    }
    let mut reports = Vec::new();
    loop {
        let tasks = ingest.queue.take_tasks();
        if tasks.is_empty() {
            return reports;
        }
        // Four tasks at a time, like the template's four fetchers: more only fight over
        // the same tables' commits.
        let deadline = Instant::now() + Duration::from_secs(3600);
        let results: Vec<_> = futures::stream::iter(tasks.iter().map(|t| ingest.run_task(t, crate::Delivery::First, deadline))).buffer_unordered(4).collect().await;
        for r in results {
            reports.push(r.expect("a task ran"));
        }
    }
}
