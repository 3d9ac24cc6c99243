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

/// An object's fields (each value as its JSON text, without the whitespace around it), sorted
/// by name as `serde_json::Map` sorts them; of a name given twice, the last (as
/// `serde_json::Value` keeps it). A sorted vector rather than a map: one allocation per object,
/// looked up by binary search.
#[derive(Debug, Default)]
pub struct Object<'a>(Vec<(Key<'a>, &'a str)>);

impl<'a> Object<'a> {
    /// The fields given, in text order, sorted and each name once.
    fn of(mut fields: Vec<(Key<'a>, &'a str)>) -> Self {
        // Stable: of equal names the last given ends last, and is the one kept (in place:
        // `dedup_by` keeps the first of a run, so the later entry is swapped in).
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        fields.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        Object(fields)
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(name)).ok().map(|i| self.0[i].1)
    }

    /// Whether the object has field `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The fields in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key<'a>, &'a str)> {
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
                let mut fields: Vec<(Key<'de>, &'de str)> = Vec::with_capacity(m.size_hint().unwrap_or(16));
                while let Some((k, v)) = m.next_entry::<Key<'de>, &'de RawValue>()? {
                    fields.push((k, v.get()));
                }
                Ok(Object::of(fields))
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

/// [`object`] of `text` already known to be valid JSON: a record of a
/// [`crate::paginate::Page`] (whose body was checked whole), or a value read from one. Its
/// syntax is not checked again: on text that is not valid JSON the answer is unspecified
/// (`None`, or fields cut wrongly), never a panic.
///
/// Why by hand: serde_json checks every byte of every value it hands out as a `RawValue`, and a
/// record's text went through it twice (the page's split, then the record's fields): that
/// second pass was ~9% of a fetcher's CPU end to end, and splitting nested objects and arrays
/// again for the clear/sealed split another ~6% (`perf`, issue 20). No crate we know splits
/// known-valid JSON into borrowed slices without checking it again (sonic-rs's unchecked
/// iterator copies every name into its own string). What is left to do is small: find where
/// each value ends, eight bytes at a time. An order's 37 fields: 2.2 µs with serde_json, 1.6 µs
/// here; with its line items split too, 3.5 against 2.5 µs (a page of the simulator's orders,
/// release build, 2026-12-07).
pub fn valid_object(text: &str) -> Option<Object<'_>> {
    let mut s = Scan { t: text, i: 0 };
    s.expect(b'{')?;
    let mut fields = Vec::with_capacity(16);
    if !s.empty(b'}') {
        loop {
            let name = s.name()?;
            s.expect(b':')?;
            fields.push((name, s.value()?));
            if s.close(b'}')? {
                break;
            }
        }
    }
    s.end()?;
    Some(Object::of(fields))
}

