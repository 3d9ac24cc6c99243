//! The local event runner against LocalStack with the real `probe` binary: SQS batches with
//! partial failures, redelivery and dead-lettering, timeouts, memory limits, schedules and HTTP.

use std::collections::HashMap;
use std::time::Duration;

use alkasba_it::{Stack, bin_dir, eventually, repo, sdk};
use alkasba_runner::{Outcome, Report, Runner, RunnerConfig, Trigger};
use tokio::sync::broadcast;

fn fixture() -> std::path::PathBuf {
    repo().join("tests/fixtures/runner.yaml")
}

async fn start_runner(stack: &Stack, speedup: f64) -> Runner {
    let mut cfg = RunnerConfig::new(fixture(), &stack.name, bin_dir());
    cfg.speedup = speedup;
    cfg.concurrency = 2;
    cfg.log_dir = Some(repo().join(".local/logs").join(&stack.name));
    Runner::start(cfg).await.expect("runner starts")
}

/// A fixture stack, a runner on it, its reports, the work queue and DLQ, and an SQS client.
struct Setup {
    stack: Stack,
    runner: Runner,
    rx: broadcast::Receiver<Report>,
    queue: String,
    dlq: String,
    sqs: aws_sdk_sqs::Client,
}

async fn setup(prefix: &str, speedup: f64) -> Setup {
    let stack = Stack::deploy(prefix, &fixture(), false).unwrap();
    let runner = start_runner(&stack, speedup).await;
    let rx = runner.subscribe();
    let s = runner.stack();
    let (queue, dlq) = (s.resources["WorkQueue"].physical_id.clone(), s.resources["WorkDLQ"].physical_id.clone());
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    Setup { stack, runner, rx, queue, dlq, sqs }
}

async fn send(sqs: &aws_sdk_sqs::Client, queue: &str, body: &str) -> String {
    sqs.send_message().queue_url(queue).message_body(body).send().await.unwrap().message_id().unwrap().to_string()
}

