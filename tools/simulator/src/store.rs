//! The live store: generated history, indexes, mutations while clients read, rendering in the
//! WooCommerce REST API v3 shape, injected invalid records, and the ground truth.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate};
use rand::Rng;
use serde_json::{Value, json};

use crate::data::{self, Currency, CustomerRec, OrderRec, ProductRec, RefundRec, STATUSES, Shape, Totals};
use crate::index::ModIndex;
use crate::order_json::{Address, CouponLine, LineItem, Money, Number, OrderJson, OrderKey, RefundRef, ShippingLine, Sku, Stamp, TaxLine, TransactionId};

/// The resources the API lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Products,
    Customers,
    Orders,
    Refunds,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Products => "products",
            Resource::Customers => "customers",
            Resource::Orders => "orders",
            Resource::Refunds => "refunds",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "products" => Resource::Products,
            "customers" => Resource::Customers,
            "orders" => Resource::Orders,
            "refunds" => Resource::Refunds,
            _ => return None,
        })
    }
}

/// Ways a record is made schema-invalid (the ingestion must quarantine each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    MissingId,
    NegativeQuantity,
    BadEmail,
    UnknownCurrency,
    TotalsMismatch,
}

impl Invalid {
    pub fn reason(self) -> &'static str {
        match self {
            Invalid::MissingId => "missing_id",
            Invalid::NegativeQuantity => "negative_quantity",
            Invalid::BadEmail => "bad_email",
            Invalid::UnknownCurrency => "unknown_currency",
            Invalid::TotalsMismatch => "totals_mismatch",
        }
    }
}

/// Sort key of a list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBy {
    Id,
    Date,
    Modified,
    /// Customers only: the display name ("first last"), as WP_User_Query's `display_name`.
    Name,
}

/// A list request, already validated.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub page: usize,
    pub per_page: usize,
    pub orderby: OrderBy,
    pub desc: bool,
    pub after: Option<i64>,
    pub before: Option<i64>,
    pub modified_after: Option<i64>,
    pub modified_before: Option<i64>,
    pub status: Option<Vec<u8>>,
}

/// A change made by the live store, for webhooks.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// WooCommerce webhook topic, e.g. `order.created`.
    pub topic: &'static str,
    pub id: u32,
}

pub struct Store {
    pub shape: Shape,
    pub invalid_rate: f64,
    pcdf: Vec<f64>,
    pub products: Vec<ProductRec>,
    pub customers: Vec<CustomerRec>,
    pub orders: Vec<OrderRec>,
    pub refunds: Vec<RefundRec>,
    refunds_by_order: HashMap<u32, Vec<u32>>,
    /// Per product index, its earlier selling prices: (changed at, price before the change), in
    /// time order. Orders placed before a change keep the price they were placed at.
    price_history: HashMap<usize, Vec<(i64, i64)>>,
    idx: HashMap<Resource, ModIndex>,
    /// The store's clock (epoch seconds): never goes back; every change is stamped with it.
    pub clock: i64,
    mutations: u64,
}

fn gmt(t: i64) -> String {
    Stamp::gmt(t).to_string()
}
/// The store's local time (Africa/Casablanca, UTC+1).
fn local(t: i64) -> String {
    Stamp::local(t).to_string()
}
fn money(cents: i64) -> String {
    Money(cents).to_string()
}

impl Store {
    pub fn new(shape: Shape, invalid_rate: f64) -> Self {
        let g = data::generate(&shape);
        let mut refunds_by_order: HashMap<u32, Vec<u32>> = HashMap::new();
        for r in &g.refunds {
            refunds_by_order.entry(r.order).or_default().push(r.id);
        }
        let mut idx = HashMap::new();
        idx.insert(Resource::Products, ModIndex::new(g.products.iter().map(|p| (p.modified, p.id)).collect()));
        idx.insert(Resource::Customers, ModIndex::new(g.customers.iter().map(|c| (c.modified, c.id)).collect()));
        idx.insert(Resource::Orders, ModIndex::new(g.orders.iter().map(|o| (o.modified, o.id)).collect()));
        idx.insert(Resource::Refunds, ModIndex::new(g.refunds.iter().map(|r| (r.created, r.id)).collect()));
        let clock = idx.values().map(ModIndex::max_time).max().unwrap_or(0);
        Store {
            pcdf: data::product_cdf(shape.products),
            shape,
            invalid_rate,
            products: g.products,
            customers: g.customers,
            orders: g.orders,
            refunds: g.refunds,
            refunds_by_order,
            price_history: HashMap::new(),
            idx,
            clock,
            mutations: 0,
        }
    }

