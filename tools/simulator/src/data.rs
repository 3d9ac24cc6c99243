//! Deterministic data generation: the same seed and sizes always give the same store.
//!
//! Everything is derived from `(seed, entity, salt)` through [`mix`], so a record can be
//! re-rendered at any time without being stored in full: one order is a ~40-byte
//! [`OrderRec`]; its line items, addresses and totals are recomputed on demand.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finaliser: a fast, well-distributed hash of a seed and two values. Hand-written
/// because it is six lines and every derivation here needs exactly this, not a hashing crate.
pub fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A reproducible RNG for one entity.
pub fn rng(seed: u64, a: u64, b: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(seed, a, b))
}

/// A uniform number in [0, 1) for one entity and purpose.
pub fn unit(seed: u64, a: u64, b: u64) -> f64 {
    (mix(seed, a, b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Currencies the store sells in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Currency {
    Mad,
    Eur,
    Usd,
}

impl Currency {
    pub const ALL: [Currency; 3] = [Currency::Mad, Currency::Eur, Currency::Usd];
    pub fn code(self) -> &'static str {
        match self {
            Currency::Mad => "MAD",
            Currency::Eur => "EUR",
            Currency::Usd => "USD",
        }
    }
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Currency::Eur,
            2 => Currency::Usd,
            _ => Currency::Mad,
        }
    }
    /// Flat shipping, in cents of this currency.
    pub fn shipping_cents(self) -> i64 {
        match self {
            Currency::Mad => 3000,
            Currency::Eur | Currency::Usd => 300,
        }
    }
}

/// Order statuses, as WooCommerce names them.
pub const STATUSES: [&str; 7] = ["pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed"];
pub const ST_PENDING: u8 = 0;
pub const ST_PROCESSING: u8 = 1;
pub const ST_ON_HOLD: u8 = 2;
pub const ST_COMPLETED: u8 = 3;
pub const ST_CANCELLED: u8 = 4;
pub const ST_REFUNDED: u8 = 5;
pub const ST_FAILED: u8 = 6;

pub const CATEGORIES: [&str; 12] =
    ["Argan & Beauty", "Ceramics", "Rugs & Textiles", "Leather Goods", "Lighting", "Tea & Spices", "Jewellery", "Clothing", "Home Decor", "Kitchen", "Books", "Electronics"];
const FIRST: [&str; 24] = [
    "Yasmine", "Omar", "Salma", "Youssef", "Imane", "Mehdi", "Khadija", "Hamza", "Nadia", "Karim", "Sara", "Amine", "Leila", "Adam", "Fatima", "Rachid", "Camille", "Lucas", "Emma", "Hugo", "Olivia",
    "James", "Sofia", "Noah",
];
const LAST: [&str; 24] = [
    "Alaoui",
    "Benali",
    "Bennani",
    "Chraibi",
    "El Amrani",
    "El Idrissi",
    "Fassi",
    "Haddad",
    "Kettani",
    "Lahlou",
    "Mansouri",
    "Naciri",
    "Ouazzani",
    "Rami",
    "Sebti",
    "Tazi",
    "Berrada",
    "Dupont",
    "Martin",
    "Bernard",
    "Smith",
    "Johnson",
    "Garcia",
    "Rossi",
];
const CITIES: [(&str, &str, &str); 10] = [
    ("Casablanca", "MA", "20000"),
    ("Rabat", "MA", "10000"),
    ("Marrakech", "MA", "40000"),
    ("Fes", "MA", "30000"),
    ("Tangier", "MA", "90000"),
    ("Agadir", "MA", "80000"),
    ("Paris", "FR", "75011"),
    ("Lyon", "FR", "69002"),
    ("New York", "US", "10001"),
    ("Madrid", "ES", "28001"),
];
const STREETS: [&str; 8] =
    ["Avenue Mohammed V", "Rue Ibn Battouta", "Boulevard Zerktouni", "Rue de la Liberte", "Avenue Hassan II", "Rue des Consuls", "Derb Sidi Bouloukat", "Rue Allal Ben Abdellah"];