/// Receives from the DLQ until `n` messages have arrived (at most 90 s); returns their bodies.
async fn dead_letters(sqs: &aws_sdk_sqs::Client, dlq: &str, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut bodies = Vec::new();
    while bodies.len() < n {
        assert!(std::time::Instant::now() < deadline, "only {bodies:?} reached the DLQ within 90 s");
        let r = sqs.receive_message().queue_url(dlq).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
        for m in r.messages() {
            bodies.push(m.body().unwrap_or_default().to_string());
            sqs.delete_message().queue_url(dlq).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
    bodies
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue: &str) -> i64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let r = sqs.get_queue_attributes().queue_url(queue).attribute_names(A::ApproximateNumberOfMessages).attribute_names(A::ApproximateNumberOfMessagesNotVisible).send().await.unwrap();
    let attrs = r.attributes().unwrap();
    let get = |a: A| attrs.get(&a).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    get(A::ApproximateNumberOfMessages) + get(A::ApproximateNumberOfMessagesNotVisible)
}

fn drain(rx: &mut broadcast::Receiver<Report>, into: &mut Vec<Report>) {
    while let Ok(r) = rx.try_recv() {
        into.push(r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_batch_failures_are_redelivered_then_dead_lettered_and_good_messages_deleted() {
    let Setup { stack, runner, mut rx, queue, dlq, sqs } = setup("sqs", 1.0).await;

    let mut good = Vec::new();
    for i in 0..4 {
        good.push(send(&sqs, &queue, if i % 2 == 0 { "ok" } else { "sleep:10" }).await);
    }
    let bad = send(&sqs, &queue, "fail").await;

    let dead = dead_letters(&sqs, &dlq, 1).await;
    assert_eq!(dead, vec!["fail".to_string()]);
    let mut reports = Vec::new();
    drain(&mut rx, &mut reports);

    let mut delivered: HashMap<String, usize> = HashMap::new();
    let mut failed: HashMap<String, usize> = HashMap::new();
    for r in &reports {
        if let Trigger::Sqs { message_ids, failed_ids, .. } = &r.trigger {
            assert!(r.invocation.outcome.is_success(), "{:?}", r.invocation.outcome);
            for id in message_ids {
                *delivered.entry(id.clone()).or_default() += 1;
            }
            for id in failed_ids {
                *failed.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for id in &good {
        assert_eq!(delivered.get(id), Some(&1), "good message {id} delivered once and deleted");
        assert!(!failed.contains_key(id));
    }
    // maxReceiveCount is 2: two failed deliveries, then SQS moves it to the DLQ.
    assert_eq!(delivered.get(&bad), Some(&2));
    assert_eq!(failed.get(&bad), Some(&2));
    eventually(Duration::from_secs(10), "an empty work queue", || {
        let (sqs, q) = (sqs.clone(), queue.clone());
        async move { (queue_depth(&sqs, &q).await == 0).then_some(()) }
    })
    .await;
    runner.shutdown().await;
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrunning_the_timeout_or_memory_stops_the_instance_and_the_message_returns() {
    let Setup { stack, runner, mut rx, queue, dlq, sqs } = setup("limits", 1.0).await;

    // One at a time, so each is alone in its batch.
    let slow = send(&sqs, &queue, "sleep:20000").await; // timeout is 2 s
    assert_eq!(dead_letters(&sqs, &dlq, 1).await, vec!["sleep:20000".to_string()]);
    let fat = send(&sqs, &queue, "oom:400").await; // memory is 128 MiB
    assert_eq!(dead_letters(&sqs, &dlq, 1).await, vec!["oom:400".to_string()]);

    let mut reports = Vec::new();
    drain(&mut rx, &mut reports);
    let outcomes_for = |id: &str| -> Vec<&Outcome> {
        reports.iter().filter(|r| matches!(&r.trigger, Trigger::Sqs { message_ids, .. } if message_ids.iter().any(|m| m == id))).map(|r| &r.invocation.outcome).collect()
    };
    let slow_outcomes = outcomes_for(&slow);
    assert_eq!(slow_outcomes.len(), 2, "delivered twice (maxReceiveCount 2): {slow_outcomes:?}");
    for o in slow_outcomes {
        match o {
            Outcome::Timeout(d) => assert!(*d >= Duration::from_secs(2) && *d < Duration::from_secs(10), "{d:?}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    let fat_outcomes = outcomes_for(&fat);
    assert_eq!(fat_outcomes.len(), 2, "{fat_outcomes:?}");
    for o in fat_outcomes {
        assert!(matches!(o, Outcome::OutOfMemory { limit_mb: 128, rss_mb } if *rss_mb > 128), "{o:?}");
    }
    // Stopped instances are replaced: the next invocation after a kill is a cold start.
    let ok = send(&sqs, &queue, "ok").await;
    let report = eventually(Duration::from_secs(30), "the ok message", || {
        let found = {
            drain(&mut rx, &mut reports);
            reports.iter().find(|r| matches!(&r.trigger, Trigger::Sqs { message_ids, .. } if message_ids.contains(&ok))).cloned()
        };
        async move { found }
    })
    .await;
    assert!(report.invocation.outcome.is_success());
    assert!(report.invocation.cold_start, "every earlier instance was stopped, so this one is new");
    runner.shutdown().await;
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_tick_and_function_urls_answer() {
    let stack = Stack::deploy("sched", &fixture(), false).unwrap();
    // rate(1 minute) at 120x: a tick every half second, scheduled times a minute apart.
    let runner = start_runner(&stack, 120.0).await;
    let mut rx = runner.subscribe();
    let mut ticks = Vec::new();
    while ticks.len() < 2 {
        let r = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("a tick within 30 s").unwrap();
        if let Trigger::Schedule { scheduled_time } = r.trigger {
            let Outcome::Success(v) = &r.invocation.outcome else { panic!("{:?}", r.invocation.outcome) };
            assert_eq!(v["echo"]["detail-type"], "Scheduled Event");
            assert_eq!(v["function"], "ProbeFunction");
            ticks.push(scheduled_time);
        }
    }
    assert_eq!((ticks[1] - ticks[0]).num_seconds(), 60);

    let url = format!("http://{}/orders/7?x=1", runner.http_endpoints()["ProbeFunction"]);
    let resp = reqwest::Client::new().post(&url).body("hello").send().await.unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-probe"], "yes");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"method": "POST", "path": "/orders/7", "body": "hello"}));
    // Clients that go away mid-invocation (a browser leaving a page) cost no instance slot: the
    // invocations finish, and the function still answers afterwards.
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(100)).build().unwrap();
    for _ in 0..4 {
        assert!(impatient.post(&url).body("sleep:600").send().await.is_err());
    }
    let resp = reqwest::Client::new().post(&url).body("after").send().await.unwrap();
    assert_eq!(resp.status(), 201);
    runner.shutdown().await;
    stack.cleanup().await;
}
