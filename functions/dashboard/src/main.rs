//! `dashboard` Lambda (Function URL): wiring only. The logic is `alkasba_dashboard`.

use std::sync::Arc;

use alkasba_dashboard::auth::Access;
use alkasba_dashboard::engine::Engine;
use alkasba_dashboard::http::{AccessSource, Dashboard, Request};
use alkasba_lake::{Lake, StorageConfig};
use alkasba_runtime::{AwsSecrets, SecretSource};
use alkasba_sources::{SecretRef, SecretStore};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// The access secret in Secrets Manager.
struct SecretAccess {
    secrets: AwsSecrets,
    name: SecretRef,
}

impl AccessSource for SecretAccess {
    async fn load(&self) -> alkasba_dashboard::Result<Access> {
        let v = self.secrets.get(&self.name).await.map_err(|e| alkasba_dashboard::Error::Config(format!("dashboard access secret {}: {e}", self.name.name)))?;
        Access::parse(&v.to_string())
    }
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let root = env("LAKE_ROOT")?;
    let stack = env("STACK_NAME")?;
    let secret = std::env::var("DASHBOARD_ACCESS_SECRET").unwrap_or_else(|_| "${stack}/dashboard/access".into());
    let sdk = aws_config::load_from_env().await;
    let lake = Arc::new(Lake::new(&root, StorageConfig::from_env()?)?);
    let store = lake.object_store()?;
    let access = SecretAccess { secrets: AwsSecrets::new(&sdk, &stack), name: SecretRef { store: SecretStore::SecretsManager, name: secret } };
    // A wrong or missing secret fails the cold start, not the first sign-in.
    access.load().await?;
    let dashboard = Dashboard::new(Engine::new(lake), store, access);
    tracing::info!("dashboard ready");
    let dashboard = &dashboard;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let response = match Request::from_function_url(&event.payload) {
            Some(req) => dashboard.handle(&req, chrono::Utc::now().timestamp()).await.to_function_url(),
            None => json!({"statusCode": 400, "headers": {"content-type": "application/json"}, "body": json!({"error": "not a Function URL (payload format 2.0) request"}).to_string()}),
        };
        Ok::<Value, Error>(response)
    }))
    .await
}
