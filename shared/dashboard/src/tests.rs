//! The engine and the routes over a local lake (file://) and in-memory pages.

use std::collections::BTreeMap;
use std::sync::Arc;

use alkasba_lake::arrow::array::{ArrayRef, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray};
use alkasba_lake::arrow::datatypes::{DataType, Field, Schema};
use alkasba_lake::{Lake, StorageConfig};
use chrono::NaiveDate;
use deltalake::logstore::object_store::memory::InMemory;
use deltalake::logstore::object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path as ObjectPath};
use serde_json::{Value, json};

use crate::auth::{Access, key_hash};
use crate::engine::Engine;
use crate::http::{Dashboard, Request, StaticAccess};
use crate::params::Filters;

fn day(s: &str) -> i32 {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap().signed_duration_since(NaiveDate::default()).num_days() as i32
}

fn dec(v: &[i128]) -> ArrayRef {
    Arc::new(Decimal128Array::from(v.to_vec()).with_precision_and_scale(18, 2).unwrap())
}

/// `daily_sales` with three days in two currencies, and `daily_product_sales` with a category
/// whose name has a quote.
async fn lake(dir: &std::path::Path) -> Arc<Lake> {
    let lake = Lake::new(&format!("file://{}", dir.display()), StorageConfig { endpoint_url: None, region: "us-east-1".into() }).unwrap();
    let d = |name: &str| Field::new(name, DataType::Decimal128(18, 2), true);
    let i = |name: &str| Field::new(name, DataType::Int64, true);
    let schema = Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        Field::new("currency", DataType::Utf8, false),
        i("orders"),
        i("paid_orders"),
        i("refund_count"),
        d("gross_mad"),
        d("refunds_mad"),
        d("net_mad"),
    ]));
    let days = ["2026-03-01", "2026-03-01", "2026-03-02", "2026-02-27"];
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Date32Array::from(days.iter().map(|s| day(s)).collect::<Vec<_>>())),
            Arc::new(StringArray::from(vec!["MAD", "EUR", "MAD", "MAD"])),
            Arc::new(Int64Array::from(vec![3, 1, 2, 5])),
            Arc::new(Int64Array::from(vec![2, 1, 2, 4])),
            Arc::new(Int64Array::from(vec![1, 0, 0, 0])),
            dec(&[30000, 11000, 5050, 40000]),
            dec(&[1000, 0, 0, 0]),
            dec(&[29000, 11000, 5050, 40000]),
        ],
    )
    .unwrap();
    lake.append(&lake.table("gold/daily_sales").unwrap(), batch, &[]).await.unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        i("product_id"),
        Field::new("currency", DataType::Utf8, false),
        Field::new("product_name", DataType::Utf8, true),
        Field::new("category_name", DataType::Utf8, true),
        i("units"),
        i("orders"),
        d("revenue_mad"),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Date32Array::from(vec![day("2026-03-01"), day("2026-03-01"), day("2026-03-02")])),
            Arc::new(Int64Array::from(vec![1, 2, 1])),
            Arc::new(StringArray::from(vec!["MAD", "EUR", "MAD"])),
            Arc::new(StringArray::from(vec!["Babouche", "Tajine", "Babouche"])),
            Arc::new(StringArray::from(vec!["Men's shoes", "Kitchen", "Men's shoes"])),
            Arc::new(Int64Array::from(vec![2, 1, 3])),
            Arc::new(Int64Array::from(vec![1, 1, 2])),
            dec(&[20000, 9000, 4000]),
        ],
    )
    .unwrap();
    lake.append(&lake.table("gold/daily_product_sales").unwrap(), batch, &[]).await.unwrap();
    Arc::new(lake)
}

fn filters(pairs: &[(&str, &str)]) -> Filters {
    let q: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Filters::parse(&q, NaiveDate::from_ymd_opt(2026, 3, 31).unwrap()).unwrap()
}

#[tokio::test]
async fn kpis_follow_the_period_and_the_currency() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(lake(dir.path()).await);
    let a = engine.run("sales_kpis", &filters(&[("from", "2026-03-01"), ("to", "2026-03-02")])).await.unwrap();
    assert_eq!(a.column("period").unwrap(), vec![&json!("current"), &json!("previous")]);
    assert_eq!(a.column("revenue_mad").unwrap(), vec![&json!(460.5), &json!(400.0)]);
    assert_eq!(a.column("paid_orders").unwrap(), vec![&json!(5), &json!(4)]);
    assert_eq!(a.column("refund_rate").unwrap()[0], &json!(10.0 / 460.5));
    let a = engine.run("sales_kpis", &filters(&[("from", "2026-03-01"), ("to", "2026-03-02"), ("currency", "EUR")])).await.unwrap();
    assert_eq!(a.rows.len(), 1);
    assert_eq!(a.column("revenue_mad").unwrap(), vec![&json!(110.0)]);
    let a = engine.run("sales_series", &filters(&[("from", "2026-02-01"), ("to", "2026-03-31"), ("grain", "month")])).await.unwrap();
    assert_eq!(a.column("period").unwrap(), vec![&json!("2026-02-01"), &json!("2026-03-01"), &json!("2026-03-01")]);
}

