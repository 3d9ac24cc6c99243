//! Rolling-origin backtest, automatic model choice and calibrated prediction intervals.
//!
//! For a series of `n` days the backtest cuts it at `origins` points a week apart, the latest
//! `horizon` days before its end (origin `k` at `n - horizon - 7k`); at each cut every candidate
//! is fitted on the days before and forecasts the `horizon` days after, which are known. The
//! candidate with the lowest MASE over all cuts forecasts the series.
//!
//! Intervals are empirical (split-conformal): the chosen model's errors over the cuts, pooled by
//! horizon band (days 1-7, 8-14, 15+), give the quantiles added to the final forecast. Errors of
//! a series that never touches zero are taken as log ratios (the interval scales with the level,
//! as sales noise does); others as differences. The coverage the accuracy table reports is
//! measured honestly: the interval at each cut comes from the errors of the *other* cuts.

use chrono::{Duration, NaiveDate};

use crate::calendar::Effects;
use crate::models::{Model, WEEK};
use crate::{Error, Result};

/// What the backtest does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Days forecast ahead.
    pub horizon: usize,
    /// Cuts tested, a week apart (fewer when the history is short).
    pub origins: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { horizon: 28, origins: 8 }
    }
}

/// How a candidate did in the backtest.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub model: Model,
    /// Mean absolute error over every cut and day.
    pub mae: f64,
    /// MAE scaled by the in-sample MAE of the same-weekday-last-week forecast, averaged over cuts.
    pub mase: f64,
    /// Symmetric mean absolute percentage error, in percent (days where both are 0 count as 0).
    pub smape: f64,
    /// Share of actual days inside the 80% / 95% interval.
    pub coverage80: f64,
    pub coverage95: f64,
    /// Forecast days scored.
    pub points: usize,
    /// Mean absolute error of the cumulative demand (day 1 to day h, for every h), over the
    /// mean daily actual: how far off a running total is, what a stock-out date depends on.
    /// Products are chosen by it (MAE favours forecasts below the mean on intermittent counts,
    /// which would put every stock-out too late).
    pub cumulative: f64,
}

/// One day of a forecast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Day {
    pub point: f64,
    pub lo80: f64,
    pub hi80: f64,
    pub lo95: f64,
    pub hi95: f64,
}

/// A series' forecast and how its model was chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub chosen: Model,
    /// Every candidate that could be scored, best first. Empty when the history was too short
    /// to test anything (then `chosen` is the fallback).
    pub scores: Vec<Score>,
    /// Cuts the backtest used.
    pub origins: usize,
    pub forecast: Vec<Day>,
}

/// Where a series learns a part of its calendar from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source<'a> {
    /// The series itself (its training days at each cut).
    Own,
    /// Another series, cut at the same day: a sparse series borrows a denser one's (a product
    /// the shop's units; a category the shop's yearly path).
    Other { y: &'a [f64], start: NaiveDate },
    /// Not at all.
    Off,
}

/// How a series treats the calendar: event days ([`crate::calendar`]) and, where the history
/// holds more than a year and four weeks, the path of the same weeks last year.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calendar<'a> {
    pub events: Source<'a>,
    pub yearly: Source<'a>,
}

impl<'a> Calendar<'a> {
    /// Both learnt from the series itself.
    pub const OWN: Calendar<'static> = Calendar { events: Source::Own, yearly: Source::Own };
    /// Neither.
    pub const OFF: Calendar<'static> = Calendar { events: Source::Off, yearly: Source::Off };
    /// Both from another series.
    pub fn borrow(y: &'a [f64], start: NaiveDate) -> Self {
        Calendar { events: Source::Other { y, start }, yearly: Source::Other { y, start } }
    }
}

/// Median of `v` (0 when empty).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Last year's path over the next `h` days, as multipliers of the current level: for forecast
/// day `j`, the median of the 14 days around the same day a year (364 days: the same weekday)
/// before, over the median of the 28 days a year before the last 28. Medians, so last year's
/// promotion days do not count; `None` when the history is shorter than a year and 28 days.
fn yearly(y: &[f64], h: usize) -> Option<Vec<f64>> {
    const YEAR: usize = 364;
    let n = y.len();
    if n < YEAR + 28 || h + 7 > YEAR {
        return None;
    }
    let base = median(&y[n - YEAR - 28..n - YEAR]);
    if base <= 0.0 {
        return None;
    }
    Some((0..h).map(|j| (median(&y[n + j - YEAR - 7..n + j - YEAR + 7]) / base).clamp(0.5, 2.0)).collect())
}

