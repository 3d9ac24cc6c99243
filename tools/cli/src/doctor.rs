//! `alkasba doctor`: checks a deployment end to end and says what to fix: the stack, the lake
//! bucket, the dead-letter queues, every source's secret, reachability and credentials (one
//! real request each), the clock against the store's, and the store's webhook registrations.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use crate::stack::{settings, stack_outputs};

/// The topics the webhook must be registered for (functions/webhook/README.md).
const TOPICS: [&str; 4] = ["order.created", "order.updated", "product.updated", "customer.updated"];

/// Past this, timestamped signatures and run times disagree (the webhook accepts 300 s).
const SKEW_WARN_SECS: i64 = 30;
const SKEW_FAIL_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
struct Check {
    check: String,
    status: Status,
    detail: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    fix: String,
}

fn check(name: impl Into<String>, status: Status, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { check: name.into(), status, detail: detail.into(), fix: fix.into() }
}

pub async fn doctor(sdk: &aws_config::SdkConfig, stack: Option<&str>, webhook_url: Option<String>, json: bool) -> Result<()> {
    let mut checks = Vec::new();
    let Some(stack) = stack else { anyhow::bail!("doctor needs --stack") };

    // The stack and its outputs.
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let status = cfn.describe_stacks().stack_name(stack).send().await.ok().and_then(|d| d.stacks().first().and_then(|s| s.stack_status().map(|x| x.as_str().to_string())));
    match status.as_deref() {
        Some(s) if s.ends_with("_COMPLETE") && !s.contains("ROLLBACK") && !s.starts_with("DELETE") => checks.push(check("stack", Status::Ok, format!("{stack} is {s}"), "")),
        Some(s) => checks.push(check("stack", Status::Fail, format!("{stack} is {s}"), "look at its events (aws cloudformation describe-stack-events) and deploy again")),
        None => {
            checks.push(check("stack", Status::Fail, format!("no stack {stack}"), "deploy it (docs/deploy.md), or name the right one with --stack"));
            return report(checks, json);
        }
    }
    let outputs = stack_outputs(sdk, stack).await?;

    // The lake bucket.
    let s3 = aws_sdk_s3::Client::new(sdk);
    match outputs.get("LakeBucketName") {
        Some(b) => match s3.head_bucket().bucket(b).send().await {
            Ok(_) => checks.push(check("lake", Status::Ok, format!("bucket {b} reachable"), "")),
            Err(e) => checks.push(check("lake", Status::Fail, format!("bucket {b}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)), "check the credentials' s3 permissions and the region")),
        },
        None => checks.push(check("lake", Status::Fail, "the stack has no LakeBucketName output", "deploy the current template")),
    }

    // The dead-letter queues.
    let sqs = aws_sdk_sqs::Client::new(sdk);
    for (name, output) in [("fetch", "FetchTasksDlqUrl"), ("events", "StoreEventsDlqUrl"), ("erasures", "ErasureRequestsDlqUrl")] {
        let Some(url) = outputs.get(output) else { continue };
        let n = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .ok()
            .and_then(|a| a.attributes().and_then(|m| m.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages).and_then(|v| v.parse::<u64>().ok())));
        match n {
            Some(0) => checks.push(check(format!("dlq {name}"), Status::Ok, "empty", "")),
            Some(n) => checks.push(check(format!("dlq {name}"), Status::Warn, format!("{n} letter(s) waiting"), format!("alkasba dlq list --queue {name}; docs/runbook.md"))),
            None => checks.push(check(format!("dlq {name}"), Status::Fail, "cannot read the queue", "check the credentials' sqs permissions")),
        }
    }

    // Every source: its secret, one real request, and the clock.
    let settings = settings(sdk, Some(stack)).await?;
    match settings.build_planner(sdk).await {
        Err(e) => checks.push(check("sources", Status::Fail, e.to_string(), "put the named secret's value in place (docs/deploy.md step 4)")),
        Ok(ingest) => {
            for (name, entry) in &ingest.catalog.sources {
                checks.extend(source_checks(stack, name, entry).await);
            }
            checks.push(webhooks(sdk, stack, &outputs, webhook_url, &ingest.catalog).await);
        }
    }
    report(checks, json)
}

async fn source_checks(stack: &str, name: &str, entry: &alkasba_ingest::catalog::SourceEntry) -> Vec<Check> {
    let mut out = Vec::new();
    let Some(prep) = entry.streams.values().next() else { return out };
    let stream = &prep.stream;
    let url = alkasba_sources::first_url(&entry.source, stream, None, chrono::Utc::now().date_naive());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let base = entry.source.base_url.as_str().trim_end_matches('/').to_string();
    match entry.http.fetch(stream, &url, deadline).await {
        Ok(f) => {
            let records = f.page.len();
            out.push(check(format!("source {name}"), Status::Ok, format!("{base}: credentials accepted, {records} records on the first page of {}", prep.id), ""));
            let date = f.page.headers.iter().find(|(k, _)| k == "date").and_then(|(_, v)| chrono::DateTime::parse_from_rfc2822(v).ok());
            if let Some(d) = date {
                let skew = (chrono::Utc::now() - d.with_timezone(&chrono::Utc)).num_seconds();
                let (status, fix) = match skew.abs() {
                    s if s >= SKEW_FAIL_SECS => (Status::Fail, "the store's clock or this machine's is wrong: signed webhooks will be refused; sync both with NTP"),
                    s if s >= SKEW_WARN_SECS => (Status::Warn, "sync the clocks with NTP"),
                    _ => (Status::Ok, ""),
                };
                out.push(check(format!("clock {name}"), status, format!("{skew} s from the source's Date header"), fix));
            }
        }
        Err(f) => {
            let secret = match &entry.source.auth {
                alkasba_sources::Auth::Basic { secret, .. } | alkasba_sources::Auth::ApiKey { secret, .. } | alkasba_sources::Auth::Bearer { secret, .. } => secret.name.replace("${stack}", stack),
                alkasba_sources::Auth::None => "its secret".into(),
            };
            let (detail, fix) = match f.status {
                Some(401 | 403) => {
                    (format!("{base}: credentials refused ({}): {}", f.status.unwrap_or_default(), f.reason), format!("put valid credentials in {secret} (WooCommerce: a Read REST key)"))
                }
                Some(s) => (format!("{base}: HTTP {s}: {}", f.reason), "check the source's base URL parameter and that the API answers".to_string()),
                None => (format!("{base} unreachable: {}", f.reason), "check the source's base URL parameter (StoreBaseUrl, CompetitorPricesBaseUrl, ExchangeRatesBaseUrl)".to_string()),
            };
            out.push(check(format!("source {name}"), Status::Fail, detail, fix));
        }
    }
    out
}

/// The store's webhooks (`GET /wp-json/wc/v3/webhooks`): one active registration per topic,
/// delivering to the stack's webhook URL.
async fn webhooks(sdk: &aws_config::SdkConfig, stack: &str, outputs: &std::collections::HashMap<String, String>, webhook_url: Option<String>, catalog: &alkasba_ingest::catalog::Catalog) -> Check {
    let name = "webhooks";
    let Some(url) = webhook_url.or_else(|| outputs.get("WebhookUrl").cloned()) else {
        return check(name, Status::Warn, "the stack has no WebhookUrl output (functions not deployed)", "pass --webhook-url to check the registrations against another URL");
    };
    let Some(store) = catalog.sources.values().find(|e| e.source.name == "alkasba_store") else { return check(name, Status::Warn, "no alkasba_store source", "") };
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let secret = format!("{stack}/store/credentials");
    let creds: Option<Value> = sm.get_secret_value().secret_id(&secret).send().await.ok().and_then(|v| v.secret_string().and_then(|s| serde_json::from_str(s).ok()));
    let Some(creds) = creds else { return check(name, Status::Fail, format!("cannot read {secret}"), "check the secret and the credentials' secretsmanager permissions") };
    let list = format!("{}/wp-json/wc/v3/webhooks?per_page=100&status=all", store.source.base_url.as_str().trim_end_matches('/'));
    let answer = reqwest::Client::new().get(&list).basic_auth(creds["consumer_key"].as_str().unwrap_or_default(), creds["consumer_secret"].as_str()).timeout(Duration::from_secs(30)).send().await;
    let hooks: Vec<Value> = match answer {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        Ok(r) => return check(name, Status::Fail, format!("GET {list}: HTTP {}", r.status()), "the REST key's user must be a shop manager or administrator"),
        Err(e) => return check(name, Status::Fail, format!("GET {list}: {e}"), "check StoreBaseUrl"),
    };
    let registered =
        |topic: &str| hooks.iter().any(|h| h["topic"] == topic && h["status"] == "active" && h["delivery_url"].as_str().map(|d| d.trim_end_matches('/')) == Some(url.trim_end_matches('/')));
    let missing: Vec<&str> = TOPICS.iter().copied().filter(|t| !registered(t)).collect();
    if missing.is_empty() {
        check(name, Status::Ok, format!("{} topics active, delivering to {url}", TOPICS.len()), "")
    } else {
        check(
            name,
            Status::Fail,
            format!("no active webhook delivering to {url} for {}", missing.join(", ")),
            "WooCommerce → Settings → Advanced → Webhooks → Add webhook, one per topic (functions/webhook/README.md)",
        )
    }
}

fn report(checks: Vec<Check>, json: bool) -> Result<()> {
    for c in &checks {
        if json {
            println!("{}", serde_json::to_string(c)?);
        } else {
            let mark = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            println!("{mark}  {:<26} {}", c.check, c.detail);
            if !c.fix.is_empty() {
                println!("      {:<26} fix: {}", "", c.fix);
            }
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}