    pub fn len(&self, r: Resource) -> usize {
        match r {
            Resource::Products => self.products.len(),
            Resource::Customers => self.customers.len(),
            Resource::Orders => self.orders.len(),
            Resource::Refunds => self.refunds.len(),
        }
    }

    fn times(&self, r: Resource, id: u32) -> (i64, i64) {
        let i = id as usize - 1;
        match r {
            Resource::Products => (self.products[i].created, self.products[i].modified),
            Resource::Customers => (self.customers[i].created, self.customers[i].modified),
            Resource::Orders => (self.orders[i].created, self.orders[i].modified),
            Resource::Refunds => (self.refunds[i].created, self.refunds[i].created),
        }
    }

    /// The ids on one page, and the total matching count.
    pub fn list(&self, r: Resource, q: &ListQuery) -> (usize, Vec<u32>) {
        let offset = (q.page - 1) * q.per_page;
        let created_filter = q.after.is_some() || q.before.is_some();
        let modified_filter = q.modified_after.is_some() || q.modified_before.is_some();
        if q.orderby == OrderBy::Modified && !created_filter && q.status.is_none() {
            return self.idx[&r].page(q.modified_after, q.modified_before, q.desc, offset, q.per_page);
        }
        if r == Resource::Orders && q.orderby != OrderBy::Modified && !modified_filter && q.status.is_none() {
            // Orders are stored in creation order with ids in that order.
            let lo = q.after.map(|a| self.orders.partition_point(|o| o.created <= a)).unwrap_or(0);
            let hi = q.before.map(|b| self.orders.partition_point(|o| o.created < b)).unwrap_or(self.orders.len());
            let total = hi.saturating_sub(lo);
            let ids = (offset..total.min(offset + q.per_page)).map(|k| if q.desc { hi - 1 - k } else { lo + k }).map(|i| self.orders[i].id).collect();
            return (total, ids);
        }
        if q.orderby != OrderBy::Modified && modified_filter && !created_filter && q.status.is_none() {
            // Incremental reads in a stable order (ids never change): the modified range from the
            // index, sorted by id. O(k log k) in the k matching records.
            let (_, mut ids) = self.idx[&r].page(q.modified_after, q.modified_before, false, 0, usize::MAX);
            ids.sort_unstable();
            if q.orderby == OrderBy::Date && r != Resource::Orders {
                ids.sort_by_key(|id| (self.times(r, *id).0, *id));
            }
            if q.desc {
                ids.reverse();
            }
            let total = ids.len();
            return (total, ids.into_iter().skip(offset).take(q.per_page).collect());
        }
        // General case: filter and sort (fine for the sizes that reach it).
        let mut hits: Vec<(i64, u32)> = (1..=self.len(r) as u32)
            .filter_map(|id| {
                let (c, m) = self.times(r, id);
                let ok = q.after.is_none_or(|a| c > a)
                    && q.before.is_none_or(|b| c < b)
                    && q.modified_after.is_none_or(|a| m > a)
                    && q.modified_before.is_none_or(|b| m < b)
                    && q.status.as_ref().is_none_or(|s| r == Resource::Orders && s.contains(&self.orders[id as usize - 1].status));
                let key = match q.orderby {
                    OrderBy::Id | OrderBy::Name => id as i64,
                    OrderBy::Date => c,
                    OrderBy::Modified => m,
                };
                ok.then_some((key, id))
            })
            .collect();
        hits.sort_unstable();
        if q.orderby == OrderBy::Name {
            let name = |id: u32| {
                let p = data::person(self.shape.seed, id as u64);
                format!("{} {}", p.first, p.last)
            };
            let mut named: Vec<(String, u32)> = hits.iter().map(|(_, id)| (name(*id), *id)).collect();
            named.sort_unstable();
            hits = named.into_iter().map(|(_, id)| (0, id)).collect();
        }
        if q.desc {
            hits.reverse();
        }
        let total = hits.len();
        (total, hits.into_iter().skip(offset).take(q.per_page).map(|h| h.1).collect())
    }

    /// Whether (and how) a record is served invalid. Deterministic per record.
    pub fn invalid(&self, r: Resource, id: u32) -> Option<Invalid> {
        let u = data::unit(self.shape.seed, id as u64, 0x1BAD ^ r as u64);
        if u >= self.invalid_rate {
            return None;
        }
        let kinds: &[Invalid] = match r {
            Resource::Orders => &[Invalid::MissingId, Invalid::NegativeQuantity, Invalid::BadEmail, Invalid::UnknownCurrency, Invalid::TotalsMismatch],
            Resource::Customers => &[Invalid::MissingId, Invalid::BadEmail],
            Resource::Products => &[Invalid::MissingId],
            Resource::Refunds => return None,
        };
        Some(kinds[(data::mix(self.shape.seed, id as u64, 0x2BAD) % kinds.len() as u64) as usize])
    }

