//! `aggregate` Lambda: wiring only. The logic is `alkasba_batch::gold`.
//!
//! Event: a schedule tick (any JSON), optionally `{"marts": ["daily_sales", ...]}` to build only
//! those marts.

use alkasba_batch::gold;
use alkasba_batch::settings::{Settings, names};
use alkasba_lake::StorageConfig;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let metrics = alkasba_runtime::metrics::init()?;
    let settings = Settings::from_env()?;
    let lake = settings.lake(StorageConfig::from_env()?)?;
    tracing::info!(lake = %lake.root(), "aggregate ready");
    let (lake, settings) = (&lake, &settings);
    alkasba_runtime::metrics::run(metrics, move |event: LambdaEvent<Value>| async move {
        let only = names(&event.payload, "marts")?;
        let keep_going = settings.keep_going(event.context.deadline);
        match gold::aggregate(lake, &settings.aggregate, only.as_deref(), keep_going).await {
            Ok(marts) => Ok::<Value, Error>(json!({ "marts": marts })),
            // An erasure is running: the next tick goes on (not an error: no alarm, no retry).
            Err(busy @ alkasba_batch::Error::Busy { .. }) => {
                tracing::warn!(reason = %busy, "aggregate skipped");
                Ok(json!({ "skipped": busy.to_string() }))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}
