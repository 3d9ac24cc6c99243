//! `erase` Lambda (SQS): wiring only. The logic is `alkasba_batch::erase`.
//!
//! Each message is one request, `{"email": "..."}` or `{"customer_id": 42}`, with an optional
//! `"request_id"` (default: the message id, so a redelivered message is audited once).

use alkasba_batch::erase::{self, Request};
use alkasba_batch::settings::Settings;
use alkasba_lake::StorageConfig;
use alkasba_pii::Tokenizer;
use alkasba_runtime::{AwsSecrets, BatchFailures, SecretSource};
use alkasba_sources::{SecretRef, SecretStore};
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let settings = Settings::from_env()?;
    let lake = settings.lake(StorageConfig::from_env()?)?;
    let sdk = aws_config::load_from_env().await;
    let stack = std::env::var("STACK_NAME").map_err(|_| "STACK_NAME is not set")?;
    let secret = std::env::var("TOKEN_KEY_SECRET").unwrap_or_else(|_| format!("{stack}/pii/token-key"));
    let key = AwsSecrets::new(&sdk, &stack).get(&SecretRef { store: SecretStore::SecretsManager, name: secret.clone() }).await?;
    let tokens = Tokenizer::new(key.get("key").and_then(Value::as_str).ok_or_else(|| format!("secret {secret} has no string \"key\""))?)?;
    tracing::info!(lake = %lake.root(), "erase ready");
    let (lake, tokens) = (&lake, &tokens);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let mut failures = BatchFailures::default();
        for m in event.payload.records {
            let id = m.message_id.clone().unwrap_or_default();
            let request = serde_json::from_str::<Request>(m.body.as_deref().unwrap_or_default()).map_err(|e| alkasba_batch::Error::Config(format!("message {id}: not an erasure request: {e}")));
            let outcome = match request {
                Ok(mut r) => {
                    r.request_id.get_or_insert_with(|| id.clone());
                    erase::erase(lake, tokens, &r).instrument(tracing::info_span!("erasure", message = %id)).await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(report) => tracing::info!(message = %id, outcome = report.outcome, keys_destroyed = report.keys_destroyed, tokens = report.tokens, "erasure done"),
                // Retried by SQS; after the queue's receive count it waits in the DLQ, where
                // `alkasba dlq` shows why.
                Err(e) => {
                    tracing::error!(message = %id, error = %e, retryable = e.is_retryable(), "erasure failed");
                    failures.retry(id);
                }
            }
        }
        Ok::<Value, Error>(serde_json::to_value(failures.into_response())?)
    }))
    .await
}
