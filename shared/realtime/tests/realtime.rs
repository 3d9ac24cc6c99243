//! The real-time path with in-memory ports: webhook refusals, sealing; the engine's rules,
//! cooldowns, dedupe of replays and outbox. LocalStack runs the same code in tests/tests/realtime.rs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use alkasba_pii::{LocalKeys, Tokenizer};
use alkasba_realtime::aws::S3State;
use alkasba_realtime::engine::{Engine, FlushPolicy, StateStore};
use alkasba_realtime::event::{StoreEvent, WIRE_VERSION};
use alkasba_realtime::memory::{MemoryAlerts, MemoryLake, MemoryQueue};
use alkasba_realtime::rules::RulesFile;
use alkasba_realtime::signature::{Mode, sign, sign_woo};
use alkasba_realtime::webhook::{Request, Webhook};
use alkasba_sim::data::Shape;
use alkasba_sim::store::{Resource, Store};
use deltalake::logstore::object_store::memory::InMemory;
use serde_json::{Value, json};

const SECRET: &str = "test-webhook-secret-0123456789";
const NOW_MS: i64 = 1_764_000_000_000;

fn store() -> Store {
    Store::new(Shape { seed: 7, products: 50, customers: 200, orders: 500, end: chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(), days: 30 }, 0.0)
}

/// A delivery as WooCommerce sends it (body signature, a delivery id shared within a second).
fn request(topic: &str, body: &[u8], delivery: &str) -> Request {
    let mut headers = HashMap::new();
    headers.insert("x-wc-webhook-signature".into(), sign_woo(SECRET.as_bytes(), body));
    headers.insert("x-wc-webhook-topic".into(), topic.into());
    headers.insert("x-wc-webhook-delivery-id".into(), delivery.into());
    Request { method: "POST".into(), headers, body: body.to_vec() }
}

/// A delivery from a sender that also signs a timestamp.
fn timestamped(topic: &str, body: &[u8], t: i64) -> Request {
    let mut r = request(topic, body, "d");
    r.headers.insert("x-alkasba-signature".into(), sign(SECRET.as_bytes(), t, body));
    r
}

type Hook = Webhook<Arc<MemoryQueue>, LocalKeys>;

fn webhook_in(mode: Mode) -> (Hook, Arc<MemoryQueue>) {
    let queue = Arc::new(MemoryQueue::default());
    let tokens = Tokenizer::new("token-key-for-tests-0123456789abcdef").unwrap();
    let hook = Webhook::new(SECRET, mode, 300, tokens, Arc::new(LocalKeys::random().unwrap()), queue.clone()).unwrap();
    (hook, queue)
}

fn webhook() -> (Hook, Arc<MemoryQueue>) {
    webhook_in(Mode::Woocommerce)
}

#[tokio::test]
async fn a_woocommerce_delivery_is_sealed_and_enqueued_and_a_resend_is_applied_once() {
    let (hook, queue) = webhook();
    let st = store();
    let order = st.render(Resource::Orders, 1);
    let email = order.pointer("/billing/email").and_then(Value::as_str).unwrap().to_string();
    let body = serde_json::to_vec(&order).unwrap();
    let r = hook.handle(&request("order.created", &body, "5f1c9e0a"), NOW_MS).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let sent = queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(!sent[0].contains(&email), "plaintext email on the queue");
    let e: StoreEvent = serde_json::from_str(&sent[0]).unwrap();
    assert_eq!((e.v, e.topic.as_str(), e.signed_at), (WIRE_VERSION, "order.created", NOW_MS / 1000));
    assert_eq!(e.delivery_id, hex::encode(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sign_woo(SECRET.as_bytes(), &body)).unwrap()), "named by its payload");
    assert!(e.record["_sealed"].as_str().is_some_and(alkasba_pii::is_sealed), "{}", e.record);
    assert!(e.record.get("billing").is_none() && e.record.get("order_key").is_none(), "{}", e.record);
    assert_eq!(e.record["line_items"][0]["product_id"], order["line_items"][0]["product_id"], "what the rules read stays in clear");
    assert!(e.tokens["email_token"].is_some());
    assert_eq!(e.keys.len(), 1, "the person key travels with its first event");
    // The same payload again, under another delivery id (a resend, or a replay), now and in a
    // later minute: accepted (one queue send each, no write to claim it), named by the payload.
    for later in [2_000, 40 * 60_000] {
        let r = hook.handle(&request("order.created", &body, "77aa0c31"), NOW_MS + later).await;
        assert_eq!((r.status, &r.body["accepted"]), (202, &json!(e.delivery_id)), "{:?}", r.body);
    }
    let resent: Vec<StoreEvent> = queue.sent.lock().unwrap().drain(..).map(|m| serde_json::from_str(&m).unwrap()).collect();
    assert_eq!(resent.len(), 3);
    // `realtime` applies it once, whichever batch and minute each copy arrives in.
    let engine = engine();
    let first = engine.process(resent[..2].to_vec()).await.unwrap();
    assert_eq!((first.events, first.duplicates), (1, 1), "{first:?}");
    let later = engine.process(resent[2..].to_vec()).await.unwrap();
    assert_eq!((later.events, later.duplicates), (0, 1), "40 minutes later: {later:?}");
    // Another payload in the same second shares WooCommerce's delivery id: it is a new event.
    let mut changed = order.clone();
    changed["status"] = json!(if order["status"] == "completed" { "processing" } else { "completed" });
    let r = hook.handle(&request("order.updated", &serde_json::to_vec(&changed).unwrap(), "5f1c9e0a"), NOW_MS).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let sent = queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let again: StoreEvent = serde_json::from_str(&sent[0]).unwrap();
    assert_ne!(again.delivery_id, e.delivery_id);
    assert!(again.keys.is_empty(), "a key already sent is not sent again");
}

