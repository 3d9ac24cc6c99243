//! Declarative alert rules: a TOML file (`config/alerts.toml` is shipped), typed, validated at
//! load with errors naming the file, the rule and the problem.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The shipped rules.
pub const SHIPPED: &str = include_str!("../../../config/alerts.toml");

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// Width of the store-wide buckets the windows are summed from (seconds, divides 60).
    #[serde(default = "default_bucket")]
    pub bucket_secs: i64,
    /// Products counted as top sellers (by units over the last hour) for stock rules.
    #[serde(default = "default_top_n")]
    pub top_sellers: usize,
    /// The rules (`[[rule]]` tables; see [`Rule`]).
    #[serde(rename = "rule", default, deserialize_with = "rules")]
    pub rules: Vec<Rule>,
}

/// `[[rule]]` tables: the common keys, then the kind's own keys, unknown keys refused. (serde's
/// `flatten` cannot be combined with `deny_unknown_fields`, hence the two steps.)
fn rules<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<Rule>, D::Error> {
    use serde::de::Error as _;
    let tables: Vec<toml::Table> = Vec::deserialize(d)?;
    let mut out = Vec::with_capacity(tables.len());
    for (i, mut t) in tables.into_iter().enumerate() {
        let mut take = |k: &str| t.remove(k).ok_or_else(|| D::Error::custom(format!("rule #{}: missing {k}", i + 1)));
        let name: String = take("name")?.try_into().map_err(|e| D::Error::custom(format!("rule #{}: name: {e}", i + 1)))?;
        let at = |e: toml::de::Error| D::Error::custom(format!("rule {name:?}: {}", e.message()));
        let severity: Severity = take("severity")?.try_into().map_err(at)?;
        let cooldown_secs: i64 = take("cooldown_secs")?.try_into().map_err(at)?;
        let kind: RuleKind = toml::Value::Table(t).try_into().map_err(at)?;
        out.push(Rule { name, severity, cooldown_secs, kind });
    }
    Ok(out)
}

fn default_bucket() -> i64 {
    5
}
fn default_top_n() -> usize {
    10
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique name; alerts and cooldowns are keyed by it.
    pub name: String,
    /// How bad its alerts are.
    pub severity: Severity,
    /// After an alert, the same rule and subject stay quiet this long (one incident, one alert).
    pub cooldown_secs: i64,
    /// What it watches (`kind = "..."` and its keys).
    pub kind: RuleKind,
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleKind {
    /// Revenue in `currency` over the last `window_secs` below `ratio_below` × the median of the
    /// same window over the preceding `baseline_secs`.
    RevenueDrop { currency: String, window_secs: i64, baseline_secs: i64, ratio_below: f64, min_baseline: f64 },
    /// New orders over the last `window_secs` above `ratio_above` × the baseline median.
    OrderSpike { window_secs: i64, baseline_secs: i64, ratio_above: f64, min_orders: u64 },
    /// A top seller's stock at or below `at_or_below` (0: stock-out).
    LowStock { at_or_below: i64 },
    /// A competitor's price more than `percent` under ours.
    CompetitorUndercut { percent: f64 },
    /// Failed payments / (failed + placed orders) over `window_secs` above `rate_above`.
    PaymentFailures { window_secs: i64, rate_above: f64, min_orders: u64 },
    /// One customer token placing at least `orders` orders within `window_secs`.
    SuspiciousBurst { window_secs: i64, orders: usize },
    /// An order of at least `total_at_least` in `currency` from a customer with no order in the
    /// last hour.
    LargeFirstOrder { currency: String, total_at_least: f64 },
}

impl RuleKind {
    /// The alert kind (snake case), as alerts and the alerts table name it.
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::RevenueDrop { .. } => "revenue_drop",
            RuleKind::OrderSpike { .. } => "order_spike",
            RuleKind::LowStock { .. } => "low_stock",
            RuleKind::CompetitorUndercut { .. } => "competitor_undercut",
            RuleKind::PaymentFailures { .. } => "payment_failures",
            RuleKind::SuspiciousBurst { .. } => "suspicious_burst",
            RuleKind::LargeFirstOrder { .. } => "large_first_order",
        }
    }
}

