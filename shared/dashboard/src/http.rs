//! The dashboard's HTTP surface, behind a Lambda Function URL (payload format 2.0):
//!
//! | route | access | answer |
//! | --- | --- | --- |
//! | `GET /login`, `GET /favicon.ico`, `GET /assets/{login.js,style.css,icon.svg}` | anyone | the sign-in page |
//! | `POST /api/login` `{"user", "key"}` | anyone | a session cookie, or 401 |
//! | `POST /api/logout` | anyone | clears the cookie |
//! | `GET /api/health` | anyone | `{"ok": true}` |
//! | `GET /`, `GET /assets/<file>` | session | the pages (from `_dashboard/` in the lake bucket); without a session `/` redirects to `/login` |
//! | `GET /api/q/<query>?from&to&currency&category&product&grain` | session | a query of [`crate::queries`] as `{columns, rows}`; `{columns: [], rows: [], missing: <table>}` when a table it reads is not built yet |
//! | `GET /api/catalogue` | session | every query's name, page and meaning |
//! | `GET /api/live` | session | the real-time live view (`{missing}` before the first event) |
//!
//! Answers carry a strict Content-Security-Policy (`'self'` only: nothing loads from elsewhere)
//! and are gzipped for browsers that accept it (a Function URL does not compress).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use deltalake::logstore::object_store::{ObjectStore, ObjectStoreExt, path::Path as ObjectPath};
use serde_json::{Value, json};

use crate::auth::{Access, COOKIE, SESSION_SECS};
use crate::engine::Engine;
use crate::params::Filters;
use crate::queries::QUERIES;
use crate::{Error, Result};

/// One request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Query-string parameters, decoded.
    pub query: BTreeMap<String, String>,
    /// Headers, names in lower case.
    pub headers: BTreeMap<String, String>,
    /// `name=value` cookies.
    pub cookies: Vec<String>,
    pub body: Vec<u8>,
}

impl Request {
    /// From a Function URL event; `None` when it is not one.
    pub fn from_function_url(event: &Value) -> Option<Self> {
        let method = event.pointer("/requestContext/http/method")?.as_str()?.to_string();
        let path = event.get("rawPath").and_then(Value::as_str).unwrap_or("/").to_string();
        let raw_query = event.get("rawQueryString").and_then(Value::as_str).unwrap_or_default();
        let query = url::form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect();
        let headers: BTreeMap<String, String> =
            event.get("headers").and_then(Value::as_object).map(|h| h.iter().filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_string()))).collect()).unwrap_or_default();
        // Payload 2.0 moves cookies out of the headers into `cookies`.
        let mut cookies: Vec<String> = event.get("cookies").and_then(Value::as_array).map(|c| c.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default();
        if let Some(h) = headers.get("cookie") {
            cookies.extend(h.split(';').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()));
        }
        let body = match event.get("body").and_then(Value::as_str) {
            None => Vec::new(),
            Some(b) if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => base64::engine::general_purpose::STANDARD.decode(b).ok()?,
            Some(b) => b.as_bytes().to_vec(),
        };
        Some(Self { method, path, query, headers, cookies, body })
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find_map(|c| c.split_once('=').filter(|(k, _)| k.trim() == name).map(|(_, v)| v.trim()))
    }

    fn is_https(&self) -> bool {
        self.headers.get("x-forwarded-proto").is_some_and(|p| p == "https")
    }
}

/// One answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// `Set-Cookie` values.
    pub cookies: Vec<String>,
    pub body: Bytes,
}

impl Response {
    fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Self { status, headers: vec![("content-type".into(), content_type.into())], cookies: Vec::new(), body: body.into() }
    }

    fn json(status: u16, v: &Value) -> Self {
        let mut r = Self::new(status, "application/json", v.to_string());
        r.headers.push(("cache-control".into(), "no-store".into()));
        r
    }

    fn error(e: &Error) -> Self {
        if e.status() >= 500 {
            tracing::error!(error = %e, "dashboard request failed");
        }
        Self::json(e.status(), &json!({"error": e.to_string(), "code": e.code()}))
    }

    fn redirect(to: &str) -> Self {
        let mut r = Self::new(302, "text/plain", "");
        r.headers.push(("location".into(), to.into()));
        r
    }

    /// The header `name`, if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// As a Function URL response (binary and gzipped bodies base64-encoded).
    pub fn to_function_url(&self) -> Value {
        let headers: serde_json::Map<String, Value> = self.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let binary = self.header("content-encoding").is_some() || std::str::from_utf8(&self.body).is_err();
        let body = if binary { base64::engine::general_purpose::STANDARD.encode(&self.body) } else { String::from_utf8_lossy(&self.body).into_owned() };
        json!({"statusCode": self.status, "headers": headers, "cookies": self.cookies, "body": body, "isBase64Encoded": binary})
    }
}

