//! JSON read as borrowed text: a page's records, a record's fields and a pointer's value are
//! slices of the body as received, parsed into `serde_json::Value` only where a value is needed.
//!
//! Why: parsing every page into a `Value` tree and writing most of it back out as text (the
//! sealed part, nested fields kept in clear) was half of ingestion's CPU per record (issue 20,
//! `alkasba-bench floor --stages`). serde_json's `RawValue` checks the syntax and hands out the
//! slices; what is written here is only the key type that borrows unescaped names and the walk
//! by a pointer.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_json::value::RawValue;

/// An object's field name: borrowed from the text unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key<'a>(pub Cow<'a, str>);

impl<'a> Key<'a> {
    /// The name, still borrowed from the text when it had no escapes (a copy otherwise).
    pub fn to_cow(&self) -> Cow<'a, str> {
        match &self.0 {
            Cow::Borrowed(s) => Cow::Borrowed(s),
            Cow::Owned(s) => Cow::Owned(s.clone()),
        }
    }
}

impl std::ops::Deref for Key<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// An object's fields, sorted by name as `serde_json::Map` sorts them; of a name given twice,
/// the last (as `serde_json::Value` keeps it). A sorted vector rather than a map: one
/// allocation per object, looked up by binary search.
#[derive(Debug, Default)]
pub struct Object<'a>(Vec<(Key<'a>, &'a RawValue)>);

impl<'a> Object<'a> {
    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(name)).ok().map(|i| self.0[i].1)
    }

    /// Whether the object has field `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The fields in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key<'a>, &'a RawValue)> {
        self.0.iter().map(|(k, v)| (k, *v))
    }

    /// The names in order.
    pub fn keys(&self) -> impl Iterator<Item = &Key<'a>> {
        self.0.iter().map(|(k, _)| k)
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has no field.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Object<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: de::MapAccess<'de>>(self, mut m: M) -> Result<Object<'de>, M::Error> {
                let mut fields: Vec<(Key<'de>, &'de RawValue)> = Vec::with_capacity(m.size_hint().unwrap_or(16));
                while let Some(entry) = m.next_entry()? {
                    fields.push(entry);
                }
                // Stable: of equal names the last given ends last, and is the one kept (in
                // place: `dedup_by` keeps the first of a run, so the later entry is swapped in).
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                fields.dedup_by(|later, kept| {
                    let same = later.0 == kept.0;
                    if same {
                        std::mem::swap(later, kept);
                    }
                    same
                });
                Ok(Object(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// `text` as an object, if it is one (`None` for any other JSON value).
pub fn object(text: &str) -> Option<Object<'_>> {
    if !text.starts_with('{') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// `text` as an array's elements, if it is one.
pub fn array(text: &str) -> Option<Vec<&RawValue>> {
    if !text.starts_with('[') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// The value at RFC 6901 `pointer` in `text` (a JSON value), as text; `None` where the path
/// does not exist (as `Value::pointer`).
pub fn pointer<'a>(text: &'a str, pointer: &str) -> Option<&'a str> {
    if pointer.is_empty() {
        return Some(text);
    }
    let mut at = text;
    for seg in pointer.strip_prefix('/')?.split('/') {
        let seg = unescape(seg);
        at = if at.starts_with('{') {
            object(at)?.get(&seg)?.get()
        } else if at.starts_with('[') {
            array(at)?.get(index(&seg)?)?.get()
        } else {
            return None;
        };
    }
    Some(at)
}

/// An RFC 6901 segment as an array index, as `Value::pointer` reads one: decimal digits, no
/// sign, no leading zero.
pub fn index(seg: &str) -> Option<usize> {
    if seg.starts_with('+') || (seg.starts_with('0') && seg.len() != 1) {
        return None;
    }
    seg.parse().ok()
}

/// One RFC 6901 segment unescaped (`~1` is `/`, `~0` is `~`).
pub fn unescape(seg: &str) -> Cow<'_, str> {
    if seg.contains('~') { Cow::Owned(seg.replace("~1", "/").replace("~0", "~")) } else { Cow::Borrowed(seg) }
}

/// A value that reveals nothing: null, empty text, an empty array or object (`text` as
/// `RawValue` gives it: no whitespace around it).
pub fn is_empty(text: &str) -> bool {
    match text.as_bytes() {
        b"null" | b"\"\"" | b"[]" | b"{}" => true,
        [b'[', inner @ .., b']'] | [b'{', inner @ .., b'}'] => inner.iter().all(u8::is_ascii_whitespace),
        _ => false,
    }
}

/// Appends `s` to `out` as a JSON string.
pub fn push_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // serde_json's own escaping; a `str` always serialises.
        out.push_str(&serde_json::Value::from(s).to_string());
    }
}

/// A string value's text (unescaped); other values as their JSON text (as the record gave it).
pub fn text(raw: &str) -> Cow<'_, str> {
    match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Cow::Borrowed(inner),
        Some(_) => serde_json::from_str::<String>(raw).map(Cow::Owned).unwrap_or(Cow::Borrowed(raw)),
        None => Cow::Borrowed(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn pointers_read_what_value_pointer_reads() {
        let doc = json!({"a": {"b~c": [1, {"d/e": "x"}], "": 2}, "n": null, "s": "t\"u"});
        let text = doc.to_string();
        for p in ["", "/a", "/a/b~0c", "/a/b~0c/0", "/a/b~0c/1/d~1e", "/a/", "/n", "/s", "/missing", "/a/b~0c/2", "/a/b~0c/01", "/s/x"] {
            let got = pointer(&text, p).map(|t| serde_json::from_str::<Value>(t).unwrap());
            assert_eq!(got.as_ref(), doc.pointer(p), "{p}");
        }
    }

    #[test]
    fn keys_with_escapes_are_unescaped_and_the_last_of_a_name_wins() {
        let o = object(r#"{"b": 1, "a\"q": 2, "b": 3}"#).unwrap();
        let names: Vec<&str> = o.keys().map(|k| &**k).collect();
        assert_eq!(names, ["a\"q", "b"]);
        assert_eq!(o.get("b").unwrap().get(), "3");
        assert!(o.get("a").is_none() && o.len() == 2);
        assert!(object("[1]").is_none() && object("\"{\"").is_none() && array("{}").is_none());
        // A name three times among others: the last, as `serde_json::Value` keeps it.
        let text = r#"{"z": 0, "c": 1, "a": 2, "c": 3, "b": 4, "c": 5, "a": 6}"#;
        let o = object(text).unwrap();
        let whole: serde_json::Map<String, Value> = serde_json::from_str(text).unwrap();
        let ours: Vec<(&str, &str)> = o.iter().map(|(k, v)| (&**k, v.get())).collect();
        let theirs: Vec<(&str, String)> = whole.iter().map(|(k, v)| (k.as_str(), v.to_string())).collect();
        assert_eq!(ours, theirs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    }

    #[test]
    fn empties_texts_and_strings() {
        for e in ["null", "\"\"", "[]", "{}", "[ ]", "{\n}"] {
            assert!(is_empty(e), "{e}");
        }
        for v in ["0", "\" \"", "[0]", "{\"a\":1}", "false"] {
            assert!(!is_empty(v), "{v}");
        }
        assert_eq!(text(r#""a\nb""#), "a\nb");
        assert_eq!(text(r#""ab""#), "ab");
        assert_eq!(text("[1, 2]"), "[1, 2]");
        let mut out = String::new();
        push_str(&mut out, "plain");
        push_str(&mut out, "q\"\u{1}");
        assert_eq!(out, r#""plain""q\"\u0001""#);
    }
}
