//! Fetching pages: authentication, an adaptive request pace per source ([`crate::pace`]),
//! retries with exponential backoff and full jitter, `Retry-After`, and a deadline.

use std::time::Duration;

use alkasba_sources::{Page, Source, Stream, next_page};
use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use tokio::time::Instant;
use url::Url;

use crate::pace::{Pace, PaceTuning};
use crate::{Error, Result};

/// A page and what it took to get it.
#[derive(Debug)]
pub struct Fetched {
    pub page: Page,
    /// Requests made, the successful one included.
    pub attempts: u32,
}

/// Why a page could not be fetched.
#[derive(Debug)]
pub struct FetchFailure {
    pub url: Url,
    /// The last problem.
    pub reason: String,
    /// The last HTTP status, if any answer came.
    pub status: Option<u16>,
    /// The last response body, if any (kept, sealed, for the dead-letter record).
    pub body: Option<Bytes>,
    pub attempts: u32,
    /// The deadline came first: the page is not poison, just not done.
    pub out_of_time: bool,
}

/// The pace of `source`'s requests: its configured rate limit is the ceiling; the pace starts
/// low, grows while the store answers well and falls on its signals.
fn pace_of(source: &Source, tuning: PaceTuning) -> Pace {
    let ceiling = source.rate_limit.as_ref().map(|r| r.requests_per_second as f64);
    Pace::new(ceiling, tuning)
}

/// One source's HTTP side.
pub struct HttpSource {
    client: reqwest::Client,
    auth: Option<(HeaderName, HeaderValue)>,
    pace: Pace,
    source: Source,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSource").field("source", &self.source.name).finish_non_exhaustive()
    }
}

enum Attempt {
    Done(Page),
    Retry { reason: String, status: Option<u16>, body: Option<Bytes>, after: Option<Duration> },
    Fatal { reason: String, status: Option<u16>, body: Option<Bytes> },
}