/// A model's forecast of `h` days after `train` (which starts on `start`): the calendar's event
/// effects are taken out of the history and put back into the forecast, which then follows last
/// year's path where there is one. The seasonal naive baseline is left plain: it is what every
/// other model is measured against.
fn predict(model: Model, train: &[f64], start: NaiveDate, h: usize, calendar: &Calendar) -> Result<Vec<f64>> {
    if model == Model::SeasonalNaive {
        return model.forecast(train, h);
    }
    let day = |from: NaiveDate, i: usize| from + Duration::days(i as i64);
    let effects = cut(&calendar.events, train, start).map(|(y, s)| Effects::learn(y, s)).unwrap_or_default();
    if model == Model::Share {
        return share(train, start, h, calendar, &effects, cut(&calendar.events, train, start));
    }
    let path = cut_yearly(calendar, train, start, h);
    if !effects.any() && path.is_none() {
        return model.forecast(train, h);
    }
    let adjusted: Vec<f64> = train.iter().enumerate().map(|(i, v)| v / effects.on(day(start, i))).collect();
    let n = train.len();
    Ok(model.forecast(&adjusted, h)?.into_iter().enumerate().map(|(j, v)| v * effects.on(day(start, n + j)) * path.as_ref().map_or(1.0, |p| p[j])).collect())
}

/// The days of `source` up to the same day as the training days (`train`, from `start`), and
/// the day they start on; `None` for [`Source::Off`].
fn cut<'x>(source: &Source<'x>, train: &'x [f64], start: NaiveDate) -> Option<(&'x [f64], NaiveDate)> {
    match source {
        Source::Off => None,
        Source::Own => Some((train, start)),
        Source::Other { y, start: s } => {
            let end = usize::try_from((start + Duration::days(train.len() as i64) - *s).num_days()).unwrap_or(0).min(y.len());
            Some((&y[..end], *s))
        }
    }
}

/// Last year's path for the `h` days after `train` (from `start`), from the calendar's
/// yearly source cut at the same day, with its event days taken out (learnt from itself).
fn cut_yearly(calendar: &Calendar, train: &[f64], start: NaiveDate, h: usize) -> Option<Vec<f64>> {
    let day = |from: NaiveDate, i: usize| from + Duration::days(i as i64);
    let (y, s) = cut(&calendar.yearly, train, start)?;
    let own = Effects::learn(y, s);
    let plain: Vec<f64> = y.iter().enumerate().map(|(i, v)| v / own.on(day(s, i))).collect();
    yearly(&plain, h)
}

/// [`Model::Share`]: the series' share of its parent (the calendar's `events` source) over the
/// last 364 days (or all the history if shorter), times the parent's level of the last 28 days
/// with its event days taken out, flat, then the calendar's effects and last year's path. A
/// long window for the share (a slow seller's share is a few units a week: a quarter of them
/// gave stock-out dates a third less often right in the simulator test), a short one for the
/// level (the shop's recent pace); a product whose pace changed is better served by
/// [`Model::Mean28`], its other candidate.
fn share(train: &[f64], start: NaiveDate, h: usize, calendar: &Calendar, effects: &Effects, parent: Option<(&[f64], NaiveDate)>) -> Result<Vec<f64>> {
    let Some((p, ps)) = parent.filter(|_| matches!(calendar.events, Source::Other { .. })) else {
        return Err(Error::Model { model: Model::Share.name(), reason: "needs a parent series (the calendar's events source)".into() });
    };
    let day = |from: NaiveDate, i: usize| from + Duration::days(i as i64);
    let m = p.len();
    let window = 364.min(train.len()).min(m);
    let ours: f64 = train[train.len() - window..].iter().sum();
    let theirs: f64 = p[m - window..].iter().sum();
    if window == 0 || theirs <= 0.0 {
        return Err(Error::Model { model: Model::Share.name(), reason: "the parent sold nothing in the window".into() });
    }
    let recent = 28.min(m);
    let level = (m - recent..m).map(|i| p[i] / effects.on(day(ps, i))).sum::<f64>() / recent as f64 * ours / theirs;
    let path = cut_yearly(calendar, train, start, h);
    let n = train.len();
    Ok((0..h).map(|j| level * effects.on(day(start, n + j)) * path.as_ref().map_or(1.0, |p| p[j])).collect())
}

