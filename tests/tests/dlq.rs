//! Issue 21 point 4: `alkasba dlq list|show|redrive` on LocalStack. A poison page ends in the
//! fetch DLQ; the operator lists it, shows it, and once the store serves the page again,
//! redrives it: the run completes and bronze holds every product exactly once.

use std::collections::HashSet;
use std::time::Duration;

use alkasba_it::{Stack, bin_dir, eventually, lake, plan, repo, sim_credentials, wait_completed};
use alkasba_lake::arrow::array::Array;
use alkasba_lake::read::strings;
use alkasba_runner::{Runner, RunnerConfig};
use alkasba_sim::{Faults, SimConfig, serve};
use serde_json::{Value, json};

fn cli(stack: &Stack, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin_dir().join("alkasba")).args(args).args(["--stack", &stack.name]).env("AWS_ENDPOINT_URL", alkasba_it::ENDPOINT).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_shown_and_redriven_into_bronze_exactly_once() {
    let stack = Stack::deploy("dlq", &repo().join("infra/template.yaml"), false).unwrap();
    let mut cfg = SimConfig::small(7, 300);
    cfg.credentials = sim_credentials(&stack.name).await;
    cfg.faults = Faults { poison_pages: vec![2], ..Faults::default() };
    let (addr, _state, _) = serve(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let mut rc = RunnerConfig::new(repo().join("infra/template.yaml"), &stack.name, bin_dir());
    rc.functions = vec!["planner".into(), "fetcher".into()];
    rc.log_dir = Some(repo().join(".local/logs").join(&stack.name));
    rc.extra_env.insert("SOURCE_BASE_URLS".into(), format!("alkasba_store={base},competitor_prices={base},exchange_rates={base}"));
    for (k, v) in [("PAGES_PER_TASK", "2"), ("PAGE_RETRY_ROUNDS", "2"), ("PAGE_RETRY_DELAY_SECS", "1")] {
        rc.extra_env.insert(k.into(), v.into());
    }
    let runner = Runner::start(rc).await.unwrap();
    let lake = lake(&stack);
    let runs = plan(&runner, &["alkasba_store.products"], None).await;

    // list: the letter, with its stream, page and reason.
    let line: Value = eventually(Duration::from_secs(180), "the poison page's letter listed", || async {
        let out = cli(&stack, &["dlq", "list", "--queue", "fetch", "--json"]);
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).next()
    })
    .await;
    let summary = line["summary"].as_str().unwrap();
    assert!(summary.starts_with("alkasba_store.products run ") && summary.contains("page 2") && summary.contains("malformed JSON"), "{line}");
    let id = line["message_id"].as_str().unwrap().to_string();
    let out = cli(&stack, &["dlq", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fetch (1 waiting)") && text.contains("events (0 waiting)") && text.contains("erasures (0 waiting)"), "{text}");
    // show: the whole letter.
    let out = cli(&stack, &["dlq", "show", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((shown["queue"].as_str(), shown["body"]["page"].as_u64()), (Some("fetch"), Some(2)), "{shown}");
    assert!(shown["body"]["task"]["redrive"].as_u64() == Some(1) && shown["body"]["error_object"].as_str().is_some_and(|o| o.contains("/errors/")), "{shown}");
    let out = cli(&stack, &["dlq", "show", "no-such-letter"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no letter no-such-letter"));
    // The run waits for its page.
    assert!(!alkasba_ingest::runs::states(&lake).await.unwrap().values().any(|s| s.completed.contains(&runs[0])));

    // The store serves the page again; the operator redrives.
    reqwest::Client::new().put(format!("{base}/_sim/faults")).json(&json!({})).send().await.unwrap();
    let out = cli(&stack, &["dlq", "redrive", "--queue", "fetch", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let moved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(moved["redriven"], json!([id]), "{moved}");
    wait_completed(&lake, &runs, Duration::from_secs(180)).await;
    runner.shutdown().await;

    // Every valid product once, none twice.
    let truth: Value = reqwest::get(format!("{base}/_sim/truth/products")).await.unwrap().json().await.unwrap();
    let valid: HashSet<(String, String)> = truth["valid"].as_array().unwrap().iter().map(|v| (v["id"].to_string(), v["date_modified_gmt"].as_str().unwrap().to_string())).collect();
    let mut got = Vec::new();
    for b in lake.scan(&lake.bronze("alkasba_store", "products").unwrap(), None, &["_key", "_version"]).await.unwrap() {
        let (k, v) = (strings(b.column(0)).unwrap(), strings(b.column(1)).unwrap());
        got.extend((0..b.num_rows()).filter(|i| !k.is_null(*i)).map(|i| (k.value(i).to_string(), v.value(i).to_string())));
    }
    let set: HashSet<_> = got.iter().cloned().collect();
    assert_eq!(got.len(), set.len(), "a product twice in bronze");
    assert_eq!(set, valid, "bronze products differ from the store's");
    let out = cli(&stack, &["dlq", "list", "--queue", "fetch"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("fetch (0 waiting)"), "{}", String::from_utf8_lossy(&out.stdout));
    // The batch commands print JSON lines too (`--json` on every command that prints data).
    let out = cli(&stack, &["batch", "transform", "--tables", "products", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let steps: Vec<Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(steps.iter().any(|s| s["table"] == "products" && s["merged"].as_u64() == Some(valid.len() as u64)), "{steps:?}");
    stack.cleanup().await;
}
