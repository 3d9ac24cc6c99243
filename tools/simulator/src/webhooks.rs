//! The store's real-time channel: order, stock and price events delivered as signed webhooks,
//! at a configured rate, with scripted incidents.
//!
//! As WooCommerce delivers them (`WC_Webhook::deliver`, read in woocommerce/woocommerce): a POST
//! of the resource's REST representation with `X-WC-Webhook-Source`, `-Topic`, `-Resource`,
//! `-Event`, `-Signature` (base64 HMAC-SHA256 of the body with the webhook secret, no timestamp),
//! `-ID` and `-Delivery-ID` (a hash of the webhook id and the current second: deliveries of the
//! same second share it). One attempt each, 60 s timeout, no redirects and no retry: a delivery
//! that fails is lost, as on a real store. A run starts with the creation ping
//! (`webhook_id=<id>`, unsigned), whose answer the log keeps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Semaphore, watch};

use crate::api::AppState;
use crate::store::Resource;

type HmacSha256 = Hmac<Sha256>;

/// WooCommerce's signature: base64(HMAC-SHA256(secret, body)).
pub fn woo_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The webhook's id (as a store's first webhook).
const WEBHOOK_ID: u64 = 1;

/// WooCommerce's delivery id: `wp_hash(webhook id . unix second)`, 32 hex digits (WordPress's
/// `wp_hash` is an HMAC-MD5 under a site salt; any keyed hash has the property that matters:
/// equal for the same second, new every second).
pub fn delivery_id(salt: &str, second: i64) -> String {
    let mut mac = HmacSha256::new_from_slice(salt.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(format!("{WEBHOOK_ID}{second}").as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// Scripted incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// New orders fall to 15% of the baseline for the incident's duration.
    SalesDrop,
    /// New orders run at 5x the baseline for the incident's duration.
    OrderSpike,
    /// The best-selling product's stock drops to zero.
    Stockout,
    /// A competitor prices the best seller 25% under ours.
    CompetitorUndercut,
    /// One new customer places 12 orders at once.
    SuspiciousBurst,
    /// 40% of new orders fail payment for the incident's duration.
    PaymentFailures,
}

/// One incident in a script.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    /// Seconds after the start.
    pub at_secs: f64,
    pub kind: IncidentKind,
    /// How long rate incidents last (default 60 s).
    #[serde(default)]
    pub duration_secs: Option<f64>,
}

/// `POST /_sim/webhooks/start` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// Where deliveries are POSTed.
    pub url: String,
    /// Baseline events per second.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Stop after this many seconds (default: until stopped).
    #[serde(default)]
    pub duration_secs: Option<f64>,
    /// Stop after this many events.
    #[serde(default)]
    pub max_events: Option<u64>,
    /// Scripted incidents.
    #[serde(default)]
    pub incidents: Vec<Incident>,
    /// Deliveries in flight at most.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}
fn default_rate() -> f64 {
    10.0
}
fn default_concurrency() -> usize {
    32
}

/// One delivery, as the simulator saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// `X-WC-Webhook-Delivery-ID` (not unique: see [`delivery_id`]).
    pub delivery_id: String,
    /// The order the simulator sent it in (1, 2, ...): unique.
    pub seq: u64,
    pub topic: String,
    pub resource_id: Value,
    /// `X-WC-Webhook-Signature` as sent.
    pub signature: String,
    /// The incident that caused this event, if any: the ground truth for alert tests.
    pub incident: Option<IncidentKind>,
    /// HTTP status (None: never answered: the delivery is lost).
    pub status: Option<u16>,
    pub sent_at: i64,
}

#[derive(Default)]
pub struct Webhooks {
    run: Mutex<Option<watch::Sender<bool>>>,
    log: Arc<Mutex<Vec<Delivery>>>,
    /// The answer to the last run's creation ping (None: not answered).
    ping: Arc<Mutex<Option<u16>>>,
    next_id: Arc<AtomicU64>,
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/_sim/webhooks/start", post(start)).route("/_sim/webhooks/stop", post(stop)).route("/_sim/webhooks/log", get(log))
}

async fn start(State(st): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let req: StartRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("webhooks/start: {e}")).into_response(),
    };
    if !(req.rate > 0.0 && req.rate <= 20_000.0) || req.concurrency == 0 || reqwest::Url::parse(&req.url).is_err() {
        return (StatusCode::BAD_REQUEST, "webhooks/start: rate must be in (0, 20000], concurrency > 0, url a URL").into_response();
    }
    let mut run = st.webhooks.run.lock().unwrap_or_else(|e| e.into_inner());
    if run.as_ref().is_some_and(|tx| !tx.is_closed() && !*tx.borrow()) {
        return (StatusCode::CONFLICT, "webhooks already running; POST /_sim/webhooks/stop first").into_response();
    }
    let (tx, rx) = watch::channel(false);
    *run = Some(tx);
    tokio::spawn(drive(st.clone(), req, rx));
    (StatusCode::ACCEPTED, axum::Json(json!({"started": true}))).into_response()
}

