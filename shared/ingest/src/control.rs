//! Run plans: small JSON objects under `_control/ingest/`, and sealed error objects under
//! `errors/`. What a run's tasks have done is not kept here but in the bronze commits themselves
//! (see [`crate::runs::progress`]): data and progress are one atomic write.

use std::sync::Arc;

use deltalake::logstore::object_store::{ObjectStore, ObjectStoreExt, PutPayload, memory::InMemory, path::Path};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What the planner decided for a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunPlan {
    pub run_id: String,
    pub source: String,
    pub stream: String,
    pub opened_at: String,
    /// The request's cursor value (watermark minus lookback), if incremental.
    pub watermark_from: Option<String>,
    /// The store's newest cursor value when the run started: the next watermark.
    pub watermark_to: Option<String>,
    /// Range tasks: (task, last planned page). Empty for a chain.
    pub tasks: Vec<(u32, u64)>,
    /// A cursor chain (one task, pages discovered one by one).
    pub chain: bool,
    /// The first bronze table version that can hold this run's commits (the table's version
    /// when the run was planned, plus one): progress is read from the log from there on.
    #[serde(default)]
    pub bronze_from: i64,
}

/// The request rate a fetcher of a source had reached when it last ended a task, so that the
/// next run's fetchers, often new sandboxes, open at it rather than in slow start (2 requests/s,
/// doubling each second: ~4 s of each cold fetcher's first task, docs/benchmarks.md). Each
/// fetcher's own rate, learned while sharing the store with the others: its share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedPace {
    /// Requests per second.
    pub rate: f64,
    /// When it was recorded (RFC 3339).
    pub at: String,
}

/// The control store.
#[derive(Debug, Clone)]
pub struct Control {
    store: Arc<dyn ObjectStore>,
    root: String,
}

impl Control {
    /// Control objects in the lake's bucket.
    pub fn for_lake(lake: &alkasba_lake::Lake) -> Result<Self> {
        Ok(Self { store: lake.object_store()?, root: lake.root().to_string() })
    }

    /// An in-memory store (unit tests, the benchmark floor).
    pub fn memory() -> Self {
        Self { store: Arc::new(InMemory::new()), root: "memory://".into() }
    }

    fn err(&self, path: &Path, e: impl std::fmt::Display) -> Error {
        Error::Control { path: format!("{}/{path}", self.root.trim_end_matches('/')), reason: e.to_string() }
    }

    async fn put_json<T: Serialize>(&self, path: Path, v: &T) -> Result<()> {
        let body = serde_json::to_vec(v).map_err(|e| self.err(&path, e))?;
        self.store.put(&path, PutPayload::from(body)).await.map_err(|e| self.err(&path, e))?;
        Ok(())
    }

    async fn get_json<T: DeserializeOwned>(&self, path: Path) -> Result<Option<T>> {
        match self.store.get(&path).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| self.err(&path, e))?;
                serde_json::from_slice(&bytes).map(Some).map_err(|e| self.err(&path, e))
            }
            Err(deltalake::logstore::object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(&path, e)),
        }
    }

    fn run_dir(source: &str, stream: &str, run: &str) -> String {
        format!("_control/ingest/runs/{source}/{stream}/{run}")
    }

    pub async fn write_plan(&self, plan: &RunPlan) -> Result<()> {
        self.put_json(Path::from(format!("{}/plan.json", Self::run_dir(&plan.source, &plan.stream, &plan.run_id))), plan).await
    }

    pub async fn plan(&self, source: &str, stream: &str, run: &str) -> Result<Option<RunPlan>> {
        self.get_json(Path::from(format!("{}/plan.json", Self::run_dir(source, stream, run)))).await
    }

    /// Run ids of a stream, oldest first (run ids sort by time).
    pub async fn runs(&self, source: &str, stream: &str) -> Result<Vec<String>> {
        let prefix = Path::from(format!("_control/ingest/runs/{source}/{stream}"));
        let listing = self.store.list_with_delimiter(Some(&prefix)).await.map_err(|e| self.err(&prefix, e))?;
        let mut runs: Vec<String> = listing.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect();
        runs.sort();
        Ok(runs)
    }

    fn pace_path(source: &str) -> Path {
        Path::from(format!("_control/ingest/pace/{source}.json"))
    }

    /// Records `source`'s learned pace (last writer wins: every fetcher's share is alike).
    pub async fn put_pace(&self, source: &str, pace: &LearnedPace) -> Result<()> {
        self.put_json(Self::pace_path(source), pace).await
    }

    /// `source`'s learned pace, if one was recorded.
    pub async fn pace(&self, source: &str) -> Result<Option<LearnedPace>> {
        self.get_json(Self::pace_path(source)).await
    }

    /// Stores a sealed error object; returns its full location.
    pub async fn put_error(&self, key: &str, sealed: Vec<u8>) -> Result<String> {
        let path = Path::from(format!("errors/{key}"));
        self.store.put(&path, PutPayload::from(sealed)).await.map_err(|e| self.err(&path, e))?;
        Ok(format!("{}/{path}", self.root.trim_end_matches('/')))
    }

    /// Reads an error object back (for the decrypt CLI).
    pub async fn get_error(&self, key: &str) -> Result<Vec<u8>> {
        let path = Path::from(format!("errors/{key}"));
        let r = self.store.get(&path).await.map_err(|e| self.err(&path, e))?;
        Ok(r.bytes().await.map_err(|e| self.err(&path, e))?.to_vec())
    }
}
