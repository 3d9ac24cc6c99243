//! Issue 18: WooCommerce's own payloads (shaped as its documentation gives them) through the
//! webhook, and fuzzing of bodies and headers. A real-shaped delivery is accepted and its
//! personal values never reach the queue in clear; a resend carries the same payload id (what
//! `realtime` applies once); a forged one is a 401; whatever arrives, the answer is a status the handler documents, never a panic.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default, as in CI); `scripts/fuzz.sh` runs each
//! with a million (docs/fuzzing.md).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use alkasba_pii::{LocalKeys, Tokenizer};
use alkasba_realtime::memory::MemoryQueue;
use alkasba_realtime::signature::{Mode, sign, sign_woo};
use alkasba_realtime::webhook::{Request, Webhook};
use proptest::prelude::*;
use serde_json::Value;

const SECRET: &str = "test-webhook-secret-0123456789";
const NOW_MS: i64 = 1_764_000_000_000;
const PERSONAL: [&str; 6] = ["yasmine.ouazzani@example.net", "Ouazzani", "Derb Sidi Bouloukat", "197.230.41.88", "EE482913", "wc_order_Xq7PzL2mN9vB4"];

type Hook = Webhook<Arc<MemoryQueue>, LocalKeys>;

fn hook() -> (Hook, Arc<MemoryQueue>) {
    let queue = Arc::new(MemoryQueue::default());
    let tokens = Tokenizer::new("token-key-for-tests-0123456789abcdef").unwrap();
    let hook = Webhook::new(SECRET, Mode::Woocommerce, 300, tokens, Arc::new(LocalKeys::random().unwrap()), queue.clone()).unwrap();
    (hook, queue)
}

fn fixture(name: &str) -> Vec<u8> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    std::fs::read(PathBuf::from(manifest).join("../../tests/fixtures/woocommerce").join(format!("{name}.json"))).unwrap()
}

fn delivery(topic: &str, body: &[u8], signature: String) -> Request {
    let headers = HashMap::from([
        ("x-wc-webhook-signature".to_string(), signature),
        ("x-wc-webhook-topic".to_string(), topic.to_string()),
        ("x-wc-webhook-resource".to_string(), topic.split('.').next().unwrap_or_default().to_string()),
        ("x-wc-webhook-event".to_string(), topic.split('.').nth(1).unwrap_or_default().to_string()),
        ("x-wc-webhook-id".to_string(), "12".to_string()),
        ("x-wc-webhook-delivery-id".to_string(), "8d2c1a0b9e7f".to_string()),
        ("x-wc-webhook-source".to_string(), "https://shop.example.ma/".to_string()),
    ]);
    Request { method: "POST".into(), headers, body: body.to_vec() }
}

#[tokio::test]
async fn documented_payloads_are_accepted_sealed_and_named_by_their_payload_and_forgeries_refused() {
    let (hook, queue) = hook();
    for (name, topic) in [("order", "order.created"), ("customer", "customer.updated"), ("product", "product.updated")] {
        let body = fixture(name);
        let before = queue.sent.lock().unwrap().len();
        let r = hook.handle(&delivery(topic, &body, sign_woo(SECRET.as_bytes(), &body)), NOW_MS).await;
        assert_eq!(r.status, 202, "{name}: {:?}", r.body);
        assert!(r.body.get("quarantined").is_none(), "{name}: the documented shape is valid: {:?}", r.body);
        let sent = queue.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), before + 1, "{name}: enqueued once");
        for p in PERSONAL {
            assert!(!sent[before].contains(p), "{name}: {p} on the queue in clear");
        }
        // The same payload again (WooCommerce resends on a timeout): one more queue send, under
        // the same payload id, which `realtime` applies once (tests/realtime.rs).
        let r = hook.handle(&delivery(topic, &body, sign_woo(SECRET.as_bytes(), &body)), NOW_MS + 5_000).await;
        assert_eq!(r.status, 202, "{name}: {:?}", r.body);
        let sent = queue.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), before + 2);
        let id = |m: &str| serde_json::from_str::<Value>(m).unwrap()["delivery_id"].as_str().unwrap().to_string();
        assert_eq!(id(&sent[before]), id(&sent[before + 1]), "{name}: a resend is named as the first delivery");
        // Signed with another secret, or the body changed after signing: refused.
        let forged = hook.handle(&delivery(topic, &body, sign_woo(b"not-the-shop-secret-0123456789", &body)), NOW_MS).await;
        let mut changed = body.clone();
        changed.extend_from_slice(b" ");
        let tampered = hook.handle(&delivery(topic, &changed, sign_woo(SECRET.as_bytes(), &body)), NOW_MS).await;
        assert_eq!((forged.status, tampered.status), (401, 401), "{name}");
        assert_eq!(queue.sent.lock().unwrap().len(), before + 2);
    }
}

struct Fixed {
    hook: Hook,
    queue: Arc<MemoryQueue>,
    runtime: tokio::runtime::Runtime,
}

fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(|| {
        let (hook, queue) = hook();
        Fixed { hook, queue, runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap() }
    })
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x-wc-webhook-signature".to_string()),
        Just("x-wc-webhook-topic".to_string()),
        Just("x-wc-webhook-delivery-id".to_string()),
        Just("x-alkasba-signature".to_string()),
        Just("content-type".to_string()),
        "[a-z-]{1,20}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("order.created".to_string()),
        Just("customer.deleted".to_string()),
        Just("product.".to_string()),
        Just("competitor.price_changed".to_string()),
        "t=[0-9]{0,12},v1=[0-9a-f]{0,64}",
        "[A-Za-z0-9+/=]{0,50}",
        any::<String>(),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<Vec<u8>>(),
        "webhook_id=[0-9]{0,25}".prop_map(String::into_bytes),
        // A documented payload with bytes changed (mostly invalid JSON, sometimes a mangled record).
        (prop::sample::select(vec!["order", "customer", "product", "refund"]), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)).prop_map(|(name, edits)| {
            let mut b = fixture(name);
            for (at, byte) in edits {
                let i = at.index(b.len());
                b[i] = byte;
            }
            b
        }),
    ]
}

fn check(req: Request, signed: bool) -> Result<(), TestCaseError> {
    let f = fixed();
    let before = f.queue.sent.lock().unwrap().len();
    let r = f.runtime.block_on(f.hook.handle(&req, NOW_MS));
    prop_assert!([200, 202, 400, 401, 405, 413].contains(&r.status), "status {} {:?}", r.status, r.body);
    if !signed {
        prop_assert!(r.status != 202, "an unsigned request was accepted: {:?}", r.body);
    }
    let sent = f.queue.sent.lock().unwrap();
    prop_assert!(sent.len() <= before + 1);
    if let Some(m) = sent.get(before) {
        for p in PERSONAL {
            prop_assert!(!m.contains(p), "{p} on the queue in clear");
        }
        let _: Value = serde_json::from_str(m).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_webhook_arbitrary_requests(method in prop_oneof![Just("POST".to_string()), "[A-Z]{0,7}"], headers in prop::collection::hash_map(header_name(), header_value(), 0..6), body in body()) {
        check(Request { method, headers, body }, false)?;
    }

    #[test]
    fn fuzz_webhook_signed_bodies(topic in header_value(), body in body(), timestamped in any::<bool>()) {
        let mut req = delivery(&topic, &body, sign_woo(SECRET.as_bytes(), &body));
        if timestamped {
            req.headers.insert("x-alkasba-signature".into(), sign(SECRET.as_bytes(), NOW_MS / 1000, &body));
        }
        check(req, true)?;
    }
}
