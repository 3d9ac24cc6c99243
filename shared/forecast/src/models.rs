//! The candidate models. Each turns a daily history into `h` point forecasts; the backtest
//! ([`crate::backtest`]) decides which one a series gets.
//!
//! * [`Model::SeasonalNaive`]: the same weekday last week. The baseline every accuracy figure is
//!   measured against, and the fallback for histories too short to test anything else.
//! * [`Model::MstlEts`]: MSTL decomposition with a weekly period and an automatically chosen
//!   (non-seasonal) ETS model for the trend, from grafana's `augurs` crates.
//! * [`Model::HoltWinters`] / [`Model::HoltWintersLog`]: additive Holt-Winters with a weekly
//!   season and a damped trend, on the values or on `ln(1 + y)` (a multiplicative weekday
//!   pattern), with outlier-clipped updates. Written here because `augurs-ets` does not implement
//!   seasonal ETS yet (its seasonal components are `unimplemented!`), and because a promotion
//!   day in the history must not drag the level and the weekday pattern for weeks afterwards:
//!   the one-step error an update uses is clipped to three robust standard deviations.
//! * [`Model::Mean28`]: the mean of the last 28 days, flat: the unbiased pace of a product
//!   whose days are too noisy for anything finer (with the shop's calendar and last year's path
//!   applied on top by the backtest, it follows holidays and the season).
//! * [`Model::Share`]: a product's share of the shop's units over the last year times the
//!   shop's recent pace (top-down): a slow seller's own days are too few to say more than its
//!   share. Needs the parent series, so the backtest computes it.
//! * [`Model::Croston`]: Croston's method with the Syntetos-Boylan correction, for intermittent
//!   demand (a product that sells on a few days). Six lines; no crate offers it in Rust.

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use augurs_mstl::MSTLModel;

use crate::{Error, Result};

/// Days in the seasonal cycle every model knows about.
pub const WEEK: usize = 7;

/// A forecasting method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Model {
    SeasonalNaive,
    HoltWinters,
    HoltWintersLog,
    MstlEts,
    Croston,
    Mean28,
    /// A share of a parent series (a product of the shop's units): computed by the backtest,
    /// which holds the parent ([`crate::backtest`]); here it is refused.
    Share,
}

impl Model {
    /// Every model, in the order ties are broken (simplest first).
    pub const ALL: [Model; 7] = [Model::SeasonalNaive, Model::Mean28, Model::Share, Model::Croston, Model::HoltWinters, Model::HoltWintersLog, Model::MstlEts];

    /// The name written to the tables.
    pub fn name(self) -> &'static str {
        match self {
            Model::SeasonalNaive => "seasonal_naive",
            Model::HoltWinters => "holt_winters",
            Model::HoltWintersLog => "holt_winters_log",
            Model::MstlEts => "mstl_ets",
            Model::Croston => "croston_sba",
            Model::Mean28 => "mean_28d",
            Model::Share => "share_of_shop",
        }
    }

    /// Parses a name written by [`Model::name`].
    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Fewest days of history the model needs.
    pub fn min_history(self) -> usize {
        match self {
            Model::SeasonalNaive => WEEK,
            Model::Croston | Model::Mean28 | Model::Share => 1,
            Model::HoltWinters | Model::HoltWintersLog => 3 * WEEK,
            // STL needs at least two full periods; the trend model wants a few more points.
            Model::MstlEts => 4 * WEEK,
        }
    }

    /// `h` point forecasts following `y` (non-negative, finite; checked by the caller).
    pub fn forecast(self, y: &[f64], h: usize) -> Result<Vec<f64>> {
        if y.len() < self.min_history() {
            return Err(Error::TooShort { model: self.name(), days: y.len(), needs: self.min_history() });
        }
        let out = match self {
            Model::SeasonalNaive => seasonal_naive(y, h),
            Model::Croston => croston_sba(y, h),
            Model::Mean28 => {
                let last = &y[y.len().saturating_sub(4 * WEEK)..];
                vec![last.iter().sum::<f64>() / last.len() as f64; h]
            }
            Model::HoltWinters => holt_winters(y, h),
            Model::HoltWintersLog => {
                let logged: Vec<f64> = y.iter().map(|v| v.ln_1p()).collect();
                holt_winters(&logged, h).into_iter().map(f64::exp_m1).collect()
            }
            Model::MstlEts => mstl_ets(y, h)?,
            Model::Share => return Err(Error::Model { model: self.name(), reason: "a share is forecast with its parent series (alkasba_forecast::forecast)".into() }),
        };
        // A forecast of a non-negative quantity is non-negative; a model that produced
        // something that is not a number failed.
        if out.iter().any(|v| !v.is_finite()) {
            return Err(Error::Model { model: self.name(), reason: "the forecast is not finite".into() });
        }
        Ok(out.into_iter().map(|v| v.max(0.0)).collect())
    }
}

