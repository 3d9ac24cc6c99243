//! The event sources AWS would run for a function: schedules, SQS event source mappings and
//! HTTP endpoints. Each turns its trigger into the event shape AWS delivers and reports every
//! invocation.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, broadcast, watch};

use crate::lambda::{FunctionPool, Invocation, Outcome};
use crate::resolve::display_sdk;
use crate::{Error, Result};

/// What triggered an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Schedule { scheduled_time: DateTime<Utc> },
    Sqs { queue_url: String, message_ids: Vec<String>, failed_ids: Vec<String>, deleted: usize },
    Http { method: String, path: String, status: u16 },
}

/// One invocation, as the runner saw it.
#[derive(Debug, Clone)]
pub struct Report {
    /// The function's logical id.
    pub function: String,
    /// The event's name in the template.
    pub event: String,
    pub trigger: Trigger,
    pub invocation: Invocation,
}

pub(crate) fn publish(reports: &broadcast::Sender<Report>, report: Report) {
    let inv = &report.invocation;
    match &inv.outcome {
        Outcome::Success(_) => tracing::info!(
            function = %report.function, event = %report.event, request_id = %inv.request_id,
            ms = inv.duration.as_millis() as u64, cold = inv.cold_start, init_ms = inv.init_duration.map(|d| d.as_millis() as u64),
            rss_mb = inv.peak_rss_mb, "invoked"),
        other => tracing::warn!(
            function = %report.function, event = %report.event, request_id = %inv.request_id,
            outcome = ?other, "invocation failed"),
    }
    let _ = reports.send(report);
}

// ------------------------------------------------------------------------------------ schedules

/// A schedule's settings.
pub struct ScheduleSource {
    pub function: String,
    pub event: String,
    pub every: Duration,
    pub speedup: f64,
    pub scheduler: bool,
    pub input: Option<String>,
    pub schedule_arn: String,
    pub region: String,
    pub account_id: String,
    pub fire_on_start: bool,
}

impl ScheduleSource {
    /// The event AWS delivers for a tick scheduled at `at`.
    pub fn event(&self, at: DateTime<Utc>) -> Value {
        let time = at.to_rfc3339_opts(SecondsFormat::Secs, true);
        if let Some(input) = &self.input {
            let text = input
                .replace("<aws.scheduler.scheduled-time>", &time)
                .replace("<aws.scheduler.schedule-arn>", &self.schedule_arn)
                .replace("<aws.scheduler.execution-id>", &uuid::Uuid::new_v4().to_string())
                .replace("<aws.scheduler.attempt-number>", "1");
            return serde_json::from_str(&text).unwrap_or(Value::String(text));
        }
        if self.scheduler {
            return json!({});
        }
        json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account_id,
            "time": time,
            "region": self.region,
            "resources": [self.schedule_arn],
            "detail": {}
        })
    }

    /// Fires ticks until shutdown. Scheduled times advance by the real interval per tick, while
    /// ticks arrive `speedup` times faster, so a sped-up run still sees realistic tick times.
    pub async fn run(self, pool: Arc<FunctionPool>, reports: broadcast::Sender<Report>, mut stop: watch::Receiver<bool>) {
        let period = self.every.div_f64(self.speedup.max(1e-6));
        let start = Utc::now();
        let every = chrono::Duration::from_std(self.every).unwrap_or(chrono::Duration::minutes(1));
        let first = if self.fire_on_start { tokio::time::Instant::now() } else { tokio::time::Instant::now() + period };
        let mut ticker = tokio::time::interval_at(first, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut n: i32 = if self.fire_on_start { 0 } else { 1 };
        let this = Arc::new(self);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = ticker.tick() => {}
            }
            let at = start + every * n;
            n += 1;
            let (pool, reports, this) = (pool.clone(), reports.clone(), this.clone());
            tokio::spawn(async move {
                let invocation = pool.invoke(&this.event(at)).await;
                publish(&reports, Report { function: this.function.clone(), event: this.event.clone(), trigger: Trigger::Schedule { scheduled_time: at }, invocation });
            });
        }
    }
}

// ------------------------------------------------------------------------------------------ SQS

/// ReceiveMessage calls in flight at once while a batch fills. Lambda reads a busy queue with
/// several pollers at once ("five batches at a time" to start, docs: services-sqs-scaling); the
/// runner's one loop per mapping read its batches one call of 10 after another, which bound
/// what a queue delivered at ~330 messages/s on LocalStack (issue 20).
const PARALLEL_RECEIVES: usize = 5;

