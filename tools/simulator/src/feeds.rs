//! The two enrichment sources: a competitor price feed (cursor in the body, API-key header) and
//! a daily exchange-rate feed (offset/limit, bearer token). Both are derived from the seed and
//! the date, so they change daily and are reproducible.

use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};

use crate::data::{self, Currency, ProductRec};

pub const COMPETITORS: [&str; 3] = ["souk-market", "maroc-deals", "atlas-shop"];

/// Every (competitor, product) price observed on `day`, in MAD cents, for the products a
/// competitor carries (about 60% each). Prices move daily within ±15% of ours; some are cheaper.
pub fn competitor_prices(seed: u64, products: &[ProductRec], day: NaiveDate) -> Vec<Value> {
    let d = day.num_days_from_ce() as u64;
    let mut out = Vec::new();
    for p in products {
        for (ci, c) in COMPETITORS.iter().enumerate() {
            if data::unit(seed, p.id as u64, 0xC0C0 + ci as u64) >= 0.6 {
                continue;
            }
            let ours = p.sale_mad.unwrap_or(p.price_mad);
            // A per-pair bias plus a daily wobble.
            let bias = data::unit(seed, p.id as u64, 0xB1A5 + ci as u64) * 0.24 - 0.12;
            let wobble = data::unit(seed, p.id as u64 * 7 + ci as u64, d) * 0.06 - 0.03;
            let price = ((ours as f64) * (1.0 + bias + wobble)).round() as i64;
            out.push(json!({
                "competitor": c,
                "sku": format!("ALK-{:05}", p.id),
                "price": format!("{}.{:02}", price / 100, price % 100),
                "currency": "MAD",
                "observed_at": format!("{day}T09:00:00Z"),
            }));
        }
    }
    out
}

/// Currencies quoted by the exchange-rate feed, with a base MAD-per-unit rate.
const QUOTED: [(&str, f64); 12] =
    [("EUR", 0.0), ("USD", 0.0), ("GBP", 12.6), ("CHF", 11.3), ("CAD", 7.2), ("AED", 2.71), ("SAR", 2.65), ("CNY", 1.38), ("JPY", 0.066), ("TRY", 0.29), ("QAR", 2.73), ("EGP", 0.2)];

/// The rates for `day`: MAD per unit of each currency. EUR and USD match what orders use.
pub fn exchange_rates(seed: u64, day: NaiveDate) -> Vec<Value> {
    QUOTED
        .iter()
        .enumerate()
        .map(|(i, (code, base))| {
            let rate = match *code {
                "EUR" => data::mad_per_unit(seed, Currency::Eur, day),
                "USD" => data::mad_per_unit(seed, Currency::Usd, day),
                _ => {
                    let noise = data::unit(seed, day.num_days_from_ce() as u64, 0xFE00 + i as u64) - 0.5;
                    ((base * (1.0 + 0.01 * noise)) * 1_000_000.0).round() / 1_000_000.0
                }
            };
            json!({"date": day.to_string(), "currency": code, "mad_per_unit": rate})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_change_daily_and_some_undercut_us() {
        let g = data::generate(&data::Shape { seed: 3, products: 50, customers: 10, orders: 10, end: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(), days: 10 });
        let d1 = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        let a = competitor_prices(3, &g.products, d1);
        let b = competitor_prices(3, &g.products, d1.succ_opt().unwrap());
        assert_eq!(a.len(), b.len());
        assert!(a.len() > 50 && a.len() < 150, "{}", a.len());
        assert_ne!(a, b);
        assert_eq!(a, competitor_prices(3, &g.products, d1));
        let cheaper = a
            .iter()
            .filter(|r| {
                let sku: u32 = r["sku"].as_str().unwrap()[4..].parse().unwrap();
                let p = &g.products[sku as usize - 1];
                let theirs = (r["price"].as_str().unwrap().parse::<f64>().unwrap() * 100.0).round() as i64;
                theirs < p.sale_mad.unwrap_or(p.price_mad)
            })
            .count();
        assert!(cheaper > 0 && cheaper < a.len());
    }

    #[test]
    fn eur_rate_matches_order_conversion() {
        let day = NaiveDate::from_ymd_opt(2026, 5, 5).unwrap();
        let rates = exchange_rates(9, day);
        assert_eq!(rates[0]["mad_per_unit"].as_f64().unwrap(), data::mad_per_unit(9, Currency::Eur, day));
        assert_eq!(rates.len(), 12);
    }
}
