//! `alkasba-bench-forecast series` and `alkasba-bench-forecast run`: our forecasting against
//! statsforecast on the same series (`scripts/bench-forecast.sh` runs both sides). A binary of
//! its own, apart from `alkasba-bench`: it needs only the models and the simulator's data, so
//! its release build takes minutes, not the whole workspace's hour.
//!
//! `series` generates a store (default 1,000,000 orders over a year) and writes every
//! series the forecast job reads, as gold defines them (shop and category revenue and units,
//! units of the products sold in the last 91 days), to one CSV (`unique_id,ds,y`, every day from
//! the series' first to the last day). `run` reads that CSV in a fresh process and runs the
//! job's computation on all cores: the rolling-origin backtest of the candidates (8 weekly cuts,
//! 28 days each), the choice, the final forecast with intervals. It prints the wall time, the
//! process's peak RSS and per-series accuracy as JSON for the comparison script.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use alkasba_forecast::{Config, Kind, Model, Outcome, Role, Series, forecast_many};
use alkasba_sim::data::{CATEGORIES, Shape, generate};
use alkasba_sim::demand::daily_series;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

#[derive(Parser)]
#[command(name = "alkasba-bench-forecast", about = "Forecasting benchmark; record its output in docs/benchmarks.md")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes every series the forecast job reads, for a generated store, to one CSV.
    Series(SeriesArgs),
    /// Our forecasting (backtest, choice, final forecast with intervals) over that CSV: time,
    /// peak RSS, per-series accuracy.
    Run(ForecastArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Series(a) => series(a),
        Command::Run(a) => run(a),
    }
}

#[derive(Args)]
pub struct SeriesArgs {
    /// Orders in the store.
    #[arg(long, default_value_t = 1_000_000)]
    orders: u32,
    /// Products in the store.
    #[arg(long, default_value_t = 2_000)]
    products: u32,
    /// Days of history.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Series shorter than this are left out (statsforecast's cross-validation needs the whole
    /// backtest window: 28 + 7 × 7 days after two weeks of training).
    #[arg(long, default_value_t = 120)]
    min_days: usize,
    /// Where to write `series.csv`.
    #[arg(long, default_value = ".local/bench/forecast")]
    dir: PathBuf,
}

#[derive(Args)]
pub struct ForecastArgs {
    /// The CSV `forecast-series` wrote.
    #[arg(long, default_value = ".local/bench/forecast/series.csv")]
    series: PathBuf,
    /// Where to write `ours.json`.
    #[arg(long, default_value = ".local/bench/forecast")]
    dir: PathBuf,
}

/// The candidates a series gets, from its family (as the job's catalogue gives them).
fn kind(id: &str) -> Kind {
    if id.starts_with("units/product/") { Kind::Product } else { Kind::Aggregate }
}

