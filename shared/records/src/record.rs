//! From JSON records to bronze and quarantine rows: keys, versions, tokens, sealed personal
//! fields, typed columns; then to Arrow batches.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use alkasba_lake::arrow::array::{ArrayRef, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use alkasba_lake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use alkasba_lake::arrow::record_batch::RecordBatch;
use alkasba_pii::{KeyService, Sealer, Tokenizer};
use alkasba_sources::{FieldType, Page, Rule, Stream, raw, top_level};
use serde_json::Value;

use crate::bronze::BronzeRows;
use crate::clear::{ClearFields, Kept, SEALED, TextSplit};
use crate::pointer::pointer;
use crate::validate::{Validator, decimal, timestamp_micros};
use crate::wanted::Wanted;
use crate::{Error, Result};

/// Bronze metadata columns (every other column comes from the records).
pub const KEY: &str = "_key";
pub const VERSION: &str = "_version";
pub const RUN_ID: &str = "_run_id";
pub const PAGE: &str = "_page";
pub const INGESTED_AT: &str = "_ingested_at";
/// Bronze and quarantine tables are partitioned by ingestion date.
pub const INGEST_DATE: &str = "_ingest_date";

/// A typed column of a stream.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    ty: FieldType,
    scale: u8,
}

/// A stream ready to turn records into rows.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `<source>.<stream>`.
    pub id: String,
    pub stream: Stream,
    columns: Vec<Column>,
    in_clear: ClearFields,
    /// The names of `columns`: a record's other fields are its extra columns.
    /// Looked up for every field of every record (~50 per order); foldhash, not SipHash: a
    /// fixed set of names from the config, which lookups cannot grow or steer (issue 20).
    declared: HashSet<String, foldhash::fast::RandomState>,
    /// The single integer primary-key column, for pruned dedupe lookups.
    pub int_key_column: Option<String>,
    /// What the stream reads of a record (see [`Prepared::process_text`]); `None` when records
    /// are processed as whole `Value`s: a pointer names the whole record, or the stream has
    /// neither version nor cursor (a version is then a hash of the content).
    read: Option<Wanted>,
    /// The stream's schema and rules, their pointers split once.
    validator: Validator,
    /// The indices of `columns` in the order of their names.
    by_name: Vec<usize>,
}

/// One cell of a typed column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    /// Borrowed from the record's text where it needs no unescaping.
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Dec(i128),
    Bool(bool),
    Ts(i64),
}

/// A valid record, ready for bronze.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub key: String,
    pub version: String,
    pub page: u64,
    pub(crate) cells: Vec<Cell<'a>>,
    pub(crate) tokens: Vec<Option<String>>,
    /// The stream's `clear` fields, in its order.
    pub(crate) clear: Vec<Option<String>>,
    /// Fields kept in clear the stream does not declare, as (column name, text), sorted by
    /// column name, each name once. Borrowed from the record's text where they can be: an order
    /// has ~20 such fields, and a copy of each name and value was ~1 µs of its CPU (issue 20).
    pub(crate) extra: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Everything not kept in clear, sealed as one value.
    pub(crate) sealed: Option<String>,
}

/// An invalid record, for quarantine.
#[derive(Debug, Clone)]
pub struct QuarantineRow {
    pub key: Option<String>,
    pub page: u64,
    pub reasons: Vec<String>,
    /// The record as JSON, personal fields sealed.
    pub record: String,
}

/// One record validated, tokenised and sealed, still as JSON ([`Prepared::protect`]).
#[derive(Debug, Clone)]
pub struct Protected {
    /// The record with everything not kept in clear moved, sealed, into its `_sealed` field.
    pub record: Value,
    /// Its primary key, if complete.
    pub key: Option<String>,
    /// The stream's tokens (for example `email_token`), `None` when the field is empty.
    pub tokens: BTreeMap<String, Option<String>>,
    /// Why it is invalid; empty when valid.
    pub reasons: Vec<String>,
}

