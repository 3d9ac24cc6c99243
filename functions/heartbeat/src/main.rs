//! `heartbeat` Lambda: wiring only. The logic is `alkasba_lake::heartbeat`.

use alkasba_lake::heartbeat::{self, Invocation, Tick};
use alkasba_lake::{DeltaAppender, StorageConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let storage = StorageConfig::from_env()?;
    let table_uri = std::env::var("HEARTBEAT_TABLE_URI").map_err(|_| "environment variable HEARTBEAT_TABLE_URI is not set (s3://bucket/ops/heartbeat)")?;
    let appender = DeltaAppender::new(&table_uri, &storage)?.with_partition_columns(&[heartbeat::PARTITION_COLUMN]).with_table_properties(heartbeat::TABLE_PROPERTIES);
    tracing::info!(table = %appender.url(), "heartbeat ready");
    let appender = &appender;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let tick = Tick::from_event(&event.payload)?;
        let invocation = Invocation { request_id: event.context.request_id.clone(), function_name: event.context.env_config.function_name.clone() };
        let span = tracing::info_span!("tick", request_id = %invocation.request_id, tick = %tick.scheduled_time);
        async {
            let appended = heartbeat::record_tick(appender, &tick, &invocation, chrono::Utc::now()).await?;
            tracing::info!(?appended, "tick recorded");
            Ok::<Value, Error>(heartbeat::response(&tick, &appended))
        }
        .instrument(span)
        .await
    }))
    .await
}