/// An SQS event source mapping's settings.
pub struct SqsSource {
    pub function: String,
    pub event: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    pub batch_size: u32,
    pub batching_window: Duration,
    pub report_batch_item_failures: bool,
    pub concurrency: usize,
    /// Long-poll wait per ReceiveMessage call.
    pub poll_wait: Duration,
}

impl SqsSource {
    /// Polls the queue until shutdown, invoking the function with batches as Lambda's poller does.
    pub async fn run(self, pool: Arc<FunctionPool>, sqs: aws_sdk_sqs::Client, reports: broadcast::Sender<Report>, mut stop: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let this = Arc::new(self);
        let mut backoff = Duration::from_millis(200);
        loop {
            let permit = tokio::select! {
                _ = stop.changed() => break,
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let batch = tokio::select! {
                _ = stop.changed() => break,
                b = this.receive_batch(&sqs) => b,
            };
            let messages = match batch {
                Ok(m) => {
                    backoff = Duration::from_millis(200);
                    m
                }
                Err(e) => {
                    tracing::warn!(queue = %this.queue_url, error = %e, "receive failed; backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let (pool, sqs, reports, this) = (pool.clone(), sqs.clone(), reports.clone(), this.clone());
            tokio::spawn(async move {
                let _permit = permit;
                this.deliver(&pool, &sqs, &reports, messages).await;
            });
        }
    }

    async fn receive_batch(&self, sqs: &aws_sdk_sqs::Client) -> Result<Vec<aws_sdk_sqs::types::Message>> {
        let mut out = Vec::new();
        let deadline = Instant::now() + self.batching_window;
        let batch = self.batch_size as usize;
        loop {
            // The first call long-polls; later calls (filling a batching window) wait at most
            // for the window's remainder, several at once as Lambda's pollers do (a batch of 200
            // is 20 ReceiveMessage calls of at most 10: one after another they, not the
            // function, bound what a queue delivers).
            let wait = if out.is_empty() { self.poll_wait } else { deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(20)) };
            let calls = if out.is_empty() { 1 } else { (batch - out.len()).div_ceil(10).min(PARALLEL_RECEIVES) };
            let mut left = batch - out.len();
            let receives = (0..calls).map(|_| {
                let want = left.min(10);
                left -= want;
                sqs.receive_message()
                    .queue_url(&self.queue_url)
                    .max_number_of_messages(want as i32)
                    .wait_time_seconds(wait.as_secs() as i32)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .message_attribute_names("All")
                    .send()
            });
            let mut got_none = true;
            for resp in futures::future::join_all(receives).await {
                let got = resp.map_err(|e| Error::Queue { queue: self.queue_url.clone(), reason: display_sdk(&e) })?.messages.unwrap_or_default();
                got_none &= got.is_empty();
                out.extend(got);
            }
            if out.len() >= batch || Instant::now() >= deadline || (got_none && out.is_empty()) {
                return Ok(out);
            }
        }
    }

    /// The SQS event Lambda delivers for these messages.
    pub fn event(&self, messages: &[aws_sdk_sqs::types::Message]) -> Value {
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: HashMap<String, String> = m.attributes().map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect()).unwrap_or_default();
                let message_attributes: serde_json::Map<String, Value> = m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    json!({
                                        "stringValue": v.string_value(),
                                        "binaryValue": v.binary_value().map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_ref())),
                                        "stringListValues": [],
                                        "binaryListValues": [],
                                        "dataType": v.data_type(),
                                    }),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "md5OfBody": m.md5_of_body(),
                    "md5OfMessageAttributes": m.md5_of_message_attributes(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                })
            })
            .collect();
        json!({ "Records": records })
    }

    async fn deliver(&self, pool: &FunctionPool, sqs: &aws_sdk_sqs::Client, reports: &broadcast::Sender<Report>, messages: Vec<aws_sdk_sqs::types::Message>) {
        let ids: Vec<String> = messages.iter().filter_map(|m| m.message_id().map(str::to_string)).collect();
        let invocation = pool.invoke(&self.event(&messages)).await;
        let failed: HashSet<String> = self.failed_ids(&invocation.outcome, &ids);
        let to_delete: Vec<&aws_sdk_sqs::types::Message> = messages.iter().filter(|m| m.message_id().is_some_and(|id| !failed.contains(id))).collect();
        let mut deleted = 0;
        for chunk in to_delete.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> =
                chunk.iter().enumerate().filter_map(|(i, m)| DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(m.receipt_handle()?).build().ok()).collect();
            match sqs.delete_message_batch().queue_url(&self.queue_url).set_entries(Some(entries)).send().await {
                Ok(r) => {
                    deleted += r.successful().len();
                    for f in r.failed() {
                        tracing::warn!(queue = %self.queue_url, id = f.id(), reason = ?f.message(), "delete failed; the message will be redelivered");
                    }
                }
                Err(e) => tracing::warn!(queue = %self.queue_url, error = %display_sdk(&e), "delete failed; the batch will be redelivered"),
            }
        }
        let mut failed_ids: Vec<String> = failed.into_iter().collect();
        failed_ids.sort();
        publish(
            reports,
            Report { function: self.function.clone(), event: self.event.clone(), trigger: Trigger::Sqs { queue_url: self.queue_url.clone(), message_ids: ids, failed_ids, deleted }, invocation },
        );
    }

    /// Which messages failed, with Lambda's rules: any error fails the whole batch; with
    /// ReportBatchItemFailures the listed ids fail, and a malformed list fails everything.
    pub fn failed_ids(&self, outcome: &Outcome, ids: &[String]) -> HashSet<String> {
        let all = || ids.iter().cloned().collect();
        let Outcome::Success(value) = outcome else { return all() };
        if !self.report_batch_item_failures {
            return HashSet::new();
        }
        let Some(list) = value.get("batchItemFailures") else { return HashSet::new() };
        let Some(list) = list.as_array() else { return all() };
        let mut failed = HashSet::new();
        for item in list {
            match item.get("itemIdentifier").and_then(Value::as_str) {
                Some(id) if ids.iter().any(|i| i == id) => {
                    failed.insert(id.to_string());
                }
                _ => return all(),
            }
        }
        failed
    }
}

