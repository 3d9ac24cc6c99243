//! Issue 16's acceptance test: the dashboard in headless Chromium (Debian's package, driven by
//! tests/browser/dashboard.mjs) against a lake built by the demo path (the simulator over HTTP,
//! the real planner, fetcher, transform, aggregate, webhook, realtime and dashboard binaries
//! under the runner, LocalStack S3):
//!
//! * the numbers shown (KPIs, a chart's data, a table's rows) equal what DuckDB computes from
//!   the same gold tables, and each filter (currency, grain, category, drill-down) changes them
//!   as DuckDB says it should;
//! * the live page updates by itself after new webhook events;
//! * no request leaves the deployment, no console error, and the sales page fits a phone.
//!
//! Screenshots are kept under `.local/artifacts/dashboard/`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use alkasba_it::{ENDPOINT, Stack, bin_dir, duckdb, eventually, lake, plan, repo, sim_credentials, wait_completed};
use alkasba_runner::{Outcome, Runner, RunnerConfig};
use alkasba_sim::{SimConfig, serve};
use serde_json::{Value, json};

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s}")),
        Value::Null => 0.0,
        other => panic!("not a number: {other}"),
    }
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 0.005 + 1e-9 * b.abs(), "{what}: the page shows {a}, DuckDB says {b}");
}

/// The period a step's page showed: (from, to).
fn period(step: &Value) -> (&str, &str) {
    (step["state"]["from"].as_str().unwrap(), step["state"]["to"].as_str().unwrap())
}

/// DuckDB's sales KPIs over gold daily_sales for a period and currency.
fn duck_kpis(root: &str, from: &str, to: &str, currency: &str) -> Value {
    let cur = if currency.is_empty() { String::new() } else { format!("AND currency = '{currency}'") };
    duckdb(&format!(
        "SELECT CAST(sum(gross_mad) AS DOUBLE) AS revenue_mad, CAST(sum(net_mad) AS DOUBLE) AS net_revenue_mad, CAST(sum(refunds_mad) AS DOUBLE) AS refunds_mad,
                sum(paid_orders) AS paid_orders
         FROM delta_scan('{root}/gold/daily_sales') WHERE date BETWEEN DATE '{from}' AND DATE '{to}' {cur}"
    ))
    .unwrap()
    .remove(0)
}

fn assert_kpis(step: &Value, root: &str) {
    let st = &step["state"];
    let ((from, to), currency) = (period(step), st["currency"].as_str().unwrap());
    let want = duck_kpis(root, from, to, currency);
    let k = &step["kpis"];
    for key in ["revenue_mad", "net_revenue_mad", "refunds_mad", "paid_orders"] {
        close(num(&k[key]), num(&want[key]), &format!("{} KPI {key} ({from}..{to}, currency {currency:?})", step["step"]));
    }
    assert!(num(&want["paid_orders"]) > 0.0, "an empty period proves nothing: {step}");
    close(num(&k["avg_order_value_mad"]), num(&want["revenue_mad"]) / num(&want["paid_orders"]), "average order value");
}