const DOMAINS: [&str; 5] = ["gmail.com", "yahoo.fr", "outlook.com", "menara.ma", "hotmail.com"];
const ADJECTIVES: [&str; 12] = ["Handwoven", "Classic", "Berber", "Royal", "Atlas", "Saharan", "Fassi", "Vintage", "Organic", "Modern", "Riad", "Imperial"];

/// Sizes and dates of a generated store.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub seed: u64,
    pub products: u32,
    pub customers: u32,
    pub orders: u32,
    /// Last day of generated history (inclusive).
    pub end: NaiveDate,
    pub days: u32,
}

#[derive(Debug, Clone)]
pub struct ProductRec {
    pub id: u32,
    pub category: u8,
    /// Regular price in MAD cents.
    pub price_mad: i64,
    /// Sale price in MAD cents, if on sale.
    pub sale_mad: Option<i64>,
    pub stock: i32,
    pub created: i64,
    pub modified: i64,
}

impl ProductRec {
    /// What a customer pays now (MAD cents): the sale price when on sale.
    pub fn selling_price(&self) -> i64 {
        self.sale_mad.unwrap_or(self.price_mad)
    }
}

#[derive(Debug, Clone)]
pub struct CustomerRec {
    pub id: u32,
    pub created: i64,
    pub modified: i64,
}

#[derive(Debug, Clone)]
pub struct OrderRec {
    pub id: u32,
    /// 0 for guest checkouts.
    pub customer: u32,
    pub created: i64,
    pub modified: i64,
    pub status: u8,
    pub currency: u8,
    /// Line-item count (1..=5); the items themselves are derived from (seed, id).
    pub items: u8,
    /// Placed on a promotion day with a 10% coupon.
    pub coupon: bool,
}

impl OrderRec {
    pub fn currency(&self) -> Currency {
        Currency::from_u8(self.currency)
    }
}

#[derive(Debug, Clone)]
pub struct RefundRec {
    pub id: u32,
    pub order: u32,
    pub created: i64,
    /// Refunded amount in cents of the order currency.
    pub amount: i64,
    /// Full refund of the order (status refunded) or a partial one.
    pub full: bool,
}

/// Eid al-Fitr (the day after Ramadan ends) in Morocco, by year: Ramadan is the 29 days before.
const EID_AL_FITR: [(i32, u32, u32); 6] = [(2023, 4, 21), (2024, 4, 10), (2025, 3, 31), (2026, 3, 20), (2027, 3, 10), (2028, 2, 27)];
/// Eid al-Adha in Morocco, by year.
const EID_AL_ADHA: [(i32, u32, u32); 6] = [(2023, 6, 29), (2024, 6, 17), (2025, 6, 7), (2026, 5, 27), (2027, 5, 17), (2028, 5, 5)];

fn nearest(table: &[(i32, u32, u32)], day: NaiveDate) -> Option<i64> {
    table.iter().filter_map(|(y, m, d)| NaiveDate::from_ymd_opt(*y, *m, *d)).map(|e| (day - e).num_days()).min_by_key(|d| d.abs())
}

/// "White Friday", as Moroccan shops call Black Friday: the day after the fourth Thursday of
/// November.
pub fn white_friday(year: i32) -> NaiveDate {
    let first = NaiveDate::from_ymd_opt(year, 11, 1).unwrap_or_default();
    let to_thursday = (3 + 7 - first.weekday().num_days_from_monday() as i64) % 7;
    first + chrono::Duration::days(to_thursday + 21 + 1)
}

