//! The `webhook` function's logic: verify, validate, seal, enqueue: one queue send per delivery,
//! answered fast. Replays are made harmless downstream: `realtime` applies a payload once (its
//! state keeps the payloads of the last hour and the newest version of each record; see
//! [`crate::state::State::apply`]). Bad input is a 4xx naming the problem (a payload failing its
//! stream's validation is accepted and quarantined instead); only a down dependency is a 5xx
//! (503). WooCommerce does not retry a failed delivery and disables a webhook after more than
//! five failures in a row (`WC_Webhook::failed_delivery`; any answer but 2xx, 301 or 302 is
//! one), so a payload resent is accepted again (202), and the store's webhook creation ping is
//! answered 200.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use alkasba_pii::{KeyService, Sealer, Tokenizer};
use alkasba_records::record::Prepared;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::event::{StoreEvent, WIRE_VERSION, WireKey, stream_of};
use crate::signature::{Mode, SIGNATURE_HEADER, WOO_SIGNATURE_HEADER, verify};
use crate::{Error, Result};

/// Largest body accepted (WooCommerce orders are a few KB). Sealing grows personal fields by
/// about a third (nonce, tag, base64) and the message carries wrapped keys: this keeps every
/// accepted event under SQS's 256 KiB message limit.
pub const MAX_BODY_BYTES: usize = 160 * 1024;
/// A sealing session is renewed (one new KMS data key) after this many people, bounding memory.
const PERSONS_PER_SESSION: usize = 10_000;

/// Where accepted events go (SQS in Lambda).
pub trait EventQueue: Send + Sync {
    fn send(&self, body: String) -> impl Future<Output = Result<()>> + Send;
}

impl<T: EventQueue> EventQueue for Arc<T> {
    async fn send(&self, body: String) -> Result<()> {
        self.as_ref().send(body).await
    }
}

/// An HTTP request, as the Function URL delivers it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    /// From a Function URL / HTTP API (payload format 2.0) event; `None` when it is not one.
    pub fn from_http_event(event: &Value) -> Option<Self> {
        use base64::Engine;
        let method = event.pointer("/requestContext/http/method")?.as_str()?.to_string();
        let headers = event.get("headers").and_then(Value::as_object).map(|h| h.iter().filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_string()))).collect()).unwrap_or_default();
        let body = match event.get("body").and_then(Value::as_str) {
            None => Vec::new(),
            Some(b) if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => base64::engine::general_purpose::STANDARD.decode(b).ok()?,
            Some(b) => b.as_bytes().to_vec(),
        };
        Some(Self { method, headers, body })
    }
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// As a Function URL response.
    pub fn to_http_response(&self) -> Value {
        json!({ "statusCode": self.status, "headers": { "content-type": "application/json" }, "body": self.body.to_string() })
    }
}

/// WooCommerce's ping when a webhook is created (`WC_Webhook::deliver_ping`): a form body
/// `webhook_id=<id>`, no signature, no topic; it needs a 200. It carries nothing and changes
/// nothing, so it needs no signature. The webhook's id when `req` is one.
fn ping(req: &Request) -> Option<u64> {
    if req.headers.contains_key(WOO_SIGNATURE_HEADER) || req.headers.contains_key(SIGNATURE_HEADER) || req.headers.contains_key("x-wc-webhook-topic") {
        return None;
    }
    std::str::from_utf8(&req.body).ok()?.trim().strip_prefix("webhook_id=")?.parse().ok()
}

fn reply(status: u16, error: impl std::fmt::Display) -> Reply {
    Reply { status, body: json!({ "error": error.to_string() }) }
}

struct Session<K> {
    sealer: Sealer<K>,
    persons: usize,
    /// Keys made for deliveries that were then refused: carried by the next accepted event,
    /// since this session's sealer reuses them.
    unsent: Vec<WireKey>,
}

/// The webhook handler: built once per instance.
pub struct Webhook<Q, K> {
    secret: Vec<u8>,
    mode: Mode,
    tolerance_secs: i64,
    streams: HashMap<&'static str, Prepared>,
    tokens: Tokenizer,
    keys: Arc<K>,
    /// The KMS encryption context of the sessions' data keys.
    context: alkasba_pii::KmsContext,
    session: Mutex<Session<K>>,
    queue: Q,
}