#[tokio::test]
async fn the_creation_ping_is_answered_200_and_changes_nothing() {
    let (hook, queue) = webhook();
    let mut headers = HashMap::new();
    headers.insert("content-type".to_string(), "application/x-www-form-urlencoded".to_string());
    let ping = Request { method: "POST".into(), headers, body: b"webhook_id=7".to_vec() };
    let r = hook.handle(&ping, NOW_MS).await;
    assert_eq!((r.status, &r.body["pong"]), (200, &json!(7)), "{:?}", r.body);
    // A form body with a topic is a delivery, and an unsigned one is refused.
    let mut fake = ping.clone();
    fake.headers.insert("x-wc-webhook-topic".into(), "order.created".into());
    assert_eq!(hook.handle(&fake, NOW_MS).await.status, 401);
    assert!(queue.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bad_deliveries_get_a_4xx_naming_the_problem_and_nothing_is_enqueued() {
    let (hook, queue) = webhook();
    let (strict, strict_queue) = webhook_in(Mode::Timestamped);
    let st = store();
    let body = serde_json::to_vec(&st.render(Resource::Orders, 2)).unwrap();
    let t = NOW_MS / 1000;
    let with = |mut r: Request, k: &str, v: Option<String>| {
        match v {
            Some(v) => r.headers.insert(k.into(), v),
            None => r.headers.remove(k),
        };
        r
    };
    let woo_cases: Vec<(Request, u16, &str)> = vec![
        (with(request("order.created", &body, "a"), "x-wc-webhook-signature", Some(sign_woo(b"wrong-secret-0123456789", &body))), 401, "does not match"),
        (with(request("order.created", &body, "a"), "x-wc-webhook-signature", None), 401, "missing x-wc-webhook-signature"),
        (with(request("order.created", &body, "a"), "x-wc-webhook-signature", Some("not base64".into())), 401, "does not match"),
        (request("order.created", b"{\"id\": 1,", "a"), 400, "not valid JSON"),
        (request("order.created", b"[1, 2]", "a"), 400, "not an object"),
        (request("coupon.created", &body, "a"), 400, "unknown topic"),
        (with(request("order.created", &body, "a"), "x-wc-webhook-topic", None), 400, "missing X-WC-Webhook-Topic"),
        (
            {
                let mut r = request("order.created", &body, "a");
                r.method = "GET".into();
                r
            },
            405,
            "POST",
        ),
        (
            {
                let mut r = request("order.created", &body, "a");
                r.body.push(b' ');
                r
            },
            401,
            "does not match",
        ),
        // A timestamped signature, when a sender adds one, is checked in this mode too.
        (timestamped("order.created", &body, t - 301), 401, "older than 300"),
    ];
    for (req, status, says) in woo_cases {
        let r = hook.handle(&req, NOW_MS).await;
        assert_eq!(r.status, status, "{says}: {:?}", r.body);
        assert!(r.body.to_string().contains(says), "{status}: {:?} should say {says:?}", r.body);
    }
    let strict_cases: Vec<(Request, u16, &str)> = vec![
        (request("order.created", &body, "a"), 401, "missing x-alkasba-signature"),
        (with(timestamped("order.created", &body, t), "x-alkasba-signature", Some(sign(b"wrong-secret-0123456789", t, &body))), 401, "does not match"),
        (with(timestamped("order.created", &body, t), "x-alkasba-signature", Some("t=1,v1=xyz".into())), 401, "form"),
        (timestamped("order.created", &body, t - 301), 401, "older than 300"),
        (timestamped("order.created", &body, t + 301), 401, "future"),
    ];
    for (req, status, says) in strict_cases {
        let r = strict.handle(&req, NOW_MS).await;
        assert_eq!(r.status, status, "{says}: {:?}", r.body);
        assert!(r.body.to_string().contains(says), "{status}: {:?} should say {says:?}", r.body);
    }
    assert_eq!(strict.handle(&timestamped("order.created", &body, t), NOW_MS).await.status, 202, "a good timestamped delivery");
    assert!(queue.sent.lock().unwrap().is_empty(), "nothing is enqueued");
    assert_eq!(strict_queue.sent.lock().unwrap().len(), 1);
    // An invalid order is accepted for quarantine (WooCommerce would disable a webhook that keeps
    // failing): its problems named without values, the payload enqueued sealed and flagged.
    let invalid = json!({"id": 5, "status": "processing", "currency": "MAD!", "billing": {"email": "ana.benali@example.ma"}});
    let r = hook.handle(&request("order.created", &serde_json::to_vec(&invalid).unwrap(), "a"), NOW_MS).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let reasons = r.body["quarantined"]["reasons"].to_string();
    assert!(reasons.contains("/currency") && !reasons.contains("MAD!") && !reasons.contains("ana.benali"), "{reasons}");
    let sent = queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(!sent[0].contains("ana.benali"), "plaintext email on the queue");
    let e: StoreEvent = serde_json::from_str(&sent[0]).unwrap();
    assert!(e.invalid.iter().any(|r| r.contains("/currency")), "{:?}", e.invalid);
    // It counts in no window, and becomes a quarantine row, not an event row.
    let mut state = alkasba_realtime::state::State::default();
    let applied = state.apply(std::slice::from_ref(&e), &rules());
    assert_eq!(applied.accepted.len(), 1);
    assert_eq!(state.window(NOW_MS / 1000, 3600).orders, 0);
    let outbox = alkasba_realtime::engine::Outbox { generation: 1, keys: vec![], events: vec![e], alerts: vec![] };
    let q = alkasba_realtime::aws::quarantine_rows(&[&outbox], chrono::Utc::now()).unwrap().unwrap();
    assert_eq!(q.num_rows(), 1);
    let stream = q.column_by_name("stream").unwrap();
    assert_eq!(alkasba_lake::read::strings(stream).unwrap().value(0), "alkasba_store.orders");
    assert_eq!(alkasba_realtime::aws::events_batch(&[&outbox]).unwrap().num_rows(), 0, "no event row");
}

// ------------------------------------------------------------------ engine

fn rules() -> RulesFile {
    RulesFile::parse(
        "test-alerts.toml",
        r#"
bucket_secs = 5
top_sellers = 3
[[rule]]
name = "drop"
kind = "revenue_drop"
severity = "critical"
currency = "MAD"
window_secs = 20
baseline_secs = 120
ratio_below = 0.5
min_baseline = 10.0
cooldown_secs = 600
[[rule]]
name = "spike"
kind = "order_spike"
severity = "warning"
window_secs = 20
baseline_secs = 120
ratio_above = 3.0
min_orders = 10
cooldown_secs = 600
[[rule]]
name = "stock"
kind = "low_stock"
severity = "critical"
at_or_below = 2
cooldown_secs = 600
[[rule]]
name = "undercut"
kind = "competitor_undercut"
severity = "warning"
percent = 15.0
cooldown_secs = 600
[[rule]]
name = "payments"
kind = "payment_failures"
severity = "critical"
window_secs = 20
rate_above = 0.25
min_orders = 10
cooldown_secs = 600
[[rule]]
name = "burst"
kind = "suspicious_burst"
severity = "critical"
window_secs = 60
orders = 5
cooldown_secs = 600
[[rule]]
name = "large"
kind = "large_first_order"
severity = "warning"
currency = "MAD"
total_at_least = 5000.0
cooldown_secs = 600
"#,
    )
    .unwrap()
}

struct Feed {
    next: u64,
    events: Vec<StoreEvent>,
}

impl Feed {
    fn push(&mut self, topic: &str, at_ms: i64, record: Value, token: Option<&str>) {
        self.next += 1;
        let mut tokens = BTreeMap::new();
        tokens.insert("email_token".to_string(), token.map(str::to_string));
        self.events.push(StoreEvent {
            v: WIRE_VERSION,
            delivery_id: self.next.to_string(),
            topic: topic.into(),
            signed_at: at_ms / 1000,
            received_at_ms: at_ms,
            key: None,
            record,
            tokens,
            keys: vec![],
            invalid: vec![],
            version: None,
        });
    }
    fn order(&mut self, at_ms: i64, product: u64, total: f64, token: &str) {
        let rec = json!({"id": self.next + 1, "currency": "MAD", "total": format!("{total:.2}"), "status": "processing", "line_items": [{"product_id": product, "quantity": 1, "total": format!("{total:.2}")}]});
        self.push("order.created", at_ms, rec, Some(token));
    }
    /// `per_sec` orders per second from `from` for `secs` seconds, spread over products 1..=5.
    fn steady(&mut self, from_ms: i64, secs: i64, per_sec: i64) {
        for s in 0..secs {
            for k in 0..per_sec {
                let n = self.next;
                self.order(from_ms + s * 1000 + k * (1000 / per_sec.max(1)), 1 + n % 5, 100.0 + (n % 7) as f64, &format!("cust-{n}"));
            }
        }
    }
}

fn engine() -> Engine<S3State, MemoryLake, MemoryAlerts> {
    Engine { rules: rules(), store: S3State::over(Arc::new(InMemory::new())), lake: MemoryLake::default(), alerts: MemoryAlerts::default(), flush: FlushPolicy::default() }
}

async fn run(e: &Engine<S3State, MemoryLake, MemoryAlerts>, events: &[StoreEvent]) -> Vec<String> {
    let mut kinds = Vec::new();
    for chunk in events.chunks(50) {
        let r = e.process(chunk.to_vec()).await.unwrap();
        kinds.extend(r.alerts);
    }
    kinds
}

fn kinds(e: &Engine<S3State, MemoryLake, MemoryAlerts>) -> Vec<String> {
    e.alerts.published.lock().unwrap().iter().map(|a| a.kind.clone()).collect()
}

const T0: i64 = 1_764_000_000_000;

#[tokio::test]
async fn a_quiet_baseline_raises_nothing_and_every_event_reaches_the_lake_once() {
    let e = engine();
    let mut f = Feed { next: 0, events: vec![] };
    f.steady(T0, 180, 4);
    run(&e, &f.events).await;
    assert_eq!(kinds(&e), Vec::<String>::new());
    // Redelivering everything changes nothing.
    let before = e.store.load().await.unwrap().0.generation;
    run(&e, &f.events).await;
    assert_eq!(e.store.load().await.unwrap().0.generation, before);
    // Micro-batches: most batches left their events pending; the tick writes the rest.
    let waiting: usize = e.store.load().await.unwrap().0.pending.iter().map(|p| p.events).sum();
    let policy = FlushPolicy::default().min_events;
    assert!(waiting < policy, "the policy ({policy} events) bounds what waits: {waiting}");
    e.flush().await.unwrap();
    let written: usize = e.lake.written.lock().unwrap().iter().map(|o| o.events.len()).sum();
    assert_eq!(written, f.events.len());
    assert!(e.store.load().await.unwrap().0.pending.is_empty(), "every outbox flushed");
}

/// Issue 20: batches leave the lake to the tick (a batch writing the lake held the deliveries
/// queued behind it: the tail of alert latency), and the tick writes a backlog a bounded prefix
/// at a time; a backlog past the policy (the tick late) is written by a batch itself.
#[tokio::test]
async fn batches_leave_the_lake_to_the_tick_which_writes_a_backlog_in_bounded_writes() {
    let policy = FlushPolicy { min_events: 50_000, max_age_ms: 120_000, chunk_events: 100 };
    let e = Engine { flush: policy, ..engine() };
    let mut f = Feed { next: 0, events: vec![] };
    f.steady(T0, 180, 4);
    run(&e, &f.events).await;
    assert!(e.lake.writes.lock().unwrap().is_empty(), "no batch wrote the lake");
    e.flush().await.unwrap();
    let writes = e.lake.writes.lock().unwrap().clone();
    // Outboxes of 50 events (one per batch of `run`): two per write.
    assert!(writes.iter().all(|&n| n <= 100), "each write holds at most chunk_events: {writes:?}");
    assert_eq!(writes.len(), f.events.len().div_ceil(100), "{writes:?}");
    let mut ids: Vec<String> = e.lake.written.lock().unwrap().iter().flat_map(|o| o.events.iter().map(|e| e.delivery_id.clone())).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), f.events.len(), "every event once");
    assert!(e.store.load().await.unwrap().0.pending.is_empty());

    // The tick late: once 200 events wait, a batch writes them (in writes of 100).
    let e = Engine { flush: FlushPolicy { min_events: 200, ..policy }, ..engine() };
    run(&e, &f.events).await;
    let writes = e.lake.writes.lock().unwrap().clone();
    assert!(!writes.is_empty() && writes.iter().all(|&n| n <= 100), "{writes:?}");
    let waiting: usize = e.store.load().await.unwrap().0.pending.iter().map(|p| p.events).sum();
    assert!(waiting < 200, "batches keep the backlog under the policy: {waiting}");
}

