//! `transform` Lambda: wiring only. The logic is `alkasba_batch::silver`.
//!
//! Event: a schedule tick (any JSON), optionally `{"tables": ["orders", ...]}` to transform only
//! those silver tables.

use alkasba_batch::settings::{Settings, names};
use alkasba_batch::silver;
use alkasba_lake::StorageConfig;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let metrics = alkasba_runtime::metrics::init()?;
    let settings = Settings::from_env()?;
    let lake = settings.lake(StorageConfig::from_env()?)?;
    tracing::info!(lake = %lake.root(), "transform ready");
    let (lake, settings) = (&lake, &settings);
    alkasba_runtime::metrics::run(metrics, move |event: LambdaEvent<Value>| async move {
        let only = names(&event.payload, "tables")?;
        let keep_going = settings.keep_going(event.context.deadline);
        match silver::transform(lake, only.as_deref(), settings.transform, keep_going).await {
            Ok(steps) => Ok::<Value, Error>(json!({ "steps": steps })),
            // An erasure is running: the next tick goes on (not an error: no alarm, no retry).
            Err(busy @ alkasba_batch::Error::Busy { .. }) => {
                tracing::warn!(reason = %busy, "transform skipped");
                Ok(json!({ "skipped": busy.to_string() }))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}
