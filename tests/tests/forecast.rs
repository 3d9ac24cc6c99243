//! Issue 17's end-to-end test on LocalStack: the real template, the simulator over HTTP, the
//! planner, fetcher, transform, aggregate and forecast binaries under the runner. Ten weeks of a
//! store go to gold; the forecast function then writes its three tables, read back by DuckDB:
//!
//! * every series is forecast 28 days after the last day of history, intervals ordered
//!   lo95 ≤ lo80 ≤ point ≤ hi80 ≤ hi95, never negative;
//! * the accuracy table has one chosen model per series, and the backtest ran (the history
//!   allows at least three weekly cuts);
//! * each stock-out date is where the product's cumulative forecast reaches its stock in silver;
//! * the history ends on gold's last day of sales;
//! * a rerun the same day gives the same rows; a run another day adds its rows beside them;
//! * the columns are the ones the data dictionary describes.

use std::collections::BTreeMap;
use std::time::Duration;

use alkasba_it::{Stack, bin_dir, duckdb, lake, plan, repo, sim_credentials, wait_completed};
use alkasba_runner::{Outcome, Runner, RunnerConfig};
use alkasba_sim::{SimConfig, serve};
use serde_json::{Value, json};

async fn invoke(runner: &Runner, function: &str, event: Value) -> Value {
    let inv = runner.invoke(function, &event).await.unwrap();
    match inv.outcome {
        Outcome::Success(v) => v,
        other => panic!("{function} failed: {other:?}"),
    }
}