/// Issue 18: a delivery carrying an older version of a record than the one applied (a late
/// WooCommerce retry, a replayed capture with another body) changes no window (issue 20: it is
/// still kept in the events table); the same version with other content (two saves in one
/// second) is a real change.
#[tokio::test]
async fn an_older_version_of_a_record_changes_nothing() {
    let e = engine();
    let mut f = Feed { next: 0, events: vec![] };
    let version = |f: &mut Feed, topic: &str, at: i64, status: &str, v: &str| {
        f.push(topic, at, json!({"id": 77, "currency": "MAD", "total": "10.00", "status": status, "line_items": []}), Some("cust"));
        let last = f.events.last_mut().unwrap();
        last.key = Some("77".into());
        last.version = Some(v.into());
    };
    version(&mut f, "order.updated", T0, "processing", "2026-11-20T09:16:05");
    version(&mut f, "order.updated", T0 + 1_000, "failed", "2026-11-20T09:16:04");
    version(&mut f, "order.created", T0 + 2_000, "pending", "2026-11-20T09:16:00");
    version(&mut f, "order.updated", T0 + 3_000, "completed", "2026-11-20T09:16:05");
    let r = e.process(f.events.clone()).await.unwrap();
    assert_eq!((r.events, r.duplicates), (4, 0), "every delivery to the events table: {r:?}");
    assert_eq!(r.outdated, 2, "the two older ones count in no window: {r:?}");
    let state = e.store.load().await.unwrap().0;
    assert_eq!(state.versions.get("order:77").map(|(v, _)| v.as_str()), Some("2026-11-20T09:16:05"));
    assert_eq!(state.window(state.now, 3_600).failed, 0, "the older 'failed' state was not counted");
}

