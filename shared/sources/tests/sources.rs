//! The shipped source files: they load, bad files get errors naming file, key and problem, and
//! every stream's paginator walks the simulator over real HTTP to exactly its ground truth.

use std::collections::HashSet;
use std::path::PathBuf;

use alkasba_sim::{SimConfig, serve};
use alkasba_sources::{Next, Page, SourceFile, first_url, load_dir, next_page, parse};
use serde_json::{Value, json};

fn config_dir() -> PathBuf {
    // The runtime variable (set by cargo and nextest): a test binary reused from a build in
    // another checkout (CI's shared target dir) would carry that checkout's compile-time path.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    PathBuf::from(manifest).join("../../config/sources")
}

#[test]
fn the_shipped_sources_load() {
    let sources = load_dir(&config_dir()).unwrap();
    let names: Vec<&str> = sources.iter().map(|s| s.source.name.as_str()).collect();
    assert_eq!(names, ["alkasba_store", "competitor_prices", "exchange_rates"]);
}

#[test]
fn errors_name_the_file_the_key_and_the_problem() {
    let good = std::fs::read_to_string(config_dir().join("exchange_rates.toml")).unwrap();
    let cases = [
        (good.replace("limit = 5", "limit = 5, limt = 3"), "unknown field `limt`"),
        (good.replace("key = \"token\"", "key = \"token\", token = \"hunter2\""), "unknown field `token`"),
        (good.replace("secretsmanager:${stack}/feeds/exchange-rates", "hunter2"), "never goes in a config file"),
        (good.replace("name = \"rates\"", "name = \"Rates!\""), "stream[0] (Rates!).name"),
        (good.replace("primary_key = [\"/date\", \"/currency\"]", "primary_key = [\"currency\"]"), "is not a JSON pointer"),
        (good.replace("format = \"currency\"", "format = \"currency\", min = 3, max = 1"), "min 3 is above max 1"),
        (good.replace("type = \"number\"", "type = \"float\""), "unknown variant `float`"),
        (good.replace("limit = 5", "limit = 0"), "paginator.limit"),
        (good.replace("http://127.0.0.1:8787", "ftp://x"), "source.base_url"),
        // Issue 18: personal data is sealed unless declared clear, and keys are read in clear.
        (good.replace("in_clear = [\"/date\", ", "in_clear = ["), "/date must be in in_clear"),
        (good.replace("in_clear = [\"/date\", ", "in_clear = [\"/_sealed\", "), "not the whole record or the sealed part"),
        (good.replace("in_clear = [\"/date\", \"/currency\", \"/mad_per_unit\"]\n", ""), "missing field `in_clear`"),
        (good.replace("in_clear", "sensitive"), "unknown field `sensitive`"),
    ];
    for (text, want) in cases {
        let err = parse("config/sources/exchange_rates.toml", &text).unwrap_err().to_string();
        assert!(err.starts_with("config/sources/exchange_rates.toml: "), "{err}");
        assert!(err.contains(want), "expected {want:?} in: {err}");
    }
}

/// Walks every page of `stream` from the first URL, returning the records.
async fn crawl(http: &reqwest::Client, file: &SourceFile, stream: usize, auth: Option<(String, String)>, watermark: Option<&str>) -> Vec<Value> {
    let st = &file.streams[stream];
    // The feeds' `date = "${run_date}"` parameter takes this day.
    let day = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let mut url = first_url(&file.source, st, watermark, day);
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let mut req = http.get(url.clone());
        if let Some((k, v)) = &auth {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let headers = resp.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string())).collect();
        let page = Page::new(st, url.clone(), headers, resp.text().await.unwrap()).unwrap();
        out.extend(page.values());
        match next_page(st, &page).unwrap() {
            Next::Done => return out,
            Next::Url(u) => url = u,
        }
    }
    panic!("more than 10,000 pages");
}