/// Which candidates a series gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Shop or category totals: dense, seasonal. Every model.
    Aggregate,
    /// One product's units: often intermittent. The cheap models (thousands of series), with
    /// the shop's units as parent.
    Product,
}

impl Kind {
    fn candidates(self) -> &'static [Model] {
        match self {
            Kind::Aggregate => &[Model::SeasonalNaive, Model::HoltWinters, Model::HoltWintersLog, Model::MstlEts],
            // Chosen by the cumulative error, what stock-out dates depend on. Holt-Winters and
            // Croston were candidates too: on the simulator test they were chosen for a third of
            // the products by the noise of eight cuts and put their stock-outs later.
            Kind::Product => &[Model::SeasonalNaive, Model::Share, Model::Mean28],
        }
    }
}

/// Horizon band of day `h` (0-based): the pooled error sets.
fn band(h: usize) -> usize {
    match h {
        0..7 => 0,
        7..14 => 1,
        _ => 2,
    }
}
const BANDS: usize = 3;

/// Errors of one model at one cut.
struct Run {
    forecast: Vec<f64>,
    actual: Vec<f64>,
    /// In-sample MAE of the seasonal naive forecast on the training days.
    scale: f64,
}

/// The error measure intervals are built from.
#[derive(Clone, Copy)]
enum Errors {
    Ratio,
    Difference,
}

impl Errors {
    fn of(self, actual: f64, forecast: f64) -> f64 {
        match self {
            Errors::Ratio => (actual.ln_1p()) - (forecast.ln_1p()),
            Errors::Difference => actual - forecast,
        }
    }
    fn apply(self, forecast: f64, q: f64) -> f64 {
        match self {
            Errors::Ratio => ((forecast.ln_1p()) + q).exp_m1().max(0.0),
            Errors::Difference => (forecast + q).max(0.0),
        }
    }
}

/// The empirical quantile `p` of `v` (sorted in place), linear between order statistics.
fn quantile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let x = p * (v.len() - 1) as f64;
    let (i, frac) = (x.floor() as usize, x - x.floor());
    let j = (i + 1).min(v.len() - 1);
    v[i] + (v[j] - v[i]) * frac
}

/// Quantiles (2.5%, 10%, 90%, 97.5%) of the errors per band.
type Quantiles = [[f64; 4]; BANDS];

fn quantiles(errors: &[Vec<f64>; BANDS]) -> Quantiles {
    let mut out = [[0.0; 4]; BANDS];
    for (b, e) in errors.iter().enumerate() {
        // A band with no errors (a horizon longer than any cut tested) borrows the last one's.
        let source = if e.is_empty() { errors.iter().rev().find(|e| !e.is_empty()) } else { Some(e) };
        let mut v = source.cloned().unwrap_or_default();
        out[b] = [quantile(&mut v, 0.025), quantile(&mut v, 0.10), quantile(&mut v, 0.90), quantile(&mut v, 0.975)];
    }
    out
}

/// An interval around each point, ordered lo95 ≤ lo80 ≤ point ≤ hi80 ≤ hi95, never below zero.
fn intervals(point: &[f64], q: &Quantiles, errors: Errors) -> Vec<Day> {
    point
        .iter()
        .enumerate()
        .map(|(h, &p)| {
            let [q025, q10, q90, q975] = q[band(h)];
            let lo80 = errors.apply(p, q10).min(p);
            let hi80 = errors.apply(p, q90).max(p);
            let lo95 = errors.apply(p, q025).min(lo80);
            let hi95 = errors.apply(p, q975).max(hi80);
            Day { point: p, lo80, hi80, lo95, hi95 }
        })
        .collect()
}

fn seasonal_naive_scale(train: &[f64]) -> f64 {
    let n = train.len();
    if n <= WEEK {
        return 0.0;
    }
    (WEEK..n).map(|t| (train[t] - train[t - WEEK]).abs()).sum::<f64>() / (n - WEEK) as f64
}