/// Issue 20: the webhook no longer claims each payload, so a capture replayed after the dedupe
/// set has forgotten it (an hour: a WooCommerce signature carries no time) reaches the engine
/// again: its record's version is then older than the history, so it goes to the events table
/// (where it then sits twice under one payload id) but counts in no window and raises nothing.
#[tokio::test]
async fn a_replay_after_the_history_counts_in_no_window() {
    let e = engine();
    let modified = chrono::NaiveDateTime::parse_from_str("2026-11-20T09:16:05", "%Y-%m-%dT%H:%M:%S").unwrap().and_utc().timestamp_millis();
    let mut f = Feed { next: 0, events: vec![] };
    f.order(modified + 3_000, 2, 9_500.0, "a-new-customer");
    let original = {
        let last = f.events.last_mut().unwrap();
        (last.key, last.version) = (Some("77".into()), Some("2026-11-20T09:16:05".into()));
        last.clone()
    };
    let r = e.process(f.events.clone()).await.unwrap();
    assert_eq!((r.events, r.outdated, r.alerts.len()), (1, 0, 1), "a large first order: {r:?}");
    // Two hours on, other orders have moved the history past it.
    let later = modified + 2 * 3_600_000;
    let mut g = Feed { next: 100, events: vec![] };
    g.steady(later, 5, 1);
    e.process(g.events.clone()).await.unwrap();
    let orders = |s: &alkasba_realtime::state::State| s.window(s.now, 7_200).orders;
    let before = orders(&e.store.load().await.unwrap().0);
    let mut replay = original.clone();
    replay.received_at_ms = later + 10_000;
    replay.signed_at = replay.received_at_ms / 1000;
    let r = e.process(vec![replay]).await.unwrap();
    assert_eq!((r.events, r.outdated, r.alerts.len()), (1, 1, 0), "to the events table, nowhere else: {r:?}");
    assert_eq!(orders(&e.store.load().await.unwrap().0), before, "no window counts it");
    assert_eq!(kinds(&e), vec!["large_first_order".to_string()]);
}