async fn stop(State(st): State<Arc<AppState>>) -> Response {
    if let Some(tx) = st.webhooks.run.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let _ = tx.send(true);
    }
    axum::Json(json!({"stopped": true})).into_response()
}

async fn log(State(st): State<Arc<AppState>>) -> Response {
    let log = st.webhooks.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // WooCommerce counts 2xx, 301 and 302 as delivered (`WC_Webhook::log_delivery`).
    let delivered = log.iter().filter(|d| d.status.is_some_and(|s| (200..303).contains(&s))).count();
    let running = st.webhooks.run.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|tx| !tx.is_closed() && !*tx.borrow());
    let ping = *st.webhooks.ping.lock().unwrap_or_else(|e| e.into_inner());
    axum::Json(json!({"running": running, "ping_status": ping, "sent": log.len(), "delivered": delivered, "deliveries": log})).into_response()
}

struct Outgoing {
    topic: String,
    resource_id: Value,
    body: Vec<u8>,
    incident: Option<IncidentKind>,
}

fn event(st: &AppState, topic: &str, resource: Resource, id: u32, incident: Option<IncidentKind>) -> Outgoing {
    let body = st.store().render(resource, id);
    Outgoing { topic: topic.into(), resource_id: body.get("id").cloned().unwrap_or(Value::Null), body: serde_json::to_vec(&body).unwrap_or_default(), incident }
}

/// Produces the events due now, applying them to the store first.
fn produce(st: &AppState, rng: &mut rand_chacha::ChaCha8Rng, now: i64, incident: Option<IncidentKind>, fail_payments: bool) -> Vec<Outgoing> {
    if rng.random_bool(0.7) {
        let change = st.store_mut().new_order(now, rng, None);
        if fail_payments && rng.random_bool(0.4) {
            st.store_mut().set_order_status(change.id, crate::data::ST_FAILED, now);
            return vec![event(st, "order.updated", Resource::Orders, change.id, Some(IncidentKind::PaymentFailures))];
        }
        return vec![event(st, "order.created", Resource::Orders, change.id, incident)];
    }
    let changes = st.store_mut().mutate(1, Some(now));
    changes
        .into_iter()
        .map(|c| {
            let res = match c.topic.split('.').next() {
                Some("product") => Resource::Products,
                Some("customer") => Resource::Customers,
                _ => Resource::Orders,
            };
            event(st, c.topic, res, c.id, None)
        })
        .collect()
}

