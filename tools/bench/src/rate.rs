//! `alkasba-bench rate-limit`: several fetchers reading one store whose rate limit they are not
//! told (the simulator enforces `--store-rps`; the source file claims a far higher ceiling).
//! Each fetcher is an `HttpSource` of its own, as each Lambda sandbox has its own, requesting
//! order pages with the fetcher's concurrency for `--secs`. Reports the pages served per second
//! against the store's limit and the share of requests answered 429, for the adaptive pace and,
//! side by side in the same run, for the anchor: the same fetchers pacing at the configured
//! rate, as a fixed-quota limiter does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alkasba_ingest::http::HttpSource;
use alkasba_ingest::pace::PaceTuning;
use alkasba_sim::{SimConfig, serve};
use anyhow::{Context, Result};
use clap::Args;

use crate::machine;

#[derive(Args)]
pub struct RateArgs {
    /// Requests per second the store allows (its limit; the fetchers are not told).
    #[arg(long, default_value_t = 40)]
    store_rps: u32,
    /// Requests the store allows at once above its rate.
    #[arg(long, default_value_t = 10)]
    store_burst: u32,
    /// The rate the source file claims (the fetchers' ceiling).
    #[arg(long, default_value_t = 1_000)]
    configured_rps: u32,
    /// Fetchers reading the store together.
    #[arg(long, default_value_t = 4)]
    fetchers: usize,
    /// Requests each fetcher keeps in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds each variant runs.
    #[arg(long, default_value_t = 90)]
    secs: u64,
    /// Seconds at the start left out of the figures (the slow start).
    #[arg(long, default_value_t = 10)]
    warmup_secs: u64,
    /// Pace tuning to try instead of the default (relative growth per answer).
    #[arg(long)]
    increase: Option<f64>,
    /// Pace tuning: the multiplier on a 429.
    #[arg(long)]
    decrease: Option<f64>,
    /// Pace tuning: at most one cut per this many milliseconds.
    #[arg(long)]
    hold_ms: Option<u64>,
    /// Pace tuning: growth per answer in slow start.
    #[arg(long)]
    slow_start_step: Option<f64>,
    /// Pace tuning: the multiplier on the signal that ends slow start.
    #[arg(long)]
    slow_start_exit: Option<f64>,
}

#[derive(Default)]
struct Counts {
    served: AtomicU64,
    requests: AtomicU64,
    throttled: AtomicU64,
}

struct Figures {
    served_per_sec: f64,
    throttled_share: f64,
    requests: u64,
}

