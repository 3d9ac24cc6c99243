//! From one page to the next, for the four paginator styles.

use serde_json::Value;
use serde_json::value::RawValue;
use url::Url;

use crate::config::{Auth, Paginator, Source, Stream};
use crate::raw;
use crate::{Error, Result};

/// A fetched page, as pagination needs it: the body as received, its records found once.
#[derive(Debug, Clone)]
pub struct Page {
    /// The URL it was fetched from.
    pub url: Url,
    /// Response headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, valid JSON (checked by [`Page::new`]).
    body: String,
    /// Where each record's text sits in `body`.
    records: Vec<std::ops::Range<usize>>,
}

/// What comes after a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// This was the last page.
    Done,
    /// Fetch this next.
    Url(Url),
}

/// Where each record of `body` is (byte ranges), or what is wrong with it.
fn record_ranges(stream: &Stream, body: &str) -> std::result::Result<Vec<std::ops::Range<usize>>, String> {
    // A body that is the array of records (WooCommerce's lists) is read in one pass, which
    // checks its whole syntax; any other, or one that fails, goes the general way below, which
    // names what is wrong.
    let items = match stream.records.is_empty().then(|| serde_json::from_str::<Vec<&RawValue>>(body)) {
        Some(Ok(items)) => items,
        _ => {
            // Checks the whole body's syntax (every value under an object or array is scanned).
            let whole: &RawValue = serde_json::from_str(body).map_err(|e| format!("malformed JSON ({e})"))?;
            let at = if stream.records.is_empty() { "the page body" } else { stream.records.as_str() };
            raw::pointer(whole.get(), &stream.records).and_then(raw::array).ok_or_else(|| format!("{at} is not an array of records"))?
        }
    };
    let base = body.as_ptr() as usize;
    // Each element is a slice of `body`: its offset is where it starts.
    Ok(items.iter().map(|r| r.get().as_ptr() as usize - base).zip(items.iter().map(|r| r.get().len())).map(|(start, len)| start..start + len).collect())
}

impl Page {
    /// A page of `stream` from its `body`: an error, naming the URL, when the body is not JSON
    /// or has no array of records where the stream says. Records are not parsed: each is kept
    /// as its text ([`Page::records`]).
    pub fn new(stream: &Stream, url: Url, headers: Vec<(String, String)>, body: String) -> Result<Self> {
        Self::parse(stream, url, headers, body).map_err(|(e, _)| e)
    }

    /// [`Page::new`], giving the body back with the error (a fetcher keeps a bad page's body
    /// for its dead-letter record without a copy of every good one).
    pub fn parse(stream: &Stream, url: Url, headers: Vec<(String, String)>, body: String) -> std::result::Result<Self, (Error, String)> {
        let mut page = Self { url, headers, body: String::new(), records: Vec::new() };
        match record_ranges(stream, &body) {
            Ok(records) => {
                page.records = records;
                page.body = body;
                Ok(page)
            }
            Err(problem) => Err((page.err(stream, problem), body)),
        }
    }

    /// The body as received, taken back.
    pub fn into_body(self) -> String {
        self.body
    }

    fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    fn err(&self, stream: &Stream, problem: impl Into<String>) -> Error {
        Error::Page { stream: stream.name.clone(), url: self.url.to_string(), problem: problem.into() }
    }

    /// The page's records, each as its JSON text.
    pub fn records(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.records.iter().map(|r| &self.body[r.clone()])
    }

    /// How many records the page holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the page holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The page's records parsed (for the few callers that need whole values).
    pub fn values(&self) -> Vec<Value> {
        // Each record was checked as JSON by `new`.
        self.records().filter_map(|r| serde_json::from_str(r).ok()).collect()
    }

    /// The body as received.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The body's value at `pointer` (a total, a next cursor), parsed.
    pub fn pointer(&self, pointer: &str) -> Option<Value> {
        raw::pointer(&self.body, pointer).and_then(|t| serde_json::from_str(t).ok())
    }

