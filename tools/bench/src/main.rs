//! `alkasba-bench`: benchmark commands. They print their figures (and a Markdown row for
//! `docs/benchmarks.md`); they assert nothing about time.
//!
//! ```text
//! alkasba-bench ingest --stack alkasba-bench [--orders 100000] [--fetchers 4]
//! alkasba-bench batch [--orders 1000000]
//! alkasba-bench realtime --stack alkasba-bench [--rate 1000] [--secs 60]
//! alkasba-bench rate-limit [--store-rps 40] [--fetchers 4] [--secs 90]
//! alkasba-bench floor [--orders 100000]
//! ```
//!
//! `ingest` measures, on this machine with the simulator and LocalStack beside it:
//! * end to end: the planner and fetcher binaries under the runner (SQS, S3, KMS on
//!   LocalStack), from the planner's invocation to the run's completion in the ledger;
//! * where the fetchers' time went (fetch, process, keyring, quarantine, bronze; their "task
//!   done" logs) and the CPU seconds of each process on the shared cores (functions, this
//!   process with the simulator, LocalStack);
//! * the floors ([`floor`]): the same pages, already in memory, through our record path, and
//!   through a bare arrow-json → Parquet pass, on every core;
//! * KMS requests per 1,000 records (the fetchers' own count, from their "task done" logs);
//! * each fetcher's peak RSS (`VmHWM`) per task of `pages_per_task` × 100 records;
//! * fetcher cold start: process start until it asks the runtime API for its first event, for
//!   fresh processes started one at a time after the run (isolated, as Lambda gives each
//!   sandbox its own CPU share), and as seen during the run.

mod batch;
mod cpu;
mod floor;
mod mem;
mod rate;
mod realtime;
mod requests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alkasba_ingest::control::{Control, LearnedPace};
use alkasba_lake::Lake;
use alkasba_lake::StorageConfig;
use alkasba_lake::arrow::array::{Array, Int64Array, TimestampMicrosecondArray};
use alkasba_pii::Tokenizer;
use alkasba_records::record::Prepared;
use alkasba_runner::{Outcome, Runner, RunnerConfig};
use alkasba_sim::{SimConfig, serve};
use alkasba_sources::{SourceFile, first_url, with_param};
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use deltalake::datafusion::prelude::{col, lit};
use serde_json::{Value, json};

/// The store's source, as `config/sources/alkasba_store.toml` names it.
const STORE: &str = "alkasba_store";

#[derive(Parser)]
#[command(name = "alkasba-bench", about = "Benchmarks; record their output in docs/benchmarks.md")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingestion end to end (simulator → planner → SQS → fetchers → bronze on LocalStack) and
    /// its in-memory floor.
    Ingest(IngestArgs),
    /// The batch layer: transform, full gold build against DuckDB, incremental update against a
    /// full rebuild, and maintenance (file counts, a typical query before and after).
    Batch(batch::BatchArgs),
    /// The real-time path: signed webhooks at a sustained rate through webhook → SQS →
    /// realtime; accepted rate, events lost, alert latency, peak RSS.
    Realtime(realtime::RealtimeArgs),
    /// Several fetchers against a store rate limit they are not told: share of the allowed rate
    /// reached and share of requests answered 429, adaptive pace against a fixed one.
    RateLimit(rate::RateArgs),
    /// The CPU floors alone, on pages in memory (no LocalStack): our record path and a bare
    /// arrow-json → Parquet pass over the same pages.
    Floor(floor::FloorArgs),
}