/// The records of a group of pages, processed (see [`Prepared::process_page`]).
#[derive(Debug, Default)]
pub struct Processed {
    /// Valid rows, each key+version once, in Arrow builders ([`Prepared::bronze_rows_batch`]).
    pub rows: BronzeRows,
    /// Invalid records.
    pub quarantined: Vec<QuarantineRow>,
    /// Records read.
    pub fetched: u64,
    /// Records whose key+version was already in the group.
    pub duplicates: u64,
    /// Largest cursor value seen.
    pub max_cursor: Option<String>,
    seen: HashSet<(String, String)>,
    /// Pages the group expects ([`Processed::expect_pages`]), until its first page is in.
    expected_pages: u64,
}

impl Processed {
    /// Records that about `pages` pages will be processed into this group: after the first,
    /// its columns are sized for them ([`BronzeRows::reserve_for`]).
    pub fn expect_pages(&mut self, pages: u64) {
        self.expected_pages = pages;
    }
}

/// The field name a record that is not a JSON object is sealed under, whole.
pub const NOT_AN_OBJECT: &str = "(record)";

/// Where a record came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub run_id: &'a str,
    pub page: u64,
    pub url: &'a str,
}

/// A field's column name: lower-case ASCII letters, digits and `_`, starting with a letter
/// (`f_` put before a name that does not). A name that already is one is returned as it is.
fn column_name(field: Cow<'_, str>) -> Cow<'_, str> {
    let b = field.as_bytes();
    if b.first().is_some_and(u8::is_ascii_lowercase) && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_') {
        return field;
    }
    let mut s: String = field.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s = format!("f_{s}");
    }
    Cow::Owned(s)
}

/// `fields` (column name, text) sorted by name, each name once: of fields whose names map to
/// the same column (`a-b`, `a_b`), the last. A bronze group appends a row's extra columns by
/// merging them with its own, in one pass ([`crate::bronze::BronzeRows::push`]).
fn extra_columns<'a>(fields: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
    let mut all: Vec<(Cow<'a, str>, Cow<'a, str>)> = fields.collect();
    // Stable, and nearly free: a record's keys come sorted, and column names mostly keep
    // their order.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::with_capacity(all.len());
    for (name, value) in all {
        match out.last_mut() {
            Some(last) if last.0 == name => last.1 = value,
            _ => out.push((name, value)),
        }
    }
    out
}

