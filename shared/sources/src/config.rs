//! The typed source configuration, validated at load.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;
use url::Url;

use crate::{Error, Result};

/// One source file: the source and its streams.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// The API itself.
    pub source: Source,
    /// What is read from it (`[[stream]]` tables).
    #[serde(rename = "stream")]
    pub streams: Vec<Stream>,
}

/// A REST API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Unique name, `[a-z][a-z0-9_]*`: prefixes its bronze tables.
    pub name: String,
    /// Base URL; stream paths are appended to it. A deployment may override it (SSM).
    pub base_url: Url,
    /// How requests authenticate.
    pub auth: Auth,
    /// Client-side request rate limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Retries of failed requests.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Largest response body read, in bytes (default 32 MiB): a bigger page fails as such
    /// instead of filling the function's memory.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
}

fn default_max_body_bytes() -> u64 {
    32 * 1024 * 1024
}

/// Authentication. Secrets are referenced, never written here.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// No authentication.
    None,
    /// HTTP Basic (WooCommerce consumer key and secret): two keys of a JSON secret.
    Basic {
        /// Where the secret lives.
        secret: SecretRef,
        /// Key of the user name in the secret's JSON.
        username_key: String,
        /// Key of the password in the secret's JSON.
        password_key: String,
    },
    /// An API key sent in a header.
    ApiKey {
        /// Where the secret lives.
        secret: SecretRef,
        /// Key of the API key in the secret's JSON.
        key: String,
        /// Header carrying it (for example `X-Api-Key`).
        header: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// Where the secret lives.
        secret: SecretRef,
        /// Key of the token in the secret's JSON.
        key: String,
    },
}

/// A reference to a secret: `secretsmanager:<name>` or `ssm:<parameter name>`. `${stack}` in the
/// name is replaced by the deployment's stack name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    /// Which store holds it.
    pub store: SecretStore,
    /// Its name there (may contain `${stack}`).
    pub name: String,
}

/// Where a secret is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretStore {
    SecretsManager,
    Ssm,
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let (store, name) = match s.split_once(':') {
            Some(("secretsmanager", n)) => (SecretStore::SecretsManager, n),
            Some(("ssm", n)) => (SecretStore::Ssm, n),
            _ => {
                return Err(serde::de::Error::custom(format!("secret reference {s:?} must be secretsmanager:<name> or ssm:<name> (the secret itself never goes in a config file)")));
            }
        };
        if name.is_empty() {
            return Err(serde::de::Error::custom(format!("secret reference {s:?} has no name")));
        }
        Ok(SecretRef { store, name: name.to_string() })
    }
}

impl SecretRef {
    /// The name with `${stack}` replaced.
    pub fn resolved_name(&self, stack: &str) -> String {
        self.name.replace("${stack}", stack)
    }
}

/// The most a source is asked, per fetcher. Below it each fetcher's pace adapts to the
/// source's answers (it slows on 429s and on a latency that keeps rising, and speeds up while
/// healthy), so several fetchers share what the source allows without being told it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per second, at most.
    pub requests_per_second: u32,
}

/// Retries of failed requests (429, 5xx, timeouts, connection errors, broken pages): exponential
/// backoff with full jitter, honouring `Retry-After`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff, in milliseconds.
    pub initial_backoff_ms: u64,
    /// Backoff ceiling, in milliseconds.
    pub max_backoff_ms: u64,
    /// Per-request timeout, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 6, initial_backoff_ms: 200, max_backoff_ms: 20_000, timeout_ms: 30_000 }
    }
}

