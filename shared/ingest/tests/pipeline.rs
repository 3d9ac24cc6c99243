//! The ingestion library end to end on one machine, without AWS: a real simulator over HTTP, a
//! real Delta lake on the local file system, in-memory queue and keys. Bronze must equal the
//! store's ground truth (every valid record once per key and version), every invalid record must
//! be quarantined, personal data must never be stored in clear, and a second (incremental) run
//! must add exactly the changes.

use std::collections::HashSet;

use alkasba_ingest::ports::MemoryQueue;
use alkasba_ingest::{Ingest, Tuning, testkit};
use alkasba_lake::arrow::array::Array;
use alkasba_lake::read::strings;
use alkasba_pii::{LocalKeys, Opener, read_keyring};
use alkasba_sim::SimConfig;
use serde_json::Value;

async fn rows(ingest: &Ingest<MemoryQueue, LocalKeys>, source: &str, stream: &str, cols: &[&str]) -> Vec<Vec<Option<String>>> {
    let uri = ingest.lake.bronze(source, stream).unwrap();
    let batches = ingest.lake.scan(&uri, None, cols).await.unwrap();
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            out.push(
                (0..cols.len())
                    .map(|c| {
                        let s = strings(b.column(c)).unwrap();
                        (!s.is_null(i)).then(|| s.value(i).to_string())
                    })
                    .collect(),
            );
        }
    }
    out
}

/// Bronze's (key, version) pairs of `resource` (an `alkasba_store` stream); `when` names the
/// moment in the assertion that none is there twice.
async fn bronze_versions(ingest: &Ingest<MemoryQueue, LocalKeys>, resource: &str, when: &str) -> HashSet<(String, String)> {
    let got = rows(ingest, "alkasba_store", resource, &["_key", "_version"]).await;
    let pairs: Vec<(String, String)> = got.iter().map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap())).collect();
    let set: HashSet<(String, String)> = pairs.iter().cloned().collect();
    assert_eq!(pairs.len(), set.len(), "{resource}: no key+version twice in bronze {when}");
    set
}

