use std::collections::HashMap;

use crate::{Error, Result};

/// How the lake's object store is reached. Read once from the environment at start-up; on AWS
/// only the region is set, locally the LocalStack endpoint too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// S3 endpoint override (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`), e.g.
    /// `http://127.0.0.1:4566` for LocalStack. `None` on AWS.
    pub endpoint_url: Option<String>,
    /// Region of the lake bucket (`AWS_REGION`, else `AWS_DEFAULT_REGION`).
    pub region: String,
}

impl StorageConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let region = lookup("AWS_REGION")
            .or_else(|| lookup("AWS_DEFAULT_REGION"))
            .filter(|r| !r.trim().is_empty())
            .ok_or(Error::MissingEnv { name: "AWS_REGION", hint: "set it to the lake bucket's region (Lambda sets it for you)" })?;
        let endpoint_url = lookup("AWS_ENDPOINT_URL_S3").or_else(|| lookup("AWS_ENDPOINT_URL")).filter(|e| !e.trim().is_empty());
        if let Some(endpoint) = &endpoint_url {
            let parsed = url::Url::parse(endpoint).map_err(|e| Error::InvalidEnv { name: "AWS_ENDPOINT_URL", value: endpoint.clone(), reason: e.to_string() })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(Error::InvalidEnv { name: "AWS_ENDPOINT_URL", value: endpoint.clone(), reason: "scheme must be http or https".into() });
            }
        }
        Ok(Self { endpoint_url, region })
    }

    /// The deltalake storage options for this configuration. Credentials are not included:
    /// deltalake takes them from the standard AWS chain (Lambda's role, or the environment).
    pub fn storage_options(&self) -> HashMap<String, String> {
        let mut opts = HashMap::from([("AWS_REGION".to_string(), self.region.clone())]);
        if let Some(endpoint) = &self.endpoint_url {
            opts.insert("AWS_ENDPOINT_URL".into(), endpoint.clone());
            if endpoint.starts_with("http://") {
                opts.insert("AWS_ALLOW_HTTP".into(), "true".into());
            }
        }
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn localstack_endpoint_allows_http() {
        let cfg = StorageConfig::from_lookup(lookup(&[("AWS_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")])).unwrap();
        let opts = cfg.storage_options();
        assert_eq!(opts["AWS_ALLOW_HTTP"], "true");
        assert_eq!(opts["AWS_ENDPOINT_URL"], "http://127.0.0.1:4566");
    }

    #[test]
    fn s3_specific_endpoint_wins_and_aws_has_no_http() {
        let cfg = StorageConfig::from_lookup(lookup(&[("AWS_DEFAULT_REGION", "eu-west-3"), ("AWS_ENDPOINT_URL", "http://other:1"), ("AWS_ENDPOINT_URL_S3", "https://s3.example")])).unwrap();
        assert_eq!(cfg.region, "eu-west-3");
        assert_eq!(cfg.endpoint_url.as_deref(), Some("https://s3.example"));
        assert!(!cfg.storage_options().contains_key("AWS_ALLOW_HTTP"));
    }

    #[test]
    fn missing_region_is_named() {
        let err = StorageConfig::from_lookup(lookup(&[])).unwrap_err();
        assert!(err.to_string().contains("AWS_REGION"), "{err}");
    }

    #[test]
    fn bad_endpoint_is_named() {
        let err = StorageConfig::from_lookup(lookup(&[("AWS_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", "ftp://x")])).unwrap_err();
        assert!(err.to_string().contains("AWS_ENDPOINT_URL"), "{err}");
    }
}