#[derive(Args)]
struct IngestArgs {
    /// A stack deployed with localstack/provision.sh.
    #[arg(long, env = "ALKASBA_STACK", default_value = "alkasba-bench")]
    stack: String,
    /// Orders in the simulated store (the stream measured).
    #[arg(long, default_value_t = 100_000)]
    orders: u32,
    /// Fetcher instances (the template's MaximumConcurrency caps it).
    #[arg(long, default_value_t = 4)]
    fetchers: usize,
    /// Isolated cold starts measured after the run: one fresh fetcher process at a time, each
    /// given an empty batch (as Lambda starts one sandbox per instance).
    #[arg(long, default_value_t = 10)]
    cold_starts: usize,
    /// Pages (of 100 orders) per fetch task: 100 makes each invocation a 10,000-record batch.
    #[arg(long, default_value_t = 100)]
    pages_per_task: u64,
    /// Pages per bronze commit (the fetcher's PAGES_PER_COMMIT default).
    #[arg(long, default_value_t = 100)]
    pages_per_commit: u64,
    /// Pages one fetcher requests at once.
    #[arg(long, default_value_t = 4)]
    fetch_concurrency: usize,
    /// Times each in-memory floor (ours, the bare libraries) runs after the end-to-end run,
    /// alternated; the best of each is the figure (the host's speed drifts between runs).
    #[arg(long, default_value_t = 3)]
    floor_repeat: usize,
    /// Pages of the next group fetched while a group commits (the fetcher's FETCH_AHEAD_PAGES).
    #[arg(long, default_value_t = 10)]
    fetch_ahead_pages: u64,
    /// The store's request rate limit for this run (the shipped source file allows 50/s, a
    /// polite production setting that would cap ingestion at 5,000 records/s per fetcher).
    #[arg(long, default_value_t = 2_000)]
    store_rps: u32,
    /// Milliseconds the store takes to answer every request (0: as fast as the simulator
    /// renders). A real WooCommerce spends most of a page's time in PHP and MySQL; with this the
    /// source, not the CPU, binds, for our run, the bare client and dlt alike.
    #[arg(long, default_value_t = 0)]
    store_latency_ms: u64,
    /// Open the run's fetchers at this pace (requests/s each) instead of in slow start, as a run
    /// after an earlier one does: the bench records it as the store's learned pace, which the
    /// planner hands to the tasks (a later run's fetchers open at what the last one reached).
    /// Each run prints the pace its fetchers learned. 0: a first load, in slow start.
    #[arg(long, default_value_t = 0.0)]
    learned_pace: f64,
    /// The SAM template the stack was deployed from.
    #[arg(long, default_value = "infra/template.yaml")]
    template: PathBuf,
    /// LocalStack.
    #[arg(long, env = "AWS_ENDPOINT_URL", default_value = "http://127.0.0.1:4566")]
    endpoint: String,
    /// Logs of the functions, and the benchmark's source files.
    #[arg(long, default_value = ".local/bench")]
    work_dir: PathBuf,
    /// LocalStack's log (localstack/start.sh), where the requests of the run are counted.
    #[arg(long, default_value = ".local/localstack.log")]
    localstack_log: PathBuf,
    /// The Python of the dlt anchor's virtualenv (tools/dlt/requirements.lock; scripts/bench-ingest.sh
    /// installs it): dlt reads the same store into a Delta table on the same bucket after our run.
    /// Empty: no dlt anchor.
    #[arg(long, default_value = ".local/dlt/bin/python")]
    dlt_python: String,
    /// The function binaries the runner starts: a cargo build's directory, or unpacked
    /// deployment packages (`<function>/bootstrap`, as `scripts/package.sh` builds them, with
    /// thin LTO, and Lambda runs them). Default: the directory of this benchmark's binary.
    #[arg(long, env = "ALKASBA_BIN_DIR")]
    functions_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    alkasba_telemetry::init();
    match Cli::parse().command {
        Command::Ingest(a) => ingest(a).await,
        Command::Batch(a) => batch::run(a).await,
        Command::Realtime(a) => realtime::run(a).await,
        Command::RateLimit(a) => rate::run(a).await,
        Command::Floor(a) => floor::run(a).await,
    }
}

pub(crate) async fn stack_outputs(sdk: &aws_config::SdkConfig, stack: &str) -> Result<HashMap<String, String>> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let out = cfn.describe_stacks().stack_name(stack).send().await.with_context(|| format!("stack {stack} (deploy it: localstack/provision.sh {stack})"))?;
    let s = out.stacks().first().with_context(|| format!("stack {stack} not found"))?;
    Ok(s.outputs().iter().filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string()))).collect())
}

pub(crate) async fn secret_json(sdk: &aws_config::SdkConfig, name: &str) -> Result<Value> {
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let v = sm.get_secret_value().secret_id(name).send().await.with_context(|| format!("secret {name}"))?;
    serde_json::from_str(v.secret_string().unwrap_or_default()).with_context(|| format!("secret {name} is not JSON"))
}

pub(crate) fn field(v: &Value, k: &str) -> Result<String> {
    v[k].as_str().map(str::to_string).with_context(|| format!("secret field {k} missing"))
}