/// Where the access secret comes from (Secrets Manager in Lambda, a value in tests).
pub trait AccessSource: Send + Sync {
    fn load(&self) -> impl Future<Output = Result<Access>> + Send;
}

/// An access secret held in memory.
pub struct StaticAccess(pub Access);

impl AccessSource for StaticAccess {
    async fn load(&self) -> Result<Access> {
        Ok(self.0.clone())
    }
}

/// How long the access secret and the pages are kept before being read again (a grant or a
/// revocation, a newly published page, takes effect within this).
const REFRESH: Duration = Duration::from_secs(60);

/// Files anyone may fetch: what the sign-in page needs.
const PUBLIC_ASSETS: &[&str] = &["login.html", "login.js", "style.css", "icon.svg"];

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The dashboard.
pub struct Dashboard<A> {
    engine: Engine,
    store: Arc<dyn ObjectStore>,
    access: A,
    cached_access: Mutex<Option<(Instant, Access)>>,
    assets: Mutex<BTreeMap<String, (Instant, Bytes)>>,
}

impl<A: AccessSource> Dashboard<A> {
    /// Over `engine`'s lake; pages and the live view are read from `store` (the lake's object
    /// store, rooted at the lake root).
    pub fn new(engine: Engine, store: Arc<dyn ObjectStore>, access: A) -> Self {
        Self { engine, store, access, cached_access: Mutex::new(None), assets: Mutex::new(BTreeMap::new()) }
    }

    async fn access(&self, fresh: bool) -> Result<Access> {
        if !fresh
            && let Some((at, a)) = self.cached_access.lock().ok().and_then(|g| g.clone())
            && at.elapsed() < REFRESH
        {
            return Ok(a);
        }
        let a = self.access.load().await?;
        if let Ok(mut g) = self.cached_access.lock() {
            *g = Some((Instant::now(), a.clone()));
        }
        Ok(a)
    }

    /// Answers `req` at `now` (Unix seconds).
    pub async fn handle(&self, req: &Request, now: i64) -> Response {
        let mut resp = match self.route(req, now).await {
            Ok(r) => r,
            Err(e) => Response::error(&e),
        };
        resp.headers.push(("content-security-policy".into(), CSP.into()));
        resp.headers.push(("x-content-type-options".into(), "nosniff".into()));
        resp.headers.push(("referrer-policy".into(), "no-referrer".into()));
        if resp.body.len() > 1024 && req.headers.get("accept-encoding").is_some_and(|a| a.contains("gzip")) {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            if gz.write_all(&resp.body).is_ok()
                && let Ok(body) = gz.finish()
            {
                resp.body = body.into();
                resp.headers.push(("content-encoding".into(), "gzip".into()));
                resp.headers.push(("vary".into(), "accept-encoding".into()));
            }
        }
        resp
    }

