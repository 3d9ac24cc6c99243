//! Issue 21 point 4: `alkasba doctor` on LocalStack against the simulator: every check passes
//! on a healthy deployment; a missing webhook registration and refused store credentials are
//! each reported as a failure naming what to fix, and the command exits non-zero. On the healthy
//! deployment, `alkasba ingest backfill --json` loads a stream and says what it did.

use alkasba_it::{Stack, bin_dir, repo, sdk, sim_credentials};
use alkasba_sim::{SimConfig, serve};
use serde_json::{Value, json};

fn doctor(stack: &Stack, base: &str, hook: &str) -> (bool, Vec<Value>) {
    let out = std::process::Command::new(bin_dir().join("alkasba"))
        .args(["doctor", "--stack", &stack.name, "--webhook-url", hook, "--json"])
        .env("AWS_ENDPOINT_URL", alkasba_it::ENDPOINT)
        .env("SOURCE_BASE_URLS", format!("alkasba_store={base},competitor_prices={base},exchange_rates={base}"))
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out.status.success(), lines)
}

fn status<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_healthy_deployment_and_names_what_to_fix() {
    let stack = Stack::deploy("doc", &repo().join("infra/template.yaml"), false).unwrap();
    let mut cfg = SimConfig::small(3, 100);
    cfg.credentials = sim_credentials(&stack.name).await;
    let (addr, state, _) = serve(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let hook = "https://hook.example.test/webhook";
    let http = reqwest::Client::new();
    for topic in ["order.created", "order.updated", "product.updated"] {
        http.post(format!("{base}/_sim/webhooks/register")).json(&json!({"topic": topic, "delivery_url": hook})).send().await.unwrap().error_for_status().unwrap();
    }

    let (ok, checks) = doctor(&stack, &base, hook);
    assert!(!ok, "a missing registration fails the doctor: {checks:?}");
    for name in ["stack", "lake", "dlq fetch", "dlq events", "dlq erasures", "source alkasba_store", "source competitor_prices", "source exchange_rates", "clock alkasba_store"] {
        assert_eq!(status(&checks, name)["status"], "ok", "{name}: {checks:?}");
    }
    let w = status(&checks, "webhooks");
    assert!(w["status"] == "fail" && w["detail"].as_str().unwrap().contains("customer.updated") && w["fix"].as_str().unwrap().contains("Add webhook"), "{w}");

    http.post(format!("{base}/_sim/webhooks/register")).json(&json!({"topic": "customer.updated", "delivery_url": hook})).send().await.unwrap().error_for_status().unwrap();
    let (ok, checks) = doctor(&stack, &base, hook);
    assert!(ok, "{checks:?}");
    assert_eq!(status(&checks, "webhooks")["status"], "ok");

    // A backfill of the products, its summary as JSON on stdout (no progress bar in it).
    let out = std::process::Command::new(bin_dir().join("alkasba"))
        .args(["ingest", "backfill", "--stack", &stack.name, "--streams", "alkasba_store.products", "--json"])
        .env("AWS_ENDPOINT_URL", alkasba_it::ENDPOINT)
        .env("SOURCE_BASE_URLS", format!("alkasba_store={base},competitor_prices={base},exchange_rates={base}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let run = &summary["runs"][0];
    assert_eq!(run["streams"][0]["stream"], "alkasba_store.products", "{summary}");
    assert_eq!(run["records"], state.store().len(alkasba_sim::store::Resource::Products) as u64, "every product fetched once: {summary}");
    assert_eq!(run["pages_committed"], run["streams"][0]["pages"], "{summary}");
    assert_eq!(run["failed_tasks"], 0, "{summary}");

    // The store's key replaced by a wrong one: refused, and the fix names the secret.
    let sm = aws_sdk_secretsmanager::Client::new(&sdk().await);
    let secret = format!("{}/store/credentials", stack.name);
    sm.put_secret_value().secret_id(&secret).secret_string(json!({"consumer_key": "ck_wrong", "consumer_secret": "cs_wrong"}).to_string()).send().await.unwrap();
    let (ok, checks) = doctor(&stack, &base, hook);
    assert!(!ok);
    let s = status(&checks, "source alkasba_store");
    assert!(s["status"] == "fail" && s["detail"].as_str().unwrap().contains("credentials refused (401)") && s["fix"].as_str().unwrap().contains(&secret), "{s}");
    assert_eq!(status(&checks, "source exchange_rates")["status"], "ok", "the other sources are unaffected");
    stack.cleanup().await;
}
