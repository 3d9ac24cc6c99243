//! `fetcher` Lambda: wiring only. The logic is `alkasba_ingest::fetcher`.

use alkasba_ingest::settings::Settings;
use alkasba_ingest::{Delivery, MessageOutcome};
use alkasba_runtime::{BatchFailures, deadline};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};

// A multi-thread runtime, as the lake needs (`alkasba_lake::Lake`): on a current-thread one
// delta-rs's checkpoint writer blocks the only thread and the fetcher hangs (issue 20).
#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let metrics = alkasba_runtime::metrics::init()?;
    let settings = Settings::from_env()?;
    let sdk = aws_config::load_from_env().await;
    let ingest = settings.build(&sdk).await?;
    tracing::info!(sources = ingest.catalog.sources.len(), "fetcher ready");
    let ingest = &ingest;
    alkasba_runtime::metrics::run(metrics, move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = deadline(event.context.deadline);
        let mut failures = BatchFailures::default();
        for message in event.payload.records {
            let body = message.body.as_deref().unwrap_or_default();
            let delivery = Delivery::from_receive_count(message.attributes.get("ApproximateReceiveCount").map(String::as_str));
            if ingest.handle_message(body, delivery, deadline).await == MessageOutcome::Retry {
                failures.retry(message.message_id.unwrap_or_default());
            }
        }
        Ok::<SqsBatchResponse, Error>(failures.into_response())
    })
    .await
}
