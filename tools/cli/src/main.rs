//! `alkasba`: the operator's command line.
//!
//! ```text
//! alkasba ingest backfill --stack alkasba-lake [--streams alkasba_store.orders,...] [--workers 4]
//! alkasba ingest status --stack alkasba-lake [--wait 10m]
//! alkasba pii decrypt --stack alkasba-lake --table s3://.../bronze/alkasba_store/customers [--keys 1,2] [--limit 20]
//! alkasba pii open-error --stack alkasba-lake --object s3://.../errors/...sealed
//! alkasba batch transform --stack alkasba-lake [--tables orders,order_lines]
//! alkasba batch aggregate --stack alkasba-lake [--marts daily_sales]
//! alkasba batch maintain --stack alkasba-lake [--tables silver/,gold/]
//! ```
//!
//! Settings come from flags, then the environment (the same variables as the functions, see
//! `alkasba_ingest::settings::OPTIONS`), then the outputs of `--stack`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alkasba_ingest::MessageOutcome;
use alkasba_ingest::ports::{SqsQueue, TaskQueue};
use alkasba_ingest::settings::Settings;
use alkasba_ingest::task::{DeadLetter, FetchTask};
use alkasba_lake::StorageConfig;
use alkasba_pii::{KmsClient, KmsKeys, Opener, is_sealed, read_keyring};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

#[derive(Parser)]
#[command(name = "alkasba", version, about = "Alkasba Lake operations")]
struct Cli {
    /// The deployed stack whose outputs fill in unset settings.
    #[arg(long, global = true, env = "STACK_NAME")]
    stack: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingestion.
    #[command(subcommand)]
    Ingest(Ingest),
    /// Personal data (needs kms:Decrypt on the PII key).
    #[command(subcommand)]
    Pii(Pii),
    /// The batch layer, run here through the same code as the transform and aggregate functions.
    #[command(subcommand)]
    Batch(Batch),
}

#[derive(Subcommand)]
enum Batch {
    /// Bronze → silver: reads only the bronze versions committed since each silver table's
    /// marker, until every table is up to date.
    Transform {
        /// Silver tables (default: all, in dependency order).
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
    },
    /// Silver → gold: rebuilds the marts whose inputs moved (date-keyed marts: only the dates
    /// touched).
    Aggregate {
        /// Marts (default: all, in dependency order).
        #[arg(long, value_delimiter = ',')]
        marts: Vec<String>,
    },
    /// Compaction (z-order where it pays), checkpoint, vacuum and log clean-up of every table
    /// (or those whose path starts with one of `--tables`), each under its lease.
    Maintain {
        /// Table path prefixes (`silver/`, `gold/daily_sales`; default: every table).
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
    },
}

/// The lake: `LAKE_ROOT`, else the stack's `LakeRoot` output.
async fn batch_lake(sdk: &aws_config::SdkConfig, stack: Option<&str>) -> Result<alkasba_lake::Lake> {
    let root = match std::env::var("LAKE_ROOT").ok().filter(|r| !r.trim().is_empty()) {
        Some(r) => r,
        None => {
            let stack = stack.context("set --stack (or LAKE_ROOT) to name the lake")?;
            stack_outputs(sdk, stack).await?.get("LakeRoot").cloned().with_context(|| format!("stack {stack} has no LakeRoot output"))?
        }
    };
    Ok(alkasba_lake::Lake::new(&root, StorageConfig::from_env()?)?)
}

