//! `maintain` Lambda: wiring only. The logic is `alkasba_batch::maintain`.
//!
//! Event: a schedule tick (any JSON), optionally `{"tables": ["silver/", "gold/daily_sales"]}` to
//! maintain only the tables whose path starts with one of those.

use alkasba_batch::maintain;
use alkasba_batch::settings::{Settings, names};
use alkasba_lake::StorageConfig;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let settings = Settings::from_env()?;
    let lake = settings.lake(StorageConfig::from_env()?)?;
    tracing::info!(lake = %lake.root(), "maintain ready");
    let (lake, settings) = (&lake, &settings);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let only = names(&event.payload, "tables")?;
        let keep_going = settings.keep_going(event.context.deadline);
        let mut opts = settings.maintain.clone();
        opts.owner = event.context.request_id.clone();
        let tables = maintain::maintain(lake, only.as_deref(), &opts, keep_going).await?;
        Ok::<Value, Error>(json!({ "tables": tables }))
    }))
    .await
}