/// One variant: `fetchers` sources paced by `tuning`, for `secs`.
async fn variant(base: &str, a: &RateArgs, tuning: Option<PaceTuning>, creds: &alkasba_sim::Credentials) -> Result<Figures> {
    let text = format!(
        "[source]\nname = \"store\"\nbase_url = \"{base}\"\nauth = {{ type = \"none\" }}\nrate_limit = {{ requests_per_second = {} }}\nretry = {{ max_attempts = 20, initial_backoff_ms = 100, max_backoff_ms = 2000, timeout_ms = 10000 }}\n[[stream]]\nname = \"orders\"\npath = \"/wp-json/wc/v3/orders\"\nprimary_key = [\"/id\"]\nin_clear = [\"/id\"]\nparams = {{ per_page = \"10\" }}\npaginator = {{ type = \"page_number\", size = 10, total_pages_header = \"X-WP-TotalPages\" }}\n",
        a.configured_rps
    );
    let file = alkasba_sources::parse("bench.toml", &text)?;
    let (source, stream) = (file.source.clone(), file.streams[0].clone());
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{}:{}", creds.consumer_key, creds.consumer_secret));
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let warm = start + Duration::from_secs(a.warmup_secs);
    let end = start + Duration::from_secs(a.secs);
    let mut tasks = Vec::new();
    for f in 0..a.fetchers {
        // The anchor: a fixed pace at the configured rate (tuned so it never moves).
        let tuning = tuning.unwrap_or(PaceTuning { initial: a.configured_rps as f64, decrease: 1.0, slow_start_exit: 1.0, increase: 0.0, ..PaceTuning::default() });
        let http = Arc::new(HttpSource::new(&source, Some(("authorization".into(), format!("Basic {auth}"))))?.with_tuning(tuning));
        for c in 0..a.concurrency {
            let (http, stream, counts, base) = (http.clone(), stream.clone(), counts.clone(), base.to_string());
            tasks.push(tokio::spawn(async move {
                let mut page = (f * 37 + c * 11) % 200 + 1;
                while Instant::now() < end {
                    let url = url::Url::parse(&format!("{base}/wp-json/wc/v3/orders?per_page=10&page={page}")).context("url")?;
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                    let got = http.fetch(&stream, &url, deadline).await;
                    let attempts = match &got {
                        Ok(f) => f.attempts,
                        Err(e) => e.attempts,
                    } as u64;
                    if Instant::now() >= warm {
                        // No other fault is injected: every attempt but a successful last one
                        // was answered 429.
                        let throttled = attempts - u64::from(got.is_ok());
                        counts.requests.fetch_add(attempts, Ordering::Relaxed);
                        counts.throttled.fetch_add(throttled, Ordering::Relaxed);
                        if got.is_ok() && Instant::now() < end {
                            counts.served.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    page = page % 200 + 1;
                }
                anyhow::Ok(())
            }));
        }
    }
    for t in tasks {
        t.await??;
    }
    let secs = (a.secs - a.warmup_secs) as f64;
    let requests = counts.requests.load(Ordering::Relaxed);
    Ok(Figures { served_per_sec: counts.served.load(Ordering::Relaxed) as f64 / secs, throttled_share: counts.throttled.load(Ordering::Relaxed) as f64 / requests.max(1) as f64, requests })
}

pub async fn run(a: RateArgs) -> Result<()> {
    let mut cfg = SimConfig::small(7, 2_000);
    cfg.rate_limit_per_sec = Some(a.store_rps);
    cfg.rate_limit_burst = a.store_burst;
    let creds = cfg.credentials.clone();
    let (addr, _, _) = serve(cfg, "127.0.0.1:0".parse()?).await?;
    let base = format!("http://{addr}");
    println!(
        "rate limit: {} fetchers × {} requests in flight against a store allowing {}/s (burst {}), source file claiming {}/s; {} s each, first {} s left out",
        a.fetchers, a.concurrency, a.store_rps, a.store_burst, a.configured_rps, a.secs, a.warmup_secs
    );
    let d = PaceTuning::default();
    let tuning = PaceTuning {
        increase: a.increase.unwrap_or(d.increase),
        decrease: a.decrease.unwrap_or(d.decrease),
        hold: a.hold_ms.map_or(d.hold, Duration::from_millis),
        slow_start_step: a.slow_start_step.unwrap_or(d.slow_start_step),
        slow_start_exit: a.slow_start_exit.unwrap_or(d.slow_start_exit),
        ..d
    };
    println!(
        "adaptive tuning: increase {} per answer, slow start +{} per answer, ended ×{}, decrease ×{}, hold {:?}",
        tuning.increase, tuning.slow_start_step, tuning.slow_start_exit, tuning.decrease, tuning.hold
    );
    let adaptive = variant(&base, &a, Some(tuning), &creds).await?;
    println!(
        "adaptive pace: {:.1} pages/s = {:.1}% of the allowed rate, {:.2}% of {} requests answered 429",
        adaptive.served_per_sec,
        100.0 * adaptive.served_per_sec / a.store_rps as f64,
        100.0 * adaptive.throttled_share,
        adaptive.requests
    );
    // Let the store's bucket refill between the variants.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fixed = variant(&base, &a, None, &creds).await?;
    println!(
        "anchor, fixed pace at the configured rate: {:.1} pages/s = {:.1}% of the allowed rate, {:.2}% of {} requests answered 429",
        fixed.served_per_sec,
        100.0 * fixed.served_per_sec / a.store_rps as f64,
        100.0 * fixed.throttled_share,
        fixed.requests
    );
    println!(
        "| {} | `alkasba-bench rate-limit --store-rps {} --fetchers {} --secs {}` | {} | {:.1}% of the limit, {:.2}% 429s | {:.1}% of the limit, {:.2}% 429s |",
        chrono::Utc::now().format("%Y-%m-%d"),
        a.store_rps,
        a.fetchers,
        a.secs,
        machine(),
        100.0 * adaptive.served_per_sec / a.store_rps as f64,
        100.0 * adaptive.throttled_share,
        100.0 * fixed.served_per_sec / a.store_rps as f64,
        100.0 * fixed.throttled_share
    );
    Ok(())
}
