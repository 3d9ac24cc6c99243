//! `alkasba-bench realtime`: the simulator's signed webhooks at a sustained rate through the
//! real `webhook` and `realtime` binaries (release) under the runner, SQS, S3 and SNS on
//! LocalStack, all on this machine. Reports the rate actually accepted, events lost between the
//! webhook and the events table, alert latency (from the accepted triggering delivery to the
//! alert reaching SNS) and each function's peak RSS.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use alkasba_lake::Lake;
use alkasba_lake::StorageConfig;
use alkasba_lake::arrow::array::AsArray;
use alkasba_lake::arrow::datatypes::TimestampMicrosecondType;
use alkasba_runner::{Runner, RunnerConfig};
use alkasba_sim::store::Resource;
use alkasba_sim::{SimConfig, serve};
use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::{field, machine, secret_json, stack_outputs};

#[derive(Args)]
pub struct RealtimeArgs {
    /// A stack deployed with localstack/provision.sh.
    #[arg(long, env = "ALKASBA_STACK", default_value = "alkasba-bench")]
    stack: String,
    /// Webhook deliveries per second the simulator sends.
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// How long it sends (seconds).
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Instances of each function (the runner's concurrency; realtime's SQS mapping caps it at 2).
    #[arg(long, default_value_t = 8)]
    instances: usize,
    /// Deliveries the simulator keeps in flight.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// The SAM template the stack was deployed from.
    #[arg(long, default_value = "infra/template.yaml")]
    template: PathBuf,
    /// Alert rules of the realtime function (calibrated to the simulator's store).
    #[arg(long, default_value = "tools/bench/alerts-bench.toml")]
    rules: PathBuf,
    /// Seconds spent first measuring LocalStack's own ceiling for the webhook's one call per
    /// delivery (an SQS send of an event's size); 0 skips it.
    #[arg(long, default_value_t = 15)]
    ceiling_secs: u64,
    /// LocalStack.
    #[arg(long, env = "AWS_ENDPOINT_URL", default_value = "http://127.0.0.1:4566")]
    endpoint: String,
    /// Logs of the functions.
    #[arg(long, default_value = ".local/bench/realtime")]
    work_dir: PathBuf,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub async fn run(a: RealtimeArgs) -> Result<()> {
    let sdk = alkasba_runner::aws_config(Some(&a.endpoint)).await?;
    let outputs = stack_outputs(&sdk, &a.stack).await?;
    crate::reset(&sdk, &outputs).await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for q in ["StoreEventsQueueUrl", "StoreEventsDlqUrl"] {
        let url = outputs.get(q).with_context(|| format!("stack output {q}"))?;
        sqs.purge_queue().queue_url(url).send().await.with_context(|| format!("purging {url}"))?;
    }
    let out = |k: &str| outputs.get(k).cloned().with_context(|| format!("stack output {k}"));

    let ceiling = if a.ceiling_secs > 0 { Some(localstack_ceiling(&sdk, &a.stack, a.instances, Duration::from_secs(a.ceiling_secs)).await?) } else { None };

    let mut sim = SimConfig::small(42, 20_000);
    sim.credentials.webhook_secret = field(&secret_json(&sdk, &format!("{}/store/webhook-secret", a.stack)).await?, "secret")?;
    let (addr, state, _server) = serve(sim, "127.0.0.1:0".parse()?).await?;
    let base = format!("http://{addr}");
    {
        // Well stocked, so the only stock-out is the scripted one.
        let mut store = state.store_mut();
        let now = chrono::Utc::now().timestamp();
        for i in 0..store.len(Resource::Products) {
            store.set_stock(i, 1_000_000, now);
        }
    }

    let log_dir = a.work_dir.join("logs");
    let _ = std::fs::remove_dir_all(&log_dir);
    let bin_dir = std::env::current_exe()?.parent().context("bench binary directory")?.to_path_buf();
    let mut cfg = RunnerConfig::new(&a.template, &a.stack, bin_dir);
    cfg.functions = vec!["webhook".into(), "realtime".into()];
    cfg.concurrency = a.instances;
    cfg.log_dir = Some(log_dir.clone());
    let rules = std::path::absolute(&a.rules)?;
    cfg.extra_env.insert("ALERT_RULES_FILE".into(), rules.display().to_string());
    let runner = Runner::start(cfg).await?;
    let url = format!("http://{}/", runner.http_endpoints().get("WebhookFunction").context("no webhook endpoint")?);
    let mut reports = runner.subscribe();
    let rss = tokio::spawn(async move {
        let mut peak: BTreeMap<String, u64> = BTreeMap::new();
        let mut invocations: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            match reports.recv().await {
                Ok(r) => {
                    let p = peak.entry(r.function.clone()).or_default();
                    *p = (*p).max(r.invocation.peak_rss_mb);
                    *invocations.entry(r.function).or_default() += 1;
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        (peak, invocations)
    });

    // Alerts reach us through a queue subscribed to the topic; SentTimestamp is when SNS
    // delivered them.
    let sns = aws_sdk_sns::Client::new(&sdk);
    let inbox = sqs.create_queue().queue_name(format!("{}-bench-alerts", a.stack)).send().await?.queue_url().unwrap_or_default().to_string();
    sqs.purge_queue().queue_url(&inbox).send().await.ok();
    let arn_attr = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
    let inbox_arn = sqs.get_queue_attributes().queue_url(&inbox).attribute_names(arn_attr.clone()).send().await?.attributes().and_then(|m| m.get(&arn_attr).cloned()).context("inbox ARN")?;
    sns.subscribe().topic_arn(out("AlertsTopicArn")?).protocol("sqs").endpoint(&inbox_arn).attributes("RawMessageDelivery", "true").send().await?;

    // A quiet start, then a suspicious burst (a new customer each time: a new alert each time)
    // every 3 s, one stock-out and one competitor undercut.
    let mut incidents: Vec<Value> = (0..).map(|i| 10 + 3 * i).take_while(|t| *t + 5 < a.secs).map(|t| json!({"at_secs": t, "kind": "suspicious_burst"})).collect();
    incidents.push(json!({"at_secs": a.secs / 2, "kind": "stockout"}));
    incidents.push(json!({"at_secs": a.secs / 2 + 1, "kind": "competitor_undercut"}));
    let client = reqwest::Client::new();
    eprintln!("sending {} deliveries/s for {} s to {url} ({} incidents)", a.rate, a.secs, incidents.len());
    // CPU seconds while the store sends: the functions (this process's children), this process
    // (the simulator and the runner) and LocalStack share the two cores.
    let cpu_before = crate::cpu::Snapshot::now();
    let started = Instant::now();
    let r = client.post(format!("{base}/_sim/webhooks/start")).json(&json!({"url": url, "rate": a.rate, "duration_secs": a.secs, "concurrency": a.in_flight, "incidents": incidents})).send().await?;
    if !r.status().is_success() {
        bail!("starting the webhooks: {}", r.text().await?);
    }
    let log: Value = loop {
        let log: Value = client.get(format!("{base}/_sim/webhooks/log")).send().await?.json().await?;
        if log["running"] == json!(false) {
            break log;
        }
        eprint!("\r  {:>4.0} s: {} sent, {} accepted ", started.elapsed().as_secs_f64(), log["sent"], log["delivered"]);
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let send_secs = started.elapsed().as_secs_f64();
    let crate::cpu::Split { functions: functions_cpu, own: own_cpu, localstack: ls_cpu } = cpu_before.split();
    eprintln!();
    let deliveries = log["deliveries"].as_array().context("webhook log")?;
    // Events are named by their payload: the HMAC the store signed it with, in hex.
    let payload_id = |d: &Value| d["signature"].as_str().and_then(|s| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).ok()).map(hex::encode);
    let accepted: HashSet<String> = deliveries.iter().filter(|d| d["status"] == json!(202)).filter_map(payload_id).collect();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for d in deliveries {
        *statuses.entry(d["status"].to_string()).or_default() += 1;
    }

    // Drain: the queue empties, the scheduled tick writes what is pending, and every accepted
    // delivery is in the events table (or 5 minutes pass).
    let events_queue = out("StoreEventsQueueUrl")?;
    let drain_queue = Instant::now();
    loop {
        let a = sqs.get_queue_attributes().queue_url(&events_queue).attribute_names(aws_sdk_sqs::types::QueueAttributeName::All).send().await?;
        let n = |k: aws_sdk_sqs::types::QueueAttributeName| a.attributes().and_then(|m| m.get(&k)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
        let left = n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages) + n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        if left == 0 || drain_queue.elapsed() > Duration::from_secs(300) {
            break;
        }
        eprint!("\r  draining the queue: {left} messages ");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    runner.invoke("RealtimeFunction", &json!({"tick": "bench"})).await?;
    let lake = Lake::new(&out("LakeRoot")?, StorageConfig { endpoint_url: Some(a.endpoint.clone()), region: "us-east-1".into() })?;
    let table = lake.table(alkasba_realtime::aws::EVENTS_TABLE)?;
    let drain = Instant::now();
    let (stored, dupes, received) = loop {
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut received: HashMap<String, i64> = HashMap::new();
        for b in lake.scan(&table, None, &["delivery_id", "received_at"]).await? {
            // Scans may yield dictionary or view strings: cast to plain ones.
            let idc = deltalake::arrow::compute::cast(b.column(0), &deltalake::arrow::datatypes::DataType::Utf8)?;
            let idc = idc.as_string::<i32>();
            let ts = b.column(1).as_primitive::<TimestampMicrosecondType>();
            for i in 0..b.num_rows() {
                *ids.entry(idc.value(i).to_string()).or_default() += 1;
                received.insert(idc.value(i).to_string(), ts.value(i) / 1000);
            }
        }
        let dupes = ids.values().filter(|n| **n > 1).count();
        if accepted.iter().all(|d| ids.contains_key(d)) || drain.elapsed() > Duration::from_secs(300) {
            break (ids, dupes, received);
        }
        eprint!("\r  draining: {} of {} accepted deliveries in the events table ", ids.len(), accepted.len());
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let drain_secs = drain_queue.elapsed().as_secs_f64();
    eprintln!();
    let lost = accepted.iter().filter(|d| !stored.contains_key(*d)).count();

    // Alerts: from the accepted triggering delivery to SNS.
    let mut alerts: Vec<(Value, i64)> = Vec::new();
    let wait = Instant::now();
    while wait.elapsed() < Duration::from_secs(20) {
        let got = sqs
            .receive_message()
            .queue_url(&inbox)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp)
            .send()
            .await?;
        if got.messages().is_empty() && !alerts.is_empty() {
            break;
        }
        for m in got.messages() {
            let sent = m.attributes().and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp)).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
            alerts.push((serde_json::from_str(m.body().unwrap_or_default())?, sent));
            sqs.delete_message().queue_url(&inbox).receipt_handle(m.receipt_handle().unwrap_or_default()).send().await?;
        }
    }
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut latencies: Vec<f64> = Vec::new();
    for (alert, sent) in &alerts {
        *kinds.entry(alert["kind"].as_str().unwrap_or("?").to_string()).or_default() += 1;
        if let Some(at) = alert["trigger_delivery"].as_str().and_then(|d| received.get(d)) {
            latencies.push((sent - at) as f64);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let state_bytes = s3.head_object().bucket(out("LakeBucketName")?).key(alkasba_realtime::aws::STATE).send().await.ok().and_then(|h| h.content_length()).unwrap_or(0);
    runner.shutdown().await;
    let (peak, invocations) = rss.await.unwrap_or_default();
    // The simulator stops producing after `secs` of wall time; when deliveries lag behind its
    // schedule, the incidents scheduled late are never sent: count what was delivered.
    let delivered = |kind: &str| deliveries.iter().filter(|d| d["incident"] == json!(kind) && d["status"] == json!(202)).count();
    let bursts = delivered("suspicious_burst") / 12;
    let (stockouts, undercuts) = (delivered("stockout").min(1), delivered("competitor_undercut").min(1));

    let accepted_rate = accepted.len() as f64 / send_secs;
    println!("machine: {}", machine());
    println!("sent for {send_secs:.1} s at a target of {} deliveries/s: {} sent, statuses {statuses:?}", a.rate, deliveries.len());
    println!("accepted: {} ({accepted_rate:.0}/s); in the events table: {} (lost {lost}, stored twice {dupes}); drained {drain_secs:.1} s after the last send", accepted.len(), stored.len());
    println!("alerts: {kinds:?} (incidents delivered: {bursts} suspicious bursts of the {} scripted, {stockouts} stock-out, {undercuts} undercut)", incidents.len() - 2);
    println!(
        "alert latency, accepted trigger → SNS, {} alerts: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "CPU seconds while sending ({send_secs:.0} s × 2 cores = {:.0} available): webhook + realtime {functions_cpu:.0}, simulator + runner {own_cpu:.0}, LocalStack {ls_cpu:.0}",
        2.0 * send_secs
    );
    println!("peak RSS (MB): {peak:?}; invocations: {invocations:?}; state object {:.0} KB", state_bytes as f64 / 1024.0);
    if let Some(c) = ceiling {
        println!(
            "LocalStack ceiling for the webhook's call ({} clients, no webhook, no realtime): {c:.0} deliveries/s (one SQS send of {CEILING_BODY_BYTES} bytes each); accepted/ceiling {:.0}%",
            a.instances,
            100.0 * accepted_rate / c
        );
    }
    println!();
    println!(
        "| {} | {} /s for {} s | {accepted_rate:.0} /s | {lost} | {:.0} / {:.0} ms ({} alerts) | {} |",
        chrono::Utc::now().format("%Y-%m-%d"),
        a.rate,
        a.secs,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len(),
        peak.iter().map(|(f, m)| format!("{f} {m} MB")).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// The size of the ceiling's messages: a sealed order event as the webhook enqueues it is
/// 3-5 KB (the record, its sealed personal fields, tokens; a first event of a person also
/// carries the wrapped key).
const CEILING_BODY_BYTES: usize = 4_096;

/// What LocalStack alone sustains for the webhook's per-delivery call: `clients` loops each
/// sending one SQS message of an event's size, for `secs`. Deliveries per second; the scratch
/// queue is removed after.
async fn localstack_ceiling(sdk: &aws_config::SdkConfig, stack: &str, clients: usize, secs: Duration) -> Result<f64> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue = sqs.create_queue().queue_name(format!("{stack}-bench-ceiling")).send().await?.queue_url().unwrap_or_default().to_string();
    eprintln!("measuring LocalStack's ceiling for {} s ({clients} clients)", secs.as_secs());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (sqs, queue) = (sqs.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < secs {
                let head = format!("{{\"client\":{c},\"n\":{n},\"pad\":\"");
                let body = format!("{head}{}\"}}", "x".repeat(CEILING_BODY_BYTES.saturating_sub(head.len() + 2)));
                sqs.send_message().queue_url(&queue).message_body(body).send().await?;
                n += 1;
            }
            Ok::<u64, anyhow::Error>(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    sqs.delete_queue().queue_url(&queue).send().await?;
    Ok(rate)
}