    /// One list page's body: the JSON array of the records `ids`, as the list endpoint sends it.
    /// Orders are written straight from their records ([`OrderJson`]); the others through
    /// [`Store::render`].
    pub fn page(&self, r: Resource, ids: &[u32]) -> Vec<u8> {
        if r != Resource::Orders {
            let items: Vec<Value> = ids.iter().map(|id| self.render(r, *id)).collect();
            return serde_json::to_vec(&items).unwrap_or_default();
        }
        let persons: Vec<data::Person> = ids.iter().map(|id| self.order_person(*id)).collect();
        let orders: Vec<OrderJson<'_>> = ids.iter().zip(&persons).map(|(id, person)| self.order_json(*id, person)).collect();
        serde_json::to_vec(&orders).unwrap_or_default()
    }

    /// Record `id` as a JSON value (webhook bodies, single-record reads), with the invalid kind
    /// it is served with applied.
    pub fn render(&self, r: Resource, id: u32) -> Value {
        let mut v = match r {
            Resource::Products => self.render_product(id),
            Resource::Customers => self.render_customer(id),
            Resource::Orders => {
                let person = self.order_person(id);
                // Orders carry their invalid kind already.
                return serde_json::to_value(self.order_json(id, &person)).unwrap_or(Value::Null);
            }
            Resource::Refunds => self.render_refund(id),
        };
        if let (Some(kind), Some(obj)) = (self.invalid(r, id), v.as_object_mut()) {
            match kind {
                Invalid::MissingId => {
                    obj.remove("id");
                }
                Invalid::BadEmail => {
                    if let Some(e) = obj.get_mut("email") {
                        *e = json!(e.as_str().unwrap_or_default().replace('@', "_at_"));
                    }
                }
                // Orders, the only records served with these, apply them in `order_json`.
                Invalid::NegativeQuantity | Invalid::UnknownCurrency | Invalid::TotalsMismatch => {}
            }
        }
        v
    }

    fn render_product(&self, id: u32) -> Value {
        let p = &self.products[id as usize - 1];
        let seed = self.shape.seed;
        let price = p.sale_mad.unwrap_or(p.price_mad);
        json!({
            "id": p.id,
            "name": data::product_name(seed, p),
            "slug": format!("product-{}", p.id),
            "type": "simple",
            "status": "publish",
            "sku": format!("ALK-{:05}", p.id),
            "price": money(price),
            "regular_price": money(p.price_mad),
            "sale_price": p.sale_mad.map(money).unwrap_or_default(),
            "on_sale": p.sale_mad.is_some(),
            "manage_stock": true,
            "stock_quantity": p.stock,
            "stock_status": if p.stock > 0 { "instock" } else { "outofstock" },
            "categories": [{"id": p.category as u32 + 1, "name": data::CATEGORIES[p.category as usize], "slug": format!("cat-{}", p.category + 1)}],
            "date_created": local(p.created),
            "date_created_gmt": gmt(p.created),
            "date_modified": local(p.modified),
            "date_modified_gmt": gmt(p.modified),
        })
    }

    fn address(p: &data::Person, with_contact: bool) -> Value {
        let mut a = json!({
            "first_name": p.first, "last_name": p.last, "company": "",
            "address_1": p.street, "address_2": "", "city": p.city, "state": "",
            "postcode": p.postcode, "country": p.country, "phone": p.phone,
        });
        if with_contact {
            a["email"] = json!(p.email);
        }
        a
    }

    fn render_customer(&self, id: u32) -> Value {
        let c = &self.customers[id as usize - 1];
        let p = data::person(self.shape.seed, id as u64);
        json!({
            "id": c.id,
            "email": p.email,
            "first_name": p.first,
            "last_name": p.last,
            "username": format!("customer{}", c.id),
            "role": "customer",
            "billing": Self::address(&p, true),
            "shipping": Self::address(&p, false),
            "is_paying_customer": true,
            "date_created": local(c.created),
            "date_created_gmt": gmt(c.created),
            "date_modified": local(c.modified),
            "date_modified_gmt": gmt(c.modified),
        })
    }

