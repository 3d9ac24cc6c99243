//! A stream's allow-list of fields kept in clear, and the split of a record into what stays in
//! clear and what is sealed (everything else, declared or not: personal data is sealed by
//! default).
//!
//! Hand-written: the split walks the record once, moving (not copying) the values it removes,
//! and names each by an RFC 6901 pointer so the sealed part merges back exactly; no JSON crate
//! offers a projection by a path set with `*` for array elements.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;

use alkasba_sources::raw;
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

/// A node's children met in name order, as a record's fields come from [`raw::Object::iter`]:
/// each name is found by walking the two sorted lists together (a merge join) instead of a
/// tree search per field. An order's ~50 fields cost ~75 name comparisons instead of ~250;
/// comparing names (`memcmp`) was the fetcher's top symbol (issue 20, docs/benchmarks.md).
struct Children<'n> {
    named: std::iter::Peekable<std::collections::btree_map::Iter<'n, String, Node>>,
    any: Option<&'n Node>,
}

impl<'n> Children<'n> {
    fn of(node: &'n Node) -> Self {
        Self { named: node.children.iter().peekable(), any: node.any.as_deref() }
    }

    /// What `node.child(name)` gives, for names asked in strictly increasing order.
    fn next(&mut self, name: &str) -> Option<&'n Node> {
        while let Some((k, n)) = self.named.peek() {
            match k.as_str().cmp(name) {
                std::cmp::Ordering::Less => {
                    self.named.next();
                }
                std::cmp::Ordering::Equal => return Some(*n),
                std::cmp::Ordering::Greater => break,
            }
        }
        self.any
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
                push_segment(at, k);
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

/// What stays in clear of one value, split from its text ([`ClearFields::split_text`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Kept<'a> {
    /// All of it, as received.
    Whole(&'a str),
    /// An object or array with parts moved out: what is left, as compact JSON (keys in order, a
    /// moved array element left as `null`, as [`ClearFields::split`] leaves them).
    Rebuilt(String),
}

impl<'a> Kept<'a> {
    /// The JSON text.
    pub fn json(&self) -> &str {
        match self {
            Kept::Whole(t) => t,
            Kept::Rebuilt(t) => t,
        }
    }

    /// A string's text (unescaped), another value's JSON text ([`raw::text`]): borrowed from the
    /// record when kept whole, owned when rebuilt.
    pub fn text(&self) -> Cow<'a, str> {
        match self {
            Kept::Whole(t) => raw::text(t),
            Kept::Rebuilt(t) => Cow::Owned(raw::text(t).into_owned()),
        }
    }
}

/// A record split from its text: the same parts [`ClearFields::split`] makes of its `Value`.
#[derive(Debug, Default)]
pub struct TextSplit<'a, 'k> {
    /// The top-level fields kept (in part or whole), in name order.
    pub kept: Vec<(&'k raw::Key<'a>, Kept<'a>)>,
    /// What is sealed.
    sealed: Sealed<'a>,
}

/// The sealed values of a record and their RFC 6901 pointers. The pointers sit one after another
/// in one string rather than a `String` each: an order seals ~35 values, and their allocations
/// were a visible share of the fetcher's allocator time (issue 20, `perf`).
#[derive(Debug, Default)]
struct Sealed<'a> {
    pointers: String,
    /// Each value's text and where its pointer sits in `pointers`.
    values: Vec<(std::ops::Range<usize>, &'a str)>,
}

impl<'a> Sealed<'a> {
    fn push(&mut self, pointer: &str, value: &'a str) {
        let start = self.pointers.len();
        self.pointers.push_str(pointer);
        self.values.push((start..self.pointers.len(), value));
    }