fn check(y: &[f64]) -> Result<()> {
    match y.iter().position(|v| !v.is_finite() || *v < 0.0) {
        Some(i) => Err(Error::Input(format!("day {i} of the series is {}: a series must be finite and non-negative", y[i]))),
        None if y.is_empty() => Err(Error::Input("the series is empty".into())),
        None => Ok(()),
    }
}

/// Backtests the candidates of `kind` on `y` (daily values from `start`), picks the best, and
/// forecasts `cfg.horizon` days after the last one with intervals.
pub fn forecast(y: &[f64], start: NaiveDate, kind: Kind, cfg: &Config, calendar: Calendar<'_>) -> Result<Outcome> {
    check(y)?;
    let n = y.len();
    let h = cfg.horizon.max(1);
    let errors = if y.iter().all(|v| *v > 0.0) { Errors::Ratio } else { Errors::Difference };

    // Cuts that leave at least two weeks of training and a full horizon after them.
    let origins: Vec<usize> = (0..cfg.origins).filter_map(|k| n.checked_sub(h + WEEK * k)).filter(|o| *o >= 2 * WEEK).collect();

    let mut tested: Vec<(Model, Vec<Run>)> = Vec::new();
    for &model in kind.candidates() {
        let mut runs = Vec::with_capacity(origins.len());
        for &o in &origins {
            let train = &y[..o];
            let Ok(forecast) = predict(model, train, start, h, &calendar) else { break };
            runs.push(Run { forecast, actual: y[o..o + h].to_vec(), scale: seasonal_naive_scale(train) });
        }
        // A model is a candidate only if it could forecast from every cut.
        if !origins.is_empty() && runs.len() == origins.len() {
            tested.push((model, runs));
        }
    }

    let mut scores: Vec<(Score, Quantiles)> = tested.iter().map(|(model, runs)| score(*model, runs, errors)).collect();
    let key = |s: &Score| if kind == Kind::Product { s.cumulative } else { s.mase };
    scores.sort_by(|a, b| key(&a.0).total_cmp(&key(&b.0)).then(a.0.model.cmp(&b.0.model)));

    let (chosen, q) = match scores.first() {
        Some((s, q)) => (s.model, *q),
        None => {
            // Nothing testable: the simplest model the history allows, intervals from its own
            // in-sample one-week-ahead errors (or none).
            let model = if n >= WEEK { Model::SeasonalNaive } else { Model::Croston };
            let mut e: [Vec<f64>; BANDS] = Default::default();
            for t in WEEK..n {
                e[0].push(errors.of(y[t], y[t - WEEK]));
            }
            (model, quantiles(&e))
        }
    };
    let point = predict(chosen, y, start, h, &calendar)?;
    Ok(Outcome { chosen, origins: origins.len(), forecast: intervals(&point, &q, errors), scores: scores.into_iter().map(|(s, _)| s).collect() })
}

