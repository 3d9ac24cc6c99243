//! Accuracy on simulator histories whose future is known: two years of a store's sales (so last
//! year's path can be learnt), generated four weeks past the last served day. The backtest (8 weekly cuts, 28 days each, on the
//! history) and the forecast of the four unseen weeks are checked against the targets:
//! MASE at least 20% better than seasonal naive on total revenue and on at least 70% of
//! categories; 80% intervals covering 70-90% of days; stock-out dates within ±3 days for at
//! least 70% of the products that do run out.

use alkasba_forecast::{Calendar, Config, Kind, Model, Source, forecast, stockout};
use alkasba_sim::data::{Shape, generate_with_future};
use alkasba_sim::demand::daily_series;
use chrono::NaiveDate;

const FUTURE: usize = 28;

fn store() -> (Shape, alkasba_sim::data::WithFuture) {
    let shape = Shape { seed: 11, products: 300, customers: 80_000, orders: 300_000, end: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(), days: 730 };
    let g = generate_with_future(&shape, FUTURE as u32);
    (shape, g)
}

fn gain(out: &alkasba_forecast::Outcome) -> f64 {
    let chosen = out.scores.iter().find(|s| s.model == out.chosen).unwrap();
    let naive = out.scores.iter().find(|s| s.model == Model::SeasonalNaive).unwrap();
    1.0 - chosen.mase / naive.mase
}

#[test]
fn forecasts_meet_the_targets_on_a_simulated_year_and_its_unseen_month() {
    let (shape, g) = store();
    let start = shape.end - chrono::Duration::days(shape.days as i64 - 1);
    let days = shape.days as usize;
    let s = daily_series(shape.seed, &g.full, start, days + FUTURE);
    let cfg = Config::default();

    // Total revenue and every category's revenue: backtest on the history.
    let mut series: Vec<(String, Vec<f64>)> = vec![("revenue_mad/total".into(), s.revenue_mad.clone())];
    for (i, c) in s.category_revenue_mad.iter().enumerate() {
        series.push((format!("revenue_mad/category/{}", alkasba_sim::data::CATEGORIES[i]), c.clone()));
    }
    let mut report = String::new();
    let (mut in80, mut future_days) = (0usize, 0usize);
    let mut category_gains = Vec::new();
    let mut coverages = Vec::new();
    for (name, y) in &series {
        let (history, future) = y.split_at(days);
        // The shop learns its own calendar; a category its own event days and the shop's path
        // of last year (its own is too noisy), as the job does.
        let calendar = if name == "revenue_mad/total" { Calendar::OWN } else { Calendar { events: Source::Own, yearly: Source::Other { y: &s.revenue_mad[..days], start } } };
        let out = forecast(history, start, Kind::Aggregate, &cfg, calendar).unwrap();
        let chosen = out.scores.iter().find(|s| s.model == out.chosen).unwrap();
        for d in &out.forecast {
            assert!(0.0 <= d.lo95 && d.lo95 <= d.lo80 && d.lo80 <= d.point && d.point <= d.hi80 && d.hi80 <= d.hi95, "{name}: {d:?}");
        }
        for (d, a) in out.forecast.iter().zip(future) {
            in80 += usize::from(d.lo80 <= *a && *a <= d.hi80);
            future_days += 1;
        }
        report.push_str(&format!("{name:<44} {:<17} MASE {:.3} gain {:>5.1}% cov80 {:.2} cov95 {:.2}\n", out.chosen.name(), chosen.mase, 100.0 * gain(&out), chosen.coverage80, chosen.coverage95));
        coverages.push(chosen.coverage80);
        if name == "revenue_mad/total" {
            assert!(gain(&out) >= 0.2, "total revenue: MASE only {:.1}% better than seasonal naive\n{report}", 100.0 * gain(&out));
            assert!((0.7..=0.9).contains(&chosen.coverage80), "total revenue: 80% intervals cover {:.2}\n{report}", chosen.coverage80);
        } else {
            category_gains.push(gain(&out));
        }
    }
    eprintln!("{report}");
    let good = category_gains.iter().filter(|g| **g >= 0.2).count();
    assert!(good as f64 >= 0.7 * category_gains.len() as f64, "{good} of {} categories 20% better than seasonal naive\n{report}", category_gains.len());
    let mean_coverage = coverages.iter().sum::<f64>() / coverages.len() as f64;
    assert!((0.7..=0.9).contains(&mean_coverage), "80% intervals cover {mean_coverage:.2} of backtest days on average\n{report}");
    let future_coverage = in80 as f64 / future_days as f64;
    eprintln!("unseen month: 80% intervals cover {future_coverage:.2} of {future_days} series-days");
    assert!((0.6..=0.97).contains(&future_coverage), "unseen month: 80% intervals cover {future_coverage:.2}");

    // Stock-outs: the stock at the end of the history against the units of the unseen month.
    // Products borrow the calendar of the shop's units, as the job does.
    let shop = Calendar::borrow(&s.units[..days], start);
    let (mut runs_out, mut within, mut hindsight) = (0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    for (p, units) in s.product_units.iter().enumerate() {
        let stock = g.served.products[p].stock as f64;
        let (history, future) = units.split_at(days);
        if stock <= 0.0 || history.iter().rev().take(91).sum::<f64>() == 0.0 {
            continue;
        }
        let Some(truth) = stockout::stockout_day(future, stock) else { continue };
        runs_out += 1;
        // Hindsight: the product's mean pace over the unseen month, known exactly.
        let mean = future.iter().sum::<f64>() / future.len() as f64;
        if stockout::stockout_day(&vec![mean; future.len()], stock).is_some_and(|d| d.abs_diff(truth) <= 3) {
            hindsight += 1;
        }
        let out = forecast(history, start, Kind::Product, &cfg, shop).unwrap();
        let point: Vec<f64> = out.forecast.iter().map(|d| d.point).collect();
        let predicted = stockout::stockout_day(&point, stock);
        match predicted {
            Some(d) if d.abs_diff(truth) <= 3 => within += 1,
            other => misses.push(format!("product {p}: stock {stock}, truth day {truth}, predicted {other:?} ({})", out.chosen.name())),
        }
    }
    eprintln!("stock-outs: {within} of {runs_out} products that run out predicted within ±3 days (knowing the month's mean pace in hindsight: {hindsight})");
    assert!(runs_out >= 20, "only {runs_out} products run out in the unseen month: the check says little");
    assert!(within as f64 >= 0.7 * runs_out as f64, "{within} of {runs_out} stock-out dates within ±3 days\n{}", misses.join("\n"));
}