#[tokio::test]
async fn each_incident_raises_exactly_one_alert_of_its_kind() {
    for incident in ["drop", "spike", "stockout", "undercut", "burst", "payments", "large"] {
        let e = engine();
        let mut f = Feed { next: 0, events: vec![] };
        f.steady(T0, 150, 4);
        // Our price and stock for the best seller (product 1..5 sell evenly; 1 is first by id).
        f.push("product.updated", T0 + 150_000, json!({"id": 1, "price": "200.00", "stock_quantity": 40}), None);
        let t = T0 + 151_000;
        match incident {
            "drop" => f.steady(t, 30, 0),
            "spike" => f.steady(t, 30, 20),
            "stockout" => f.push("product.updated", t, json!({"id": 1, "price": "200.00", "stock_quantity": 0}), None),
            "undercut" => f.push("competitor.price_changed", t, json!({"competitor": "x", "product_id": 1, "price": "150.00"}), None),
            "burst" => (0..12).for_each(|i| f.order(t + i, 2, 120.0, "the-same-token")),
            "payments" => (0..60).for_each(|i| f.push("order.updated", t + i * 200, json!({"id": 1000 + i, "status": "failed"}), None)),
            "large" => f.order(t, 3, 9000.0, "a-new-customer"),
            _ => unreachable!(),
        }
        if !matches!(incident, "drop" | "spike") {
            f.steady(t, 30, 4);
        }
        if incident == "drop" {
            // A trickle keeps events (and evaluation) coming, at 10% of the baseline revenue.
            for s in 0..30 {
                if s % 3 == 0 {
                    f.order(t + s * 1000, 4, 40.0, &format!("trickle-{s}"));
                }
            }
        }
        f.events.sort_by_key(|e| e.received_at_ms);
        f.steady(t + 30_000, 30, 4);
        run(&e, &f.events).await;
        let expected = match incident {
            "drop" => "revenue_drop",
            "spike" => "order_spike",
            "stockout" => "low_stock",
            "undercut" => "competitor_undercut",
            "burst" => "suspicious_burst",
            "payments" => "payment_failures",
            "large" => "large_first_order",
            _ => unreachable!(),
        };
        assert_eq!(kinds(&e), vec![expected.to_string()], "incident {incident}");
        // Redelivery raises nothing new.
        run(&e, &f.events).await;
        assert_eq!(kinds(&e).len(), 1, "incident {incident}: a redelivery raised a duplicate");
        e.flush().await.unwrap();
        let alerts: usize = e.lake.written.lock().unwrap().iter().map(|o| o.alerts.len()).sum();
        assert_eq!(alerts, 1, "incident {incident}: the alerts table has it once");
    }
}

