//! A shop's series forecast together: each learns its calendar from where it sits in the shop
//! (the rule is here once, for the job and for the benchmark that measures it), on every core,
//! with progress as series finish.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::NaiveDate;

use crate::{Calendar, Config, Error, Kind, Outcome, Result, Source, forecast};

/// Where a series sits in the shop, which says where it learns its calendar (event-day effects
/// and last year's path). `shop` is the index, in the same slice, of the shop-wide series it
/// borrows from (`None`: there is none, and it borrows nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A shop-wide total: learns both from itself.
    Total,
    /// A category: learns its own event days but follows the shop's path of last year (its own
    /// is too noisy: a year-ago fortnight of one category is a few hundred orders). `shop`: the
    /// total of the same measure.
    Category { shop: Option<usize> },
    /// A product: borrows both from the shop's units (its own event days and last year are too
    /// sparse). `shop`: the shop's units.
    Product { shop: Option<usize> },
}

/// One series of the set.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// Daily values, oldest first, one per day with no gaps.
    pub y: &'a [f64],
    /// The day of `y[0]`.
    pub start: NaiveDate,
    pub kind: Kind,
    pub role: Role,
}

/// The calendar `all[i]` learns from.
pub fn calendar<'a>(all: &[Series<'a>], i: usize) -> Calendar<'a> {
    let other = |shop: Option<usize>| shop.and_then(|s| all.get(s)).map(|s| Source::Other { y: s.y, start: s.start }).unwrap_or(Source::Off);
    match all[i].role {
        Role::Total => Calendar::OWN,
        Role::Category { shop } => Calendar { events: Source::Own, yearly: other(shop) },
        Role::Product { shop } => Calendar { events: other(shop), yearly: other(shop) },
    }
}

/// Forecasts every series of `all` (rolling-origin backtest, choice, intervals: [`forecast`])
/// on all cores, calling `progress(done, total)` as series finish. One result per series, in
/// order; a series that fails does not stop the others.
pub fn forecast_many(all: &[Series<'_>], cfg: &Config, progress: &(dyn Fn(usize, usize) + Sync)) -> Vec<Result<Outcome>> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(all.len().max(1));
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<Outcome>>> = (0..all.len()).map(|_| None).collect();
    {
        let results = Mutex::new(&mut slots);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(series) = all.get(i) else { break };
                        let r = forecast(series.y, series.start, series.kind, cfg, calendar(all, i));
                        if let Ok(mut slots) = results.lock() {
                            slots[i] = Some(r);
                        }
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1, all.len());
                    }
                });
            }
        });
    }
    slots.into_iter().map(|r| r.unwrap_or(Err(Error::Model { model: "scheduler", reason: "the series was not forecast (a worker thread panicked)".into() }))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, d).unwrap_or_default()
    }

    #[test]
    fn each_role_borrows_from_its_shop_series() {
        let (shop, cat) = (vec![1.0; 10], vec![2.0; 10]);
        let all = [
            Series { y: &shop, start: day(1), kind: Kind::Aggregate, role: Role::Total },
            Series { y: &cat, start: day(2), kind: Kind::Aggregate, role: Role::Category { shop: Some(0) } },
            Series { y: &cat, start: day(2), kind: Kind::Product, role: Role::Product { shop: Some(0) } },
            Series { y: &cat, start: day(2), kind: Kind::Product, role: Role::Product { shop: None } },
        ];
        let is_shop = |s: Source<'_>| matches!(s, Source::Other { y, start } if y.as_ptr() == shop.as_ptr() && start == day(1));
        assert!(matches!(calendar(&all, 0), Calendar { events: Source::Own, yearly: Source::Own }));
        let c = calendar(&all, 1);
        assert!(matches!(c.events, Source::Own) && is_shop(c.yearly));
        let p = calendar(&all, 2);
        assert!(is_shop(p.events) && is_shop(p.yearly));
        assert!(matches!(calendar(&all, 3), Calendar { events: Source::Off, yearly: Source::Off }));
    }

    #[test]
    fn every_series_gets_its_result_in_order_and_progress_counts_to_the_total() {
        let series: Vec<Vec<f64>> = (0..5).map(|k| (0..120).map(|i| (k * 10 + (i % 7)) as f64).collect()).collect();
        let mut all: Vec<Series<'_>> = series.iter().map(|y| Series { y, start: day(1), kind: Kind::Aggregate, role: Role::Total }).collect();
        let empty: Vec<f64> = Vec::new();
        all.push(Series { y: &empty, start: day(1), kind: Kind::Aggregate, role: Role::Total });
        let seen = AtomicUsize::new(0);
        let out = forecast_many(&all, &Config::default(), &|done, total| {
            assert_eq!(total, 6);
            seen.fetch_max(done, Ordering::Relaxed);
        });
        assert_eq!(seen.into_inner(), 6);
        assert_eq!(out.len(), 6);
        assert!(out[..5].iter().all(|r| r.is_ok()));
        assert!(out[5].is_err(), "an empty series is refused by name, the others still forecast");
    }
}