    fn param(&self, name: &str) -> Option<String> {
        self.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

/// `url` with query parameter `key` set to `value` (replacing any previous value).
pub fn with_param(url: &Url, key: &str, value: &str) -> Url {
    let kept: Vec<(String, String)> = url.query_pairs().filter(|(k, _)| k != key).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let mut out = url.clone();
    {
        let mut q = out.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair(key, value);
    }
    out
}

/// The first page's URL for a run on `run_date`; with a watermark, an incremental read from it.
pub fn first_url(source: &Source, stream: &Stream, watermark: Option<&str>, run_date: chrono::NaiveDate) -> Url {
    let date = run_date.format("%Y-%m-%d").to_string();
    let mut url = source.base_url.clone();
    let base_path = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{base_path}{}", stream.path));
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in &stream.params {
            q.append_pair(k, &v.replace(crate::config::RUN_DATE, &date));
        }
        if let (Some(c), Some(w)) = (&stream.cursor, watermark) {
            q.append_pair(&c.param, w);
            for (k, v) in &c.params {
                q.append_pair(k, v);
            }
        }
        match &stream.paginator {
            Paginator::PageNumber { page_param, size_param, size, .. } => {
                q.append_pair(page_param, "1");
                q.append_pair(size_param, &size.to_string());
            }
            Paginator::OffsetLimit { offset_param, limit_param, limit, .. } => {
                q.append_pair(offset_param, "0");
                q.append_pair(limit_param, &limit.to_string());
            }
            Paginator::BodyCursor { size_param: Some(p), size: Some(n), .. } | Paginator::LinkHeader { size_param: Some(p), size: Some(n) } => {
                q.append_pair(p, &n.to_string());
            }
            _ => {}
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    url
}

/// The page after `page`, or `Done`.
pub fn next_page(stream: &Stream, page: &Page) -> Result<Next> {
    let n = page.len();
    match &stream.paginator {
        Paginator::PageNumber { page_param, size, total_pages_header, .. } => {
            let current: u64 = page.param(page_param).and_then(|p| p.parse().ok()).unwrap_or(1);
            if n == 0 {
                return Ok(Next::Done);
            }
            if let Some(h) = total_pages_header {
                let total: u64 =
                    page.header(h).ok_or_else(|| page.err(stream, format!("header {h} is missing")))?.trim().parse().map_err(|_| page.err(stream, format!("header {h} is not a number")))?;
                if current >= total {
                    return Ok(Next::Done);
                }
            } else if n < *size as usize {
                return Ok(Next::Done);
            }
            let after = current.checked_add(1).ok_or_else(|| page.err(stream, format!("page number {current} has no successor")))?;
            Ok(Next::Url(with_param(&page.url, page_param, &after.to_string())))
        }
        Paginator::OffsetLimit { offset_param, limit, total_pointer, .. } => {
            let offset: u64 = page.param(offset_param).and_then(|p| p.parse().ok()).unwrap_or(0);
            if n == 0 {
                return Ok(Next::Done);
            }
            let next = offset.checked_add(n as u64).ok_or_else(|| page.err(stream, format!("offset {offset} + {n} overflows")))?;
            if let Some(p) = total_pointer {
                let total = page.pointer(p).as_ref().and_then(Value::as_u64).ok_or_else(|| page.err(stream, format!("{p} is not a record count")))?;
                if next >= total {
                    return Ok(Next::Done);
                }
            } else if n < *limit as usize {
                return Ok(Next::Done);
            }
            Ok(Next::Url(with_param(&page.url, offset_param, &next.to_string())))
        }
        Paginator::BodyCursor { next_pointer, cursor_param, .. } => match page.pointer(next_pointer) {
            None | Some(Value::Null) => Ok(Next::Done),
            Some(Value::String(s)) if s.is_empty() => Ok(Next::Done),
            Some(Value::String(s)) => Ok(Next::Url(with_param(&page.url, cursor_param, &s))),
            Some(other) => Err(page.err(stream, format!("{next_pointer} is {other}, not a cursor string"))),
        },
        Paginator::LinkHeader { .. } => match page.header("link").and_then(next_link) {
            None => Ok(Next::Done),
            Some(target) => {
                let next = page.url.join(&target).map_err(|e| page.err(stream, format!("Link next {target:?}: {e}")))?;
                // The next request carries the source's credentials: never to another origin.
                if next.origin() != page.url.origin() {
                    return Err(
                        page.err(stream, format!("Link next {} is on another origin than the page: not followed, the source's credentials stay with its host", next.origin().ascii_serialization()))
                    );
                }
                Ok(Next::Url(next))
            }
        },
    }
}

/// The URL of page `n` of a page-numbered stream, from any of its page URLs.
pub fn page_url(stream: &Stream, any_page: &Url, n: u64) -> Option<Url> {
    match &stream.paginator {
        Paginator::PageNumber { page_param, .. } => Some(with_param(any_page, page_param, &n.to_string())),
        _ => None,
    }
}

/// The total page count a page reports (page numbers with a total-pages header).
pub fn total_pages(stream: &Stream, page: &Page) -> Option<u64> {
    match &stream.paginator {
        Paginator::PageNumber { total_pages_header: Some(h), .. } => page.header(h).and_then(|v| v.trim().parse().ok()),
        _ => None,
    }
}

/// The most pages one run plans (100 million records at 100 a page). A total-pages header above
/// it is refused as implausible rather than planned: a crafted or broken value must not make the
/// planner enqueue billions of tasks.
pub const MAX_PAGES: u64 = 1_000_000;

/// How many pages the stream has, when the first page says (page numbers with a total-pages
/// header): a planner can plan them all at once. Counted, never listed.
pub fn page_count(stream: &Stream, first: &Page) -> Result<Option<u64>> {
    let Paginator::PageNumber { total_pages_header: Some(h), .. } = &stream.paginator else {
        return Ok(None);
    };
    let total: u64 = first.header(h).and_then(|v| v.trim().parse().ok()).ok_or_else(|| first.err(stream, format!("header {h} is missing or not a number")))?;
    if total > MAX_PAGES {
        return Err(first.err(stream, format!("header {h} says {total} pages: more than {MAX_PAGES} in one run is refused as implausible")));
    }
    Ok(Some(total.max(1)))
}

/// The `rel="next"` target of an RFC 8288 Link header. Hand-written: the grammar needed here
/// (comma-separated `<uri>; param=value` entries, `rel` possibly listing several relations) is a
/// dozen lines, smaller than a dependency.
fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(start) = rest.find('<') {
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        let params_end = rest[end..].find('<').map(|i| end + i).unwrap_or(rest.len());
        let params = &rest[end + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=").map(|v| v.trim_matches('"').split_whitespace().any(|r| r.eq_ignore_ascii_case("next"))).unwrap_or(false)
        });
        if is_next {
            return Some(target.to_string());
        }
        rest = &rest[params_end..];
    }
    None
}

impl Auth {
    /// The secret this auth reads, if any.
    pub fn secret(&self) -> Option<&crate::SecretRef> {
        match self {
            Auth::None => None,
            Auth::Basic { secret, .. } | Auth::ApiKey { secret, .. } | Auth::Bearer { secret, .. } => Some(secret),
        }
    }

