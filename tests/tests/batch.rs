//! Issue 5's acceptance tests on LocalStack: the real template, the real planner, fetcher,
//! transform and aggregate binaries under the runner, the simulator over HTTP.
//!
//! * Gold equals what the simulator's ground truth implies (orders, paid orders, gross, refunds
//!   and net per day and currency; units and revenue per day, product and currency).
//! * DuckDB (an independent engine), running the marts' own SQL over the silver Delta tables,
//!   gives the same gold rows.
//! * Re-running either job commits nothing; a transform killed with SIGKILL half-way and run
//!   again gives the same result.

use std::collections::BTreeMap;
use std::time::Duration;

use alkasba_batch::gold;
use alkasba_it::{Stack, bin_dir, duckdb, eventually, lake, plan, repo, sim_credentials, wait_completed};
use alkasba_runner::{Outcome, Runner, RunnerConfig};
use alkasba_sim::{SimConfig, serve};
use serde_json::{Value, json};

async fn start_runner(stack: &Stack, base: &str) -> Runner {
    let mut cfg = RunnerConfig::new(repo().join("infra/template.yaml"), &stack.name, bin_dir());
    cfg.functions = vec!["planner".into(), "fetcher".into(), "transform".into(), "aggregate".into(), "maintain".into()];
    cfg.concurrency = 4;
    cfg.log_dir = Some(repo().join(".local/logs").join(&stack.name));
    cfg.extra_env.insert("SOURCE_BASE_URLS".into(), format!("alkasba_store={base},competitor_prices={base},exchange_rates={base}"));
    // One bronze version per transform step: many small commits, so a kill lands mid-run.
    cfg.extra_env.insert("MAX_BRONZE_VERSIONS".into(), "1".into());
    Runner::start(cfg).await.unwrap()
}

async fn invoke(runner: &Runner, function: &str) -> Value {
    let inv = runner.invoke(function, &json!({})).await.unwrap();
    match inv.outcome {
        Outcome::Success(v) => v,
        other => panic!("{function} failed: {other:?}"),
    }
}

/// Ingests `streams` through the planner and fetchers (as of `run_date`, or now) and waits for
/// every run to complete.
async fn ingest_at(runner: &Runner, stack: &Stack, streams: &[&str], run_date: Option<&str>) {
    let runs = plan(runner, streams, run_date).await;
    wait_completed(&lake(stack), &runs, Duration::from_secs(300)).await;
}

async fn ingest(runner: &Runner, stack: &Stack, streams: &[&str]) {
    ingest_at(runner, stack, streams, None).await;
}

type Daily = BTreeMap<(String, String), (i64, i64, String, String, String)>;

