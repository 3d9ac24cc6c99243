//! The real-time state: rolling windows, latest stock and prices, recent orders per customer
//! token, alert cooldowns, the dedupe set of deliveries and the outbox references. Applying
//! events and evaluating rules is pure (no I/O), so it unit-tests without any store.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::event::StoreEvent;
use crate::rules::{Rule, RuleKind, RulesFile, Severity};

/// How much history the state keeps (seconds): the longest window plus its baseline.
pub const HISTORY_SECS: i64 = 3600;

/// Counts of one bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agg {
    /// Orders placed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub orders: u64,
    /// Units sold.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub units: u64,
    /// Revenue per currency.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revenue: BTreeMap<String, f64>,
    /// Payments that failed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Agg {
    fn add(&mut self, o: &Agg) {
        self.orders += o.orders;
        self.units += o.units;
        self.failed += o.failed;
        for (c, v) in &o.revenue {
            *self.revenue.entry(c.clone()).or_default() += v;
        }
    }
}

/// What the state knows of one product.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Its name, from the latest product event or order line naming it (the live page shows
    /// it; a product name is not personal data and travels in clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Our current price (MAD), from product events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<i64>,
    /// Sales per minute (minute start, unix seconds).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub minutes: BTreeMap<i64, Agg>,
}

/// An outbox object not yet written to the lake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRef {
    pub generation: u64,
    pub object: String,
    /// When it was committed (unix ms).
    pub created_ms: i64,
    /// Events it holds (the flush threshold counts them).
    #[serde(default)]
    pub events: usize,
    /// Its alerts are on the topic (published by the instance that committed it).
    #[serde(default)]
    pub alerts_published: bool,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// `<rule>:<subject>:<event time>`: stable across retries.
    pub alert_id: String,
    pub rule: String,
    pub kind: String,
    pub severity: Severity,
    /// What it is about: a product id, a customer token, `store`.
    pub subject: String,
    /// Event time (unix seconds) of the evidence.
    pub at: i64,
    /// The delivery that tipped it, if one did.
    pub trigger_delivery: Option<String>,
    /// The figures behind it.
    pub evidence: Value,
}

/// The whole state (one JSON object under conditional writes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Bumped by every committed change.
    pub generation: u64,
    /// Latest event time seen (unix seconds).
    pub now: i64,
    /// First event time seen: baselines need history.
    pub since: Option<i64>,
    /// Store-wide buckets (start, unix seconds).
    pub buckets: BTreeMap<i64, Agg>,
    pub products: BTreeMap<u64, Product>,
    /// Recent order times per customer token.
    pub customers: BTreeMap<String, Vec<i64>>,
    /// `<rule>:<subject>` → quiet until (event time).
    pub cooldowns: BTreeMap<String, i64>,
    /// Deliveries applied, per minute of acceptance (base64 of the sorted ids, 8 bytes each,
    /// little-endian): a payload seen anywhere in the history is a replay, whatever minute it
    /// comes back in. This is the webhook's replay protection (issue 20: the webhook no longer
    /// writes a claim per delivery).
    #[serde(default)]
    pub delivered: BTreeMap<i64, String>,
    /// Outbox objects committed but not yet in the lake.
    pub pending: Vec<PendingRef>,
    /// The last alerts (live view).
    pub recent_alerts: Vec<Alert>,
    /// Newest record version applied per `<resource>:<key>`, with its event time, for the
    /// history: a delivery of an older version (a replay, a late retry) changes nothing.
    #[serde(default)]
    pub versions: BTreeMap<String, (String, i64)>,
}

// A sorted list of ids, by hand: the ids are the first 8 bytes of a SHA-256, spread over the
// whole u64 range, where a roaring treemap (used before) keeps one bitmap per id; 8 bytes per id
// and a binary search is smaller and as fast for an hour of deliveries.
fn decode_ids(s: &str) -> Vec<u64> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap_or_default();
    bytes.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()
}

