//! The simulator over real HTTP: pagination, auth, rate limits, faults, feeds, webhooks,
//! determinism. Each test starts its own simulator on a free port.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use alkasba_sim::{Credentials, SimConfig, serve};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

struct Sim {
    base: String,
    creds: Credentials,
    http: reqwest::Client,
}

async fn start(cfg: SimConfig) -> Sim {
    let creds = cfg.credentials.clone();
    let (addr, _, _) = serve(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Sim { base: format!("http://{addr}"), creds, http: reqwest::Client::new() }
}

impl Sim {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base)).basic_auth(&self.creds.consumer_key, Some(&self.creds.consumer_secret)).send().await.unwrap()
    }
    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }
    /// The webhook run's log once the run has ended (it says so once every delivery is
    /// answered), polled at most `polls` times 50 ms apart; the last log read otherwise.
    async fn ended_webhook_run(&self, polls: usize) -> Value {
        let mut log = Value::Null;
        for _ in 0..polls {
            log = self.control(reqwest::Method::GET, "/_sim/webhooks/log", None).await;
            if log["running"] == false && log["sent"].as_u64().unwrap() > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        log
    }
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn pagination_headers_and_a_full_walk_match_the_truth() {
    let sim = start(SimConfig::small(11, 1_234)).await;
    let first = sim.get("/wp-json/wc/v3/orders?per_page=100&orderby=id&order=asc").await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-wp-total"), "1234");
    assert_eq!(header(&first, "x-wp-totalpages"), "13");
    assert!(header(&first, "link").contains("page=2>; rel=\"next\""), "{}", header(&first, "link"));
    let mut seen = HashSet::new();
    let mut url = Some("/wp-json/wc/v3/orders?per_page=100&orderby=id&order=asc".to_string());
    while let Some(u) = url {
        let r = sim.get(&u).await;
        let link = header(&r, "link");
        let page: Vec<Value> = r.json().await.unwrap();
        for o in page {
            assert!(seen.insert(o["id"].as_u64().unwrap()), "duplicate across pages");
        }
        url = link.split(", ").find(|l| l.ends_with("rel=\"next\"")).map(|l| l.trim_start_matches('<').split('>').next().unwrap().replacen(&sim.base, "", 1));
    }
    let truth = sim.control(reqwest::Method::GET, "/_sim/truth/orders", None).await;
    let want: HashSet<u64> = truth["valid"].as_array().unwrap().iter().map(|v| v["id"].as_u64().unwrap()).collect();
    assert_eq!(seen, want);
    // Past the last page: an empty array, as WooCommerce answers.
    let r = sim.get("/wp-json/wc/v3/orders?per_page=100&page=99").await;
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 0);
    // per_page above 100 is refused with WooCommerce's error shape.
    let r = sim.get("/wp-json/wc/v3/orders?per_page=101").await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "rest_invalid_param");
}

