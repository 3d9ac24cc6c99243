//! Record validation against a stream's schema and rules. Reasons name the field and the rule,
//! never the value: a reason may be about an email or a phone number.

use std::str::FromStr;

use alkasba_sources::raw::unescape;
use alkasba_sources::{FieldSpec, FieldType, Format, Rule, Stream};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::pointer::pointer;

/// One step of a concrete path: a field (as written in the pointer, escaped) or an index.
#[derive(Clone, Copy)]
enum Seg<'p> {
    Field(&'p str),
    Index(usize),
}

/// The RFC 6901 pointer of a concrete path.
fn path(at: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in at {
        s.push('/');
        match seg {
            Seg::Field(f) => s.push_str(f),
            Seg::Index(i) => s.push_str(&i.to_string()),
        }
    }
    s
}

/// One step of a pointer, split and unescaped once ([`Validator::new`]): a field, as written
/// (for reasons) and as named (for lookups), or `*`, every element of an array.
#[derive(Debug, Clone)]
enum Step {
    Field { escaped: String, name: String },
    Each,
}

/// The steps of an RFC 6901 pointer with `*` for every element of an array ("" is the whole
/// record).
fn steps(pointer: &str) -> Vec<Step> {
    pointer.split('/').skip(1).map(|seg| if seg == "*" { Step::Each } else { Step::Field { escaped: seg.to_string(), name: unescape(seg).into_owned() } }).collect()
}

/// Calls `f` with every value at the pointer split into `steps` and its concrete path; `None`
/// when the path ends early (a missing field or a non-array under `*`); parents that are
/// missing or null yield nothing below them. The path is only formatted when a reason needs
/// it: validation runs on every record, and building a pointer string per value was a fifth of
/// ingestion's CPU (issue 20, `alkasba-bench floor --stages`). `at` is the path's buffer,
/// reused from one pointer to the next (a record is visited by ~25).
fn visit<'a, 'p>(record: &'a Value, steps: &'p [Step], at: &mut Vec<Seg<'p>>, f: &mut impl FnMut(&[Seg<'p>], Option<&'a Value>)) {
    at.clear();
    walk(record, steps, at, f);
}

fn walk<'a, 'p>(v: &'a Value, steps: &'p [Step], at: &mut Vec<Seg<'p>>, f: &mut impl FnMut(&[Seg<'p>], Option<&'a Value>)) {
    let Some((head, rest)) = steps.split_first() else {
        f(at, Some(v));
        return;
    };
    let (escaped, name) = match head {
        Step::Each => {
            if let Value::Array(items) = v {
                for (i, item) in items.iter().enumerate() {
                    at.push(Seg::Index(i));
                    walk(item, rest, at, f);
                    at.pop();
                }
            }
            return;
        }
        Step::Field { escaped, name } => (escaped, name),
    };
    let child = v.get(name.as_str());
    at.push(Seg::Field(escaped));
    match child {
        Some(Value::Null) | None if !rest.is_empty() => {}
        Some(Value::Null) | None => f(at, None),
        Some(child) => walk(child, rest, at, f),
    }
    at.pop();
}

/// A concrete path shown as its pointer only when a reason is written.
struct Lazy<'s, 'p>(&'s [Seg<'p>]);

impl std::fmt::Display for Lazy<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&path(self.0))
    }
}

/// A number given as a JSON number or a decimal string ("12.50").
pub fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).or_else(|_| Decimal::from_scientific(&n.to_string())).ok(),
        _ => None,
    }
}

/// Parses an ISO 8601 date-time; without an offset it is UTC. Microseconds since the epoch.
pub fn timestamp_micros(s: &str) -> Option<i64> {
    // Without an offset first: WooCommerce's `*_gmt` dates have none, and a string reads either
    // way or neither (RFC 3339 requires the offset, `NaiveDateTime` rejects one), so the order
    // only saves the failed attempt. `FromStr` is `%Y-%m-%dT%H:%M:%S%.f` without re-reading a
    // format string per value.
    if let Some(t) = plain_date_time(s) {
        return Some(t);
    }
    if let Ok(t) = s.parse::<chrono::NaiveDateTime>() {
        return Some(t.and_utc().timestamp_micros());
    }
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_micros())
}