fn s(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// DuckDB's reading of gold daily_sales equals the simulator's truth.
async fn assert_gold_equals_truth(root: &str, base: &str) {
    let truth: Value = reqwest::get(format!("{base}/_sim/truth/daily")).await.unwrap().json().await.unwrap();
    let want: Daily = truth["by_day_currency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| ((s(&r["date"]), s(&r["currency"])), (r["orders"].as_i64().unwrap(), r["paid_orders"].as_i64().unwrap(), s(&r["gross"]), s(&r["refunds"]), s(&r["net"]))))
        .collect();
    let rows = duckdb(&format!("SELECT CAST(date AS VARCHAR) AS date, currency, orders, paid_orders, CAST(gross AS VARCHAR) AS gross, CAST(refunds AS VARCHAR) AS refunds, CAST(net AS VARCHAR) AS net FROM delta_scan('{root}/gold/daily_sales')")).unwrap();
    let got: Daily =
        rows.iter().map(|r| ((s(&r["date"]), s(&r["currency"])), (r["orders"].as_i64().unwrap(), r["paid_orders"].as_i64().unwrap(), s(&r["gross"]), s(&r["refunds"]), s(&r["net"])))).collect();
    let diff: Vec<_> = want.iter().filter(|(k, v)| got.get(*k) != Some(v)).take(5).map(|(k, v)| (k, v, got.get(k))).collect();
    assert!(diff.is_empty() && got.len() == want.len(), "gold daily_sales (read by DuckDB) differs from the truth (want, got): {diff:?}; {} vs {} rows", got.len(), want.len());
}

/// DuckDB runs `mart`'s own SQL (its portable form: all dates touched) over the silver and gold
/// tables and must get the rows
/// gold holds: the key and count columns exactly, amounts within a cent (engines may round a
/// division differently).
fn assert_duckdb_reproduces(root: &str, mart: &str, key: &[&str]) {
    let m = gold::mart(mart).unwrap();
    let views: Vec<String> = m.inputs.iter().map(|i| format!("{t} AS (SELECT * FROM delta_scan('{root}/{l}/{t}'))", l = i.layer, t = i.table)).collect();
    let sql = format!("WITH {} SELECT * FROM ({}) m", views.join(", "), m.portable_sql());
    let by_key = |rows: Vec<Value>| -> BTreeMap<String, Value> { rows.into_iter().map(|r| (key.iter().map(|k| s(&r[*k])).collect::<Vec<_>>().join("|"), r)).collect() };
    let engine = by_key(duckdb(&sql).unwrap());
    let stored = by_key(duckdb(&format!("SELECT * FROM delta_scan('{root}/gold/{mart}')")).unwrap());
    assert_eq!(engine.len(), stored.len(), "{mart}: DuckDB computes {} rows, gold has {}", engine.len(), stored.len());
    assert!(!engine.is_empty(), "{mart}: no rows");
    for (k, want) in &engine {
        let got = stored.get(k).unwrap_or_else(|| panic!("{mart}: gold has no row {k}"));
        for (col, w) in want.as_object().unwrap() {
            let g = &got[col];
            let same = match (w.as_str().and_then(|x| x.parse::<f64>().ok()).or(w.as_f64()), g.as_str().and_then(|x| x.parse::<f64>().ok()).or(g.as_f64())) {
                (Some(a), Some(b)) => (a - b).abs() <= 0.011 || (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                _ => w == g,
            };
            assert!(same, "{mart} {k} {col}: DuckDB {w} vs gold {g}");
        }
    }
}

/// Returns by product computed by DuckDB straight from the refunds as WooCommerce gives them
/// (bronze: refund items with negative quantities and amounts) equal gold's, summed over
/// currencies per refund day and product.
fn assert_returns_equal_bronze(root: &str) {
    let bronze = duckdb(&format!(
        "WITH r AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY id ORDER BY _ingested_at DESC) AS n FROM delta_scan('{root}/bronze/alkasba_store/refunds')) WHERE n = 1),
              i AS (SELECT CAST(CAST(r.date_created_gmt AS TIMESTAMP) AS DATE) AS date, CAST(j->>'product_id' AS BIGINT) AS product_id,
                           CAST(j->>'quantity' AS BIGINT) AS q, CAST(j->>'total' AS DECIMAL(18,2)) AS t
                    FROM r, unnest(CAST(json(r.line_items) AS JSON[])) AS u(j))
         SELECT CAST(date AS VARCHAR) AS date, product_id, -sum(q) AS units, CAST(-sum(t) AS VARCHAR) AS refunded FROM i GROUP BY 1, 2"
    ))
    .unwrap();
    let gold = duckdb(&format!(
        "SELECT CAST(date AS VARCHAR) AS date, product_id, sum(units_returned) AS units, CAST(sum(refunded) AS VARCHAR) AS refunded
         FROM delta_scan('{root}/gold/daily_product_returns') GROUP BY 1, 2"
    ))
    .unwrap();
    let key = |r: &Value| format!("{}|{}", s(&r["date"]), r["product_id"]);
    let want: BTreeMap<String, (i64, String)> = bronze.iter().map(|r| (key(r), (r["units"].as_i64().unwrap(), s(&r["refunded"])))).collect();
    let got: BTreeMap<String, (i64, String)> = gold.iter().map(|r| (key(r), (r["units"].as_i64().unwrap(), s(&r["refunded"])))).collect();
    assert!(want.len() > 5, "too few returns to check: {want:?}");
    assert_eq!(got, want, "gold daily_product_returns differs from the refund items in bronze");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gold_equals_the_truth_duckdb_reproduces_it_and_reruns_change_nothing() {
    let stack = Stack::deploy("batch", &repo().join("infra/template.yaml"), false).unwrap();
    let mut cfg = SimConfig::small(31, 2_000);
    cfg.shape.days = 15;
    cfg.invalid_rate = 0.02;
    cfg.credentials = sim_credentials(&stack.name).await;
    let (addr, _state, _) = serve(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let root = stack.output("LakeRoot").to_string();
    let runner = start_runner(&stack, &base).await;
    let all = ["alkasba_store.products", "alkasba_store.customers", "alkasba_store.orders", "alkasba_store.refunds", "competitor_prices.prices", "exchange_rates.rates"];
    ingest(&runner, &stack, &all).await;
    // The exchange rates of two past days, planned as of those days.
    for day in ["2026-10-29", "2026-10-30"] {
        ingest_at(&runner, &stack, &["exchange_rates.rates"], Some(day)).await;
    }

    let t = invoke(&runner, "TransformFunction").await;
    let steps = t["steps"].as_array().unwrap();
    assert!(steps.iter().filter(|s| s["version"].is_i64()).count() >= 7, "{t}");
    let a = invoke(&runner, "AggregateFunction").await;
    assert!(a["marts"].as_array().unwrap().iter().all(|m| m["mode"] == "full" && m["version"].is_i64()), "{a}");
    assert_gold_equals_truth(&root, &base).await;
    assert_duckdb_reproduces(&root, "daily_sales", &["date", "currency"]);
    assert_duckdb_reproduces(&root, "daily_product_sales", &["date", "product_id", "currency"]);
    assert_duckdb_reproduces(&root, "daily_product_returns", &["date", "product_id", "currency"]);
    assert_returns_equal_bronze(&root);
    assert_duckdb_reproduces(&root, "daily_order_mix", &["date", "currency", "payment_method"]);
    let fx = duckdb(&format!("SELECT CAST(rate_date AS VARCHAR) AS d, count(*) AS n FROM delta_scan('{root}/silver/fx_rates') GROUP BY 1 ORDER BY 1")).unwrap();
    let days: Vec<String> = fx.iter().map(|r| s(&r["d"])).collect();
    assert!(days.contains(&"2026-10-29".to_string()) && days.contains(&"2026-10-30".to_string()) && days.len() >= 3, "{fx:?}");
    assert!(fx.iter().all(|r| r["n"] == 12), "12 currencies a day: {fx:?}");
    // The data dictionary describes exactly the columns the layers wrote.
    // (The forecast tables are checked by tests/forecast.rs, which runs the forecast.)
    for t in alkasba_batch::dictionary::TABLES.iter().filter(|t| !t.path.starts_with("gold/forecast_")) {
        let got: Vec<String> = duckdb(&format!("DESCRIBE SELECT * FROM delta_scan('{root}/{}')", t.path)).unwrap().iter().map(|r| s(&r["column_name"])).collect();
        let want: Vec<String> = t.columns.iter().map(|c| c.name.to_string()).collect();
        let (mut g, mut w) = (got.clone(), want.clone());
        g.sort();
        w.sort();
        assert_eq!(g, w, "{}: columns written {got:?}, described {want:?} (shared/batch/src/dictionary.rs)", t.path);
    }
    // The Glue definitions list the columns the tables hold (Athena views read them from the
    // catalog): regenerating them from this lake changes nothing in the template.
    let found = alkasba_batch::glue::lake_columns(&lake(&stack)).await.unwrap();
    let marts_and_silver = alkasba_batch::gold::MARTS.len() + alkasba_batch::silver::SILVER.len();
    assert!(found.len() >= marts_and_silver, "{} tables found: {:?}", found.len(), found.keys());
    let template = std::fs::read_to_string(repo().join("infra/template.yaml")).unwrap();
    let stale = alkasba_batch::glue::stale(&template, &found).unwrap();
    assert!(
        stale.is_empty(),
        "the Glue columns in infra/template.yaml differ from the tables {stale:?}: run `alkasba batch glue-columns --stack <stack> --write infra/template.yaml` on a lake built by scripts/demo.sh"
    );

    // Running both again commits nothing.
    let t = invoke(&runner, "TransformFunction").await;
    assert!(t["steps"].as_array().unwrap().iter().all(|s| s["version"].is_null()), "{t}");
    let a = invoke(&runner, "AggregateFunction").await;
    assert!(a["marts"].as_array().unwrap().iter().all(|m| m["mode"] == "skipped"), "{a}");

    // The store changes; the transform is killed half-way (after products, before orders and
    // order lines), then runs again.
    reqwest::Client::new().post(format!("{base}/_sim/mutate?n=150")).send().await.unwrap();
    ingest(&runner, &stack, &all[..4]).await;
    let l = lake(&stack);
    let products = gold::uri(&l, "silver", "products").unwrap();
    let before = alkasba_lake::read::open_table(&products, l.storage()).await.unwrap().unwrap().version();
    let killer = async {
        eventually(Duration::from_secs(120), "silver products to move", || async {
            let v = alkasba_lake::read::open_table(&products, l.storage()).await.ok()??.version();
            (v > before).then_some(())
        })
        .await;
        for pid in alkasba_it::function_pids("transform", &stack) {
            std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status().unwrap();
        }
    };
    let tick = json!({});
    let (killed, ()) = tokio::join!(runner.invoke("TransformFunction", &tick), killer);
    assert!(!matches!(killed.unwrap().outcome, Outcome::Success(_)), "the transform finished before it could be killed");
    let t = invoke(&runner, "TransformFunction").await;
    assert!(t["steps"].as_array().unwrap().iter().any(|s| s["table"] == "order_lines" && s["version"].is_i64()), "{t}");
    let a = invoke(&runner, "AggregateFunction").await;
    let daily = a["marts"].as_array().unwrap().iter().find(|m| m["mart"] == "daily_sales").unwrap().clone();
    assert_eq!(daily["mode"], "incremental", "{a}");
    assert_gold_equals_truth(&root, &base).await;
    // The marts brought up to date incrementally from more than their own dates (the customer
    // marts fold changes in; top_products re-ranks the months of the partitions
    // daily_product_sales rewrote, read from its log) equal DuckDB's full computation.
    for (mart, key) in
        [("customer_firsts", &["customer_token"][..]), ("customer_activity", &["date"]), ("customer_cohorts", &["cohort_month", "activity_month"]), ("top_products", &["month", "rank", "product_id"])]
    {
        let step = a["marts"].as_array().unwrap().iter().find(|m| m["mart"] == mart).unwrap();
        assert_eq!(step["mode"], "incremental", "{a}");
        assert_duckdb_reproduces(&root, mart, key);
    }

    // Maintenance on S3 (leases by conditional put): fewer files, the same answers.
    let m = invoke(&runner, "MaintainFunction").await;
    runner.shutdown().await;
    // The batch functions' metrics (issue 21: the operations dashboard), with their documented
    // names, in each invocation's EMF document.
    let logs = repo().join(".local/logs").join(&stack.name);
    let t = alkasba_it::emf(&logs.join("TransformFunction.log"), "SilverRowsMerged").expect("SilverRowsMerged in the transform function's output");
    assert!(t["SilverRowsMerged"].as_f64().is_some() && t["RequestId"].is_string(), "{t}");
    let a = alkasba_it::emf(&logs.join("AggregateFunction.log"), "MartBuildMs").expect("MartBuildMs in the aggregate function's output");
    assert!(a["MartsBuilt"].as_f64().is_some_and(|n| n >= 1.0), "{a}");
    let tables = m["tables"].as_array().unwrap();
    let total = |k: &str| tables.iter().map(|t| t[k].as_u64().unwrap()).sum::<u64>();
    assert!(total("files_after") < total("files_before") && total("files_compacted") > 0, "{m}");
    assert!(tables.iter().all(|t| t["files_after"].as_u64() <= Some(2 * t["partitions"].as_u64().unwrap().max(1))), "{m}");
    assert_gold_equals_truth(&root, &base).await;
    assert_duckdb_reproduces(&root, "daily_sales", &["date", "currency"]);
    assert_duckdb_reproduces(&root, "daily_product_sales", &["date", "product_id", "currency"]);
    // stock_cover reads its latest day as a literal from daily_product_sales' file list; DuckDB
    // takes it with max().
    assert_duckdb_reproduces(&root, "stock_cover", &["product_id"]);
    stack.cleanup().await;
}
