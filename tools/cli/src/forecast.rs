//! `alkasba forecast`: the forecast job, here, with a progress bar, then the accuracy table.

use alkasba_batch::forecast::{self, ForecastOptions, ForecastRun};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::batch::batch_lake;

/// What to forecast.
pub struct ForecastArgs {
    /// Families to forecast (all when empty).
    pub families: Vec<String>,
    /// `YYYY-MM-DD`: run as of this day (the history ends the day before).
    pub run_date: Option<String>,
    pub options: ForecastOptions,
    /// Print the job's JSON answer instead of the table.
    pub json: bool,
}

pub async fn run(sdk: &aws_config::SdkConfig, stack: Option<&str>, a: ForecastArgs) -> Result<()> {
    let lake = batch_lake(sdk, stack).await?;
    let run_date = match &a.run_date {
        Some(d) => d.parse().with_context(|| format!("--run-date {d:?} is not a YYYY-MM-DD date"))?,
        None => chrono::Utc::now().date_naive(),
    };
    let only = (!a.families.is_empty()).then_some(a.families.as_slice());
    let bar = ProgressBar::new(1);
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} series").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let progress = |done: usize, all: usize| {
        bar.set_length(all as u64);
        bar.set_position(done as u64);
    };
    eprintln!("reading the sales history and forecasting ({} days ahead, {} backtest cuts)…", a.options.horizon, a.options.origins);
    let run = forecast::run(&lake, &a.options, run_date, only, &progress).await?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&forecast::summary(&run))?);
    } else {
        print!("{}", table(&run));
    }
    Ok(())
}

/// The accuracy of the shop and category series, the product models used, the stock-outs.
fn table(run: &ForecastRun) -> String {
    let mut out = format!("forecast of {} as of {} ({} series)\n\n", run.run_date, run.as_of, run.forecasts.len());
    out.push_str(&format!("{:<44} {:<17} {:>7} {:>7} {:>6} {:>7} {:>7}\n", "series", "model", "MASE", "naive", "gain", "cov80", "cov95"));
    let pct = |v: f64| format!("{:.0}%", 100.0 * v);
    let mut products = std::collections::BTreeMap::<&str, usize>::new();
    for f in &run.forecasts {
        if f.family == forecast::catalogue::PRODUCT_UNITS {
            *products.entry(f.outcome.chosen.name()).or_default() += 1;
            continue;
        }
        let (chosen, naive) = forecast::chosen_and_baseline(f);
        let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let gain = match (chosen, naive) {
            (Some(c), Some(n)) if n.mase > 0.0 => pct(1.0 - c.mase / n.mase),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<44} {:<17} {:>7} {:>7} {:>6} {:>7} {:>7}\n",
            f.series,
            f.outcome.chosen.name(),
            num(chosen.map(|s| s.mase)),
            num(naive.map(|s| s.mase)),
            gain,
            chosen.map_or("-".into(), |s| pct(s.coverage80)),
            chosen.map_or("-".into(), |s| pct(s.coverage95))
        ));
    }
    if !products.is_empty() {
        let models: Vec<String> = products.iter().map(|(m, n)| format!("{m} {n}")).collect();
        out.push_str(&format!("\nproducts: {} forecast ({})\n", products.values().sum::<usize>(), models.join(", ")));
        let soon: Vec<_> = run.stockouts.iter().filter(|s| s.days.is_some()).collect();
        out.push_str(&format!("stock runs out within the horizon for {} of {} products with managed stock\n", soon.len(), run.stockouts.len()));
    }
    for (s, e) in &run.failed {
        out.push_str(&format!("not forecast: {s}: {e}\n"));
    }
    for (t, rows) in &run.committed {
        out.push_str(&format!("gold/{t}: {rows} rows\n"));
    }
    out
}