impl RulesFile {
    /// Parses and validates `text` (from `file`, for messages).
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        let f: RulesFile = toml::from_str(text).map_err(|e| Error::Config(format!("{file}: {e}")))?;
        f.validate().map_err(|e| Error::Config(format!("{file}: {e}")))?;
        Ok(f)
    }

    /// The file at `path`, or the shipped rules.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        match path {
            None => Self::parse("config/alerts.toml (shipped)", SHIPPED),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Error::Config(format!("{}: {e}", p.display())))?;
                Self::parse(&p.display().to_string(), &text)
            }
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if !(1..=60).contains(&self.bucket_secs) || 60 % self.bucket_secs != 0 {
            return Err(format!("bucket_secs = {}: must divide 60", self.bucket_secs));
        }
        let mut names = std::collections::HashSet::new();
        for r in &self.rules {
            let at = |m: String| format!("rule {:?}: {m}", r.name);
            if r.name.trim().is_empty() || !names.insert(r.name.as_str()) {
                return Err(format!("rule names must be unique and not empty ({:?})", r.name));
            }
            if r.cooldown_secs < 0 {
                return Err(at(format!("cooldown_secs = {} is negative", r.cooldown_secs)));
            }
            let window = |w: i64, b: i64| -> std::result::Result<(), String> {
                if w < self.bucket_secs || w % self.bucket_secs != 0 || w > 3600 {
                    return Err(at(format!("window_secs = {w}: a multiple of bucket_secs ({}) up to 3600", self.bucket_secs)));
                }
                if b < w || b % w != 0 || w + b > 3600 {
                    return Err(at(format!("baseline_secs = {b}: a multiple of window_secs ({w}), window + baseline at most 3600 (the state keeps an hour)")));
                }
                Ok(())
            };
            match &r.kind {
                RuleKind::RevenueDrop { currency, window_secs, baseline_secs, ratio_below, .. } => {
                    window(*window_secs, *baseline_secs)?;
                    if !(0.0..1.0).contains(ratio_below) {
                        return Err(at(format!("ratio_below = {ratio_below}: must be in [0, 1)")));
                    }
                    if currency.len() != 3 {
                        return Err(at(format!("currency = {currency:?}: an ISO 4217 code")));
                    }
                }
                RuleKind::OrderSpike { window_secs, baseline_secs, ratio_above, .. } => {
                    window(*window_secs, *baseline_secs)?;
                    if *ratio_above <= 1.0 {
                        return Err(at(format!("ratio_above = {ratio_above}: must be above 1")));
                    }
                }
                RuleKind::PaymentFailures { window_secs, rate_above, .. } => {
                    window(*window_secs, *window_secs)?;
                    if !(0.0..1.0).contains(rate_above) {
                        return Err(at(format!("rate_above = {rate_above}: must be in [0, 1)")));
                    }
                }
                RuleKind::CompetitorUndercut { percent } if !(0.0..100.0).contains(percent) => {
                    return Err(at(format!("percent = {percent}: must be in [0, 100)")));
                }
                RuleKind::SuspiciousBurst { window_secs, orders } if *window_secs <= 0 || *window_secs > 3600 || *orders < 2 => {
                    return Err(at("window_secs in 1..=3600 and orders ≥ 2".into()));
                }
                RuleKind::LowStock { at_or_below } if *at_or_below < 0 => return Err(at("at_or_below must be ≥ 0".into())),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_load() {
        let f = RulesFile::load(None).unwrap();
        let kinds: Vec<&str> = f.rules.iter().map(|r| r.kind.name()).collect();
        for k in ["revenue_drop", "order_spike", "low_stock", "competitor_undercut", "payment_failures", "suspicious_burst", "large_first_order"] {
            assert!(kinds.contains(&k), "{k} missing from the shipped rules");
        }
        // The test and benchmark rule files load too.
        let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
        for other in ["tests/fixtures/alerts-realtime.toml", "tools/bench/alerts-bench.toml"] {
            let f = RulesFile::load(Some(&root.join(other))).unwrap_or_else(|e| panic!("{other}: {e}"));
            assert_eq!(f.rules.len(), 7, "{other}");
        }
    }

    #[test]
    fn errors_name_the_file_the_rule_and_the_problem() {
        let bad = |text: &str| RulesFile::parse("alerts.toml", text).unwrap_err().to_string();
        let e = bad("[[rule]]\nname = \"x\"\nseverity = \"critical\"\ncooldown_secs = 60\nkind = \"order_spike\"\nwindow_secs = 7\nbaseline_secs = 70\nratio_above = 3.0\nmin_orders = 1\n");
        assert!(e.contains("alerts.toml") && e.contains("\"x\"") && e.contains("window_secs = 7"), "{e}");
        let e = bad("[[rule]]\nname = \"x\"\nseverity = \"loud\"\ncooldown_secs = 60\nkind = \"low_stock\"\nat_or_below = 3\n");
        assert!(e.contains("alerts.toml") && e.contains("loud"), "{e}");
        let e = bad("[[rule]]\nname = \"x\"\nseverity = \"info\"\ncooldown_secs = 60\nkind = \"low_stock\"\nat_or_below = 3\ncolour = 1\n");
        assert!(e.contains("colour"), "{e}");
        let e = bad("bucket_secs = 7\n");
        assert!(e.contains("bucket_secs = 7"), "{e}");
    }
}
