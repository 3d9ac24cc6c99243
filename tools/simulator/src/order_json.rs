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

/// A short ASCII string built on the stack: the amounts, dates and codes of an order.
///
/// Hand-written: they were written through `fmt` (`write!` with padding, `collect_str`), whose
/// machinery (`pad_integral`, the escaping adapter) cost more than the digits themselves: a
/// sixth of the simulator's CPU in `alkasba-bench ingest`, where it shares the machine with the
/// fetchers it serves (issue 20). Digits into a fixed buffer need no formatting engine.
pub struct Ascii<const N: usize> {
    buf: [u8; N],
    start: usize,
}

impl<const N: usize> Ascii<N> {
    /// Room for `N` bytes, written from the end.
    fn new() -> Self {
        Ascii { buf: [b'0'; N], start: N }
    }

    fn push_front(&mut self, b: u8) {
        // Callers size `N` for their widest value; a full buffer keeps what it has.
        if self.start > 0 {
            self.start -= 1;
            self.buf[self.start] = b;
        }
    }

    /// `n` in decimal, at least `width` digits (zero-padded).
    fn decimal(&mut self, mut n: u64, width: usize) {
        let end = self.start;
        while n > 0 || end - self.start < width.max(1) {
            self.push_front(b'0' + (n % 10) as u8);
            n /= 10;
            if self.start == 0 {
                break;
            }
        }
    }

    /// `n`'s low `width` hex digits, lower case.
    fn hex(&mut self, n: u64, width: usize) {
        for i in 0..width {
            self.push_front(b"0123456789abcdef"[((n >> (4 * i)) & 0xF) as usize]);
        }
    }

    /// `prefix`, then `n` in decimal with at least `width` digits (a u32 and a prefix of up to
    /// four bytes fit 14).
    fn prefixed_decimal(prefix: &str, n: u32, width: usize) -> Self {
        let mut out = Self::new();
        out.decimal(n.into(), width);
        out.text(prefix);
        out
    }

    fn text(&mut self, t: &str) {
        for b in t.bytes().rev() {
            self.push_front(b);
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or_default()
    }
}

/// Display and a JSON string for types that render as [`Ascii`].
macro_rules! ascii_string {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.ascii().as_str())
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.ascii().as_str())
            }
        }
    };
}

/// An amount in cents, written as WooCommerce writes prices: `"-12.30"`.
#[derive(Debug, Clone, Copy)]
pub struct Money(pub i64);

impl Money {
    fn ascii(&self) -> Ascii<24> {
        let a = self.0.unsigned_abs();
        let mut out = Ascii::new();
        out.decimal(a % 100, 2);
        out.push_front(b'.');
        out.decimal(a / 100, 1);
        if self.0 < 0 {
            out.push_front(b'-');
        }
        out
    }
}

ascii_string!(Money);

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

    fn ascii(&self) -> Ascii<19> {
        let t = DateTime::from_timestamp(self.at + self.offset, 0).unwrap_or_default().naive_utc();
        let mut out = Ascii::new();
        for (n, sep) in [(t.second(), ':'), (t.minute(), ':'), (t.hour(), 'T'), (t.day(), '-'), (t.month(), '-')] {
            out.decimal(n.into(), 2);
            out.push_front(sep as u8);
        }
        // Four digits, as `{:04}` wrote the years this store has (1970 onwards).
        out.decimal(t.year().clamp(0, 9999) as u64, 4);
        out
    }
}

ascii_string!(Stamp);

/// An order's `number`: its id as a string.
pub struct Number(pub u32);

impl Number {
    fn ascii(&self) -> Ascii<14> {
        Ascii::prefixed_decimal("", self.0, 1)
    }
}

ascii_string!(Number);

/// `"ALK-00042"`.
pub struct Sku(pub u32);

impl Sku {
    fn ascii(&self) -> Ascii<14> {
        Ascii::prefixed_decimal("ALK-", self.0, 5)
    }
}

ascii_string!(Sku);

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
    pub sku: Sku,
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
    pub number: Number,
    pub order_key: OrderKey,
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
    pub transaction_id: TransactionId,
}

/// `"wc_order_07bdf83d2c5e"`: 48 bits of the order's hash.
pub struct OrderKey(pub u64);

impl OrderKey {
    fn ascii(&self) -> Ascii<21> {
        let mut out = Ascii::new();
        out.hex(self.0, 12);
        out.text("wc_order_");
        out
    }
}

ascii_string!(OrderKey);

/// `"txn_<16 hex digits>"` for a paid order, empty otherwise.
pub struct TransactionId(pub Option<u64>);

impl TransactionId {
    fn ascii(&self) -> Ascii<20> {
        let mut out = Ascii::new();
        if let Some(t) = self.0 {
            out.hex(t, 16);
            out.text("txn_");
        }
        out
    }
}

ascii_string!(TransactionId);

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
        assert_eq!(s(&Sku(42)), "\"ALK-00042\"");
        assert_eq!(s(&Sku(123_456)), "\"ALK-123456\"");
        assert_eq!(s(&TransactionId(None)), "\"\"");
        assert_eq!(s(&TransactionId(Some(0xABC))), "\"txn_0000000000000abc\"");
        assert_eq!(s(&OrderKey(0x07BD_F83D_2C5E)), "\"wc_order_07bdf83d2c5e\"");
        assert_eq!(s(&Number(0)), "\"0\"");
        assert_eq!(s(&Number(u32::MAX)), "\"4294967295\"");
        assert_eq!(s(&Money(i64::MIN)), "\"-92233720368547758.08\"");
        assert_eq!(s(&Money(123_456_789)), "\"1234567.89\"");
        assert_eq!(s(&Stamp::gmt(0)), "\"1970-01-01T00:00:00\"");
        assert_eq!(s(&Stamp::gmt(253_402_300_799)), "\"9999-12-31T23:59:59\"");
    }
}