fn seasonal_naive(y: &[f64], h: usize) -> Vec<f64> {
    let last = &y[y.len() - WEEK..];
    (0..h).map(|i| last[i % WEEK]).collect()
}

/// Croston's method with the Syntetos-Boylan approximation: smoothed demand size over smoothed
/// interval between demands, times (1 - alpha/2). A flat forecast.
fn croston_sba(y: &[f64], h: usize) -> Vec<f64> {
    const ALPHA: f64 = 0.1;
    let mut size: Option<f64> = None;
    let mut interval = 1.0;
    let mut since = 0.0;
    for &v in y {
        since += 1.0;
        if v > 0.0 {
            match size {
                None => {
                    size = Some(v);
                    interval = since;
                }
                Some(z) => {
                    size = Some(z + ALPHA * (v - z));
                    interval += ALPHA * (since - interval);
                }
            }
            since = 0.0;
        }
    }
    let rate = size.map_or(0.0, |z| (1.0 - ALPHA / 2.0) * z / interval);
    vec![rate; h]
}

/// Smoothing parameters of one Holt-Winters fit.
#[derive(Debug, Clone, Copy)]
struct Params {
    alpha: f64,
    beta: f64,
    gamma: f64,
    phi: f64,
}

/// The parameter grid searched. A grid rather than a numerical optimiser: the one-step loss of
/// a clipped model is not smooth, and sixty passes over a year of days cost ~1 ms.
fn grid() -> impl Iterator<Item = Params> {
    [0.03, 0.08, 0.15, 0.3, 0.5].into_iter().flat_map(|alpha| {
        [0.0, 0.05].into_iter().flat_map(move |beta| [0.02, 0.06, 0.15].into_iter().flat_map(move |gamma| [0.9, 0.98].into_iter().map(move |phi| Params { alpha, beta, gamma, phi })))
    })
}

/// The state after running through the history, and its one-step loss.
struct Pass {
    level: f64,
    trend: f64,
    season: [f64; WEEK],
    /// Index of the season slot of the next day.
    next: usize,
    loss: f64,
}

/// Runs the error-correction form of additive Holt-Winters with a damped trend over `y`.
/// Updates use the one-step error clipped to 3 robust standard deviations (tracked as an
/// exponentially weighted mean absolute error), so isolated spikes barely move the state.
fn pass(y: &[f64], p: Params) -> Pass {
    let n = y.len();
    let first: f64 = y[..WEEK].iter().sum::<f64>() / WEEK as f64;
    let second: f64 = if n >= 2 * WEEK { y[WEEK..2 * WEEK].iter().sum::<f64>() / WEEK as f64 } else { first };
    let mut level = first;
    let mut trend = (second - first) / WEEK as f64 * 0.5;
    let mut season = [0.0; WEEK];
    for (i, s) in season.iter_mut().enumerate() {
        *s = y[i] - first;
    }
    // Robust scale: mean absolute week-on-week change to start with.
    let mut scale = (WEEK..(2 * WEEK).min(n)).map(|i| (y[i] - y[i - WEEK]).abs()).sum::<f64>() / WEEK as f64;
    if scale <= 0.0 {
        scale = first.abs().max(1e-9) * 0.1 + 1e-9;
    }
    let mut loss = 0.0;
    for (t, &v) in y.iter().enumerate().skip(WEEK) {
        let slot = t % WEEK;
        let predicted = level + p.phi * trend + season[slot];
        let error = v - predicted;
        let bound = 3.0 * 1.25 * scale;
        let clipped = error.clamp(-bound, bound);
        if t >= 2 * WEEK {
            loss += clipped * clipped;
        }
        scale = 0.95 * scale + 0.05 * error.abs().min(2.0 * bound);
        let old = level;
        level = old + p.phi * trend + p.alpha * clipped;
        trend = p.phi * trend + p.alpha * p.beta * clipped;
        season[slot] += p.gamma * (1.0 - p.alpha) * clipped;
    }
    Pass { level, trend, season, next: n % WEEK, loss }
}

