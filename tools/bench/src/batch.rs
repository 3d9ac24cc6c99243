//! `alkasba-bench batch`: the batch layer on a store of `--orders` orders, on a local Delta lake
//! (the same code as on S3; local disk keeps LocalStack's per-request cost out of the figures).
//!
//! 1. Loads the store through the ingestion library (simulator over HTTP → bronze), with the
//!    exchange rates of every day of its history, then transforms bronze → silver (timed).
//! 2. Full gold build (all marts, timed) against DuckDB running the same SQL over the same silver
//!    and gold tables in the same run (`tools/duckdb/bench_marts.py`, timed per query).
//! 3. `--inc-days` new days of store activity: ingest, transform, and the incremental gold
//!    update (timed, median) against a full rebuild of the same marts (timed), which every mart
//!    must equal row for row.
//! 4. File counts and a typical gold query's time before and after `maintain`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use alkasba_batch::{gold, maintain, silver};
use alkasba_ingest::{Tuning, testkit};
use alkasba_lake::Lake;
use alkasba_sim::SimConfig;
use anyhow::{Context, Result, bail};
use chrono::{TimeZone, Utc};
use clap::Args;
use serde_json::{Value, json};

#[derive(Args)]
pub struct BatchArgs {
    /// Orders in the simulated store.
    #[arg(long, default_value_t = 1_000_000)]
    orders: u32,
    /// Days of store history.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Where the local lake is written (emptied first).
    #[arg(long, default_value = ".local/bench/batch-lake")]
    dir: PathBuf,
    /// Days of new store activity, each ingested, transformed and aggregated incrementally (the
    /// median is reported; later days also leave the files that maintenance compacts).
    #[arg(long, default_value_t = 3)]
    inc_days: u32,
    /// Keep a hard-linked snapshot of the lake after the load (`<dir>.loaded`: bronze only) and
    /// start from it when it exists for the same `--orders` and `--days`, skipping the load (its
    /// figure is the snapshot's); the transform from nothing runs every time. The simulator is
    /// deterministic, so the new days' changes are the same on every run.
    #[arg(long)]
    reuse_load: bool,
    /// Megabytes of bronze Parquet a transform step reads (MAX_STEP_MB).
    #[arg(long, default_value_t = silver::TransformOptions::default().max_step_bytes / (1024 * 1024))]
    max_step_mb: u64,
    /// Marts built at the same time (the aggregate's GOLD_CONCURRENCY).
    #[arg(long, default_value_t = gold::AggregateOptions::default().concurrency)]
    gold_concurrency: usize,
    /// The Python with DuckDB (installed by localstack/install.sh).
    #[arg(long, default_value = ".local/venv/bin/python")]
    python: PathBuf,
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn files(dir: &Path) -> usize {
    walk(dir).iter().filter(|p| p.extension().is_some_and(|e| e == "parquet") && !p.to_string_lossy().contains("_delta_log")).count()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Live files of a table (from its log), not the files on disk.
async fn live_files(lake: &Lake, layer: &str, name: &str) -> Result<usize> {
    let t = alkasba_lake::read::open_table(&gold::uri(lake, layer, name)?, lake.storage()).await?.context("table")?;
    Ok(t.get_file_uris()?.count())
}

/// Times the marts in DuckDB over the lake under `dir`.
fn duckdb_marts(python: &Path, dir: &Path) -> Result<Vec<Value>> {
    let marts: Vec<Value> = gold::MARTS
        .iter()
        .map(|m| {
            let views: serde_json::Map<String, Value> = m.inputs.iter().map(|i| (i.table.to_string(), json!(dir.join(i.layer).join(i.table).display().to_string()))).collect();
            json!({"name": m.name, "views": views, "sql": m.portable_sql()})
        })
        .collect();
    let mut child = std::process::Command::new(python)
        .arg("tools/duckdb/bench_marts.py")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {} (install it with localstack/install.sh)", python.display()))?;
    {
        use std::io::Write;
        child.stdin.take().context("stdin")?.write_all(json!({"marts": marts}).to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("DuckDB failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The "typical gold query": the month's top products by revenue, in DataFusion.
/// Every row of the table at `url`, as sorted text.
async fn table_rows(url: &url::Url, lake: &Lake) -> Result<Vec<String>> {
    let t = alkasba_lake::read::open_table(url, lake.storage()).await?.with_context(|| format!("no table at {url}"))?;
    let mut out = Vec::new();
    for b in alkasba_lake::read::scan(&t, None, &[]).await? {
        let cols = b.columns().iter().map(|c| deltalake::arrow::compute::cast(c, &deltalake::arrow::datatypes::DataType::Utf8)).collect::<std::result::Result<Vec<_>, _>>()?;
        let cols: Vec<_> = cols.iter().map(|c| c.as_any().downcast_ref::<deltalake::arrow::array::StringArray>().cloned().context("text column")).collect::<Result<_>>()?;
        let names: Vec<String> = b.schema().fields().iter().map(|f| f.name().clone()).collect();
        for i in 0..b.num_rows() {
            // Columns in name order: a rebuilt table may order them differently.
            let mut row: Vec<(String, String)> =
                names.iter().zip(&cols).map(|(n, c)| (n.clone(), if deltalake::arrow::array::Array::is_null(c, i) { "NULL".into() } else { c.value(i).to_string() })).collect();
            row.sort();
            out.push(format!("{row:?}"));
        }
    }
    out.sort();
    Ok(out)
}

async fn typical_query(lake: &Lake) -> Result<f64> {
    let ctx = alkasba_batch::tables::session();
    let t = alkasba_lake::read::open_table(&gold::uri(lake, "gold", "daily_product_sales")?, lake.storage()).await?.context("gold/daily_product_sales")?;
    alkasba_batch::tables::register(&ctx, "daily_product_sales", &t).await?;
    let started = Instant::now();
    let sql = "SELECT product_id, max(product_name) AS name, sum(units) AS units, sum(revenue_mad) AS revenue_mad
               FROM daily_product_sales WHERE date >= (SELECT max(date) FROM daily_product_sales) - INTERVAL '30' DAY
               GROUP BY product_id ORDER BY revenue_mad DESC LIMIT 20";
    let (_, rows) = alkasba_batch::tables::query(&ctx, "typical query", sql).await?;
    let n: usize = rows.iter().map(|b| b.num_rows()).sum();
    if n == 0 {
        bail!("the typical query returned nothing");
    }
    Ok(secs(started))
}

/// Marks a load snapshot and says what store it holds.
const LOADED: &str = "bench-load.json";

fn snapshot_dir(dir: &Path) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(".loaded");
    PathBuf::from(s)
}

/// Copies the tree `from` to `to` as hard links: instant and no extra disk. Safe because the
/// lake's writers never modify a file in place (Delta files are immutable; the local object
/// store writes a new file and renames it over the old name).
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type()?.is_dir() {
            link_tree(&src, &dst)?;
        } else {
            std::fs::hard_link(&src, &dst).with_context(|| format!("linking {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

pub async fn run(a: BatchArgs) -> Result<()> {
    let started_at = Utc::now();
    let _ = std::fs::remove_dir_all(&a.dir);
    std::fs::create_dir_all(&a.dir)?;
    let dir = std::path::absolute(&a.dir)?;
    let mut cfg = SimConfig::small(42, a.orders);
    cfg.shape.days = a.days;
    cfg.shape.products = 2_000;
    cfg.shape.customers = (a.orders / 5).max(10);
    cfg.invalid_rate = 0.01;
    let end = cfg.shape.end;
    eprintln!("machine: {}; store: {} orders over {} days; lake: {}", crate::machine(), a.orders, a.days, dir.display());
    let gold_opts = gold::AggregateOptions { concurrency: a.gold_concurrency };
    let snapshot = snapshot_dir(&dir);
    let wanted = json!({"orders": a.orders, "days": a.days});
    let reused = match a.reuse_load.then(|| std::fs::read(snapshot.join(LOADED)).ok()).flatten() {
        Some(meta) => {
            let meta: Value = serde_json::from_slice(&meta)?;
            if meta["store"] != wanted {
                bail!("{} holds a load of {} (wanted {wanted}): remove it", snapshot.display(), meta["store"]);
            }
            link_tree(&snapshot, &dir)?;
            std::fs::remove_file(dir.join(LOADED))?;
            eprintln!("reusing the load snapshot {} (load and transform figures are the snapshot's)", snapshot.display());
            Some(meta)
        }
        None => None,
    };
    let local = testkit::local(cfg, &dir, Tuning { pages_per_task: 50, pages_per_commit: 50, fetch_concurrency: 8, ..Tuning::default() }).await;
    let lake = local.ingest.lake.clone();

    let store = ["alkasba_store.products", "alkasba_store.customers", "alkasba_store.orders", "alkasba_store.refunds"];
    let mut memory: Vec<(&str, crate::mem::Step)> = Vec::new();
    let transform_opts = silver::TransformOptions { max_step_bytes: a.max_step_mb.max(1) * 1024 * 1024, ..silver::TransformOptions::default() };
    let load_secs = match &reused {
        Some(m) => m["load_secs"].as_f64().unwrap_or(0.0),
        None => {
            let t = Instant::now();
            local.run(&store).await;
            local.run(&["competitor_prices.prices"]).await;
            let mut day = end - chrono::Days::new(a.days as u64 + 1);
            while day <= end + chrono::Days::new(2) {
                local.run_at(&["exchange_rates.rates"], Utc.from_utc_datetime(&day.and_hms_opt(12, 0, 0).context("time")?)).await;
                day = day.succ_opt().context("date")?;
            }
            let load_secs = secs(t);
            eprintln!("loaded bronze in {load_secs:.1} s");
            if a.reuse_load {
                let _ = std::fs::remove_dir_all(&snapshot);
                link_tree(&dir, &snapshot)?;
                let meta = json!({"store": wanted, "load_secs": load_secs});
                std::fs::write(snapshot.join(LOADED), meta.to_string())?;
            }
            load_secs
        }
    };

    let (t, m) = (Instant::now(), crate::mem::start());
    let steps = silver::transform(&lake, None, transform_opts, || true).await?;
    let transform_secs = secs(t);
    memory.push(("transform, from nothing", crate::mem::end(m)));
    let merged = |table: &str| steps.iter().filter(|s| s.table == table).map(|s| s.merged).sum::<usize>();
    let (silver_orders, silver_lines) = (merged("orders"), merged("order_lines"));
    let slices = steps.iter().filter(|s| s.table == "orders" && s.backfill.is_some()).count();
    eprintln!("silver: {silver_orders} orders, {silver_lines} order lines in {transform_secs:.1} s ({slices} slices of at most {} MB for orders)", a.max_step_mb);

    let (t, m) = (Instant::now(), crate::mem::start());
    let marts = gold::aggregate(&lake, &gold_opts, None, || true).await?;
    let full_secs = secs(t);
    memory.push(("full gold build", crate::mem::end(m)));
    if marts.iter().any(|m| m.mode != "full") {
        bail!("the first gold build was not full: {marts:?}");
    }
    let duck = duckdb_marts(&a.python, &dir)?;
    let duck_secs: f64 = duck.iter().filter_map(|m| m["secs"].as_f64()).sum();
    eprintln!("full gold build {full_secs:.2} s; DuckDB, same SQL: {duck_secs:.2} s");

    // More days of store activity (each a day's worth of new orders, plus status moves, price
    // and stock changes, spread over one calendar day of the store's clock), each through
    // ingestion, silver and an incremental gold update.
    let per_day = (a.orders / a.days).max(1) as usize;
    let mut inc_days: Vec<(f64, f64, usize)> = Vec::new();
    let mut inc = Vec::new();
    for day in 1..=a.inc_days.max(1) {
        reqwest::Client::new().post(format!("{}/_sim/mutate?n={}&over=86400", local.base, per_day * 2)).send().await?.error_for_status()?;
        local.run(&store).await;
        let (t, m) = (Instant::now(), crate::mem::start());
        silver::transform(&lake, None, transform_opts, || true).await?;
        let transform_secs = secs(t);
        memory.push(("incremental transform", crate::mem::end(m)));
        let (t, m) = (Instant::now(), crate::mem::start());
        inc = gold::aggregate(&lake, &gold_opts, None, || true).await?;
        let gold_secs = secs(t);
        memory.push(("incremental gold", crate::mem::end(m)));
        let dates = inc.iter().find(|m| m.mart == "daily_sales").map(|m| m.dates).unwrap_or(0);
        eprintln!("day {day}: transform {transform_secs:.2} s, incremental gold {gold_secs:.2} s ({dates} dates)");
        inc_days.push((transform_secs, gold_secs, dates));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let inc_transform_secs = median(inc_days.iter().map(|d| d.0).collect());
    let inc_secs = median(inc_days.iter().map(|d| d.1).collect());
    let dates = inc_days.last().map(|d| d.2).unwrap_or(0);
    // A full rebuild of the same marts from the same silver, beside the incremental ones, which
    // it must equal row for row.
    let kept = dir.join("gold.incremental");
    std::fs::rename(dir.join("gold"), &kept)?;
    let (t, m) = (Instant::now(), crate::mem::start());
    gold::aggregate(&lake, &gold_opts, None, || true).await?;
    let rebuild_secs = secs(t);
    memory.push(("full gold rebuild (after the new days)", crate::mem::end(m)));
    for m in gold::MARTS {
        let url = |root: &Path| url::Url::from_directory_path(root.join(m.name)).map_err(|()| anyhow::anyhow!("path {}", root.display()));
        let (a_rows, b_rows) = (table_rows(&url(&kept)?, &lake).await?, table_rows(&url(&dir.join("gold"))?, &lake).await?);
        if a_rows != b_rows {
            bail!("gold {}: the incremental result ({} rows) differs from a full rebuild ({} rows)", m.name, a_rows.len(), b_rows.len());
        }
    }
    std::fs::remove_dir_all(dir.join("gold"))?;
    std::fs::rename(&kept, dir.join("gold"))?;
    eprintln!("incremental gold {inc_secs:.2} s (median of {} days) vs full rebuild {rebuild_secs:.2} s; every mart equal", inc_days.len());

    // Compaction.
    let before = files(&dir);
    let lines_before = live_files(&lake, "silver", "order_lines").await?;
    let q_before = typical_query(&lake).await?;
    let (t, m) = (Instant::now(), crate::mem::start());
    let reports = maintain::maintain(&lake, None, &maintain::MaintainOptions::default(), || true).await?;
    let maintain_secs = secs(t);
    memory.push(("maintain", crate::mem::end(m)));
    let lines_after = live_files(&lake, "silver", "order_lines").await?;
    let lines_parts = reports.iter().find(|r| r.table == "silver/order_lines").map(|r| r.partitions).unwrap_or(0);
    let live_before: usize = reports.iter().map(|r| r.files_before).sum();
    let live_after: usize = reports.iter().map(|r| r.files_after).sum();
    let worst = reports.iter().max_by_key(|r| r.worst_partition_files).context("no table maintained")?;
    let excess: usize = reports.iter().map(|r| r.excess_files).sum();
    let q_after = typical_query(&lake).await?;

    println!("store           {} orders over {} days: {silver_orders} silver orders, {silver_lines} order lines", a.orders, a.days);
    println!("load            bronze in {load_secs:.1} s; transform bronze → silver in {transform_secs:.1} s");
    println!(
        "full gold       {full_secs:.2} s ({} marts, written as Delta, {} at once) vs DuckDB {duck_secs:.2} s (same SQL, same tables, materialised in memory) = {:.2}x",
        marts.len(),
        a.gold_concurrency,
        full_secs / duck_secs
    );
    println!("                  {:<24} {:>8}   {:>8} {:>8}   {:>11} {:>8}", "mart", "rows", "ours s", "DuckDB s", "incremental", "mode");
    for (m, d) in marts.iter().zip(&duck) {
        let i = inc.iter().find(|s| s.mart == m.mart);
        println!(
            "                  {:<24} {:>8}   {:>8.3} {:>8.3}   {:>9.3} s {:>8}",
            m.mart,
            m.rows,
            m.millis as f64 / 1000.0,
            d["secs"].as_f64().unwrap_or(0.0),
            i.map(|s| s.millis as f64 / 1000.0).unwrap_or(0.0),
            i.map(|s| s.mode.as_str()).unwrap_or("-")
        );
    }
    println!(
        "incremental     {} new days ({} mutations each), medians: transform {inc_transform_secs:.2} s; gold {inc_secs:.2} s ({dates} dates recomputed on the last) vs full rebuild {rebuild_secs:.2} s = {:.0}% (each day: {}); every mart equal to the rebuild",
        inc_days.len(),
        per_day * 2,
        100.0 * inc_secs / rebuild_secs,
        inc_days.iter().map(|d| format!("{:.2} s", d.1)).collect::<Vec<_>>().join(", ")
    );
    println!(
        "maintain        {maintain_secs:.1} s: live files {live_before} → {live_after}; fullest partition {} files ({}: {} partition(s), {:.0} MiB, target {} MiB a file); files beyond what partitions need at the target size: {excess}; silver order_lines {lines_before} → {lines_after} files in {lines_parts} partitions; parquet files on disk before {before} (vacuum keeps 7 days)",
        worst.worst_partition_files,
        worst.table,
        worst.partitions,
        worst.bytes_after as f64 / 1048576.0,
        maintain::MaintainOptions::default().target_size / 1048576
    );
    println!("typical query   top 20 products, last 30 days, gold: {:.1} ms before, {:.1} ms after compaction", q_before * 1000.0, q_after * 1000.0);
    // One line per kind of step: the largest of its runs (the incremental days run several).
    let mut worst_memory: Vec<(&str, crate::mem::Step)> = Vec::new();
    for (name, step) in memory {
        match worst_memory.iter_mut().find(|(n, _)| *n == name) {
            Some((_, w)) if step.own() > w.own() => *w = step,
            Some(_) => {}
            None => worst_memory.push((name, step)),
        }
    }
    for (name, step) in &worst_memory {
        println!("memory          {name}: {step}");
    }
    println!();
    println!(
        "| {} | {} | {transform_secs:.1} s | {full_secs:.2} s | {duck_secs:.2} s | {:.2}x | {inc_secs:.2} s vs {rebuild_secs:.2} s ({:.0}%) | {live_before} → {live_after} (fullest partition {}, {excess} beyond target size) | {:.1} → {:.1} ms |",
        started_at.format("%Y-%m-%d"),
        a.orders,
        full_secs / duck_secs,
        100.0 * inc_secs / rebuild_secs,
        worst.worst_partition_files,
        q_before * 1000.0,
        q_after * 1000.0
    );
    Ok(())
}