#[tokio::test]
async fn concurrent_instances_apply_each_delivery_once() {
    let store = S3State::over(Arc::new(InMemory::new()));
    let lake = Arc::new(MemoryLake::default());
    let make = || Engine { rules: rules(), store: store.clone(), lake: lake.clone(), alerts: MemoryAlerts::default(), flush: FlushPolicy { min_events: 100, max_age_ms: 60_000, chunk_events: 40 } };
    let (a, b) = (Arc::new(make()), Arc::new(make()));
    let mut f = Feed { next: 0, events: vec![] };
    f.steady(T0, 60, 10);
    let half = f.events.len() / 2;
    let (x, y) = (f.events[..half].to_vec(), f.events[half..].to_vec());
    // Each instance also gets some of the other's deliveries (a redelivery race).
    let (x2, y2) = ([x.clone(), y[..20].to_vec()].concat(), [y.clone(), x[..20].to_vec()].concat());
    let (ta, tb) = (a.clone(), b.clone());
    let ja = tokio::spawn(async move {
        for c in x2.chunks(25) {
            ta.process(c.to_vec()).await.unwrap();
        }
    });
    let jb = tokio::spawn(async move {
        for c in y2.chunks(25) {
            tb.process(c.to_vec()).await.unwrap();
        }
    });
    ja.await.unwrap();
    jb.await.unwrap();
    a.flush().await.unwrap();
    let state = store.load().await.unwrap().0;
    assert_eq!(state.window(state.now, 3600).orders, f.events.len() as u64);
    let mut ids: Vec<String> = lake.written.lock().unwrap().iter().flat_map(|o| o.events.iter().map(|e| e.delivery_id.clone())).collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!((n, ids.len()), (f.events.len(), f.events.len()), "each delivery in exactly one outbox");
}

