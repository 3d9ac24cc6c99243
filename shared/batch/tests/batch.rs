//! The batch layer end to end on one machine: the simulator over HTTP, ingestion into a local
//! Delta lake, then transform (bronze → silver) and aggregate (silver → gold). Gold must equal
//! what the simulator's ground truth implies (revenue per day and currency, per day and product,
//! after deduplication, updates and refunds), amounts in MAD must be the order-date rate within
//! rounding, the second run must read only what changed, and a re-run must commit nothing.

use std::collections::{BTreeMap, HashMap};

use alkasba_batch::maintain::{self, MaintainOptions};
use alkasba_batch::{gold, silver};
use alkasba_ingest::{Tuning, testkit};
use alkasba_lake::Lake;
use alkasba_lake::arrow::array::{Array, RecordBatch};
use alkasba_lake::arrow::compute::cast;
use alkasba_lake::arrow::datatypes::DataType;
use alkasba_sim::SimConfig;
use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::Value;

type Row = HashMap<String, Option<String>>;

/// Rows of `table` as maps of column → text (decimals as `12.34`, dates as `2026-10-01`).
async fn rows(lake: &Lake, layer: &str, table: &str) -> Vec<Row> {
    let uri = gold::uri(lake, layer, table).unwrap();
    let batches: Vec<RecordBatch> = lake.scan(&uri, None, &[]).await.unwrap();
    text_rows(&batches)
}

/// Rows in a stable order, for comparing tables.
fn sorted(mut v: Vec<Row>) -> Vec<Row> {
    v.sort_by_key(|r| format!("{:?}", r.iter().collect::<BTreeMap<_, _>>()));
    v
}

fn text_rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<_> = b.columns().iter().map(|c| cast(c, &DataType::Utf8).unwrap()).collect();
        for i in 0..b.num_rows() {
            out.push(
                b.schema()
                    .fields()
                    .iter()
                    .zip(&cols)
                    .map(|(f, c)| {
                        let s = c.as_any().downcast_ref::<alkasba_lake::arrow::array::StringArray>().unwrap();
                        (f.name().clone(), (!s.is_null(i)).then(|| s.value(i).to_string()))
                    })
                    .collect(),
            );
        }
    }
    out
}

fn get(r: &HashMap<String, Option<String>>, k: &str) -> String {
    r.get(k).cloned().flatten().unwrap_or_else(|| panic!("no {k} in {r:?}"))
}