/// One stream of records.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// Unique within the source, `[a-z][a-z0-9_]*`: names its bronze table.
    pub name: String,
    /// Path appended to the base URL.
    pub path: String,
    /// JSON pointer to the records array in a page; empty: the page is the array.
    #[serde(default)]
    pub records: String,
    /// JSON pointers of the primary-key fields of a record.
    pub primary_key: Vec<String>,
    /// Incremental reads; without it every run reads everything.
    #[serde(default)]
    pub cursor: Option<Cursor>,
    /// JSON pointer of the field naming a record's version (a modification time) when the
    /// stream has no cursor: bronze keeps one row per key and version. Default: the cursor's
    /// field; with neither, a keyed hash of the record's content.
    #[serde(default)]
    pub version: Option<String>,
    /// Query parameters sent with every request. `${run_date}` in a value is replaced by the
    /// run's date (UTC, `YYYY-MM-DD`), for daily feeds (`date = "${run_date}"`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// How to move from page to page.
    pub paginator: Paginator,
    /// JSON pointers of the fields kept in clear: an allow-list. Everything else in a record,
    /// declared or not (names, emails, addresses, IPs, notes, a plugin's `meta_data`, a field the
    /// API adds tomorrow), is sealed with the person's key before anything is written, as one
    /// value in the record's `_sealed` field. `*` stands for every element of an array
    /// (`/line_items/*/product_id`). The primary key, cursor and version fields must be in it.
    pub in_clear: Vec<String>,
    /// Expected fields: JSON pointer → type and rules. Top-level fields (`/total`) become typed
    /// bronze columns; nested pointers (`/billing/email`, `/line_items/*/quantity`, `*` meaning
    /// every element of an array) are checked only. Fields not listed still land in bronze, as
    /// text, and new ones are added to the table's schema.
    #[serde(default)]
    pub schema: BTreeMap<String, FieldSpec>,
    /// Record-level rules (`[[stream.rule]]`).
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
    /// Keyed tokens (HMAC-SHA256) of personal fields, so analysts can count and join people
    /// without the plaintext: bronze column name → JSON pointer of the field.
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
    /// Fields copied in clear, before sealing, from inside sensitive objects: bronze column name
    /// → JSON pointer. Only for values that identify no one on their own and that BI needs at that
    /// level (a billing country and city for geography, never a street, postcode or name).
    #[serde(default)]
    pub clear: BTreeMap<String, String>,
    /// JSON pointer of the person a record belongs to (an email): their own key encrypts the
    /// record's personal data, so destroying it erases them (crypto-shredding). Without it, or
    /// when the field is empty, the record's primary key stands for the person.
    #[serde(default)]
    pub subject: Option<String>,
}

/// The expected type and rules of one field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Its type (and the bronze column type of a top-level field).
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// A record without it (or with null) is invalid.
    #[serde(default)]
    pub required: bool,
    /// Smallest allowed value (numbers, and decimals given as strings).
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest allowed value.
    #[serde(default)]
    pub max: Option<f64>,
    /// The only allowed values (strings).
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<String>>,
    /// A format strings must have.
    #[serde(default)]
    pub format: Option<Format>,
    /// Digits after the decimal point of a `decimal` column.
    #[serde(default = "two")]
    pub scale: u8,
}

fn two() -> u8 {
    2
}

/// Field types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// UTF-8 text.
    String,
    /// A whole number (64-bit).
    Integer,
    /// A floating-point number.
    Number,
    /// An exact decimal, given as a number or a string like `"12.50"` (money).
    Decimal,
    /// true or false.
    Boolean,
    /// An ISO 8601 date-time; without an offset it is UTC.
    Timestamp,
    /// Any JSON value, kept as JSON text.
    Json,
}

/// String formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// An email address (RFC 5322 addr-spec).
    Email,
    /// A phone number as WooCommerce's checkout accepts one: digits, spaces and `# _ - + / ( ) .`.
    Phone,
    /// An ISO 4217 currency code.
    Currency,
}

/// A record-level rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// `total` equals the sum of `terms` within `tolerance` (for example an order total and its
    /// line totals, taxes and shipping). Pointers may use `*` for every array element.
    SumEquals {
        /// Pointer of the total.
        total: String,
        /// Pointers of the terms.
        terms: Vec<String>,
        /// Largest accepted difference (rounding).
        #[serde(default = "cent")]
        tolerance: f64,
    },
}

fn cent() -> f64 {
    0.01
}

/// Incremental reads by a record field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    /// JSON pointer of the field whose maximum is the watermark (for example the GMT
    /// modification time).
    pub field: String,
    /// Query parameter that takes the watermark (for example `modified_after`).
    pub param: String,
    /// Re-read this many seconds before the watermark, so records changed at the boundary are
    /// not missed (duplicates are removed by primary key and version).
    #[serde(default)]
    pub lookback_secs: u64,
    /// Extra parameters sent with incremental requests (for example `dates_are_gmt = "true"`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Parameters that make the first record of a page the most recently changed one (for
    /// example `orderby = "modified"`, `order = "desc"`): the planner reads it when a run starts
    /// and the run's watermark is that record's cursor field. Without them the watermark is the
    /// largest cursor value the run saw.
    #[serde(default)]
    pub latest_params: BTreeMap<String, String>,
}