// ----------------------------------------------------------------------------------------- HTTP

#[derive(Clone)]
struct HttpState {
    pool: Arc<FunctionPool>,
    reports: broadcast::Sender<Report>,
    function: String,
    event: String,
}

/// Serves a function on a local HTTP endpoint, translating requests to the API Gateway v2 /
/// Function URL payload (format 2.0) and the function's answer back to HTTP.
pub async fn serve_http(addr: SocketAddr, pool: Arc<FunctionPool>, function: String, event: String, reports: broadcast::Sender<Report>, mut stop: watch::Receiver<bool>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::Listen { addr: addr.to_string(), reason: format!("{e} (is the port in use?)") })?;
    let bound = listener.local_addr().map_err(|e| Error::Listen { addr: addr.to_string(), reason: e.to_string() })?;
    let app = axum::Router::new().fallback(http_invoke).with_state(HttpState { pool, reports, function, event });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await;
    });
    Ok(bound)
}

async fn http_invoke(State(st): State<HttpState>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let event = http_event(&method, &uri, &headers, &body);
    // As on AWS, an invocation runs to its end even when the client goes away (a browser
    // navigating off a page drops its requests): it runs in its own task.
    let pool = st.pool.clone();
    let invocation = match tokio::spawn(async move { pool.invoke(&event).await }).await {
        Ok(inv) => inv,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("the invocation task failed: {e}")).into_response(),
    };
    let response = match &invocation.outcome {
        Outcome::Success(v) => http_response(v),
        Outcome::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "function timed out").into_response(),
        _ => (StatusCode::BAD_GATEWAY, axum::Json(json!({"message": "Internal Server Error"}))).into_response(),
    };
    publish(
        &st.reports,
        Report {
            function: st.function.clone(),
            event: st.event.clone(),
            trigger: Trigger::Http { method: method.to_string(), path: uri.path().to_string(), status: response.status().as_u16() },
            invocation,
        },
    );
    response
}

fn http_event(method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Value {
    // As Lambda does for payload 2.0: cookies leave the headers for `cookies`, and a header
    // sent several times is one value joined by commas.
    let mut header_map = serde_json::Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        if k == axum::http::header::COOKIE {
            cookies.extend(v.split(';').map(str::trim).filter(|c| !c.is_empty()).map(|c| Value::String(c.to_string())));
            continue;
        }
        match header_map.get_mut(k.as_str()) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                header_map.insert(k.as_str().to_string(), Value::String(v));
            }
        }
    }
    let query: serde_json::Map<String, Value> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), Value::String(v.to_string()))
        })
        .collect();
    let (body_text, is_b64) = match std::str::from_utf8(body) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let now = Utc::now();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": uri.path(),
        "rawQueryString": uri.query().unwrap_or_default(),
        "headers": header_map,
        "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(query) },
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost"),
            "http": {
                "method": method.as_str(),
                "path": uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or(""),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "cookies": if cookies.is_empty() { Value::Null } else { Value::Array(cookies) },
        "body": if body.is_empty() { Value::Null } else { Value::String(body_text) },
        "isBase64Encoded": is_b64,
    })
}