    /// The request header for this auth, from the secret's JSON (as stored in Secrets Manager or
    /// SSM). `None` for `Auth::None`.
    pub fn header(&self, secret: &Value) -> std::result::Result<Option<(String, String)>, String> {
        let get = |k: &str| secret.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("the secret has no string key {k:?}"));
        Ok(match self {
            Auth::None => None,
            Auth::Basic { username_key, password_key, .. } => {
                use base64::Engine;
                let user = get(username_key)?;
                let pass = get(password_key)?;
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                Some(("authorization".into(), format!("Basic {token}")))
            }
            Auth::ApiKey { key, header, .. } => Some((header.to_ascii_lowercase(), get(key)?)),
            Auth::Bearer { key, .. } => Some(("authorization".into(), format!("Bearer {}", get(key)?))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;
    use serde_json::json;

    fn day() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()
    }

    fn stream(paginator: &str) -> (Source, Stream) {
        let text = format!(
            r#"
[source]
name = "s"
base_url = "http://h:1/api/"
auth = {{ type = "none" }}
[[stream]]
name = "x"
path = "/items"
records = "/data"
primary_key = ["/id"]
in_clear = ["/id", "/m"]
cursor = {{ field = "/m", param = "since", params = {{ gmt = "true" }} }}
paginator = {paginator}
"#
        );
        let f = parse("t.toml", &text).unwrap();
        (f.source, f.streams[0].clone())
    }

    fn page(url: Url, headers: &[(&str, &str)], body: Value) -> Page {
        let (_, st) = stream(r#"{ type = "page_number", size = 2 }"#);
        Page::new(&st, url, headers.iter().map(|(k, v)| (k.to_lowercase(), v.to_string())).collect(), body.to_string()).unwrap()
    }

    #[test]
    fn page_numbers_follow_the_total_pages_header() {
        let (src, st) = stream(r#"{ type = "page_number", size = 2, total_pages_header = "X-WP-TotalPages" }"#);
        let first = first_url(&src, &st, Some("2026-01-01T00:00:00"), day());
        assert_eq!(first.as_str(), "http://h:1/api/items?since=2026-01-01T00%3A00%3A00&gmt=true&page=1&per_page=2");
        let p1 = page(first.clone(), &[("X-WP-TotalPages", "3")], json!({"data": [{"id": 1}, {"id": 2}]}));
        let Next::Url(u2) = next_page(&st, &p1).unwrap() else { panic!() };
        assert!(u2.as_str().ends_with("page=2"), "{u2}");
        assert_eq!(page_count(&st, &p1).unwrap(), Some(3));
        // Crafted totals: refused by name, never listed (a vector of every page aborted the
        // planner before).
        for crafted in ["18446744073709551615", "1000001", "99999999999999999999999", "-1"] {
            let p = page(first.clone(), &[("X-WP-TotalPages", crafted)], json!({"data": [{"id": 1}]}));
            let e = page_count(&st, &p).unwrap_err().to_string();
            assert!(e.contains("X-WP-TotalPages"), "{crafted}: {e}");
        }
        let p3 = page(with_param(&first, "page", "3"), &[("X-WP-TotalPages", "3")], json!({"data": [{"id": 5}]}));
        assert_eq!(next_page(&st, &p3).unwrap(), Next::Done);
        let missing = page(first, &[], json!({"data": [{"id": 1}]}));
        assert!(next_page(&st, &missing).unwrap_err().to_string().contains("X-WP-TotalPages"));
    }

    #[test]
    fn offsets_stop_at_the_total_or_a_short_page() {
        let (src, st) = stream(r#"{ type = "offset_limit", limit = 2, total_pointer = "/total" }"#);
        let u = first_url(&src, &st, None, day());
        assert_eq!(u.as_str(), "http://h:1/api/items?offset=0&limit=2");
        let p = page(u.clone(), &[], json!({"total": 3, "data": [{"id": 1}, {"id": 2}]}));
        assert_eq!(next_page(&st, &p).unwrap(), Next::Url(Url::parse("http://h:1/api/items?limit=2&offset=2").unwrap()));
        let last = page(with_param(&u, "offset", "2"), &[], json!({"total": 3, "data": [{"id": 3}]}));
        assert_eq!(next_page(&st, &last).unwrap(), Next::Done);
        let (_, st2) = stream(r#"{ type = "offset_limit", limit = 2 }"#);
        let short = page(u, &[], json!({"data": [{"id": 1}]}));
        assert_eq!(next_page(&st2, &short).unwrap(), Next::Done);
    }

    #[test]
    fn body_cursors_and_link_headers() {
        let (src, st) = stream(r#"{ type = "body_cursor", next_pointer = "/next", cursor_param = "cursor", size_param = "limit", size = 50 }"#);
        let u = first_url(&src, &st, None, day());
        let p = page(u.clone(), &[], json!({"data": [{"id": 1}], "next": "abc"}));
        assert!(matches!(next_page(&st, &p).unwrap(), Next::Url(n) if n.as_str().ends_with("cursor=abc")));
        let end = page(u.clone(), &[], json!({"data": [], "next": null}));
        assert_eq!(next_page(&st, &end).unwrap(), Next::Done);
        let bad = page(u, &[], json!({"data": [], "next": 7}));
        assert!(next_page(&st, &bad).is_err());

        let (src, st) = stream(r#"{ type = "link_header" }"#);
        let u = first_url(&src, &st, None, day());
        let link = r#"<http://h:1/api/items?page=1>; rel="prev", <http://h:1/api/items?page=3>; rel="next last""#;
        let p = page(u.clone(), &[("Link", link)], json!({"data": [{"id": 1}]}));
        assert_eq!(next_page(&st, &p).unwrap(), Next::Url(Url::parse("http://h:1/api/items?page=3").unwrap()));
        let relative = page(u.clone(), &[("Link", "</api/items?page=9>; rel=next")], json!({"data": []}));
        assert_eq!(next_page(&st, &relative).unwrap(), Next::Url(Url::parse("http://h:1/api/items?page=9").unwrap()));
        let none = page(u.clone(), &[("Link", r#"<x>; rel="prev""#)], json!({"data": []}));
        assert_eq!(next_page(&st, &none).unwrap(), Next::Done);
        // Issue 18: a next link to another host would carry the source's credentials there.
        let away = page(u, &[("Link", "<https://elsewhere.example/steal?page=2>; rel=next")], json!({"data": [{"id": 1}]}));
        let e = next_page(&st, &away).unwrap_err().to_string();
        assert!(e.contains("another origin") && e.contains("elsewhere.example"), "{e}");
    }

    #[test]
    fn a_page_without_records_is_an_error_naming_the_pointer() {
        let (src, st) = stream(r#"{ type = "link_header" }"#);
        let url = first_url(&src, &st, None, day());
        let e = Page::new(&st, url.clone(), vec![], json!({"items": []}).to_string()).unwrap_err();
        assert!(e.is_retryable());
        assert!(e.to_string().contains("/data") && e.to_string().contains("/items"), "{e}");
        // A body that is not JSON at all: named as such.
        let e = Page::new(&st, url, vec![], r#"{"data": [{"id": 1},"#.into()).unwrap_err();
        assert!(e.is_retryable() && e.to_string().contains("malformed JSON"), "{e}");
    }

    #[test]
    fn a_body_that_is_the_array_of_records_is_read_in_one_pass_with_the_same_errors() {
        let (src, mut st) = stream(r#"{ type = "link_header" }"#);
        st.records = String::new();
        let url = first_url(&src, &st, None, day());
        let p = Page::new(&st, url.clone(), vec![], r#" [ {"id": 1}, {"id": [2, {"x": "]"}]} ] "#.into()).unwrap();
        assert_eq!(p.records().collect::<Vec<_>>(), vec![r#"{"id": 1}"#, r#"{"id": [2, {"x": "]"}]}"#]);
        let e = Page::new(&st, url.clone(), vec![], r#"{"data": []}"#.into()).unwrap_err();
        assert!(e.to_string().contains("the page body is not an array of records"), "{e}");
        for bad in [r#"[{"id": 1},"#, r#"[{"id": 1}] x"#, "<html>"] {
            let e = Page::new(&st, url.clone(), vec![], bad.into()).unwrap_err();
            assert!(e.is_retryable() && e.to_string().contains("malformed JSON"), "{bad}: {e}");
        }
    }

    #[test]
    fn auth_headers_come_from_the_secret() {
        let basic = Auth::Basic { secret: "secretsmanager:x".parse_ref(), username_key: "u".into(), password_key: "p".into() };
        let (k, v) = basic.header(&json!({"u": "Aladdin", "p": "open sesame"})).unwrap().unwrap();
        assert_eq!((k.as_str(), v.as_str()), ("authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
        assert!(basic.header(&json!({"u": "a"})).unwrap_err().contains("\"p\""));
        let bearer = Auth::Bearer { secret: "ssm:/t".parse_ref(), key: "token".into() };
        assert_eq!(bearer.header(&json!({"token": "t1"})).unwrap().unwrap().1, "Bearer t1");
    }

    trait ParseRef {
        fn parse_ref(&self) -> crate::SecretRef;
    }
    impl ParseRef for str {
        fn parse_ref(&self) -> crate::SecretRef {
            serde_json::from_value(json!(self)).unwrap()
        }
    }
}
