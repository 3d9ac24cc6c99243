//! The HTTP API: WooCommerce REST v3 routes, the two feeds, and the `/_sim` control and
//! ground-truth routes.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::faults::{Fault, FaultDice, Faults};
use crate::feeds;
use crate::store::{ListQuery, OrderBy, Resource, Store};
use crate::webhooks::Webhooks;
use crate::{Credentials, SimConfig};

/// Shared state of a running simulator.
pub struct AppState {
    pub store: RwLock<Store>,
    pub faults: RwLock<Faults>,
    pub credentials: Credentials,
    pub mutations_per_request: usize,
    dice: FaultDice,
    /// Requests seen per `(resource, page)` of the flaky pages.
    flaky_seen: std::sync::Mutex<HashMap<(Resource, usize), u32>>,
    limiter: Option<DefaultDirectRateLimiter>,
    pub webhooks: Webhooks,
    /// Webhooks registered in the shop (what `GET /wp-json/wc/v3/webhooks` lists).
    pub registered: crate::registered::Registry,
    requests: AtomicU64,
}

impl AppState {
    pub fn new(cfg: SimConfig) -> Arc<Self> {
        let limiter = cfg.rate_limit_per_sec.and_then(NonZeroU32::new).map(|rps| {
            let burst = NonZeroU32::new(cfg.rate_limit_burst.max(1)).unwrap_or(rps);
            RateLimiter::direct(Quota::per_second(rps).allow_burst(burst))
        });
        Arc::new(AppState {
            store: RwLock::new(Store::new(cfg.shape, cfg.invalid_rate)),
            faults: RwLock::new(cfg.faults),
            credentials: cfg.credentials,
            mutations_per_request: cfg.mutations_per_request,
            dice: FaultDice::default(),
            flaky_seen: std::sync::Mutex::default(),
            limiter,
            webhooks: Webhooks::default(),
            registered: crate::registered::Registry::default(),
            requests: AtomicU64::new(0),
        })
    }

    pub fn store(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }
    pub fn store_mut(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }
    fn seed(&self) -> u64 {
        self.store().shape.seed
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/wp-json/wc/v3/products/categories", get(categories))
        .route("/wp-json/wc/v3/orders/{id}/refunds", get(order_refunds))
        .route("/wp-json/wc/v3/{resource}", get(list))
        .route("/wp-json/wc/v3/{resource}/{id}", get(one))
        .route("/feeds/competitors/prices", get(competitor_prices))
        .route("/feeds/fx/rates", get(fx_rates))
        .route("/_sim/health", get(|| async { "ok" }))
        .route("/_sim/info", get(info))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/mutate", post(mutate))
        .route("/_sim/truth/daily", get(truth_daily))
        .route("/_sim/truth/{resource}", get(truth))
        .merge(crate::webhooks::routes())
        .merge(crate::registered::routes())
        .with_state(state)
}

// ------------------------------------------------------------------------------ errors, auth

pub(crate) fn woo_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"code": code, "message": message.into(), "data": {"status": status.as_u16()}}))).into_response()
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

pub(crate) fn check_basic(headers: &HeaderMap, c: &Credentials) -> Result<(), Response> {
    let denied = |msg: &str| {
        let mut r = woo_error(StatusCode::UNAUTHORIZED, "woocommerce_rest_cannot_view", msg);
        r.headers_mut().insert("www-authenticate", HeaderValue::from_static("Basic realm=\"WooCommerce\""));
        r
    };
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(denied("Sorry, you cannot list resources: consumer key and secret required (HTTP Basic)."));
    };
    let decoded = value
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| denied("Malformed Authorization header."))?;
    let (key, secret) = decoded.split_once(':').unwrap_or((&decoded, ""));
    // Both compared in constant time, and both always compared.
    let ok = ct_eq(key, &c.consumer_key) & ct_eq(secret, &c.consumer_secret);
    if ok { Ok(()) } else { Err(denied("Consumer key or secret is invalid.")) }
}

