//! The store event as it travels on the queue: validated, tokenised and sealed by the webhook,
//! with the wrapped person keys it was sealed under (ciphertext only: the realtime function
//! commits them to the keyring before anything sealed under them reaches the lake).

use std::collections::BTreeMap;

use alkasba_pii::KeyringRow;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Wire format version; a message of another version is refused (DLQ), never guessed at.
pub const WIRE_VERSION: u32 = 1;

/// The stream that validates a topic's payload (ingestion's definitions), by topic prefix.
pub fn stream_of(topic: &str) -> Option<(&'static str, &'static str)> {
    match topic.split_once('.').map(|(r, _)| r).unwrap_or(topic) {
        "order" => Some(("alkasba_store", "orders")),
        "product" => Some(("alkasba_store", "products")),
        "customer" => Some(("alkasba_store", "customers")),
        "competitor" => Some(("competitor_prices", "prices")),
        _ => None,
    }
}

/// One delivery, accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreEvent {
    /// [`WIRE_VERSION`].
    pub v: u32,
    /// The payload's id: hex HMAC-SHA256 of the body under the webhook secret (what the
    /// signature proves). WooCommerce's own `X-WC-Webhook-Delivery-ID` cannot name an event: it
    /// is shared by the deliveries of one second and new on a resend.
    pub delivery_id: String,
    /// `order.created`, `product.updated`, `competitor.price_changed`, ...
    pub topic: String,
    /// The timestamped signature's time (unix seconds); the receiving second when the delivery
    /// carries none (WooCommerce's).
    pub signed_at: i64,
    /// When the webhook accepted it (unix milliseconds): event time for the windows.
    pub received_at_ms: i64,
    /// The payload's primary key.
    pub key: Option<String>,
    /// The payload, personal fields sealed.
    pub record: Value,
    /// Tokens of the stream (`email_token`, `phone_token`).
    pub tokens: BTreeMap<String, Option<String>>,
    /// Person keys created for this payload (wrapped).
    pub keys: Vec<WireKey>,
    /// Why the payload failed its stream's validation (empty: it passed). An invalid payload is
    /// accepted all the same (WooCommerce disables a webhook that keeps failing) and goes to
    /// the quarantine table, never to the windows or the events table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<String>,
    /// The record's version (its stream's version or cursor field, a modification time), when
    /// it has one: a delivery older than the version already applied changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl StoreEvent {
    /// The number the dedupe set keeps: the delivery id when it is a number, else the first 8
    /// bytes of its SHA-256.
    pub fn dedupe_id(&self) -> u64 {
        self.delivery_id.parse::<u64>().unwrap_or_else(|_| {
            use sha2::Digest;
            let d = sha2::Sha256::digest(self.delivery_id.as_bytes());
            u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
        })
    }

    /// What a version is held under: the topic's resource and the record's key
    /// (`order:4127`); `None` without a key or a version.
    pub fn version_slot(&self) -> Option<String> {
        let resource = self.topic.split('.').next().unwrap_or(&self.topic);
        self.version.as_ref().and(self.key.as_ref()).map(|k| format!("{resource}:{k}"))
    }

    /// The record's own time (unix seconds) when its version is a timestamp (WooCommerce's
    /// `date_modified_gmt`, naive UTC, or RFC 3339); `None` otherwise.
    pub fn record_time(&self) -> Option<i64> {
        let v = self.version.as_deref()?.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(v) {
            return Some(t.timestamp());
        }
        chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc().timestamp())
    }

    /// Event time in seconds.
    pub fn at(&self) -> i64 {
        self.received_at_ms.div_euclid(1000)
    }
}

/// A keyring row on the wire (binary fields base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireKey {
    pub subject: String,
    pub key_id: String,
    pub wrapped_key: String,
    pub kms_blob: String,
    /// The data key's KMS encryption context.
    #[serde(default)]
    pub kms_context: alkasba_pii::KmsContext,
    pub created_at: DateTime<Utc>,
}

impl From<&KeyringRow> for WireKey {
    fn from(r: &KeyringRow) -> Self {
        Self {
            subject: r.subject.clone(),
            key_id: r.key_id.clone(),
            wrapped_key: B64.encode(&r.wrapped_key),
            kms_blob: B64.encode(&r.kms_blob),
            kms_context: (*r.kms_context).clone(),
            created_at: r.created_at,
        }
    }
}

impl WireKey {
    /// Back to a keyring row; `None` when the base64 is damaged.
    pub fn to_row(&self) -> Option<KeyringRow> {
        Some(KeyringRow {
            subject: self.subject.clone(),
            key_id: self.key_id.clone(),
            wrapped_key: B64.decode(&self.wrapped_key).ok()?,
            kms_blob: B64.decode(&self.kms_blob).ok()?,
            kms_context: std::sync::Arc::new(self.kms_context.clone()),
            created_at: self.created_at,
        })
    }
}

/// Parses a queue message body.
pub fn parse(id: &str, body: &str) -> crate::Result<StoreEvent> {
    let e: StoreEvent = serde_json::from_str(body).map_err(|e| crate::Error::BadMessage { id: id.to_string(), reason: format!("not a store event: {e}") })?;
    if e.v != WIRE_VERSION {
        return Err(crate::Error::BadMessage { id: id.to_string(), reason: format!("wire version {} (this function reads {WIRE_VERSION})", e.v) });
    }
    Ok(e)
}