/// The four pagination styles.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Paginator {
    /// `?page=N&per_page=S`; with a total-pages header every page is known after the first.
    PageNumber {
        #[serde(default = "page")]
        page_param: String,
        #[serde(default = "per_page")]
        size_param: String,
        size: u32,
        /// Response header with the total page count (for example `X-WP-TotalPages`).
        #[serde(default)]
        total_pages_header: Option<String>,
    },
    /// `?offset=O&limit=L`.
    OffsetLimit {
        #[serde(default = "offset")]
        offset_param: String,
        #[serde(default = "limit")]
        limit_param: String,
        limit: u32,
        /// JSON pointer to the total record count in the body, if the API gives one.
        #[serde(default)]
        total_pointer: Option<String>,
    },
    /// An opaque cursor in the body, sent back as a parameter; null or absent on the last page.
    BodyCursor {
        /// JSON pointer of the next cursor in the body.
        next_pointer: String,
        /// Query parameter that takes it.
        cursor_param: String,
        #[serde(default)]
        size_param: Option<String>,
        #[serde(default)]
        size: Option<u32>,
    },
    /// RFC 8288 `Link: <url>; rel="next"`.
    LinkHeader {
        #[serde(default)]
        size_param: Option<String>,
        #[serde(default)]
        size: Option<u32>,
    },
}

fn page() -> String {
    "page".into()
}
fn per_page() -> String {
    "per_page".into()
}
fn offset() -> String {
    "offset".into()
}
fn limit() -> String {
    "limit".into()
}

fn cerr(file: &str, key: impl Into<String>, problem: impl Into<String>) -> Error {
    Error::Config { file: file.to_string(), key: key.into(), problem: problem.into() }
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') && s.len() <= 48
}

/// Whether `p` names a top-level field (`/total`), which becomes a bronze column.
/// The field a record's sealed part travels in; no source field may be declared under it.
const SEALED_FIELD: &str = "_sealed";

/// Whether the allow-list `in_clear` keeps the field at pointer `p` in clear (`*` in either
/// matches any element).
pub fn covers(in_clear: &[String], p: &str) -> bool {
    in_clear.iter().any(|e| {
        let (mut es, mut ps) = (e.split('/').skip(1), p.split('/').skip(1));
        loop {
            match (es.next(), ps.next()) {
                (None, _) => return true,
                (Some(_), None) => return false,
                (Some(a), Some(b)) if a == b || a == "*" => continue,
                _ => return false,
            }
        }
    })
}

pub fn top_level(p: &str) -> Option<&str> {
    p.strip_prefix('/').filter(|f| !f.is_empty() && !f.contains('/') && *f != "*")
}

fn column_ok(c: &str) -> bool {
    let mut chars = c.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn pointer(file: &str, key: String, p: &str, allow_empty: bool) -> Result<()> {
    if (p.is_empty() && allow_empty) || p.starts_with('/') { Ok(()) } else { Err(cerr(file, key, format!("{p:?} is not a JSON pointer (it starts with '/', for example \"/id\")"))) }
}

/// Parses and validates source TOML; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<SourceFile> {
    let parsed: SourceFile = toml::from_str(text).map_err(|e| {
        let key = e.span().map(|s| {
            let line = text[..s.start.min(text.len())].lines().count().max(1);
            format!("line {line}")
        });
        cerr(file, key.unwrap_or_else(|| "document".into()), e.message().to_string())
    })?;
    validate(file, &parsed)?;
    Ok(parsed)
}

/// The placeholder of a stream parameter that takes the run's date.
pub const RUN_DATE: &str = "${run_date}";