/// The revenue chart's totals per period (all currencies stacked) against DuckDB's.
fn assert_revenue_chart(step: &Value, root: &str, unit: &str) {
    let st = &step["state"];
    let (from, to) = period(step);
    let cur = match st["currency"].as_str().unwrap() {
        "" => String::new(),
        c => format!("AND currency = '{c}'"),
    };
    let want = duckdb(&format!(
        "SELECT CAST(CAST(date_trunc('{unit}', date) AS DATE) AS VARCHAR) AS period, CAST(sum(gross_mad) AS DOUBLE) AS revenue
         FROM delta_scan('{root}/gold/daily_sales') WHERE date BETWEEN DATE '{from}' AND DATE '{to}' {cur} GROUP BY 1 ORDER BY 1"
    ))
    .unwrap();
    let chart = &step["charts"]["chart-sales"];
    let periods: Vec<&str> = chart["x"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(periods, want.iter().map(|r| r["period"].as_str().unwrap()).collect::<Vec<_>>(), "{} revenue chart periods", step["step"]);
    for (i, w) in want.iter().enumerate() {
        let shown: f64 = chart["series"].as_array().unwrap().iter().map(|s| num(&s["data"][i])).sum();
        close(shown, num(&w["revenue"]), &format!("{} revenue chart, {}", step["step"], w["period"]));
    }
}

/// The top-products table against DuckDB for the step's filters.
fn assert_top_products(step: &Value, root: &str) {
    let st = &step["state"];
    let ((from, to), category) = (period(step), st["category"].as_str().unwrap());
    assert!(!category.is_empty(), "{step}");
    let want = duckdb(&format!(
        "SELECT product_id, sum(units) AS units, CAST(sum(revenue_mad) AS DOUBLE) AS revenue_mad FROM delta_scan('{root}/gold/daily_product_sales')
         WHERE date BETWEEN DATE '{from}' AND DATE '{to}' AND category_name = '{}' GROUP BY product_id ORDER BY revenue_mad DESC, product_id LIMIT 50",
        category.replace('\'', "''")
    ))
    .unwrap();
    let rows = step["tables"]["table-top-products"].as_array().unwrap();
    assert!(!want.is_empty(), "category {category} sold nothing: a weak check");
    assert_eq!(rows.len(), want.len(), "{} rows of top products for {category}", step["step"]);
    for (r, w) in rows.iter().zip(&want) {
        close(num(&r["units"]), num(&w["units"]), &format!("units of product {}", w["product_id"]));
        close(num(&r["revenue_mad"]), num(&w["revenue_mad"]), &format!("revenue of product {}", w["product_id"]));
    }
}

/// The returns-by-product table against DuckDB for the step's filters; the number of rows shown.
fn assert_returns(step: &Value, root: &str) -> usize {
    let st = &step["state"];
    let ((from, to), category) = (period(step), st["category"].as_str().unwrap().replace('\'', "''"));
    let want = duckdb(&format!(
        "WITH r AS (SELECT product_id, sum(units_returned) AS units_returned, CAST(sum(refunded_mad) AS DOUBLE) AS refunded_mad
                    FROM delta_scan('{root}/gold/daily_product_returns') WHERE date BETWEEN DATE '{from}' AND DATE '{to}' AND category_name = '{category}' GROUP BY product_id),
              s AS (SELECT product_id, sum(units) AS units_sold FROM delta_scan('{root}/gold/daily_product_sales') WHERE date BETWEEN DATE '{from}' AND DATE '{to}' GROUP BY product_id)
         SELECT r.product_id, r.units_returned, r.refunded_mad, coalesce(s.units_sold, 0) AS units_sold FROM r LEFT JOIN s USING (product_id)
         ORDER BY r.units_returned DESC, r.refunded_mad DESC, r.product_id LIMIT 50"
    ))
    .unwrap();
    let rows = step["tables"]["table-returns"].as_array().unwrap();
    assert_eq!(rows.len(), want.len(), "{} rows of returns for {category}", step["step"]);
    for (r, w) in rows.iter().zip(&want) {
        let what = format!("returns of product {}", w["product_id"]);
        close(num(&r["units_returned"]), num(&w["units_returned"]), &what);
        close(num(&r["units_sold"]), num(&w["units_sold"]), &what);
        close(num(&r["refunded_mad"]), num(&w["refunded_mad"]), &what);
    }
    rows.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_shows_what_duckdb_computes_filters_drill_down_and_goes_live() {
    let stack = Stack::deploy("dash", &repo().join("infra/template.yaml"), false).unwrap();
    let mut cfg = SimConfig::small(71, 3_000);
    cfg.invalid_rate = 0.01;
    cfg.credentials = sim_credentials(&stack.name).await;
    let (addr, _state, _) = serve(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let root = stack.output("LakeRoot").to_string();

    let mut rc = RunnerConfig::new(repo().join("infra/template.yaml"), &stack.name, bin_dir());
    rc.functions = ["planner", "fetcher", "transform", "aggregate", "forecast", "webhook", "realtime", "dashboard", "report"].map(String::from).to_vec();
    rc.concurrency = 4;
    rc.log_dir = Some(repo().join(".local/logs").join(&stack.name));
    rc.extra_env.insert("SOURCE_BASE_URLS".into(), format!("alkasba_store={base},competitor_prices={base},exchange_rates={base}"));
    rc.extra_env.insert("CHROMIUM_PATH".into(), "/usr/bin/chromium".into());
    let runner = Runner::start(rc).await.unwrap();
    let all = ["alkasba_store.products", "alkasba_store.customers", "alkasba_store.orders", "alkasba_store.refunds", "competitor_prices.prices", "exchange_rates.rates"];
    let runs = plan(&runner, &all, None).await;
    wait_completed(&lake(&stack), &runs, Duration::from_secs(300)).await;
    // The competitor feed is daily: the last week of the store's history, planned as of each day.
    for day in 25..=31 {
        let runs = plan(&runner, &["competitor_prices.prices"], Some(&format!("2026-10-{day}"))).await;
        wait_completed(&lake(&stack), &runs, Duration::from_secs(120)).await;
    }
    // Prices move after that week (the store's clock runs on): the competitor index must keep
    // comparing with the price as it was on each day.
    let r = reqwest::Client::new().post(format!("{base}/_sim/mutate?n=1500&over=86400")).send().await.unwrap();
    assert!(r.status().is_success());
    let runs = plan(&runner, &["alkasba_store.products"], None).await;
    wait_completed(&lake(&stack), &runs, Duration::from_secs(120)).await;
    for f in ["TransformFunction", "AggregateFunction"] {
        let inv = runner.invoke(f, &json!({})).await.unwrap();
        assert!(matches!(inv.outcome, Outcome::Success(_)), "{f}: {:?}", inv.outcome);
    }
    let inv = runner.invoke("ForecastFunction", &json!({"run_date": "2026-11-01"})).await.unwrap();
    assert!(matches!(inv.outcome, Outcome::Success(_)), "forecast: {:?}", inv.outcome);

    // Publish the pages and grant a user, with the CLI as an operator would.
    let dash = format!("http://{}", runner.http_endpoints()["DashboardFunction"]);
    let cli = |args: &[&str]| {
        let out = Command::new(bin_dir().join("alkasba")).arg("--stack").arg(&stack.name).args(args).env("AWS_ENDPOINT_URL", ENDPOINT).current_dir(repo()).output().unwrap();
        assert!(out.status.success(), "alkasba {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    cli(&["dashboard", "publish", "--web", "web"]);
    let link = cli(&["dashboard", "grant", "--user", "analyst", "--url", &dash]).trim().to_string();
    assert!(link.starts_with(&format!("{dash}/login#user=analyst&key=")), "{link}");
    // Without a session: the data is refused, the page sends to the sign-in.
    let r = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap().get(format!("{dash}/")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers().get("location").and_then(|v| v.to_str().ok())), (302, Some("/login")));
    assert_eq!(reqwest::get(format!("{dash}/api/q/sales_kpis")).await.unwrap().status().as_u16(), 401);

    // The browser.
    let artifacts = repo().join(".local/artifacts/dashboard");
    let mut node = Command::new("node")
        .arg(repo().join("tests/browser/dashboard.mjs"))
        .arg(&link)
        .arg(&artifacts)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node (scripts/install-web.sh)");
    let mut stdin = node.stdin.take().unwrap();
    // Written to by the "live_waiting" step; closed once the driver is done.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let stdout = node.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap_or_else(|_| json!({"step": "noise", "line": line})));
        }
    });
    let mut steps: BTreeMap<String, Value> = BTreeMap::new();
    while let Some(v) = tokio::time::timeout(Duration::from_secs(300), rx.recv()).await.expect("the browser driver went quiet") {
        let name = v["step"].as_str().unwrap_or_default().to_string();
        eprintln!("browser: {name} {}", v.get("ms").map(|m| format!("{m} ms")).unwrap_or_default());
        match name.as_str() {
            "failed" => panic!("the browser driver failed: {v}"),
            "live_waiting" => {
                // New store events through the real webhook and realtime functions.
                let webhook = format!("http://{}/", runner.http_endpoints()["WebhookFunction"]);
                let r = reqwest::Client::new().post(format!("{base}/_sim/webhooks/start")).json(&json!({"url": webhook, "rate": 20, "duration_secs": 15, "incidents": []})).send().await.unwrap();
                assert!(r.status().is_success(), "{}", r.text().await.unwrap());
                writeln!(stdin, "go").unwrap();
            }
            "done" => {
                steps.insert(name, v);
                drop(stdin);
                break;
            }
            _ => {
                steps.insert(name, v);
            }
        }
    }
    assert!(node.wait().unwrap().success());

    // What the page showed, against DuckDB on the same gold tables.
    let sales = &steps["sales"];
    assert_eq!(sales["state"]["page"], "sales");
    assert_kpis(sales, &root);
    assert_revenue_chart(sales, &root, "day");
    // The payment-method table: revenue and discounts per method, as DuckDB sums the mart.
    let want = duckdb(&format!(
        "SELECT payment_method, CAST(sum(gross_mad) AS DOUBLE) AS revenue, CAST(sum(discount_mad) AS DOUBLE) AS discount FROM delta_scan('{root}/gold/daily_order_mix')
         WHERE date BETWEEN DATE '{}' AND DATE '{}' GROUP BY 1 ORDER BY revenue DESC, payment_method",
        period(sales).0,
        period(sales).1
    ))
    .unwrap();
    let shown = sales["tables"]["table-payments"].as_array().unwrap();
    assert!(want.len() >= 2 && shown.len() == want.len(), "payment methods: shown {shown:?}, DuckDB {want:?}");
    for (r, w) in shown.iter().zip(&want) {
        assert_eq!(r["payment_method"], w["payment_method"]);
        close(num(&r["revenue_mad"]), num(&w["revenue"]), &format!("revenue paid by {}", w["payment_method"]));
        close(num(&r["discount_mad"]), num(&w["discount"]), &format!("discounts on {}", w["payment_method"]));
    }
    let by_currency = &steps["sales_currency"];
    assert!(!by_currency["state"]["currency"].as_str().unwrap().is_empty());
    assert_kpis(by_currency, &root);
    assert_revenue_chart(by_currency, &root, "day");
    assert!(num(&by_currency["kpis"]["revenue_mad"]) < num(&sales["kpis"]["revenue_mad"]), "one currency is less than all");
    let monthly = &steps["sales_month"];
    // The browser asked for reduced motion: every chart is drawn without transitions, so the
    // screenshots show the month bars alone, not the day bars fading out behind them.
    for (step, shown) in &steps {
        for (id, c) in shown["charts"].as_object().into_iter().flatten() {
            assert_eq!(c["animation"], json!(false), "{step}: {id} animates under prefers-reduced-motion");
        }
    }
    assert_kpis(monthly, &root);
    assert_revenue_chart(monthly, &root, "month");
    // The drill-down: a click on the first category bar opens the products of that category.
    let drill = &steps["products_drill"];
    assert_eq!(drill["state"]["page"], "products");
    let first_category = monthly["charts"]["chart-categories"]["y"][0].as_str().unwrap();
    assert_eq!(drill["state"]["category"], first_category);
    assert_top_products(drill, &root);
    let cat = &steps["products_category"];
    assert_ne!(cat["state"]["category"], drill["state"]["category"]);
    assert_top_products(cat, &root);
    let returned = assert_returns(drill, &root) + assert_returns(cat, &root);
    assert!(returned > 0, "no returns in either category: a weak check");
    // Our price in the index is the price as it was that day, read independently from the bronze
    // versions of each product (the last one by the end of the day; before the first, the first).
    let check = duckdb(&format!(
        "WITH b AS (SELECT DISTINCT id AS product_id, date_modified_gmt AS m, CAST(price AS DOUBLE) AS price FROM delta_scan('{root}/bronze/alkasba_store/products')),
              g AS (SELECT date, product_id, CAST(our_price AS DOUBLE) AS our_price FROM delta_scan('{root}/gold/competitor_price_index')),
              w AS (SELECT g.*, coalesce((SELECT price FROM b WHERE b.product_id = g.product_id AND CAST(b.m AS DATE) <= g.date ORDER BY b.m DESC LIMIT 1),
                                         (SELECT price FROM b WHERE b.product_id = g.product_id ORDER BY b.m LIMIT 1)) AS then_price,
                           (SELECT price FROM b WHERE b.product_id = g.product_id ORDER BY b.m DESC LIMIT 1) AS now_price FROM g)
         SELECT count(*) AS rows, sum(CASE WHEN abs(our_price - then_price) > 0.001 THEN 1 ELSE 0 END) AS wrong,
                sum(CASE WHEN abs(now_price - then_price) > 0.001 THEN 1 ELSE 0 END) AS moved_since FROM w"
    ))
    .unwrap();
    assert_eq!(num(&check[0]["wrong"]), 0.0, "index rows not on the price of their day: {check:?}");
    assert!(num(&check[0]["moved_since"]) > 0.0, "no price moved after the prices' week: the check proves nothing ({check:?})");
    // The other pages rendered rows from their tables.
    assert!(!steps["health"]["tables"]["table-runs"].as_array().unwrap().is_empty());
    let quarantined: f64 = steps["health"]["tables"]["table-quarantine"].as_array().unwrap().iter().map(|r| num(&r["records"])).sum();
    // The health page was rendered before the live step's webhooks, whose invalid deliveries
    // (the simulator's invalid dice apply to them too) the real-time path quarantines later,
    // under run id "webhook".
    let want = duckdb(&format!("SELECT count(*) AS n FROM delta_scan('{root}/quarantine/ingest') WHERE _run_id <> 'webhook'")).unwrap();
    close(quarantined, num(&want[0]["n"]), "quarantined records on the health page");
    assert!(steps["customers"]["charts"]["chart-cohorts"]["series"][0]["data"].as_array().is_some_and(|d| !d.is_empty()), "cohort heat map");
    // The forecast page: the forecast line and the accuracy table are what DuckDB reads from the
    // forecast tables (for the category the filters kept, or the whole shop).
    let fc = &steps["forecast"];
    let category = fc["state"]["category"].as_str().unwrap_or_default();
    let series = if category.is_empty() { "revenue_mad/total".to_string() } else { format!("revenue_mad/category/{category}") };
    let want = duckdb(&format!("SELECT point FROM delta_scan('{root}/gold/forecast_daily') WHERE run_date = DATE '2026-11-01' AND series = '{}' ORDER BY date", series.replace('\'', "''"))).unwrap();
    let line = fc["charts"]["chart-forecast"]["series"].as_array().unwrap().iter().find(|s| s["name"] == "forecast").unwrap_or_else(|| panic!("no forecast line: {fc}"));
    let shown: Vec<f64> = line["data"].as_array().unwrap().iter().filter(|v| !v.is_null()).map(num).collect();
    assert_eq!(shown.len(), 28, "{series}: {shown:?}");
    for (s, w) in shown.iter().zip(&want) {
        close(*s, num(&w["point"]), &format!("forecast of {series}"));
    }
    let want = duckdb(&format!(
        "SELECT series, mase FROM delta_scan('{root}/gold/forecast_accuracy') WHERE run_date = DATE '2026-11-01' AND chosen AND family <> 'units/product'
         ORDER BY CASE family WHEN 'revenue_mad/total' THEN 0 WHEN 'revenue_mad/category' THEN 1 WHEN 'units/total' THEN 2 ELSE 3 END, series"
    ))
    .unwrap();
    let shown = fc["tables"]["table-forecast-accuracy"].as_array().unwrap();
    assert_eq!(shown.len(), want.len(), "accuracy rows: {shown:?} vs {want:?}");
    for (r, w) in shown.iter().zip(&want) {
        assert_eq!(r["series"], w["series"]);
        close(num(&r["mase"]), num(&w["mase"]), &format!("MASE of {}", w["series"]));
    }
    // Geography: the cities shown and their revenue, as DuckDB reads them from silver orders
    // (the billing country and city ingestion kept in clear).
    let cust = &steps["customers"];
    let want = duckdb(&format!(
        "SELECT upper(trim(country)) AS country, trim(city) AS city, CAST(sum(total_mad) AS DOUBLE) AS revenue FROM delta_scan('{root}/silver/orders')
         WHERE is_paid AND order_date BETWEEN DATE '{}' AND DATE '{}' GROUP BY 1, 2 ORDER BY revenue DESC, country, city LIMIT 30",
        period(cust).0,
        period(cust).1
    ))
    .unwrap();
    let shown = cust["tables"]["table-geography"].as_array().unwrap();
    assert!(want.len() >= 3 && shown.len() == want.len(), "cities: shown {shown:?}, DuckDB {want:?}");
    for (r, w) in shown.iter().zip(&want) {
        assert_eq!((&r["country"], &r["city"]), (&w["country"], &w["city"]));
        close(num(&r["revenue_mad"]), num(&w["revenue"]), &format!("revenue from {}", w["city"]));
    }
    // The price index chart: one point per day of the week of prices, as DuckDB averages them.
    let comp = &steps["competition"];
    let want = duckdb(&format!(
        "SELECT CAST(date AS VARCHAR) AS d, avg(price_index) AS idx FROM delta_scan('{root}/gold/competitor_price_index')
         WHERE date BETWEEN DATE '{}' AND DATE '{}' GROUP BY 1 ORDER BY 1",
        period(comp).0,
        period(comp).1
    ))
    .unwrap();
    assert_eq!(want.len(), 7, "{want:?}");
    let chart = &comp["charts"]["chart-index"];
    assert_eq!(chart["x"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>(), want.iter().map(|r| r["d"].as_str().unwrap()).collect::<Vec<_>>());
    for (i, w) in want.iter().enumerate() {
        close(num(&chart["series"][0]["data"][i]), num(&w["idx"]), &format!("price index on {}", w["d"]));
    }
    // Live: the page refreshed by itself after the events.
    assert!(num(&steps["live_after"]["kpis"]["orders_1h"]) > num(&steps["live"]["kpis"].get("orders_1h").cloned().unwrap_or(Value::Null)));
    // Its best sellers are named (from the order lines of the deliveries), not shown by id.
    let best = steps["live_after"]["tables"]["table-live-top"].as_array().unwrap();
    assert!(!best.is_empty(), "no best sellers after the webhook events");
    for r in best {
        let name = r["product"].as_str().unwrap_or_default();
        assert!(!name.is_empty() && !name.starts_with('#'), "a best seller shown without its name: {r}");
    }

    let done = &steps["done"];
    assert_eq!(done["outside"], json!([]), "requests outside the deployment");
    assert_eq!(done["problems"], json!([]), "console errors");
    assert_eq!(done["phone_fits"], true, "the sales page is wider than a phone");
    for page in ["sales", "products_category", "customers", "competition", "live_after", "health", "forecast", "phone"] {
        assert!(artifacts.join(format!("{page}.png")).is_file(), "screenshot {page}");
    }
    // The monthly report, by the scheduled function (as its schedule would run it for October)
    // and by the CLI: the same HTML; the PDF's text holds every section and DuckDB's numbers.
    let inv = runner.invoke("ReportFunction", &json!({"month": "2026-10"})).await.unwrap();
    let Outcome::Success(out) = &inv.outcome else { panic!("report: {:?}", inv.outcome) };
    assert_eq!(out["written"], json!(["reports/2026-10/alkasba-report-2026-10.html", "reports/2026-10/alkasba-report-2026-10.pdf"]), "{out}");
    let dir = repo().join(".local/artifacts/report");
    let written: Value = serde_json::from_str(&cli(&["report", "--month", "2026-10", "--out", dir.to_str().unwrap(), "--json"])).unwrap();
    let pdf = dir.join("alkasba-report-2026-10.pdf");
    assert_eq!(written, json!({"month": "2026-10", "html": dir.join("alkasba-report-2026-10.html").display().to_string(), "pdf": pdf.display().to_string(), "uploaded": []}));
    let text = String::from_utf8(Command::new("pdftotext").args(["-layout"]).arg(&pdf).arg("-").output().unwrap().stdout).unwrap();
    for heading in ["Revenue and growth", "Categories", "Top products", "Customer cohorts", "Competitor pressure", "Alerts of the month", "Data quality"] {
        assert!(text.contains(heading), "section {heading:?} missing from the PDF:\n{text}");
    }
    let month = duck_kpis(&root, "2026-10-01", "2026-10-31", "");
    let money = |v: f64| {
        let cents = (v * 100.0).round() as i64;
        let whole = (cents / 100).to_string();
        let grouped: Vec<String> = whole.as_bytes().rchunks(3).rev().map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
        format!("{}.{:02} MAD", grouped.join(","), cents % 100)
    };
    for (what, shown) in [("revenue", money(num(&month["revenue_mad"]))), ("refunds", money(num(&month["refunds_mad"]))), ("net revenue", money(num(&month["net_revenue_mad"])))] {
        assert!(text.contains(&shown), "the PDF does not show October's {what} {shown} (DuckDB):\n{text}");
    }
    let top = duckdb(&format!(
        "SELECT max(product_name) AS name, CAST(sum(revenue_mad) AS DOUBLE) AS revenue FROM delta_scan('{root}/gold/daily_product_sales')
         WHERE date BETWEEN DATE '2026-10-01' AND DATE '2026-10-31' GROUP BY product_id ORDER BY revenue DESC, product_id LIMIT 1"
    ))
    .unwrap();
    let top_line = text.lines().find(|l| l.contains(top[0]["name"].as_str().unwrap())).unwrap_or_else(|| panic!("top product {} not in the PDF", top[0]["name"]));
    assert!(top_line.contains(&money(num(&top[0]["revenue"])).replace(" MAD", "")), "{top_line}");
    // Every chart drew: its own text (titles, axis labels) is in the PDF, and the pages are not blank.
    for mark in ["Revenue per day (MAD)", "Revenue per month (MAD)", "months later", "price index", "2026-08-01"] {
        assert!(text.contains(mark), "chart text {mark:?} missing from the PDF");
    }
    let pages = dir.join("page");
    assert!(Command::new("pdftoppm").args(["-png", "-r", "40"]).arg(&pdf).arg(&pages).status().unwrap().success());
    let pngs: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("page")).collect();
    assert!(pngs.len() >= 2, "{} pages", pngs.len());

    let _ = eventually(Duration::from_secs(60), "the simulator's webhook run ends", || async {
        let log: Value = reqwest::get(format!("{base}/_sim/webhooks/log")).await.ok()?.json().await.ok()?;
        (log["running"] == false).then_some(())
    })
    .await;
    runner.shutdown().await;
    stack.cleanup().await;
}