async fn batch(sdk: &aws_config::SdkConfig, stack: Option<&str>, command: Batch) -> Result<()> {
    let lake = batch_lake(sdk, stack).await?;
    let started = Instant::now();
    let only = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let settings = alkasba_batch::settings::Settings::from_lookup(|k| if k == "LAKE_ROOT" { Some(lake.root().to_string()) } else { std::env::var(k).ok() })?;
    match command {
        Batch::Transform { tables } => {
            let steps = alkasba_batch::silver::transform(&lake, only(tables).as_deref(), settings.transform, || true).await?;
            for s in &steps {
                let range = match (s.from, s.to) {
                    (Some(a), Some(b)) => format!("bronze {a}..={b}"),
                    _ => "-".into(),
                };
                println!("{:<18} {:<16} read {:>9}  merged {:>9}  version {:>5}  {}", s.table, range, s.read, s.merged, s.version.map(|v| v.to_string()).unwrap_or("-".into()), s.note);
            }
        }
        Batch::Aggregate { marts } => {
            let steps = alkasba_batch::gold::aggregate(&lake, &settings.aggregate, only(marts).as_deref(), || true).await?;
            for s in &steps {
                println!("{:<24} {:<12} dates {:>5}  rows {:>9}  version {:>5}  {}", s.mart, s.mode, s.dates, s.rows, s.version.map(|v| v.to_string()).unwrap_or("-".into()), s.note);
            }
        }
        Batch::Maintain { tables } => {
            let reports = alkasba_batch::maintain::maintain(&lake, only(tables).as_deref(), &settings.maintain, || true).await?;
            for r in &reports {
                println!(
                    "{:<36} files {:>6} -> {:<6} ({} partitions)  compacted {:>6}  vacuumed {:>6}  logs removed {:>4}  {}",
                    r.table, r.files_before, r.files_after, r.partitions, r.files_compacted, r.vacuumed, r.logs_removed, r.note
                );
            }
        }
    }
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[derive(Subcommand)]
enum Ingest {
    /// A full (or catch-up) load through the planner and fetcher code, run here with a progress
    /// bar instead of through SQS. Dead letters still go to the dead-letter queue.
    Backfill {
        /// `source.stream` names (default: every stream).
        #[arg(long, value_delimiter = ',')]
        streams: Vec<String>,
        /// Tasks run at once.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Plan as of past days, one after the other (daily feeds: `2026-08-01..2026-10-31`
        /// loads the exchange rates of every day of that range). Default: now.
        #[arg(long, value_parser = parse_dates)]
        dates: Option<Vec<chrono::NaiveDate>>,
    },
    /// Each stream's watermark and latest run: pages committed, records, dead pages, completed.
    Status {
        /// Wait (up to this long, e.g. 10m) until every stream's latest run has completed;
        /// fails at once if one of them has a page in the dead-letter queue.
        #[arg(long, value_parser = humantime::parse_duration)]
        wait: Option<Duration>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Pii {
    /// Prints rows of a table as JSON lines with their sealed values decrypted.
    Decrypt {
        /// Table URI (s3://bucket/bronze/<source>/<stream>).
        #[arg(long)]
        table: String,
        /// Only rows with these `_key` values.
        #[arg(long, value_delimiter = ',')]
        keys: Vec<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Prints a sealed error object (a dead-lettered page's raw response).
    OpenError {
        /// s3://bucket/errors/... as given in the dead letter.
        #[arg(long)]
        object: String,
    },
}

async fn stack_outputs(sdk: &aws_config::SdkConfig, stack: &str) -> Result<HashMap<String, String>> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let out = cfn.describe_stacks().stack_name(stack).send().await.with_context(|| format!("describing stack {stack}"))?;
    let s = out.stacks().first().with_context(|| format!("stack {stack} not found"))?;
    Ok(s.outputs().iter().filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string()))).collect())
}

/// Settings from the environment, then the stack's outputs.
async fn settings(sdk: &aws_config::SdkConfig, stack: Option<&str>) -> Result<Settings> {
    let outputs = match stack {
        Some(s) => stack_outputs(sdk, s).await?,
        None => HashMap::new(),
    };
    let from_stack = |k: &str| -> Option<String> {
        let key = match k {
            "LAKE_ROOT" => "LakeRoot",
            "FETCH_QUEUE_URL" => "FetchTasksQueueUrl",
            "FETCH_DLQ_URL" => "FetchTasksDlqUrl",
            "PII_KEY_ID" => "PiiKeyArn",
            "STACK_NAME" => return stack.map(str::to_string),
            _ => return None,
        };
        outputs.get(key).cloned()
    };
    Ok(Settings::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()).or_else(|| from_stack(k)))?)
}

/// Runs tasks here; dead letters go to the real dead-letter queue.
struct LocalQueue {
    tasks: Mutex<Vec<FetchTask>>,
    /// Tasks to run later (a failing page's next round), with when.
    later: Mutex<Vec<(Instant, FetchTask)>>,
    sqs: SqsQueue,
}