    pub fn totals(&self, o: &OrderRec) -> Totals {
        let price = |p: usize| {
            let later = self.price_history.get(&p).and_then(|h| h.iter().find(|(at, _)| *at > o.created));
            later.map(|(_, before)| *before).unwrap_or_else(|| self.products[p].selling_price())
        };
        data::order_totals(self.shape.seed, o, price, &self.pcdf)
    }

    /// The person on order `id` (its customer, or a guest of its own).
    fn order_person(&self, id: u32) -> data::Person {
        let o = &self.orders[id as usize - 1];
        let key = if o.customer > 0 { o.customer as u64 } else { 1_000_000_000 + o.id as u64 };
        data::person(self.shape.seed, key)
    }

    /// Order `id` as the API serialises it (`person` is [`Store::order_person`]'s), with the
    /// invalid kind it is served with applied.
    fn order_json<'a>(&self, id: u32, person: &'a data::Person) -> OrderJson<'a> {
        let o = &self.orders[id as usize - 1];
        let seed = self.shape.seed;
        let t = self.totals(o);
        let invalid = self.invalid(Resource::Orders, id);
        let methods = [("cmi", "Carte bancaire (CMI)"), ("cod", "Paiement a la livraison"), ("paypal", "PayPal"), ("stripe", "Credit card")];
        let (pm, pm_title) = methods[(data::mix(seed, id as u64, 0x9A7) % 4) as usize];
        let paid = matches!(o.status, data::ST_PROCESSING | data::ST_COMPLETED | data::ST_REFUNDED);
        let completed = o.status == data::ST_COMPLETED;
        let mut line_items: Vec<LineItem> = t
            .lines
            .iter()
            .enumerate()
            .map(|(i, (p, qty, unit, subtotal, total, tax))| {
                let prod = &self.products[*p];
                LineItem {
                    id: id as u64 * 10 + i as u64,
                    name: data::product_name(seed, prod),
                    price: (*unit as f64) / 100.0,
                    product_id: prod.id,
                    quantity: *qty,
                    sku: Sku(prod.id),
                    subtotal: Money(*subtotal),
                    subtotal_tax: Money((subtotal * 20 + 50) / 100),
                    tax_class: "",
                    total: Money(*total),
                    total_tax: Money(*tax),
                    variation_id: 0,
                }
            })
            .collect();
        if invalid == Some(Invalid::NegativeQuantity)
            && let Some(first) = line_items.first_mut()
        {
            first.quantity = -first.quantity;
        }
        let refunds = self
            .refunds_by_order
            .get(&id)
            .into_iter()
            .flatten()
            .map(|rid| {
                let r = &self.refunds[*rid as usize - 1];
                RefundRef { id: r.id, reason: if r.full { "Order cancelled by customer" } else { "Damaged item" }, total: Money(-r.amount) }
            })
            .collect();
        let address = |email: Option<Cow<'a, str>>| Address {
            address_1: &person.street,
            address_2: "",
            city: person.city,
            company: "",
            country: person.country,
            email,
            first_name: person.first,
            last_name: person.last,
            phone: &person.phone,
            postcode: person.postcode,
            state: "",
        };
        let email = if invalid == Some(Invalid::BadEmail) { Cow::Owned(person.email.replace('@', "_at_")) } else { Cow::Borrowed(person.email.as_str()) };
        OrderJson {
            billing: address(Some(email)),
            cart_tax: Money(t.tax),
            coupon_lines: if o.coupon { vec![CouponLine { code: "promo10", discount: Money(t.discount), discount_tax: "0.00", id: 1 }] } else { Vec::new() },
            created_via: "checkout",
            currency: if invalid == Some(Invalid::UnknownCurrency) { "XYZ" } else { o.currency().code() },
            customer_id: o.customer,
            customer_ip_address: &person.ip,
            customer_note: "",
            customer_user_agent: "Mozilla/5.0",
            date_completed: completed.then(|| Stamp::local(o.modified)),
            date_completed_gmt: completed.then(|| Stamp::gmt(o.modified)),
            date_created: Stamp::local(o.created),
            date_created_gmt: Stamp::gmt(o.created),
            date_modified: Stamp::local(o.modified),
            date_modified_gmt: Stamp::gmt(o.modified),
            date_paid: paid.then(|| Stamp::local(o.created + 60)),
            date_paid_gmt: paid.then(|| Stamp::gmt(o.created + 60)),
            discount_tax: "0.00",
            discount_total: Money(t.discount),
            id: (invalid != Some(Invalid::MissingId)).then_some(o.id),
            line_items,
            number: Number(o.id),
            order_key: OrderKey(data::mix(seed, id as u64, 0x0CE) & 0xFFFF_FFFF_FFFF),
            parent_id: 0,
            payment_method: pm,
            payment_method_title: pm_title,
            prices_include_tax: false,
            refunds,
            shipping: address(None),
            shipping_lines: [ShippingLine { id: 1, method_id: "flat_rate", method_title: "Flat rate", total: Money(t.shipping), total_tax: "0.00" }],
            shipping_tax: "0.00",
            shipping_total: Money(t.shipping),
            status: STATUSES[o.status as usize],
            tax_lines: [TaxLine { compound: false, id: 1, label: "TVA", rate_code: "MA-TVA-1", rate_id: 1, rate_percent: 20, shipping_tax_total: "0.00", tax_total: Money(t.tax) }],
            // The injected `totals_mismatch`: ten units more than the lines add up to.
            total: Money(if invalid == Some(Invalid::TotalsMismatch) { t.total + 1_000 } else { t.total }),
            total_tax: Money(t.tax),
            transaction_id: TransactionId(paid.then(|| data::mix(seed, id as u64, 0x7A))),
        }
    }

    /// A refund as `GET /wc/v3/refunds` gives it (WooCommerce 9's refunds controller: the order
    /// refund's fields with `parent_id`; no currency, which is the order's). Its `line_items`
    /// are the order's lines it returns, with negative quantities and amounts, as WooCommerce
    /// stores refund items: every line for a full refund, one unit of the first line for a
    /// partial one.
    fn render_refund(&self, id: u32) -> Value {
        let r = &self.refunds[id as usize - 1];
        let o = &self.orders[r.order as usize - 1];
        let t = self.totals(o);
        let lines: Vec<Value> = t
            .lines
            .iter()
            .enumerate()
            .take(if r.full { usize::MAX } else { 1 })
            .map(|(i, (p, qty, unit, subtotal, total, tax))| {
                let prod = &self.products[*p];
                let n = if r.full { *qty } else { 1 };
                let per = |v: i64| if r.full { v } else { v / (*qty).max(1) };
                json!({
                    "id": 9_000_000_000u64 + r.id as u64 * 10 + i as u64,
                    "name": data::product_name(self.shape.seed, prod),
                    "product_id": prod.id,
                    "variation_id": 0,
                    "quantity": -n,
                    "tax_class": "",
                    "subtotal": money(-per(*subtotal)),
                    "subtotal_tax": money(-per((subtotal * 20 + 50) / 100)),
                    "total": money(-per(*total)),
                    "total_tax": money(-per(*tax)),
                    "taxes": [{"id": 1, "total": money(-per(*tax)), "subtotal": money(-per((subtotal * 20 + 50) / 100))}],
                    "meta_data": [],
                    "sku": format!("ALK-{:05}", prod.id),
                    "price": -(*unit as f64) / 100.0,
                })
            })
            .collect();
        let shipping = if r.full {
            json!([{"id": 9_000_000_000u64 + r.id as u64 * 10 + 9, "method_title": "Flat rate", "method_id": "flat_rate", "total": money(-t.shipping), "total_tax": "0.00", "taxes": [], "meta_data": []}])
        } else {
            json!([])
        };
        json!({
            "id": r.id,
            "parent_id": r.order,
            "date_created": local(r.created),
            "date_created_gmt": gmt(r.created),
            "amount": money(r.amount),
            "reason": if r.full { "Order cancelled by customer" } else { "Damaged item" },
            "refunded_by": 1,
            "refunded_payment": true,
            "meta_data": [],
            "line_items": lines,
            "shipping_lines": shipping,
            "tax_lines": [],
            "fee_lines": [],
        })
    }

    /// Records in `r`'s modification index that `id` changed at `at`.
    fn touch(&mut self, r: Resource, id: u32, at: i64) {
        if let Some(x) = self.idx.get_mut(&r) {
            x.touch(id, at);
        }
    }

    /// Applies `n` live changes (new orders, status moves, stock and price changes, profile
    /// edits), each stamped with the store clock, which advances at least one second per change
    /// and never runs behind `now` when given.
    pub fn mutate(&mut self, n: usize, now: Option<i64>) -> Vec<Change> {
        self.mutate_every(n, now, 1)
    }

    /// Like [`Store::mutate`], the clock advancing `step` seconds (at least one) per change: `n`
    /// changes `86400 / n` seconds apart are one calendar day of activity.
    pub fn mutate_every(&mut self, n: usize, now: Option<i64>, step: i64) -> Vec<Change> {
        let step = step.max(1);
        let mut changes = Vec::with_capacity(n);
        for _ in 0..n {
            self.mutations += 1;
            self.clock = (self.clock + step).max(now.unwrap_or(i64::MIN));
            let at = self.clock;
            let mut r = data::rng(self.shape.seed, self.mutations, 0x11FE);
            let u: f64 = r.random();
            if u < 0.5 || self.orders.is_empty() {
                changes.push(self.new_order(at, &mut r, None));
            } else if u < 0.85 {
                // Move a recent open order along its life cycle.
                let from = self.orders.len().saturating_sub(2_000);
                let open: Vec<usize> = (from..self.orders.len()).filter(|i| matches!(self.orders[*i].status, data::ST_PENDING | data::ST_PROCESSING | data::ST_ON_HOLD)).collect();
                let Some(&i) = open.get(r.random_range(0..open.len().max(1))) else {
                    changes.push(self.new_order(at, &mut r, None));
                    continue;
                };
                let o = &mut self.orders[i];
                o.status = match o.status {
                    data::ST_PENDING => {
                        if r.random_bool(0.85) {
                            data::ST_PROCESSING
                        } else {
                            data::ST_FAILED
                        }
                    }
                    data::ST_ON_HOLD => data::ST_PROCESSING,
                    _ => {
                        let u: f64 = r.random();
                        if u < 0.90 {
                            data::ST_COMPLETED
                        } else if u < 0.95 {
                            data::ST_REFUNDED
                        } else {
                            data::ST_CANCELLED
                        }
                    }
                };
                o.modified = at;
                let (id, refunded) = (o.id, o.status == data::ST_REFUNDED);
                self.touch(Resource::Orders, id, at);
                if refunded {
                    // Marking an order refunded in WooCommerce creates its full refund.
                    let amount = self.totals(&self.orders[i]).total;
                    let rid = self.refunds.len() as u32 + 1;
                    self.refunds.push(data::RefundRec { id: rid, order: id, created: at, amount, full: true });
                    self.touch(Resource::Refunds, rid, at);
                }
                changes.push(Change { topic: "order.updated", id });
            } else if u < 0.95 && !self.products.is_empty() {
                let i = data::line_items(self.shape.seed, &self.orders[r.random_range(0..self.orders.len())], &self.pcdf)[0].0;
                let p = &mut self.products[i];
                if r.random_bool(0.7) {
                    p.stock = (p.stock - r.random_range(1..4)).max(0);
                } else {
                    let before = p.selling_price();
                    p.price_mad = (p.price_mad * r.random_range(95..=105) / 100 / 100) * 100 + 99;
                    self.price_history.entry(i).or_default().push((at, before));
                }
                p.modified = at;
                let id = p.id;
                self.touch(Resource::Products, id, at);
                changes.push(Change { topic: "product.updated", id });
            } else if !self.customers.is_empty() {
                let id = r.random_range(1..=self.customers.len() as u32);
                self.customers[id as usize - 1].modified = at;
                self.touch(Resource::Customers, id, at);
                changes.push(Change { topic: "customer.updated", id });
            }
        }
        changes
    }

    /// A new customer joining at `at`.
    pub fn new_customer(&mut self, at: i64) -> u32 {
        self.clock = self.clock.max(at);
        let id = self.customers.len() as u32 + 1;
        self.customers.push(CustomerRec { id, created: at, modified: at });
        self.touch(Resource::Customers, id, at);
        id
    }

    /// Sets an order's status at `at` (scripted incidents).
    pub fn set_order_status(&mut self, id: u32, status: u8, at: i64) {
        self.clock = self.clock.max(at);
        if let Some(o) = self.orders.get_mut(id as usize - 1) {
            o.status = status;
            o.modified = self.clock;
            self.touch(Resource::Orders, id, self.clock);
        }
    }

    /// Sets the stock of the product at `index` (0 = the best seller); returns its id.
    pub fn set_stock(&mut self, index: usize, stock: i32, at: i64) -> u32 {
        self.clock = self.clock.max(at);
        let clock = self.clock;
        let Some(p) = self.products.get_mut(index) else { return 0 };
        p.stock = stock;
        p.modified = clock;
        let id = p.id;
        self.touch(Resource::Products, id, clock);
        id
    }

    /// Places a new order at `at`; `customer` forces the buyer (for scripted incidents).
    pub fn new_order(&mut self, at: i64, r: &mut impl Rng, customer: Option<u32>) -> Change {
        self.clock = self.clock.max(at);
        let id = self.orders.len() as u32 + 1;
        let customer = customer.unwrap_or_else(|| if self.customers.is_empty() || r.random_bool(0.3) { self.new_customer(at) } else { r.random_range(1..=self.customers.len() as u32) });
        let c: f64 = r.random();
        let order = OrderRec {
            id,
            customer,
            created: at,
            modified: at,
            status: if r.random_bool(0.9) { data::ST_PROCESSING } else { data::ST_PENDING },
            currency: if c < 0.6 {
                0
            } else if c < 0.85 {
                1
            } else {
                2
            },
            items: 1 + (r.random::<f64>().powi(2) * 5.0) as u8,
            coupon: false,
        };
        self.orders.push(order);
        self.touch(Resource::Orders, id, at);
        Change { topic: "order.created", id }
    }

    /// Ground truth for one resource: every current valid record's id and modification time,
    /// and every invalid record with its reason (invalid records are keyed by `number` for
    /// orders, or by position for records whose id is missing).
    pub fn truth(&self, r: Resource) -> (Vec<Value>, Vec<Value>) {
        let mut valid = Vec::new();
        let mut invalid = Vec::new();
        for id in 1..=self.len(r) as u32 {
            let (_, m) = self.times(r, id);
            match self.invalid(r, id) {
                Some(kind) => invalid.push(json!({"resource": r.name(), "id": id, "reason": kind.reason(), "date_modified_gmt": gmt(m)})),
                None => {
                    let mut rec = json!({"id": id, "date_modified_gmt": gmt(m)});
                    if r == Resource::Orders {
                        let o = &self.orders[id as usize - 1];
                        rec["status"] = json!(STATUSES[o.status as usize]);
                        rec["currency"] = json!(o.currency().code());
                        rec["total"] = json!(money(self.totals(o).total));
                    }
                    valid.push(rec);
                }
            }
        }
        (valid, invalid)
    }

    /// Daily aggregates the lake must reproduce from valid orders (by UTC creation date):
    /// per date and currency, and per date, product and currency. "Paid" orders are those in
    /// processing, completed or refunded status; revenue is their total (tax and shipping
    /// included); refunds are counted on the refund's date.
    pub fn daily(&self) -> Value {
        #[derive(Default)]
        struct Day {
            orders: u64,
            paid_orders: u64,
            gross: i64,
            refunds: i64,
        }
        let mut days: BTreeMap<(NaiveDate, Currency), Day> = BTreeMap::new();
        let mut products: BTreeMap<(NaiveDate, u32, Currency), (i64, i64)> = BTreeMap::new();
        let date = |t: i64| DateTime::from_timestamp(t, 0).unwrap_or_default().date_naive();
        for o in &self.orders {
            if self.invalid(Resource::Orders, o.id).is_some() {
                continue;
            }
            let d = days.entry((date(o.created), o.currency())).or_default();
            d.orders += 1;
            if matches!(o.status, data::ST_PROCESSING | data::ST_COMPLETED | data::ST_REFUNDED) {
                let t = self.totals(o);
                d.paid_orders += 1;
                d.gross += t.total;
                for (p, qty, _, _, total, _) in t.lines {
                    let e = products.entry((date(o.created), self.products[p].id, o.currency())).or_default();
                    e.0 += qty;
                    e.1 += total;
                }
            }
        }
        for r in &self.refunds {
            let o = &self.orders[r.order as usize - 1];
            if self.invalid(Resource::Orders, o.id).is_none() {
                days.entry((date(r.created), o.currency())).or_default().refunds += r.amount;
            }
        }
        json!({
            "definition": "valid orders by UTC creation date; paid = processing|completed|refunded; gross = order total incl. tax and shipping; refunds by refund date; product revenue = line totals after discount, excl. tax",
            "by_day_currency": days.iter().map(|((d, c), v)| json!({
                "date": d.to_string(), "currency": c.code(), "orders": v.orders, "paid_orders": v.paid_orders,
                "gross": money(v.gross), "refunds": money(v.refunds), "net": money(v.gross - v.refunds),
            })).collect::<Vec<_>>(),
            "by_day_product_currency": products.iter().map(|((d, p, c), (units, rev))| json!({
                "date": d.to_string(), "product_id": p, "currency": c.code(), "units": units, "revenue": money(*rev),
            })).collect::<Vec<_>>(),
        })
    }

    pub fn pcdf(&self) -> &[f64] {
        &self.pcdf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn small(invalid_rate: f64) -> Store {
        Store::new(Shape { seed: 42, products: 100, customers: 300, orders: 2_000, end: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(), days: 90 }, invalid_rate)
    }

    fn q(per_page: usize, orderby: OrderBy) -> ListQuery {
        ListQuery { page: 1, per_page, orderby, desc: false, after: None, before: None, modified_after: None, modified_before: None, status: None }
    }

    #[test]
    fn an_orders_page_is_the_json_of_its_records_with_sorted_keys() {
        // `page` writes orders straight from their records; `render` goes through a `Value`,
        // whose maps sort their keys. Equal bytes mean the structs declare their fields in that
        // order (the wire format did not change when the tree went) and carry the same data.
        let s = small(0.3);
        let ids: Vec<u32> = (1..=400).collect();
        let rendered: Vec<Value> = ids.iter().map(|id| s.render(Resource::Orders, *id)).collect();
        assert_eq!(String::from_utf8(s.page(Resource::Orders, &ids)).unwrap(), serde_json::to_string(&rendered).unwrap());
        let totals = rendered.iter().filter(|v| s.invalid(Resource::Orders, v["number"].as_str().unwrap().parse().unwrap()) == Some(Invalid::TotalsMismatch));
        for v in totals {
            let lines: f64 = v["line_items"].as_array().unwrap().iter().map(|l| l["total"].as_str().unwrap().parse::<f64>().unwrap()).sum();
            let expected = lines + v["shipping_total"].as_str().unwrap().parse::<f64>().unwrap() + v["total_tax"].as_str().unwrap().parse::<f64>().unwrap();
            assert!((v["total"].as_str().unwrap().parse::<f64>().unwrap() - expected - 10.0).abs() < 0.005, "{v}");
        }
    }

    #[test]
    fn invalid_records_are_rendered_invalid_and_listed_in_truth() {
        let s = small(0.05);
        let (valid, invalid) = s.truth(Resource::Orders);
        assert_eq!(valid.len() + invalid.len(), 2_000);
        assert!(invalid.len() > 50 && invalid.len() < 160, "{}", invalid.len());
        for inv in &invalid {
            let id = inv["id"].as_u64().unwrap() as u32;
            let v = s.render(Resource::Orders, id);
            match inv["reason"].as_str().unwrap() {
                "missing_id" => assert!(v.get("id").is_none()),
                "negative_quantity" => assert!(v["line_items"][0]["quantity"].as_i64().unwrap() < 0),
                "bad_email" => assert!(!v["billing"]["email"].as_str().unwrap().contains('@')),
                "unknown_currency" => assert_eq!(v["currency"], "XYZ"),
                "totals_mismatch" => {}
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn mutations_move_orders_between_pages_and_keep_the_index_exact() {
        let mut s = small(0.0);
        let before = s.clock;
        let changes = s.mutate(50, None);
        assert_eq!(changes.len(), 50);
        assert!(s.clock >= before + 50);
        let mut query = q(100, OrderBy::Modified);
        query.modified_after = Some(before);
        let (total, ids) = s.list(Resource::Orders, &query);
        let touched: std::collections::HashSet<u32> = changes.iter().filter(|c| c.topic.starts_with("order")).map(|c| c.id).collect();
        assert_eq!(total, touched.len());
        assert_eq!(ids.iter().copied().collect::<std::collections::HashSet<_>>(), touched);
    }

    #[test]
    fn changes_spread_over_a_day_are_stamped_across_it() {
        let mut s = small(0.0);
        let before = s.clock;
        s.mutate_every(100, None, 864);
        assert_eq!(s.clock, before + 86_400);
        // A step below one second still moves the clock: stamps never repeat.
        s.mutate_every(10, None, 0);
        assert_eq!(s.clock, before + 86_410);
    }

    #[test]
    fn fast_and_general_paths_agree() {
        let mut s = small(0.0);
        s.mutate(200, None);
        for orderby in [OrderBy::Id, OrderBy::Date, OrderBy::Modified] {
            for desc in [false, true] {
                let mut fast = q(17, orderby);
                fast.desc = desc;
                fast.page = 3;
                for modified_after in [None, Some(s.clock - 150)] {
                    fast.modified_after = modified_after;
                    let mut slow = fast.clone();
                    slow.status = Some((0..7).collect()); // forces the general path, same set
                    let (a, b) = (s.list(Resource::Orders, &fast), s.list(Resource::Orders, &slow));
                    assert_eq!(a.0, b.0);
                    if orderby == OrderBy::Id || orderby == OrderBy::Date {
                        assert_eq!(a.1, b.1, "{orderby:?} desc={desc} modified_after={modified_after:?}");
                    }
                }
            }
        }
    }
}
