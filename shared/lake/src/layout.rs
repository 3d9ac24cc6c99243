//! Every table of the lake, in one registry: where it lives, how it is partitioned and how
//! `maintain` keeps it. The layers name their tables through this module (no table path is
//! written anywhere else), and `maintain` takes its targets from [`Registry`], so a table added
//! here is maintained.
//!
//! ```text
//! s3://<lake>/bronze/<source>/<stream>/        one Delta table per REST stream, by _ingest_date
//! s3://<lake>/bronze/realtime/store_events/    webhook events, by event date
//! s3://<lake>/quarantine/ingest/               invalid records of every stream, by _ingest_date
//! s3://<lake>/silver/<table>/  gold/<mart>/    the batch layer (catalogues in alkasba-batch)
//! s3://<lake>/ops/ingestion_runs|heartbeat|alerts|erasures/   operations tables
//! s3://<lake>/security/keyring/                wrapped person keys (see alkasba-pii)
//! s3://<lake>/errors/<source>/<stream>/        sealed raw responses of dead-lettered pages
//! s3://<lake>/_control/ingest/                 run plans
//! s3://<lake>/_realtime/                       real-time state, outbox, live view
//! s3://<lake>/_dashboard/                      the dashboard's static pages (published by the CLI)
//! ```

/// Invalid records of every ingestion path.
pub const QUARANTINE: &str = "quarantine/ingest";
/// One row per completed ingestion run.
pub const INGESTION_RUNS: &str = "ops/ingestion_runs";
/// The heartbeat job's ticks.
pub const HEARTBEAT: &str = "ops/heartbeat";
/// Wrapped per-person data keys.
pub const KEYRING: &str = "security/keyring";
/// One row per erasure (when, which tokens and keys, what was done; never personal data).
pub const ERASURES: &str = "ops/erasures";
/// Store events received by the webhook.
pub const STORE_EVENTS: &str = "bronze/realtime/store_events";
/// Alerts raised by the real-time rules.
pub const ALERTS: &str = "ops/alerts";

/// The real-time live view object (JSON), rewritten by `realtime`, read by the dashboard.
pub const LIVE_VIEW: &str = "_realtime/live/metrics.json";
/// Prefix of the dashboard's static pages.
pub const DASHBOARD_ASSETS: &str = "_dashboard";

/// The bronze table of a REST stream.
pub fn bronze(source: &str, stream: &str) -> String {
    format!("bronze/{source}/{stream}")
}

/// A silver table.
pub fn silver(name: &str) -> String {
    format!("silver/{name}")
}

/// A gold mart.
pub fn gold(name: &str) -> String {
    format!("gold/{name}")
}

/// Which part of the lake a table belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Bronze,
    Quarantine,
    Silver,
    Gold,
    Ops,
    Security,
}

/// One table: its path under the lake root and how it is kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableSpec {
    /// `<layer>/<name>` under the lake root.
    pub path: String,
    pub layer: Layer,
    /// Its partition column, if any.
    pub partition: Option<String>,
    /// Columns `maintain` z-orders it by (empty: compaction only).
    pub zorder: Vec<String>,
}

impl TableSpec {
    pub fn new(path: impl Into<String>, layer: Layer, partition: Option<&str>, zorder: &[&str]) -> Self {
        Self { path: path.into(), layer, partition: partition.map(str::to_string), zorder: zorder.iter().map(|c| c.to_string()).collect() }
    }
}

/// Every table of the lake.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    tables: Vec<TableSpec>,
}

impl Registry {
    /// The tables every deployment has, whatever its sources and marts: quarantine, the
    /// operations tables, the keyring and the real-time events.
    pub fn core() -> Self {
        let mut r = Self::default();
        r.add(TableSpec::new(QUARANTINE, Layer::Quarantine, Some("_ingest_date"), &[]));
        r.add(TableSpec::new(INGESTION_RUNS, Layer::Ops, None, &[]));
        r.add(TableSpec::new(HEARTBEAT, Layer::Ops, Some("tick_date"), &[]));
        r.add(TableSpec::new(ALERTS, Layer::Ops, Some("alert_date"), &[]));
        r.add(TableSpec::new(KEYRING, Layer::Security, None, &[]));
        // Security, not ops: it names erased tokens, so it stays out of the BI catalogue.
        r.add(TableSpec::new(ERASURES, Layer::Security, None, &[]));
        r.add(TableSpec::new(STORE_EVENTS, Layer::Bronze, Some("event_date"), &[]));
        r
    }

    /// Adds a table (a second entry for the same path replaces the first).
    pub fn add(&mut self, spec: TableSpec) {
        self.tables.retain(|t| t.path != spec.path);
        self.tables.push(spec);
    }

    /// Adds the bronze table of each `(source, stream)`.
    pub fn with_bronze<'a>(mut self, streams: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        for (source, stream) in streams {
            self.add(TableSpec::new(bronze(source, stream), Layer::Bronze, Some("_ingest_date"), &[]));
        }
        self
    }

    /// Every table, in the order they were added.
    pub fn tables(&self) -> &[TableSpec] {
        &self.tables
    }

    /// The table at `path`.
    pub fn get(&self, path: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.path == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_registry_holds_every_shared_table_once() {
        let r = Registry::core().with_bronze([("s", "a"), ("s", "a"), ("s", "b")]);
        for p in [QUARANTINE, INGESTION_RUNS, HEARTBEAT, ALERTS, KEYRING, ERASURES, STORE_EVENTS, "bronze/s/a", "bronze/s/b"] {
            assert_eq!(r.tables().iter().filter(|t| t.path == p).count(), 1, "{p}");
        }
        assert_eq!(r.get("bronze/s/a").and_then(|t| t.partition.as_deref()), Some("_ingest_date"));
    }
}