fn http_response(v: &Value) -> Response {
    let Some(status) = v.get("statusCode").and_then(Value::as_u64) else {
        return (StatusCode::OK, axum::Json(v.clone())).into_response();
    };
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match v.get("body") {
        Some(Value::String(s)) if v.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => base64::engine::general_purpose::STANDARD.decode(s).unwrap_or_default(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => other.to_string().into_bytes(),
    };
    let mut resp = (status, body).into_response();
    if let Some(h) = v.get("headers").and_then(Value::as_object) {
        for (k, val) in h {
            if let (Ok(name), Some(Ok(value))) = (HeaderName::try_from(k.as_str()), val.as_str().map(HeaderValue::from_str)) {
                resp.headers_mut().insert(name, value);
            }
        }
    }
    // Payload 2.0's `cookies`: one Set-Cookie header each.
    for c in v.get("cookies").and_then(Value::as_array).into_iter().flatten() {
        if let Some(Ok(value)) = c.as_str().map(HeaderValue::from_str) {
            resp.headers_mut().append(axum::http::header::SET_COOKIE, value);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(report: bool) -> SqsSource {
        SqsSource {
            function: "f".into(),
            event: "e".into(),
            queue_url: "q".into(),
            queue_arn: "arn".into(),
            region: "us-east-1".into(),
            batch_size: 10,
            batching_window: Duration::ZERO,
            report_batch_item_failures: report,
            concurrency: 1,
            poll_wait: Duration::from_secs(1),
        }
    }

    #[test]
    fn batch_item_failures_follow_lambda_rules() {
        let ids: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let s = source(true);
        let ok = Outcome::Success(json!({"batchItemFailures": [{"itemIdentifier": "b"}]}));
        assert_eq!(s.failed_ids(&ok, &ids), HashSet::from(["b".to_string()]));
        let unknown = Outcome::Success(json!({"batchItemFailures": [{"itemIdentifier": "zzz"}]}));
        assert_eq!(s.failed_ids(&unknown, &ids).len(), 3);
        let empty = Outcome::Success(json!({"batchItemFailures": []}));
        assert!(s.failed_ids(&empty, &ids).is_empty());
        let err = Outcome::FunctionError { error_type: "x".into(), message: "y".into() };
        assert_eq!(s.failed_ids(&err, &ids).len(), 3);
        // Without ReportBatchItemFailures the list is ignored, as on AWS.
        assert!(source(false).failed_ids(&ok, &ids).is_empty());
    }

    #[test]
    fn scheduler_input_placeholders_are_filled() {
        let s = ScheduleSource {
            function: "f".into(),
            event: "Tick".into(),
            every: Duration::from_secs(60),
            speedup: 1.0,
            scheduler: true,
            input: Some(r#"{"t": "<aws.scheduler.scheduled-time>", "a": "<aws.scheduler.schedule-arn>"}"#.into()),
            schedule_arn: "arn:aws:scheduler:us-east-1:0:schedule/g/s".into(),
            region: "us-east-1".into(),
            account_id: "0".into(),
            fire_on_start: false,
        };
        let at = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(s.event(at), json!({"t": "2026-11-25T10:00:00Z", "a": "arn:aws:scheduler:us-east-1:0:schedule/g/s"}));
        let rule = ScheduleSource { scheduler: false, input: None, ..s };
        let ev = rule.event(at);
        assert_eq!(ev["detail-type"], "Scheduled Event");
        assert_eq!(ev["time"], "2026-11-25T10:00:00Z");
    }

    #[test]
    fn http_responses_map_status_headers_and_body() {
        let r = http_response(&json!({"statusCode": 401, "headers": {"x-why": "sig"}, "body": "no"}));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()["x-why"], "sig");
        let r = http_response(&json!({"plain": true}));
        assert_eq!(r.status(), StatusCode::OK);
        let r = http_response(&json!({"statusCode": 200, "cookies": ["a=1; HttpOnly", "b=2"], "body": ""}));
        assert_eq!(r.headers().get_all(axum::http::header::SET_COOKIE).iter().collect::<Vec<_>>(), ["a=1; HttpOnly", "b=2"]);
    }

    #[test]
    fn http_events_carry_cookies_apart_and_join_repeated_headers() {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::COOKIE, HeaderValue::from_static("s=abc; t=2"));
        h.append("x-many", HeaderValue::from_static("1"));
        h.append("x-many", HeaderValue::from_static("2"));
        let ev = http_event(&Method::GET, &"/p?a=%20b".parse().unwrap(), &h, &Bytes::new());
        assert_eq!(ev["cookies"], json!(["s=abc", "t=2"]));
        assert!(ev["headers"].get("cookie").is_none());
        assert_eq!(ev["headers"]["x-many"], "1,2");
        assert_eq!(ev["rawQueryString"], "a=%20b");
    }
}