#[tokio::test]
async fn modified_after_sees_live_changes_in_order() {
    let sim = start(SimConfig::small(12, 800)).await;
    let info = sim.control(reqwest::Method::GET, "/_sim/info", None).await;
    let clock = info["clock"].as_str().unwrap().to_string();
    let changed = sim.control(reqwest::Method::POST, "/_sim/mutate?n=40", None).await;
    let touched: HashSet<u64> = changed["changes"].as_array().unwrap().iter().filter(|c| c["topic"].as_str().unwrap().starts_with("order")).map(|c| c["id"].as_u64().unwrap()).collect();
    let r = sim.get(&format!("/wp-json/wc/v3/orders?per_page=100&orderby=modified&order=asc&modified_after={}", clock.replace("+00:00", "Z"))).await;
    let page: Vec<Value> = r.json().await.unwrap();
    let ids: HashSet<u64> = page.iter().map(|o| o["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, touched);
    let times: Vec<&str> = page.iter().map(|o| o["date_modified_gmt"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not ordered by modification");
}

#[tokio::test]
async fn wrong_or_missing_credentials_get_401() {
    let sim = start(SimConfig::small(13, 50)).await;
    let url = format!("{}/wp-json/wc/v3/products", sim.base);
    let none = sim.http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.json::<Value>().await.unwrap()["code"], "woocommerce_rest_cannot_view");
    let wrong = sim.http.get(&url).basic_auth(&sim.creds.consumer_key, Some("cs_wrong")).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let fx = sim.http.get(format!("{}/feeds/fx/rates?date=2026-10-01", sim.base)).bearer_auth("nope").send().await.unwrap();
    assert_eq!(fx.status(), 401);
    let feed = sim.http.get(format!("{}/feeds/competitors/prices?date=2026-10-01", sim.base)).send().await.unwrap();
    assert_eq!(feed.status(), 401);
    assert_eq!(sim.get("/wp-json/wc/v3/products").await.status(), 200);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let mut cfg = SimConfig::small(14, 50);
    cfg.rate_limit_per_sec = Some(1);
    cfg.rate_limit_burst = 3;
    let sim = start(cfg).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..10 {
        let r = sim.get("/wp-json/wc/v3/products?per_page=5").await;
        if r.status() == 429 {
            retry_after = Some(header(&r, "retry-after"));
        }
        statuses.push(r.status().as_u16());
    }
    // The burst of 3, plus at most one token refilled if the loop took over a second.
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!((3..=4).contains(&ok), "{statuses:?}");
    assert!(statuses.contains(&429));
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn fault_knobs_inject_errors_bursts_and_broken_pages() {
    let sim = start(SimConfig::small(15, 300)).await;
    // Knobs are validated.
    let bad = sim.http.put(format!("{}/_sim/faults", sim.base)).json(&json!({"error_rate": 2.0})).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let bad = sim.http.put(format!("{}/_sim/faults", sim.base)).json(&json!({"eror_rate": 0.1})).send().await.unwrap();
    assert_eq!(bad.status(), 400, "unknown knobs are refused");

    sim.control(reqwest::Method::PUT, "/_sim/faults", Some(json!({"error_rate": 0.3}))).await;
    let mut errors = 0;
    for _ in 0..200 {
        let s = sim.get("/wp-json/wc/v3/orders?per_page=1").await.status().as_u16();
        if [500, 502, 503].contains(&s) {
            errors += 1;
        } else {
            assert_eq!(s, 200);
        }
    }
    assert!((35..=85).contains(&errors), "{errors} of 200 failed at a 30% error rate");

    sim.control(reqwest::Method::PUT, "/_sim/faults", Some(json!({"throttle_rate": 1.0, "throttle_burst": 4}))).await;
    assert_eq!(sim.get("/wp-json/wc/v3/orders").await.status(), 429);
    sim.control(reqwest::Method::PUT, "/_sim/faults", Some(json!({}))).await;
    // The burst started before the reset runs out: three more 429s, then normal service.
    let after: Vec<u16> = futures_seq(&sim, 4).await;
    assert_eq!(after, vec![429, 429, 429, 200]);

    sim.control(reqwest::Method::PUT, "/_sim/faults", Some(json!({"truncate_rate": 1.0}))).await;
    let body = sim.get("/wp-json/wc/v3/orders?per_page=20").await.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&body).is_err(), "a truncated page must not parse");
    sim.control(reqwest::Method::PUT, "/_sim/faults", Some(json!({"malformed_rate": 1.0}))).await;
    let body = sim.get("/wp-json/wc/v3/orders?per_page=20").await.text().await.unwrap();
    assert!(body.starts_with("<html>"));
    sim.control(reqwest::Method::PUT, "/_sim/faults", Some(json!({"slow_rate": 1.0, "slow_ms": 300}))).await;
    let t = std::time::Instant::now();
    assert_eq!(sim.get("/wp-json/wc/v3/orders?per_page=1").await.status(), 200);
    assert!(t.elapsed() >= std::time::Duration::from_millis(300));
}

async fn futures_seq(sim: &Sim, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(sim.get("/wp-json/wc/v3/orders?per_page=1").await.status().as_u16());
    }
    out
}

#[tokio::test]
async fn invalid_records_are_served_and_listed_in_the_truth() {
    let mut cfg = SimConfig::small(16, 1_000);
    cfg.invalid_rate = 0.05;
    let sim = start(cfg).await;
    let truth = sim.control(reqwest::Method::GET, "/_sim/truth/orders", None).await;
    let invalid = truth["invalid"].as_array().unwrap();
    assert!(!invalid.is_empty());
    let reasons: HashSet<&str> = invalid.iter().map(|i| i["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 5, "every kind of invalid order appears: {reasons:?}");
    let missing = invalid.iter().find(|i| i["reason"] == "missing_id").unwrap()["id"].as_u64().unwrap();
    let page: Vec<Value> = sim.get("/wp-json/wc/v3/orders?per_page=100&orderby=id&order=asc&page=1").await.json().await.unwrap();
    if missing <= 100 {
        assert!(page[missing as usize - 1].get("id").is_none());
    }
}

#[tokio::test]
async fn feeds_paginate_by_cursor_and_by_offset() {
    let sim = start(SimConfig::small(17, 100)).await;
    let mut cursor: Option<String> = None;
    let mut rows = 0;
    loop {
        let mut url = format!("{}/feeds/competitors/prices?date=2026-10-01&limit=50", sim.base);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let v: Value = sim.http.get(url).header("x-api-key", &sim.creds.feed_api_key).send().await.unwrap().json().await.unwrap();
        rows += v["data"].as_array().unwrap().len();
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let truth = sim.control(reqwest::Method::GET, "/_sim/truth/competitor-prices?date=2026-10-01", None).await;
    assert_eq!(rows, truth["data"].as_array().unwrap().len());
    let mut offset = 0;
    let mut rates = Vec::new();
    loop {
        let v: Value = sim.http.get(format!("{}/feeds/fx/rates?date=2026-10-01&offset={offset}&limit=5", sim.base)).bearer_auth(&sim.creds.fx_token).send().await.unwrap().json().await.unwrap();
        let page = v["rates"].as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        offset += page.len();
        rates.extend(page);
        assert_eq!(v["total"], 12);
    }
    assert_eq!(rates.len(), 12);
    let bad = sim.http.get(format!("{}/feeds/fx/rates?date=October", sim.base)).bearer_auth(&sim.creds.fx_token).send().await.unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn same_seed_same_pages_other_seed_other_pages() {
    let a = start(SimConfig::small(21, 500)).await;
    let b = start(SimConfig::small(21, 500)).await;
    let c = start(SimConfig::small(22, 500)).await;
    let url = "/wp-json/wc/v3/orders?per_page=50&page=3&orderby=id&order=asc";
    let pa: Value = a.get(url).await.json().await.unwrap();
    let pb: Value = b.get(url).await.json().await.unwrap();
    let pc: Value = c.get(url).await.json().await.unwrap();
    assert_eq!(pa, pb);
    assert_ne!(pa, pc);
    let da = a.control(reqwest::Method::GET, "/_sim/truth/daily", None).await;
    let db = b.control(reqwest::Method::GET, "/_sim/truth/daily", None).await;
    assert_eq!(da, db);
}

#[tokio::test]
async fn webhooks_are_signed_and_incidents_are_tagged() {
    // A receiver that checks each delivery's signatures independently of the simulator's code.
    let sim_cfg = SimConfig::small(23, 200);
    let secret = sim_cfg.credentials.webhook_secret.clone();
    let received: Arc<Mutex<Vec<(String, bool, bool)>>> = Arc::default();
    let pings: Arc<Mutex<Vec<String>>> = Arc::default();
    let (rx, sec, px) = (received.clone(), secret.clone(), pings.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (rx, sec, px) = (rx.clone(), sec.clone(), px.clone());
            async move {
                // The creation ping: unsigned, no topic, a form body.
                let Some(topic) = headers.get("x-wc-webhook-topic") else {
                    assert!(headers.get("x-wc-webhook-signature").is_none());
                    px.lock().unwrap().push(String::from_utf8_lossy(&body).to_string());
                    return "pong";
                };
                let mut mac = Hmac::<Sha256>::new_from_slice(sec.as_bytes()).unwrap();
                mac.update(&body);
                let woo = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                let woo_ok = headers["x-wc-webhook-signature"].to_str().unwrap() == woo;
                // Nothing WooCommerce does not send.
                let only_woo = headers.get("x-alkasba-signature").is_none() && headers["x-wc-webhook-id"] == "1" && headers["x-wc-webhook-delivery-id"].len() == 32;
                rx.lock().unwrap().push((topic.to_str().unwrap().to_string(), woo_ok, only_woo));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let sim = start(sim_cfg).await;
    sim.control(
        reqwest::Method::POST,
        "/_sim/webhooks/start",
        Some(json!({
            "url": hook, "rate": 200.0, "max_events": 60,
            "incidents": [{"at_secs": 0.0, "kind": "stockout"}, {"at_secs": 0.0, "kind": "suspicious_burst"}]
        })),
    )
    .await;
    let log = sim.ended_webhook_run(200).await;
    assert_eq!(log["running"], false);
    assert_eq!(log["sent"], 60);
    assert_eq!(log["delivered"], 60);
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 60);
    assert!(got.iter().all(|(_, woo, only)| *woo && *only), "every delivery verifies and carries WooCommerce's headers only");
    assert_eq!(pings.lock().unwrap().clone(), vec!["webhook_id=1".to_string()], "one creation ping first");
    assert_eq!(log["ping_status"], 200);
    let deliveries = log["deliveries"].as_array().unwrap();
    let tagged = |k: &str| deliveries.iter().filter(|d| d["incident"] == k).count();
    assert_eq!(tagged("stockout"), 1);
    assert_eq!(tagged("suspicious_burst"), 12);
    assert!(got.iter().any(|(t, _, _)| t == "order.created"));
}

#[tokio::test]
async fn incidents_scheduled_within_the_run_go_out_even_when_deliveries_lag() {
    // A slow receiver (20 ms a delivery, one at a time) against 500 deliveries/s: the deliveries
    // fall far behind the schedule, and the last loop turn comes after the run's end.
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sim = start(SimConfig::small(29, 200)).await;
    sim.control(
        reqwest::Method::POST,
        "/_sim/webhooks/start",
        Some(json!({
            "url": hook, "rate": 500.0, "duration_secs": 1.0, "concurrency": 1,
            "incidents": [{"at_secs": 0.8, "kind": "suspicious_burst"}, {"at_secs": 5.0, "kind": "stockout"}]
        })),
    )
    .await;
    let log = sim.ended_webhook_run(1200).await;
    assert_eq!(log["running"], false);
    let deliveries = log["deliveries"].as_array().unwrap();
    let tagged = |k: &str| deliveries.iter().filter(|d| d["incident"] == k).count();
    assert_eq!(tagged("suspicious_burst"), 12, "the burst scheduled at 0.8 s of a 1 s run is sent ({} deliveries)", deliveries.len());
    assert_eq!(tagged("stockout"), 0, "an incident scheduled after the run is not");
}
