//! `planner` Lambda: wiring only. The logic is `alkasba_ingest::planner`.
//!
//! Event: a schedule tick (any JSON), optionally `{"streams": ["alkasba_store.orders", ...]}` to
//! plan only those streams, and `"run_date": "YYYY-MM-DD"` to plan as of that day (daily feeds:
//! the exchange rates or competitor prices of a past day).

use alkasba_ingest::settings::Settings;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let metrics = alkasba_runtime::metrics::init()?;
    let settings = Settings::from_env()?;
    let sdk = aws_config::load_from_env().await;
    let ingest = settings.build_planner(&sdk).await?;
    tracing::info!(sources = ingest.catalog.sources.len(), "planner ready");
    let ingest = &ingest;
    alkasba_runtime::metrics::run(metrics, move |event: LambdaEvent<Value>| async move {
        let only: Option<Vec<String>> = match event.payload.get("streams") {
            None | Some(Value::Null) => None,
            Some(s) => Some(serde_json::from_value(s.clone()).map_err(|e| Error::from(format!("event field \"streams\" must be a list of \"source.stream\" names: {e}")))?),
        };
        let now = match event.payload.get("run_date").and_then(Value::as_str) {
            None => chrono::Utc::now(),
            Some(d) => alkasba_ingest::planner::noon_of(d).map_err(|e| Error::from(format!("event field \"run_date\": {e}")))?,
        };
        let results = ingest.plan(only.as_deref(), now).await?;
        let mut planned = Vec::new();
        let mut failed = Vec::new();
        for r in results {
            match r {
                Ok(p) => planned.push(serde_json::to_value(p)?),
                Err((stream, e)) => failed.push(json!({"stream": stream, "error": e.to_string()})),
            }
        }
        if !failed.is_empty() && planned.is_empty() {
            return Err(Error::from(format!("every stream failed to plan: {failed:?}")));
        }
        Ok::<Value, Error>(json!({"planned": planned, "failed": failed}))
    })
    .await
}