fn validate(file: &str, f: &SourceFile) -> Result<()> {
    let s = &f.source;
    if !valid_name(&s.name) {
        return Err(cerr(file, "source.name", format!("{:?} must match [a-z][a-z0-9_]* (48 characters at most)", s.name)));
    }
    if !matches!(s.base_url.scheme(), "http" | "https") {
        return Err(cerr(file, "source.base_url", "must be an http or https URL"));
    }
    if s.max_body_bytes == 0 {
        return Err(cerr(file, "source.max_body_bytes", "must be at least 1"));
    }
    let key_ok = |k: &str| !k.trim().is_empty();
    match &s.auth {
        Auth::Basic { username_key, password_key, .. } if !key_ok(username_key) || !key_ok(password_key) => {
            return Err(cerr(file, "source.auth", "username_key and password_key must not be empty"));
        }
        Auth::ApiKey { key, header, .. } if !key_ok(key) || !key_ok(header) => {
            return Err(cerr(file, "source.auth", "key and header must not be empty"));
        }
        Auth::Bearer { key, .. } if !key_ok(key) => return Err(cerr(file, "source.auth.key", "must not be empty")),
        _ => {}
    }
    if let Some(r) = &s.rate_limit
        && r.requests_per_second == 0
    {
        return Err(cerr(file, "source.rate_limit.requests_per_second", "must be at least 1"));
    }
    let r = &s.retry;
    if r.max_attempts == 0 || r.max_attempts > 20 {
        return Err(cerr(file, "source.retry.max_attempts", format!("{} is outside 1..=20", r.max_attempts)));
    }
    if r.initial_backoff_ms == 0 || r.initial_backoff_ms > r.max_backoff_ms {
        return Err(cerr(file, "source.retry", "initial_backoff_ms must be at least 1 and at most max_backoff_ms"));
    }
    if !(100..=900_000).contains(&r.timeout_ms) {
        return Err(cerr(file, "source.retry.timeout_ms", format!("{} is outside 100..=900000", r.timeout_ms)));
    }
    if f.streams.is_empty() {
        return Err(cerr(file, "stream", "a source needs at least one [[stream]]"));
    }
    let mut names = HashSet::new();
    for (i, st) in f.streams.iter().enumerate() {
        let at = |k: &str| format!("stream[{i}] ({}).{k}", st.name);
        if !valid_name(&st.name) {
            return Err(cerr(file, at("name"), format!("{:?} must match [a-z][a-z0-9_]*", st.name)));
        }
        if !names.insert(&st.name) {
            return Err(cerr(file, at("name"), "is used by another stream of this source"));
        }
        if !st.path.starts_with('/') {
            return Err(cerr(file, at("path"), format!("{:?} must start with '/'", st.path)));
        }
        if s.base_url.join(&st.path[1..]).is_err() {
            return Err(cerr(file, at("path"), "does not make a URL with base_url"));
        }
        pointer(file, at("records"), &st.records, true)?;
        for (k, v) in &st.params {
            if v.replace(RUN_DATE, "").contains("${") {
                return Err(cerr(file, at(&format!("params.{k}")), format!("{v:?}: the only placeholder is {RUN_DATE}")));
            }
        }
        if st.primary_key.is_empty() {
            return Err(cerr(file, at("primary_key"), "needs at least one field"));
        }
        for p in &st.primary_key {
            pointer(file, at("primary_key"), p, false)?;
        }
        for p in &st.in_clear {
            pointer(file, at("in_clear"), p, false)?;
            if p == "/" || p.split('/').nth(1) == Some(SEALED_FIELD) {
                return Err(cerr(file, at("in_clear"), format!("{p}: name fields, not the whole record or the sealed part")));
            }
        }
        let read_in_clear = st.primary_key.iter().map(|p| ("primary_key", p)).chain(st.cursor.iter().map(|c| ("cursor.field", &c.field))).chain(st.version.iter().map(|v| ("version", v)));
        for (what, p) in read_in_clear {
            if !covers(&st.in_clear, p) {
                return Err(cerr(file, at(what), format!("{p} must be in in_clear: keys, cursors and versions are read in clear")));
            }
        }
        for (p, spec) in &st.schema {
            pointer(file, at(&format!("schema.\"{p}\"")), p, false)?;
            if let Some(f) = top_level(p)
                && !column_ok(f)
            {
                return Err(cerr(file, at(&format!("schema.\"{p}\"")), "a top-level field becomes a column: [a-z][a-z0-9_]*"));
            }
            if let (Some(lo), Some(hi)) = (spec.min, spec.max)
                && lo > hi
            {
                return Err(cerr(file, at(&format!("schema.\"{p}\"")), format!("min {lo} is above max {hi}")));
            }
            if spec.format.is_some() && spec.ty != FieldType::String {
                return Err(cerr(file, at(&format!("schema.\"{p}\".format")), "formats apply to type = \"string\" only"));
            }
            if spec.scale > 18 {
                return Err(cerr(file, at(&format!("schema.\"{p}\".scale")), "must be at most 18"));
            }
        }
        for (i, rule) in st.rules.iter().enumerate() {
            let Rule::SumEquals { total, terms, tolerance } = rule;
            pointer(file, at(&format!("rule[{i}].total")), total, false)?;
            if terms.is_empty() {
                return Err(cerr(file, at(&format!("rule[{i}].terms")), "needs at least one term"));
            }
            for t in terms {
                pointer(file, at(&format!("rule[{i}].terms")), t, false)?;
            }
            if tolerance.is_nan() || *tolerance < 0.0 {
                return Err(cerr(file, at(&format!("rule[{i}].tolerance")), "must be zero or more"));
            }
        }
        for (col, p) in &st.tokens {
            if !column_ok(col) || col.starts_with('_') {
                return Err(cerr(file, at(&format!("tokens.{col}")), "a token column name must match [a-z][a-z0-9_]*"));
            }
            pointer(file, at(&format!("tokens.{col}")), p, false)?;
            if st.schema.keys().any(|k| top_level(k) == Some(col.as_str())) {
                return Err(cerr(file, at(&format!("tokens.{col}")), "is also a schema field's column"));
            }
        }
        for (col, p) in &st.clear {
            if !column_ok(col) || col.starts_with('_') {
                return Err(cerr(file, at(&format!("clear.{col}")), "a clear column name must match [a-z][a-z0-9_]*"));
            }
            pointer(file, at(&format!("clear.{col}")), p, false)?;
            if st.schema.keys().any(|k| top_level(k) == Some(col.as_str())) || st.tokens.contains_key(col) {
                return Err(cerr(file, at(&format!("clear.{col}")), "is also a schema field's or a token's column"));
            }
        }
        if let Some(p) = &st.subject {
            pointer(file, at("subject"), p, false)?;
        }
        if let Some(v) = &st.version {
            pointer(file, at("version"), v, false)?;
        }
        if let Some(c) = &st.cursor {
            pointer(file, at("cursor.field"), &c.field, false)?;
            if c.param.is_empty() {
                return Err(cerr(file, at("cursor.param"), "must not be empty"));
            }
        }
        let size_ok = |n: u32| (1..=10_000).contains(&n);
        match &st.paginator {
            Paginator::PageNumber { size, .. } if !size_ok(*size) => return Err(cerr(file, at("paginator.size"), "must be within 1..=10000")),
            Paginator::OffsetLimit { limit, total_pointer, .. } => {
                if !size_ok(*limit) {
                    return Err(cerr(file, at("paginator.limit"), "must be within 1..=10000"));
                }
                if let Some(p) = total_pointer {
                    pointer(file, at("paginator.total_pointer"), p, false)?;
                }
            }
            Paginator::BodyCursor { next_pointer, size_param, size, .. } => {
                pointer(file, at("paginator.next_pointer"), next_pointer, false)?;
                if size_param.is_some() != size.is_some() {
                    return Err(cerr(file, at("paginator"), "size_param and size go together"));
                }
            }
            Paginator::LinkHeader { size_param, size } if size_param.is_some() != size.is_some() => {
                return Err(cerr(file, at("paginator"), "size_param and size go together"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads and validates one source file.
pub fn load_file(path: &Path) -> Result<SourceFile> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read { file: file.clone(), reason: e.to_string() })?;
    parse(&file, &text)
}

/// Reads every `*.toml` in `dir` (sorted by name); source names must be unique.
pub fn load_dir(dir: &Path) -> Result<Vec<SourceFile>> {
    let d = dir.display().to_string();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::Read { file: d.clone(), reason: e.to_string() })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut out: Vec<SourceFile> = Vec::new();
    for p in paths {
        let f = load_file(&p)?;
        if out.iter().any(|o| o.source.name == f.source.name) {
            return Err(cerr(&p.display().to_string(), "source.name", format!("{:?} is already used by another file in {d}", f.source.name)));
        }
        out.push(f);
    }
    if out.is_empty() {
        return Err(Error::Read { file: d, reason: "no *.toml source files".into() });
    }
    Ok(out)
}

/// Whether `url` may be fetched: `https`, or `http` to a loopback address only (a local
/// simulator), since credentials and personal data must not cross a network in clear.
pub fn transport_is_safe(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}
