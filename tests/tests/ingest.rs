//! Issue 4's acceptance tests: the real template on LocalStack, the real planner and fetcher
//! binaries under the runner, the simulator over HTTP with faults on.
//!
//! * Bronze equals the store's ground truth exactly (every valid record once per key and
//!   version) with 20% 5xx, 429 bursts, malformed and truncated pages, slow answers, the store
//!   changing during the run, SQS redelivery (a visibility timeout shorter than some tasks), four
//!   concurrent fetchers, and a fetcher killed with SIGKILL mid-run.
//! * Every invalid record is quarantined with a reason; a poison page ends in the DLQ with its
//!   reason, its raw response sealed under errors/, and a `PagesDeadLettered` metric.
//! * No plaintext email, phone or full name anywhere in the bucket, the queues or the logs; the
//!   decrypt CLI gives them back.
//! * DuckDB's delta extension reads the same counts.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use alkasba_it::{Stack, bin_dir, duckdb, eventually, lake, plan, repo, sdk, sim_credentials, wait_completed};
use alkasba_lake::Lake;
use alkasba_lake::arrow::array::Array;
use alkasba_lake::read::strings;
use alkasba_runner::{Runner, RunnerConfig};
use alkasba_sim::store::Resource;
use alkasba_sim::{Faults, SimConfig, serve};
use serde_json::{Value, json};

async fn start_runner(stack: &Stack, base: &str, extra: &[(&str, &str)]) -> Runner {
    let template = repo().join("infra/template.yaml");
    let mut cfg = RunnerConfig::new(&template, &stack.name, bin_dir());
    cfg.functions = vec!["planner".into(), "fetcher".into()];
    // Four fetcher instances at once (the template's MaximumConcurrency).
    cfg.concurrency = 4;
    cfg.log_dir = Some(log_dir(stack));
    let urls = format!("alkasba_store={base},competitor_prices={base},exchange_rates={base}");
    cfg.extra_env.insert("SOURCE_BASE_URLS".into(), urls);
    for (k, v) in extra {
        cfg.extra_env.insert(k.to_string(), v.to_string());
    }
    Runner::start(cfg).await.unwrap()
}

fn log_dir(stack: &Stack) -> PathBuf {
    repo().join(".local/logs").join(&stack.name)
}

async fn pairs(lake: &Lake, source: &str, stream: &str) -> Vec<(String, String)> {
    let batches = lake.scan(&lake.bronze(source, stream).unwrap(), None, &["_key", "_version"]).await.unwrap();
    let mut out = Vec::new();
    for b in batches {
        let (k, v) = (strings(b.column(0)).unwrap(), strings(b.column(1)).unwrap());
        out.extend((0..b.num_rows()).map(|i| (k.value(i).to_string(), v.value(i).to_string())));
    }
    out
}

async fn truth(base: &str, resource: &str) -> Value {
    reqwest::get(format!("{base}/_sim/truth/{resource}")).await.unwrap().json().await.unwrap()
}

/// The store's valid (key, version) pairs of `resource`, and bronze's, which must hold each pair
/// once.
async fn truth_and_bronze(lake: &Lake, base: &str, resource: &str) -> (Value, HashSet<(String, String)>, HashSet<(String, String)>) {
    let t = truth(base, resource).await;
    let valid: HashSet<(String, String)> = t["valid"].as_array().unwrap().iter().map(|v| (v["id"].to_string(), v["date_modified_gmt"].as_str().unwrap().to_string())).collect();
    let got = pairs(lake, "alkasba_store", resource).await;
    let set: HashSet<(String, String)> = got.iter().cloned().collect();
    assert_eq!(got.len(), set.len(), "{resource}: a key+version twice in bronze");
    (t, valid, set)
}

