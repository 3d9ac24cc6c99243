//! Issue 21 point 3, on the template: every function, dead-letter queue, cursor stream and the
//! real-time queue has its alarm, on the right metric, notifying the operations topic, and the
//! operations dashboard shows them; every alarm names its runbook section, which exists.

use std::collections::BTreeSet;

use alkasba_it::repo;
use serde_yaml_ng::Value;

fn template() -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(repo().join("infra/template.yaml")).unwrap()).unwrap()
}

/// `!Ref X` → `X`, `!GetAtt X.Y` → `X.Y`, `!Sub "s"` → `s`, a plain value → itself.
fn tagged(v: &Value) -> String {
    match v {
        Value::Tagged(t) => t.value.as_str().map(str::to_string).unwrap_or_else(|| format!("{:?}", t.value)),
        other => other.as_str().map(str::to_string).or_else(|| other.as_u64().map(|n| n.to_string())).unwrap_or_default(),
    }
}

struct Alarm {
    id: String,
    namespace: String,
    metric: String,
    dims: Vec<(String, String)>,
    actions: Vec<String>,
    description: String,
}

fn alarms(t: &Value) -> Vec<Alarm> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|(id, r)| {
            let p = &r["Properties"];
            Alarm {
                id: id.as_str().unwrap().to_string(),
                namespace: tagged(&p["Namespace"]),
                metric: tagged(&p["MetricName"]),
                dims: p["Dimensions"].as_sequence().unwrap().iter().map(|d| (tagged(&d["Name"]), tagged(&d["Value"]))).collect(),
                actions: p["AlarmActions"].as_sequence().unwrap().iter().map(tagged).collect(),
                description: tagged(&p["AlarmDescription"]),
            }
        })
        .collect()
}

fn has(alarms: &[Alarm], namespace: &str, metric: &str, dim: (&str, &str)) -> bool {
    alarms.iter().any(|a| a.namespace == namespace && a.metric == metric && a.dims.iter().any(|(k, v)| k == dim.0 && v == dim.1))
}

#[test]
fn every_alarm_is_wired_to_its_metric_the_ops_topic_and_a_runbook_section() {
    let t = template();
    let all = alarms(&t);
    let resources = t["Resources"].as_mapping().unwrap();
    let functions: Vec<String> = resources.iter().filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function")).map(|(id, _)| id.as_str().unwrap().to_string()).collect();
    assert!(functions.len() >= 12, "{functions:?}");
    for f in &functions {
        assert!(has(&all, "AWS/Lambda", "Errors", ("FunctionName", f)), "{f}: no Errors alarm");
        assert!(has(&all, "AWS/Lambda", "Throttles", ("FunctionName", f)), "{f}: no Throttles alarm");
    }
    let dlqs: Vec<String> =
        resources.iter().filter(|(id, r)| r["Type"].as_str() == Some("AWS::SQS::Queue") && id.as_str().unwrap().ends_with("DLQ")).map(|(id, _)| id.as_str().unwrap().to_string()).collect();
    assert_eq!(dlqs.len(), 3, "{dlqs:?}");
    for q in &dlqs {
        assert!(has(&all, "AWS/SQS", "ApproximateNumberOfMessagesVisible", ("QueueName", &format!("{q}.QueueName"))), "{q}: no depth alarm");
    }
    // One watermark alarm per stream with a cursor, on the planner's EMF metric.
    let files = alkasba_sources_cursor_streams();
    assert!(!files.is_empty());
    for s in &files {
        assert!(has(&all, "AlkasbaLake", "WatermarkLagSeconds", ("Stream", s)), "{s}: no watermark alarm");
    }
    assert!(has(&all, "AWS/SQS", "ApproximateAgeOfOldestMessage", ("QueueName", "StoreEventsQueue.QueueName")), "no real-time lag alarm");
    let runbook = std::fs::read_to_string(repo().join("docs/runbook.md")).unwrap();
    let sections: BTreeSet<String> = runbook.lines().filter_map(|l| l.strip_prefix("## ")).map(|h| h.trim().to_string()).collect();
    for a in &all {
        assert_eq!(a.actions, vec!["OpsAlarmsTopic".to_string()], "{}: notifies the operations topic", a.id);
        let anchor = a.description.split("docs/runbook.md#").nth(1).unwrap_or_else(|| panic!("{}: no runbook link", a.id));
        assert!(sections.contains(anchor.trim()), "{}: docs/runbook.md has no section {anchor}", a.id);
    }
    // The dashboard plots what the alarms watch.
    let body = tagged(&t["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]);
    let dash: serde_json::Value = serde_json::from_str(&body).unwrap();
    let plotted: BTreeSet<String> =
        dash["widgets"].as_array().unwrap().iter().flat_map(|w| w["properties"]["metrics"].as_array().unwrap().iter().map(|m| m[1].as_str().unwrap().to_string())).collect();
    for m in [
        "Errors",
        "Throttles",
        "WatermarkLagSeconds",
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "RecordsFetched",
        "RecordsQuarantined",
        "EventsApplied",
        "AlertLatencyMs",
        "SilverRowsMerged",
        "MartsBuilt",
        "MartBuildMs",
    ] {
        assert!(plotted.contains(m), "the dashboard does not plot {m}");
    }
}

/// `source.stream` of every shipped stream with a cursor (the planner measures their lag).
fn alkasba_sources_cursor_streams() -> Vec<String> {
    alkasba_sources::shipped().unwrap().iter().flat_map(|f| f.streams.iter().filter(|s| s.cursor.is_some()).map(|s| format!("{}.{}", f.source.name, s.name)).collect::<Vec<_>>()).collect()
}

/// Each source is read at its own URL, from the stack's parameters (a real shop's feeds do not
/// live on its WooCommerce host).
#[test]
fn every_source_has_its_own_base_url_parameter() {
    let t = template();
    for f in ["PlannerFunction", "FetcherFunction"] {
        let urls = tagged(&t["Resources"][f]["Properties"]["Environment"]["Variables"]["SOURCE_BASE_URLS"]);
        for (source, param) in [("alkasba_store", "StoreBaseUrl"), ("competitor_prices", "CompetitorPricesBaseUrl"), ("exchange_rates", "ExchangeRatesBaseUrl")] {
            assert!(urls.contains(&format!("{source}=${{{param}}}")), "{f}: {source} must come from {param}: {urls}");
            assert!(t["Parameters"][param].is_mapping(), "no parameter {param}");
        }
    }
}

/// Issue 21: `sam validate --lint` (the SAM CLI pinned in tests/sam.lock: the SAM transform and
/// its cfn-lint) accepts the template a real account deploys.
#[test]
fn sam_validate_lint_passes() {
    let sam = repo().join(".local/sam/bin/sam");
    assert!(sam.is_file(), "{} is missing: run localstack/install.sh", sam.display());
    let out = std::process::Command::new(&sam)
        .args(["validate", "--lint", "-t"])
        .arg(repo().join("infra/template.yaml"))
        // No telemetry; a region for the SAM transform (nothing is sent to AWS).
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_DEFAULT_REGION", "eu-west-3")
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.contains("is a valid SAM Template"), "sam validate --lint:\n{said}");
}
