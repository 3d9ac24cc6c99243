//! The request rate of one source, adapted to what the source allows: additive increase,
//! multiplicative decrease (AIMD, as TCP shares a link), with a slow start.
//!
//! Several fetchers reading one store (Lambda runs them in separate sandboxes, which share no
//! memory) each run this controller. Each one slows down on the store's signals (a 429, a 503,
//! a latency that keeps rising) and speeds up slowly while it is healthy; AIMD controllers
//! sharing a bottleneck converge to equal shares of it, so N fetchers together stay close under
//! the limit the store enforces without being told it, and without a coordination service.
//! The source's configured `rate_limit` is a ceiling no fetcher passes.
//!
//! Hand-written: `governor` (used before) paces at a fixed quota; the adaptive limiters on
//! crates.io (`congestion-limiter`, tower's) bound concurrency, not the request rate a store's
//! rate limiter counts.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Tuning of [`Pace`]. The defaults are measured by `alkasba-bench rate-limit`
/// (docs/benchmarks.md).
#[derive(Debug, Clone, Copy)]
pub struct PaceTuning {
    /// Rate at start, requests per second (capped by the ceiling).
    pub initial: f64,
    /// Never below this many requests per second.
    pub floor: f64,
    /// Multiplier applied to the rate on a congestion signal.
    pub decrease: f64,
    /// Multiplier applied instead of `decrease` on the signal that ends slow start. In slow
    /// start the rate doubles every ~0.35 s, and a store's burst allowance hides the overshoot
    /// for a while, so by the first 429 the rate can be twice what the store allows: halving
    /// it at once (TCP's slow-start exit) stops the 429s in one cut instead of the three
    /// `decrease` cuts, a hold apart, it takes from twice the limit.
    pub slow_start_exit: f64,
    /// Growth per answer once past slow start, in requests per second (0.005: over the
    /// `rate` answers of a second, +0.5% of the rate).
    pub increase: f64,
    /// Growth per answer in slow start, in requests per second: answers come at the rate, so
    /// the rate grows by this share of itself each second (2: doubling every ~0.35 s). With
    /// the halving exit, +2 drew fewer 429s from a limited store than +1 with a `decrease`
    /// exit did, in half the start (docs/benchmarks.md, issue 18).
    pub slow_start_step: f64,
    /// At most one decrease per this long: a burst of 429s answers one overshoot.
    pub hold: Duration,
    /// A smoothed latency above this, and above `latency_factor` times the best seen, is a
    /// congestion signal.
    pub latency_floor: Duration,
    pub latency_factor: f64,
    /// Requests allowed at once above the rate after an idle spell.
    pub burst: f64,
}

impl Default for PaceTuning {
    fn default() -> Self {
        PaceTuning {
            initial: 2.0,
            floor: 0.5,
            decrease: 0.75,
            slow_start_exit: 0.5,
            increase: 0.005,
            slow_start_step: 2.0,
            hold: Duration::from_secs(1),
            latency_floor: Duration::from_millis(500),
            latency_factor: 4.0,
            burst: 1.0,
        }
    }
}

#[derive(Debug)]
struct State {
    rate: f64,
    /// The earliest start of the next request.
    next: Instant,
    /// Growing by `slow_start_step` per answer until the first congestion signal.
    slow_start: bool,
    last_cut: Option<Instant>,
    /// Smoothed and best latency, in seconds.
    smoothed: Option<f64>,
    best: Option<f64>,
    /// Counters, for the benchmark and logs.
    throttled: u64,
    cuts: u64,
}

/// An adaptive request pace, shared by every request to one source in this process.
#[derive(Debug)]
pub struct Pace {
    state: Mutex<State>,
    ceiling: f64,
    tuning: PaceTuning,
}

/// What [`Pace::stats`] reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceStats {
    /// Requests per second allowed now.
    pub rate: f64,
    /// 429 and 503 answers seen.
    pub throttled: u64,
    /// Times the rate was cut.
    pub cuts: u64,
}

