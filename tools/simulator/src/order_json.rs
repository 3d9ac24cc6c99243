//! An order as the REST API sends it, serialised straight from the store's records.
//!
//! The orders list is what every ingestion benchmark reads, and building a `serde_json::Value`
//! tree per order (about fifty map insertions, a string per amount and date) then serialising
//! it cost ~25 µs of CPU per order: a quarter of the machine in an end-to-end run, taken from
//! the fetchers it serves. These structs serialise the same JSON without the tree. Their fields
//! are declared in byte order of their names because the tree's maps are sorted (serde_json
//! without `preserve_order`): the bytes on the wire are the ones the tree gave, which the tests
//! check (`Store::render` of an order is `serde_json::to_value` of this, so both stay one
//! shape). Amounts and dates are written through `Display` into the output, not allocated.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Datelike, Timelike};
use serde::{Serialize, Serializer};

/// An amount in cents, written as WooCommerce writes prices: `"-12.30"`.
#[derive(Debug, Clone, Copy)]
pub struct Money(pub i64);

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A time (epoch seconds) written as WooCommerce's `date_*` fields: `2026-08-30T19:37:49`, no
/// offset; `offset` seconds are added first (the store's local time is UTC+1).
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub at: i64,
    pub offset: i64,
}

impl Stamp {
    pub fn gmt(at: i64) -> Self {
        Stamp { at, offset: 0 }
    }
    /// The store's local time (Africa/Casablanca, UTC+1).
    pub fn local(at: i64) -> Self {
        Stamp { at, offset: 3600 }
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = DateTime::from_timestamp(self.at + self.offset, 0).unwrap_or_default().naive_utc();
        write!(f, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", t.year(), t.month(), t.day(), t.hour(), t.minute(), t.second())
    }
}

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A string made by formatting, written without an intermediate `String`.
pub struct Text<T>(pub T);

impl<T: fmt::Display> Serialize for Text<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// `"ALK-00042"`.
pub struct Sku(pub u32);

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ALK-{:05}", self.0)
    }
}

/// A billing or shipping address (shipping has no email).
#[derive(Serialize)]
pub struct Address<'a> {
    pub address_1: &'a str,
    pub address_2: &'static str,
    pub city: &'static str,
    pub company: &'static str,
    pub country: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Cow<'a, str>>,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub phone: &'a str,
    pub postcode: &'static str,
    pub state: &'static str,
}

#[derive(Serialize)]
pub struct CouponLine {
    pub code: &'static str,
    pub discount: Money,
    pub discount_tax: &'static str,
    pub id: u32,
}

#[derive(Serialize)]
pub struct LineItem {
    pub id: u64,
    pub name: String,
    pub price: f64,
    pub product_id: u32,
    pub quantity: i64,
    pub sku: Text<Sku>,
    pub subtotal: Money,
    pub subtotal_tax: Money,
    pub tax_class: &'static str,
    pub total: Money,
    pub total_tax: Money,
    pub variation_id: u32,
}

/// A refund as listed inside its order.
#[derive(Serialize)]
pub struct RefundRef {
    pub id: u32,
    pub reason: &'static str,
    pub total: Money,
}

#[derive(Serialize)]
pub struct ShippingLine {
    pub id: u32,
    pub method_id: &'static str,
    pub method_title: &'static str,
    pub total: Money,
    pub total_tax: &'static str,
}

#[derive(Serialize)]
pub struct TaxLine {
    pub compound: bool,
    pub id: u32,
    pub label: &'static str,
    pub rate_code: &'static str,
    pub rate_id: u32,
    pub rate_percent: u32,
    pub shipping_tax_total: &'static str,
    pub tax_total: Money,
}

/// `GET /wc/v3/orders/<id>`'s body. `id` is absent on the records served without one (the
/// injected `missing_id` invalid record).
#[derive(Serialize)]
pub struct OrderJson<'a> {
    pub billing: Address<'a>,
    pub cart_tax: Money,
    pub coupon_lines: Vec<CouponLine>,
    pub created_via: &'static str,
    pub currency: &'static str,
    pub customer_id: u32,
    pub customer_ip_address: &'a str,
    pub customer_note: &'static str,
    pub customer_user_agent: &'static str,
    pub date_completed: Option<Stamp>,
    pub date_completed_gmt: Option<Stamp>,
    pub date_created: Stamp,
    pub date_created_gmt: Stamp,
    pub date_modified: Stamp,
    pub date_modified_gmt: Stamp,
    pub date_paid: Option<Stamp>,
    pub date_paid_gmt: Option<Stamp>,
    pub discount_tax: &'static str,
    pub discount_total: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    pub line_items: Vec<LineItem>,
    pub number: Text<u32>,
    pub order_key: Text<OrderKey>,
    pub parent_id: u32,
    pub payment_method: &'static str,
    pub payment_method_title: &'static str,
    pub prices_include_tax: bool,
    pub refunds: Vec<RefundRef>,
    pub shipping: Address<'a>,
    pub shipping_lines: [ShippingLine; 1],
    pub shipping_tax: &'static str,
    pub shipping_total: Money,
    pub status: &'static str,
    pub tax_lines: [TaxLine; 1],
    pub total: Money,
    pub total_tax: Money,
    pub transaction_id: Text<TransactionId>,
}

/// `"wc_order_07bdf83d2c5e"`: 48 bits of the order's hash.
pub struct OrderKey(pub u64);

impl fmt::Display for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wc_order_{:012x}", self.0)
    }
}

/// `"txn_<16 hex digits>"` for a paid order, empty otherwise.
pub struct TransactionId(pub Option<u64>);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) => write!(f, "txn_{t:016x}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_dates_are_written_as_woocommerce_writes_them() {
        fn s<T: Serialize>(v: &T) -> String {
            serde_json::to_string(v).unwrap()
        }
        assert_eq!(s(&Money(-1230)), "\"-12.30\"");
        assert_eq!(s(&Money(5)), "\"0.05\"");
        assert_eq!(s(&Money(0)), "\"0.00\"");
        assert_eq!(s(&Money(-7)), "\"-0.07\"");
        assert_eq!(s(&Stamp::gmt(1_788_118_669)), "\"2026-08-30T19:37:49\"");
        assert_eq!(s(&Stamp::local(1_788_118_669)), "\"2026-08-30T20:37:49\"");
        assert_eq!(s(&Text(Sku(42))), "\"ALK-00042\"");
        assert_eq!(s(&Text(TransactionId(None))), "\"\"");
    }
}