/// Calendar effect of a day on demand: White Friday week (Monday to Cyber Monday, peaking on
/// the Friday), Ramadan (quieter first weeks, busy last ten days before Eid), the two Eids
/// (shops quiet on the day, busy the week before Eid al-Adha).
pub fn holiday_effect(day: NaiveDate) -> f64 {
    let wf = (day - white_friday(day.year())).num_days();
    let white_friday = match wf {
        -4..=-1 => 1.1,
        0 => 2.0,
        1..=2 => 1.3,
        3 => 1.2,
        _ => 1.0,
    };
    let fitr = match nearest(&EID_AL_FITR, day) {
        Some(-29..=-11) => 0.9,
        Some(-10..=-1) => 1.35,
        Some(0..=1) => 0.6,
        _ => 1.0,
    };
    let adha = match nearest(&EID_AL_ADHA, day) {
        Some(-7..=-1) => 1.15,
        Some(0..=1) => 0.7,
        _ => 1.0,
    };
    white_friday * fitr * adha
}

/// Whether a day is a promotion day (roughly 1 in 12, plus White Friday week): orders that day
/// may carry a 10% coupon.
pub fn promo_day(seed: u64, day: NaiveDate) -> bool {
    let white_friday_week = (-4..=3).contains(&(day - white_friday(day.year())).num_days());
    white_friday_week || unit(seed, day.num_days_from_ce() as u64, 0x9707) < 0.08
}

/// Relative demand of a day: weekday, month, growth, holidays and promotions.
pub fn day_weight(seed: u64, day: NaiveDate) -> f64 {
    let weekday = [1.0, 0.95, 0.95, 1.0, 1.1, 1.35, 1.25][day.weekday().num_days_from_monday() as usize];
    let month = [0.85, 0.8, 0.9, 0.95, 1.0, 0.9, 1.1, 1.15, 0.95, 1.0, 1.1, 1.3][day.month0() as usize];
    // The shop grows about 30% a year.
    let growth = 1.0 + 0.3 * (day.num_days_from_ce() - 738_886) as f64 / 365.0;
    let promo = if promo_day(seed, day) { 1.8 } else { 1.0 };
    weekday * month * growth.max(0.2) * holiday_effect(day) * promo
}

/// Hour of day weights: quiet nights, busy evenings.
const HOURS: [f64; 24] = [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 1.0, 1.2, 1.3, 1.4, 1.5, 1.4, 1.3, 1.3, 1.4, 1.6, 1.9, 2.2, 2.3, 2.0, 1.4, 0.8];

fn pick_cdf(cdf: &[f64], u: f64) -> usize {
    let target = u * cdf.last().copied().unwrap_or(1.0);
    cdf.partition_point(|c| *c < target).min(cdf.len().saturating_sub(1))
}

fn cdf(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

/// Zipf-like product popularity (a long tail), shared by order generation and the live feed.
pub fn product_cdf(products: u32) -> Vec<f64> {
    cdf((0..products).map(|i| 1.0 / ((i + 1) as f64).powf(1.07)))
}

/// Derives the line items of an order: (product index, quantity). Popular products first in
/// the CDF, so a few sell a lot.
pub fn line_items(seed: u64, order: &OrderRec, product_cdf: &[f64]) -> Vec<(usize, i64)> {
    let mut r = rng(seed, order.id as u64, 0x11E5);
    let mut out: Vec<(usize, i64)> = Vec::with_capacity(order.items as usize);
    for _ in 0..order.items {
        let p = pick_cdf(product_cdf, r.random::<f64>());
        let qty = if r.random_bool(0.8) { 1 } else { r.random_range(2..=4) };
        match out.iter_mut().find(|(q, _)| *q == p) {
            Some(line) => line.1 += qty,
            None => out.push((p, qty)),
        }
    }
    out
}

fn ts(day: NaiveDate, secs: u32) -> i64 {
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default()).timestamp() + secs as i64
}

/// The generated store.
pub struct Generated {
    pub products: Vec<ProductRec>,
    pub customers: Vec<CustomerRec>,
    pub orders: Vec<OrderRec>,
    pub refunds: Vec<RefundRec>,
}

