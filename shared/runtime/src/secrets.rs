//! Secrets by reference: Secrets Manager and SSM Parameter Store (SecureString), with `${stack}`
//! resolved, behind a small port with an in-memory fake for unit tests.

use std::collections::HashMap;
use std::future::Future;

use alkasba_sources::{SecretRef, SecretStore};
use serde_json::Value;

use crate::{Error, Result};

/// Reads secrets by reference.
pub trait SecretSource: Send + Sync {
    /// The secret's JSON.
    fn get(&self, r: &SecretRef) -> impl Future<Output = Result<Value>> + Send;
}

/// Secrets Manager and SSM Parameter Store (SecureString), `${stack}` resolved.
#[derive(Debug, Clone)]
pub struct AwsSecrets {
    sm: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
    stack: String,
}

impl AwsSecrets {
    pub fn new(config: &aws_config::SdkConfig, stack: impl Into<String>) -> Self {
        Self { sm: aws_sdk_secretsmanager::Client::new(config), ssm: aws_sdk_ssm::Client::new(config), stack: stack.into() }
    }

    /// A secret's raw string.
    pub async fn get_string(&self, r: &SecretRef) -> Result<String> {
        let name = r.resolved_name(&self.stack);
        let fail = |reason: String, retryable| Error::Secret { name: name.clone(), reason, retryable };
        match r.store {
            SecretStore::SecretsManager => {
                let out = self.sm.get_secret_value().secret_id(&name).send().await.map_err(|e| {
                    let retryable = !matches!(&e, aws_sdk_secretsmanager::error::SdkError::ServiceError(_));
                    fail(format!("{:?}", e.into_service_error()), retryable)
                })?;
                out.secret_string().map(str::to_string).ok_or_else(|| Error::Invalid { name: name.clone(), reason: "has no string value".into() })
            }
            SecretStore::Ssm => {
                let out = self.ssm.get_parameter().name(&name).with_decryption(true).send().await.map_err(|e| {
                    let retryable = !matches!(&e, aws_sdk_ssm::error::SdkError::ServiceError(_));
                    fail(format!("{:?}", e.into_service_error()), retryable)
                })?;
                out.parameter().and_then(|p| p.value()).map(str::to_string).ok_or_else(|| Error::Invalid { name: name.clone(), reason: "has no value".into() })
            }
        }
    }
}

impl SecretSource for AwsSecrets {
    async fn get(&self, r: &SecretRef) -> Result<Value> {
        let s = self.get_string(r).await?;
        serde_json::from_str(&s).map_err(|_| Error::Invalid { name: r.resolved_name(&self.stack), reason: "is not a JSON object".into() })
    }
}

/// Secrets from a map (unit tests), keyed by the unresolved name.
#[derive(Debug, Default)]
pub struct StaticSecrets(pub HashMap<String, Value>);

impl SecretSource for StaticSecrets {
    async fn get(&self, r: &SecretRef) -> Result<Value> {
        self.0.get(&r.name).cloned().ok_or_else(|| Error::Secret { name: r.name.clone(), reason: "is not set".into(), retryable: false })
    }
}
