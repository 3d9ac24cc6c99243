//! Every batch-job option: its environment variable, default and meaning, in one place. Read once
//! at start-up and validated; a wrong value stops the process with a message naming it.

use std::time::Duration;

use alkasba_lake::Lake;
use alkasba_lake::StorageConfig;
use alkasba_lake::options::Options;

use crate::forecast::ForecastOptions;
use crate::gold::AggregateOptions;
use crate::maintain::MaintainOptions;
use crate::silver::TransformOptions;
use crate::{Error, Result};

/// (variable, default, meaning): the documentation of every option (function READMEs, CLI help).
pub const OPTIONS: &[(&str, &str, &str)] = &[
    ("LAKE_ROOT", "", "Root of the lake: s3://<bucket> (required)."),
    ("MAX_BRONZE_VERSIONS", "500", "Bronze versions a transform step reads at once (bounds memory; the next step resumes)."),
    (
        "MAX_STEP_MB",
        "64",
        "Megabytes of bronze Parquet a transform step reads: from nothing, a slice of bronze's files; after, the versions that fit (at least one file or version; bounds memory: ~1.1 GB at 64 for 1M orders, docs/benchmarks.md).",
    ),
    ("DEADLINE_MARGIN_SECS", "60", "Stop starting steps this long before the invocation's deadline; the next run resumes where the last commit left off."),
    ("GOLD_CONCURRENCY", "2", "Aggregate: marts built at the same time, each as soon as the marts it reads are done (1: one after another)."),
    ("FORECAST_HORIZON_DAYS", "28", "Forecast: days forecast ahead (1-90)."),
    ("FORECAST_ORIGINS", "8", "Forecast: backtest cuts, a week apart, each forecasting the horizon after it (1-26)."),
    ("FORECAST_HISTORY_DAYS", "730", "Forecast: days of history read (the most recent; 28-3650)."),
    ("FORECAST_MAX_PRODUCTS", "5000", "Forecast: products forecast (the best sellers of the last 91 days), for the stock-out dates (0-100000)."),
    ("TARGET_FILE_SIZE_MB", "128", "Maintenance: compaction target file size."),
    (
        "VACUUM_RETENTION_HOURS",
        "(each table's deletedFileRetentionDuration, 7 days)",
        "Maintenance: files removed from a table longer ago than this are deleted; time travel works within it. At least 168.",
    ),
    (
        "KEYRING_RETENTION_MINUTES",
        "60",
        "Maintenance: keyring files no commit references (a writer killed mid-commit) are deleted once this old, so no erased key outlives it. Must exceed the longest writer invocation (15 minutes): a shorter one may delete a commit under way (0 is for tests).",
    ),
];

/// The options, typed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `s3://<bucket>` (or `file:///dir` locally).
    pub lake_root: String,
    /// Transform step size.
    pub transform: TransformOptions,
    /// Time kept free before a Lambda deadline.
    pub deadline_margin: Duration,
    /// Gold build settings.
    pub aggregate: AggregateOptions,
    /// Maintenance settings.
    pub maintain: MaintainOptions,
    /// Forecast settings.
    pub forecast: ForecastOptions,
}

