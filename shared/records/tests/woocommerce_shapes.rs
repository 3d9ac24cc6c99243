//! Issue 18: records shaped as the official WooCommerce REST v3 documentation shows them
//! (`tests/fixtures/woocommerce`) pass each shipped stream's validation, and everything the
//! stream does not declare in clear (names, emails, phones, addresses, IPs, notes, `order_key`,
//! `avatar_url`, `meta_data` written by plugins, a fee's or a refund's free text) is sealed:
//! no bronze cell holds any of it, and the sealed part opens back into exactly the record.

use std::path::PathBuf;
use std::sync::Arc;

use alkasba_lake::arrow::array::Array;
use alkasba_lake::arrow::compute::cast;
use alkasba_lake::arrow::datatypes::DataType;
use alkasba_pii::{LocalKeys, Opener, Sealer, Tokenizer};
use alkasba_records::{Origin, Prepared, SEALED, merge};
use serde_json::{Map, Value};

fn fixture(name: &str) -> Value {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    let path = PathBuf::from(manifest).join("../../tests/fixtures/woocommerce").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn prepared(stream: &str) -> Prepared {
    let files = alkasba_sources::shipped().unwrap();
    let def = files.iter().filter(|f| f.source.name == "alkasba_store").flat_map(|f| f.streams.iter()).find(|s| s.name == stream).unwrap();
    Prepared::new("alkasba_store", def)
}

/// Every text a record holds in its personal places, found by walking the fixture: the values
/// of billing, shipping, meta_data (at any depth), and the named free-text and secret fields.
fn personal(record: &Value) -> Vec<String> {
    fn leaves(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if s.len() >= 4 => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
            Value::Object(o) => o.iter().filter(|(k, _)| *k != "id" && *k != "key").for_each(|(_, x)| leaves(x, out)),
            _ => {}
        }
    }
    fn walk(v: &Value, out: &mut Vec<String>) {
        if let Value::Object(o) = v {
            for (k, x) in o {
                match k.as_str() {
                    "billing"
                    | "shipping"
                    | "meta_data"
                    | "email"
                    | "first_name"
                    | "last_name"
                    | "username"
                    | "avatar_url"
                    | "order_key"
                    | "customer_ip_address"
                    | "customer_user_agent"
                    | "customer_note"
                    | "transaction_id"
                    | "reason"
                    | "purchase_note" => leaves(x, out),
                    _ => walk(x, out),
                }
            }
        } else if let Value::Array(a) = v {
            a.iter().for_each(|x| walk(x, out));
        }
    }
    let mut out = Vec::new();
    walk(record, &mut out);
    // Country codes and empty-ish values identify no one (and `country` is kept for BI).
    out.retain(|s| !["Marrakech", "customer"].contains(&s.as_str()));
    out
}

#[tokio::test]
async fn documented_payloads_validate_and_keep_nothing_personal_in_clear() {
    let tokens = Tokenizer::new("token-key-for-tests-0123456789abcdef").unwrap();
    let keys = Arc::new(LocalKeys::random().unwrap());
    let origin = Origin { run_id: "r", page: 1, url: "https://shop.example.ma/wp-json/wc/v3/x" };
    let now = chrono::Utc::now();
    for (name, stream) in [("order", "orders"), ("customer", "customers"), ("product", "products"), ("refund", "refunds")] {
        let record = fixture(name);
        let needles = personal(&record);
        assert!(needles.len() >= 2, "{name}: the fixture carries personal data to look for: {needles:?}");
        let prep = prepared(stream);
        let mut sealer = Sealer::new(keys.clone(), alkasba_pii::kms_context("test", "stream"));
        let row = match prep.process(record.clone(), origin, &tokens, &mut sealer).await.unwrap() {
            Ok(row) => row,
            Err(q) => panic!("{name}: the documented shape is quarantined: {:?}", q.reasons),
        };
        let batch = prep.bronze_batch(std::slice::from_ref(&row), "r", now).unwrap();
        let mut sealed = None;
        for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
            let text = cast(col, &DataType::Utf8).unwrap();
            let text = text.as_any().downcast_ref::<alkasba_lake::arrow::array::StringArray>().unwrap();
            if text.is_null(0) {
                continue;
            }
            let cell = text.value(0);
            for n in &needles {
                assert!(!cell.contains(n.as_str()), "{name}: bronze column {} holds {n:?} in clear: {cell}", field.name());
            }
            if field.name() == SEALED {
                sealed = Some(cell.to_string());
            }
        }
        // The sealed part puts the record back together, field for field.
        let sealed = sealed.unwrap_or_else(|| panic!("{name}: no _sealed column value"));
        let mut opener = Opener::new(keys.clone(), sealer.take_new_keys());
        let hidden: Map<String, Value> = serde_json::from_slice(&opener.open(&prep.place(Some(&row.key), SEALED), &sealed).await.unwrap()).unwrap();
        let mut clear = record.clone();
        prep.in_clear().split(&mut clear);
        merge(&mut clear, hidden);
        assert_eq!(clear, record, "{name}: clear part + sealed part = the record");
    }
}