/// `YYYY-MM-DDTHH:MM:SS` exactly (how WooCommerce writes every date), read without chrono's
/// general parser: an order has eight dates, each read twice (validated, then made a cell),
/// and `NaiveDateTime::from_str` was ~2% of the record path (`perf record` on `alkasba-bench
/// floor --stages`, issue 20). `None` for anything else, which the general parser then reads
/// (a leap second too: chrono's parser takes `:60`, `and_hms_opt` does not), so the result is
/// always chrono's (`tests::plain_dates_read_as_chrono_reads_them`).
fn plain_date_time(s: &str) -> Option<i64> {
    let b: &[u8; 19] = s.as_bytes().try_into().ok()?;
    let digits = |r: std::ops::Range<usize>| b[r].iter().try_fold(0u32, |n, c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')));
    if [b[4], b[7], b[10], b[13], b[16]] != [b'-', b'-', b'T', b':', b':'] {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)?;
    Some(date.and_hms_opt(digits(11..13)?, digits(14..16)?, digits(17..19)?)?.and_utc().timestamp_micros())
}

/// A phone number as WooCommerce's checkout accepts one (`WC_Validation::is_phone`): digits,
/// white space and `# _ - + / ( ) .`, with at least one digit. No stricter: a real shop's
/// customers type `(555) 555-5555` or `0612 34 56 78`, and an order must not be quarantined for
/// a phone the store took. Hand-written: a character class, where the `phonenumber` crate would
/// check numbering plans the store never checked.
fn is_phone(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_digit() || c.is_whitespace() || "#_-+/().".contains(c)) && s.chars().any(|c| c.is_ascii_digit())
}