/// Generates a store of `shape`. Orders come out sorted by creation time with ids in that order.
pub fn generate(shape: &Shape) -> Generated {
    let seed = shape.seed;
    let start = shape.end - chrono::Duration::days(shape.days.saturating_sub(1) as i64);
    let first_ts = ts(start, 0);

    let products: Vec<ProductRec> = (1..=shape.products)
        .map(|id| {
            let mut r = rng(seed, id as u64, 0x9D0D);
            // Log-uniform prices from 20 to 5,000 MAD: many cheap items, a few expensive ones.
            let price = (20.0f64 * (250.0f64).powf(r.random::<f64>()) * 100.0).round() as i64 / 100 * 100 + 99;
            let sale = r.random_bool(0.15).then(|| price * r.random_range(70..=90) / 100);
            let created = first_ts - r.random_range(30..400) * 86_400;
            ProductRec {
                id,
                category: r.random_range(0..CATEGORIES.len() as u8),
                price_mad: price,
                sale_mad: sale,
                stock: r.random_range(0..500),
                created,
                modified: created + r.random_range(0..30) * 86_400,
            }
        })
        .collect();

    // Orders: a day by seasonal weight, an hour by the daily curve, then sorted by time.
    let days: Vec<NaiveDate> = (0..shape.days).map(|d| start + chrono::Duration::days(d as i64)).collect();
    let day_cdf = cdf(days.iter().map(|d| day_weight(seed, *d)));
    let hour_cdf = cdf(HOURS.iter().copied());
    let mut r = rng(seed, 0, 0x0DE5);
    let mut times: Vec<(i64, bool)> = (0..shape.orders)
        .map(|_| {
            let day = days[pick_cdf(&day_cdf, r.random::<f64>())];
            let hour = pick_cdf(&hour_cdf, r.random::<f64>()) as u32;
            (ts(day, hour * 3600 + r.random_range(0..3600)), promo_day(seed, day))
        })
        .collect();
    times.sort_unstable_by_key(|t| t.0);

    // Customers: returning customers are chosen with a skew, new ones join over time.
    let mut customer_first: Vec<i64> = vec![i64::MAX; shape.customers as usize];
    let mut joined: u32 = 0;
    let last_ts = ts(shape.end, 86_399);
    let orders: Vec<OrderRec> = times
        .iter()
        .enumerate()
        .map(|(i, (created, promo))| {
            let id = i as u32 + 1;
            let mut r = rng(seed, id as u64, 0x0E0E);
            let guest = r.random_bool(0.08);
            let customer = if guest || shape.customers == 0 {
                0
            } else if joined < shape.customers && (joined == 0 || r.random_bool(0.35)) {
                joined += 1;
                joined
            } else {
                // Returning: earlier customers, skewed to a loyal core.
                let u: f64 = r.random::<f64>();
                1 + ((u * u) * joined as f64) as u32 % joined.max(1)
            };
            if customer > 0 {
                let slot = &mut customer_first[customer as usize - 1];
                *slot = (*slot).min(*created);
            }
            let age_days = (last_ts - created) / 86_400;
            let u = r.random::<f64>();
            let status = if age_days < 2 && u < 0.6 {
                if u < 0.1 {
                    ST_PENDING
                } else if u < 0.5 {
                    ST_PROCESSING
                } else {
                    ST_ON_HOLD
                }
            } else if u < 0.82 {
                ST_COMPLETED
            } else if u < 0.88 {
                ST_CANCELLED
            } else if u < 0.92 {
                ST_REFUNDED
            } else if u < 0.96 {
                ST_FAILED
            } else {
                ST_PROCESSING
            };
            let c = r.random::<f64>();
            let currency = if c < 0.6 {
                0
            } else if c < 0.85 {
                1
            } else {
                2
            };
            let items = 1 + (r.random::<f64>().powi(2) * 5.0) as u8;
            let modified = match status {
                ST_COMPLETED | ST_REFUNDED | ST_CANCELLED => (created + r.random_range(3_600..5 * 86_400)).min(last_ts),
                _ => created + r.random_range(0..600),
            };
            OrderRec { id, customer, created: *created, modified, status, currency, items, coupon: *promo && r.random_bool(0.4) }
        })
        .collect();

    let customers: Vec<CustomerRec> = (1..=shape.customers)
        .map(|id| {
            let first = customer_first[id as usize - 1];
            let created = if first == i64::MAX { first_ts + (unit(seed, id as u64, 0xC0) * (last_ts - first_ts) as f64) as i64 } else { first - (unit(seed, id as u64, 0xC1) * 3600.0) as i64 };
            CustomerRec { id, created, modified: created }
        })
        .collect();

    let pcdf = product_cdf(shape.products);
    let mut refunds = Vec::new();
    for o in &orders {
        let partial = o.status == ST_COMPLETED && unit(seed, o.id as u64, 0xEF) < 0.03;
        if o.status == ST_REFUNDED || partial {
            let totals = order_totals(seed, o, |p| products[p].selling_price(), &pcdf);
            // A partial refund returns one unit of the order's first line (its total and tax per
            // unit); a full refund returns the whole order.
            let amount = match totals.lines.first() {
                Some((_, qty, _, _, total, tax)) if partial => total / (*qty).max(1) + tax / (*qty).max(1),
                _ => totals.total,
            };
            refunds.push(RefundRec { id: refunds.len() as u32 + 1, order: o.id, created: o.modified.max(o.created + 3_600).min(o.modified), amount, full: !partial });
        }
    }
    let mut g = Generated { products, customers, orders, refunds };
    stock_levels(seed, &mut g.products, &g.orders, &pcdf, last_ts);
    g
}

