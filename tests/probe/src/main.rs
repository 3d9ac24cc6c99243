//! Test fixture Lambda. SQS message bodies steer it: `ok`, `fail` (reported as a batch item
//! failure), `sleep:<ms>`, `oom:<MiB>` (allocates and touches that much memory), `exit`.
//! Scheduled events are echoed; HTTP events (payload 2.0) get their method, path and body back
//! (after a pause when the body is `sleep:<ms>`).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let payload = event.payload;
    if let Some(records) = payload.get("Records").and_then(Value::as_array) {
        let mut failures = Vec::new();
        let mut hold = Vec::new();
        for r in records {
            let id = r["messageId"].as_str().unwrap_or_default();
            let body = r["body"].as_str().unwrap_or_default();
            if body == "fail" {
                failures.push(json!({"itemIdentifier": id}));
            } else if let Some(ms) = body.strip_prefix("sleep:") {
                tokio::time::sleep(std::time::Duration::from_millis(ms.parse()?)).await;
            } else if let Some(mb) = body.strip_prefix("oom:") {
                let mb: usize = mb.parse()?;
                for _ in 0..mb {
                    hold.push(vec![1u8; 1 << 20]);
                    tokio::task::yield_now().await;
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            } else if body == "exit" {
                std::process::exit(3);
            }
        }
        return Ok(json!({"batchItemFailures": failures, "held_mb": hold.len()}));
    }
    if payload.get("version").and_then(Value::as_str) == Some("2.0") {
        if let Some(ms) = payload["body"].as_str().and_then(|b| b.strip_prefix("sleep:")) {
            tokio::time::sleep(std::time::Duration::from_millis(ms.parse()?)).await;
        }
        let method = payload.pointer("/requestContext/http/method").cloned().unwrap_or_default();
        return Ok(json!({
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-probe": "yes"},
            "body": json!({"method": method, "path": payload["rawPath"], "body": payload["body"]}).to_string(),
        }));
    }
    Ok(json!({"echo": payload, "function": event.context.env_config.function_name}))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