fn money(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// (date, currency) of a daily_sales row, and its figures as text.
type DayCurrency = (String, String);
type DailyFigures = (String, String, String, String, String);

/// Gold daily_sales and daily_product_sales equal the simulator's daily truth, exactly.
async fn assert_gold_equals_truth(lake: &Lake, base: &str) {
    let truth: Value = reqwest::get(format!("{base}/_sim/truth/daily")).await.unwrap().json().await.unwrap();
    let want: BTreeMap<DayCurrency, DailyFigures> = truth["by_day_currency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| ((money(&r["date"]), money(&r["currency"])), (r["orders"].to_string(), r["paid_orders"].to_string(), money(&r["gross"]), money(&r["refunds"]), money(&r["net"]))))
        .collect();
    let got: BTreeMap<DayCurrency, DailyFigures> = rows(lake, "gold", "daily_sales")
        .await
        .iter()
        .map(|r| ((get(r, "date"), get(r, "currency")), (get(r, "orders"), get(r, "paid_orders"), get(r, "gross"), get(r, "refunds"), get(r, "net"))))
        .collect();
    let diff: Vec<_> = want.iter().filter(|(k, v)| got.get(*k) != Some(v)).take(5).map(|(k, v)| (k, v, got.get(k))).collect();
    assert!(diff.is_empty(), "daily_sales differs from the truth (want, got): {diff:?}");
    assert_eq!(got.len(), want.len(), "daily_sales has extra rows");

    let want: BTreeMap<(String, String, String), (String, String)> = truth["by_day_product_currency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| ((money(&r["date"]), r["product_id"].to_string(), money(&r["currency"])), (r["units"].to_string(), money(&r["revenue"]))))
        .collect();
    let got: BTreeMap<(String, String, String), (String, String)> =
        rows(lake, "gold", "daily_product_sales").await.iter().map(|r| ((get(r, "date"), get(r, "product_id"), get(r, "currency")), (get(r, "units"), get(r, "revenue")))).collect();
    let diff: Vec<_> = want.iter().filter(|(k, v)| got.get(*k) != Some(v)).take(5).map(|(k, v)| (k, v, got.get(k))).collect();
    assert!(diff.is_empty(), "daily_product_sales differs from the truth (want, got): {diff:?}");
    assert_eq!(got.len(), want.len(), "daily_product_sales has extra rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silver_and_gold_equal_the_truth_incrementally_and_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::small(21, 2_500);
    cfg.shape.days = 20;
    cfg.invalid_rate = 0.02;
    let fx_token = cfg.credentials.fx_token.clone();
    let end = cfg.shape.end;
    let local = testkit::local(cfg, dir.path(), Tuning { pages_per_task: 10, pages_per_commit: 5, ..Tuning::default() }).await;
    let lake = local.ingest.lake.clone();
    let store = ["alkasba_store.products", "alkasba_store.customers", "alkasba_store.orders", "alkasba_store.refunds", "competitor_prices.prices"];
    local.run(&store).await;
    // The exchange rates of every day of the store's history (a daily feed, run per date).
    let mut day = end - chrono::Days::new(21);
    while day <= end + chrono::Days::new(1) {
        local.run_at(&["exchange_rates.rates"], Utc.from_utc_datetime(&day.and_hms_opt(12, 0, 0).unwrap())).await;
        day = day.succ_opt().unwrap();
    }

    let steps = silver::transform(&lake, None, silver::TransformOptions::default(), || true).await.unwrap();
    assert!(steps.iter().all(|s| s.version.is_some()), "{steps:#?}");
    let marts = gold::aggregate(&lake, &Default::default(), None, || true).await.unwrap();
    assert!(marts.iter().all(|m| m.mode == "full" && m.version.is_some()), "{marts:#?}");
    assert_gold_equals_truth(&lake, &local.base).await;

    // Silver: one row per order, every order converted at its own day's rate.
    let orders = rows(&lake, "silver", "orders").await;
    let truth: Value = reqwest::get(format!("{}/_sim/truth/orders", local.base)).await.unwrap().json().await.unwrap();
    assert_eq!(orders.len(), truth["valid"].as_array().unwrap().len());
    let http = reqwest::Client::new();
    let mut rates: HashMap<(String, String), f64> = HashMap::new();
    for o in orders.iter().take(300) {
        let (date, currency) = (get(o, "order_date"), get(o, "currency"));
        let rate = if currency == "MAD" {
            1.0
        } else if let Some(r) = rates.get(&(date.clone(), currency.clone())) {
            *r
        } else {
            let feed: Value = http.get(format!("{}/feeds/fx/rates?date={date}&limit=50", local.base)).bearer_auth(&fx_token).send().await.unwrap().json().await.unwrap();
            let r = feed["rates"].as_array().unwrap().iter().find(|r| r["currency"] == currency.as_str()).unwrap()["mad_per_unit"].as_f64().unwrap();
            rates.insert((date.clone(), currency.clone()), r);
            r
        };
        let total: f64 = get(o, "total").parse().unwrap();
        let mad: f64 = get(o, "total_mad").parse().unwrap();
        assert!((total * rate - mad).abs() <= 0.0051, "order {}: {total} {currency} at {rate} is {mad} MAD", get(o, "order_id"));
        assert!(!o.values().flatten().any(|v| v.contains('@')), "no email in silver orders");
    }
    // Customers appear by token; their personal fields stay sealed.
    let customers = rows(&lake, "silver", "customers").await;
    assert!(customers.iter().all(|c| alkasba_pii::is_sealed(&get(c, "pii_sealed")) && get(c, "customer_token").len() > 20));

    // The store changes: new orders, status moves (cancellations, refunds), price and stock
    // changes. The next runs read only the new bronze versions and recompute only touched dates.
    let lines_before = rows(&lake, "silver", "order_lines").await.len();
    http.post(format!("{}/_sim/mutate?n=100", local.base)).send().await.unwrap();
    local.run(&store[..4]).await;
    let steps = silver::transform(&lake, None, silver::TransformOptions::default(), || true).await.unwrap();
    let orders_step = steps.iter().find(|s| s.table == "orders").unwrap();
    assert!(orders_step.from.unwrap() > 0 && orders_step.read > 0 && orders_step.read < 1_000, "incremental: {orders_step:?}");
    assert!(rows(&lake, "silver", "order_lines").await.len() > lines_before);
    let marts = gold::aggregate(&lake, &Default::default(), None, || true).await.unwrap();
    let daily = marts.iter().find(|m| m.mart == "daily_sales").unwrap();
    // Only the days the changes touched (status moves reach back to older orders' days).
    let all_days = rows(&lake, "gold", "daily_sales").await.iter().map(|r| get(r, "date")).collect::<std::collections::HashSet<_>>().len();
    assert!(daily.mode == "incremental" && daily.dates >= 1 && daily.dates < all_days, "{daily:?} of {all_days} days");
    assert_gold_equals_truth(&lake, &local.base).await;
    // Every mart brought up to date incrementally holds exactly what a full build computes now.
    for m in gold::MARTS {
        let step = marts.iter().find(|s| s.mart == m.name).unwrap();
        assert!(step.version.is_some(), "{step:?}");
        if !matches!(m.update, gold::Update::Rebuild) {
            assert_eq!(step.mode, "incremental", "{step:?}");
        }
        let (_, batches) = gold::compute(&lake, m).await.unwrap();
        let want = sorted(text_rows(&batches));
        assert_eq!(sorted(rows(&lake, "gold", m.name).await), want, "{}: incremental result differs from a full computation", m.name);
        assert!(!want.is_empty(), "{} is empty", m.name);
    }
    assert_eq!(rows(&lake, "silver", "orders").await.len(), reqwest::get(format!("{}/_sim/truth/orders", local.base)).await.unwrap().json::<Value>().await.unwrap()["valid"].as_array().unwrap().len());

    // Running again changes nothing: no commit anywhere.
    let steps = silver::transform(&lake, None, silver::TransformOptions::default(), || true).await.unwrap();
    assert!(steps.iter().all(|s| s.version.is_none()), "{steps:#?}");
    let marts = gold::aggregate(&lake, &Default::default(), None, || true).await.unwrap();
    assert!(marts.iter().all(|m| m.version.is_none() && m.mode == "skipped"), "{marts:#?}");

    // Maintenance: fewer files, the same answers, time travel within the retention.
    let daily_before = sorted(rows(&lake, "gold", "daily_sales").await);
    let lines_before = sorted(rows(&lake, "silver", "order_lines").await);
    let orders_uri = gold::uri(&lake, "silver", "orders").unwrap();
    let v0 = alkasba_lake::read::open_table(&orders_uri, lake.storage()).await.unwrap().unwrap().version().unwrap();
    let reports = maintain::maintain(&lake, None, &MaintainOptions::default(), || true).await.unwrap();
    for r in &reports {
        assert!(r.files_after <= r.files_before.max(1), "{r:?}");
    }
    // At most two files per partition everywhere, and many fewer files overall.
    assert!(reports.iter().all(|r| r.files_after <= 2 * r.partitions.max(1)), "{reports:#?}");
    assert!(reports.iter().all(|r| r.excess_files == 0 && r.worst_partition_files <= 2), "{reports:#?}");
    let (before, after): (usize, usize) = reports.iter().fold((0, 0), |(b, a), r| (b + r.files_before, a + r.files_after));
    // Fewer files; partitions that already held one file each (gold, partitioned by date) stay.
    assert!(after < before && reports.iter().map(|r| r.files_compacted).sum::<u64>() as usize >= before - after, "{before} files before maintenance, {after} after");
    assert!(reports.iter().any(|r| r.table.starts_with("bronze/") && r.files_compacted > 0), "{reports:#?}");
    // Every table of the registry is maintained, the keyring and the real-time tables included.
    let registered: Vec<String> = alkasba_batch::registry::registry().tables().iter().map(|t| t.path.clone()).collect();
    assert_eq!(reports.iter().map(|r| r.table.clone()).collect::<Vec<_>>(), registered);
    assert!(reports.iter().any(|r| r.table == "security/keyring" && r.files_before > 0), "{reports:#?}");
    // Tables created without a checkpoint interval (silver's and gold's writers set none) get
    // the lake's; those the lake created (bronze) had it already.
    assert!(reports.iter().any(|r| r.table.starts_with("silver/") && r.checkpoint_interval_set), "{reports:#?}");
    assert!(reports.iter().all(|r| !(r.table.starts_with("bronze/") && r.checkpoint_interval_set)), "{reports:#?}");
    for r in &reports {
        if let Some(t) = alkasba_lake::read::open_table(&lake.table(&r.table).unwrap(), lake.storage()).await.unwrap() {
            assert_eq!(t.snapshot().unwrap().metadata().configuration().get("delta.checkpointInterval").map(String::as_str), Some("10"), "{}", r.table);
        }
    }
    // Files no commit references (a lost commit race, a killed writer) go once older than the
    // retention (7 days); a younger one may still be a commit in flight, and stays.
    let bronze_dir = dir.path().join("bronze/alkasba_store/orders");
    let partition = std::fs::read_dir(&bronze_dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.file_name().unwrap().to_string_lossy().starts_with("_ingest_date=")).unwrap();
    let (stale, fresh) = (partition.join("part-00000-orphan-old.c000.snappy.parquet"), partition.join("part-00000-orphan-new.c000.snappy.parquet"));
    for f in [&stale, &fresh] {
        std::fs::write(f, b"uploaded for a commit that never happened").unwrap();
    }
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(8 * 86_400)).unwrap();
    // A second run finds nothing to rewrite.
    let again = maintain::maintain(&lake, None, &MaintainOptions::default(), || true).await.unwrap();
    assert!(again.iter().all(|r| r.files_compacted == 0), "{again:#?}");
    assert!(!stale.exists(), "an unreferenced file older than the retention is vacuumed");
    assert!(fresh.exists(), "an unreferenced file younger than the retention stays");
    std::fs::remove_file(&fresh).unwrap();
    assert_eq!(sorted(rows(&lake, "gold", "daily_sales").await), daily_before, "maintenance changed a query result");
    assert_eq!(sorted(rows(&lake, "silver", "order_lines").await), lines_before, "maintenance changed a query result");
    let mut old = alkasba_lake::read::open_table(&orders_uri, lake.storage()).await.unwrap().unwrap();
    old.load_version(v0).await.unwrap();
    let n: usize = alkasba_lake::read::scan(&old, None, &["order_id"]).await.unwrap().iter().map(RecordBatch::num_rows).sum();
    assert_eq!(n, rows(&lake, "silver", "orders").await.len(), "time travel to the version before compaction");
    // The compaction commits carry no data change: the next runs read no rows and change no answer.
    let steps = silver::transform(&lake, None, silver::TransformOptions::default(), || true).await.unwrap();
    assert!(steps.iter().all(|s| s.merged == 0), "{steps:#?}");
    gold::aggregate(&lake, &Default::default(), None, || true).await.unwrap();
    assert_eq!(sorted(rows(&lake, "gold", "daily_sales").await), daily_before, "a run after maintenance changed a result");
    // A table whose lease another run holds is left alone.
    let lease = dir.path().join("silver/orders/_maintain.lease");
    std::fs::write(&lease, serde_json::json!({"owner": "other", "expires_at": (Utc::now() + chrono::Duration::minutes(10)).to_rfc3339()}).to_string()).unwrap();
    let r = maintain::maintain(&lake, Some(&["silver/orders".to_string()]), &MaintainOptions::default(), || true).await.unwrap();
    assert!(r[0].note.contains("lease") && r[0].files_before == 0, "{r:?}");
    assert!(lease.exists(), "another run's lease is not removed");

    // The other marts are there and consistent with daily_sales.
    let growth = rows(&lake, "gold", "revenue_growth").await;
    let daily_sum: f64 = rows(&lake, "gold", "daily_sales").await.iter().map(|r| get(r, "gross_mad").parse::<f64>().unwrap()).sum();
    let growth_sum: f64 = growth.iter().map(|r| get(r, "revenue_mad").parse::<f64>().unwrap()).sum();
    assert!((daily_sum - growth_sum).abs() < 0.01, "{daily_sum} vs {growth_sum}");
    for m in ["monthly_revenue", "customer_activity", "customer_cohorts", "top_products", "stock_cover", "competitor_price_index"] {
        assert!(!rows(&lake, "gold", m).await.is_empty(), "{m} is empty");
    }
    let first = NaiveDate::parse_from_str(&get(&growth[0], "date"), "%Y-%m-%d").unwrap();
    assert!(first <= end + chrono::Days::new(2));

    // A silver table built from nothing once maintenance has compacted and vacuumed bronze (the
    // change feed can no longer replay its first versions) reads bronze's snapshot a slice of
    // files at a time, stops and resumes between slices, follows with the versions committed
    // meanwhile, and holds exactly the store's orders.
    http.post(format!("{}/_sim/mutate?n=50", local.base)).send().await.unwrap();
    local.run(&["alkasba_store.orders"]).await;
    std::fs::remove_dir_all(dir.path().join("silver/orders")).unwrap();
    let one_file = silver::TransformOptions { max_step_bytes: 1, ..silver::TransformOptions::default() };
    let first = silver::step(&lake, silver::spec("orders").unwrap(), one_file).await.unwrap();
    let slice = first.backfill.clone().unwrap();
    assert!(first.version.is_some() && slice.files_from == 0 && slice.files_to == 1 && slice.files >= 2 && slice.bytes > 0, "{first:?}");
    // Bronze moves on while the backfill is under way.
    http.post(format!("{}/_sim/mutate?n=50", local.base)).send().await.unwrap();
    local.run(&["alkasba_store.orders"]).await;
    let steps = silver::transform(&lake, Some(&["orders".to_string()]), one_file, || true).await.unwrap();
    let (slices, rest): (Vec<_>, Vec<_>) = steps.iter().partition(|s| s.backfill.is_some());
    assert_eq!(slices.len(), slice.files - 1, "one step per remaining file of the pinned snapshot: {steps:#?}");
    assert!(slices.iter().all(|s| s.backfill.as_ref().unwrap().snapshot == slice.snapshot && s.to == Some(slice.snapshot)), "{steps:#?}");
    assert!(!rest.is_empty() && rest[0].from == Some(slice.snapshot + 1) && rest.iter().all(|s| s.version.is_some()), "then the change feed after the snapshot: {steps:#?}");
    // Each of those reads one version: every ingestion commit adds more than the one byte allowed.
    assert!(rest.iter().all(|s| s.from == s.to), "{rest:#?}");
    let truth: Value = reqwest::get(format!("{}/_sim/truth/orders", local.base)).await.unwrap().json().await.unwrap();
    let want: Vec<(String, String, String)> = sorted_triples(truth["valid"].as_array().unwrap().iter().map(|o| (o["id"].to_string(), o["status"].as_str().unwrap().to_string(), money(&o["total"]))));
    let got = sorted_triples(rows(&lake, "silver", "orders").await.iter().map(|o| (get(o, "order_id"), get(o, "status"), get(o, "total"))));
    assert_eq!(got, want, "silver orders built in slices differ from the store's orders");

    // A backfill whose files still to read are rewritten meanwhile (compaction here; an erasure
    // alike, whose old files hold the tokens it replaced) starts again from the current snapshot
    // and still ends with exactly the store's orders.
    std::fs::remove_dir_all(dir.path().join("silver/orders")).unwrap();
    let first = silver::step(&lake, silver::spec("orders").unwrap(), one_file).await.unwrap();
    let pinned = first.backfill.clone().unwrap();
    assert!(pinned.more(), "{first:?}");
    let compacted = maintain::maintain(&lake, Some(&["bronze/alkasba_store/orders".to_string()]), &MaintainOptions::default(), || true).await.unwrap();
    assert!(compacted[0].files_compacted > 0, "{compacted:?}");
    let steps = silver::transform(&lake, Some(&["orders".to_string()]), one_file, || true).await.unwrap();
    let again = steps[0].backfill.clone().unwrap();
    assert!(again.snapshot > pinned.snapshot && again.files_from == 0, "{steps:#?}");
    let got = sorted_triples(rows(&lake, "silver", "orders").await.iter().map(|o| (get(o, "order_id"), get(o, "status"), get(o, "total"))));
    assert_eq!(got, want, "silver orders built again after a compaction differ from the store's orders");
}

fn sorted_triples(v: impl Iterator<Item = (String, String, String)>) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = v.collect();
    v.sort();
    v
}