/// Whether an order's status counts as a sale (paid): processing, completed or refunded.
pub fn is_paid(status: u8) -> bool {
    matches!(status, ST_PROCESSING | ST_COMPLETED | ST_REFUNDED)
}

/// Sets each product's stock as of `as_of` from its recent demand, as a shop that reorders in
/// cycles would have it: each product is somewhere in a reorder cycle of 2 to 12 weeks, so its
/// stock covers a random part of that cycle at its pace of the last 28 days; 4% are out of
/// stock. Products that did not sell keep an arbitrary stock.
fn stock_levels(seed: u64, products: &mut [ProductRec], orders: &[OrderRec], pcdf: &[f64], as_of: i64) {
    let from = as_of - 28 * 86_400;
    let mut units = vec![0i64; products.len()];
    let lo = orders.partition_point(|o| o.created <= from);
    for o in orders[lo..].iter().take_while(|o| o.created <= as_of).filter(|o| is_paid(o.status)) {
        for (p, q) in line_items(seed, o, pcdf) {
            units[p] += q;
        }
    }
    for (p, u) in products.iter_mut().zip(units) {
        let id = p.id as u64;
        let rate = u as f64 / 28.0;
        p.stock = if unit(seed, id, 0x570C) < 0.04 {
            0
        } else if rate == 0.0 {
            (unit(seed, id, 0x570F) * 50.0) as i32
        } else {
            let cycle = 14.0 + 70.0 * unit(seed, id, 0x570D);
            ((rate * cycle * unit(seed, id, 0x570E)).round() as i32).max(1)
        };
    }
}

/// A store generated `future_days` past `shape.end`: `served` is the store as of the end of
/// `shape.end` (orders, refunds and customers created by then; stock as of then), `full` holds
/// the days after as well, the truth a forecast made at the end can be checked against. The
/// history has about `shape.orders` orders; the future days get orders at the same pace.
pub struct WithFuture {
    pub served: Generated,
    pub full: Generated,
}