#[tokio::test]
async fn what_analytics_reads_stays_in_clear() {
    let tokens = Tokenizer::new("token-key-for-tests-0123456789abcdef").unwrap();
    let mut sealer = Sealer::new(Arc::new(LocalKeys::random().unwrap()), alkasba_pii::kms_context("test", "stream"));
    let prep = prepared("orders");
    let p = prep.protect(fixture("order"), &tokens, &mut sealer).await.unwrap();
    assert!(p.reasons.is_empty(), "{:?}", p.reasons);
    let r = &p.record;
    for field in ["/id", "/status", "/currency", "/total", "/customer_id", "/date_created_gmt", "/line_items/0/product_id", "/line_items/1/total", "/coupon_lines/0/code"] {
        assert!(r.pointer(field).is_some_and(|v| !v.is_null()), "{field} is not in clear: {r}");
    }
    for gone in ["/billing", "/order_key", "/meta_data", "/line_items/0/meta_data", "/fee_lines/0/name", "/refunds/0/reason", "/customer_note", "/_links"] {
        assert!(r.pointer(gone).is_none(), "{gone} is in clear: {r}");
    }
    assert!(p.tokens["email_token"].is_some() && p.tokens["phone_token"].is_some(), "{:?}", p.tokens);
}

/// A shop's own order statuses (registered by plugins) come through the REST API like the core
/// ones: such an order is valid, not quarantined.
#[tokio::test]
async fn a_custom_order_status_is_valid() {
    let tokens = Tokenizer::new("token-key-for-tests-0123456789abcdef").unwrap();
    let mut sealer = Sealer::new(Arc::new(LocalKeys::random().unwrap()), alkasba_pii::kms_context("test", "stream"));
    let mut order = fixture("order");
    order["status"] = Value::from("shipped");
    let p = prepared("orders").protect(order, &tokens, &mut sealer).await.unwrap();
    assert!(p.reasons.is_empty(), "{:?}", p.reasons);
}

/// The view parsed into the view of the record before ([`Prepared::view_into`], as a page's
/// records are processed) is the record's own view, whether the fields read are the same, fewer,
/// more or others, in any order of records.
#[test]
fn a_view_parsed_over_the_last_records_view_is_the_records_own() {
    let prep = prepared("orders");
    let order = fixture("order");
    let mut variants = vec![order.clone()];
    for (drop, add) in [(Some("currency"), None), (None, Some(("date_paid_gmt", Value::Null))), (Some("line_items"), Some(("unread_by_the_stream", Value::from(1)))), (Some("id"), None)] {
        let mut v = order.clone();
        let m = v.as_object_mut().unwrap();
        if let Some(k) = drop {
            assert!(m.remove(k).is_some(), "{k}");
        }
        if let Some((k, x)) = add {
            m.insert(k.into(), x);
        }
        variants.push(v);
    }
    let mut changed = order.clone();
    changed["total"] = Value::from("1.00");
    changed["billing"]["email"] = Value::from("someone.else@example.com");
    variants.push(changed);
    let texts: Vec<String> = variants.iter().map(|v| serde_json::to_string(v).unwrap()).collect();
    let mut view = Value::Null;
    // Each variant after each other one (and itself).
    for a in &texts {
        for b in &texts {
            for text in [a, b] {
                let top = alkasba_sources::raw::object(text).unwrap();
                prep.view_into(&top, &mut view).unwrap();
                assert_eq!(Some(&view), prep.view(&top).as_ref(), "{text}");
            }
        }
    }
}
