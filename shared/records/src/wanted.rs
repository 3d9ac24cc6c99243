//! The parts of a record a stream reads, and a parse of a field that builds only those.
//!
//! A record's fields the stream reads are parsed into `serde_json::Value`s for validation,
//! keys, tokens and the clear columns; an order's `line_items` and `billing` were most of that
//! parse (4.3 of 5.5 µs per order, `alkasba-bench floor --stages`), yet only four fields of a
//! line and four of an address are ever looked at. [`Wanted`] is the tree of the stream's
//! pointers; [`Wanted::parse`] builds a value whose objects hold only the fields on those
//! pointers (the others are scanned, as the syntax must still be checked, but not built),
//! whose arrays keep every element (indices and `*` must still count them), and whose values at
//! the end of a pointer are whole. What a reader asks of it by those pointers is what it would
//! get from the whole value. A `json`-typed schema field is only checked for being present and
//! set (`validate`), which a pruned object or array still answers, so it prunes like a parent.
//! serde_json offers no partial parse; this is a `DeserializeSeed` over its own `Value`.

use std::collections::BTreeMap;
use std::fmt;

use alkasba_sources::raw::{Key, unescape};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The tree of the paths read below one value.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Wanted {
    /// A pointer ends here and its reader needs the value as it is.
    whole: bool,
    /// Object fields read below this value, by unescaped name.
    fields: BTreeMap<String, Wanted>,
    /// What is read below each element when this value is an array: the union of the `*`
    /// segments and the numeric ones (a superset for an index named alone, which is safe).
    elements: Option<Box<Wanted>>,
}

impl Wanted {
    /// Adds an RFC 6901 pointer (`*` for every element); `whole`: the value it ends at is
    /// needed as it is, else only whether it is there, null, empty text or something else.
    pub fn add(&mut self, pointer: &str, whole: bool) {
        match pointer.strip_prefix('/') {
            Some(rest) => {
                let segs: Vec<_> = rest.split('/').map(unescape).collect();
                self.add_segs(&segs, whole);
            }
            // The whole value (""), or not a pointer: built whole, the safe superset.
            None => self.whole = true,
        }
    }

    fn add_segs(&mut self, segs: &[std::borrow::Cow<'_, str>], whole: bool) {
        let Some((seg, rest)) = segs.split_first() else {
            self.whole |= whole;
            return;
        };
        // `*` and a decimal index name array elements (in `validate`), and also an object's
        // field of that name (in `Value::pointer`): both are kept.
        if seg == "*" || seg.parse::<usize>().is_ok() {
            self.elements.get_or_insert_with(Default::default).add_segs(rest, whole);
        }
        self.fields.entry(seg.to_string()).or_default().add_segs(rest, whole);
    }

    /// The fields read below an object, by name.
    pub fn fields(&self) -> impl Iterator<Item = (&String, &Wanted)> {
        self.fields.iter()
    }

    /// What is read below field `name`. A scan comparing lengths first rather than a tree
    /// search: below a record's top level these trees hold a few names (an address's email,
    /// phone, country and city; a line's four), most of a different length from the name asked,
    /// so few comparisons reach `memcmp`, where a tree search makes ~log n of them per field of
    /// every nested object parsed (issue 20: `memcmp` was the fetcher's top symbol).
    fn field(&self, name: &str) -> Option<&Wanted> {
        self.fields.iter().find(|(k, _)| k.len() == name.len() && k.as_str() == name).map(|(_, w)| w)
    }

    /// `text` (one JSON value) parsed as far as this tree reads it.
    pub fn parse(&self, text: &str) -> serde_json::Result<Value> {
        let mut de = serde_json::Deserializer::from_str(text);
        let v = Seed(self).deserialize(&mut de)?;
        de.end()?;
        Ok(v)
    }
}

struct Seed<'w>(&'w Wanted);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.whole {
            return Value::deserialize(d);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    // Scalars are kept whole, as serde_json's own `Value` visitor builds them.
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let none = Wanted::default();
        let each = self.0.elements.as_deref().unwrap_or(&none);
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(Seed(each))? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<Key<'de>>()? {
            match self.0.field(&k) {
                // Of a name given twice, the last counts (`insert` replaces), as in a `Value`.
                Some(w) => {
                    let v = map.next_value_seed(Seed(w))?;
                    out.insert(k.0.into_owned(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_only_what_the_pointers_read_and_keeps_every_element() {
        let mut w = Wanted::default();
        w.add("/lines/*/qty", true);
        w.add("/lines", false);
        w.add("/billing/email", true);
        w.add("/n", true);
        w.add("/tags/1", true);
        let text = r#"{"lines": [{"qty": 2, "name": "x"}, {"name": "y"}, 7], "billing": {"email": "a@b.c", "street": "s", "email": "d@e.f"},
                       "n": {"deep": [1, {"k": "v"}]}, "tags": ["a", "b"], "other": [1, 2, {"z": null}]}"#;
        let v = w.parse(text).unwrap();
        assert_eq!(v, json!({"lines": [{"qty": 2}, {}, 7], "billing": {"email": "d@e.f"}, "n": {"deep": [1, {"k": "v"}]}, "tags": ["a", "b"]}));
        let whole: Value = serde_json::from_str(text).unwrap();
        for p in ["/lines/0/qty", "/lines/1/qty", "/lines/2", "/billing/email", "/n", "/tags/1", "/tags/0", "/missing"] {
            if p != "/tags/0" {
                assert_eq!(v.pointer(p), whole.pointer(p), "{p}");
            }
        }
    }

    #[test]
    fn bad_json_is_an_error_even_where_nothing_is_built() {
        let mut w = Wanted::default();
        w.add("/a", true);
        assert!(w.parse(r#"{"a": 1, "b": [1, }"#).is_err());
        assert!(w.parse(r#"{"a": 1} x"#).is_err());
        assert_eq!(w.parse(r#""text""#).unwrap(), json!("text"));
    }
}