    async fn route(&self, req: &Request, now: i64) -> Result<Response> {
        let path = req.path.as_str();
        match (req.method.as_str(), path) {
            ("GET", "/api/health") => Ok(Response::json(200, &json!({"ok": true}))),
            ("POST", "/api/login") => self.login(req, now).await,
            ("POST", "/api/logout") => {
                let mut r = Response::json(200, &json!({"signed_out": true}));
                r.cookies.push(format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"));
                Ok(r)
            }
            ("GET", "/login") => self.asset("login.html").await,
            // Browsers ask for it on every page, signed in or not.
            ("GET", "/favicon.ico") => self.asset("icon.svg").await,
            ("GET", p) if p.starts_with("/assets/") && PUBLIC_ASSETS.contains(&&p["/assets/".len()..]) => self.asset(&p["/assets/".len()..]).await,
            ("GET", "/") | ("GET", "/index.html") => match self.session(req, now).await {
                Ok(_) => self.asset("index.html").await,
                Err(Error::Unauthorized(_)) => Ok(Response::redirect("/login")),
                Err(e) => Err(e),
            },
            ("GET", p) => {
                let user = self.session(req, now).await?;
                if let Some(file) = p.strip_prefix("/assets/") {
                    return self.asset(file).await;
                }
                if let Some(name) = p.strip_prefix("/api/q/") {
                    let filters = Filters::parse(&req.query, chrono::DateTime::from_timestamp(now, 0).unwrap_or_default().date_naive())?;
                    return match self.engine.run(name, &filters).await {
                        Ok(answer) => {
                            tracing::info!(user = %user, query = name, rows = answer.rows.len(), "query");
                            Ok(Response::json(200, &json!(answer)))
                        }
                        // Not built yet (the forecast before its first run): an empty answer
                        // that says so, not an error; the page hides what depends on it.
                        Err(Error::NoTable(table)) => Ok(Response::json(200, &json!({"columns": [], "rows": [], "missing": table}))),
                        Err(e) => Err(e),
                    };
                }
                match p {
                    "/api/catalogue" => Ok(Response::json(200, &json!(QUERIES.iter().map(|q| json!({"name": q.name, "page": q.page, "about": q.about})).collect::<Vec<_>>()))),
                    "/api/live" => self.live().await,
                    _ => Err(Error::NotFound(p.to_string())),
                }
            }
            (m, _) => Ok(Response::json(405, &json!({"error": format!("method {m} not allowed here"), "code": "method"}))),
        }
    }

    async fn session(&self, req: &Request, now: i64) -> Result<String> {
        let value = req.cookie(COOKIE).ok_or(Error::Unauthorized("no session"))?;
        match self.access(false).await?.verify(value, now) {
            Ok(u) => Ok(u),
            // A session from a user granted since the cached secret was read.
            Err(_) => self.access(true).await?.verify(value, now),
        }
    }

    async fn login(&self, req: &Request, now: i64) -> Result<Response> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Login {
            user: String,
            key: String,
        }
        let l: Login = serde_json::from_slice(&req.body).map_err(|e| Error::bad("body", format!("expected {{\"user\", \"key\"}}: {e}")))?;
        let access = self.access(true).await?;
        if let Err(e) = access.check_key(&l.user, &l.key) {
            tracing::warn!(user_len = l.user.len(), "sign-in refused");
            return Err(e);
        }
        let secure = if req.is_https() { "; Secure" } else { "" };
        let mut r = Response::json(200, &json!({"user": l.user}));
        r.cookies.push(format!("{COOKIE}={}; Path=/; Max-Age={SESSION_SECS}; HttpOnly; SameSite=Strict{secure}", access.session(&l.user, now)?));
        tracing::info!(user = %l.user, "signed in");
        Ok(r)
    }

    async fn object(&self, path: &str) -> Result<Option<Bytes>> {
        read_object(self.store.as_ref(), path).await
    }

    async fn asset(&self, file: &str) -> Result<Response> {
        if file.is_empty() || file.contains("..") || !file.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b)) {
            return Err(Error::NotFound(format!("asset {file:?}")));
        }
        let cached = self.assets.lock().ok().and_then(|m| m.get(file).filter(|(at, _)| at.elapsed() < REFRESH).map(|(_, b)| b.clone()));
        let body = match cached {
            Some(b) => b,
            None => {
                let b = self
                    .object(&format!("{}/{file}", alkasba_lake::layout::DASHBOARD_ASSETS))
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("asset {file:?} (published with `alkasba dashboard publish`?)")))?;
                if let Ok(mut m) = self.assets.lock() {
                    m.insert(file.to_string(), (Instant::now(), b.clone()));
                }
                b
            }
        };
        let mut r = Response::new(200, content_type(file), body);
        r.headers.push(("cache-control".into(), "no-cache".into()));
        Ok(r)
    }

    async fn live(&self) -> Result<Response> {
        match self.object(alkasba_lake::layout::LIVE_VIEW).await? {
            Some(b) => {
                let v: Value = serde_json::from_slice(&b).map_err(|e| Error::Object { path: alkasba_lake::layout::LIVE_VIEW.into(), reason: format!("not JSON: {e}") })?;
                Ok(Response::json(200, &v))
            }
            None => Ok(Response::json(200, &json!({"missing": alkasba_lake::layout::LIVE_VIEW}))),
        }
    }
}

/// The object at `path` under the lake root, `None` when there is none (pages, the live view,
/// the report's chart library).
pub(crate) async fn read_object(store: &dyn ObjectStore, path: &str) -> Result<Option<Bytes>> {
    match store.get(&ObjectPath::from(path)).await {
        Ok(r) => Ok(Some(r.bytes().await.map_err(|e| Error::Object { path: path.to_string(), reason: e.to_string() })?)),
        Err(deltalake::logstore::object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::Object { path: path.to_string(), reason: e.to_string() }),
    }
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}