impl<Q: EventQueue, K: KeyService> Webhook<Q, K> {
    /// A handler checking signatures made with `secret` as `mode` requires (timestamped ones at
    /// most `tolerance_secs` old).
    pub fn new(secret: &str, mode: Mode, tolerance_secs: i64, tokens: Tokenizer, keys: Arc<K>, queue: Q) -> Result<Self> {
        if secret.len() < 16 {
            return Err(Error::Config(format!("the webhook secret is {} bytes; at least 16 are needed", secret.len())));
        }
        let files = alkasba_sources::shipped()?;
        let mut streams = HashMap::new();
        for topic in ["order", "product", "customer", "competitor"] {
            let (source, stream) = stream_of(topic).ok_or_else(|| Error::Config(format!("no stream for topic {topic}")))?;
            let def = files
                .iter()
                .filter(|f| f.source.name == source)
                .flat_map(|f| f.streams.iter())
                .find(|s| s.name == stream)
                .ok_or_else(|| Error::Config(format!("the shipped sources have no stream {source}.{stream} (topic {topic})")))?;
            streams.insert(topic, Prepared::new(source, def));
        }
        // One data key per session seals every topic: its context names the store and the path.
        let (store, _) = stream_of("order").ok_or_else(|| Error::Config("no stream for topic order".into()))?;
        let context = alkasba_pii::kms_context(store, "webhook");
        let session = Session { sealer: Sealer::new(keys.clone(), context.clone()), persons: 0, unsent: Vec::new() };
        Ok(Self { secret: secret.as_bytes().to_vec(), mode, tolerance_secs, streams, tokens, keys, context, session: Mutex::new(session), queue })
    }

    /// Handles one delivery received at `now_ms` (unix milliseconds).
    pub async fn handle(&self, req: &Request, now_ms: i64) -> Reply {
        if !req.method.eq_ignore_ascii_case("POST") {
            return reply(405, format!("method {} not allowed: deliveries are POSTed", req.method));
        }
        if req.body.len() > MAX_BODY_BYTES {
            return reply(413, format!("body is {} bytes; at most {MAX_BODY_BYTES} are accepted", req.body.len()));
        }
        let header = |n: &str| req.headers.get(n).map(String::as_str);
        if let Some(id) = ping(req) {
            tracing::info!(webhook_id = id, "store webhook ping");
            return Reply { status: 200, body: json!({ "pong": id }) };
        }
        let now_s = now_ms.div_euclid(1000);
        let signed = match verify(self.mode, &self.secret, header(SIGNATURE_HEADER), header(WOO_SIGNATURE_HEADER), &req.body, now_s, self.tolerance_secs) {
            Ok(s) => s,
            Err(e) => return reply(401, e),
        };
        let Some(topic) = header("x-wc-webhook-topic") else { return reply(400, "missing X-WC-Webhook-Topic header") };
        let Some(stream) = topic.split_once('.').and_then(|(r, _)| self.streams.get(r)) else {
            return reply(400, format!("unknown topic {topic:?}: expected order.*, product.*, customer.* or competitor.*"));
        };
        let record: Value = match serde_json::from_slice(&req.body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return reply(400, "body is JSON but not an object"),
            Err(e) => return reply(400, format!("body is not valid JSON: {e}")),
        };
        let started = std::time::Instant::now();
        let mut session = self.session.lock().await;
        if session.persons >= PERSONS_PER_SESSION {
            // Keys of refused deliveries stay valid (wrapped under the old data key).
            let unsent = std::mem::take(&mut session.unsent);
            *session = Session { sealer: Sealer::new(self.keys.clone(), self.context.clone()), persons: 0, unsent };
        }
        let version = stream.version_of(&record).map(str::to_string);
        let protected = match stream.protect(record, &self.tokens, &mut session.sealer).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "sealing failed");
                return reply(503, format!("sealing failed: {e}"));
            }
        };
        let new_keys: Vec<WireKey> = session.sealer.take_new_keys().iter().map(WireKey::from).collect();
        session.persons += new_keys.len();
        session.unsent.extend(new_keys);
        // WooCommerce's delivery id is a hash of the webhook id and the second it was sent: shared
        // by the deliveries of one second, new on a resend. The payload's id names the delivery.
        let store_delivery = header("x-wc-webhook-delivery-id").map(str::trim).unwrap_or("-");
        let delivery_id = signed.payload_id.clone();
        let event = StoreEvent {
            v: WIRE_VERSION,
            delivery_id: delivery_id.clone(),
            topic: topic.to_string(),
            signed_at: signed.t.unwrap_or(now_s),
            received_at_ms: now_ms,
            key: protected.key,
            record: protected.record,
            tokens: protected.tokens,
            keys: session.unsent.clone(),
            invalid: protected.reasons,
            version,
        };
        let sealed_us = started.elapsed().as_micros() as u64;
        let invalid = event.invalid.clone();
        let body = match serde_json::to_string(&event) {
            Ok(b) => b,
            Err(e) => return reply(500, format!("encoding the event: {e}")),
        };
        if let Err(e) = self.queue.send(body).await {
            tracing::error!(error = %e, delivery = %delivery_id, "enqueue failed");
            return reply(503, "queue unavailable; retry later");
        }
        session.unsent.clear();
        let sent_us = started.elapsed().as_micros() as u64;
        tracing::info!(delivery = %delivery_id, store_delivery, topic, sealed_us, send_us = sent_us - sealed_us, quarantined = !invalid.is_empty(), "accepted");
        if invalid.is_empty() {
            Reply { status: 202, body: json!({ "accepted": delivery_id }) }
        } else {
            // Named without values; the payload, sealed, goes to the quarantine table.
            Reply { status: 202, body: json!({ "accepted": delivery_id, "quarantined": { "stream": stream.id, "reasons": invalid } }) }
        }
    }
}
