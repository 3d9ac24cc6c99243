//! The shop's registered webhooks, as WooCommerce's REST API lists them
//! (`GET /wp-json/wc/v3/webhooks`, fields per woocommerce-rest-api-docs `_webhooks.md`: no
//! `secret` in the view context), and `/_sim/webhooks/register`, which plays the shop admin
//! adding one in *WooCommerce → Settings → Advanced → Webhooks*. Registering does not start
//! deliveries (`/_sim/webhooks/start` drives those).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};

use crate::api::{AppState, check_basic, woo_error};

/// Webhooks registered in the shop.
#[derive(Default)]
pub struct Registry {
    hooks: Mutex<Vec<Value>>,
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/_sim/webhooks/register", post(register)).route("/wp-json/wc/v3/webhooks", get(list))
}

/// The WordPress actions WooCommerce hooks a topic to (`WC_Webhook::get_hooks`).
fn hooks(topic: &str) -> Vec<&'static str> {
    match topic {
        "order.created" => vec!["woocommerce_new_order"],
        "order.updated" => vec!["woocommerce_update_order", "woocommerce_order_refunded"],
        "order.deleted" => vec!["wp_trash_post"],
        "product.created" => vec!["woocommerce_process_product_meta", "woocommerce_new_product", "woocommerce_new_product_variation"],
        "product.updated" => vec!["woocommerce_process_product_meta", "woocommerce_update_product", "woocommerce_update_product_variation"],
        "customer.created" => vec!["user_register", "woocommerce_created_customer", "woocommerce_new_customer"],
        "customer.updated" => vec!["profile_update", "woocommerce_update_customer"],
        _ => vec![],
    }
}

async fn register(State(st): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else { return (StatusCode::BAD_REQUEST, "webhooks/register: a JSON object").into_response() };
    let (Some(topic), Some(url)) = (req["topic"].as_str(), req["delivery_url"].as_str()) else {
        return (StatusCode::BAD_REQUEST, "webhooks/register: topic and delivery_url are required").into_response();
    };
    let status = req["status"].as_str().unwrap_or("active");
    if !["active", "paused", "disabled"].contains(&status) {
        return (StatusCode::BAD_REQUEST, "webhooks/register: status is active, paused or disabled").into_response();
    }
    let mut hooks_list = st.registered.hooks.lock().unwrap_or_else(|e| e.into_inner());
    let id = hooks_list.len() as u64 + 1;
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let (resource, event) = topic.split_once('.').unwrap_or((topic, ""));
    let hook = json!({
        "id": id,
        "name": req["name"].as_str().map(str::to_string).unwrap_or_else(|| format!("Webhook created on {now}")),
        "status": status,
        "topic": topic,
        "resource": resource,
        "event": event,
        "hooks": hooks(topic),
        "delivery_url": url,
        "date_created": now, "date_created_gmt": now, "date_modified": now, "date_modified_gmt": now,
        "_links": {"self": [{"href": format!("/wp-json/wc/v3/webhooks/{id}")}], "collection": [{"href": "/wp-json/wc/v3/webhooks"}]},
    });
    hooks_list.push(hook.clone());
    (StatusCode::CREATED, axum::Json(hook)).into_response()
}

async fn list(State(st): State<Arc<AppState>>, Query(p): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    if let Err(r) = check_basic(&headers, &st.credentials) {
        return r;
    }
    let status = p.get("status").map(String::as_str).unwrap_or("all");
    if !["all", "active", "paused", "disabled"].contains(&status) {
        return woo_error(StatusCode::BAD_REQUEST, "rest_invalid_param", "Invalid parameter(s): status");
    }
    let per_page: usize = match p.get("per_page").map(|v| v.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => return woo_error(StatusCode::BAD_REQUEST, "rest_invalid_param", "Invalid parameter(s): per_page"),
    };
    let page: usize = match p.get("page").map(|v| v.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        _ => return woo_error(StatusCode::BAD_REQUEST, "rest_invalid_param", "Invalid parameter(s): page"),
    };
    let all: Vec<Value> = st.registered.hooks.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|h| status == "all" || h["status"] == status).cloned().collect();
    let total = all.len();
    let items: Vec<Value> = all.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let mut r = axum::Json(items).into_response();
    let h = r.headers_mut();
    h.insert("x-wp-total", HeaderValue::from(total));
    h.insert("x-wp-totalpages", HeaderValue::from(total.div_ceil(per_page)));
    r
}