async fn truth(base: &str, resource: &str) -> (HashSet<(String, String)>, Vec<Value>) {
    let t: Value = reqwest::get(format!("{base}/_sim/truth/{resource}")).await.unwrap().json().await.unwrap();
    let valid = t["valid"].as_array().unwrap().iter().map(|v| (v["id"].to_string(), v["date_modified_gmt"].as_str().unwrap().to_string())).collect();
    (valid, t["invalid"].as_array().unwrap().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bronze_equals_the_truth_and_personal_data_is_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::small(7, 3_000);
    cfg.invalid_rate = 0.03;
    // Two of a group's three pages fetched ahead: the third is fetched when the group's turn comes.
    let tuning = Tuning { pages_per_task: 6, pages_per_commit: 3, fetch_ahead_pages: 2, ..Tuning::default() };
    let local = testkit::local(cfg, dir.path(), tuning).await;
    let (ingest, base) = (&local.ingest, local.base.clone());

    let reports = local.run(&["alkasba_store.orders", "alkasba_store.customers"]).await;
    assert!(reports.iter().any(|r| r.run_completed));

    for resource in ["orders", "customers"] {
        let (valid, invalid) = truth(&base, resource).await;
        let set = bronze_versions(ingest, resource, "after the first run").await;
        assert_eq!(set, valid, "{resource}: bronze equals the truth");
        // Quarantine: every injected invalid record, with a reason.
        let q = ingest.lake.scan(&ingest.lake.quarantine().unwrap(), None, &["stream", "reasons", "record"]).await.unwrap();
        let mut n = 0;
        for b in &q {
            let (s, r, rec) = (strings(b.column(0)).unwrap(), strings(b.column(1)).unwrap(), strings(b.column(2)).unwrap());
            for i in 0..b.num_rows() {
                if s.value(i) == format!("alkasba_store.{resource}") {
                    n += 1;
                    assert!(!r.value(i).is_empty());
                    assert!(!rec.value(i).contains('@'), "no email in clear in quarantine");
                }
            }
        }
        assert_eq!(n, invalid.len(), "{resource}: every invalid record quarantined once");
    }

    // Personal data: sealed in bronze, readable with the keyring; tokens join people.
    // Issue 18: everything the stream does not keep in clear is one sealed value; no column of
    // bronze holds an email, a name or an address.
    let c = rows(ingest, "alkasba_store", "customers", &["_key", "_sealed", "email_token"]).await;
    assert!(c.iter().all(|r| alkasba_pii::is_sealed(r[1].as_deref().unwrap())));
    let table = ingest.lake.bronze("alkasba_store", "customers").unwrap();
    let columns: Vec<String> = ingest.lake.open(&table).await.unwrap().snapshot().unwrap().schema().fields().map(|f| f.name().clone()).collect();
    for personal in ["email", "first_name", "last_name", "username", "billing", "shipping"] {
        assert!(!columns.iter().any(|c| c == personal), "bronze customers has a {personal} column: {columns:?}");
    }
    let keyring = read_keyring(&ingest.lake.keyring().unwrap(), ingest.lake.storage(), None).await.unwrap();
    let mut opener = Opener::new(ingest.keys.clone(), keyring);
    let first = &c[0];
    let hidden: Value =
        serde_json::from_slice(&opener.open(&alkasba_pii::place("alkasba_store.customers", first[0].as_deref().unwrap(), alkasba_records::SEALED), first[1].as_deref().unwrap()).await.unwrap())
            .unwrap();
    let email = hidden["/email"].as_str().unwrap().to_string();
    assert_eq!(ingest.tokens.token(&email), first[2].clone().unwrap());
    assert!(email.contains('@'));
    assert!(hidden["/billing"]["phone"].is_string(), "{hidden}");

    // Issue 20: the pace the fetchers reached is recorded, and the next run's tasks open at it
    // (a new sandbox skips slow start).
    let learned = ingest.control.pace("alkasba_store").await.unwrap().expect("a learned pace recorded");
    assert!(learned.rate > alkasba_ingest::pace::PaceTuning::default().initial, "{learned:?}");

    // Incremental: the store changes; the next run adds exactly the new versions.
    reqwest::Client::new().post(format!("{base}/_sim/mutate?n=60")).send().await.unwrap();
    for r in ingest.plan(Some(&["alkasba_store.orders".to_string()]), chrono::Utc::now()).await.unwrap() {
        r.unwrap();
    }
    let tasks = ingest.queue.take_tasks();
    assert!(!tasks.is_empty() && tasks.iter().all(|t| t.pace == Some(learned.rate)), "{tasks:?}");
    alkasba_ingest::ports::TaskQueue::send_tasks(&ingest.queue, &tasks).await.unwrap();
    local.run(&["alkasba_store.orders"]).await;
    let (valid, _) = truth(&base, "orders").await;
    let set = bronze_versions(ingest, "orders", "after the incremental run (lookback overlap skipped)").await;
    assert!(valid.is_subset(&set), "every current version present: missing {:?}", valid.difference(&set).take(5).collect::<Vec<_>>());
}

/// Issue 20: a sandbox that joins a first load (its task planned before any fetcher had learned
/// a pace, so the task carries none) opens at the pace the run's earlier tasks recorded, not in
/// slow start; its later answers only grow it additively.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sandbox_joining_a_first_load_opens_at_the_pace_recorded_since() {
    let dir = tempfile::tempdir().unwrap();
    let tuning = Tuning { pages_per_task: 2, pages_per_commit: 2, ..Tuning::default() };
    let cfg = SimConfig::small(7, 500);
    let creds = cfg.credentials.clone();
    let local = testkit::local(cfg, dir.path(), tuning.clone()).await;
    let ingest = &local.ingest;
    for r in ingest.plan(Some(&["alkasba_store.orders".to_string()]), chrono::Utc::now()).await.unwrap() {
        r.unwrap();
    }
    let tasks = ingest.queue.take_tasks();
    assert!(tasks.len() >= 2 && tasks.iter().all(|t| t.pace.is_none()), "a first load plans no pace: {tasks:?}");
    // What a fetcher in another sandbox recorded at the end of one of the run's tasks.
    let recorded = alkasba_ingest::control::LearnedPace { rate: 40.0, at: chrono::Utc::now().to_rfc3339() };
    ingest.control.put_pace("alkasba_store", &recorded).await.unwrap();
    // A fetcher in a sandbox of its own (the planner's requests went through the other one).
    let fetcher = testkit::against(&local.base, &creds, dir.path(), tuning).await;
    let (entry, _) = fetcher.catalog.stream("alkasba_store", "orders").unwrap();
    assert!(entry.http.pace().is_fresh(), "a cold sandbox");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    let report = fetcher.run_task(&tasks[1], alkasba_ingest::Delivery::First, deadline).await.unwrap();
    assert!(report.pages_committed >= 1, "{report:?}");
    // Slow start from 2 requests/s would be at ~2 + 2 per answer here, far under 40.
    let rate = entry.http.pace().stats().rate;
    assert!((40.0..41.0).contains(&rate), "opened at the recorded pace: {rate}");
}