fn one_shot(st: &AppState, kind: IncidentKind, now: i64, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<Outgoing> {
    match kind {
        IncidentKind::Stockout => {
            let id = st.store_mut().set_stock(0, 0, now);
            vec![event(st, "product.updated", Resource::Products, id, Some(kind))]
        }
        IncidentKind::CompetitorUndercut => {
            let store = st.store();
            let p = &store.products[0];
            let price = p.sale_mad.unwrap_or(p.price_mad) * 75 / 100;
            let body = json!({
                "competitor": crate::feeds::COMPETITORS[0], "sku": format!("ALK-{:05}", p.id), "product_id": p.id,
                "price": format!("{}.{:02}", price / 100, price % 100), "currency": "MAD",
                "observed_at": chrono::DateTime::from_timestamp(now, 0).map(|t| t.to_rfc3339()),
            });
            vec![Outgoing { topic: "competitor.price_changed".into(), resource_id: json!(p.id), body: serde_json::to_vec(&body).unwrap_or_default(), incident: Some(kind) }]
        }
        IncidentKind::SuspiciousBurst => {
            let cid = st.store_mut().new_customer(now);
            (0..12)
                .map(|_| {
                    let change = st.store_mut().new_order(now, rng, Some(cid));
                    event(st, "order.created", Resource::Orders, change.id, Some(kind))
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

async fn drive(st: Arc<AppState>, req: StartRequest, mut stop: watch::Receiver<bool>) {
    // WooCommerce's delivery arguments: 60 s timeout, no redirects.
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(60)).redirect(reqwest::redirect::Policy::none()).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client");
            return;
        }
    };
    let ping = client
        .post(&req.url)
        .header("user-agent", USER_AGENT)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("webhook_id={WEBHOOK_ID}"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16());
    *st.webhooks.ping.lock().unwrap_or_else(|e| e.into_inner()) = ping;
    tracing::info!(status = ?ping, "webhook creation ping");
    let secret = st.credentials.webhook_secret.clone();
    let permits = Arc::new(Semaphore::new(req.concurrency));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(st.store().shape.seed ^ 0x3EB0);
    let started = Instant::now();
    let mut fired = vec![false; req.incidents.len()];
    let mut budget = 0.0f64;
    let mut produced: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    tracing::info!(url = %req.url, rate = req.rate, "webhooks started");
    'run: loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        let elapsed = started.elapsed().as_secs_f64();
        // At the end, the incidents scheduled within the run still go out (when deliveries lag
        // behind the schedule, the last loop turn can come long after their time).
        let finishing = req.duration_secs.is_some_and(|d| elapsed >= d);
        let now = chrono::Utc::now().timestamp();
        let active = |k: IncidentKind| req.incidents.iter().any(|i| i.kind == k && elapsed >= i.at_secs && elapsed < i.at_secs + i.duration_secs.unwrap_or(60.0));
        let mut due: Vec<Outgoing> = Vec::new();
        for (i, inc) in req.incidents.iter().enumerate() {
            if !fired[i] && elapsed >= inc.at_secs && req.duration_secs.is_none_or(|d| inc.at_secs < d) {
                fired[i] = true;
                tracing::info!(kind = ?inc.kind, "incident");
                due.extend(one_shot(&st, inc.kind, now, &mut rng));
            }
        }
        let multiplier = if active(IncidentKind::OrderSpike) {
            5.0
        } else if active(IncidentKind::SalesDrop) {
            0.15
        } else {
            1.0
        };
        let incident = if active(IncidentKind::OrderSpike) {
            Some(IncidentKind::OrderSpike)
        } else if active(IncidentKind::SalesDrop) {
            Some(IncidentKind::SalesDrop)
        } else {
            None
        };
        budget += if finishing { 0.0 } else { req.rate * multiplier * last.elapsed().as_secs_f64() };
        last = Instant::now();
        while budget >= 1.0 {
            budget -= 1.0;
            due.extend(produce(&st, &mut rng, now, incident, active(IncidentKind::PaymentFailures)));
        }
        for out in due {
            if req.max_events.is_some_and(|m| produced >= m) {
                break 'run;
            }
            produced += 1;
            let Ok(permit) = permits.clone().acquire_owned().await else { break 'run };
            let (client, url, secret, log) = (client.clone(), req.url.clone(), secret.clone(), st.webhooks.log.clone());
            let seq = st.webhooks.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            tokio::spawn(async move {
                let _permit = permit;
                let d = deliver(&client, &url, &secret, seq, out).await;
                log.lock().unwrap_or_else(|e| e.into_inner()).push(d);
            });
        }
        if finishing {
            break;
        }
    }
    // Wait for deliveries in flight, so the log is complete when `running` turns false.
    let _ = permits.acquire_many(req.concurrency as u32).await;
    if let Some(tx) = st.webhooks.run.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let _ = tx.send(true);
    }
    tracing::info!(events = produced, "webhooks stopped");
}

/// WooCommerce's user agent.
const USER_AGENT: &str = "WooCommerce/9.4.0 Hookshot (WordPress/6.7)";

async fn deliver(client: &reqwest::Client, url: &str, secret: &str, seq: u64, out: Outgoing) -> Delivery {
    let (resource, action) = out.topic.split_once('.').unwrap_or((&out.topic, ""));
    let sent_at = chrono::Utc::now().timestamp();
    // The site salt of `wp_hash`: any per-store secret.
    let id = delivery_id(secret, sent_at);
    let signature = woo_signature(secret, &out.body);
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", USER_AGENT)
        .header("x-wc-webhook-source", "https://store.alkasba.example/")
        .header("x-wc-webhook-topic", &out.topic)
        .header("x-wc-webhook-resource", resource)
        .header("x-wc-webhook-event", action)
        .header("x-wc-webhook-signature", &signature)
        .header("x-wc-webhook-id", WEBHOOK_ID.to_string())
        .header("x-wc-webhook-delivery-id", &id)
        .body(out.body)
        .send()
        .await;
    let status = match r {
        Ok(resp) => Some(resp.status().as_u16()),
        Err(e) => {
            tracing::warn!(error = %e, seq, "webhook delivery failed: lost (WooCommerce does not retry)");
            None
        }
    };
    Delivery { delivery_id: id, seq, topic: out.topic, resource_id: out.resource_id, signature, incident: out.incident, status, sent_at }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_known_values() {
        // Reference values computed independently (Python: hmac.new(b"s3cret", body, sha256)).
        let body = br#"{"id":1}"#;
        assert_eq!(woo_signature("s3cret", body), "Y92rNNpYOOODVF6ckLQPdKTj2qvF3ZqNSaUYda1LJBg=");
        // Delivery ids: equal within a second, new the next.
        assert_eq!(delivery_id("s3cret", 1_700_000_000), delivery_id("s3cret", 1_700_000_000));
        assert_ne!(delivery_id("s3cret", 1_700_000_000), delivery_id("s3cret", 1_700_000_001));
        assert_eq!(delivery_id("s3cret", 1).len(), 32);
    }
}