#[tokio::test]
async fn every_paginator_walks_the_simulator_to_its_ground_truth() {
    let mut cfg = SimConfig::small(31, 1_250);
    cfg.invalid_rate = 0.02;
    let creds = cfg.credentials.clone();
    let (addr, state, _) = serve(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let mut sources = load_dir(&config_dir()).unwrap();
    for s in &mut sources {
        s.source.base_url = base.parse().unwrap();
    }
    let secret = |name: &str| match name {
        "alkasba_store" => json!({"consumer_key": creds.consumer_key, "consumer_secret": creds.consumer_secret}),
        "competitor_prices" => json!({"api_key": creds.feed_api_key}),
        _ => json!({"token": creds.fx_token}),
    };
    let auth = |f: &SourceFile| f.source.auth.header(&secret(&f.source.name)).unwrap();

    // Page numbers + total-pages header: every order, once (invalid ones included: they are
    // quarantined later, never dropped).
    let store = &sources[0];
    let orders = crawl(&http, store, 2, auth(store), None).await;
    assert_eq!(orders.len(), 1_250);
    let truth: Value = http.get(format!("{base}/_sim/truth/orders")).send().await.unwrap().json().await.unwrap();
    let valid: HashSet<u64> = truth["valid"].as_array().unwrap().iter().map(|v| v["id"].as_u64().unwrap()).collect();
    let served: HashSet<u64> = orders.iter().filter_map(|o| o["id"].as_u64()).collect();
    assert!(valid.is_subset(&served));
    assert_eq!(served.len() + truth["invalid"].as_array().unwrap().iter().filter(|i| i["reason"] == "missing_id").count(), 1_250);

    // Incremental: exactly what changed after the watermark.
    let watermark = chrono::DateTime::from_timestamp(state.store().clock, 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let changed = http.post(format!("{base}/_sim/mutate?n=30")).send().await.unwrap().json::<Value>().await.unwrap();
    let touched: HashSet<u64> = changed["changes"].as_array().unwrap().iter().filter(|c| c["topic"].as_str().unwrap().starts_with("order")).map(|c| c["id"].as_u64().unwrap()).collect();
    let incremental = crawl(&http, store, 2, auth(store), Some(&watermark)).await;
    let got: HashSet<u64> = incremental.iter().filter_map(|o| o["id"].as_u64()).collect();
    let truth: Value = http.get(format!("{base}/_sim/truth/orders")).send().await.unwrap().json().await.unwrap();
    let no_id: HashSet<u64> = truth["invalid"].as_array().unwrap().iter().filter(|i| i["reason"] == "missing_id").map(|i| i["id"].as_u64().unwrap()).collect();
    assert_eq!(incremental.len(), touched.len(), "one record per touched order");
    assert_eq!(got, touched.difference(&no_id).copied().collect::<HashSet<u64>>());

    // Body cursor: every competitor price of the day.
    let feed = &sources[1];
    let mut f = feed.clone();
    if let alkasba_sources::Paginator::BodyCursor { size, .. } = &mut f.streams[0].paginator {
        *size = Some(100); // several pages for this small store
    }
    let prices = crawl(&http, &f, 0, auth(feed), None).await;
    let truth: Value = http.get(format!("{base}/_sim/truth/competitor-prices?date=2026-10-01")).send().await.unwrap().json().await.unwrap();
    assert_eq!(prices.len(), truth["data"].as_array().unwrap().len());
    assert!(prices.len() > 300, "several pages of 100: {}", prices.len());

    // Offset/limit: the 12 rates over three pages.
    let fx = &sources[2];
    let rates = crawl(&http, fx, 0, auth(fx), None).await;
    let currencies: HashSet<&str> = rates.iter().map(|r| r["currency"].as_str().unwrap()).collect();
    assert_eq!(currencies.len(), 12);

    // Link header: the same orders, following rel="next".
    let mut linked = store.clone();
    linked.streams[2].paginator =
        parse("x", "[source]\nname='x'\nbase_url='http://h'\nauth={type='none'}\n[[stream]]\nname='s'\npath='/p'\nprimary_key=['/id']\nin_clear=['/id']\nparams={per_page='100'}\npaginator={type='link_header'}\n")
            .unwrap()
            .streams[0]
            .paginator
            .clone();
    linked.streams[2].params.insert("per_page".into(), "100".into());
    let via_links = crawl(&http, &linked, 2, auth(store), None).await;
    assert_eq!(via_links.len(), state.store().orders.len());
}