/// How long runs of `pages` pages may take here, derived from the work rather than fixed: each
/// page's worst case under the injected faults (every attempt slow, backoffs between them:
/// `PAGE_SECS`), spread over `workers` fetchers; every retry round's delay (`rounds` rounds,
/// doubling from `delay_secs`); and, per killed fetcher, its task's return after the
/// visibility timeout, twice (the kill and a redelivery). A bigger store or harsher faults wait
/// longer; a stuck run still fails the test.
fn run_limit(pages: u64, workers: u64, rounds: u32, delay_secs: u64, visibility_secs: u64, kills: u64) -> Duration {
    const START_SECS: u64 = 60;
    const PAGE_SECS: u64 = 8;
    let retry_delays: u64 = (0..rounds).map(|r| delay_secs << r).sum();
    Duration::from_secs(START_SECS + pages * PAGE_SECS / workers.max(1) + retry_delays + kills * 2 * visibility_secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bronze_is_exactly_the_truth_under_faults_redelivery_concurrency_and_sigkill() {
    // A short visibility timeout: a crashed fetcher's task comes back within the test, and slow
    // tasks are redelivered while still running (SQS redelivery, for real).
    let stack = Stack::deploy_with("ing", &repo().join("infra/template.yaml"), false, &[("FetcherTimeoutSeconds", "20"), ("FetchTasksVisibilitySeconds", "25")]).unwrap();
    let mut cfg = SimConfig::small(11, 4_000);
    cfg.invalid_rate = 0.03;
    cfg.credentials = sim_credentials(&stack.name).await;
    cfg.faults = Faults { error_rate: 0.2, throttle_rate: 0.02, throttle_burst: 3, slow_rate: 0.05, slow_ms: 400, malformed_rate: 0.03, truncate_rate: 0.02, ..Faults::default() };
    let (addr, state, _) = serve(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let lake = lake(&stack);
    // A page that fails a whole round of retries under the 20% errors comes back 2 s later (the
    // rounds are what make the run complete whatever page is unlucky).
    let runner = start_runner(&stack, &base, &[("PAGES_PER_TASK", "4"), ("PAGES_PER_COMMIT", "2"), ("DEADLINE_MARGIN_SECS", "5"), ("FETCH_CONCURRENCY", "2"), ("PAGE_RETRY_DELAY_SECS", "2")]).await;
    let http = reqwest::Client::new();

    let streams = ["alkasba_store.orders", "alkasba_store.customers", "competitor_prices.prices", "exchange_rates.rates"];
    let runs = plan(&runner, &streams, None).await;
    assert_eq!(runs.len(), 4, "{runs:?}");

    // Mid-run: the store changes, and one fetcher is killed with SIGKILL once bronze has commits.
    let orders = lake.bronze("alkasba_store", "orders").unwrap();
    eventually(Duration::from_secs(120), "a few bronze commits", || async {
        let t = alkasba_lake::read::open_table(&orders, lake.storage()).await.ok()??;
        (t.version()? >= 2).then_some(())
    })
    .await;
    http.post(format!("{base}/_sim/mutate?n=40")).send().await.unwrap();
    // Four fetcher processes run at once, and one of them dies.
    let pids = eventually(Duration::from_secs(60), "four fetcher processes", || async {
        let p = alkasba_it::function_pids("fetcher", &stack);
        (p.len() >= 4).then_some(p)
    })
    .await;
    std::process::Command::new("kill").arg("-9").arg(pids[0].to_string()).status().unwrap();
    http.post(format!("{base}/_sim/mutate?n=40")).send().await.unwrap();
    // The pages of the four streams (100 records a page; the feeds' pages are few and small).
    let pages = |n: u64| n.div_ceil(100);
    let store_pages = pages(4_000) + pages(state.store().len(alkasba_sim::store::Resource::Customers) as u64);
    let limit = |pages: u64, kills: u64| run_limit(pages, 4, 4, 2, 25, kills);
    wait_completed(&lake, &runs, limit(store_pages + 10, 1)).await;

    // A second, incremental run picks up every change (the lookback overlap adds no duplicate).
    let runs2 = plan(&runner, &["alkasba_store.orders", "alkasba_store.customers"], None).await;
    wait_completed(&lake, &runs2, limit(store_pages, 0)).await;
    http.put(format!("{base}/_sim/faults")).json(&json!({})).send().await.unwrap();

    for resource in ["orders", "customers"] {
        let (_, valid, set) = truth_and_bronze(&lake, &base, resource).await;
        let missing: Vec<_> = valid.difference(&set).take(5).collect();
        assert!(missing.is_empty(), "{resource}: missing from bronze: {missing:?}");
        // Bronze also keeps versions the store has since replaced; every one was a real version.
        let ids: HashSet<&String> = valid.iter().map(|(k, _)| k).collect();
        assert!(set.iter().all(|(k, _)| ids.contains(k)), "{resource}: a key the store never had");
    }
    // The feeds are daily snapshots; the runs read the day they were opened (in their id).
    let day = format!("{}-{}-{}", &runs[0][0..4], &runs[0][4..6], &runs[0][6..8]);
    let prices = truth(&base, &format!("competitor-prices?date={day}")).await["data"].as_array().unwrap().len();
    assert_eq!(pairs(&lake, "competitor_prices", "prices").await.len(), prices);
    assert_eq!(pairs(&lake, "exchange_rates", "rates").await.len(), 12);

    // Quarantine: every injected invalid record, with a reason.
    let q = lake.scan(&lake.quarantine().unwrap(), None, &["stream", "reasons"]).await.unwrap();
    let mut quarantined = std::collections::HashMap::<String, usize>::new();
    for b in &q {
        let (s, r) = (strings(b.column(0)).unwrap(), strings(b.column(1)).unwrap());
        for i in 0..b.num_rows() {
            assert!(!r.value(i).is_empty());
            *quarantined.entry(s.value(i).to_string()).or_default() += 1;
        }
    }
    for resource in ["orders", "customers"] {
        let invalid = truth(&base, resource).await["invalid"].as_array().unwrap().len();
        let n = quarantined.get(&format!("alkasba_store.{resource}")).copied().unwrap_or(0);
        assert!(n >= invalid && invalid > 0, "{resource}: {n} quarantined rows for {invalid} invalid records");
    }

    // DuckDB (an independent Delta reader) counts the same rows.
    let root = stack.output("LakeRoot");
    let got = pairs(&lake, "alkasba_store", "orders").await.len();
    let rows = duckdb(&format!("SELECT count(*) AS n, count(DISTINCT _key || _version) AS d FROM delta_scan('{root}/bronze/alkasba_store/orders')")).unwrap();
    assert_eq!(rows[0]["n"], json!(got), "{rows:?}");
    assert_eq!(rows[0]["d"], json!(got), "{rows:?}");

    // The ledger has the counts.
    let ledger = duckdb(&format!("SELECT sum(fetched) AS f, sum(valid) AS v, sum(quarantined) AS q FROM delta_scan('{root}/ops/ingestion_runs')")).unwrap();
    assert!(ledger[0]["f"].as_i64().unwrap() >= 4_000, "{ledger:?}");

    runner.shutdown().await;

    // No personal data in clear: every object in the bucket, every table's values, every
    // message left in the queues, every log line.
    let finder = alkasba_it::personal_data_finder(&state.store());
    let scan = |what: &str, text: &str| {
        assert!(finder.find(text).is_none(), "personal data in clear in {what}");
    };
    let cfg = sdk().await;
    let s3 = aws_sdk_s3::Client::new(&cfg);
    let bucket = stack.output("LakeBucketName");
    let mut objects = 0;
    let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(page) = pages.next().await {
        for o in page.unwrap().contents() {
            let key = o.key().unwrap();
            let body = s3.get_object().bucket(bucket).key(key).send().await.unwrap().body.collect().await.unwrap().into_bytes();
            scan(key, &String::from_utf8_lossy(&body));
            objects += 1;
        }
    }
    assert!(objects > 20, "{objects} objects");
    for (source, stream) in [("alkasba_store", "customers"), ("alkasba_store", "orders")] {
        for b in lake.scan(&lake.bronze(source, stream).unwrap(), None, &[]).await.unwrap() {
            for c in 0..b.num_columns() {
                let col = strings(b.column(c)).unwrap();
                scan(&format!("bronze {stream}"), &(0..col.len()).filter(|i| !col.is_null(*i)).map(|i| col.value(i)).collect::<Vec<_>>().join("\n"));
            }
        }
    }
    for b in lake.scan(&lake.quarantine().unwrap(), None, &["record"]).await.unwrap() {
        let col = strings(b.column(0)).unwrap();
        scan("quarantine", &(0..col.len()).map(|i| col.value(i)).collect::<Vec<_>>().join("\n"));
    }
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    for q in ["FetchTasksQueueUrl", "FetchTasksDlqUrl", "StoreEventsQueueUrl", "StoreEventsDlqUrl"] {
        let got = sqs.receive_message().queue_url(stack.output(q)).max_number_of_messages(10).send().await.unwrap();
        for m in got.messages() {
            scan(q, m.body().unwrap_or_default());
        }
    }
    for entry in std::fs::read_dir(log_dir(&stack)).unwrap() {
        let path = entry.unwrap().path();
        scan(&path.display().to_string(), &std::fs::read_to_string(&path).unwrap_or_default());
    }

    // ... and the decrypt CLI gives them back.
    let c = state.store().render(Resource::Customers, 5);
    let out = std::process::Command::new(bin_dir().join("alkasba"))
        .args(["pii", "decrypt", "--stack", &stack.name, "--table", &format!("{root}/bronze/alkasba_store/customers"), "--keys", "5", "--limit", "1"])
        .env("AWS_ENDPOINT_URL", alkasba_it::ENDPOINT)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row: Value = serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(row["email"], c["email"]);
    assert_eq!(row["billing"]["phone"], c["billing"]["phone"]);
    assert_eq!(row["last_name"], c["last_name"]);
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_page_ends_in_the_dlq_with_its_reason_and_sealed_response() {
    let stack = Stack::deploy("poison", &repo().join("infra/template.yaml"), false).unwrap();
    let mut cfg = SimConfig::small(5, 300);
    cfg.credentials = sim_credentials(&stack.name).await;
    cfg.faults = Faults { poison_pages: vec![2], ..Faults::default() };
    let (addr, _state, _) = serve(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let lake = lake(&stack);
    // Two short rounds, so the poison page is given up on quickly.
    let runner = start_runner(&stack, &base, &[("PAGES_PER_TASK", "2"), ("PAGE_RETRY_ROUNDS", "2"), ("PAGE_RETRY_DELAY_SECS", "1")]).await;
    let runs = plan(&runner, &["alkasba_store.products"], None).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let dlq = stack.output("FetchTasksDlqUrl").to_string();
    // On a time-out, say what the runner did (this test once timed out with the fetcher never
    // invoked, right after a LocalStack start, and never again: keep the evidence if it recurs).
    let mut reports = runner.subscribe();
    let waited = tokio::time::timeout(Duration::from_secs(180), async {
        loop {
            if let Ok(got) = sqs.receive_message().queue_url(&dlq).max_number_of_messages(1).wait_time_seconds(1).send().await
                && let Some(v) = got.messages().first().and_then(|m| serde_json::from_str::<Value>(m.body()?).ok())
            {
                return v;
            }
        }
    })
    .await;
    let Ok(letter) = waited else {
        let mut seen = Vec::new();
        while let Ok(r) = reports.try_recv() {
            seen.push(format!("{}: {} in {:?}", r.function, r.invocation.outcome.label(), r.invocation.duration));
        }
        panic!("no dead letter within 180 s; runs {runs:?}; invocations seen: {seen:?}");
    };
    // ... and reported for a person: the invocation that gave the page up ends by writing a
    // CloudWatch Embedded Metric Format document counting it (what the alarm watches).
    let log = log_dir(&stack).join("FetcherFunction.log");
    let emf: Value = eventually(Duration::from_secs(60), "the PagesDeadLettered metric in the fetcher's output", || async {
        let text = tokio::fs::read_to_string(&log).await.ok()?;
        text.lines().filter_map(|l| serde_json::from_str::<Value>(&l[l.find('{')?..]).ok()).find(|v| v.get("PagesDeadLettered").is_some())
    })
    .await;
    runner.shutdown().await;
    assert_eq!(emf["PagesDeadLettered"], 1, "{emf}");
    let directive = &emf["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "AlkasbaLake", "{emf}");
    assert_eq!(directive["Dimensions"], json!([["Function"]]), "{emf}");
    assert!(directive["Metrics"].as_array().unwrap().iter().any(|m| m["Name"] == "PagesDeadLettered"), "{emf}");
    assert!(emf["Function"].as_str().is_some_and(|f| !f.is_empty()) && emf["RequestId"].is_string(), "{emf}");
    assert_eq!(letter["page"], 2, "{letter}");
    assert!(letter["reason"].as_str().unwrap().contains("malformed JSON"), "{letter}");
    let object = letter["error_object"].as_str().unwrap();
    assert!(object.contains("/errors/alkasba_store/products/"), "{object}");
    // The run is not complete (its watermark must not move past a lost page) ...
    let states = alkasba_ingest::runs::states(&lake).await.unwrap();
    assert!(!states.values().any(|s| s.completed.contains(&runs[0])));
    // ... and the sealed raw response opens with kms:Decrypt.
    let out =
        std::process::Command::new(bin_dir().join("alkasba")).args(["pii", "open-error", "--stack", &stack.name, "--object", object]).env("AWS_ENDPOINT_URL", alkasba_it::ENDPOINT).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Error establishing a database connection"));
    stack.cleanup().await;
}

/// Issue 15: a fetcher killed at each step of a commit (after fetching, before anything is
/// written; after the keys and quarantine rows, before bronze; right after the bronze commit,
/// before its message is deleted). Each dies once, its task comes back after the visibility
/// timeout, and the run completes with bronze and quarantine exactly equal to the truth (nothing
/// twice) and no data file in the bucket that its table does not reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetcher_killed_at_each_step_of_a_commit_leaves_bronze_and_quarantine_exact() {
    let visibility = 25;
    let stack = Stack::deploy_with("crash", &repo().join("infra/template.yaml"), false, &[("FetcherTimeoutSeconds", "20"), ("FetchTasksVisibilitySeconds", &visibility.to_string())]).unwrap();
    let mut cfg = SimConfig::small(13, 1_500);
    cfg.invalid_rate = 0.03;
    cfg.credentials = sim_credentials(&stack.name).await;
    let (addr, _state, _) = serve(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let lake = lake(&stack);
    let once = tempfile::tempdir().unwrap();
    let steps = ["before_write", "before_bronze", "after_commit"];
    let crash_at = steps.join(",");
    let once_dir = once.path().display().to_string();
    let runner =
        start_runner(&stack, &base, &[("PAGES_PER_TASK", "4"), ("PAGES_PER_COMMIT", "2"), ("DEADLINE_MARGIN_SECS", "5"), ("CRASH_AT", crash_at.as_str()), ("CRASH_ONCE_DIR", once_dir.as_str())]).await;
    let streams = ["alkasba_store.orders", "alkasba_store.customers"];
    let runs = plan(&runner, &streams, None).await;
    // The work: about twenty pages (a second or two each here), and each of the three crashes
    // costs at most two visibility timeouts (the message of the dead invocation, and a
    // continuation it may have sent).
    wait_completed(&lake, &runs, Duration::from_secs(120 + 3 * 2 * visibility)).await;
    runner.shutdown().await;
    for step in steps {
        assert!(once.path().join(step).exists(), "no fetcher crashed at {step}");
    }

    for resource in ["orders", "customers"] {
        let (t, valid, set) = truth_and_bronze(&lake, &base, resource).await;
        assert_eq!(set, valid, "{resource}: bronze equals the truth");
        // Quarantine: each invalid record exactly once.
        let invalid = t["invalid"].as_array().unwrap().len();
        let q = lake.scan(&lake.quarantine().unwrap(), None, &["stream"]).await.unwrap();
        let n: usize = q.iter().map(|b| (0..b.num_rows()).filter(|i| strings(b.column(0)).unwrap().value(*i) == format!("alkasba_store.{resource}")).count()).sum();
        assert_eq!(n, invalid, "{resource}: quarantine rows");
    }

    // Every data file under bronze and quarantine is one its table references: a crash leaves
    // none of its own, and a writer that lost a commit race (four fetchers on two tables race
    // often) removed the files it had uploaded for it.
    let races = std::fs::read_dir(log_dir(&stack)).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default().matches("commit race lost").count()).sum::<usize>();
    let mut unreferenced_total = 0;
    let s3 = aws_sdk_s3::Client::new(&sdk().await);
    let bucket = stack.output("LakeBucketName");
    for table in ["bronze/alkasba_store/orders", "bronze/alkasba_store/customers", "quarantine/ingest"] {
        let t = alkasba_lake::read::open_table(&lake.table(table).unwrap(), lake.storage()).await.unwrap().unwrap();
        let referenced: HashSet<String> = t.get_file_uris().unwrap().filter_map(|u| u.split_once(&format!("/{table}/")).map(|(_, k)| format!("{table}/{k}"))).collect();
        let mut listed = Vec::new();
        let mut pages = s3.list_objects_v2().bucket(bucket).prefix(format!("{table}/")).into_paginator().send();
        while let Some(page) = pages.next().await {
            listed.extend(page.unwrap().contents().iter().filter_map(|o| o.key().map(str::to_string)).filter(|k| k.ends_with(".parquet")));
        }
        let unreferenced: Vec<&String> = listed.iter().filter(|k| !referenced.contains(*k)).collect();
        assert!(referenced.iter().all(|k| listed.contains(k)), "{table}: a referenced file is missing");
        eprintln!("{table}: {} files, {} unreferenced", listed.len(), unreferenced.len());
        unreferenced_total += unreferenced.len();
    }
    assert_eq!(unreferenced_total, 0, "unreferenced files ({races} commit races lost)");
    stack.cleanup().await;
}