impl HttpSource {
    /// `auth_header` comes from the source's secret (see `Auth::header`).
    pub fn new(source: &Source, auth_header: Option<(String, String)>) -> Result<Self> {
        if !alkasba_sources::transport_is_safe(&source.base_url) {
            return Err(Error::Config(format!(
                "source {}: base URL {} is plain http to a host that is not loopback: credentials and personal data would cross the network in clear; use https",
                source.name, source.base_url
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(source.retry.timeout_ms))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(16)
            .user_agent(concat!("alkasba-lake/", env!("CARGO_PKG_VERSION")))
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let auth = match auth_header {
            None => None,
            Some((k, v)) => {
                let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| Error::Config(format!("source {}: auth header name {k:?} is invalid", source.name)))?;
                let mut value = HeaderValue::from_str(&v).map_err(|_| Error::Config(format!("source {}: the secret does not make a valid header value", source.name)))?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        Ok(Self { client, auth, pace: pace_of(source, PaceTuning::default()), source: source.clone() })
    }

    /// The same, pacing requests with `tuning` (benchmarks).
    pub fn with_tuning(mut self, tuning: PaceTuning) -> Self {
        self.pace = pace_of(&self.source, tuning);
        self
    }

    /// The adaptive pace of this source's requests.
    pub fn pace(&self) -> &Pace {
        &self.pace
    }

    /// The source's base URL.
    pub fn source(&self) -> &Source {
        &self.source
    }

    async fn attempt(&self, stream: &Stream, url: &Url, check_next: bool) -> Attempt {
        self.pace.acquire().await;
        let mut req = self.client.get(url.clone());
        if let Some((k, v)) = &self.auth {
            req = req.header(k.clone(), v.clone());
        }
        let sent = std::time::Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry { reason: net_reason(&e), status: None, body: None, after: None },
        };
        let status = resp.status();
        if status.as_u16() == 429 || (status.as_u16() == 503 && resp.headers().contains_key(RETRY_AFTER)) {
            self.pace.on_throttled();
        } else if status.is_success() {
            self.pace.on_success(sent.elapsed());
        }
        let headers = resp.headers().clone();
        if status.is_redirection() {
            // Only redirects to another origin are left unfollowed (see `same_origin_redirects`).
            let to = headers.get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).and_then(|l| url.join(l).ok()).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|| "?".into());
            return Attempt::Fatal {
                reason: format!("HTTP {}: redirect to another origin ({to}) not followed: the source's credentials stay with its own host", status.as_u16()),
                status: Some(status.as_u16()),
                body: None,
            };
        }
        let body = match read_body(resp, self.source.max_body_bytes).await {
            Ok(b) => b,
            Err(BodyError::TooBig(n)) => return Attempt::Fatal { reason: format!("response body over {n} bytes (the source's max_body_bytes)"), status: Some(status.as_u16()), body: None },
            Err(BodyError::Read(e)) => return Attempt::Retry { reason: format!("reading the body: {}", net_reason(&e)), status: Some(status.as_u16()), body: None, after: None },
        };
        if status.is_success() {
            // The body becomes the page's text without a copy (`Vec::from` takes the buffer
            // `read_body` filled); a bad page gives it back for its dead-letter record.
            let retry = |reason: String, body: Vec<u8>| Attempt::Retry { reason, status: Some(status.as_u16()), body: Some(Bytes::from(body)), after: None };
            let text = match String::from_utf8(Vec::from(body)) {
                Ok(t) => t,
                Err(e) => return retry(format!("malformed JSON (not UTF-8: {})", e.utf8_error()), e.into_bytes()),
            };
            // A page that is not JSON, or whose records or pagination cannot be read, is as
            // broken as a 500.
            let page = match Page::parse(stream, url.clone(), header_list(&headers), text) {
                Ok(p) => p,
                Err((e, text)) => return retry(e.to_string(), text.into_bytes()),
            };
            if check_next && let Err(e) = next_page(stream, &page) {
                return retry(e.to_string(), page.into_body().into_bytes());
            }
            return Attempt::Done(page);
        }
        let code = status.as_u16();
        let reason = format!("HTTP {code}");
        if code == 429 || code == 408 || status.is_server_error() {
            let after = retry_after(&headers);
            Attempt::Retry { reason, status: Some(code), body: Some(body), after }
        } else {
            Attempt::Fatal { reason, status: Some(code), body: Some(body) }
        }
    }

    /// Fetches `url` with the source's retry policy, giving up before `deadline`.
    pub async fn fetch(&self, stream: &Stream, url: &Url, deadline: Instant) -> std::result::Result<Fetched, FetchFailure> {
        let policy = &self.source.retry;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(policy.initial_backoff_ms))
            .with_max_delay(Duration::from_millis(policy.max_backoff_ms))
            .with_max_times(policy.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
            .build();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let fail = |reason: String, status, body, out_of_time| FetchFailure { url: url.clone(), reason, status, body, attempts, out_of_time };
            if Instant::now() + Duration::from_millis(policy.timeout_ms.min(2_000)) > deadline {
                return Err(fail("no time left before the deadline".into(), None, None, true));
            }
            match self.attempt(stream, url, true).await {
                Attempt::Done(page) => return Ok(Fetched { page, attempts }),
                Attempt::Fatal { reason, status, body } => return Err(fail(reason, status, body, false)),
                Attempt::Retry { reason, status, body, after } => {
                    let Some(backoff) = delays.next() else {
                        return Err(fail(format!("{reason}, after {attempts} attempts"), status, body, false));
                    };
                    // Retry-After wins over our own backoff, capped by the policy's ceiling.
                    let wait = after.map(|a| a.min(Duration::from_millis(policy.max_backoff_ms))).unwrap_or(backoff);
                    if Instant::now() + wait >= deadline {
                        return Err(fail(format!("{reason}; the next retry would pass the deadline"), status, body, true));
                    }
                    tracing::debug!(url = %url, %reason, attempt = attempts, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Redirects are followed within the source's own origin (scheme, host and port), at most five;
/// one to another origin is not followed, so an auth header (Basic, or an API key header that
/// reqwest would not know to strip) never reaches another host.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
        if same && attempt.previous().len() <= 5 { attempt.follow() } else { attempt.stop() }
    })
}

enum BodyError {
    TooBig(u64),
    Read(reqwest::Error),
}

/// The body, read chunk by chunk and given up past `limit` bytes (a declared length over it is
/// refused before reading).
async fn read_body(mut resp: reqwest::Response, limit: u64) -> std::result::Result<Bytes, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(BodyError::TooBig(limit));
    }
    // Sized from the declared length: grown by doubling, a 200 KB page was copied about twice
    // over, and each size's new pages were faulted in (the fetcher's allocator gives freed
    // pages back at once).
    let mut buf = bytes::BytesMut::with_capacity(resp.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Read)? {
        if buf.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooBig(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn net_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        // Without the URL: it is logged separately, and error chains can be long.
        let mut s = String::from("request failed");
        let mut src = std::error::Error::source(e);
        while let Some(inner) = src {
            s.push_str(&format!(": {inner}"));
            src = inner.source();
        }
        s
    }
}

fn header_list(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string()))).collect()
}

/// A `Retry-After` header's wait: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (at.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64;
    Some(Duration::from_secs(secs))
}
