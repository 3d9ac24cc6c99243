//! The daily sales series of a generated store, computed as the gold marts define them: what a
//! forecast is trained on and, past the served days of [`crate::data::generate_with_future`],
//! the truth it is checked against.

use chrono::{DateTime, NaiveDate};

use crate::data::{self, CATEGORIES, Generated};

/// Daily series from `start`, one value per day.
#[derive(Debug, Clone)]
pub struct DailySeries {
    pub start: NaiveDate,
    /// Paid orders' totals (incl. tax and shipping) in MAD: `gold/revenue_growth.revenue_mad`.
    pub revenue_mad: Vec<f64>,
    /// Units sold in paid orders, all products.
    pub units: Vec<f64>,
    /// Per category (index into [`CATEGORIES`]): line totals after discount, excl. tax, in MAD
    /// (`gold/daily_product_sales.revenue_mad` summed by category).
    pub category_revenue_mad: Vec<Vec<f64>>,
    /// Per category: units sold in paid orders.
    pub category_units: Vec<Vec<f64>>,
    /// Per product index: units sold in paid orders.
    pub product_units: Vec<Vec<f64>>,
}

/// The series of `g` over `days` days from `start` (orders outside are ignored).
pub fn daily_series(seed: u64, g: &Generated, start: NaiveDate, days: usize) -> DailySeries {
    let pcdf = data::product_cdf(g.products.len() as u32);
    let mut s = DailySeries {
        start,
        revenue_mad: vec![0.0; days],
        units: vec![0.0; days],
        category_revenue_mad: vec![vec![0.0; days]; CATEGORIES.len()],
        category_units: vec![vec![0.0; days]; CATEGORIES.len()],
        product_units: vec![vec![0.0; days]; g.products.len()],
    };
    for o in g.orders.iter().filter(|o| data::is_paid(o.status)) {
        let day = DateTime::from_timestamp(o.created, 0).unwrap_or_default().date_naive();
        let Ok(d) = usize::try_from((day - start).num_days()) else { continue };
        if d >= days {
            continue;
        }
        let rate = data::mad_per_unit(seed, o.currency(), day);
        let t = data::order_totals(seed, o, |p| g.products[p].selling_price(), &pcdf);
        s.revenue_mad[d] += t.total as f64 * rate / 100.0;
        for (p, qty, _, _, total, _) in t.lines {
            s.units[d] += qty as f64;
            s.product_units[p][d] += qty as f64;
            let c = g.products[p].category as usize;
            s.category_revenue_mad[c][d] += total as f64 * rate / 100.0;
            s.category_units[c][d] += qty as f64;
        }
    }
    s
}