/// What the stream reads of a record (see [`Prepared::process_text`]): every pointer of its
/// schema, rules, key, tokens, clear fields, subject, version and cursor, as a tree whose
/// top-level fields are the ones parsed. `None` when a pointer names the whole record or an
/// element of it (`*`), or the stream has neither version nor cursor: its records are read whole.
fn read_fields(stream: &Stream) -> Option<Wanted> {
    if stream.version.is_none() && stream.cursor.is_none() {
        return None;
    }
    let rules = stream.rules.iter().flat_map(|r| match r {
        Rule::SumEquals { total, terms, .. } => std::iter::once(total).chain(terms.iter()),
    });
    // A `json` field of the schema is only checked for being there and set: the fields below it
    // that nothing reads need not be built.
    let schema = stream.schema.iter().map(|(p, spec)| (p, spec.ty != FieldType::Json));
    let pointers = schema.chain(
        rules
            .chain(&stream.primary_key)
            .chain(stream.tokens.values())
            .chain(stream.clear.values())
            .chain(&stream.subject)
            .chain(stream.version.iter())
            .chain(stream.cursor.iter().map(|c| &c.field))
            .map(|p| (p, true)),
    );
    let mut wanted = Wanted::default();
    for (p, whole) in pointers {
        let first = p.strip_prefix('/')?.split('/').next()?;
        if first == "*" {
            return None;
        }
        wanted.add(p, whole);
    }
    Some(wanted)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Prepared {
    /// Every record of one `page` validated, sealed and tokenised into `out`. This is the whole
    /// CPU path of ingestion between the HTTP body and the Arrow batch; the fetcher and the
    /// benchmark's in-memory floor both use it.
    pub async fn process_page<K: KeyService>(&self, page: &Page, origin: Origin<'_>, tokens: &Tokenizer, sealer: &mut Sealer<K>, out: &mut Processed) -> Result<()> {
        // One view for the page's records: each record's fields are parsed into it in place.
        let mut view = Value::Null;
        for text in page.records() {
            out.fetched += 1;
            let (processed, cursor) = self.process_text(text, origin, tokens, sealer, &mut view).await?;
            if let Some(c) = cursor
                && out.max_cursor.as_deref().is_none_or(|m| c.as_str() > m)
            {
                out.max_cursor = Some(c);
            }
            match processed {
                Ok(row) => {
                    if out.seen.insert((row.key.clone(), row.version.clone())) {
                        out.rows.push(self, row)?;
                    } else {
                        out.duplicates += 1;
                    }
                }
                Err(q) => out.quarantined.push(q),
            }
        }
        // After the group's first page (the expectation is used once): a little over, as pages
        // of one store differ by a few percent in bytes per record.
        let expected = std::mem::take(&mut out.expected_pages);
        if expected > 1 {
            out.rows.reserve_for(expected as f64 * 1.1)?;
        }
        Ok(())
    }

    /// The fields the stream reads that a record has (`top`: its top-level fields, from
    /// [`raw::valid_object`]), in name order: each name, what is read below it, and its text.
    /// Both lists are sorted by name: a merge join finds each field read (not a binary search
    /// each), which saves ~100 name comparisons per record (`memcmp`, issue 20).
    fn present<'s, 't>(read: &'s Wanted, top: &'s raw::Object<'t>) -> impl Iterator<Item = (&'s String, &'s Wanted, &'t str)> {
        let mut fields = top.iter().peekable();
        read.fields().filter_map(move |(name, wanted)| {
            while fields.next_if(|(k, _)| ***k < **name).is_some() {}
            fields.next_if(|(k, _)| ***k == **name).map(|(_, v)| (name, wanted, v))
        })
    }

    /// The fields of a record the stream reads ([`Prepared::present`]), parsed, as an object;
    /// `None` when the stream reads records whole (see `read`), or a field is not JSON (never,
    /// for fields of a [`Page`]'s record).
    pub fn view(&self, top: &raw::Object<'_>) -> Option<Value> {
        // Built from its entries in order (not an insert each).
        let view: Option<serde_json::Map<String, Value>> = Self::present(self.read.as_ref()?, top).map(|(name, wanted, v)| wanted.parse(v).ok().map(|v| (name.clone(), v))).collect();
        Some(Value::Object(view?))
    }

    /// [`Prepared::view`] of a record, into `view`, which holds the view of an earlier record
    /// (or anything else). When that record had the same fields, which the records of one
    /// stream mostly do, its map is kept and only the values are replaced: no key copied, no
    /// tree built (issue 20: the allocations of the view were the first callers of the
    /// allocator, itself 7.3% of the fetchers' samples, on memory gone cold since the last
    /// group). `None` where [`Prepared::view`] gives `None`; `view` is then left unspecified.
    pub fn view_into(&self, top: &raw::Object<'_>, view: &mut Value) -> Option<()> {
        let read = self.read.as_ref()?;
        if let Value::Object(map) = view {
            let mut slots = map.iter_mut();
            let mut same = true;
            for (name, wanted, v) in Self::present(read, top) {
                match slots.next() {
                    Some((k, slot)) if k == name => *slot = wanted.parse(v).ok()?,
                    _ => {
                        same = false;
                        break;
                    }
                }
            }
            if same && slots.next().is_none() {
                return Some(());
            }
        }
        *view = self.view(top)?;
        Some(())
    }

    /// The typed cells of the stream's declared columns of a record read from its text: from
    /// its `view` ([`Prepared::view`]) and what its `split` kept in clear (a column whose field
    /// was sealed is null; text and JSON columns hold the field's text as received, or as
    /// rebuilt where parts were sealed).
    pub fn cells<'a>(&self, view: &Value, split: &TextSplit<'a, '_>) -> Result<Vec<Cell<'a>>> {
        // One merge of three lists in name order (the columns by `by_name`, the fields kept,
        // the view's map), not a binary search and a map lookup per column: those were half of
        // this function's time (`perf record` on `alkasba-bench floor --stages`, issue 20).
        let mut cells = vec![Cell::Null; self.columns.len()];
        let mut kept = split.kept.iter().peekable();
        let mut read = view.as_object().into_iter().flatten().peekable();
        for &i in &self.by_name {
            let c = &self.columns[i];
            let name = c.name.as_str();
            while kept.next_if(|(k, _)| &***k < name).is_some() {}
            let Some((_, k)) = kept.next_if(|(k, _)| &***k == name) else { continue };
            let text = matches!(c.ty, FieldType::String | FieldType::Json);
            cells[i] = match k {
                Kept::Whole("null") => Cell::Null,
                k if text => Cell::Str(k.text()),
                // Every declared column is read, so its value is in the view.
                Kept::Whole(_) => {
                    while read.next_if(|(n, _)| n.as_str() < name).is_some() {}
                    cell(c, read.next_if(|(n, _)| n.as_str() == name).map(|(_, v)| v))
                }
                Kept::Rebuilt(t) => {
                    let v: Value = serde_json::from_str(t).map_err(|e| Error::Batch(format!("{}: column {} rebuilt as invalid JSON: {e}", self.id, c.name)))?;
                    cell(c, Some(&v))
                }
            };
        }
        Ok(cells)
    }

    /// One record given as JSON text, as [`Prepared::process`] does it, and its cursor value.
    ///
    /// Only the top-level fields the stream reads (schema, rules, key, version, cursor, tokens,
    /// subject, `clear`) are parsed into `Value`s; the split into clear and sealed parts works
    /// on the text ([`ClearFields::split_text`]), so sealed values and nested fields kept in
    /// clear are copied as received instead of parsed and written again (issue 20). A record
    /// that is not an object, is invalid, or has no key or version goes through
    /// [`Prepared::process`] whole: its reasons, quarantine row and content hash are exactly
    /// those of the `Value` path.
    async fn process_text<'a, K: KeyService>(
        &self,
        text: &'a str,
        origin: Origin<'_>,
        tokens: &Tokenizer,
        sealer: &mut Sealer<K>,
        view: &mut Value,
    ) -> Result<(std::result::Result<Row<'a>, QuarantineRow>, Option<String>)> {
        let whole = |text: &str| serde_json::from_str::<Value>(text).map_err(|e| Error::Batch(format!("{}: a record of page {} is not JSON: {e}", self.id, origin.page)));
        let top = match (&self.read, raw::valid_object(text)) {
            (Some(_), Some(top)) if !top.contains_key(SEALED) => top,
            _ => {
                let record = whole(text)?;
                let cursor = self.cursor(&record).map(str::to_string);
                return Ok((self.process(record, origin, tokens, sealer).await?, cursor));
            }
        };
        if self.view_into(&top, view).is_none() {
            return Err(Error::Batch(format!("{}: a record of page {} is not JSON", self.id, origin.page)));
        }
        let view = &*view;
        let cursor = self.cursor(view).map(str::to_string);
        let reasons = self.validator.validate(view);
        let (Some(key), Some(version), true) = (self.key(view), self.version_of(view).map(str::to_string), reasons.is_empty()) else {
            return Ok((self.process(whole(text)?, origin, tokens, sealer).await?, cursor));
        };
        let token_values = self.token_values(view, tokens);
        let subject = self.subject(view, Some(&key), tokens, &token_values);
        let clear = self.clear_values(view);
        let split = self.in_clear.split_text(text, &top);
        let sealed = match split.sealed_json() {
            Some(plain) => Some(sealer.seal(&subject, &self.place(Some(&key), SEALED), plain.as_bytes()).await.map_err(Error::Pii)?),
            None => None,
        };
        let cells = self.cells(view, &split)?;
        let extra = extra_columns(split.kept.iter().filter(|(k, v)| !self.declared.contains(&***k) && v.json() != "null").map(|(k, v)| (column_name(k.to_cow()), v.text())));
        Ok((Ok(Row { key, version, page: origin.page, cells, tokens: token_values, clear, extra, sealed }), cursor))
    }

    pub fn new(source: &str, stream: &Stream) -> Self {
        let in_clear = ClearFields::new(&stream.in_clear);
        // A declared field becomes a typed column when it is kept in clear; a sealed one is
        // still validated, and travels in `_sealed`.
        let columns: Vec<Column> = stream
            .schema
            .iter()
            .filter_map(|(p, spec)| top_level(p).map(|f| (f, spec)))
            .filter(|(f, _)| in_clear.keeps_top(f))
            .map(|(f, spec)| Column { name: f.to_string(), ty: spec.ty, scale: spec.scale })
            .collect();
        let int_key_column = match stream.primary_key.as_slice() {
            [p] => top_level(p).filter(|f| columns.iter().any(|c| c.name == *f && c.ty == FieldType::Integer)).map(str::to_string),
            _ => None,
        };
        let declared = columns.iter().map(|c| c.name.clone()).collect();
        let mut by_name: Vec<usize> = (0..columns.len()).collect();
        by_name.sort_by(|a, b| columns[*a].name.cmp(&columns[*b].name));
        let read = read_fields(stream);
        Self { id: format!("{source}.{}", stream.name), stream: stream.clone(), columns, in_clear, declared, int_key_column, read, validator: Validator::new(stream), by_name }
    }

    /// The stream's typed columns (its declared top-level fields kept in clear).
    pub(crate) fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The stream's schema and rules as records are checked against them.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// The stream's allow-list of fields kept in clear.
    pub fn in_clear(&self) -> &ClearFields {
        &self.in_clear
    }

    /// The record's primary key as text (`|` between parts), if complete.
    pub fn key(&self, record: &Value) -> Option<String> {
        let mut parts = Vec::with_capacity(self.stream.primary_key.len());
        for p in &self.stream.primary_key {
            match pointer(record, p) {
                None | Some(Value::Null) => return None,
                Some(v) => parts.push(text(v)),
            }
        }
        Some(parts.join("|"))
    }

    /// The record's version as the stream declares it (its `version` field, else its cursor
    /// field), if the record has one.
    pub fn version_of<'a>(&self, record: &'a Value) -> Option<&'a str> {
        let declared = self.stream.version.as_ref().and_then(|p| pointer(record, p)).and_then(Value::as_str).filter(|v| !v.is_empty());
        declared.or_else(|| self.cursor(record))
    }

    /// The record's cursor value, if the stream has a cursor.
    pub fn cursor<'a>(&self, record: &'a Value) -> Option<&'a str> {
        self.stream.cursor.as_ref().and_then(|c| pointer(record, &c.field)).and_then(Value::as_str)
    }

    /// Whose key seals a record: the person named by the stream's `subject`; the record itself
    /// when that field is empty; the stream when it declares no subject (it holds no one's data
    /// by design, and what it seals needs no key per record).
    fn subject(&self, record: &Value, key: Option<&str>, tokens: &Tokenizer, token_values: &[Option<String>]) -> String {
        let Some(field) = &self.stream.subject else { return format!("stream:{}", self.id) };
        // The subject is usually a token field too (an order's billing email): its token is
        // already made.
        if let Some(Some(t)) = self.stream.tokens.values().position(|p| p == field).and_then(|i| token_values.get(i)) {
            return t.clone();
        }
        match pointer(record, field).and_then(Value::as_str).filter(|s| !s.trim().is_empty()) {
            Some(p) => tokens.token(p),
            None => format!("record:{}:{}", self.id, key.unwrap_or("-")),
        }
    }

    /// The stream's `clear` fields of `record` (trimmed, empty as `None`), in its order.
    fn clear_values(&self, record: &Value) -> Vec<Option<String>> {
        self.stream.clear.values().map(|p| pointer(record, p).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)).collect()
    }

    /// The stream's tokens of `record`, in the order of its `tokens` table.
    fn token_values(&self, record: &Value, tokens: &Tokenizer) -> Vec<Option<String>> {
        self.stream.tokens.values().map(|p| pointer(record, p).and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(|s| tokens.token(s))).collect()
    }

    /// Where a sealed value of this stream's record `key` (`-` for a record without a complete
    /// key) lives: its associated data ([`alkasba_pii::place`]). Readers name the same place
    /// from where they found the value (the bronze table's `_key`, silver's `customer_id`).
    pub fn place(&self, key: Option<&str>, field: &str) -> String {
        alkasba_pii::place(&self.id, key.unwrap_or("-"), field)
    }

    /// Seals, in place, everything of `record` the stream does not keep in clear, as one value
    /// in its `_sealed` field.
    async fn seal<K: KeyService>(&self, record: &mut Value, key: Option<&str>, subject: &str, sealer: &mut Sealer<K>) -> Result<()> {
        if !record.is_object() {
            // Not an object (a bare string, an array): nothing says which part is personal, so
            // all of it is sealed. Such a record only ever reaches quarantine.
            let plain = record.to_string();
            *record = Value::String(sealer.seal(subject, &self.place(key, NOT_AN_OBJECT), plain.as_bytes()).await.map_err(Error::Pii)?);
            return Ok(());
        }
        let hidden = self.in_clear.split(record);
        if hidden.is_empty() {
            return Ok(());
        }
        let plain = Value::Object(hidden).to_string();
        let sealed = sealer.seal(subject, &self.place(key, SEALED), plain.as_bytes()).await.map_err(Error::Pii)?;
        if let Some(obj) = record.as_object_mut() {
            obj.insert(SEALED.to_string(), Value::String(sealed));
        }
        Ok(())
    }

    /// Validates, tokenizes and seals one record as ingestion does, keeping it as JSON (the
    /// real-time path, which carries records on a queue rather than into Arrow).
    pub async fn protect<K: KeyService>(&self, mut record: Value, tokens: &Tokenizer, sealer: &mut Sealer<K>) -> Result<Protected> {
        let reasons = self.validator.validate(&record);
        let key = self.key(&record);
        let values = self.token_values(&record, tokens);
        let subject = self.subject(&record, key.as_deref(), tokens, &values);
        let token_values = self.stream.tokens.keys().cloned().zip(values).collect();
        self.seal(&mut record, key.as_deref(), &subject, sealer).await?;
        Ok(Protected { record, key, tokens: token_values, reasons })
    }

    /// Validates, tokenizes and seals one record. `Ok(Err(..))` is an invalid record.
    pub async fn process<K: KeyService>(&self, mut record: Value, origin: Origin<'_>, tokens: &Tokenizer, sealer: &mut Sealer<K>) -> Result<std::result::Result<Row<'static>, QuarantineRow>> {
        let reasons = self.validator.validate(&record);
        let key = self.key(&record);
        let token_values = self.token_values(&record, tokens);
        let subject = self.subject(&record, key.as_deref(), tokens, &token_values);
        // Read before sealing: they sit inside sealed objects.
        let clear = self.clear_values(&record);
        let version = match self.version_of(&record) {
            Some(c) => c.to_string(),
            // Without either a record's version is its content: a keyed hash, since the
            // content holds personal data.
            None => format!("h:{}", tokens.token(&record.to_string())),
        };
        self.seal(&mut record, key.as_deref(), &subject, sealer).await?;
        match (key, reasons.is_empty()) {
            (Some(key), true) => {
                let mut obj = match record {
                    Value::Object(o) => o,
                    _ => Default::default(),
                };
                let sealed = match obj.remove(SEALED) {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
                let mut cells = Vec::with_capacity(self.columns.len());
                for c in &self.columns {
                    cells.push(cell(c, obj.get(&c.name)));
                }
                let extra = extra_columns(
                    obj.iter().filter(|(k, v)| !self.declared.contains(k.as_str()) && !v.is_null()).map(|(k, v)| (Cow::Owned(column_name(Cow::Borrowed(k)).into_owned()), Cow::Owned(text(v)))),
                );
                Ok(Ok(Row { key, version, page: origin.page, cells, tokens: token_values, clear, extra, sealed }))
            }
            (key, _) => Ok(Err(QuarantineRow { key, page: origin.page, reasons, record: record.to_string() })),
        }
    }

    pub(crate) fn column_type(c: &Column) -> DataType {
        match c.ty {
            FieldType::Integer => DataType::Int64,
            FieldType::Number => DataType::Float64,
            FieldType::Decimal => DataType::Decimal128(18, c.scale as i8),
            FieldType::Boolean => DataType::Boolean,
            FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            FieldType::String | FieldType::Json => DataType::Utf8,
        }
    }
}

pub(crate) fn meta_columns(fields: &mut Vec<Field>, arrays: &mut Vec<ArrayRef>, pages: impl Iterator<Item = u64>, run_id: &str, now: chrono::DateTime<chrono::Utc>, n: usize) {
    let date = now.format("%Y-%m-%d").to_string();
    fields.push(Field::new(RUN_ID, DataType::Utf8, false));
    arrays.push(Arc::new(string_col(std::iter::repeat_n(Some(run_id), n))));
    fields.push(Field::new(PAGE, DataType::Int64, false));
    let mut p = Int64Builder::with_capacity(n);
    pages.for_each(|x| p.append_value(x as i64));
    arrays.push(Arc::new(p.finish()));
    fields.push(Field::new(INGESTED_AT, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false));
    let mut t = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    (0..n).for_each(|_| t.append_value(now.timestamp_micros()));
    arrays.push(Arc::new(t.finish()));
    fields.push(Field::new(INGEST_DATE, DataType::Utf8, false));
    arrays.push(Arc::new(string_col(std::iter::repeat_n(Some(date.as_str()), n))));
}

/// The quarantine batch: one table for every stream.
pub fn quarantine_batch(stream_id: &str, rows: &[QuarantineRow], run_id: &str, url_of: impl Fn(u64) -> String, now: chrono::DateTime<chrono::Utc>) -> Result<RecordBatch> {
    let n = rows.len();
    let mut fields = vec![
        Field::new("stream", DataType::Utf8, false),
        Field::new(KEY, DataType::Utf8, true),
        Field::new("reasons", DataType::Utf8, false),
        Field::new("record", DataType::Utf8, false),
        Field::new("source_url", DataType::Utf8, false),
    ];
    let urls: Vec<String> = rows.iter().map(|r| url_of(r.page)).collect();
    let reasons: Vec<String> = rows.iter().map(|r| r.reasons.join("; ")).collect();
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(string_col(std::iter::repeat_n(Some(stream_id), n))),
        Arc::new(string_col(rows.iter().map(|r| r.key.as_deref()))),
        Arc::new(string_col(reasons.iter().map(|s| Some(s.as_str())))),
        Arc::new(string_col(rows.iter().map(|r| Some(r.record.as_str())))),
        Arc::new(string_col(urls.iter().map(|s| Some(s.as_str())))),
    ];
    meta_columns(&mut fields, &mut arrays, rows.iter().map(|r| r.page), run_id, now, n);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| Error::Batch(e.to_string()))
}

