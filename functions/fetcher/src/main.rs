//! `fetcher` Lambda: wiring only. The logic is `alkasba_ingest::fetcher`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alkasba_ingest::MessageOutcome;
use alkasba_ingest::settings::Settings;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let settings = Settings::from_env()?;
    let sdk = aws_config::load_from_env().await;
    let ingest = settings.build(&sdk).await?;
    tracing::info!(sources = ingest.catalog.sources.len(), "fetcher ready");
    let ingest = &ingest;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
        let left = Duration::from_millis(event.context.deadline.saturating_sub(now_ms));
        let deadline = tokio::time::Instant::now() + left;
        let mut response = SqsBatchResponse::default();
        for message in event.payload.records {
            let id = message.message_id.clone().unwrap_or_default();
            let body = message.body.as_deref().unwrap_or_default();
            if ingest.handle_message(body, deadline).await == MessageOutcome::Retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        Ok::<SqsBatchResponse, Error>(response)
    }))
    .await
}