impl LocalQueue {
    /// The tasks ready to run: those queued, and the delayed ones whose time has come; when
    /// only delayed tasks are left, waits for the first of them. Empty when nothing is left.
    async fn ready(&self) -> Vec<FetchTask> {
        loop {
            let now = Instant::now();
            let mut ready: Vec<FetchTask> = self.tasks.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
            let next = match self.later.lock() {
                Ok(mut later) => {
                    let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut *later).into_iter().partition(|(at, _)| *at <= now);
                    ready.extend(due.into_iter().map(|(_, t)| t));
                    *later = wait;
                    later.iter().map(|(at, _)| *at).min()
                }
                Err(_) => None,
            };
            match (ready.is_empty(), next) {
                (false, _) | (true, None) => return ready,
                (true, Some(at)) => tokio::time::sleep(at.saturating_duration_since(now)).await,
            }
        }
    }
}

impl TaskQueue for LocalQueue {
    async fn send_tasks(&self, tasks: &[FetchTask]) -> alkasba_ingest::Result<()> {
        if let Ok(mut t) = self.tasks.lock() {
            t.extend_from_slice(tasks);
        }
        Ok(())
    }
    async fn send_later(&self, task: &FetchTask, delay: Duration) -> alkasba_ingest::Result<()> {
        if let Ok(mut t) = self.later.lock() {
            t.push((Instant::now() + delay, task.clone()));
        }
        Ok(())
    }
    async fn send_dead(&self, letter: &DeadLetter) -> alkasba_ingest::Result<()> {
        self.sqs.send_dead(letter).await
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD` (inclusive).
fn parse_dates(s: &str) -> std::result::Result<Vec<chrono::NaiveDate>, String> {
    let day = |d: &str| chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|e| format!("{d:?} is not a YYYY-MM-DD date: {e}"));
    let (from, to) = match s.split_once("..") {
        Some((a, b)) => (day(a)?, day(b)?),
        None => (day(s)?, day(s)?),
    };
    if to < from {
        return Err(format!("{s}: the range ends before it starts"));
    }
    Ok(from.iter_days().take_while(|d| *d <= to).collect())
}

async fn backfill(sdk: &aws_config::SdkConfig, stack: Option<&str>, streams: Vec<String>, workers: usize, dates: Option<Vec<chrono::NaiveDate>>) -> Result<()> {
    let s = settings(sdk, stack).await?;
    let queue = LocalQueue { tasks: Mutex::new(Vec::new()), later: Mutex::new(Vec::new()), sqs: s.sqs(sdk) };
    let ingest = Arc::new(s.build_with(sdk, queue).await?);
    let only = (!streams.is_empty()).then_some(streams);
    let moments: Vec<chrono::DateTime<chrono::Utc>> = match dates {
        None => vec![chrono::Utc::now()],
        Some(days) => days.iter().map(|d| alkasba_ingest::planner::noon_of(&d.to_string())).collect::<std::result::Result<_, _>>()?,
    };
    for now in moments {
        eprintln!("planning as of {now}");
        backfill_at(&ingest, only.as_deref(), workers, now).await?;
    }
    Ok(())
}

async fn backfill_at(ingest: &Arc<alkasba_ingest::Ingest<LocalQueue, KmsKeys>>, only: Option<&[String]>, workers: usize, now: chrono::DateTime<chrono::Utc>) -> Result<()> {
    let planned = ingest.plan(only, now).await?;
    let mut total_pages = 0;
    for p in &planned {
        match p {
            Ok(p) => {
                eprintln!("{}: {} ({} tasks, {} pages)", p.stream, p.note, p.tasks, p.pages);
                total_pages += p.pages;
            }
            Err((stream, e)) => eprintln!("{stream}: planning failed: {e}"),
        }
    }
    let bar = ProgressBar::new(total_pages.max(1));
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} pages {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let started = Instant::now();
    let mut records = 0u64;
    let mut failed = 0;
    loop {
        let batch = ingest.queue.ready().await;
        if batch.is_empty() {
            break;
        }
        let mut results = futures::stream::iter(batch.into_iter().map(|t| {
            let ingest = ingest.clone();
            async move {
                let body = serde_json::to_string(&t).unwrap_or_default();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
                let report = ingest.run_task(&t, deadline).await;
                (t, body, report)
            }
        }))
        .buffer_unordered(workers.max(1));
        use futures::StreamExt;
        while let Some((task, body, report)) = results.next().await {
            match report {
                Ok(r) => {
                    records += r.fetched;
                    bar.inc(r.pages_committed);
                    bar.set_message(format!("{records} records, {:.0}/s", records as f64 / started.elapsed().as_secs_f64().max(0.001)));
                }
                Err(e) => {
                    bar.println(format!("task {} of run {} failed: {e}", task.task, task.run_id));
                    // The same handling as the function: retryable goes back in the queue,
                    // permanent to the dead-letter queue.
                    if ingest.handle_message(&body, tokio::time::Instant::now() + Duration::from_secs(3600)).await == MessageOutcome::Retry {
                        failed += 1;
                    }
                }
            }
        }
    }
    bar.finish();
    eprintln!("{records} records in {:.1}s ({:.0} records/s)", started.elapsed().as_secs_f64(), records as f64 / started.elapsed().as_secs_f64().max(0.001));
    if failed > 0 {
        bail!("{failed} tasks failed twice; rerun the backfill to resume (committed pages are skipped)");
    }
    Ok(())
}

async fn status(sdk: &aws_config::SdkConfig, stack: Option<&str>, wait: Option<Duration>, json: bool) -> Result<()> {
    let s = settings(sdk, stack).await?;
    let lake = alkasba_lake::Lake::new(&s.lake_root, StorageConfig::from_env()?)?;
    let control = alkasba_ingest::control::Control::for_lake(&lake)?;
    let streams: Vec<(String, String)> =
        alkasba_ingest::catalog::source_files(s.sources_dir.as_deref())?.into_iter().flat_map(|f| f.streams.into_iter().map(move |st| (f.source.name.clone(), st.name))).collect();
    let started = Instant::now();
    let spinner = ProgressBar::new_spinner();
    let rows = loop {
        let rows = alkasba_ingest::runs::status(&lake, &control, &streams).await?;
        let Some(limit) = wait else { break rows };
        if let Some(dead) = rows.iter().find(|r| r.dead_pages > 0) {
            spinner.finish_and_clear();
            print_status(&rows, json);
            bail!("{}: run {} has {} page(s) in the dead-letter queue; it cannot complete (see the queue and errors/)", dead.stream, dead.latest_run.as_deref().unwrap_or("?"), dead.dead_pages);
        }
        let open: Vec<&str> = rows.iter().filter(|r| r.latest_run.is_some() && !r.completed).map(|r| r.stream.as_str()).collect();
        if open.is_empty() {
            break rows;
        }
        if started.elapsed() > limit {
            spinner.finish_and_clear();
            print_status(&rows, json);
            bail!("still running after {}: {}", humantime::format_duration(limit), open.join(", "));
        }
        let fetched: u64 = rows.iter().filter(|r| !r.completed).map(|r| r.fetched).sum();
        spinner.set_message(format!("waiting for {} run(s): {fetched} records so far", open.len()));
        spinner.tick();
        // Polling the ledger is the completion signal; nothing pushes it to us.
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    spinner.finish_and_clear();
    print_status(&rows, json);
    Ok(())
}

fn print_status(rows: &[alkasba_ingest::runs::StreamStatus], json: bool) {
    if json {
        for r in rows {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
        return;
    }
    println!("{:<28} {:<28} {:<10} {:>12} {:>10} {:>5}  watermark", "stream", "latest run", "state", "pages", "records", "dead");
    for r in rows {
        let state = match (&r.latest_run, r.completed) {
            (None, _) => "never run",
            (Some(_), true) => "completed",
            (Some(_), false) => "running",
        };
        let pages = match r.pages_planned {
            Some(p) => format!("{}/{p}", r.pages_committed),
            None => r.pages_committed.to_string(),
        };
        println!("{:<28} {:<28} {:<10} {:>12} {:>10} {:>5}  {}", r.stream, r.latest_run.as_deref().unwrap_or("-"), state, pages, r.fetched, r.dead_pages, r.watermark.as_deref().unwrap_or("-"));
    }
}

async fn decrypt(sdk: &aws_config::SdkConfig, stack: Option<&str>, table: &str, keys: Vec<String>, limit: usize) -> Result<()> {
    let s = settings(sdk, stack).await?;
    let storage = StorageConfig::from_env()?;
    let uri = url::Url::parse(table).with_context(|| format!("table {table:?}"))?;
    let t = alkasba_lake::read::open_table(&uri, &storage).await?.with_context(|| format!("no Delta table at {table}"))?;
    let filter = (!keys.is_empty()).then(|| deltalake::datafusion::prelude::col("_key").in_list(keys.iter().map(|k| deltalake::datafusion::prelude::lit(k.as_str())).collect(), false));
    let batches = alkasba_lake::read::scan(&t, filter, &[]).await?;
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    'outer: for b in &batches {
        let names: Vec<String> = b.schema().fields().iter().map(|f| f.name().clone()).collect();
        let cols: Vec<_> = (0..b.num_columns()).map(|i| alkasba_lake::read::strings(b.column(i))).collect::<std::result::Result<_, _>>()?;
        for r in 0..b.num_rows() {
            if rows.len() >= limit {
                break 'outer;
            }
            let mut m = Map::new();
            for (c, name) in cols.iter().zip(&names) {
                use alkasba_lake::arrow::array::Array;
                m.insert(name.clone(), if c.is_null(r) { Value::Null } else { Value::String(c.value(r).to_string()) });
            }
            rows.push(m);
        }
    }
    let key_ids: Vec<String> = rows.iter().flat_map(|m| m.values().filter_map(Value::as_str).filter(|v| is_sealed(v)).filter_map(|v| v.split(':').nth(1).map(str::to_string))).collect();
    let keyring = url::Url::parse(&format!("{}/security/keyring", s.lake_root.trim_end_matches('/')))?;
    let ring = read_keyring(&keyring, &storage, Some(&key_ids)).await?;
    let keys = Arc::new(KmsKeys::new(KmsClient::new(sdk), &s.pii_key_id));
    let mut opener = Opener::new(keys, ring);
    for mut m in rows {
        for (name, v) in m.iter_mut() {
            if let Some(sealed) = v.as_str().filter(|v| is_sealed(v)).map(str::to_string) {
                *v = match opener.open(name, &sealed).await {
                    Ok(plain) => {
                        let text = String::from_utf8_lossy(&plain).into_owned();
                        serde_json::from_str::<Value>(&text).ok().filter(|j| j.is_object() || j.is_array()).unwrap_or(Value::String(text))
                    }
                    Err(e) => Value::String(format!("<{e}>")),
                };
            }
        }
        println!("{}", Value::Object(m));
    }
    Ok(())
}

async fn open_error(sdk: &aws_config::SdkConfig, stack: Option<&str>, object: &str) -> Result<()> {
    let s = settings(sdk, stack).await?;
    let root = s.lake_root.trim_end_matches('/');
    let key = object.strip_prefix(&format!("{root}/errors/")).with_context(|| format!("{object} is not under {root}/errors/"))?;
    let lake = alkasba_lake::Lake::new(root, StorageConfig::from_env()?)?;
    let control = alkasba_ingest::control::Control::for_lake(&lake)?;
    let sealed = control.get_error(key).await?;
    let keys = KmsKeys::new(KmsClient::new(sdk), &s.pii_key_id);
    let plain = alkasba_pii::open_blob(&keys, &format!("errors/{key}"), &sealed).await?;
    use std::io::Write;
    std::io::stdout().write_all(&plain)?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    alkasba_telemetry::init();
    let cli = Cli::parse();
    let sdk = aws_config::load_from_env().await;
    let stack = cli.stack.as_deref();
    match cli.command {
        Command::Ingest(Ingest::Backfill { streams, workers, dates }) => backfill(&sdk, stack, streams, workers, dates).await,
        Command::Ingest(Ingest::Status { wait, json }) => status(&sdk, stack, wait, json).await,
        Command::Pii(Pii::Decrypt { table, keys, limit }) => decrypt(&sdk, stack, &table, keys, limit).await,
        Command::Pii(Pii::OpenError { object }) => open_error(&sdk, stack, &object).await,
        Command::Batch(b) => batch(&sdk, stack, b).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_a_day_or_an_inclusive_range() {
        assert_eq!(super::parse_dates("2026-10-01").unwrap().len(), 1);
        let r = super::parse_dates("2026-09-29..2026-10-02").unwrap();
        assert_eq!((r.len(), r[0].to_string(), r[3].to_string()), (4, "2026-09-29".into(), "2026-10-02".into()));
        assert!(super::parse_dates("2026-10-02..2026-10-01").unwrap_err().contains("ends before"));
        assert!(super::parse_dates("yesterday").unwrap_err().contains("YYYY-MM-DD"));
    }
}