/// Issue 15: a page that fails more often than one round of retries allows comes back in a
/// later round by itself, and the run completes; a page that fails every round is dead-lettered
/// with its redrive, the run waits for it, and the letter moved back to the queue completes the
/// run. Bronze equals the truth in the end, with nothing read twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_pages_come_back_in_later_rounds_and_a_dead_one_is_redriven() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::small(3, 2_000);
    // Six requests a round (the store's retry policy): page 2 fails 8 in a row (two rounds), page
    // 5 fails 40 (more than all three rounds).
    cfg.faults.flaky_pages = std::collections::BTreeMap::from([(2, 8), (5, 40)]);
    let tuning = Tuning { pages_per_task: 3, pages_per_commit: 2, page_retry_rounds: 3, ..Tuning::default() };
    let local = testkit::local(cfg, dir.path(), tuning).await;
    let (ingest, base) = (&local.ingest, local.base.clone());

    let reports = local.run(&["alkasba_store.orders"]).await;
    assert!(reports.iter().any(|r| r.retry_round == Some(2)), "page 2 came back for a second round: {reports:#?}");
    assert!(!reports.iter().any(|r| r.run_completed), "page 5 is dead: the run cannot complete yet");
    let dead: Vec<_> = ingest.queue.dead.lock().unwrap().drain(..).collect();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].page, Some(5));
    let redrive = dead[0].task.clone().unwrap();
    assert_eq!((redrive.redrive, &redrive.pages), (1, &alkasba_ingest::task::Pages::Range { first: 5, last: 5, follow: false }));
    let plan = ingest.control.plan("alkasba_store", "orders", &redrive.run_id).await.unwrap().unwrap();
    let progress = alkasba_ingest::runs::progress(&ingest.lake, &plan).await.unwrap();
    assert_eq!(alkasba_ingest::runs::dead_pages(&progress).into_iter().collect::<Vec<_>>(), [(redrive.task, 5)]);

    // The store recovers; the dead letter is moved back to the task queue as it is.
    reqwest::Client::new().put(format!("{base}/_sim/faults")).json(&serde_json::json!({})).send().await.unwrap();
    let body = serde_json::to_string(&dead[0]).unwrap();
    let outcome = ingest.handle_message(&body, alkasba_ingest::Delivery::Again, tokio::time::Instant::now() + std::time::Duration::from_secs(600)).await;
    assert_eq!(outcome, alkasba_ingest::MessageOutcome::Done);
    let states = alkasba_ingest::runs::states(&ingest.lake).await.unwrap();
    assert!(states.values().any(|s| s.completed.contains(&redrive.run_id)), "the redrive completed the run");

    let (valid, _) = truth(&base, "orders").await;
    let set = bronze_versions(ingest, "orders", "after the redrive").await;
    assert_eq!(set, valid, "bronze equals the truth");
}

/// A deadline margin that leaves an invocation no time is a clear configuration error, not a task
/// that sends itself on forever without reading a page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_margin_longer_than_the_invocation_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let local = testkit::local(SimConfig::small(1, 100), dir.path(), Tuning::default()).await;
    let task = alkasba_ingest::task::FetchTask {
        run_id: "r".into(),
        source: "alkasba_store".into(),
        stream: "orders".into(),
        task: 0,
        url: format!("{}/wp-json/wc/v3/orders", local.base).parse().unwrap(),
        pages: alkasba_ingest::task::Pages::Range { first: 1, last: 1, follow: true },
        round: 0,
        redrive: 0,
        pace: None,
    };
    let err = local.ingest.run_task(&task, alkasba_ingest::Delivery::First, tokio::time::Instant::now() + std::time::Duration::from_secs(10)).await.unwrap_err();
    assert!(err.to_string().contains("DEADLINE_MARGIN_SECS (20 s)") && !err.is_retryable(), "{err}");
    assert!(local.ingest.queue.take_tasks().is_empty(), "nothing sent on");
}

/// Issue 20: a task message received for the first time is run without looking up its marker
/// first. A duplicate of it that the queue also counts as a first delivery (standard queues
/// deliver at least once), arriving after the first copy committed, fetches its pages again, and
/// its commits keep nothing already committed: bronze and quarantine hold every record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_first_delivery_commits_nothing_twice() {
    use alkasba_ingest::Delivery;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::small(11, 1_000);
    cfg.invalid_rate = 0.03;
    let tuning = Tuning { pages_per_task: 4, pages_per_commit: 2, ..Tuning::default() };
    let local = testkit::local(cfg, dir.path(), tuning).await;
    let (ingest, base) = (&local.ingest, local.base.clone());
    for r in ingest.plan(Some(&["alkasba_store.orders".to_string()]), chrono::Utc::now()).await.unwrap() {
        r.unwrap();
    }
    let tasks = ingest.queue.take_tasks();
    assert!(tasks.len() > 1, "{tasks:?}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    for t in &tasks {
        ingest.run_task(t, Delivery::First, deadline).await.unwrap();
    }
    for t in &tasks {
        let again = ingest.run_task(t, Delivery::First, deadline).await.unwrap();
        assert!(again.counts.fetched > 0, "a first delivery does not look its marker up before fetching: {again:?}");
    }
    assert!(ingest.queue.take_tasks().is_empty(), "nothing sent on");
    let (valid, invalid) = truth(&base, "orders").await;
    let set = bronze_versions(ingest, "orders", "after a duplicate delivery").await;
    assert_eq!(set, valid, "bronze equals the truth");
    let q: usize = ingest.lake.scan(&ingest.lake.quarantine().unwrap(), None, &["stream"]).await.unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(q, invalid.len(), "every invalid record quarantined once");
}
