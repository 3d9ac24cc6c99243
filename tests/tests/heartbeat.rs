//! The whole chain with the real template: infra/template.yaml → LocalStack (linted and
//! deployed) → runner → heartbeat binary → Delta commit on S3 → DuckDB reads it back.

use std::time::Duration;

use alkasba_it::{Stack, bin_dir, duckdb, repo};
use alkasba_runner::{Outcome, Runner, RunnerConfig, Trigger};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_ticks_land_in_delta_exactly_once_and_duckdb_reads_them() {
    let template = repo().join("infra/template.yaml");
    let stack = Stack::deploy("hb", &template, true).unwrap();
    let table = stack.output("HeartbeatTableUri").to_string();

    let mut cfg = RunnerConfig::new(&template, &stack.name, bin_dir());
    cfg.functions = vec!["heartbeat".into()];
    cfg.speedup = 600.0; // rate(5 minutes) every half second
    cfg.fire_on_start = true;
    cfg.log_dir = Some(repo().join(".local/logs").join(&stack.name));
    let runner = Runner::start(cfg).await.unwrap();
    let mut rx = runner.subscribe();
    let mut ticks = Vec::new();
    while ticks.len() < 3 {
        let r = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await.expect("a tick").unwrap();
        let Trigger::Schedule { scheduled_time } = r.trigger else { continue };
        let Outcome::Success(v) = &r.invocation.outcome else { panic!("{:?}", r.invocation.outcome) };
        assert_eq!(v["status"], "committed", "{v}");
        ticks.push(scheduled_time);
    }
    // A redelivered tick (the same scheduled time again) commits nothing.
    let again = serde_json::json!({"scheduled_time": ticks[0].to_rfc3339(), "schedule_arn": "arn:redelivery"});
    let inv = runner.invoke("HeartbeatFunction", &again).await.unwrap();
    let Outcome::Success(v) = &inv.outcome else { panic!("{:?}", inv.outcome) };
    assert_eq!(v["status"], "already_recorded", "{v}");
    runner.shutdown().await;

    let committed: std::collections::BTreeSet<String> = ticks.iter().map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()).collect();
    let rows = duckdb(&format!("SELECT strftime(tick_time, '%Y-%m-%dT%H:%M:%S') AS t, count(*) AS n FROM delta_scan('{table}') GROUP BY 1 ORDER BY 1")).unwrap();
    // Ticks fired after the three we waited for may have committed too; each exactly once.
    assert!(rows.len() >= 3, "{rows:?}");
    assert!(rows.iter().all(|r| r["n"] == 1), "a tick recorded twice: {rows:?}");
    let read: std::collections::BTreeSet<String> = rows.iter().map(|r| r["t"].as_str().unwrap().to_string()).collect();
    assert!(committed.is_subset(&read), "committed {committed:?} but DuckDB read {read:?}");
    stack.cleanup().await;
}