/// An outbox committed by an instance that died before publishing its alerts: whoever flushes
/// publishes them once it is old enough, and never alerts published already (marked).
#[tokio::test]
async fn a_dead_instances_alerts_are_published_once_and_published_ones_never_again() {
    use alkasba_realtime::engine::Outbox;
    use alkasba_realtime::state::{Alert, PendingRef};
    let e = engine();
    let alert = |id: &str| -> Alert {
        serde_json::from_value(json!({"alert_id": id, "rule": "r", "kind": "order_spike", "severity": "warning", "subject": "store", "at": 1, "trigger_delivery": null, "evidence": {}})).unwrap()
    };
    let (mut state, version) = e.store.load().await.unwrap();
    let old = chrono::Utc::now().timestamp_millis() - 60_000;
    for (generation, name, id) in [(1, "dead", "a1"), (2, "published", "a2")] {
        e.store.put_outbox(name, &Outbox { generation, keys: vec![], events: vec![], alerts: vec![alert(id)] }).await.unwrap();
        state.pending.push(PendingRef { generation, object: name.into(), created_ms: old, events: 0, alerts_published: false });
    }
    state.generation = 2;
    e.store.mark_published("published").await.unwrap();
    e.store.save(&state, version.as_ref()).await.unwrap();
    assert_eq!(e.flush().await.unwrap(), 2);
    let ids: Vec<String> = e.alerts.published.lock().unwrap().iter().map(|a| a.alert_id.clone()).collect();
    assert_eq!(ids, ["a1"], "the dead instance's alert once; the marked one not again");
    assert_eq!(e.lake.written.lock().unwrap().iter().map(|o| o.alerts.len()).sum::<usize>(), 2, "both in the alerts table");
    assert!(e.store.get_outbox("dead").await.unwrap().is_none() && !e.store.is_published("published").await.unwrap(), "outboxes and marks removed");
    // Flushing again publishes nothing more.
    e.flush().await.unwrap();
    assert_eq!(e.alerts.published.lock().unwrap().len(), 1);
}

#[test]
fn the_live_view_names_best_sellers_from_order_lines_and_product_events() {
    let mut f = Feed { next: 0, events: vec![] };
    let line = |pid: u64, name: &str| json!({"product_id": pid, "name": name, "quantity": 2, "total": "40.00"});
    f.push("order.created", T0, json!({"id": 1, "currency": "MAD", "total": "80.00", "line_items": [line(7, "Argan Oil"), line(8, "  ")]}), Some("c1"));
    f.push("order.created", T0 + 1_000, json!({"id": 2, "currency": "MAD", "total": "40.00", "line_items": [line(7, "Argan Oil")]}), Some("c2"));
    // A product event renames it; a later order line without a name keeps that name.
    f.push("product.updated", T0 + 2_000, json!({"id": 7, "name": "Argan Oil 250 ml", "stock_quantity": 3}), None);
    f.push("order.created", T0 + 3_000, json!({"id": 3, "currency": "MAD", "total": "20.00", "line_items": [{"product_id": 7, "quantity": 1, "total": "20.00"}]}), Some("c3"));
    let mut state = alkasba_realtime::state::State::default();
    state.apply(&f.events, &rules());
    let view = state.live_view(&rules(), T0 + 3_000);
    let top = view["top_products_1h"].as_array().unwrap();
    assert_eq!(top[0]["product_id"], json!(7));
    assert_eq!(top[0]["name"], json!("Argan Oil 250 ml"));
    assert_eq!(top[0]["units_1h"], json!(5));
    // A blank name is no name: the page shows the id.
    assert_eq!(top[1]["product_id"], json!(8));
    assert_eq!(top[1]["name"], Value::Null);
    assert_eq!(view["low_stock"][0]["name"], json!("Argan Oil 250 ml"));
}
