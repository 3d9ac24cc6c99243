//! The store's real-time channel: order, stock and price events delivered as signed webhooks,
//! at a configured rate, with scripted incidents.
//!
//! Each delivery carries WooCommerce's `X-WC-Webhook-Signature` (base64 HMAC-SHA256 of the body
//! with the webhook secret) and, because WooCommerce signs no timestamp, an
//! `X-Alkasba-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` that lets receivers
//! reject stale and replayed deliveries.

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

/// The timestamped signature: `t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>`.
pub fn timestamped_signature(secret: &str, ts: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={ts},v1={}", hex::encode(mac.finalize().into_bytes()))
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
    pub delivery_id: u64,
    pub topic: String,
    pub resource_id: Value,
    /// The incident that caused this event, if any: the ground truth for alert tests.
    pub incident: Option<IncidentKind>,
    /// Final HTTP status (None: never answered).
    pub status: Option<u16>,
    pub attempts: u32,
    pub sent_at: i64,
}

#[derive(Default)]
pub struct Webhooks {
    run: Mutex<Option<watch::Sender<bool>>>,
    log: Arc<Mutex<Vec<Delivery>>>,
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
    let delivered = log.iter().filter(|d| d.status.is_some_and(|s| (200..300).contains(&s))).count();
    let running = st.webhooks.run.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|tx| !tx.is_closed() && !*tx.borrow());
    axum::Json(json!({"running": running, "sent": log.len(), "delivered": delivered, "deliveries": log})).into_response()
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
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(5)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client");
            return;
        }
    };
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
            let id = st.webhooks.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            tokio::spawn(async move {
                let _permit = permit;
                let d = deliver(&client, &url, &secret, id, out).await;
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

async fn deliver(client: &reqwest::Client, url: &str, secret: &str, id: u64, out: Outgoing) -> Delivery {
    let (resource, action) = out.topic.split_once('.').unwrap_or((&out.topic, ""));
    let mut attempts = 0;
    let mut status = None;
    let sent_at = chrono::Utc::now().timestamp();
    while attempts < 3 {
        attempts += 1;
        let ts = chrono::Utc::now().timestamp();
        let r = client
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", "WooCommerce/9.4.0 Hookshot (WordPress/6.7)")
            .header("x-wc-webhook-source", "https://store.alkasba.example/")
            .header("x-wc-webhook-topic", &out.topic)
            .header("x-wc-webhook-resource", resource)
            .header("x-wc-webhook-event", action)
            .header("x-wc-webhook-id", "1")
            .header("x-wc-webhook-delivery-id", id.to_string())
            .header("x-wc-webhook-signature", woo_signature(secret, &out.body))
            .header("x-alkasba-signature", timestamped_signature(secret, ts, &out.body))
            .body(out.body.clone())
            .send()
            .await;
        match r {
            Ok(resp) => {
                status = Some(resp.status().as_u16());
                if !resp.status().is_server_error() {
                    break;
                }
            }
            Err(e) => tracing::debug!(error = %e, delivery = id, "webhook delivery failed"),
        }
        tokio::time::sleep(Duration::from_millis(100 * attempts as u64)).await;
    }
    Delivery { delivery_id: id, topic: out.topic, resource_id: out.resource_id, incident: out.incident, status, attempts, sent_at }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_known_values() {
        // Reference values computed independently (Python: hmac.new(b"s3cret", body, sha256)).
        let body = br#"{"id":1}"#;
        assert_eq!(woo_signature("s3cret", body), "Y92rNNpYOOODVF6ckLQPdKTj2qvF3ZqNSaUYda1LJBg=");
        assert_eq!(timestamped_signature("s3cret", 1_700_000_000, body), "t=1700000000,v1=ee0658aa4e37018df69c24227df01e0f680eb3b87c7f1f9bd936e283cfe01d9b");
    }
}