/// The shipped source files with the store's rate limit set to `rps`, written to `dir`.
fn bench_sources(dir: &Path, rps: u32) -> Result<Vec<SourceFile>> {
    std::fs::create_dir_all(dir)?;
    let shipped = Path::new("config/sources");
    for entry in std::fs::read_dir(shipped).with_context(|| format!("{} (run from the repository root)", shipped.display()))? {
        let path = entry?.path();
        let mut text = std::fs::read_to_string(&path)?;
        if path.file_name().is_some_and(|n| n == "alkasba_store.toml") {
            text = text.lines().map(|l| if l.starts_with("rate_limit =") { format!("rate_limit = {{ requests_per_second = {rps} }}") } else { l.to_string() }).collect::<Vec<_>>().join("\n");
        }
        std::fs::write(dir.join(path.file_name().context("file name")?), text)?;
    }
    let files = alkasba_sources::load_dir(dir)?;
    let store = files.iter().find(|f| f.source.name == STORE).context("no alkasba_store source")?;
    if store.source.rate_limit.as_ref().map(|r| r.requests_per_second) != Some(rps) {
        bail!("could not set the store's rate limit in {}", dir.display());
    }
    Ok(files)
}

pub(crate) fn machine() -> String {
    let cpu =
        std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| c.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string())).unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<u64>().ok())).unwrap_or(0) / 1024 / 1024;
    format!("{cores} cores ({cpu}), {mem} GiB")
}

/// The run's ledger row: completed_at (µs since the epoch), fetched, valid, quarantined.
async fn ledger_row(lake: &Lake, run_id: &str) -> Result<Option<(i64, i64, i64, i64)>> {
    let batches = lake.scan(&lake.runs()?, Some(col("run_id").eq(lit(run_id))), &["completed_at", "fetched", "valid", "quarantined"]).await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else { return Ok(None) };
    let ts = b.column(0).as_any().downcast_ref::<TimestampMicrosecondArray>().context("completed_at type")?;
    let int = |i: usize| b.column(i).as_any().downcast_ref::<Int64Array>().map(|a| a.value(0)).context("count type");
    Ok(Some((ts.value(0), int(1)?, int(2)?, int(3)?)))
}

/// Empties the stack's lake bucket and fetch queue: every run measures a first load.
pub(crate) async fn reset(sdk: &aws_config::SdkConfig, outputs: &HashMap<String, String>) -> Result<()> {
    let bucket = outputs.get("LakeBucketName").context("stack output LakeBucketName")?;
    let s3 = aws_sdk_s3::Client::new(sdk);
    let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    let mut n = 0;
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("listing s3://{bucket}"))?;
        let ids: Vec<_> = page.contents().iter().filter_map(|o| o.key()).filter_map(|k| aws_sdk_s3::types::ObjectIdentifier::builder().key(k).build().ok()).collect();
        if ids.is_empty() {
            continue;
        }
        n += ids.len();
        let delete = aws_sdk_s3::types::Delete::builder().set_objects(Some(ids)).build()?;
        s3.delete_objects().bucket(bucket).delete(delete).send().await.with_context(|| format!("emptying s3://{bucket}"))?;
    }
    let sqs = aws_sdk_sqs::Client::new(sdk);
    for q in ["FetchTasksQueueUrl", "FetchTasksDlqUrl"] {
        let url = outputs.get(q).with_context(|| format!("stack output {q}"))?;
        sqs.purge_queue().queue_url(url).send().await.with_context(|| format!("purging {url}"))?;
    }
    eprintln!("reset: deleted {n} objects from s3://{bucket}, purged the fetch queues");
    Ok(())
}