#[tokio::test]
async fn a_category_with_a_quote_is_matched_as_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(lake(dir.path()).await);
    let a = engine.run("top_products", &filters(&[("from", "2026-03-01"), ("to", "2026-03-31"), ("category", "Men's shoes")])).await.unwrap();
    assert_eq!(a.column("product_name").unwrap(), vec![&json!("Babouche")]);
    assert_eq!(a.column("units").unwrap(), vec![&json!(5)]);
    let a = engine.run("top_products", &filters(&[("from", "2026-03-01"), ("to", "2026-03-31"), ("category", "x' OR '1'='1")])).await.unwrap();
    assert!(a.rows.is_empty());
    let a = engine.run("basket", &filters(&[("from", "2026-03-01"), ("to", "2026-03-02")])).await.unwrap();
    assert_eq!(a.column("units_per_order").unwrap(), vec![&json!(6.0 / 5.0)]);
}

#[tokio::test]
async fn a_missing_table_or_query_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(lake(dir.path()).await);
    assert!(matches!(engine.run("forecast", &filters(&[])).await, Err(crate::Error::NoTable(t)) if t == "gold/forecast_daily"));
    assert!(matches!(engine.run("nope", &filters(&[])).await, Err(crate::Error::NotFound(_))));
}

fn request(method: &str, path: &str, query: &str, cookie: Option<&str>, body: Option<Value>) -> Request {
    let mut event = json!({
        "version": "2.0", "rawPath": path, "rawQueryString": query,
        "headers": {"accept-encoding": "gzip, deflate"},
        "requestContext": {"http": {"method": method}},
        "body": body.map(|b| b.to_string()), "isBase64Encoded": false,
    });
    if let Some(c) = cookie {
        event["cookies"] = json!([c]);
    }
    Request::from_function_url(&event).unwrap()
}

fn body(r: &crate::http::Response) -> Value {
    use std::io::Read;
    let mut s = String::new();
    if r.header("content-encoding") == Some("gzip") {
        flate2::read::GzDecoder::new(&r.body[..]).read_to_string(&mut s).unwrap();
    } else {
        s = String::from_utf8(r.body.to_vec()).unwrap();
    }
    serde_json::from_str(&s).unwrap_or(Value::String(s))
}

#[tokio::test]
async fn only_a_signed_in_user_reads_data_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(lake(dir.path()).await);
    let pages: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    for (f, text) in [("index.html", "<html>app</html>"), ("login.html", "<html>sign in</html>")] {
        pages.put(&ObjectPath::from(format!("_dashboard/{f}")), PutPayload::from(text.as_bytes().to_vec())).await.unwrap();
    }
    let access = Access::parse(&json!({"signing_key": "s".repeat(40), "users": {"amina": key_hash("the-key")}}).to_string()).unwrap();
    let d = Dashboard::new(engine, pages, StaticAccess(access));
    let now = 1_780_000_000;

    let r = d.handle(&request("GET", "/", "", None, None), now).await;
    assert_eq!((r.status, r.header("location")), (302, Some("/login")));
    let r = d.handle(&request("GET", "/login", "", None, None), now).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-security-policy").unwrap().contains("default-src 'self'"));
    assert_eq!(d.handle(&request("GET", "/api/q/sales_kpis", "", None, None), now).await.status, 401);
    assert_eq!(d.handle(&request("GET", "/assets/app.js", "", None, None), now).await.status, 401);
    let r = d.handle(&request("POST", "/api/login", "", None, Some(json!({"user": "amina", "key": "wrong"}))), now).await;
    assert_eq!(r.status, 401);
    assert!(r.cookies.is_empty());
    assert_eq!(d.handle(&request("POST", "/api/login", "", None, Some(json!({"user": "amina"}))), now).await.status, 400);

    let r = d.handle(&request("POST", "/api/login", "", None, Some(json!({"user": "amina", "key": "the-key"}))), now).await;
    assert_eq!(r.status, 200);
    let set = &r.cookies[0];
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();

    let r = d.handle(&request("GET", "/", "", Some(&cookie), None), now).await;
    assert_eq!((r.status, body(&r)), (200, json!("<html>app</html>")));
    let r = d.handle(&request("GET", "/api/q/sales_kpis", "from=2026-03-01&to=2026-03-02&currency=EUR", Some(&cookie), None), now).await;
    assert_eq!(r.status, 200);
    assert_eq!(body(&r)["rows"][0][1], json!(110.0));
    let r = d.handle(&request("GET", "/api/q/top_products", "from=2026-03-01&to=2026-03-31&category=Men%27s%20shoes", Some(&cookie), None), now).await;
    assert_eq!(body(&r)["rows"].as_array().unwrap().len(), 1);
    let r = d.handle(&request("GET", "/api/q/sales_kpis", "currency=eur", Some(&cookie), None), now).await;
    assert_eq!((r.status, body(&r)["code"].clone()), (400, json!("bad_param")));
    let r = d.handle(&request("GET", "/api/q/forecast", "", Some(&cookie), None), now).await;
    assert_eq!((r.status, body(&r)), (200, json!({"columns": [], "rows": [], "missing": "gold/forecast_daily"})));
    let r = d.handle(&request("GET", "/api/live", "", Some(&cookie), None), now).await;
    assert_eq!((r.status, body(&r)), (200, json!({"missing": "_realtime/live/metrics.json"})));
    assert_eq!(d.handle(&request("GET", "/api/q/nope", "", Some(&cookie), None), now).await.status, 404);
    let r = d.handle(&request("GET", "/assets/../secret", "", Some(&cookie), None), now).await;
    assert_eq!(r.status, 404);
    // Past the session's life.
    let r = d.handle(&request("GET", "/api/q/sales_kpis", "", Some(&cookie), None), now + crate::auth::SESSION_SECS + 1).await;
    assert_eq!(r.status, 401);
}
