//! `alkasba-sim`: runs the Alkasba Store simulator.

use std::net::SocketAddr;
use std::time::Instant;

use alkasba_sim::{Credentials, Faults, Shape, SimConfig};
use anyhow::Context;
use clap::Parser;

/// Runs the Alkasba Store simulator. Credentials come from the environment, never from flags or
/// files: ALKASBA_SIM_CONSUMER_KEY, ALKASBA_SIM_CONSUMER_SECRET, ALKASBA_SIM_FEED_API_KEY,
/// ALKASBA_SIM_FX_TOKEN, ALKASBA_SIM_WEBHOOK_SECRET.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Seed: the same seed and sizes give the same store.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 10_000)]
    orders: u32,
    #[arg(long, default_value_t = 500)]
    products: u32,
    #[arg(long, default_value_t = 3_000)]
    customers: u32,
    /// Days of history.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Last day of history (YYYY-MM-DD).
    #[arg(long, default_value = "2026-10-31")]
    end_date: chrono::NaiveDate,
    /// Fraction of records served schema-invalid.
    #[arg(long, default_value_t = 0.0)]
    invalid_rate: f64,
    /// Requests per second before 429 (0: unlimited).
    #[arg(long, default_value_t = 0)]
    rate_limit: u32,
    /// Burst above the rate limit.
    #[arg(long, default_value_t = 20)]
    rate_limit_burst: u32,
    /// Live changes applied before each orders list request.
    #[arg(long, default_value_t = 0)]
    mutations_per_request: usize,
    /// Fault knobs as JSON (see GET /_sim/faults), e.g. '{"error_rate":0.2}'.
    #[arg(long)]
    faults: Option<String>,
}

fn secret(name: &str) -> anyhow::Result<String> {
    let v = std::env::var(name).with_context(|| format!("environment variable {name} is not set (the simulator takes its credentials from the environment)"))?;
    anyhow::ensure!(v.len() >= 8, "environment variable {name} is too short (8 characters at least)");
    Ok(v)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    alkasba_telemetry::init();
    let cli = Cli::parse();
    let credentials = Credentials {
        consumer_key: secret("ALKASBA_SIM_CONSUMER_KEY")?,
        consumer_secret: secret("ALKASBA_SIM_CONSUMER_SECRET")?,
        feed_api_key: secret("ALKASBA_SIM_FEED_API_KEY")?,
        fx_token: secret("ALKASBA_SIM_FX_TOKEN")?,
        webhook_secret: secret("ALKASBA_SIM_WEBHOOK_SECRET")?,
    };
    let faults: Faults = match &cli.faults {
        Some(j) => serde_json::from_str(j).context("--faults is not valid fault JSON")?,
        None => Faults::default(),
    };
    let cfg = SimConfig {
        shape: Shape { seed: cli.seed, products: cli.products, customers: cli.customers, orders: cli.orders, end: cli.end_date, days: cli.days },
        invalid_rate: cli.invalid_rate,
        credentials,
        faults,
        rate_limit_per_sec: (cli.rate_limit > 0).then_some(cli.rate_limit),
        rate_limit_burst: cli.rate_limit_burst,
        mutations_per_request: cli.mutations_per_request,
    };
    let started = Instant::now();
    let (addr, state, handle) = alkasba_sim::serve(cfg, cli.listen).await?;
    {
        let store = state.store();
        tracing::info!(
            %addr, seed = cli.seed, orders = store.orders.len(), products = store.products.len(),
            customers = store.customers.len(), refunds = store.refunds.len(),
            generated_ms = started.elapsed().as_millis() as u64, "Alkasba Store simulator ready"
        );
    }
    tokio::select! {
        _ = handle => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(())
}