pub fn series(a: SeriesArgs) -> Result<()> {
    let shape = Shape { seed: 42, products: a.products, customers: (a.orders / 5).max(10), orders: a.orders, end: chrono::NaiveDate::from_ymd_opt(2026, 10, 31).unwrap_or_default(), days: a.days };
    let t = Instant::now();
    let g = generate(&shape);
    let start = shape.end - chrono::Duration::days(shape.days as i64 - 1);
    let s = daily_series(shape.seed, &g, start, shape.days as usize);
    eprintln!("generated {} orders and their daily series in {:.1} s", g.orders.len(), t.elapsed().as_secs_f64());
    let mut all: Vec<(String, &[f64])> = vec![("revenue_mad/total".into(), &s.revenue_mad), ("units/total".into(), &s.units)];
    for (i, c) in CATEGORIES.iter().enumerate() {
        all.push((format!("revenue_mad/category/{c}"), &s.category_revenue_mad[i]));
    }
    for (i, c) in CATEGORIES.iter().enumerate() {
        all.push((format!("units/category/{c}"), &s.category_units[i]));
    }
    let mut products: Vec<(usize, f64)> = s.product_units.iter().enumerate().map(|(p, y)| (p, y.iter().rev().take(91).sum::<f64>())).filter(|(_, u)| *u > 0.0).collect();
    products.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    for (p, _) in products.into_iter().take(5_000) {
        all.push((format!("units/product/{}", g.products[p].id), &s.product_units[p]));
    }
    std::fs::create_dir_all(&a.dir)?;
    let path = a.dir.join("series.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?);
    writeln!(out, "unique_id,ds,y")?;
    let (mut kept, mut short) = (0, 0);
    for (id, y) in &all {
        // From the first day with a sale, as gold has it.
        let Some(first) = y.iter().position(|v| *v > 0.0) else { continue };
        if y.len() - first < a.min_days {
            short += 1;
            continue;
        }
        kept += 1;
        for (d, v) in y.iter().enumerate().skip(first) {
            writeln!(out, "\"{id}\",{},{v}", start + chrono::Duration::days(d as i64))?;
        }
    }
    out.flush()?;
    eprintln!("{kept} series written to {} ({short} shorter than {} days left out)", path.display(), a.min_days);
    Ok(())
}

/// The process's peak resident set (`VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn run(a: ForecastArgs) -> Result<()> {
    let file = std::fs::File::open(&a.series).with_context(|| format!("{} (run `alkasba-bench-forecast series` first)", a.series.display()))?;
    let mut ids: Vec<String> = Vec::new();
    let mut starts: Vec<chrono::NaiveDate> = Vec::new();
    let mut values: Vec<Vec<f64>> = Vec::new();
    for line in std::io::BufReader::new(file).lines().skip(1) {
        let line = line?;
        let (head, y) = line.rsplit_once(',').context("a line is not id,ds,y")?;
        let (id, ds) = head.rsplit_once(',').context("a line is not id,ds,y")?;
        let id = id.trim_matches('"').to_string();
        let y: f64 = y.parse().with_context(|| format!("value {y:?}"))?;
        if ids.last() != Some(&id) {
            ids.push(id);
            starts.push(ds.parse().with_context(|| format!("date {ds:?}"))?);
            values.push(Vec::new());
        }
        if let Some(v) = values.last_mut() {
            v.push(y);
        }
    }
    // Each series' place in the shop, from its name (the job's naming): the calendar rule and
    // the parallel loop are the job's own (`alkasba_forecast::forecast_many`).
    let at = |name: &str| ids.iter().position(|i| i == name);
    let role = |id: &str| match id {
        "revenue_mad/total" | "units/total" => Role::Total,
        _ if id.starts_with("units/product/") => Role::Product { shop: at("units/total") },
        _ if id.starts_with("revenue_mad/") => Role::Category { shop: at("revenue_mad/total") },
        _ => Role::Category { shop: at("units/total") },
    };
    let series: Vec<Series<'_>> = ids.iter().enumerate().map(|(i, id)| Series { y: &values[i], start: starts[i], kind: kind(id), role: role(id) }).collect();
    let cfg = Config::default();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let t = Instant::now();
    let results: Vec<Option<Outcome>> = forecast_many(&series, &cfg, &|_, _| {}).into_iter().map(Result::ok).collect();
    let secs = t.elapsed().as_secs_f64();
    let mut per_series = Vec::new();
    let mut failed = 0;
    for (id, r) in ids.iter().zip(&results) {
        let Some(out) = r else {
            failed += 1;
            continue;
        };
        let pick = |m: Model| out.scores.iter().find(|s| s.model == m);
        let chosen = pick(out.chosen);
        let naive = pick(Model::SeasonalNaive);
        per_series.push(json!({
            "series": id, "model": out.chosen.name(), "origins": out.origins,
            "mase": chosen.map(|s| s.mase), "naive_mase": naive.map(|s| s.mase),
            "coverage80": chosen.map(|s| s.coverage80), "coverage95": chosen.map(|s| s.coverage95),
        }));
    }
    let report = json!({
        "series": ids.len(), "failed": failed, "threads": threads, "seconds": secs, "peak_rss_mib": peak_rss_mib(),
        "per_series": per_series,
    });
    std::fs::create_dir_all(&a.dir)?;
    let path = a.dir.join("ours.json");
    std::fs::write(&path, serde_json::to_vec(&report)?)?;
    eprintln!("ours: {} series in {secs:.2} s on {threads} threads, peak RSS {:.0} MiB; {failed} failed; details in {}", ids.len(), peak_rss_mib().unwrap_or(0.0), path.display());
    Ok(())
}
