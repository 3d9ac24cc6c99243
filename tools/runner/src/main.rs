//! `alkasba-runner`: plays AWS's event sources locally for the functions in the SAM template.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use alkasba_runner::{EventSpec, Runner, RunnerConfig, Template};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Runs the real Lambda binaries locally, driven by the SAM template's event sources")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the event sources and run until the duration, the invocation count or Ctrl-C.
    Run(RunArgs),
    /// Invoke one function once with an event from a file (or `-` for stdin).
    Invoke {
        #[command(flatten)]
        common: Common,
        /// Function logical id or binary name.
        function: String,
        /// JSON event file, `-` for stdin.
        #[arg(long, default_value = "-")]
        event: String,
    },
    /// List the functions and event sources the template defines.
    List {
        #[arg(long, default_value = "infra/template.yaml")]
        template: PathBuf,
    },
}

#[derive(Args)]
struct Common {
    /// The SAM template.
    #[arg(long, default_value = "infra/template.yaml")]
    template: PathBuf,
    /// The deployed stack.
    #[arg(long, env = "ALKASBA_STACK", default_value = "alkasba-lake")]
    stack: String,
    /// Directory with the built function binaries.
    #[arg(long, env = "ALKASBA_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// AWS endpoint (LocalStack); pass `aws` for real AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL", default_value = "http://127.0.0.1:4566")]
    endpoint: String,
    /// Directory for one log file per function.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Do not echo function output.
    #[arg(long)]
    quiet: bool,
    /// `KEY=VALUE` set in every function's environment over the template's (repeatable; for
    /// example `LAKE_ROOT=file:///...` to point a function at a local lake).
    #[arg(long = "env", value_parser = parse_env)]
    env: Vec<(String, String)>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Only these functions (logical id or binary name); repeatable. Default: all.
    #[arg(long = "function")]
    functions: Vec<String>,
    /// Instances per function.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Schedules fire this many times faster than their rate.
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    /// Fire every schedule once at start.
    #[arg(long)]
    fire_on_start: bool,
    /// First port for HTTP endpoints (0: any free port).
    #[arg(long, default_value_t = 0)]
    http_port: u16,
    /// Stop after this long (for example 30s, 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many invocations.
    #[arg(long)]
    max_invocations: Option<usize>,
}

fn bin_dir(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(d) = arg {
        return Ok(d);
    }
    // Next to this binary: the runner is built into the same target dir as the functions.
    let exe = std::env::current_exe().context("cannot locate the runner binary")?;
    Ok(exe.parent().map(PathBuf::from).unwrap_or_default())
}

fn config(common: &Common) -> anyhow::Result<RunnerConfig> {
    let mut cfg = RunnerConfig::new(&common.template, &common.stack, bin_dir(common.bin_dir.clone())?);
    cfg.endpoint = (common.endpoint != "aws").then(|| common.endpoint.clone());
    cfg.log_dir = common.log_dir.clone();
    cfg.echo_logs = !common.quiet;
    cfg.extra_env.extend(common.env.iter().cloned());
    Ok(cfg)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    alkasba_telemetry::init();
    match Cli::parse().command {
        Command::List { template } => {
            let t = Template::load(&template)?;
            for f in &t.functions {
                println!("{} (binary {}, timeout {:?}, memory {} MiB)", f.logical_id, f.binary, f.timeout, f.memory_mb);
                for e in &f.events {
                    let what = match e {
                        EventSpec::Schedule { every, scheduler, .. } => format!("schedule every {every:?}{}", if *scheduler { " (Scheduler)" } else { "" }),
                        EventSpec::Sqs { queue, batch_size, .. } => format!("SQS {queue} batch {batch_size}"),
                        EventSpec::Http { method, path, .. } => format!("HTTP {} {}", method.as_deref().unwrap_or("ANY"), path.as_deref().unwrap_or("/")),
                    };
                    println!("  {}: {what}", e.name());
                }
            }
        }
        Command::Invoke { common, function, event } => {
            let text = if event == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading the event from stdin")?
            } else {
                std::fs::read_to_string(&event).with_context(|| format!("reading event file {event}"))?
            };
            let event: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("the event is not JSON: {event}"))?;
            let mut cfg = config(&common)?;
            cfg.functions = vec![function.clone()];
            let runner = Runner::start(cfg).await?;
            let inv = runner.invoke(&function, &event).await?;
            runner.shutdown().await;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "request_id": inv.request_id, "outcome": inv.outcome.label(),
                    "duration_ms": inv.duration.as_millis() as u64, "cold_start": inv.cold_start,
                    "init_ms": inv.init_duration.map(|d| d.as_millis() as u64), "peak_rss_mb": inv.peak_rss_mb,
                    "result": match &inv.outcome { alkasba_runner::Outcome::Success(v) => v.clone(), other => serde_json::Value::String(format!("{other:?}")) },
                }))?
            );
            if !inv.outcome.is_success() {
                std::process::exit(1);
            }
        }
        Command::Run(args) => {
            let mut cfg = config(&args.common)?;
            cfg.functions = args.functions;
            cfg.concurrency = args.concurrency;
            cfg.speedup = args.speedup;
            cfg.fire_on_start = args.fire_on_start;
            cfg.http_port = args.http_port;
            let runner = Runner::start(cfg).await?;
            let mut reports = runner.subscribe();
            for (f, addr) in runner.http_endpoints() {
                eprintln!("{f}: http://{addr}/");
            }
            let started = Instant::now();
            let deadline = async {
                match args.duration {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(deadline);
            let mut summary: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
            let mut total = 0;
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    _ = tokio::signal::ctrl_c() => break,
                    r = reports.recv() => match r {
                        Ok(r) => {
                            *summary.entry((r.function.clone(), r.invocation.outcome.label())).or_default() += 1;
                            total += 1;
                            if args.max_invocations.is_some_and(|m| total >= m) { break; }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => eprintln!("(summary missed {n} reports)"),
                        Err(_) => break,
                    }
                }
            }
            runner.shutdown().await;
            println!("runner: {total} invocations in {:.1}s", started.elapsed().as_secs_f64());
            for ((function, outcome), n) in summary {
                println!("  {function:<28} {outcome:<16} {n}");
            }
        }
    }
    Ok(())
}
