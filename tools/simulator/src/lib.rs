#![recursion_limit = "256"]
//! The Alkasba Store simulator: the stand-in for the store's real API in every demo, test and
//! benchmark.
//!
//! * A REST API modelled on the WooCommerce REST API v3 (`/wp-json/wc/v3/...`): products,
//!   customers, orders, refunds, with `page`/`per_page` pagination, `X-WP-Total`,
//!   `X-WP-TotalPages` and `Link` headers, `modified_after`/`orderby`/`order` filters, and HTTP
//!   Basic authentication with a consumer key and secret.
//! * Deterministic from a seed ([`data`]); a live store that keeps changing while it is read.
//! * Rate limiting (429 + `Retry-After`) and fault knobs ([`faults::Faults`]).
//! * Signed webhooks with scripted incidents ([`webhooks`]).
//! * A competitor price feed and an exchange-rate feed ([`feeds`]).
//! * Ground truth under `/_sim/truth/...`.

// Request handlers answer a refusal as the `Err` of a `Result<_, axum::response::Response>`
// and return it as is (axum's own pattern); boxing every refusal would only add noise.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod data;
pub mod demand;
pub mod faults;
pub mod feeds;
mod index;
pub mod order_json;
pub mod registered;
pub mod store;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

pub use api::AppState;
pub use data::Shape;
pub use faults::Faults;

/// The secrets clients must present. Never defaulted in code: the CLI reads them from the
/// environment, tests generate them.
#[derive(Clone)]
pub struct Credentials {
    /// WooCommerce consumer key (HTTP Basic user).
    pub consumer_key: String,
    /// WooCommerce consumer secret (HTTP Basic password).
    pub consumer_secret: String,
    /// `X-Api-Key` of the competitor price feed.
    pub feed_api_key: String,
    /// Bearer token of the exchange-rate feed.
    pub fx_token: String,
    /// HMAC secret that signs webhook deliveries.
    pub webhook_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("consumer_key", &self.consumer_key).finish_non_exhaustive()
    }
}

impl Credentials {
    /// Random credentials (tests and throw-away demos).
    pub fn random() -> Self {
        use rand::Rng;
        let mut r = rand::rng();
        let mut s = |p: &str| format!("{p}{:032x}", r.random::<u128>());
        Credentials { consumer_key: s("ck_"), consumer_secret: s("cs_"), feed_api_key: s("fk_"), fx_token: s("fx_"), webhook_secret: s("wh_") }
    }
}

/// Everything a simulator needs to start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub shape: Shape,
    /// Fraction of records served schema-invalid.
    pub invalid_rate: f64,
    pub credentials: Credentials,
    pub faults: Faults,
    /// Requests per second before 429s (None: unlimited).
    pub rate_limit_per_sec: Option<u32>,
    /// Burst allowed above the rate.
    pub rate_limit_burst: u32,
    /// Live changes applied before each orders list request.
    pub mutations_per_request: usize,
}

impl SimConfig {
    /// A small store with random credentials and no faults.
    pub fn small(seed: u64, orders: u32) -> Self {
        SimConfig {
            shape: Shape { seed, products: 200, customers: (orders / 4).max(10), orders, end: chrono::NaiveDate::from_ymd_opt(2026, 10, 31).unwrap_or_default(), days: 90 },
            invalid_rate: 0.0,
            credentials: Credentials::random(),
            faults: Faults::default(),
            rate_limit_per_sec: None,
            rate_limit_burst: 1,
            mutations_per_request: 0,
        }
    }

    /// Checks the settings, naming the first wrong one.
    pub fn validate(&self) -> Result<(), String> {
        if self.shape.products == 0 {
            return Err("products must be at least 1".into());
        }
        if self.shape.days == 0 {
            return Err("days must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.invalid_rate) {
            return Err(format!("invalid_rate must be within 0..=1, got {}", self.invalid_rate));
        }
        self.faults.validate()
    }
}

/// Starts a simulator on `addr` (port 0: any free port); returns its address and state.
pub async fn serve(cfg: SimConfig, addr: SocketAddr) -> anyhow::Result<(SocketAddr, Arc<AppState>, tokio::task::JoinHandle<()>)> {
    cfg.validate().map_err(|e| anyhow::anyhow!("simulator configuration: {e}"))?;
    let state = AppState::new(cfg);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e} (is the port in use?)"))?;
    let bound = listener.local_addr()?;
    let app = api::router(state.clone());
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "simulator server stopped");
        }
    });
    Ok((bound, state, handle))
}
