//! Issue 18's transport rules, against real local HTTP servers: credentials never follow a
//! redirect to another origin, response bodies are bounded, and plain http is for loopback only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alkasba_ingest::http::HttpSource;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use proptest::strategy::Strategy;

/// Serves `app` on a loopback port; its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn source(base: &str, max_body_bytes: Option<u64>) -> (alkasba_sources::Source, alkasba_sources::Stream) {
    let limit = max_body_bytes.map(|n| format!("max_body_bytes = {n}\n")).unwrap_or_default();
    let text = format!(
        r#"
[source]
name = "s"
base_url = "{base}"
auth = {{ type = "none" }}
retry = {{ max_attempts = 1, initial_backoff_ms = 10, max_backoff_ms = 10, timeout_ms = 5000 }}
{limit}
[[stream]]
name = "items"
path = "/items"
primary_key = ["/id"]
in_clear = ["/id"]
paginator = {{ type = "link_header" }}
"#
    );
    let f = alkasba_sources::parse("t.toml", &text).unwrap();
    (f.source, f.streams[0].clone())
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(30)
}

#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_origin() {
    // The other origin records any request it gets, with its authorization header.
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let s = seen.clone();
    let other = serve(axum::Router::new().route(
        "/items",
        get(move |h: HeaderMap| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(h.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap().to_string()));
                axum::Json(serde_json::json!([{"id": 1}]))
            }
        }),
    ))
    .await;
    let to = format!("{other}/items");
    let store = serve(
        axum::Router::new()
            .route("/items", get(move || async move { (StatusCode::FOUND, [(header::LOCATION, to)]).into_response() }))
            .route("/moved", get(|| async { (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/items2")]).into_response() }))
            .route("/items2", get(|| async { axum::Json(serde_json::json!([{"id": 2}])) })),
    )
    .await;
    let (src, stream) = source(&store, None);
    let http = HttpSource::new(&src, Some(("authorization".into(), "Basic c2VjcmV0OnNlY3JldA==".into()))).unwrap();
    let e = http.fetch(&stream, &format!("{store}/items").parse().unwrap(), deadline()).await.unwrap_err();
    assert!(e.reason.contains("redirect to another origin") && e.reason.contains(&other), "{}", e.reason);
    assert_eq!(e.status, Some(302));
    assert!(seen.lock().unwrap().is_empty(), "the other origin got a request: {:?}", seen.lock().unwrap());
    // A redirect within the source's origin is followed.
    let ok = http.fetch(&stream, &format!("{store}/moved").parse().unwrap(), deadline()).await.unwrap();
    assert_eq!(ok.page.values(), [serde_json::json!({"id": 2})]);
}

#[tokio::test]
async fn a_body_over_the_limit_fails_by_name_declared_or_streamed() {
    let big = "x".repeat(10_000);
    let app = axum::Router::new()
        // A declared length over the limit.
        .route("/items", get(move || async move { big.clone() }))
        // No declared length (chunked): counted while reading.
        .route(
            "/stream",
            get(|| async {
                let chunks = (0..20).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1_000]));
                axum::body::Body::from_stream(futures::stream::iter(chunks))
            }),
        );
    let base = serve(app).await;
    let (src, stream) = source(&base, Some(4_096));
    let http = HttpSource::new(&src, None).unwrap();
    for path in ["items", "stream"] {
        let e = http.fetch(&stream, &format!("{base}/{path}").parse().unwrap(), deadline()).await.unwrap_err();
        assert!(e.reason.contains("over 4096 bytes"), "{path}: {}", e.reason);
        assert_eq!(e.attempts, 1, "not retried: it would only fail again");
    }
}

#[test]
fn plain_http_is_refused_except_to_loopback() {
    for ok in ["http://127.0.0.1:8787", "http://localhost:1", "http://[::1]:80", "https://shop.example.com"] {
        let (src, _) = source(ok, None);
        assert!(HttpSource::new(&src, None).is_ok(), "{ok}");
    }
    let (src, _) = source("http://shop.example.com", None);
    let e = HttpSource::new(&src, Some(("authorization".into(), "Basic eDp5".into()))).err().unwrap().to_string();
    assert!(e.contains("plain http") && e.contains("https") && !e.contains("eDp5"), "{e}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { failure_persistence: None, ..Default::default() })]

    /// Issue 18, fuzzing: any Retry-After value (delay-seconds, HTTP dates, garbage) gives a wait
    /// or none, never a panic.
    #[test]
    fn fuzz_retry_after_headers(v in proptest::prop_oneof![
        proptest::prelude::any::<u64>().prop_map(|n| n.to_string()),
        "-?[0-9]{0,30}",
        "(Mon|Tue|Sun), [0-9]{1,2} (Jan|Feb|Dec) [0-9]{1,6} [0-9]{2}:[0-9]{2}:[0-9]{2} (GMT|[+-][0-9]{4})",
        proptest::prelude::any::<String>(),
    ]) {
        let mut h = reqwest::header::HeaderMap::new();
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&v) {
            h.insert(reqwest::header::RETRY_AFTER, value);
        }
        let _ = alkasba_ingest::http::retry_after(&h);
    }
}