async fn ingest(a: IngestArgs) -> Result<()> {
    let sdk = alkasba_runner::aws_config(Some(&a.endpoint)).await?;
    let outputs = stack_outputs(&sdk, &a.stack).await?;
    reset(&sdk, &outputs).await?;
    let store_secret = secret_json(&sdk, &format!("{}/store/credentials", a.stack)).await?;
    let token_key = field(&secret_json(&sdk, &format!("{}/pii/token-key", a.stack)).await?, "key")?;
    let mut sim = SimConfig::small(42, a.orders);
    sim.shape.customers = (a.orders / 5).max(10);
    sim.invalid_rate = 0.01;
    if a.store_latency_ms > 0 {
        sim.faults.slow_rate = 1.0;
        sim.faults.slow_ms = a.store_latency_ms;
    }
    sim.credentials.consumer_key = field(&store_secret, "consumer_key")?;
    sim.credentials.consumer_secret = field(&store_secret, "consumer_secret")?;
    let (user, pass) = (sim.credentials.consumer_key.clone(), sim.credentials.consumer_secret.clone());
    let (addr, _state, _server) = serve(sim, "127.0.0.1:0".parse()?).await?;
    let base = format!("http://{addr}");
    let sources_dir = std::path::absolute(a.work_dir.join("sources"))?;
    let files = bench_sources(&sources_dir, a.store_rps)?;
    let log_dir = a.work_dir.join("logs");
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir)?;
    let lake_root = outputs.get("LakeRoot").context("stack output LakeRoot")?;
    let lake = Lake::new(lake_root, StorageConfig { endpoint_url: Some(a.endpoint.clone()), region: "us-east-1".into() })?;
    eprintln!("machine: {}; store: {} orders at {base}; lake: {lake_root}", machine(), a.orders);

    // ------------------------------------------------------------------ end to end
    let bin_dir = match &a.functions_dir {
        Some(dir) => std::path::absolute(dir)?,
        None => std::env::current_exe()?.parent().map(Path::to_path_buf).context("bin dir")?,
    };
    let packaged = bin_dir.join("fetcher").join("bootstrap").is_file();
    eprintln!("functions: {} ({})", bin_dir.display(), if packaged { "deployment packages" } else { "cargo build" });
    let mut cfg = RunnerConfig::new(&a.template, &a.stack, &bin_dir);
    cfg.endpoint = Some(a.endpoint.clone());
    cfg.functions = vec!["planner".into(), "fetcher".into()];
    cfg.concurrency = a.fetchers;
    cfg.log_dir = Some(log_dir.clone());
    for (k, v) in [
        ("SOURCE_BASE_URLS", format!("alkasba_store={base},competitor_prices={base},exchange_rates={base}")),
        ("SOURCES_DIR", sources_dir.display().to_string()),
        ("PAGES_PER_TASK", a.pages_per_task.to_string()),
        ("PAGES_PER_COMMIT", a.pages_per_commit.to_string()),
        ("FETCH_CONCURRENCY", a.fetch_concurrency.to_string()),
        ("FETCH_AHEAD_PAGES", a.fetch_ahead_pages.to_string()),
    ] {
        cfg.extra_env.insert(k.into(), v);
    }
    let control = Control::for_lake(&lake)?;
    let opened_at = if a.learned_pace != 0.0 {
        if !(a.learned_pace.is_finite() && a.learned_pace > 0.0) {
            bail!("--learned-pace {}: requests per second, a positive number (0: a first load)", a.learned_pace);
        }
        control.put_pace(STORE, &LearnedPace { rate: a.learned_pace, at: chrono::Utc::now().to_rfc3339() }).await?;
        format!("opened at the learned pace of {} requests/s per fetcher (--learned-pace)", a.learned_pace)
    } else {
        "a first load: the fetchers start slow (2 requests/s, doubling)".to_string()
    };
    let cpu_before = cpu::Snapshot::now();
    let requests_before = requests::Mark::now(&a.localstack_log);
    let runner = Runner::start(cfg).await?;
    let mut reports = runner.subscribe();
    let started_at = chrono::Utc::now();
    let inv = runner.invoke("PlannerFunction", &json!({"streams": ["alkasba_store.orders"]})).await?;
    let Outcome::Success(planned) = &inv.outcome else { bail!("the planner failed: {:?}", inv.outcome) };
    let run_id = planned["planned"][0]["run_id"].as_str().with_context(|| format!("no run planned: {planned}"))?.to_string();
    let pages = planned["planned"][0]["pages"].as_u64().unwrap_or(0);
    eprintln!("run {run_id}: {pages} pages planned ({} tasks)", planned["planned"][0]["tasks"]);
    let stream = [(STORE.to_string(), "orders".to_string())];
    let poll = Instant::now();
    let (completed_at, fetched, valid, quarantined) = loop {
        // The ledger row is the completion signal (its completed_at is the end time; polling
        // only notices it).
        if let Some(row) = ledger_row(&lake, &run_id).await? {
            break row;
        }
        let st = alkasba_ingest::runs::status(&lake, &control, &stream).await?;
        if st[0].dead_pages > 0 {
            bail!("{} pages went to the dead-letter queue", st[0].dead_pages);
        }
        if poll.elapsed() > Duration::from_secs(1800) {
            bail!("the run did not complete within 30 minutes");
        }
        eprint!("\r  {}/{pages} pages, {} records ", st[0].pages_committed, st[0].fetched);
        // Every 2 s, not every 0.5: each look reads the ledger, the plan and bronze's new
        // commits from LocalStack (~7 requests), so a watcher polling twice a second made ~14%
        // of the run's requests (counted through a proxy at 300,000 orders) and its CPU was
        // charged to the run. The end time comes from the ledger row, not from the polling.
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    eprintln!();
    let e2e_secs = (completed_at - started_at.timestamp_micros()) as f64 / 1e6;
    let e2e_rate = fetched as f64 / e2e_secs;
    // The function processes are this process's children (live, or reaped and counted in it).
    let cpu::Split { functions: functions_cpu, own: bench_cpu, localstack: ls_cpu } = cpu_before.split();
    let requests = requests_before.map(|m| m.since());
    runner.shutdown().await;
    let learned = control.pace(STORE).await?.map(|p| p.rate);

    let (mut rss, mut inits, mut tasks) = (Vec::new(), Vec::new(), 0);
    while let Ok(r) = reports.try_recv() {
        if r.function == "FetcherFunction" && r.invocation.outcome.is_success() {
            tasks += 1;
            rss.push(r.invocation.peak_rss_mb);
            inits.extend(r.invocation.init_duration);
        }
    }
    let mut kms = 0u64;
    let mut task_records = Vec::new();
    const PHASES: [&str; 5] = ["fetch_ms", "process_ms", "keyring_ms", "quarantine_ms", "bronze_ms"];
    let mut phases = [0u64; 5];
    let mut fetch_ahead_ms = 0u64;
    let log = std::fs::read_to_string(log_dir.join("FetcherFunction.log")).unwrap_or_default();
    for line in log.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
        if line["message"] == "task done" && line["run_id"] == run_id.as_str() {
            kms += line["kms_requests"].as_u64().unwrap_or(0);
            task_records.push(line["fetched"].as_u64().unwrap_or(0));
            fetch_ahead_ms += line["fetch_ahead_ms"].as_u64().unwrap_or(0);
            for (sum, name) in phases.iter_mut().zip(PHASES) {
                *sum += line[name].as_u64().unwrap_or(0);
            }
        }
    }
    let phase_total = phases.iter().sum::<u64>().max(1) as f64;
    let phase_line =
        PHASES.iter().zip(phases).map(|(n, ms)| format!("{} {:.1} s ({:.0}%)", n.trim_end_matches("_ms"), ms as f64 / 1e3, 100.0 * ms as f64 / phase_total)).collect::<Vec<_>>().join(", ");
    inits.sort();
    let init_ms = |d: Option<&Duration>| d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN);
    let kms_per_1000 = kms as f64 * 1000.0 / fetched.max(1) as f64;
    let max_rss = rss.iter().copied().max().unwrap_or(0);
    let max_task = task_records.iter().copied().max().unwrap_or(0);

    // ------------------------------------------------------------------ isolated cold starts
    let mut isolated = Vec::new();
    for _ in 0..a.cold_starts {
        let mut cfg = RunnerConfig::new(&a.template, &a.stack, &bin_dir);
        cfg.endpoint = Some(a.endpoint.clone());
        cfg.functions = vec!["fetcher".into()];
        cfg.concurrency = 1;
        cfg.extra_env.insert("SOURCE_BASE_URLS".into(), format!("alkasba_store={base},competitor_prices={base},exchange_rates={base}"));
        cfg.extra_env.insert("SOURCES_DIR".into(), sources_dir.display().to_string());
        let runner = Runner::start(cfg).await?;
        let inv = runner.invoke("FetcherFunction", &json!({"Records": []})).await?;
        runner.shutdown().await;
        if !inv.outcome.is_success() {
            bail!("an empty batch failed on a cold fetcher: {:?}", inv.outcome);
        }
        isolated.extend(inv.init_duration);
    }
    isolated.sort();

    // ------------------------------------------------------------------ in-memory floors
    let store = files.iter().find(|f| f.source.name == STORE).context("store source")?;
    let orders = store.streams.iter().find(|s| s.name == "orders").context("orders stream")?;
    let mut source = store.source.clone();
    source.base_url = url::Url::parse(&base)?;
    let first = first_url(&source, orders, None, started_at.date_naive());
    let http = reqwest::Client::new();
    eprintln!("floors: fetching the {pages} pages again into memory (not timed)");
    let raw = floor::fetch_pages(&first, pages, &user, &pass).await?;
    let prep = Prepared::new(STORE, orders);
    let tokens = Tokenizer::new(&token_key)?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    eprintln!("floors: ours and the bare libraries, alternated, {} times each", a.floor_repeat);
    let floor_runs = floor::alternated(&prep, &tokens, &raw, a.pages_per_commit, a.floor_repeat, true).await?;
    let (ours_floor, bare_floor) = (floor_runs.ours()?, floor_runs.bare()?);
    drop(raw);
    let (floor_records, floor_secs, floor_rate, parquet_bytes) = (ours_floor.records, ours_floor.seconds, ours_floor.rate(), ours_floor.parquet_bytes);
    let bare_rate = bare_floor.rate();

    // ------------------------------------------------------------------ anchors, same run
    // The source's own ceiling: a bare sequential client reading the same pages.
    let t = Instant::now();
    let mut ceiling_records = 0usize;
    for p in 1..=pages {
        let url = with_param(&first, "page", &p.to_string());
        let body = http.get(url).basic_auth(&user, Some(&pass)).send().await?.error_for_status()?.bytes().await?;
        ceiling_records += serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body).map(|v| v.len()).unwrap_or(0);
    }
    let ceiling_secs = t.elapsed().as_secs_f64();
    let ceiling_rate = ceiling_records as f64 / ceiling_secs;
    // Our bytes in S3 per order: bronze's data files.
    let bucket = outputs.get("LakeBucketName").context("stack output LakeBucketName")?;
    let bronze_bytes = prefix_bytes(&sdk, bucket, "bronze/alkasba_store/orders/", ".parquet").await?;
    // dlt, side by side: the same store, the same bucket, after our run.
    let dlt: Option<Value> = if a.dlt_python.is_empty() {
        None
    } else {
        eprintln!("anchor: dlt reading the same {pages} pages into s3://{bucket}/bench-dlt/{run_id}");
        let out = std::process::Command::new(&a.dlt_python)
            .arg("tools/dlt/bench_dlt.py")
            .args(["--base-url", &base, "--key", &user, "--secret", &pass, "--endpoint", &a.endpoint])
            .arg("--bucket-url")
            .arg(format!("s3://{bucket}/bench-dlt/{run_id}"))
            .output()
            .with_context(|| format!("running the dlt anchor with {} (scripts/bench-ingest.sh installs it)", a.dlt_python))?;
        if !out.status.success() {
            bail!("the dlt anchor failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Some(serde_json::from_slice(&out.stdout).with_context(|| format!("the dlt anchor's answer: {}", String::from_utf8_lossy(&out.stdout)))?)
    };

    println!("end to end      {fetched} records ({valid} valid, {quarantined} quarantined) in {e2e_secs:.2} s = {e2e_rate:.0} records/s");
    println!("source ceiling  a bare sequential client: {ceiling_records} records in {ceiling_secs:.2} s = {ceiling_rate:.0} records/s; end to end is {:.0}% of it", 100.0 * e2e_rate / ceiling_rate);
    println!("bronze bytes    {bronze_bytes} bytes of Parquet = {:.0} bytes per order", bronze_bytes as f64 / fetched.max(1) as f64);
    if let Some(d) = &dlt {
        let (rate, per_row) = (d["rows_per_second"].as_f64().unwrap_or(f64::NAN), d["bytes_per_row"].as_f64().unwrap_or(f64::NAN));
        println!(
            "dlt             {} rows in {} s = {rate:.0} rows/s ({} CPU s), {per_row:.0} bytes per order in {}: we are {:.2}x its rate with {:.2}x its bytes (it seals nothing)",
            d["rows"],
            d["seconds"],
            d["cpu_seconds"],
            d["tables"],
            e2e_rate / rate,
            (bronze_bytes as f64 / fetched.max(1) as f64) / per_row
        );
    }
    println!(
        "                {} fetchers, {} pages/task, {} pages/commit ({} fetched ahead), {} pages in flight per fetcher, store limit {} req/s",
        a.fetchers, a.pages_per_task, a.pages_per_commit, a.fetch_ahead_pages, a.fetch_concurrency, a.store_rps
    );
    println!("pace            {opened_at}; the fetchers ended at {} (a later run opens at it: --learned-pace)", learned.map_or("no recorded pace".to_string(), |r| format!("{r:.1} requests/s each")));
    println!("phases          summed over the fetchers' tasks: {phase_line}; commits with the next group's requests in flight beside them: {:.1} s", fetch_ahead_ms as f64 / 1e3);
    println!(
        "CPU             during the run ({e2e_secs:.1} s on {threads} cores = {:.1} CPU s available): fetchers and planner {functions_cpu:.1} s, simulator and runner (this process) {bench_cpu:.1} s, LocalStack {ls_cpu:.1} s",
        e2e_secs * threads as f64
    );
    match &requests {
        Some(Ok(by_op)) => println!("requests        during the run (LocalStack's log): {}", requests::summary(by_op, fetched.max(0) as u64)),
        Some(Err(e)) => println!("requests        not counted: {}: {e}", a.localstack_log.display()),
        None => println!("requests        not counted: no LocalStack log at {}", a.localstack_log.display()),
    }
    println!(
        "in-memory floor {floor_records} records in {floor_secs:.2} s on {threads} threads = {floor_rate:.0} records/s ({:.1} µs CPU per record, {:.1} MB of Parquet); end to end is {:.0}% of it",
        ours_floor.cpu_seconds * 1e6 / floor_records.max(1) as f64,
        parquet_bytes as f64 / 1e6,
        100.0 * e2e_rate / floor_rate
    );
    println!(
        "bare floor      arrow-json → Parquet over the same pages: {} records in {:.2} s = {bare_rate:.0} records/s ({:.1} µs CPU per record, {:.0} bytes per record); our in-memory path is {:.0}% of it (target ≥ 40%), end to end {:.0}% (target ≥ 30%)",
        bare_floor.records,
        bare_floor.seconds,
        bare_floor.cpu_seconds * 1e6 / bare_floor.records.max(1) as f64,
        bare_floor.parquet_bytes as f64 / bare_floor.records.max(1) as f64,
        100.0 * floor_rate / bare_rate,
        100.0 * e2e_rate / bare_rate
    );
    println!("floor runs      best of {} alternated runs each: {}", floor_runs.ours.len(), floor_runs.spread());
    println!("KMS requests    {kms} for {fetched} records = {kms_per_1000:.2} per 1,000 records");
    println!("fetcher RSS     peak {max_rss} MB over {tasks} invocations (largest batch {max_task} records)");
    println!(
        "cold start      isolated, {} one at a time: median {:.1} ms, max {:.1} ms; during the run ({} fetchers starting together on the loaded machine): median {:.1} ms, max {:.1} ms (process start → first /next)",
        isolated.len(),
        init_ms(isolated.get(isolated.len() / 2)),
        init_ms(isolated.last()),
        inits.len(),
        init_ms(inits.get(inits.len() / 2)),
        init_ms(inits.last())
    );
    println!();
    println!(
        "| {} | {} | {e2e_rate:.0} | {floor_rate:.0} | {:.0}% | {kms_per_1000:.2} | {max_rss} MB ({max_task} rec) | {:.1} / {:.1} ms isolated; {:.1} / {:.1} ms under load |",
        started_at.format("%Y-%m-%d"),
        a.orders,
        100.0 * e2e_rate / floor_rate,
        init_ms(isolated.get(isolated.len() / 2)),
        init_ms(isolated.last()),
        init_ms(inits.get(inits.len() / 2)),
        init_ms(inits.last())
    );
    Ok(())
}

/// The bytes of the objects under `prefix` whose key ends with `suffix`.
async fn prefix_bytes(sdk: &aws_config::SdkConfig, bucket: &str, prefix: &str, suffix: &str) -> Result<u64> {
    let s3 = aws_sdk_s3::Client::new(sdk);
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    let mut total = 0u64;
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("listing s3://{bucket}/{prefix}"))?;
        total += page.contents().iter().filter(|o| o.key().is_some_and(|k| k.ends_with(suffix))).map(|o| o.size().unwrap_or(0).max(0) as u64).sum::<u64>();
    }
    Ok(total)
}