/// Rate limit and fault dice shared by every API and feed route.
async fn gate(st: &AppState, list_page: bool) -> Result<Fault, Response> {
    st.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(limiter) = &st.limiter
        && let Err(not_until) = limiter.check()
    {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
        return Err(throttled(wait.as_secs().max(1)));
    }
    let faults = st.faults.read().unwrap_or_else(|e| e.into_inner()).clone();
    match st.dice.roll(st.seed(), &faults, list_page) {
        Fault::Throttle => Err(throttled(1)),
        Fault::ServerError(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Err(woo_error(status, "internal_server_error", "The server had a problem (injected fault)."))
        }
        Fault::Slow(ms) | Fault::Hang(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Fault::None)
        }
        other => Ok(other),
    }
}

fn throttled(retry_after: u64) -> Response {
    let mut r = woo_error(StatusCode::TOO_MANY_REQUESTS, "rest_too_many_requests", "Too many requests; retry later.");
    r.headers_mut().insert("retry-after", HeaderValue::from(retry_after));
    r
}

// ------------------------------------------------------------------------------ list and get

fn bad_param(name: &str, why: String) -> Response {
    let mut r = woo_error(StatusCode::BAD_REQUEST, "rest_invalid_param", format!("Invalid parameter(s): {name}"));
    if let Ok(body) = serde_json::to_vec(&json!({"code": "rest_invalid_param", "message": format!("Invalid parameter(s): {name}"),
        "data": {"status": 400, "params": {name: why}}}))
    {
        *r.body_mut() = body.into();
    }
    r
}

/// Parses a WooCommerce date: with an offset or `Z` it is absolute; without, it is the store's
/// local time (UTC+1) unless `dates_are_gmt=true`.
fn parse_date(name: &str, v: &str, gmt: bool) -> Result<i64, Response> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp());
    }
    let naive = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S").map_err(|_| bad_param(name, format!("{name} must be an ISO 8601 date, got {v:?}")))?;
    Ok(naive.and_utc().timestamp() - if gmt { 0 } else { 3600 })
}

fn parse_list(p: &HashMap<String, String>, resource: Resource) -> Result<ListQuery, Response> {
    let num = |name: &str, default: usize| -> Result<usize, Response> { p.get(name).map_or(Ok(default), |v| v.parse().map_err(|_| bad_param(name, format!("{name} must be an integer")))) };
    let page = num("page", 1)?;
    if page < 1 {
        return Err(bad_param("page", "page must be at least 1".into()));
    }
    let per_page = num("per_page", 10)?;
    if !(1..=100).contains(&per_page) {
        return Err(bad_param("per_page", "per_page must be between 1 (inclusive) and 100 (inclusive)".into()));
    }
    if resource == Resource::Customers {
        return parse_customers(p, page, per_page);
    }
    let orderby = match p.get("orderby").map(String::as_str) {
        None | Some("date") => OrderBy::Date,
        Some("id") => OrderBy::Id,
        Some("modified") => OrderBy::Modified,
        Some(other) => return Err(bad_param("orderby", format!("orderby is not one of date, id, modified: {other:?}"))),
    };
    let desc = match p.get("order").map(String::as_str) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => return Err(bad_param("order", format!("order is not one of asc, desc: {other:?}"))),
    };
    let gmt = p.get("dates_are_gmt").is_some_and(|v| v == "true" || v == "1");
    let date = |name: &str| p.get(name).map(|v| parse_date(name, v, gmt)).transpose();
    let status = match p.get("status").map(String::as_str) {
        None | Some("any") => None,
        Some(list) if resource == Resource::Orders => Some(
            list.split(',')
                .map(|s| crate::data::STATUSES.iter().position(|x| *x == s).map(|i| i as u8).ok_or_else(|| bad_param("status", format!("unknown status {s:?}"))))
                .collect::<Result<Vec<u8>, _>>()?,
        ),
        Some(_) => return Err(bad_param("status", "status filters orders only".into())),
    };
    Ok(ListQuery { page, per_page, orderby, desc, after: date("after")?, before: date("before")?, modified_after: date("modified_after")?, modified_before: date("modified_before")?, status })
}