fn string_col<'a>(values: impl Iterator<Item = Option<&'a str>>) -> alkasba_lake::arrow::array::StringArray {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_option(v);
    }
    b.finish()
}

fn cell(c: &Column, v: Option<&Value>) -> Cell<'static> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Cell::Null };
    match c.ty {
        FieldType::String | FieldType::Json => Cell::Str(Cow::Owned(text(v))),
        FieldType::Integer => v.as_i64().map(Cell::Int).unwrap_or(Cell::Null),
        FieldType::Number => v.as_f64().map(Cell::Float).unwrap_or(Cell::Null),
        FieldType::Decimal => decimal(v)
            .map(|mut d| {
                d.rescale(c.scale as u32);
                Cell::Dec(d.mantissa())
            })
            .unwrap_or(Cell::Null),
        FieldType::Boolean => v.as_bool().map(Cell::Bool).unwrap_or(Cell::Null),
        FieldType::Timestamp => v.as_str().and_then(timestamp_micros).map(Cell::Ts).unwrap_or(Cell::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_columns_are_sorted_and_a_name_two_fields_share_keeps_the_last() {
        let fields = [("b", "1"), ("a-b", "2"), ("a", "3"), ("a_b", "4")].map(|(k, v)| (column_name(Cow::Borrowed(k)), Cow::Borrowed(v)));
        let got = extra_columns(fields.into_iter());
        assert_eq!(got, [("a", "3"), ("a_b", "4"), ("b", "1")].map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v))));
    }

    /// A name that already is a column name is used as it is (borrowed); any other is made one
    /// as before.
    #[test]
    fn column_names_are_lower_case_letters_digits_and_underscores_starting_with_a_letter() {
        for (field, column, borrowed) in [
            ("total", "total", true),
            ("date_created_gmt", "date_created_gmt", true),
            ("a1", "a1", true),
            ("Total", "total", false),
            ("a-b", "a_b", false),
            ("_links", "f__links", false),
            ("1st", "f_1st", false),
            ("", "f_", false),
            ("é", "f__", false),
        ] {
            let got = column_name(Cow::Borrowed(field));
            assert_eq!((got.as_ref(), matches!(got, Cow::Borrowed(_))), (column, borrowed), "{field}");
        }
    }
}