    fn len(&self) -> usize {
        self.values.len()
    }
}

impl<'a> TextSplit<'a, '_> {
    /// What is sealed: each value's text under its RFC 6901 pointer, in pointer order.
    pub fn sealed(&self) -> impl ExactSizeIterator<Item = (&str, &'a str)> + '_ {
        self.sealed.values.iter().map(|(p, v)| (&self.sealed.pointers[p.clone()], *v))
    }

    /// The sealed part as one JSON object (pointer → value), as [`ClearFields::split`]'s map
    /// serialises, the values as the record gave them; `None` when nothing is sealed.
    pub fn sealed_json(&self) -> Option<String> {
        if self.sealed.values.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(self.sealed().map(|(p, v)| p.len() + v.len() + 4).sum::<usize>() + 2);
        out.push('{');
        for (i, (p, v)) in self.sealed().enumerate() {
            if i > 0 {
                out.push(',');
            }
            raw::push_str(&mut out, p);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        Some(out)
    }
}

/// One part of a split value.
enum Part<'a> {
    Keep(Kept<'a>),
    Move,
}

impl ClearFields {
    /// [`ClearFields::split`] on a record given as text and its top-level fields (`record`, from
    /// [`raw::object`]): nothing is parsed into a `Value`, kept and sealed values stay slices of
    /// `text` and only objects with parts moved out are written again (issue 20: parsing,
    /// splitting and serialising `Value` trees was half of ingestion's CPU per record).
    pub fn split_text<'a, 'k>(&self, text: &'a str, record: &'k raw::Object<'a>) -> TextSplit<'a, 'k> {
        let root = &self.root;
        let mut out = TextSplit::default();
        if root.whole || record.is_empty() {
            out.kept = record.iter().map(|(k, v)| (k, Kept::Whole(v))).collect();
            return out;
        }
        if root.children.is_empty() && root.any.is_none() {
            out.sealed.push("", text);
            return out;
        }
        let mut at = String::new();
        let mut children = Children::of(root);
        for (k, v) in record.iter() {
            let len = at.len();
            push_segment(&mut at, k);
            match split_text_node(v, children.next(k), &mut at, &mut out.sealed) {
                Part::Keep(kept) => out.kept.push((k, kept)),
                Part::Move => out.sealed.push(&at, v),
            }
            at.truncate(len);
        }
        // Pointers come in key order at each level; `split`'s map orders them as strings
        // (`/a/10` before `/a/2`).
        // (Already in order but for such indices: the sort then only checks the order.)
        let Sealed { pointers, values } = &mut out.sealed;
        values.sort_by(|a, b| pointers[a.0.clone()].cmp(&pointers[b.0.clone()]));
        out
    }
}

fn push_segment(at: &mut String, key: &str) {
    at.push('/');
    if key.contains(['~', '/']) {
        at.push_str(&escape(key));
    } else {
        at.push_str(key);
    }
}

/// [`split_node`] on a value's text: `node` `None` is a field the allow-list does not name.
fn split_text_node<'a>(text: &'a str, node: Option<&Node>, at: &mut String, out: &mut Sealed<'a>) -> Part<'a> {
    let Some(node) = node else {
        return if raw::is_empty(text) { Part::Keep(Kept::Whole(text)) } else { Part::Move };
    };
    if node.whole || raw::is_empty(text) {
        return Part::Keep(Kept::Whole(text));
    }
    let moved_before = out.len();
    let mut rebuilt = String::with_capacity(text.len());
    if text.starts_with('{') && (!node.children.is_empty() || node.any.is_some()) {
        // Valid JSON starting with `{` is an object; were it not, all of it is sealed.
        let Some(obj) = raw::valid_object(text) else { return Part::Move };
        rebuilt.push('{');
        let mut children = Children::of(node);
        for (k, v) in obj.iter() {
            let len = at.len();
            push_segment(at, k);
            match split_text_node(v, children.next(k), at, out) {
                Part::Keep(kept) => {
                    if rebuilt.len() > 1 {
                        rebuilt.push(',');
                    }
                    raw::push_str(&mut rebuilt, k);
                    rebuilt.push(':');
                    rebuilt.push_str(kept.json());
                }
                Part::Move => out.push(at, v),
            }
            at.truncate(len);
        }
        rebuilt.push('}');
    } else if let (true, Some(any)) = (text.starts_with('['), node.any.as_deref()) {
        let Some(items) = raw::valid_array(text) else { return Part::Move };
        rebuilt.push('[');
        for (i, item) in items.iter().enumerate() {
            let len = at.len();
            // Writing to a String cannot fail.
            let _ = write!(at, "/{i}");
            if i > 0 {
                rebuilt.push(',');
            }
            match split_text_node(item, Some(any), at, out) {
                Part::Keep(kept) => rebuilt.push_str(kept.json()),
                // An element moved whole leaves a null, so the indices of the others hold.
                Part::Move => {
                    out.push(at, item);
                    rebuilt.push_str("null");
                }
            }
            at.truncate(len);
        }
        rebuilt.push(']');
    } else {
        return Part::Move;
    }
    // Nothing moved below: the value as received.
    if out.len() == moved_before { Part::Keep(Kept::Whole(text)) } else { Part::Keep(Kept::Rebuilt(rebuilt)) }
}

/// Puts the values of a sealed part (from [`ClearFields::split`], once opened) back into
/// `record`. A container kept as JSON text (a bronze text column) is parsed to receive them.
pub fn merge(record: &mut Value, sealed: Map<String, Value>) {
    for (pointer, value) in sealed {
        let segs: Vec<String> = pointer.split('/').skip(1).map(|s| raw::unescape(s).into_owned()).collect();
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

    /// Issue 20: the split made on a record's text (compact or pretty) is the split of its
    /// `Value`: the same fields kept, the same values sealed under the same pointers, in the
    /// map's order.
    #[test]
    fn the_split_of_a_records_text_is_the_split_of_its_value() {
        let items: Vec<Value> = (0..12).map(|i| if i % 4 == 2 { json!(format!("odd {i}")) } else { json!({"product_id": i, "meta_data": [{"k": i}], "e": []}) }).collect();
        let record = json!({
            "id": 7, "order_key": "wc_order_abc", "customer_note": "", "x": null, "empty": {},
            "billing": {"country": "MA", "email": "ana@example.ma", "phone": "+212600000000"},
            "shipping": {"country": "MA"}, "line_items": items, "tags": "not an array",
            "meta_data": [{"key": "national/id~", "value": "AB123"}], "a/b": "x", "q\"~": {"r": 1},
        });
        let sets: [&[&str]; 5] = [&["/id", "/line_items/*/product_id", "/billing/country", "/shipping", "/tags/*/x", "/q\"~0/r"], &["/id"], &[], &["/*"], &["/line_items/*"]];
        for set in sets {
            let f = fields(set);
            for text in [record.to_string(), serde_json::to_string_pretty(&record).unwrap()] {
                let top = raw::object(&text).unwrap();
                let split = f.split_text(&text, &top);
                let mut clear = record.clone();
                let sealed = f.split(&mut clear);
                let kept: Map<String, Value> = split.kept.iter().map(|(k, v)| (k.to_string(), serde_json::from_str(v.json()).unwrap())).collect();
                assert_eq!(Value::Object(kept), clear, "{set:?}");
                let ours: Option<Value> = split.sealed_json().map(|s| serde_json::from_str(&s).unwrap());
                assert_eq!(ours, Some(Value::Object(sealed.clone())).filter(|_| !sealed.is_empty()), "{set:?}");
                let pointers: Vec<&str> = split.sealed().map(|(p, _)| p).collect();
                assert_eq!(pointers, sealed.keys().map(String::as_str).collect::<Vec<_>>(), "{set:?}: in the map's order");
            }
        }
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