fn encode_ids(ids: &[u64]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn money(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// A product's name as an event gives it (trimmed; an empty or missing one keeps the last).
fn set_name(p: &mut Product, name: Option<&Value>) {
    if let Some(n) = name.and_then(Value::as_str).map(str::trim).filter(|n| !n.is_empty())
        && p.name.as_deref() != Some(n)
    {
        p.name = Some(n.to_string());
    }
}

fn minute(t: i64) -> i64 {
    t - t.rem_euclid(60)
}

/// What applying a batch did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Events applied (not seen before).
    pub accepted: Vec<StoreEvent>,
    /// Deliveries skipped as already applied.
    pub duplicates: usize,
    /// Accepted deliveries of a record older than the state holds (an older version than the
    /// one applied, or older than the history on arrival): kept for the events table, counted
    /// in no window (see [`State::apply`]).
    pub outdated: usize,
    /// Alerts raised.
    pub alerts: Vec<Alert>,
}

impl State {
    /// Applies `events` (skipping deliveries already applied), then evaluates the window rules.
    pub fn apply(&mut self, events: &[StoreEvent], rules: &RulesFile) -> Applied {
        let mut out = Applied::default();
        // Every minute of the history: a replay is caught whenever it comes back.
        let mut delivered: BTreeMap<i64, Vec<u64>> = self.delivered.iter().map(|(m, s)| (*m, decode_ids(s))).collect();
        let mut added: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
        let mut batch_ids = HashSet::new();
        for e in events {
            let id = e.dedupe_id();
            if delivered.values().any(|ids| ids.binary_search(&id).is_ok()) || !batch_ids.insert(id) {
                out.duplicates += 1;
                continue;
            }
            // Accepted before the history began: outside every window and beyond the dedupe
            // set. A record older than what the state holds counts in no window either: a
            // version older than the one applied (a late delivery, a replayed capture; strictly
            // older only: WooCommerce's modification time has a one-second resolution, and two
            // saves in one second are two real changes, the same payload twice being caught
            // above by its id), or older than the history when it arrives (a WooCommerce-signed
            // capture replayed after the dedupe set forgot it: such a signature carries no
            // time; or a delivery held back that long). All of them still go to the events
            // table: they happened, and a reader orders a record's events by version. (A capture
            // replayed after the hour is then in the table twice under one payload id: readers
            // count distinct `delivery_id`s.)
            let late = self.since.is_some() && e.at() < self.now - HISTORY_SECS;
            let slot = e.version_slot();
            let superseded = matches!((&slot, &e.version), (Some(slot), Some(v)) if self.versions.get(slot).is_some_and(|(held, _)| v < held));
            let outdated = superseded || e.record_time().is_some_and(|t| t < e.at() - HISTORY_SECS);
            if outdated {
                out.outdated += 1;
            }
            if !late {
                added.entry(minute(e.at())).or_default().push(id);
            }
            if !late && !outdated {
                if let (Some(slot), Some(v)) = (slot, &e.version) {
                    self.versions.insert(slot, (v.clone(), e.at()));
                }
                // An invalid payload is deduped like any other but counts in no window.
                if e.invalid.is_empty() {
                    self.observe(e, rules, &mut out.alerts);
                }
            }
            out.accepted.push(e.clone());
        }
        for (m, new) in added {
            let ids = delivered.entry(m).or_default();
            ids.extend(new);
            ids.sort_unstable();
            self.delivered.insert(m, encode_ids(ids));
        }
        if !out.accepted.is_empty() {
            self.evaluate_windows(rules, &mut out.alerts);
            self.prune();
        }
        self.recent_alerts.extend(out.alerts.iter().cloned());
        let keep = self.recent_alerts.len().saturating_sub(20);
        self.recent_alerts.drain(..keep);
        out
    }

    fn raise(&mut self, rule: &Rule, subject: &str, at: i64, trigger: Option<&str>, evidence: Value, alerts: &mut Vec<Alert>) {
        let key = format!("{}:{subject}", rule.name);
        if self.cooldowns.get(&key).is_some_and(|until| at < *until) {
            return;
        }
        self.cooldowns.insert(key, at + rule.cooldown_secs);
        alerts.push(Alert {
            alert_id: format!("{}:{subject}:{at}", rule.name),
            rule: rule.name.clone(),
            kind: rule.kind.name().into(),
            severity: rule.severity,
            subject: subject.into(),
            at,
            trigger_delivery: trigger.map(str::to_string),
            evidence,
        });
    }

    fn observe(&mut self, e: &StoreEvent, rules: &RulesFile, alerts: &mut Vec<Alert>) {
        let t = e.at();
        self.now = self.now.max(t);
        self.since = Some(self.since.map_or(t, |s| s.min(t)));
        let bucket = t - t.rem_euclid(rules.bucket_secs);
        let r = &e.record;
        match e.topic.as_str() {
            "order.created" => {
                let currency = r.get("currency").and_then(Value::as_str).unwrap_or("XXX").to_string();
                let total = money(r.get("total")).unwrap_or(0.0);
                let mut agg = Agg { orders: 1, ..Default::default() };
                agg.revenue.insert(currency.clone(), total);
                for line in r.get("line_items").and_then(Value::as_array).into_iter().flatten() {
                    let Some(pid) = line.get("product_id").and_then(Value::as_u64) else { continue };
                    let qty = line.get("quantity").and_then(Value::as_u64).unwrap_or(0);
                    agg.units += qty;
                    let mut pa = Agg { orders: 1, units: qty, ..Default::default() };
                    pa.revenue.insert(currency.clone(), money(line.get("total")).unwrap_or(0.0));
                    let p = self.products.entry(pid).or_default();
                    p.minutes.entry(minute(t)).or_default().add(&pa);
                    set_name(p, line.get("name"));
                    // The selling price (MAD, the store's currency) as of this order, until a
                    // product event says otherwise.
                    if currency == "MAD"
                        && let Some(price) = money(line.get("price"))
                    {
                        p.price = Some(price);
                    }
                }
                self.buckets.entry(bucket).or_default().add(&agg);
                if let Some(token) = e.tokens.get("email_token").cloned().flatten() {
                    let first = !self.customers.contains_key(&token);
                    let times = self.customers.entry(token.clone()).or_default();
                    times.push(t);
                    let n = times.len();
                    for rule in &rules.rules {
                        match &rule.kind {
                            RuleKind::SuspiciousBurst { window_secs, orders } => {
                                let recent = self.customers.get(&token).map(|v| v.iter().filter(|x| **x > t - window_secs).count()).unwrap_or(n);
                                if recent >= *orders {
                                    self.raise(rule, &token, t, Some(&e.delivery_id), json!({"orders": recent, "window_secs": window_secs}), alerts);
                                }
                            }
                            RuleKind::LargeFirstOrder { currency: c, total_at_least } if first && *c == currency && total >= *total_at_least => {
                                self.raise(rule, &token, t, Some(&e.delivery_id), json!({"total": total, "currency": c, "order_id": r.get("id")}), alerts);
                            }
                            _ => {}
                        }
                    }
                }
            }
            "order.updated" if r.get("status").and_then(Value::as_str) == Some("failed") => {
                self.buckets.entry(bucket).or_default().failed += 1;
            }
            "product.updated" | "product.created" => {
                let Some(pid) = r.get("id").and_then(Value::as_u64) else { return };
                let p = self.products.entry(pid).or_default();
                if let Some(s) = r.get("stock_quantity").and_then(Value::as_i64) {
                    p.stock = Some(s);
                }
                if let Some(price) = money(r.get("price")) {
                    p.price = Some(price);
                }
                if let Some(c) = r.pointer("/categories/0/name").and_then(Value::as_str) {
                    p.category = Some(c.to_string());
                }
                set_name(p, r.get("name"));
                let stock = p.stock;
                let top = self.top_sellers(rules.top_sellers);
                for rule in &rules.rules {
                    if let (RuleKind::LowStock { at_or_below }, Some(stock)) = (&rule.kind, stock)
                        && stock <= *at_or_below
                        && top.iter().any(|(id, _)| *id == pid)
                    {
                        let rank = top.iter().position(|(id, _)| *id == pid).map(|i| i + 1);
                        let what = if stock == 0 { "stock_out" } else { "low_stock" };
                        self.raise(rule, &pid.to_string(), t, Some(&e.delivery_id), json!({"product_id": pid, "stock": stock, "state": what, "seller_rank_1h": rank}), alerts);
                    }
                }
            }
            "competitor.price_changed" => {
                let (Some(pid), Some(theirs)) = (r.get("product_id").and_then(Value::as_u64), money(r.get("price"))) else { return };
                let Some(ours) = self.products.get(&pid).and_then(|p| p.price) else { return };
                for rule in &rules.rules {
                    if let RuleKind::CompetitorUndercut { percent } = rule.kind {
                        let under = (ours - theirs) / ours * 100.0;
                        if ours > 0.0 && under > percent {
                            let competitor = r.get("competitor").cloned().unwrap_or(Value::Null);
                            self.raise(
                                rule,
                                &pid.to_string(),
                                t,
                                Some(&e.delivery_id),
                                json!({"product_id": pid, "our_price": ours, "their_price": theirs, "competitor": competitor, "percent_under": (under * 10.0).round() / 10.0}),
                                alerts,
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Sum of the store-wide buckets in `(end - width, end]`.
    pub fn window(&self, end: i64, width: i64) -> Agg {
        let mut a = Agg::default();
        for (_, b) in self.buckets.range(end - width + 1..=end) {
            a.add(b);
        }
        a
    }

    /// The best sellers of the last hour by units: (product id, units).
    pub fn top_sellers(&self, n: usize) -> Vec<(u64, u64)> {
        let from = minute(self.now) - HISTORY_SECS + 60;
        let mut v: Vec<(u64, u64)> = self.products.iter().map(|(id, p)| (*id, p.minutes.range(from..).map(|(_, a)| a.units).sum())).filter(|(_, u)| *u > 0).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// The median of `f` over the `baseline / width` windows before the current one; `None`
    /// until the state has that much history.
    fn baseline(&self, width: i64, baseline: i64, f: impl Fn(&Agg) -> f64) -> Option<f64> {
        let end = self.now;
        if self.since.is_none_or(|s| s > end - width - baseline) {
            return None;
        }
        let mut v: Vec<f64> = (1..=baseline / width).map(|i| f(&self.window(end - i * width, width))).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        (n > 0).then(|| if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
    }

    fn evaluate_windows(&mut self, rules: &RulesFile, alerts: &mut Vec<Alert>) {
        let t = self.now;
        for rule in &rules.rules {
            match &rule.kind {
                RuleKind::RevenueDrop { currency, window_secs, baseline_secs, ratio_below, min_baseline } => {
                    let rev = |a: &Agg| a.revenue.get(currency).copied().unwrap_or(0.0);
                    let Some(base) = self.baseline(*window_secs, *baseline_secs, rev) else { continue };
                    let now = rev(&self.window(t, *window_secs));
                    if base >= *min_baseline && now < ratio_below * base {
                        self.raise(rule, "store", t, None, json!({"currency": currency, "window_secs": window_secs, "revenue": now, "baseline_median": base, "ratio": now / base}), alerts);
                    }
                }
                RuleKind::OrderSpike { window_secs, baseline_secs, ratio_above, min_orders } => {
                    let Some(base) = self.baseline(*window_secs, *baseline_secs, |a| a.orders as f64) else { continue };
                    let now = self.window(t, *window_secs).orders;
                    if now >= *min_orders && now as f64 > ratio_above * base.max(1.0) {
                        self.raise(rule, "store", t, None, json!({"window_secs": window_secs, "orders": now, "baseline_median": base}), alerts);
                    }
                }
                RuleKind::PaymentFailures { window_secs, rate_above, min_orders } => {
                    let w = self.window(t, *window_secs);
                    let attempts = w.orders + w.failed;
                    if attempts >= *min_orders && w.failed as f64 / attempts as f64 > *rate_above {
                        self.raise(rule, "store", t, None, json!({"window_secs": window_secs, "failed": w.failed, "attempts": attempts, "rate": w.failed as f64 / attempts as f64}), alerts);
                    }
                }
                _ => {}
            }
        }
    }

    fn prune(&mut self) {
        let from = self.now - HISTORY_SECS;
        self.buckets.retain(|b, _| *b > from);
        self.delivered.retain(|m, _| *m > from - 60);
        for p in self.products.values_mut() {
            p.minutes.retain(|m, _| *m > from - 60);
        }
        self.customers.retain(|_, times| {
            times.retain(|t| *t > from);
            !times.is_empty()
        });
        let now = self.now;
        self.cooldowns.retain(|_, until| *until > now);
        self.versions.retain(|_, (_, at)| *at > from);
    }

    /// The live view: rolling 1-minute, 5-minute and 1-hour figures, best sellers with their
    /// stock, categories, low stock and the last alerts.
    pub fn live_view(&self, rules: &RulesFile, updated_ms: i64) -> Value {
        let windows: serde_json::Map<String, Value> =
            [("1m", 60), ("5m", 300), ("1h", 3600)].into_iter().map(|(name, w)| (name.to_string(), serde_json::to_value(self.window(self.now, w)).unwrap_or(Value::Null))).collect();
        let from = minute(self.now) - HISTORY_SECS + 60;
        let mut categories: BTreeMap<String, Agg> = BTreeMap::new();
        for p in self.products.values() {
            let c = p.category.clone().unwrap_or_else(|| "(unknown)".into());
            for (_, a) in p.minutes.range(from..) {
                categories.entry(c.clone()).or_default().add(a);
            }
        }
        let top: Vec<Value> = self
            .top_sellers(20)
            .into_iter()
            .filter_map(|(id, units)| {
                let p = self.products.get(&id)?;
                Some(json!({"product_id": id, "name": p.name, "units_1h": units, "stock": p.stock, "price": p.price, "category": p.category}))
            })
            .collect();
        let low_stock: Vec<Value> = self.products.iter().filter(|(_, p)| p.stock.is_some_and(|s| s <= 5)).map(|(id, p)| json!({"product_id": id, "name": p.name, "stock": p.stock})).collect();
        json!({
            "updated_ms": updated_ms,
            "event_time": self.now,
            "generation": self.generation,
            "bucket_secs": rules.bucket_secs,
            "windows": windows,
            "categories_1h": categories,
            "top_products_1h": top,
            "low_stock": low_stock,
            "recent_alerts": self.recent_alerts,
        })
    }
}
