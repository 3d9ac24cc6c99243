//! A stream's allow-list of fields kept in clear, and the split of a record into what stays in
//! clear and what is sealed (everything else, declared or not: personal data is sealed by
//! default).
//!
//! Hand-written: the split walks the record once, moving (not copying) the values it removes,
//! and names each by an RFC 6901 pointer so the sealed part merges back exactly; no JSON crate
//! offers a projection by a path set with `*` for array elements.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Map, Value};

/// The field a record's sealed part travels in (a bronze column, a key of a protected record).
pub const SEALED: &str = "_sealed";

/// A stream's `in_clear` pointers as a tree.
#[derive(Debug, Clone, Default)]
pub struct ClearFields {
    root: Node,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// The value here is kept in clear, all of it.
    whole: bool,
    /// Named children kept (in part or whole).
    children: BTreeMap<String, Node>,
    /// `*`: what is kept of every element of an array.
    any: Option<Box<Node>>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.get(name).or(self.any.as_deref())
    }
}

/// A value that reveals nothing (null, empty text, an empty array or object): kept in clear,
/// so a record whose only undeclared fields are empty needs no sealing.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

impl ClearFields {
    /// The allow-list of `pointers` (`/id`, `/line_items/*/product_id`; `*` is every element of
    /// an array).
    pub fn new<'a>(pointers: impl IntoIterator<Item = &'a String>) -> Self {
        let mut root = Node::default();
        for p in pointers {
            let mut n = &mut root;
            for seg in p.split('/').skip(1) {
                n = if seg == "*" { n.any.get_or_insert_with(Box::default) } else { n.children.entry(seg.to_string()).or_default() };
            }
            n.whole = true;
        }
        Self { root }
    }

    /// Whether any part of the top-level field `name` is kept in clear.
    pub fn keeps_top(&self, name: &str) -> bool {
        self.root.whole || self.root.children.contains_key(name)
    }

    /// Removes from `record` everything the allow-list does not keep (empty values excepted)
    /// and returns it, each removed value under its RFC 6901 pointer.
    pub fn split(&self, record: &mut Value) -> Map<String, Value> {
        let mut out = Map::new();
        let mut at = String::new();
        if split_node(record, &self.root, &mut at, &mut out) {
            out.insert(at, std::mem::replace(record, Value::Object(Map::new())));
        }
        out
    }
}

/// Moves what `node` does not keep out of `v`, in place, into `out`; `true` when all of `v` is
/// to move (the caller moves it, under its own pointer). In place: rebuilding every object
/// without its sealed fields cost more than all of validation (issue 20).
fn split_node(v: &mut Value, node: &Node, at: &mut String, out: &mut Map<String, Value>) -> bool {
    if node.whole || is_empty(v) {
        return false;
    }
    match (v, node.any.as_deref()) {
        (Value::Object(obj), any) if !node.children.is_empty() || any.is_some() => {
            obj.retain(|k, val| {
                let len = at.len();
                at.push('/');
                if k.contains(['~', '/']) {
                    at.push_str(&escape(k));
                } else {
                    at.push_str(k);
                }
                let moves = match node.child(k) {
                    Some(c) => split_node(val, c, at, out),
                    None => !is_empty(val),
                };
                if moves {
                    out.insert(at.clone(), val.take());
                }
                at.truncate(len);
                !moves
            });
            false
        }
        (Value::Array(items), Some(any)) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = at.len();
                // Writing to a String cannot fail.
                let _ = write!(at, "/{i}");
                // An element moved whole leaves a null, so the indices of the others hold.
                if split_node(item, any, at, out) {
                    out.insert(at.clone(), item.take());
                }
                at.truncate(len);
            }
            false
        }
        _ => true,
    }
}

/// Puts the values of a sealed part (from [`ClearFields::split`], once opened) back into
/// `record`. A container kept as JSON text (a bronze text column) is parsed to receive them.
pub fn merge(record: &mut Value, sealed: Map<String, Value>) {
    for (pointer, value) in sealed {
        let segs: Vec<String> = pointer.split('/').skip(1).map(unescape).collect();
        set(record, &segs, value);
    }
}

fn set(at: &mut Value, segs: &[String], value: Value) {
    let Some((first, rest)) = segs.split_first() else {
        *at = value;
        return;
    };
    if let Value::String(s) = at
        && let Ok(parsed @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(s)
    {
        *at = parsed;
    }
    match at {
        Value::Array(a) => {
            if let Ok(i) = first.parse::<usize>() {
                if a.len() <= i {
                    a.resize(i + 1, Value::Null);
                }
                set(&mut a[i], rest, value);
            }
        }
        _ => {
            if !at.is_object() {
                *at = Value::Object(Map::new());
            }
            if let Value::Object(o) = at {
                set(o.entry(first.clone()).or_insert(Value::Null), rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(p: &[&str]) -> ClearFields {
        let v: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        ClearFields::new(&v)
    }

    #[test]
    fn only_the_declared_paths_stay_and_the_rest_merges_back_exactly() {
        let f = fields(&["/id", "/line_items/*/product_id", "/line_items/*/total", "/billing/country"]);
        let original = json!({
            "id": 7, "order_key": "wc_order_abc", "customer_note": "",
            "billing": {"country": "MA", "email": "ana@example.ma", "phone": "+212600000000"},
            "line_items": [{"product_id": 3, "total": "9.00", "meta_data": [{"key": "Gift message", "value": "Love, Ana"}]}, "odd"],
            "meta_data": [{"key": "national/id~", "value": "AB123"}],
            "a/b": "x",
        });
        let mut r = original.clone();
        let sealed = f.split(&mut r);
        assert_eq!(r, json!({"id": 7, "customer_note": "", "billing": {"country": "MA"}, "line_items": [{"product_id": 3, "total": "9.00"}, null]}));
        let text = serde_json::to_string(&sealed).unwrap();
        assert!(text.contains("wc_order_abc") && text.contains("Love, Ana") && text.contains("AB123") && text.contains("ana@example.ma"));
        assert!(sealed.contains_key("/meta_data") && sealed.contains_key("/a~1b") && sealed.contains_key("/line_items/1"));
        merge(&mut r, sealed);
        assert_eq!(r, original);
    }

    #[test]
    fn a_record_with_only_declared_or_empty_fields_has_nothing_to_seal() {
        let f = fields(&["/id", "/price"]);
        let mut r = json!({"id": 1, "price": "3.00", "meta_data": [], "note": "", "x": null});
        assert!(f.split(&mut r).is_empty());
        assert_eq!(r["meta_data"], json!([]));
    }

    #[test]
    fn a_text_column_receives_its_nested_values() {
        let mut row = json!({"line_items": "[{\"product_id\":3}]"});
        let mut sealed = Map::new();
        sealed.insert("/line_items/0/meta_data".into(), json!([{"key": "k", "value": "v"}]));
        merge(&mut row, sealed);
        assert_eq!(row["line_items"][0]["meta_data"][0]["value"], "v");
    }
}