/// [`array`] of `text` already known to be valid JSON, as [`valid_object`] reads it: each
/// element's text.
pub fn valid_array(text: &str) -> Option<Vec<&str>> {
    let mut s = Scan { t: text, i: 0 };
    s.expect(b'[')?;
    let mut items = Vec::new();
    if !s.empty(b']') {
        loop {
            items.push(s.value()?);
            if s.close(b']')? {
                break;
            }
        }
    }
    s.end()?;
    Some(items)
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` equal to `c`, at least for the lowest such byte (bytes
/// above a match may show falsely: only the lowest is used).
fn byte_is(w: u64, c: u8) -> u64 {
    let x = w ^ (LOW_BITS * u64::from(c));
    x.wrapping_sub(LOW_BITS) & !x & HIGH_BITS
}

/// From `j`, the index of the first byte whose word `hit` marks ([`byte_is`]), eight bytes at a
/// time; the remaining tail (under eight bytes) is left to the caller's byte loop.
fn next(b: &[u8], mut j: usize, hit: impl Fn(u64) -> u64) -> usize {
    while let Some(word) = b.get(j..j + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let m = hit(u64::from_le_bytes(w));
        if m != 0 {
            return j + (m.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    j
}

/// A cursor over text known to be valid JSON ([`valid_object`]). Every step returns `None`
/// rather than index out of bounds; slices are cut at ASCII bytes only, so at `char` boundaries.
struct Scan<'a> {
    t: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.t.as_bytes()
    }

    fn skip_ws(&mut self) {
        while matches!(self.bytes().get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Past `c`, after any whitespace.
    fn expect(&mut self, c: u8) -> Option<()> {
        self.skip_ws();
        (self.bytes().get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// After an opening bracket: whether `close` follows (then past it).
    fn empty(&mut self, close: u8) -> bool {
        self.expect(close).is_some()
    }

    /// After a value: `true` past the closing `close`, `false` past a comma.
    fn close(&mut self, close: u8) -> Option<bool> {
        self.skip_ws();
        let c = *self.bytes().get(self.i)?;
        self.i += 1;
        if c == close { Some(true) } else { (c == b',').then_some(false) }
    }

    /// Only whitespace left.
    fn end(&mut self) -> Option<()> {
        self.skip_ws();
        (self.i == self.t.len()).then_some(())
    }

    /// Past the string starting here (at its quote); whether it has escapes.
    fn string(&mut self) -> Option<bool> {
        let b = self.bytes();
        if b.get(self.i) != Some(&b'"') {
            return None;
        }
        let mut j = self.i + 1;
        let mut escaped = false;
        // Eight bytes at a time to the next quote or backslash: a record's strings are short
        // (a few to a few tens of bytes), where a `memchr` call's set-up cost more than it
        // saved (no faster than serde_json in a first version).
        loop {
            j = next(b, j, |w| byte_is(w, b'"') | byte_is(w, b'\\'));
            match *b.get(j)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    j += 2;
                }
                _ => j += 1,
            }
        }
        self.i = j + 1;
        Some(escaped)
    }

    /// A field name, borrowed unless it has escapes.
    fn name(&mut self) -> Option<Key<'a>> {
        self.skip_ws();
        let start = self.i;
        let escaped = self.string()?;
        let quoted = self.t.get(start..self.i)?;
        if escaped { serde_json::from_str::<String>(quoted).ok().map(|k| Key(Cow::Owned(k))) } else { quoted.get(1..quoted.len() - 1).map(|k| Key(Cow::Borrowed(k))) }
    }

    /// The next value's text.
    fn value(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let start = self.i;
        let b = self.bytes();
        match *b.get(self.i)? {
            b'"' => {
                self.string()?;
            }
            b'{' | b'[' => {
                // In valid JSON, brackets and braces outside strings nest: counting both finds
                // the end.
                let mut depth = 0usize;
                loop {
                    // `|` 0x20 makes `[` a `{` and `]` a `}` (and nothing else either).
                    self.i = next(b, self.i, |w| byte_is(w, b'"') | byte_is(w | 0x2020_2020_2020_2020, b'{') | byte_is(w | 0x2020_2020_2020_2020, b'}'));
                    match *b.get(self.i)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                self.i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            // A number, `true`, `false` or `null`: up to what ends it.
            _ => {
                while !matches!(b.get(self.i), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                    self.i += 1;
                }
                if self.i == start {
                    return None;
                }
            }
        }
        self.t.get(start..self.i)
    }
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
            object(at)?.get(&seg)?
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
        assert_eq!(o.get("b").unwrap(), "3");
        assert!(o.get("a").is_none() && o.len() == 2);
        assert!(object("[1]").is_none() && object("\"{\"").is_none() && array("{}").is_none());
        // A name three times among others: the last, as `serde_json::Value` keeps it.
        let text = r#"{"z": 0, "c": 1, "a": 2, "c": 3, "b": 4, "c": 5, "a": 6}"#;
        let o = object(text).unwrap();
        let whole: serde_json::Map<String, Value> = serde_json::from_str(text).unwrap();
        let ours: Vec<(&str, &str)> = o.iter().map(|(k, v)| (&**k, v)).collect();
        let theirs: Vec<(&str, String)> = whole.iter().map(|(k, v)| (k.as_str(), v.to_string())).collect();
        assert_eq!(ours, theirs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    }

    #[test]
    fn a_valid_object_is_split_as_serde_json_splits_it() {
        let texts = [
            r#"{"b": 1, "a\"q": 2, "b": 3}"#,
            r#"{}"#,
            "{ }",
            r#" {"s": "x\\", "t": "{[\"", "n": -1.5e3, "o": {"k": [1, {"}": "]"}]}, "e": [], "z": null} "#,
            "{\n  \"a\" : [ 1 , 2 ] ,\n  \"b\":true\n}",
            r#"{"é": "ü😀", "c\u0041": "\u00e9"}"#,
        ];
        for text in texts {
            let (ours, theirs) = (valid_object(text).unwrap(), object(text.trim()).unwrap());
            assert_eq!(ours.iter().collect::<Vec<_>>(), theirs.iter().collect::<Vec<_>>(), "{text}");
        }
        assert_eq!(valid_array(r#"[1, "a,]", [2, [3]], {"x": "]"}, null]"#).unwrap(), ["1", r#""a,]""#, "[2, [3]]", r#"{"x": "]"}"#, "null"]);
        assert_eq!(valid_array("[ ]").unwrap(), Vec::<&str>::new());
        assert!(valid_object("[1]").is_none() && valid_array("{}").is_none() && valid_object(r#""{""#).is_none());
    }

    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let text = "[a-c{}\\[\\]\",:\\\\ \n/é😀\u{1}]{0,24}";
        let leaf = prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from), any::<i64>().prop_map(Value::from), (-1e9f64..1e9).prop_map(Value::from), text.prop_map(Value::from),];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array), proptest::collection::vec((text, inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect())),]
        })
    }

    proptest::proptest! {
        #[test]
        fn valid_json_splits_as_serde_json_splits_it(v in json(), pretty: bool) {
            let text = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { v.to_string() };
            match &v {
                Value::Object(_) => {
                    let (ours, theirs) = (valid_object(&text).unwrap(), object(&text).unwrap());
                    proptest::prop_assert_eq!(ours.iter().collect::<Vec<_>>(), theirs.iter().collect::<Vec<_>>());
                }
                Value::Array(_) => {
                    let theirs: Vec<&str> = array(&text).unwrap().iter().map(|r| r.get()).collect();
                    proptest::prop_assert_eq!(valid_array(&text).unwrap(), theirs);
                }
                _ => proptest::prop_assert!(valid_object(&text).is_none() && valid_array(&text).is_none()),
            }
        }

        #[test]
        fn any_text_is_read_without_a_panic(v in json(), cut in 0usize..400, junk in "\\PC{0,12}") {
            // Not valid JSON: the answer is unspecified, but it is an answer.
            let text = v.to_string();
            let mut cut = cut.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            for t in [&text[..cut], &format!("{}{junk}", &text[..cut]), &junk] {
                let _ = (valid_object(t), valid_array(t));
            }
        }
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