fn holt_winters(y: &[f64], h: usize) -> Vec<f64> {
    let best = grid().map(|p| pass(y, p)).zip(grid()).min_by(|(a, _), (b, _)| a.loss.total_cmp(&b.loss));
    let Some((state, p)) = best else { return seasonal_naive(y, h) };
    let mut damp = 0.0;
    let mut factor = 1.0;
    (0..h)
        .map(|i| {
            factor *= p.phi;
            damp += factor;
            state.level + damp * state.trend + state.season[(state.next + i) % WEEK]
        })
        .collect()
}

fn mstl_ets(y: &[f64], h: usize) -> Result<Vec<f64>> {
    let failed = |e: &dyn std::fmt::Display| Error::Model { model: Model::MstlEts.name(), reason: e.to_string() };
    let model = MSTLModel::new(vec![WEEK], AutoETS::non_seasonal().into_trend_model());
    let fitted = model.fit(y).map_err(|e| failed(&e))?;
    let forecast = fitted.predict(h, None).map_err(|e| failed(&e))?;
    Ok(forecast.point)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A weekly pattern on a rising level, no noise: every seasonal model must follow it.
    fn weekly(n: usize) -> Vec<f64> {
        let pattern = [1.0, 0.9, 0.9, 1.0, 1.2, 1.6, 1.4];
        (0..n).map(|t| (100.0 + 0.2 * t as f64) * pattern[t % WEEK]).collect()
    }

    #[test]
    fn seasonal_models_follow_a_clean_weekly_pattern() {
        let y = weekly(140);
        let truth = &weekly(168)[140..];
        for model in [Model::SeasonalNaive, Model::HoltWinters, Model::HoltWintersLog, Model::MstlEts] {
            let f = model.forecast(&y, 28).unwrap();
            assert_eq!(f.len(), 28);
            let mape = f.iter().zip(truth).map(|(f, t)| (f - t).abs() / t).sum::<f64>() / 28.0;
            assert!(mape < 0.08, "{}: mean absolute percentage error {mape}", model.name());
        }
    }

    #[test]
    fn holt_winters_shrugs_off_a_spike() {
        let mut y = weekly(140);
        y[130] *= 4.0;
        let clean = Model::HoltWinters.forecast(&weekly(140), 14).unwrap();
        let spiked = Model::HoltWinters.forecast(&y, 14).unwrap();
        for (a, b) in clean.iter().zip(&spiked) {
            assert!((a - b).abs() / a < 0.1, "{a} vs {b}");
        }
    }

    #[test]
    fn croston_forecasts_the_rate_of_intermittent_demand() {
        // Two units every fourth day: half a unit a day.
        let y: Vec<f64> = (0..200).map(|t| if t % 4 == 0 { 2.0 } else { 0.0 }).collect();
        let f = Model::Croston.forecast(&y, 28).unwrap();
        assert!(f.iter().all(|v| (v - 0.5 * 0.95).abs() < 0.01), "{f:?}");
        assert_eq!(Model::Croston.forecast(&[0.0; 30], 3).unwrap(), vec![0.0; 3]);
    }

    #[test]
    fn short_histories_are_refused_by_name() {
        let e = Model::MstlEts.forecast(&[1.0; 10], 7).unwrap_err();
        assert_eq!(e.to_string(), "mstl_ets needs 28 days of history, the series has 10");
        for m in Model::ALL {
            assert_eq!(Model::from_name(m.name()), Some(m));
        }
    }
}
