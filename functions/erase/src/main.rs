//! `erase` Lambda (SQS): wiring only. The logic is `alkasba_batch::erase`.
//!
//! Each message is one request, `{"customer_id": 42}` or `{"email_kms": "<base64>"}` (the email
//! encrypted under the lake key with the context `purpose=erasure-request`: no email crosses the
//! queue in plaintext; `alkasba pii erase --queue` sends it), with an optional `"request_id"`
//! (default: the message id, so a redelivered message is audited once).

use alkasba_batch::erase::{self, QueuedRequest};
use alkasba_batch::settings::Settings;
use alkasba_lake::StorageConfig;
use alkasba_pii::{KmsClient, KmsKeys, Tokenizer};
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
    let lake_key = std::env::var("LAKE_KEY_ID").map_err(|_| "LAKE_KEY_ID is not set (the key queued emails are encrypted under)")?;
    let keys = KmsKeys::new(KmsClient::new(&sdk), lake_key);
    tracing::info!(lake = %lake.root(), "erase ready");
    let (lake, tokens, keys) = (&lake, &tokens, &keys);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let mut failures = BatchFailures::default();
        for m in event.payload.records {
            let id = m.message_id.clone().unwrap_or_default();
            let queued = serde_json::from_str::<QueuedRequest>(m.body.as_deref().unwrap_or_default())
                .map_err(|e| alkasba_batch::Error::Config(format!("message {id}: not an erasure request ({{\"customer_id\"}} or {{\"email_kms\"}}): {e}")));
            let outcome = match queued {
                Ok(q) => match q.open(keys).await {
                    Ok(mut r) => {
                        r.request_id.get_or_insert_with(|| id.clone());
                        erase::erase(lake, tokens, &r).instrument(tracing::info_span!("erasure", message = %id)).await
                    }
                    Err(e) => Err(e),
                },
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
