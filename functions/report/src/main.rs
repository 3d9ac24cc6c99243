//! `report` Lambda (monthly schedule): wiring only. The logic is `alkasba_dashboard::report`.

use std::path::PathBuf;
use std::sync::Arc;

use alkasba_dashboard::engine::Engine;
use alkasba_dashboard::report;
use alkasba_lake::{Lake, StorageConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let root = std::env::var("LAKE_ROOT").map_err(|_| "environment variable LAKE_ROOT is not set")?;
    let lake = Arc::new(Lake::new(&root, StorageConfig::from_env()?)?);
    let store = lake.object_store()?;
    // Chromium is not in the Lambda runtime: the PDF is printed only where it is installed (a
    // layer, or Debian's package under the local runner).
    let chromium = std::env::var("CHROMIUM_PATH").ok().filter(|p| !p.is_empty()).map(PathBuf::from);
    let engine = Engine::new(lake);
    let (engine, store, chromium) = (&engine, &store, &chromium);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // `{"month": "YYYY-MM"}` re-runs a month; the schedule's event reports the month before.
        let month = match event.payload.get("month").and_then(Value::as_str) {
            Some(m) => m.to_string(),
            None => report::previous_month(chrono::Utc::now().date_naive()),
        };
        let echarts = report::echarts(store.as_ref()).await?;
        let built = report::build(engine, &month, &echarts, chrono::Utc::now()).await?;
        let pdf = match chromium {
            Some(c) => Some(report::pdf(&built.html, c).await?),
            None => None,
        };
        let written = report::save(store.as_ref(), &built, pdf.as_deref()).await?;
        tracing::info!(month = %month, objects = ?written, "report written");
        Ok::<Value, Error>(json!({"month": month, "written": written, "pdf": pdf.is_some()}))
    }))
    .await
}