/// Scores one model over its runs; returns the score and the interval quantiles from all runs.
fn score(model: Model, runs: &[Run], errors: Errors) -> (Score, Quantiles) {
    let mut abs = 0.0;
    let mut smape = 0.0;
    let mut points = 0usize;
    let mut mase = 0.0;
    let mut by_run: Vec<[Vec<f64>; BANDS]> = Vec::with_capacity(runs.len());
    let (mut cum_err, mut actual_sum) = (0.0, 0.0);
    for run in runs {
        let (mut cf, mut ca) = (0.0, 0.0);
        for (f, a) in run.forecast.iter().zip(&run.actual) {
            cf += f;
            ca += a;
            cum_err += (cf - ca).abs();
            actual_sum += a;
        }
        let mut run_abs = 0.0;
        let mut e: [Vec<f64>; BANDS] = Default::default();
        for (h, (f, a)) in run.forecast.iter().zip(&run.actual).enumerate() {
            let d = (a - f).abs();
            run_abs += d;
            smape += if a + f > 0.0 { 2.0 * d / (a.abs() + f.abs()) } else { 0.0 };
            e[band(h)].push(errors.of(*a, *f));
        }
        points += run.actual.len();
        abs += run_abs;
        let run_mae = run_abs / run.actual.len().max(1) as f64;
        // A series flat at zero before the cut has no scale: its error counts as is.
        mase += if run.scale > 0.0 { run_mae / run.scale } else { run_mae };
        by_run.push(e);
    }
    // Coverage: each cut's intervals from the other cuts' errors.
    let (mut in80, mut in95) = (0usize, 0usize);
    for (i, run) in runs.iter().enumerate() {
        let mut others: [Vec<f64>; BANDS] = Default::default();
        for (j, e) in by_run.iter().enumerate() {
            if i != j || runs.len() == 1 {
                for b in 0..BANDS {
                    others[b].extend_from_slice(&e[b]);
                }
            }
        }
        for (day, a) in intervals(&run.forecast, &quantiles(&others), errors).iter().zip(&run.actual) {
            in80 += usize::from(day.lo80 <= *a && *a <= day.hi80);
            in95 += usize::from(day.lo95 <= *a && *a <= day.hi95);
        }
    }
    let mut all: [Vec<f64>; BANDS] = Default::default();
    for e in by_run {
        for (b, v) in e.into_iter().enumerate() {
            all[b].extend(v);
        }
    }
    let p = points.max(1) as f64;
    let score = Score {
        model,
        mae: abs / p,
        mase: mase / runs.len().max(1) as f64,
        smape: 100.0 * smape / p,
        coverage80: in80 as f64 / p,
        coverage95: in95 as f64 / p,
        points,
        cumulative: if actual_sum > 0.0 { cum_err / actual_sum } else { cum_err / p },
    };
    (score, quantiles(&all))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weekly pattern, slow trend and multiplicative noise from a fixed sequence.
    fn noisy(n: usize, seed: u64) -> Vec<f64> {
        let pattern = [1.0, 0.9, 0.9, 1.0, 1.2, 1.6, 1.4];
        let mut s = seed;
        (0..n)
            .map(|t| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                (1000.0 + t as f64) * pattern[t % WEEK] * (0.85 + 0.3 * u)
            })
            .collect()
    }

    fn day0() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()
    }

    #[test]
    fn intervals_are_ordered_and_non_negative_and_the_choice_beats_the_baseline() {
        let y = noisy(300, 7);
        let out = forecast(&y, day0(), Kind::Aggregate, &Config::default(), Calendar::OWN).unwrap();
        assert_eq!(out.forecast.len(), 28);
        assert_eq!(out.origins, 8);
        for d in &out.forecast {
            assert!(0.0 <= d.lo95 && d.lo95 <= d.lo80 && d.lo80 <= d.point && d.point <= d.hi80 && d.hi80 <= d.hi95, "{d:?}");
        }
        let best = &out.scores[0];
        assert_eq!(best.model, out.chosen);
        let naive = out.scores.iter().find(|s| s.model == Model::SeasonalNaive).unwrap();
        assert!(best.mase < 0.8 * naive.mase, "{} {} vs naive {}", best.model.name(), best.mase, naive.mase);
        assert!((0.6..=0.97).contains(&best.coverage80), "{}", best.coverage80);
        assert!(best.coverage95 >= best.coverage80);
    }

    #[test]
    fn short_and_bad_series_get_a_fallback_or_a_clear_error() {
        let out = forecast(&[3.0, 0.0, 2.0, 5.0, 1.0, 0.0, 4.0, 3.0, 1.0], day0(), Kind::Product, &Config::default(), Calendar::OFF).unwrap();
        assert_eq!((out.chosen, out.origins, out.scores.len()), (Model::SeasonalNaive, 0, 0));
        assert_eq!(out.forecast.len(), 28);
        assert_eq!(forecast(&[1.0, 1.0], day0(), Kind::Product, &Config::default(), Calendar::OFF).unwrap().chosen, Model::Croston);
        assert_eq!(forecast(&[], day0(), Kind::Product, &Config::default(), Calendar::OFF).unwrap_err().to_string(), "bad series: the series is empty");
        assert_eq!(
            forecast(&[1.0, f64::NAN], day0(), Kind::Product, &Config::default(), Calendar::OFF).unwrap_err().to_string(),
            "bad series: day 1 of the series is NaN: a series must be finite and non-negative"
        );
        assert!(forecast(&[1.0, -2.0], day0(), Kind::Product, &Config::default(), Calendar::OFF).is_err());
    }

    #[test]
    fn quantiles_interpolate() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&mut v, 0.5), 2.5);
        assert_eq!(quantile(&mut v, 0.0), 1.0);
        assert_eq!(quantile(&mut v, 1.0), 4.0);
    }
}
