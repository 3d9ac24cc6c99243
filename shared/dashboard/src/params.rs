//! What a page asks for: a period, optional currency, category and product, and a time grain.
//! Every value is checked here and reaches SQL only as a typed, bound parameter (the grain, the
//! one thing that shapes the SQL text, is an enum).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use deltalake::datafusion::scalar::ScalarValue;

use crate::{Error, Result};

/// The longest period one request may cover.
const MAX_DAYS: i64 = 3 * 366;

/// Time grain of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Day,
    Week,
    Month,
}

impl Grain {
    /// The `date_trunc` unit.
    pub fn unit(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
        }
    }
}

/// The filters of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Filters {
    /// First day, inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// Order currency (ISO 4217), all when `None`.
    pub currency: Option<String>,
    /// Category name, all when `None`.
    pub category: Option<String>,
    /// One product (competitor prices over time).
    pub product: Option<i64>,
    /// Grain of the series.
    pub grain: Grain,
}

impl Filters {
    /// Parses the query string's parameters; `today` is the default last day (the last 90 days
    /// when no period is given).
    pub fn parse(q: &BTreeMap<String, String>, today: NaiveDate) -> Result<Self> {
        let date = |name: &str| -> Result<Option<NaiveDate>> {
            match q.get(name).map(String::as_str).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").map(Some).map_err(|_| Error::bad(name, format!("{s:?} is not a date (YYYY-MM-DD)"))),
            }
        };
        let to = date("to")?.unwrap_or(today);
        let from = date("from")?.unwrap_or(to - chrono::Duration::days(89));
        if from > to {
            return Err(Error::bad("from", format!("{from} is after to ({to})")));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(Error::bad("from", format!("the period {from}..{to} is longer than {MAX_DAYS} days")));
        }
        let currency = match q.get("currency").map(String::as_str).filter(|s| !s.is_empty()) {
            None => None,
            Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => Some(c.to_string()),
            Some(c) => return Err(Error::bad("currency", format!("{c:?} is not a three-letter currency code"))),
        };
        let category = match q.get("category").map(String::as_str).filter(|s| !s.is_empty()) {
            None => None,
            Some(c) if c.chars().count() <= 200 && !c.chars().any(char::is_control) => Some(c.to_string()),
            Some(_) => return Err(Error::bad("category", "longer than 200 characters or has control characters")),
        };
        let product = match q.get("product").map(String::as_str).filter(|s| !s.is_empty()) {
            None => None,
            Some(p) => Some(p.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| Error::bad("product", format!("{p:?} is not a product id")))?),
        };
        let grain = match q.get("grain").map(String::as_str).unwrap_or("day") {
            "day" | "" => Grain::Day,
            "week" => Grain::Week,
            "month" => Grain::Month,
            g => return Err(Error::bad("grain", format!("{g:?} is not day, week or month"))),
        };
        Ok(Self { from, to, currency, category, product, grain })
    }

    /// The period of the same length just before this one (growth against it).
    pub fn previous(&self) -> (NaiveDate, NaiveDate) {
        let len = (self.to - self.from).num_days() + 1;
        (self.from - chrono::Duration::days(len), self.from - chrono::Duration::days(1))
    }

    /// The bound parameters every query may use: `$from`, `$to`, `$prev_from`, `$prev_to`
    /// (dates), `$currency` and `$category` (empty for all), `$product` (0 for none).
    pub fn values(&self) -> Vec<(&'static str, ScalarValue)> {
        let day = |d: NaiveDate| ScalarValue::Date32(Some(d.signed_duration_since(NaiveDate::default()).num_days() as i32));
        let (pf, pt) = self.previous();
        vec![
            ("from", day(self.from)),
            ("to", day(self.to)),
            ("prev_from", day(pf)),
            ("prev_to", day(pt)),
            ("currency", ScalarValue::Utf8(Some(self.currency.clone().unwrap_or_default()))),
            ("category", ScalarValue::Utf8(Some(self.category.clone().unwrap_or_default()))),
            ("product", ScalarValue::Int64(Some(self.product.unwrap_or(0)))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 31).unwrap()
    }

    #[test]
    fn defaults_are_the_last_90_days_by_day() {
        let f = Filters::parse(&q(&[]), today()).unwrap();
        assert_eq!((f.from, f.to, f.grain), (NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(), today(), Grain::Day));
        assert_eq!(f.previous(), (NaiveDate::from_ymd_opt(2025, 10, 3).unwrap(), NaiveDate::from_ymd_opt(2025, 12, 31).unwrap()));
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (pairs, param) in [
            (vec![("from", "2026-13-01")], "from"),
            (vec![("from", "2026-03-02"), ("to", "2026-03-01")], "from"),
            (vec![("from", "2020-01-01"), ("to", "2026-01-01")], "from"),
            (vec![("currency", "mad")], "currency"),
            (vec![("currency", "MAD' OR 1=1 --")], "currency"),
            (vec![("product", "-3")], "product"),
            (vec![("grain", "year")], "grain"),
            (vec![("category", "a\u{0}b")], "category"),
        ] {
            match Filters::parse(&q(&pairs), today()) {
                Err(Error::BadParam { param: p, .. }) => assert_eq!(p, param, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_category_with_quotes_is_a_value_not_sql() {
        let f = Filters::parse(&q(&[("category", "Men's shoes'; DROP TABLE x")]), today()).unwrap();
        assert_eq!(f.category.as_deref(), Some("Men's shoes'; DROP TABLE x"));
    }
}
