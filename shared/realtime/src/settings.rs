//! Every option of the webhook and realtime functions: variable, default, meaning, in one place.

use std::path::PathBuf;

use alkasba_lake::options::Options;

use crate::{Error, Result};

/// (variable, default, meaning).
pub const OPTIONS: &[(&str, &str, &str)] = &[
    ("LAKE_ROOT", "", "Root of the lake: s3://<bucket> (required)."),
    ("STACK_NAME", "", "The stack; secret names are resolved under it (required)."),
    ("STORE_EVENTS_QUEUE_URL", "", "webhook: the queue accepted events go to (required by webhook)."),
    ("WEBHOOK_SECRET_NAME", "${stack}/store/webhook-secret", "webhook: Secrets Manager secret with the store's HMAC key under \"secret\"."),
    (
        "SIGNATURE_MODE",
        "woocommerce",
        "webhook: which signature a delivery must carry: woocommerce (X-WC-Webhook-Signature, what WooCommerce sends) or timestamped (X-Alkasba-Signature, for senders that sign a time).",
    ),
    ("SIGNATURE_TOLERANCE_SECS", "300", "webhook: deliveries whose timestamped signature is older (or further ahead) than this are refused."),
    ("TOKEN_KEY_SECRET", "${stack}/pii/token-key", "webhook: Secrets Manager secret with the token HMAC key under \"key\"."),
    ("PII_KEY_ID", "", "webhook: KMS key that wraps the data keys sealing personal fields (required by webhook)."),
    ("ALERTS_TOPIC_ARN", "", "realtime: SNS topic alerts are published to (required by realtime)."),
    ("ALERT_RULES_FILE", "(the shipped config/alerts.toml)", "realtime: alert rules file."),
    ("FLUSH_EVENTS", "50000", "realtime: the scheduled tick (every minute) writes pending events to the lake; a batch writes them itself only once this many are waiting..."),
    ("FLUSH_SECS", "120", "realtime: ... or once the oldest has waited this long (the tick is late or missing)."),
    ("FLUSH_CHUNK_EVENTS", "5000", "realtime: at most this many events per lake write (one commit per table); a bigger backlog is written in several."),
];

/// The options, typed.
#[derive(Debug, Clone)]
pub struct Settings {
    pub lake_root: String,
    pub stack: String,
    pub queue_url: Option<String>,
    pub webhook_secret: String,
    pub tolerance_secs: i64,
    pub signature_mode: crate::signature::Mode,
    pub token_key_secret: String,
    pub pii_key_id: Option<String>,
    pub alerts_topic_arn: Option<String>,
    pub rules_file: Option<PathBuf>,
    pub flush: crate::engine::FlushPolicy,
}

impl Settings {
    /// From the environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let o = Options::new(lookup, OPTIONS);
        let get = |k: &str| o.get(k);
        let number = |k: &str, default: u64, range: std::ops::RangeInclusive<u64>| o.number(k, default, range).map_err(Error::Config);
        let stack = o.required("STACK_NAME").map_err(Error::Config)?;
        let lake_root = o.lake_root().map_err(Error::Config)?;
        let tolerance_secs = number("SIGNATURE_TOLERANCE_SECS", 300, 1..=3600)? as i64;
        let mode = get("SIGNATURE_MODE").unwrap_or_else(|| "woocommerce".into());
        let signature_mode = crate::signature::Mode::parse(&mode)
            .ok_or_else(|| Error::Config(format!("SIGNATURE_MODE is {mode:?}: expected woocommerce or timestamped ({})", alkasba_lake::options::doc(OPTIONS, "SIGNATURE_MODE"))))?;
        let default = crate::engine::FlushPolicy::default();
        let flush = crate::engine::FlushPolicy {
            min_events: number("FLUSH_EVENTS", default.min_events as u64, 1..=100_000)? as usize,
            max_age_ms: number("FLUSH_SECS", (default.max_age_ms / 1000) as u64, 0..=3600)? as i64 * 1000,
            chunk_events: number("FLUSH_CHUNK_EVENTS", default.chunk_events as u64, 1..=100_000)? as usize,
        };
        let named = |k: &str, default: &str| get(k).unwrap_or_else(|| default.to_string()).replace("${stack}", &stack);
        Ok(Self {
            queue_url: get("STORE_EVENTS_QUEUE_URL"),
            webhook_secret: named("WEBHOOK_SECRET_NAME", "${stack}/store/webhook-secret"),
            token_key_secret: named("TOKEN_KEY_SECRET", "${stack}/pii/token-key"),
            pii_key_id: get("PII_KEY_ID"),
            alerts_topic_arn: get("ALERTS_TOPIC_ARN"),
            rules_file: get("ALERT_RULES_FILE").map(PathBuf::from),
            flush,
            tolerance_secs,
            signature_mode,
            lake_root,
            stack,
        })
    }

    /// A required option of one function.
    pub fn need<'a>(&self, value: &'a Option<String>, name: &str) -> Result<&'a str> {
        value.as_deref().ok_or_else(|| Error::Config(format!("environment variable {name} is not set: {}", alkasba_lake::options::doc(OPTIONS, name))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_wrong_values_are_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let e = Settings::from_lookup(env(&[("STACK_NAME", "s")])).unwrap_err().to_string();
        assert!(e.contains("LAKE_ROOT"), "{e}");
        let e = Settings::from_lookup(env(&[("STACK_NAME", "s"), ("LAKE_ROOT", "s3://b"), ("SIGNATURE_TOLERANCE_SECS", "soon")])).unwrap_err().to_string();
        assert!(e.contains("SIGNATURE_TOLERANCE_SECS") && e.contains("soon"), "{e}");
        let s = Settings::from_lookup(env(&[("STACK_NAME", "s"), ("LAKE_ROOT", "s3://b")])).unwrap();
        assert_eq!(s.webhook_secret, "s/store/webhook-secret");
        assert_eq!(s.signature_mode, crate::signature::Mode::Woocommerce, "WooCommerce's own signature by default");
        let e = Settings::from_lookup(env(&[("STACK_NAME", "s"), ("LAKE_ROOT", "s3://b"), ("SIGNATURE_MODE", "none")])).unwrap_err().to_string();
        assert!(e.contains("SIGNATURE_MODE") && e.contains("none") && e.contains("timestamped"), "{e}");
        let e = s.need(&s.alerts_topic_arn, "ALERTS_TOPIC_ARN").unwrap_err().to_string();
        assert!(e.contains("ALERTS_TOPIC_ARN"), "{e}");
    }
}
