//! Fault knobs: what a flaky store API does to its clients. Adjustable at run time through
//! `PUT /_sim/faults`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::data;

/// The faults the API injects. Rates are fractions of requests in [0, 1].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Requests answered with a 500, 502 or 503.
    pub error_rate: f64,
    /// Requests that start a burst of 429 answers (with `Retry-After`).
    pub throttle_rate: f64,
    /// Length of each 429 burst, in requests.
    pub throttle_burst: u32,
    /// Requests delayed by `slow_ms` before answering.
    pub slow_rate: f64,
    /// Delay of a slow request, in milliseconds.
    pub slow_ms: u64,
    /// Requests that hang `timeout_ms` before answering (clients with shorter timeouts give up).
    pub timeout_rate: f64,
    /// How long a hanging request hangs, in milliseconds.
    pub timeout_ms: u64,
    /// List pages whose JSON is cut short mid-body.
    pub truncate_rate: f64,
    /// List pages whose body is not JSON at all.
    pub malformed_rate: f64,
    /// Store list pages (by page number) that always answer a non-JSON body: poison pages that no
    /// retry fixes.
    pub poison_pages: Vec<usize>,
    /// Store list pages (by page number) whose first N requests answer a non-JSON body, then
    /// succeed: a page that fails more often than one round of retries allows, and recovers.
    /// Counted per `(resource, page)`.
    pub flaky_pages: std::collections::BTreeMap<usize, u32>,
}

impl Faults {
    /// Checks every rate is a fraction and every duration is sane.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("throttle_rate", self.throttle_rate),
            ("slow_rate", self.slow_rate),
            ("timeout_rate", self.timeout_rate),
            ("truncate_rate", self.truncate_rate),
            ("malformed_rate", self.malformed_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be within 0..=1, got {v}"));
            }
        }
        if self.slow_ms > 120_000 || self.timeout_ms > 600_000 {
            return Err("slow_ms must be at most 120000 and timeout_ms at most 600000".into());
        }
        Ok(())
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    ServerError(u16),
    Throttle,
    Slow(u64),
    Hang(u64),
    Truncate,
    Malformed,
}

/// Decides faults from a request counter and the seed, so a given request sequence always sees
/// the same faults.
#[derive(Debug, Default)]
pub struct FaultDice {
    counter: AtomicU64,
    burst_left: AtomicU32,
}

impl FaultDice {
    pub fn roll(&self, seed: u64, f: &Faults, list_page: bool) -> Fault {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        if self.burst_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_ok() {
            return Fault::Throttle;
        }
        let u = |salt: u64| data::unit(seed, n, salt);
        if u(1) < f.throttle_rate {
            self.burst_left.store(f.throttle_burst.saturating_sub(1), Ordering::Relaxed);
            return Fault::Throttle;
        }
        if u(2) < f.error_rate {
            return Fault::ServerError([500, 502, 503][(data::mix(seed, n, 3) % 3) as usize]);
        }
        if u(4) < f.timeout_rate {
            return Fault::Hang(f.timeout_ms);
        }
        if list_page && u(5) < f.truncate_rate {
            return Fault::Truncate;
        }
        if list_page && u(6) < f.malformed_rate {
            return Fault::Malformed;
        }
        if u(7) < f.slow_rate {
            return Fault::Slow(f.slow_ms);
        }
        Fault::None
    }
}