fn s(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

fn f(v: &Value) -> f64 {
    v.as_f64().or_else(|| v.as_str().and_then(|x| x.parse().ok())).unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forecast_tables_are_written_ordered_consistent_and_idempotent() {
    let stack = Stack::deploy("forecast", &repo().join("infra/template.yaml"), false).unwrap();
    let mut cfg = SimConfig::small(17, 3_000);
    cfg.shape.days = 70;
    cfg.credentials = sim_credentials(&stack.name).await;
    let (addr, _state, _) = serve(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let root = stack.output("LakeRoot").to_string();

    let mut rc = RunnerConfig::new(repo().join("infra/template.yaml"), &stack.name, bin_dir());
    rc.functions = vec!["planner".into(), "fetcher".into(), "transform".into(), "aggregate".into(), "forecast".into()];
    rc.concurrency = 4;
    rc.log_dir = Some(repo().join(".local/logs").join(&stack.name));
    rc.extra_env.insert("SOURCE_BASE_URLS".into(), format!("alkasba_store={base},competitor_prices={base},exchange_rates={base}"));
    let runner = Runner::start(rc).await.unwrap();
    let all = ["alkasba_store.products", "alkasba_store.customers", "alkasba_store.orders", "alkasba_store.refunds", "competitor_prices.prices", "exchange_rates.rates"];
    let runs = plan(&runner, &all, None).await;
    wait_completed(&lake(&stack), &runs, Duration::from_secs(300)).await;
    invoke(&runner, "TransformFunction", json!({})).await;
    invoke(&runner, "AggregateFunction", json!({})).await;

    // Before any input exists for a family the job says so; here gold exists: a full run.
    let run = invoke(&runner, "ForecastFunction", json!({"run_date": "2026-11-01"})).await;
    assert_eq!((s(&run["run_date"]), s(&run["as_of"])), ("2026-11-01".into(), "2026-10-31".into()), "{run}");
    assert!(run["failed"].as_array().unwrap().is_empty(), "{run}");
    let series = run["series"].as_u64().unwrap();
    assert!(run["products"].as_u64().unwrap() > 50, "{run}");
    let total = run["accuracy"].as_array().unwrap().iter().find(|a| a["series"] == "revenue_mad/total").unwrap_or_else(|| panic!("{run}"));
    assert!(total["origins"].as_u64().unwrap() >= 3 && total["mase"].is_f64(), "{run}");

    let daily = |run_date: &str| {
        duckdb(&format!("SELECT series, CAST(date AS VARCHAR) AS date, horizon, model, point, lo80, hi80, lo95, hi95 FROM delta_scan('{root}/gold/forecast_daily') WHERE run_date = DATE '{run_date}' ORDER BY series, date")).unwrap()
    };
    let rows = daily("2026-11-01");
    assert_eq!(rows.len() as u64, series * 28, "one row per series and day");
    for r in &rows {
        let [p, lo80, hi80, lo95, hi95] = ["point", "lo80", "hi80", "lo95", "hi95"].map(|k| f(&r[k]));
        assert!(0.0 <= lo95 && lo95 <= lo80 && lo80 <= p && p <= hi80 && hi80 <= hi95, "intervals out of order: {r}");
        let h = r["horizon"].as_i64().unwrap();
        let want = chrono::NaiveDate::from_ymd_opt(2026, 10, 31).unwrap() + chrono::Duration::days(h);
        assert_eq!(s(&r["date"]), want.to_string(), "{r}");
    }

    // One chosen model per series; the chosen one has the lowest MASE (shop and categories) or
    // the lowest cumulative error (products: what their stock-out dates depend on).
    let acc = duckdb(&format!("SELECT series, model, chosen, mase, cumulative_error, origins FROM delta_scan('{root}/gold/forecast_accuracy') WHERE run_date = DATE '2026-11-01'")).unwrap();
    let mut by_series: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in &acc {
        by_series.entry(s(&r["series"])).or_default().push(r);
    }
    for (name, rs) in &by_series {
        let chosen: Vec<_> = rs.iter().filter(|r| r["chosen"] == true).collect();
        assert_eq!(chosen.len(), 1, "{name}: {rs:?}");
        let by = if name.starts_with("units/product/") { "cumulative_error" } else { "mase" };
        assert!(rs.iter().all(|r| f(&r[by]) >= f(&chosen[0][by])), "{name}: the chosen model is not the best by {by}: {rs:?}");
    }

    // The history ends on gold's last day of sales.
    let last = duckdb(&format!("SELECT CAST(max(date) AS VARCHAR) AS d FROM delta_scan('{root}/gold/revenue_growth')")).unwrap();
    assert_eq!(s(&last[0]["d"]), "2026-10-31");

    // Stock-out dates: where the cumulative forecast reaches the stock in silver.
    let stock = duckdb(&format!(
        "SELECT s.product_id, s.stock_quantity, s.days_to_stockout, CAST(s.stockout_date AS VARCHAR) AS stockout_date, p.stock_quantity AS silver_stock
         FROM delta_scan('{root}/gold/forecast_stockouts') s JOIN delta_scan('{root}/silver/products') p ON p.product_id = s.product_id
         WHERE s.run_date = DATE '2026-11-01'"
    ))
    .unwrap();
    assert!(!stock.is_empty());
    let mut within = 0;
    for r in &stock {
        assert_eq!(r["stock_quantity"], r["silver_stock"], "{r}");
        let id = r["product_id"].as_i64().unwrap();
        let points: Vec<f64> = rows.iter().filter(|x| s(&x["series"]) == format!("units/product/{id}")).map(|x| f(&x["point"])).collect();
        assert_eq!(points.len(), 28, "product {id}");
        let stock = r["stock_quantity"].as_i64().unwrap() as f64;
        let mut sum = 0.0;
        let want = if stock <= 0.0 {
            Some(0)
        } else {
            points
                .iter()
                .position(|p| {
                    sum += p;
                    sum >= stock
                })
                .map(|i| i as i64 + 1)
        };
        assert_eq!(r["days_to_stockout"].as_i64(), want, "{r}");
        if let Some(d) = want {
            within += 1;
            let date = chrono::NaiveDate::from_ymd_opt(2026, 10, 31).unwrap() + chrono::Duration::days(d);
            assert_eq!(s(&r["stockout_date"]), date.to_string(), "{r}");
        }
    }
    assert_eq!(run["stockouts_within_horizon"].as_u64(), Some(within), "{run}");

    // A rerun the same day: the same rows. A run the next day: its own rows beside them.
    let again = invoke(&runner, "ForecastFunction", json!({"run_date": "2026-11-01"})).await;
    assert_eq!(again["series"], run["series"]);
    assert_eq!(daily("2026-11-01"), rows, "a rerun changed the forecast");
    invoke(&runner, "ForecastFunction", json!({"run_date": "2026-11-02", "families": ["revenue_mad/total"]})).await;
    let runs = duckdb(&format!("SELECT CAST(run_date AS VARCHAR) AS r, count(*) AS n FROM delta_scan('{root}/gold/forecast_daily') GROUP BY 1 ORDER BY 1")).unwrap();
    assert_eq!(runs, vec![json!({"r": "2026-11-01", "n": series * 28}), json!({"r": "2026-11-02", "n": 28})]);

    // A bad event is refused by name.
    let bad = runner.invoke("ForecastFunction", &json!({"families": ["revenue/everything"]})).await.unwrap();
    match bad.outcome {
        Outcome::Success(v) => panic!("an unknown family was accepted: {v}"),
        other => assert!(format!("{other:?}").contains("revenue/everything"), "{other:?}"),
    }
    runner.shutdown().await;

    // The columns are the ones the dictionary describes.
    for t in alkasba_batch::dictionary::TABLES.iter().filter(|t| t.path.starts_with("gold/forecast_")) {
        let mut got: Vec<String> = duckdb(&format!("DESCRIBE SELECT * FROM delta_scan('{root}/{}')", t.path)).unwrap().iter().map(|r| s(&r["column_name"])).collect();
        let mut want: Vec<String> = t.columns.iter().map(|c| c.name.to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{}", t.path);
    }
    stack.cleanup().await;
}
