//! `forecast` Lambda: wiring only. The logic is `alkasba_batch::forecast` (the lake side) and
//! `alkasba_forecast` (the models).
//!
//! Event: a schedule tick (any JSON). Optional fields: `{"run_date": "YYYY-MM-DD"}` to run as
//! of another day (the history ends the day before), `{"families": ["revenue_mad/total", ...]}`
//! to forecast only those.

use alkasba_batch::Error as BatchError;
use alkasba_batch::forecast;
use alkasba_batch::settings::{Settings, names};
use alkasba_lake::StorageConfig;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let settings = Settings::from_env()?;
    let lake = settings.lake(StorageConfig::from_env()?)?;
    tracing::info!(lake = %lake.root(), "forecast ready");
    let (lake, settings) = (&lake, &settings);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let only = names(&event.payload, "families")?;
        let run_date = match event.payload.get("run_date").and_then(Value::as_str) {
            Some(d) => d.parse().map_err(|e| BatchError::Config(format!("event field run_date {d:?} is not a YYYY-MM-DD date: {e}")))?,
            None => chrono::Utc::now().date_naive(),
        };
        let progress = |done: usize, all: usize| {
            if done == all || done.is_multiple_of(500) {
                tracing::info!(done, all, "series forecast");
            }
        };
        let run = forecast::run(lake, &settings.forecast, run_date, only.as_deref(), &progress).await?;
        for (series, error) in &run.failed {
            tracing::warn!(%series, %error, "series not forecast");
        }
        Ok::<Value, Error>(forecast::summary(&run))
    }))
    .await
}