pub fn generate_with_future(shape: &Shape, future_days: u32) -> WithFuture {
    let start = shape.end - chrono::Duration::days(shape.days.saturating_sub(1) as i64);
    let weight = |from: NaiveDate, n: u32| (0..n).map(|d| day_weight(shape.seed, from + chrono::Duration::days(d as i64))).sum::<f64>();
    let history = weight(start, shape.days);
    let all = weight(start, shape.days + future_days);
    let ext =
        Shape { end: shape.end + chrono::Duration::days(future_days as i64), days: shape.days + future_days, orders: (shape.orders as f64 * all / history.max(1e-9)).round() as u32, ..shape.clone() };
    let full = generate(&ext);
    let cut = ts(shape.end, 86_399);
    let orders: Vec<OrderRec> = full.orders.iter().take_while(|o| o.created <= cut).map(|o| OrderRec { modified: o.modified.min(cut), ..o.clone() }).collect();
    // Customer ids are given in the order of their first order: the served ones are a prefix.
    let known = orders.iter().map(|o| o.customer).max().unwrap_or(0) as usize;
    let customers: Vec<CustomerRec> = full.customers[..known.min(full.customers.len())].to_vec();
    let refunds: Vec<RefundRec> =
        full.refunds.iter().filter(|r| r.created <= cut && (r.order as usize) <= orders.len()).enumerate().map(|(i, r)| RefundRec { id: i as u32 + 1, ..r.clone() }).collect();
    let mut products = full.products.clone();
    stock_levels(shape.seed, &mut products, &full.orders, &product_cdf(shape.products), cut);
    WithFuture { served: Generated { products, customers, orders, refunds }, full }
}

/// An order's money, in cents of its currency. Always consistent: total = lines + shipping + tax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// (product index, qty, unit price, subtotal, total after discount, tax)
    pub lines: Vec<(usize, i64, i64, i64, i64, i64)>,
    pub discount: i64,
    pub shipping: i64,
    pub tax: i64,
    pub total: i64,
}

/// Exchange rate: how many MAD one unit of `c` costs on `day` (deterministic, smooth).
pub fn mad_per_unit(seed: u64, c: Currency, day: NaiveDate) -> f64 {
    let d = day.num_days_from_ce() as f64;
    let (base, phase) = match c {
        Currency::Mad => return 1.0,
        Currency::Eur => (10.85, 0.0),
        Currency::Usd => (9.95, 1.7),
    };
    let noise = unit(seed, day.num_days_from_ce() as u64, c as u64 + 0xF0) - 0.5;
    let rate = base * (1.0 + 0.02 * (d / 29.0 + phase).sin() + 0.004 * noise);
    (rate * 10_000.0).round() / 10_000.0
}

/// Computes an order's lines and totals.
/// `price(p)` is product `p`'s selling price (MAD cents) when the order was placed: an order's
/// amounts never change when a product's price changes later.
pub fn order_totals(seed: u64, o: &OrderRec, price: impl Fn(usize) -> i64, pcdf: &[f64]) -> Totals {
    let day = DateTime::from_timestamp(o.created, 0).unwrap_or_default().date_naive();
    let rate = mad_per_unit(seed, o.currency(), day);
    let mut lines = Vec::new();
    for (p, qty) in line_items(seed, o, pcdf) {
        let mad = price(p);
        let unit = if o.currency() == Currency::Mad { mad } else { (mad as f64 / rate).round() as i64 };
        let subtotal = unit * qty;
        let total = if o.coupon { subtotal - (subtotal + 5) / 10 } else { subtotal };
        let tax = (total * 20 + 50) / 100;
        lines.push((p, qty, unit, subtotal, total, tax));
    }
    let discount = lines.iter().map(|l| l.3 - l.4).sum();
    let tax = lines.iter().map(|l| l.5).sum();
    let shipping = o.currency().shipping_cents();
    let total = lines.iter().map(|l| l.4).sum::<i64>() + shipping + tax;
    Totals { lines, discount, shipping, tax, total }
}

/// A person's personal data, derived from their id (customers) or order id (guests).
#[derive(Debug, Clone)]
pub struct Person {
    pub first: &'static str,
    pub last: &'static str,
    pub email: String,
    pub phone: String,
    pub street: String,
    pub city: &'static str,
    pub country: &'static str,
    pub postcode: &'static str,
    pub ip: String,
}

