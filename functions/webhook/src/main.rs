//! `webhook` Lambda (Function URL): wiring only. The logic is `alkasba_realtime::webhook`.

use std::sync::Arc;

use alkasba_pii::{KmsClient, KmsKeys, Tokenizer};
use alkasba_realtime::aws::SqsEvents;
use alkasba_realtime::settings::Settings;
use alkasba_realtime::webhook::{Request, Webhook};
use alkasba_runtime::{AwsSecrets, SecretSource};
use alkasba_sources::{SecretRef, SecretStore};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let settings = Settings::from_env()?;
    let sdk = aws_config::load_from_env().await;
    let secrets = AwsSecrets::new(&sdk, &settings.stack);
    let field = |v: &Value, k: &str, name: &str| v.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("secret {name} has no string {k:?}"));
    let secret_ref = |name: &str| SecretRef { store: SecretStore::SecretsManager, name: name.to_string() };
    let (hook_ref, token_ref) = (secret_ref(&settings.webhook_secret), secret_ref(&settings.token_key_secret));
    // Both secrets in one round trip (cold start).
    let (hook_secret, token_key) = tokio::try_join!(secrets.get(&hook_ref), secrets.get(&token_ref))?;
    let hook_secret = field(&hook_secret, "secret", &settings.webhook_secret)?;
    let tokens = Tokenizer::new(&field(&token_key, "key", &settings.token_key_secret)?)?;
    let keys = Arc::new(KmsKeys::new(KmsClient::new(&sdk), settings.need(&settings.pii_key_id, "PII_KEY_ID")?));
    let queue = SqsEvents::new(&sdk, settings.need(&settings.queue_url, "STORE_EVENTS_QUEUE_URL")?);
    let hook = Webhook::new(&hook_secret, settings.signature_mode, settings.tolerance_secs, tokens, keys, queue)?;
    tracing::info!("webhook ready");
    let hook = &hook;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let reply = match Request::from_http_event(&event.payload) {
            Some(req) => hook.handle(&req, chrono::Utc::now().timestamp_millis()).await,
            None => alkasba_realtime::webhook::Reply { status: 400, body: serde_json::json!({"error": "not a Function URL (payload format 2.0) request"}) },
        };
        Ok::<Value, Error>(reply.to_http_response())
    }))
    .await
}
