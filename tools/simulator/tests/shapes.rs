//! Issue 18: the simulator is never kinder than the real API. Every field it renders, at every
//! depth, exists in the record shaped as WooCommerce's REST v3 documentation gives it
//! (`tests/fixtures/woocommerce`), with the same JSON type: a project relying on a field our
//! simulator invents would fail here before it fails on a real shop.

use std::collections::BTreeMap;
use std::path::PathBuf;

use alkasba_sim::data::Shape;
use alkasba_sim::store::{Resource, Store};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    let path = PathBuf::from(manifest).join("../../tests/fixtures/woocommerce").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The JSON type of each path (`*` for array elements); null, empty strings and empty arrays
/// say nothing about the type the field has when set.
fn shape(v: &Value, at: String, out: &mut BTreeMap<String, &'static str>) {
    let ty = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(s) if s.is_empty() => "null",
        Value::String(_) => "string",
        Value::Array(a) => {
            a.iter().for_each(|x| shape(x, format!("{at}/*"), out));
            "array"
        }
        Value::Object(o) => {
            o.iter().for_each(|(k, x)| shape(x, format!("{at}/{k}"), out));
            "object"
        }
    };
    let slot = out.entry(at).or_insert(ty);
    if *slot == "null" {
        *slot = ty;
    }
}

#[test]
fn every_rendered_field_exists_in_the_documented_shape_with_its_type() {
    let store = Store::new(Shape { seed: 11, products: 40, customers: 120, orders: 400, end: chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(), days: 30 }, 0.0);
    for (r, name) in [(Resource::Orders, "order"), (Resource::Customers, "customer"), (Resource::Products, "product"), (Resource::Refunds, "refund")] {
        let mut real = BTreeMap::new();
        shape(&fixture(name), String::new(), &mut real);
        let mut ours = BTreeMap::new();
        let n = store.len(r).min(200) as u32;
        assert!(n > 0, "{name}: the store has some");
        for id in 1..=n {
            shape(&store.render(r, id), String::new(), &mut ours);
        }
        for (path, ty) in &ours {
            let Some(want) = real.get(path) else { panic!("{name}: the simulator renders {path}, which WooCommerce does not have") };
            assert!(*ty == "null" || *want == "null" || ty == want, "{name}{path}: the simulator gives a {ty}, WooCommerce a {want}");
        }
    }
}