impl Settings {
    /// Reads the options through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let o = Options::new(lookup, OPTIONS);
        let number = |k: &str, default: u64, range: std::ops::RangeInclusive<u64>| o.number(k, default, range).map_err(Error::Config);
        let get = |k: &str| o.get(k);
        let lake_root = o.lake_root().map_err(Error::Config)?;
        Ok(Self {
            lake_root,
            transform: TransformOptions {
                max_versions: number("MAX_BRONZE_VERSIONS", 500, 1..=100_000)? as i64,
                max_step_bytes: number("MAX_STEP_MB", TransformOptions::default().max_step_bytes >> 20, 1..=10_240)? << 20,
            },
            deadline_margin: Duration::from_secs(number("DEADLINE_MARGIN_SECS", 60, 0..=840)?),
            aggregate: AggregateOptions { concurrency: number("GOLD_CONCURRENCY", AggregateOptions::default().concurrency as u64, 1..=16)? as usize },
            maintain: MaintainOptions {
                target_size: number("TARGET_FILE_SIZE_MB", 128, 1..=1024)? * 1024 * 1024,
                retention: match get("VACUUM_RETENTION_HOURS") {
                    None => None,
                    Some(_) => Some(chrono::Duration::hours(number("VACUUM_RETENTION_HOURS", 168, 168..=100_000)? as i64)),
                },
                keyring_retention: chrono::Duration::minutes(number("KEYRING_RETENTION_MINUTES", 60, 0..=10_080)? as i64),
                ..MaintainOptions::default()
            },
            forecast: ForecastOptions {
                horizon: number("FORECAST_HORIZON_DAYS", 28, 1..=90)? as usize,
                origins: number("FORECAST_ORIGINS", 8, 1..=26)? as usize,
                history_days: number("FORECAST_HISTORY_DAYS", 730, 28..=3650)? as usize,
                max_products: number("FORECAST_MAX_PRODUCTS", 5000, 0..=100_000)? as usize,
            },
        })
    }

    /// Reads the options from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Whether a job invoked with this Lambda `deadline` (ms since the epoch) may start another
    /// step: true while more than `DEADLINE_MARGIN_SECS` remain.
    pub fn keep_going(&self, deadline_ms: u64) -> impl Fn() -> bool + '_ {
        let deadline = std::time::UNIX_EPOCH + Duration::from_millis(deadline_ms);
        move || deadline.duration_since(std::time::SystemTime::now()).unwrap_or_default() > self.deadline_margin
    }

    /// The lake these settings name, reached with `storage`.
    pub fn lake(&self, storage: StorageConfig) -> Result<Lake> {
        Ok(Lake::new(&self.lake_root, storage)?)
    }
}

/// Names in an event field (`{"tables": [...]}`): `None` when absent, an error naming the field
/// when it is not a list of strings.
pub fn names(event: &serde_json::Value, field: &str) -> Result<Option<Vec<String>>> {
    match event.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| Error::Config(format!("event field {field:?} must be a list of names: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_and_errors_name_the_variable() {
        let s = Settings::from_lookup(lookup(&[("LAKE_ROOT", "s3://lake")])).unwrap();
        assert_eq!(s.transform.max_versions, 500);
        assert_eq!(s.transform.max_step_bytes, 64 << 20);
        assert_eq!(s.deadline_margin, Duration::from_secs(60));
        let e = Settings::from_lookup(lookup(&[])).unwrap_err().to_string();
        assert!(e.contains("LAKE_ROOT"), "{e}");
        let e = Settings::from_lookup(lookup(&[("LAKE_ROOT", "http://x")])).unwrap_err().to_string();
        assert!(e.contains("s3://"), "{e}");
        let e = Settings::from_lookup(lookup(&[("LAKE_ROOT", "s3://lake"), ("MAX_BRONZE_VERSIONS", "0")])).unwrap_err().to_string();
        assert!(e.contains("MAX_BRONZE_VERSIONS"), "{e}");
        let e = Settings::from_lookup(lookup(&[("LAKE_ROOT", "s3://lake"), ("VACUUM_RETENTION_HOURS", "1")])).unwrap_err().to_string();
        assert!(e.contains("VACUUM_RETENTION_HOURS") && e.contains("168"), "{e}");
        assert_eq!(s.maintain.target_size, 128 * 1024 * 1024);
        assert_eq!(s.forecast, crate::forecast::ForecastOptions::default());
        let e = Settings::from_lookup(lookup(&[("LAKE_ROOT", "s3://lake"), ("FORECAST_HORIZON_DAYS", "365")])).unwrap_err().to_string();
        assert!(e.contains("FORECAST_HORIZON_DAYS"), "{e}");
    }

    #[test]
    fn event_names_are_a_list() {
        assert_eq!(names(&serde_json::json!({}), "tables").unwrap(), None);
        assert_eq!(names(&serde_json::json!({"tables": ["orders"]}), "tables").unwrap(), Some(vec!["orders".to_string()]));
        assert!(names(&serde_json::json!({"tables": "orders"}), "tables").unwrap_err().to_string().contains("tables"));
    }
}