impl Pace {
    /// A pace never above `ceiling` requests per second (`None`: only the source's signals
    /// bound it).
    pub fn new(ceiling: Option<f64>, tuning: PaceTuning) -> Self {
        let ceiling = ceiling.filter(|c| c.is_finite() && *c > 0.0).unwrap_or(f64::INFINITY);
        let floor = tuning.floor.min(ceiling);
        let tuning = PaceTuning { floor, ..tuning };
        let rate = tuning.initial.clamp(floor, ceiling);
        let state = State { rate, next: Instant::now(), slow_start: true, last_cut: None, smoothed: None, best: None, throttled: 0, cuts: 0 };
        Self { state: Mutex::new(state), ceiling, tuning }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for this request's turn.
    pub async fn acquire(&self) {
        let at = {
            let mut s = self.lock();
            let now = Instant::now();
            let gap = Duration::from_secs_f64(1.0 / s.rate);
            // An idle source may send a small burst at once, never more.
            let earliest = now.checked_sub(gap.mul_f64(self.tuning.burst)).unwrap_or(now);
            let at = s.next.max(earliest);
            s.next = at + gap;
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// A successful answer after `latency`.
    pub fn on_success(&self, latency: Duration) {
        let mut s = self.lock();
        let l = latency.as_secs_f64();
        let smoothed = s.smoothed.map_or(l, |m| m + (l - m) / 8.0);
        s.smoothed = Some(smoothed);
        s.best = Some(s.best.map_or(l, |b| b.min(l)));
        let slow = smoothed > self.tuning.latency_floor.as_secs_f64() && smoothed > self.tuning.latency_factor * s.best.unwrap_or(l);
        if slow {
            self.cut(&mut s);
            return;
        }
        // Per answer: +slow_start_step in slow start, else +increase, which over the `rate`
        // answers of a second grows the rate by `increase` of itself. Growth follows use: a
        // fetcher that sends little does not raise its rate.
        let step = if s.slow_start { self.tuning.slow_start_step } else { self.tuning.increase };
        s.rate = (s.rate + step).min(self.ceiling);
    }

    /// A 429 or 503: the source says it is over its limit.
    pub fn on_throttled(&self) {
        let mut s = self.lock();
        s.throttled += 1;
        self.cut(&mut s);
    }

    fn cut(&self, s: &mut State) {
        let now = Instant::now();
        if s.last_cut.is_some_and(|t| now.duration_since(t) < self.tuning.hold) {
            return;
        }
        s.last_cut = Some(now);
        let factor = if s.slow_start { self.tuning.slow_start_exit } else { self.tuning.decrease };
        s.slow_start = false;
        s.cuts += 1;
        s.rate = (s.rate * factor).max(self.tuning.floor);
    }

    /// Opens at `rate` (capped by the ceiling) instead of slow start, if this pace has not
    /// learned anything yet (no answer, no signal): a rate another fetcher of the source
    /// learned. Growth from there is additive; the first congestion signal cuts it as usual.
    /// `true` when it took it.
    pub fn open_at(&self, rate: f64) -> bool {
        let mut s = self.lock();
        if !Self::fresh(&s) || !rate.is_finite() || rate <= s.rate {
            return false;
        }
        s.rate = rate.min(self.ceiling);
        s.slow_start = false;
        true
    }

    /// Nothing learned yet: no answer, no signal, no rate opened at.
    pub fn is_fresh(&self) -> bool {
        Self::fresh(&self.lock())
    }

    fn fresh(s: &State) -> bool {
        s.slow_start && s.smoothed.is_none() && s.throttled == 0
    }

    /// The rate now and the signals seen.
    pub fn stats(&self) -> PaceStats {
        let s = self.lock();
        PaceStats { rate: s.rate, throttled: s.throttled, cuts: s.cuts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learned_rate_opens_only_a_fresh_pace_and_never_above_the_ceiling() {
        let p = Pace::new(Some(20.0), PaceTuning::default());
        assert!(p.is_fresh());
        assert!(p.open_at(50.0));
        assert!(!p.is_fresh(), "opened: no longer fresh");
        assert_eq!(p.stats().rate, 20.0, "capped by the ceiling");
        let p = Pace::new(None, PaceTuning::default());
        assert!(p.open_at(50.0));
        p.on_success(Duration::from_millis(20));
        assert!(p.stats().rate < 50.01, "past slow start: additive growth, not +1 per answer: {:?}", p.stats());
        let p = Pace::new(None, PaceTuning::default());
        p.on_success(Duration::from_millis(20));
        assert!(!p.open_at(50.0), "a pace that has answers keeps its own");
        let p = Pace::new(None, PaceTuning::default());
        assert!(!p.open_at(1.0) && !p.open_at(f64::NAN), "lower or not a number: ignored");
        p.on_success(Duration::from_millis(20));
        assert_eq!(p.stats().rate, PaceTuning::default().initial + PaceTuning::default().slow_start_step, "still in slow start");
    }

    #[tokio::test(start_paused = true)]
    async fn it_paces_at_its_rate_and_never_passes_the_ceiling() {
        let p = Pace::new(Some(20.0), PaceTuning { initial: 20.0, burst: 1.0, ..PaceTuning::default() });
        let start = Instant::now();
        for _ in 0..41 {
            p.acquire().await;
            p.on_success(Duration::from_millis(5));
        }
        // 41 requests at 20/s: the first (and one of burst) at once, then one every 50 ms.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1_950) && took <= Duration::from_millis(2_050), "{took:?}");
        assert_eq!(p.stats().rate, 20.0, "at the ceiling");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_cuts_the_rate_once_per_hold_and_slow_start_ends() {
        let p = Pace::new(None, PaceTuning { initial: 10.0, slow_start_step: 1.0, ..PaceTuning::default() });
        for _ in 0..30 {
            p.on_success(Duration::from_millis(5));
        }
        let before = p.stats().rate;
        assert_eq!(before, 40.0, "slow start: +1 per answer");
        p.on_throttled();
        p.on_throttled();
        let after = p.stats();
        assert_eq!((after.rate, after.throttled, after.cuts), (20.0, 2, 1), "two 429s of one overshoot cut once, by half as slow start ends");
        // Past slow start, growth is slow: 20 answers (a second at this rate) add 0.5%.
        for _ in 0..20 {
            p.on_success(Duration::from_millis(5));
        }
        assert!(p.stats().rate < 20.2, "{:?}", p.stats());
        tokio::time::advance(Duration::from_secs(3)).await;
        p.on_throttled();
        assert!(p.stats().rate < 15.1 && p.stats().rate > 15.0 && p.stats().cuts == 2, "later cuts by `decrease`: {:?}", p.stats());
    }

    #[tokio::test(start_paused = true)]
    async fn a_latency_that_keeps_rising_slows_it_down_and_one_slow_answer_does_not() {
        let p = Pace::new(None, PaceTuning::default());
        for _ in 0..20 {
            p.on_success(Duration::from_millis(20));
        }
        let r = p.stats().rate;
        p.on_success(Duration::from_millis(2_000));
        assert!(p.stats().rate > r, "one slow answer is noise");
        for _ in 0..20 {
            p.on_success(Duration::from_millis(2_000));
        }
        assert!(p.stats().cuts >= 1 && p.stats().rate < r, "{:?}", p.stats());
    }
}