fn check_value(at: &[Seg<'_>], spec: &FieldSpec, v: &Value, reasons: &mut Vec<String>) {
    let at = Lazy(at);
    let number = match spec.ty {
        FieldType::String => {
            let Some(s) = v.as_str() else {
                reasons.push(format!("{at}: not a string"));
                return;
            };
            if let Some(allowed) = &spec.allowed
                && !allowed.iter().any(|a| a == s)
            {
                reasons.push(format!("{at}: not one of the allowed values"));
            }
            match spec.format {
                Some(Format::Email) if !email_address::EmailAddress::is_valid(s) => reasons.push(format!("{at}: not an email address")),
                Some(Format::Phone) if !s.is_empty() && !is_phone(s) => reasons.push(format!("{at}: not a phone number")),
                Some(Format::Currency) if iso_currency::Currency::from_code(s).is_none() => reasons.push(format!("{at}: not an ISO 4217 currency code")),
                _ => {}
            }
            None
        }
        FieldType::Integer => match v.as_i64() {
            Some(i) => Some(i as f64),
            None => {
                reasons.push(format!("{at}: not an integer"));
                return;
            }
        },
        FieldType::Number => match v.as_f64() {
            Some(f) => Some(f),
            None => {
                reasons.push(format!("{at}: not a number"));
                return;
            }
        },
        FieldType::Decimal => match decimal(v) {
            Some(d) if d.scale() <= spec.scale as u32 || d.round_dp(spec.scale as u32) == d => rust_decimal::prelude::ToPrimitive::to_f64(&d),
            Some(_) => {
                reasons.push(format!("{at}: more than {} decimal places", spec.scale));
                return;
            }
            None => {
                reasons.push(format!("{at}: not a decimal number"));
                return;
            }
        },
        FieldType::Boolean => {
            if !v.is_boolean() {
                reasons.push(format!("{at}: not true or false"));
            }
            None
        }
        FieldType::Timestamp => {
            if v.as_str().and_then(timestamp_micros).is_none() {
                reasons.push(format!("{at}: not an ISO 8601 date-time"));
            }
            None
        }
        FieldType::Json => None,
    };
    if let Some(n) = number {
        if spec.min.is_some_and(|m| n < m) {
            reasons.push(format!("{at}: below the minimum {}", spec.min.unwrap_or_default()));
        }
        if spec.max.is_some_and(|m| n > m) {
            reasons.push(format!("{at}: above the maximum {}", spec.max.unwrap_or_default()));
        }
    }
}

/// Checks `record` against `stream`'s schema and rules; empty when valid. A stream's records
/// are better checked by one [`Validator`], which splits the pointers once.
pub fn validate(stream: &Stream, record: &Value) -> Vec<String> {
    Validator::new(stream).validate(record)
}

/// A `sum_equals` rule with its pointers split and its tolerance read once.
#[derive(Debug, Clone)]
struct SumRule {
    total: String,
    terms: Vec<Vec<Step>>,
    /// The terms' pointers as a reason names them (`/a + /b`).
    shown: String,
    tolerance: Decimal,
}

/// A stream's schema and rules ready to check records: every pointer split into its steps and
/// every tolerance made a `Decimal` once, not per record (splitting and unescaping the ~25
/// pointers of an order for each record was ~1.5% of a fetcher's CPU, and the tolerance's
/// text ~0.3%: `perf record` during a 1,000,000-order load, issue 20).
#[derive(Debug, Clone)]
pub struct Validator {
    primary_key: Vec<String>,
    fields: Vec<(Vec<Step>, FieldSpec)>,
    rules: Vec<SumRule>,
}

impl Validator {
    pub fn new(stream: &Stream) -> Self {
        let rules = stream
            .rules
            .iter()
            .map(|rule| {
                let Rule::SumEquals { total, terms, tolerance } = rule;
                SumRule {
                    total: total.clone(),
                    terms: terms.iter().map(|t| steps(t)).collect(),
                    shown: terms.join(" + "),
                    // As written in the config: 0.01 is exactly a cent, not its binary neighbour.
                    tolerance: Decimal::from_str(&tolerance.to_string()).unwrap_or(Decimal::ZERO),
                }
            })
            .collect();
        Self { primary_key: stream.primary_key.clone(), fields: stream.schema.iter().map(|(p, spec)| (steps(p), spec.clone())).collect(), rules }
    }

    /// Checks `record`; empty when valid.
    pub fn validate(&self, record: &Value) -> Vec<String> {
        let mut reasons = Vec::new();
        if !record.is_object() {
            reasons.push("record is not a JSON object".to_string());
            return reasons;
        }
        for p in &self.primary_key {
            if matches!(pointer(record, p), None | Some(Value::Null)) {
                reasons.push(format!("{p}: primary key is missing"));
            }
        }
        let mut at = Vec::with_capacity(4);
        for (steps, spec) in &self.fields {
            visit(record, steps, &mut at, &mut |at, v| {
                // WooCommerce writes "" for a value that is not set (a variable product's price,
                // an order's unset date): absent, for every type but text.
                let unset = |v: &Value| matches!(v, Value::String(s) if s.is_empty()) && spec.ty != FieldType::String;
                match v {
                    None | Some(Value::Null) => {
                        let at = path(at);
                        if spec.required && !reasons.iter().any(|r| r.starts_with(&format!("{at}: primary key"))) {
                            reasons.push(format!("{at}: required"));
                        }
                    }
                    Some(v) if unset(v) => {
                        if spec.required {
                            reasons.push(format!("{}: required", path(at)));
                        }
                    }
                    Some(v) => check_value(at, spec, v, &mut reasons),
                }
            });
        }
        for rule in &self.rules {
            let Some(t) = pointer(record, &rule.total).and_then(decimal) else { continue };
            // Checked arithmetic: crafted amounts near Decimal's limit (about 7.9e28) must give
            // a reason, not a panic that dead-letters the page forever.
            let mut sum = Some(Decimal::ZERO);
            for term in &rule.terms {
                visit(record, term, &mut at, &mut |_, v| {
                    if let Some(d) = v.and_then(decimal) {
                        sum = sum.and_then(|s| s.checked_add(d));
                    }
                });
            }
            let Some(diff) = sum.and_then(|sum| t.checked_sub(sum)).map(|d| d.abs()) else {
                reasons.push(format!("{}: the sum of {} is out of range", rule.total, rule.shown));
                continue;
            };
            if diff > rule.tolerance {
                reasons.push(format!("{}: differs from the sum of {} by {diff}", rule.total, rule.shown));
            }
        }
        reasons
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The one stream of a source file whose `[[stream]]` table is `stream`.
    fn one_stream(stream: &str) -> Stream {
        let file = format!("[source]\nname = \"s\"\nbase_url = \"http://h/\"\nauth = {{ type = \"none\" }}\n[[stream]]\n{stream}");
        alkasba_sources::parse("t.toml", &file).unwrap().streams[0].clone()
    }

    fn stream() -> Stream {
        one_stream(
            r#"
name = "orders"
path = "/o"
primary_key = ["/id"]
in_clear = ["/id", "/currency", "/status", "/total", "/created", "/lines"]
paginator = { type = "link_header" }
[stream.schema]
"/id" = { type = "integer", required = true, min = 1 }
"/currency" = { type = "string", required = true, format = "currency" }
"/status" = { type = "string", enum = ["paid", "new"] }
"/total" = { type = "decimal", required = true, min = 0 }
"/created" = { type = "timestamp" }
"/lines/*/qty" = { type = "integer", required = true, min = 1 }
"/billing/email" = { type = "string", format = "email" }
"/billing/phone" = { type = "string", format = "phone" }
[[stream.rule]]
type = "sum_equals"
total = "/total"
terms = ["/lines/*/amount", "/shipping"]
"#,
        )
    }

    fn good() -> Value {
        json!({"id": 7, "currency": "MAD", "status": "paid", "total": "30.50", "shipping": "0.50", "created": "2026-10-01T10:00:00",
               "lines": [{"qty": 1, "amount": "10.00"}, {"qty": 2, "amount": "20.00"}],
               "billing": {"email": "ana@example.ma", "phone": "+212 612345678"}})
    }

    #[test]
    fn a_good_record_passes() {
        assert_eq!(validate(&stream(), &good()), Vec::<String>::new());
    }

    #[test]
    fn each_problem_is_named_without_its_value() {
        let s = stream();
        type Case = (Box<dyn Fn(&mut Value)>, &'static str);
        let cases: Vec<Case> = vec![
            (
                Box::new(|r| {
                    r.as_object_mut().unwrap().remove("id");
                }),
                "/id: primary key is missing",
            ),
            (Box::new(|r| r["currency"] = json!("XYZ")), "/currency: not an ISO 4217 currency code"),
            (Box::new(|r| r["status"] = json!("lost")), "/status: not one of the allowed values"),
            (Box::new(|r| r["lines"][1]["qty"] = json!(-2)), "/lines/1/qty: below the minimum 1"),
            (
                Box::new(|r| {
                    r["lines"][0].as_object_mut().unwrap().remove("qty");
                }),
                "/lines/0/qty: required",
            ),
            (Box::new(|r| r["billing"]["email"] = json!("ana_at_example.ma")), "/billing/email: not an email address"),
            (Box::new(|r| r["billing"]["phone"] = json!("call me")), "/billing/phone: not a phone number"),
            (Box::new(|r| r["total"] = json!("40.50")), "/total: differs from the sum of /lines/*/amount + /shipping by 10.00"),
            (Box::new(|r| r["total"] = json!("abc")), "/total: not a decimal number"),
            (Box::new(|r| r["created"] = json!("yesterday")), "/created: not an ISO 8601 date-time"),
            (Box::new(|r| r["id"] = json!("7")), "/id: not an integer"),
            // Decimal's largest value twice: the sum overflows (it panicked before).
            (
                Box::new(|r| {
                    r["lines"][0]["amount"] = json!("79228162514264337593543950335");
                    r["lines"][1]["amount"] = json!("79228162514264337593543950335");
                }),
                "/total: the sum of /lines/*/amount + /shipping is out of range",
            ),
            // The sum fits, the difference does not.
            (
                Box::new(|r| {
                    r["total"] = json!("-79228162514264337593543950335");
                    r["lines"][0]["amount"] = json!("79228162514264337593543950335");
                    r["lines"][1]["amount"] = json!("-20");
                }),
                "/total: the sum of /lines/*/amount + /shipping is out of range",
            ),
        ];
        for (change, want) in cases {
            let mut r = good();
            change(&mut r);
            let reasons = validate(&s, &r);
            assert!(reasons.iter().any(|x| x == want), "want {want:?}, got {reasons:?}");
            assert!(!reasons.iter().any(|x| x.contains("ana") || x.contains("0612")), "{reasons:?}");
        }
    }

    #[test]
    fn escaped_names_are_looked_up_unescaped_and_named_as_written() {
        let stream = one_stream(
            r#"
name = "o"
path = "/o"
primary_key = ["/id"]
in_clear = ["/id"]
paginator = { type = "link_header" }
[stream.schema]
"/id" = { type = "integer", required = true }
"/meta/a~1b" = { type = "integer", required = true }
"/meta/m~0n/*/q" = { type = "integer" }
"#,
        );
        let v = Validator::new(&stream);
        assert!(v.validate(&json!({"id": 1, "meta": {"a/b": 2, "m~n": [{"q": 3}]}})).is_empty());
        assert_eq!(v.validate(&json!({"id": 1, "meta": {"a/b": "x", "m~n": [{"q": 3}, {"q": "y"}]}})), ["/meta/a~1b: not an integer", "/meta/m~0n/1/q: not an integer"]);
        assert_eq!(v.validate(&json!({"id": 1, "meta": {"ab": 2}})), ["/meta/a~1b: required"]);
    }

    #[test]
    fn optional_parents_may_be_absent() {
        let mut r = good();
        r.as_object_mut().unwrap().remove("billing");
        assert!(validate(&stream(), &r).is_empty());
        assert!(!validate(&stream(), &json!([1])).is_empty());
    }

    #[test]
    fn an_empty_string_is_an_unset_value_except_for_text() {
        let mut r = good();
        r["created"] = json!("");
        assert!(validate(&stream(), &r).is_empty(), "an unset optional timestamp");
        r["total"] = json!("");
        assert_eq!(validate(&stream(), &r), ["/total: required"]);
    }

    #[test]
    fn phones_are_checked_as_woocommerce_checks_them() {
        for ok in ["(555) 555-5555", "0612 34 56 78", "+212.612.345.678", "#12/34_5"] {
            let mut r = good();
            r["billing"]["phone"] = json!(ok);
            assert!(validate(&stream(), &r).is_empty(), "{ok}");
        }
    }

    proptest::proptest! {
        /// Strings shaped like WooCommerce's dates, in range and out of it, with any separator:
        /// the fast path gives what chrono's parser gives.
        #[test]
        fn plain_dates_read_as_chrono_reads_them(y in 0u32..10000, mo in 0u32..14, d in 0u32..33, h in 0u32..26, mi in 0u32..62, sec in 0u32..62,
                                                 seps in proptest::sample::select(vec!["--T::", "--t::", "-- ::", "/-T::", "--T:.", "--T::"])) {
            let sep: Vec<char> = seps.chars().collect();
            let s = format!("{y:04}{}{mo:02}{}{d:02}{}{h:02}{}{mi:02}{}{sec:02}", sep[0], sep[1], sep[2], sep[3], sep[4]);
            let chrono = s.parse::<chrono::NaiveDateTime>().ok().map(|t| t.and_utc().timestamp_micros());
            let fast = plain_date_time(&s);
            proptest::prop_assert!(fast.is_none() || fast == chrono, "{s}: {fast:?} vs {chrono:?}");
            proptest::prop_assert_eq!(timestamp_micros(&s), chrono.or_else(|| chrono::DateTime::parse_from_rfc3339(&s).ok().map(|t| t.timestamp_micros())), "{}", s);
            if seps == "--T::" && chrono.is_some() && sec < 60 {
                proptest::prop_assert_eq!(fast, chrono, "{}", s);
            }
        }
    }

    #[test]
    fn timestamps_read_with_and_without_an_offset() {
        let utc = timestamp_micros("2026-10-01T10:00:00").unwrap();
        assert_eq!(timestamp_micros("2026-10-01T10:00:00Z"), Some(utc));
        assert_eq!(timestamp_micros("2026-10-01T12:00:00+02:00"), Some(utc));
        assert_eq!(timestamp_micros("2026-10-01T10:00:00.250"), Some(utc + 250_000));
        for bad in ["", "2026-10-01", "2026-13-01T10:00:00", "2026-10-01T10:00:00+2", "yesterday"] {
            assert_eq!(timestamp_micros(bad), None, "{bad}");
        }
    }
}