/// The customers list's own parameters (`WC_REST_Customers_V1_Controller`: a `WP_User_Query`, not
/// a posts query): `orderby` is one of id, include, name, registered_date (default name), `order`
/// defaults to asc, and there are no date filters: `after`, `modified_after` and the like are not
/// declared, so WordPress ignores them and every customer comes back.
fn parse_customers(p: &HashMap<String, String>, page: usize, per_page: usize) -> Result<ListQuery, Response> {
    let orderby = match p.get("orderby").map(String::as_str) {
        None | Some("name") => OrderBy::Name,
        Some("id") | Some("include") => OrderBy::Id,
        Some("registered_date") => OrderBy::Date,
        Some(other) => return Err(bad_param("orderby", format!("orderby is not one of id, include, name, and registered_date: {other:?}"))),
    };
    let desc = match p.get("order").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return Err(bad_param("order", format!("order is not one of asc and desc: {other:?}"))),
    };
    Ok(ListQuery { page, per_page, orderby, desc, after: None, before: None, modified_after: None, modified_before: None, status: None })
}

/// `Link` header with `next`/`prev` pages, keeping every other query parameter.
fn link_header(uri: &Uri, host: &str, page: usize, pages: usize) -> Option<String> {
    let base = format!("http://{host}{}", uri.path());
    let others: Vec<&str> = uri.query().unwrap_or_default().split('&').filter(|kv| !kv.is_empty() && !kv.starts_with("page=")).collect();
    let url = |n: usize| {
        let mut q = others.clone();
        let page = format!("page={n}");
        q.push(&page);
        format!("<{base}?{}>", q.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 && page <= pages + 1 {
        links.push(format!("{}; rel=\"prev\"", url(page - 1)));
    }
    if page < pages {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

fn page_response(body: Vec<u8>, total: usize, per_page: usize, page: usize, uri: &Uri, headers: &HeaderMap, fault: Fault) -> Response {
    let pages = total.div_ceil(per_page);
    let body = match fault {
        Fault::Truncate => body[..body.len() / 2].to_vec(),
        Fault::Malformed => b"<html><body>Error establishing a database connection</body></html>".to_vec(),
        _ => body,
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json; charset=UTF-8"));
    h.insert("x-wp-total", HeaderValue::from(total as u64));
    h.insert("x-wp-totalpages", HeaderValue::from(pages as u64));
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    if let Some(link) = link_header(uri, host, page, pages).and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert("link", link);
    }
    r
}

async fn list(State(st): State<Arc<AppState>>, Path(resource): Path<String>, Query(p): Query<HashMap<String, String>>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(resource) = Resource::parse(&resource) else {
        return woo_error(StatusCode::NOT_FOUND, "rest_no_route", format!("No route was found matching the URL: {}", uri.path()));
    };
    if let Err(r) = check_basic(&headers, &st.credentials) {
        return r;
    }
    let fault = match gate(&st, true).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let q = match parse_list(&p, resource) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let (poisoned, flaky) = {
        let f = st.faults.read().unwrap_or_else(|e| e.into_inner());
        (f.poison_pages.contains(&q.page), f.flaky_pages.get(&q.page).copied())
    };
    let failing = flaky.is_some_and(|n| {
        let mut seen = st.flaky_seen.lock().unwrap_or_else(|e| e.into_inner());
        let c = seen.entry((resource, q.page)).or_default();
        *c += 1;
        *c <= n
    });
    let fault = if poisoned || failing { Fault::Malformed } else { fault };
    if resource == Resource::Orders && st.mutations_per_request > 0 {
        // A live store: orders change while clients page through them.
        st.store_mut().mutate(st.mutations_per_request, None);
    }
    let (total, body) = {
        let store = st.store();
        let (total, ids) = store.list(resource, &q);
        (total, store.page(resource, &ids))
    };
    page_response(body, total, q.per_page, q.page, &uri, &headers, fault)
}

async fn one(State(st): State<Arc<AppState>>, Path((resource, id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    if let Err(r) = check_basic(&headers, &st.credentials) {
        return r;
    }
    if let Err(r) = gate(&st, false).await {
        return r;
    }
    let store = st.store();
    match (Resource::parse(&resource), id.parse::<u32>()) {
        (Some(r), Ok(id)) if id >= 1 && (id as usize) <= store.len(r) => axum::Json(store.render(r, id)).into_response(),
        (Some(r), _) => woo_error(StatusCode::NOT_FOUND, &format!("woocommerce_rest_{}_invalid_id", r.name().trim_end_matches('s')), "Invalid ID."),
        _ => woo_error(StatusCode::NOT_FOUND, "rest_no_route", "No route was found matching the URL."),
    }
}

async fn order_refunds(State(st): State<Arc<AppState>>, Path(id): Path<u32>, headers: HeaderMap) -> Response {
    if let Err(r) = check_basic(&headers, &st.credentials) {
        return r;
    }
    if let Err(r) = gate(&st, false).await {
        return r;
    }
    let store = st.store();
    if id == 0 || id as usize > store.len(Resource::Orders) {
        return woo_error(StatusCode::NOT_FOUND, "woocommerce_rest_order_invalid_id", "Invalid ID.");
    }
    // The order refunds controller gives no `parent_id` (the path names the order).
    let items: Vec<Value> = store
        .refunds
        .iter()
        .filter(|r| r.order == id)
        .map(|r| {
            let mut v = store.render(Resource::Refunds, r.id);
            if let Some(o) = v.as_object_mut() {
                o.remove("parent_id");
            }
            v
        })
        .collect();
    axum::Json(items).into_response()
}

async fn categories(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = check_basic(&headers, &st.credentials) {
        return r;
    }
    let cats: Vec<Value> = crate::data::CATEGORIES.iter().enumerate().map(|(i, n)| json!({"id": i + 1, "name": n, "slug": format!("cat-{}", i + 1), "parent": 0})).collect();
    axum::Json(cats).into_response()
}

// ------------------------------------------------------------------------------------- feeds

fn feed_day(p: &HashMap<String, String>) -> Result<NaiveDate, Response> {
    let v = p.get("date").ok_or_else(|| bad_param("date", "date (YYYY-MM-DD) is required".into()))?;
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| bad_param("date", format!("date must be YYYY-MM-DD, got {v:?}")))
}

fn feed_limit(p: &HashMap<String, String>, default: usize, max: usize) -> Result<usize, Response> {
    let l = p.get("limit").map_or(Ok(default), |v| v.parse::<usize>().map_err(|_| bad_param("limit", "limit must be an integer".into())))?;
    if !(1..=max).contains(&l) {
        return Err(bad_param("limit", format!("limit must be within 1..={max}")));
    }
    Ok(l)
}

/// What every feed request does first: check the credential in constant time, roll the fault
/// dice, parse `date` and `limit`.
async fn feed_gate(st: &AppState, presented: &str, expected: &str, what: &str, p: &HashMap<String, String>, (default_limit, max_limit): (usize, usize)) -> Result<(Fault, NaiveDate, usize), Response> {
    if !ct_eq(presented, expected) {
        return Err((StatusCode::UNAUTHORIZED, axum::Json(json!({"error": format!("missing or invalid {what}")}))).into_response());
    }
    let fault = gate(st, true).await?;
    Ok((fault, feed_day(p)?, feed_limit(p, default_limit, max_limit)?))
}

fn json_page(body: &Value, fault: Fault) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let bytes = match fault {
        Fault::Truncate => bytes[..bytes.len() / 2].to_vec(),
        Fault::Malformed => b"upstream connect error".to_vec(),
        _ => bytes,
    };
    (StatusCode::OK, [("content-type", "application/json")], bytes).into_response()
}

/// `GET /feeds/competitors/prices?date=YYYY-MM-DD[&cursor=..][&limit=..]` with `X-Api-Key`;
/// pages by an opaque cursor in the body (`next_cursor`, null on the last page).
async fn competitor_prices(State(st): State<Arc<AppState>>, Query(p): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (fault, day, limit) = match feed_gate(&st, key, &st.credentials.feed_api_key, "X-Api-Key", &p, (100, 500)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let offset = match p.get("cursor") {
        None => 0,
        Some(c) => {
            match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok().and_then(|b| String::from_utf8(b).ok()).and_then(|s| s.strip_prefix("o:").and_then(|n| n.parse::<usize>().ok())) {
                Some(o) => o,
                None => return bad_param("cursor", "cursor is not one this feed issued".into()),
            }
        }
    };
    let all = {
        let store = st.store();
        feeds::competitor_prices(store.shape.seed, &store.products, day)
    };
    let end = (offset + limit).min(all.len());
    let next = (end < all.len()).then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o:{end}")));
    json_page(&json!({"date": day.to_string(), "data": all.get(offset..end).unwrap_or_default(), "next_cursor": next}), fault)
}

/// `GET /feeds/fx/rates?date=YYYY-MM-DD[&offset=..][&limit=..]` with a bearer token.
async fn fx_rates(State(st): State<Arc<AppState>>, Query(p): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
    let (fault, day, limit) = match feed_gate(&st, token, &st.credentials.fx_token, "bearer token", &p, (5, 50)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let offset = match p.get("offset").map(|o| o.parse::<usize>()) {
        None => 0,
        Some(Ok(o)) => o,
        Some(Err(_)) => return bad_param("offset", "offset must be an integer".into()),
    };
    let rates = feeds::exchange_rates(st.seed(), day);
    let page: Vec<Value> = rates.iter().skip(offset).take(limit).cloned().collect();
    json_page(&json!({"base": "MAD", "date": day.to_string(), "total": rates.len(), "offset": offset, "limit": limit, "rates": page}), fault)
}

// ------------------------------------------------------------------------------ control, truth

async fn info(State(st): State<Arc<AppState>>) -> Response {
    let store = st.store();
    axum::Json(json!({
        "seed": store.shape.seed,
        "products": store.len(Resource::Products),
        "customers": store.len(Resource::Customers),
        "orders": store.len(Resource::Orders),
        "refunds": store.len(Resource::Refunds),
        "clock": DateTime::<Utc>::from_timestamp(store.clock, 0).map(|t| t.to_rfc3339()),
        "requests": st.requests.load(Ordering::Relaxed),
        "invalid_rate": store.invalid_rate,
    }))
    .into_response()
}

async fn get_faults(State(st): State<Arc<AppState>>) -> Response {
    axum::Json(st.faults.read().unwrap_or_else(|e| e.into_inner()).clone()).into_response()
}

async fn put_faults(State(st): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("faults: {e}")).into_response(),
    };
    if let Err(e) = faults.validate() {
        return (StatusCode::BAD_REQUEST, format!("faults: {e}")).into_response();
    }
    *st.faults.write().unwrap_or_else(|e| e.into_inner()) = faults.clone();
    axum::Json(faults).into_response()
}

async fn mutate(State(st): State<Arc<AppState>>, Query(p): Query<HashMap<String, String>>) -> Response {
    let n = p.get("n").and_then(|n| n.parse::<usize>().ok()).unwrap_or(1).min(100_000);
    // `over`: the store seconds the changes are spread across (default: one second apart).
    let over = match p.get("over").map(|s| s.parse::<u32>()) {
        None => n as i64,
        Some(Ok(s)) => i64::from(s),
        Some(Err(_)) => return woo_error(StatusCode::BAD_REQUEST, "sim_bad_over", "over must be a whole number of seconds"),
    };
    let changes = st.store_mut().mutate_every(n, None, over / n.max(1) as i64);
    axum::Json(json!({"applied": changes.len(), "changes": changes.iter().map(|c| json!({"topic": c.topic, "id": c.id})).collect::<Vec<_>>()})).into_response()
}

async fn truth(State(st): State<Arc<AppState>>, Path(resource): Path<String>, Query(p): Query<HashMap<String, String>>) -> Response {
    match resource.as_str() {
        "competitor-prices" | "exchange-rates" => {
            let day = match feed_day(&p) {
                Ok(d) => d,
                Err(r) => return r,
            };
            let store = st.store();
            let data = if resource == "exchange-rates" { feeds::exchange_rates(store.shape.seed, day) } else { feeds::competitor_prices(store.shape.seed, &store.products, day) };
            return axum::Json(json!({"date": day.to_string(), "data": data})).into_response();
        }
        _ => {}
    }
    let Some(r) = Resource::parse(&resource) else {
        return (StatusCode::NOT_FOUND, "unknown resource").into_response();
    };
    let (valid, invalid) = st.store().truth(r);
    axum::Json(json!({"resource": r.name(), "valid": valid, "invalid": invalid})).into_response()
}

async fn truth_daily(State(st): State<Arc<AppState>>) -> Response {
    axum::Json(st.store().daily()).into_response()
}