pub fn person(seed: u64, key: u64) -> Person {
    let mut r = rng(seed, key, 0x9E25);
    let first = FIRST[r.random_range(0..FIRST.len())];
    let last = LAST[r.random_range(0..LAST.len())];
    let (city, country, postcode) = CITIES[r.random_range(0..CITIES.len())];
    let local = format!("{}.{}{}", first.to_lowercase(), last.to_lowercase().replace(' ', ""), key);
    Person {
        first,
        last,
        email: format!("{local}@{}", DOMAINS[r.random_range(0..DOMAINS.len())]),
        phone: format!("+2126{:08}", r.random_range(0..100_000_000u32)),
        street: format!("{} {}", r.random_range(1..200), STREETS[r.random_range(0..STREETS.len())]),
        city,
        country,
        postcode,
        ip: format!("196.{}.{}.{}", r.random_range(64..128), r.random_range(0..256), r.random_range(1..255)),
    }
}

/// A product's display name.
pub fn product_name(seed: u64, p: &ProductRec) -> String {
    let adj = ADJECTIVES[(mix(seed, p.id as u64, 0xAD) % ADJECTIVES.len() as u64) as usize];
    let cat = CATEGORIES[p.category as usize];
    let noun = cat.split(" & ").next().unwrap_or(cat).trim_end_matches('s');
    format!("{adj} {noun} #{}", p.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(seed: u64) -> Shape {
        Shape { seed, products: 200, customers: 500, orders: 5_000, end: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(), days: 365 }
    }

    #[test]
    fn same_seed_same_store_other_seed_other_store() {
        let a = generate(&shape(7));
        let b = generate(&shape(7));
        let c = generate(&shape(8));
        let key = |g: &Generated| g.orders.iter().map(|o| (o.created, o.customer, o.status, o.items)).collect::<Vec<_>>();
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        assert_eq!(person(7, 3).email, person(7, 3).email);
    }

    #[test]
    fn orders_are_sorted_and_totals_add_up() {
        let g = generate(&shape(1));
        assert!(g.orders.windows(2).all(|w| w[0].created <= w[1].created && w[0].id < w[1].id));
        let pcdf = product_cdf(200);
        for o in g.orders.iter().take(500) {
            let t = order_totals(1, o, |p| g.products[p].selling_price(), &pcdf);
            let lines: i64 = t.lines.iter().map(|l| l.4).sum();
            assert_eq!(t.total, lines + t.shipping + t.tax);
            assert!(t.lines.iter().all(|l| l.1 > 0 && l.3 >= l.4));
        }
    }

    #[test]
    fn shapes_are_realistic() {
        let g = generate(&shape(3));
        // Returning customers: fewer distinct customers than orders with a customer.
        let with_customer = g.orders.iter().filter(|o| o.customer > 0).count();
        let distinct: std::collections::HashSet<u32> = g.orders.iter().map(|o| o.customer).filter(|c| *c > 0).collect();
        assert!(distinct.len() * 2 < with_customer, "{} distinct for {with_customer}", distinct.len());
        // Long tail: the top 10% of products sell more than half of the units.
        let pcdf = product_cdf(200);
        let mut units = vec![0i64; 200];
        for o in &g.orders {
            for (p, q) in line_items(3, o, &pcdf) {
                units[p] += q;
            }
        }
        let total: i64 = units.iter().sum();
        let top: i64 = units.iter().take(20).sum();
        assert!(top * 2 > total, "top {top} of {total}");
        // Several currencies.
        for c in 0..3u8 {
            assert!(g.orders.iter().any(|o| o.currency == c));
        }
        // Weekends busier than mid-week.
        let by_weekday = |wd: u32| g.orders.iter().filter(|o| DateTime::from_timestamp(o.created, 0).unwrap().weekday().num_days_from_monday() == wd).count();
        assert!(by_weekday(5) > by_weekday(2));
    }
}
