//! Reads a SAM template and extracts what the runner plays: each function's binary, limits,
//! environment and event sources, as AWS would wire them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::{Error, Result};

/// One `AWS::Serverless::Function`, with `Globals.Function` applied.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// Logical id in the template (for example `HeartbeatFunction`).
    pub logical_id: String,
    /// Name of the binary that implements it (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    /// The invocation time limit (when `Timeout` is a literal).
    pub timeout: Duration,
    /// `Timeout` as an intrinsic (`!Ref FetcherTimeoutSeconds`), resolved against the deployed
    /// stack when the function starts.
    pub timeout_ref: Option<Value>,
    /// The memory limit in MiB.
    pub memory_mb: u64,
    /// Environment variables, still holding intrinsic functions (`Ref`, `Fn::Sub`, ...).
    pub environment: BTreeMap<String, Value>,
    /// Event sources, sorted by event name.
    pub events: Vec<EventSpec>,
    /// Whether the function has a Function URL.
    pub function_url: bool,
}

/// One event source of a function.
#[derive(Debug, Clone, PartialEq)]
pub enum EventSpec {
    /// `Schedule` (EventBridge rule) or `ScheduleV2` (EventBridge Scheduler).
    Schedule {
        name: String,
        /// Interval between ticks at real speed.
        every: Duration,
        /// `ScheduleV2` (Scheduler) events deliver `input`; `Schedule` events deliver the
        /// EventBridge "Scheduled Event" unless `input` is set.
        scheduler: bool,
        /// The configured input, if any (a JSON string, may contain `<aws.scheduler.*>`).
        input: Option<String>,
        /// Disabled in the template (`Enabled: false` / `State: DISABLED`).
        enabled: bool,
    },
    /// `SQS` event source mapping.
    Sqs {
        name: String,
        /// The queue, still an intrinsic (usually `Fn::GetAtt [Queue, Arn]`).
        queue: Value,
        /// Maximum messages per invocation (AWS default 10).
        batch_size: u32,
        /// How long to gather a batch (`MaximumBatchingWindowInSeconds`, default 0).
        batching_window: Duration,
        /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
        report_batch_item_failures: bool,
        /// `ScalingConfig.MaximumConcurrency` (None: the function's concurrency).
        max_concurrency: Option<u32>,
        enabled: bool,
    },
    /// `HttpApi` or `Api` event: served on a local HTTP endpoint.
    Http { name: String, method: Option<String>, path: Option<String> },
}

impl EventSpec {
    /// The event's name in the template.
    pub fn name(&self) -> &str {
        match self {
            EventSpec::Schedule { name, .. } | EventSpec::Sqs { name, .. } | EventSpec::Http { name, .. } => name,
        }
    }
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    /// The whole template as JSON, intrinsics in their long form.
    pub raw: Value,
    /// Every serverless function.
    pub functions: Vec<FunctionSpec>,
}

impl Template {
    /// Reads and parses the template at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Template { path: path.display().to_string(), reason: e.to_string() })?;
        Self::parse(&text).map_err(|e| match e {
            Error::Template { reason, .. } => Error::Template { path: path.display().to_string(), reason },
            other => other,
        })
    }

    /// Parses template text (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self> {
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| template_err(format!("not valid YAML: {e}")))?;
        let raw = yaml_to_json(yaml)?;
        let resources = raw.get("Resources").and_then(Value::as_object).ok_or_else(|| template_err("no Resources section".into()))?;
        let globals = raw.pointer("/Globals/Function").cloned().unwrap_or(Value::Null);
        let mut functions = Vec::new();
        for (id, resource) in resources {
            if resource.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function") {
                functions.push(function_spec(id, resource, &globals)?);
            }
        }
        Ok(Self { raw, functions })
    }

    /// The function with this logical id or binary name.
    pub fn function(&self, name: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.logical_id == name || f.binary == name)
    }

    /// A resource's properties.
    pub fn resource_properties(&self, logical_id: &str) -> Option<&Value> {
        self.raw.pointer(&format!("/Resources/{logical_id}/Properties"))
    }
}

fn template_err(reason: String) -> Error {
    Error::Template { path: "<text>".into(), reason }
}

fn function_spec(id: &str, resource: &Value, globals: &Value) -> Result<FunctionSpec> {
    let props = resource.get("Properties").cloned().unwrap_or(Value::Null);
    let get = |key: &str| props.get(key).or_else(|| globals.get(key));
    let binary = resource
        .pointer("/Metadata/BuildProperties/Binary")
        .and_then(Value::as_str)
        .ok_or_else(|| template_err(format!("function {id}: Metadata.BuildProperties.Binary is missing (it names the cargo binary)")))?
        .to_string();
    let timeout_ref = get("Timeout").filter(|v| v.is_object()).cloned();
    let timeout = if timeout_ref.is_some() { 3.0 } else { number(get("Timeout"), 3.0, &format!("{id}.Timeout"))? };
    if !(1.0..=900.0).contains(&timeout) {
        return Err(template_err(format!("function {id}: Timeout {timeout} is outside 1..=900 seconds")));
    }
    let memory_mb = number(get("MemorySize"), 128.0, &format!("{id}.MemorySize"))? as u64;
    if !(128..=10240).contains(&memory_mb) {
        return Err(template_err(format!("function {id}: MemorySize {memory_mb} is outside 128..=10240 MiB")));
    }
    let mut environment = BTreeMap::new();
    for source in [globals.pointer("/Environment/Variables"), props.pointer("/Environment/Variables")] {
        if let Some(vars) = source.and_then(Value::as_object) {
            for (k, v) in vars {
                environment.insert(k.clone(), v.clone());
            }
        }
    }
    let mut events = Vec::new();
    if let Some(evs) = props.get("Events").and_then(Value::as_object) {
        for (name, ev) in evs {
            if let Some(spec) = event_spec(id, name, ev)? {
                events.push(spec);
            }
        }
    }
    Ok(FunctionSpec {
        logical_id: id.to_string(),
        binary,
        timeout: Duration::from_secs_f64(timeout),
        timeout_ref,
        memory_mb,
        environment,
        events,
        function_url: props.get("FunctionUrlConfig").is_some(),
    })
}

fn number(v: Option<&Value>, default: f64, what: &str) -> Result<f64> {
    match v {
        None => Ok(default),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| template_err(format!("{what} is not a number"))),
        Some(Value::String(s)) => s.parse().map_err(|_| template_err(format!("{what} {s:?} is not a number"))),
        Some(other) => Err(template_err(format!("{what} must be a literal number here, found {other}"))),
    }
}

fn event_spec(fid: &str, name: &str, ev: &Value) -> Result<Option<EventSpec>> {
    let kind = ev.get("Type").and_then(Value::as_str).unwrap_or_default();
    let p = ev.get("Properties").cloned().unwrap_or(Value::Null);
    let at = format!("function {fid}, event {name}");
    Ok(Some(match kind {
        "Schedule" | "ScheduleV2" => {
            let key = if kind == "Schedule" { "Schedule" } else { "ScheduleExpression" };
            let expr = p.get(key).and_then(Value::as_str).ok_or_else(|| template_err(format!("{at}: {key} is missing")))?;
            let mut enabled = p.get("Enabled").and_then(Value::as_bool).unwrap_or(true) && p.get("State").and_then(Value::as_str).unwrap_or("ENABLED") == "ENABLED";
            let every = if let Some(fields) = expr.strip_prefix("cron(").and_then(|e| e.strip_suffix(')')) {
                // Calendar schedules (the monthly report) are not played on a timer here: no local
                // session waits for the 1st of the month. The function is still run by `invoke`.
                if fields.split_whitespace().count() != 6 {
                    return Err(template_err(format!("{at}: {expr:?} is not cron(minutes hours day-of-month month day-of-week year)")));
                }
                tracing::info!(function = fid, event = name, schedule = expr, "calendar schedule not played by the local runner; run it with `alkasba-runner invoke`");
                enabled = false;
                Duration::from_secs(24 * 3600)
            } else {
                parse_rate(expr).map_err(|e| template_err(format!("{at}: {e}")))?
            };
            EventSpec::Schedule { name: name.into(), every, scheduler: kind == "ScheduleV2", input: p.get("Input").and_then(Value::as_str).map(str::to_string), enabled }
        }
        "SQS" => {
            let queue = p.get("Queue").cloned().ok_or_else(|| template_err(format!("{at}: Queue is missing")))?;
            let batch_size = number(p.get("BatchSize"), 10.0, &format!("{at} BatchSize"))? as u32;
            if !(1..=10_000).contains(&batch_size) {
                return Err(template_err(format!("{at}: BatchSize {batch_size} is outside 1..=10000")));
            }
            let window = number(p.get("MaximumBatchingWindowInSeconds"), 0.0, &format!("{at} window"))?;
            if batch_size > 10 && window <= 0.0 {
                return Err(template_err(format!("{at}: BatchSize above 10 needs MaximumBatchingWindowInSeconds, as on AWS")));
            }
            let report = p.get("FunctionResponseTypes").and_then(Value::as_array).is_some_and(|a| a.iter().any(|t| t == "ReportBatchItemFailures"));
            EventSpec::Sqs {
                name: name.into(),
                queue,
                batch_size,
                batching_window: Duration::from_secs_f64(window),
                report_batch_item_failures: report,
                max_concurrency: p.pointer("/ScalingConfig/MaximumConcurrency").and_then(Value::as_u64).map(|n| n as u32),
                enabled: p.get("Enabled").and_then(Value::as_bool).unwrap_or(true),
            }
        }
        "HttpApi" | "Api" => {
            EventSpec::Http { name: name.into(), method: p.get("Method").and_then(Value::as_str).map(str::to_string), path: p.get("Path").and_then(Value::as_str).map(str::to_string) }
        }
        other => {
            tracing::warn!(function = fid, event = name, kind = other, "event type not played by the local runner; ignored");
            return Ok(None);
        }
    }))
}

/// Parses `rate(N unit)` into a duration. `cron(...)` is refused with a clear message.
pub fn parse_rate(expr: &str) -> std::result::Result<Duration, String> {
    let expr = expr.trim();
    if expr.starts_with("cron(") {
        return Err(format!("{expr:?}: cron schedules are not played by the local runner yet; use rate(...)"));
    }
    let inner = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')).ok_or_else(|| format!("{expr:?} is not rate(N unit)"))?;
    let mut parts = inner.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("{expr:?} is not rate(N unit)"));
    };
    let n: u64 = n.parse().map_err(|_| format!("{expr:?}: {n:?} is not a whole number"))?;
    if n == 0 {
        return Err(format!("{expr:?}: the rate must be at least 1"));
    }
    let secs = match unit {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        other => return Err(format!("{expr:?}: unit {other:?} is not minute(s), hour(s) or day(s)")),
    };
    Ok(Duration::from_secs(n * secs))
}

/// Turns YAML (with CloudFormation short-form tags) into JSON with long-form intrinsics.
fn yaml_to_json(v: serde_yaml_ng::Value) -> Result<Value> {
    use serde_yaml_ng::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).map_err(|e| template_err(e.to_string()))?,
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect::<Result<_>>()?),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => return Err(template_err(format!("unsupported mapping key {other:?}"))),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = yaml_to_json(tagged.value)?;
            let (key, value) = match tag {
                "Ref" => ("Ref".to_string(), inner),
                "Condition" => ("Condition".to_string(), inner),
                "GetAtt" => {
                    let value = match inner {
                        Value::String(s) => {
                            let (res, attr) = s.split_once('.').ok_or_else(|| template_err(format!("!GetAtt {s}: expected Resource.Attribute")))?;
                            Value::Array(vec![res.into(), attr.into()])
                        }
                        other => other,
                    };
                    ("Fn::GetAtt".to_string(), value)
                }
                other => (format!("Fn::{other}"), inner),
            };
            Value::Object(Map::from_iter([(key, value)]))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 30
    MemorySize: 256
    Environment:
      Variables:
        SHARED: !Ref Bucket
Resources:
  Bucket:
    Type: AWS::S3::Bucket
  Q:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: probe
    Properties:
      Timeout: 5
      Environment:
        Variables:
          TABLE: !Sub "s3://${Bucket}/t"
      Events:
        Tick:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(5 minutes)
            Input: '{"t": "<aws.scheduler.scheduled-time>"}'
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt Q.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
        Web:
          Type: HttpApi
"#;

    #[test]
    fn reads_functions_with_globals_and_events() {
        let t = Template::parse(T).unwrap();
        let f = t.function("probe").unwrap();
        assert_eq!(f.timeout, Duration::from_secs(5));
        assert_eq!(f.memory_mb, 256);
        assert_eq!(f.environment["SHARED"], serde_json::json!({"Ref": "Bucket"}));
        assert_eq!(f.environment["TABLE"], serde_json::json!({"Fn::Sub": "s3://${Bucket}/t"}));
        assert_eq!(f.events.len(), 3);
        let ev = |n: &str| f.events.iter().find(|e| e.name() == n).unwrap();
        assert!(matches!(ev("Tick"), EventSpec::Schedule { every, scheduler: true, .. } if every.as_secs() == 300));
        assert!(matches!(ev("Web"), EventSpec::Http { .. }));
        match ev("Work") {
            EventSpec::Sqs { queue, batch_size, report_batch_item_failures, .. } => {
                assert_eq!(queue, &serde_json::json!({"Fn::GetAtt": ["Q", "Arn"]}));
                assert_eq!(*batch_size, 5);
                assert!(report_batch_item_failures);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("rate(1 minute)").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_rate("rate(2 hours)").unwrap(), Duration::from_secs(7200));
        assert!(parse_rate("rate(0 minutes)").is_err());
        assert!(parse_rate("rate(5 weeks)").unwrap_err().contains("weeks"));
        assert!(parse_rate("cron(0 12 * * ? *)").unwrap_err().contains("cron"));
    }

    #[test]
    fn clear_errors_for_bad_templates() {
        let err = Template::parse("Resources: [").unwrap_err().to_string();
        assert!(err.contains("YAML"), "{err}");
        let no_binary = "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {}\n";
        let err = Template::parse(no_binary).unwrap_err().to_string();
        assert!(err.contains("Binary") && err.contains("F"), "{err}");
        let big = T.replace("BatchSize: 5", "BatchSize: 50");
        let err = Template::parse(&big).unwrap_err().to_string();
        assert!(err.contains("MaximumBatchingWindowInSeconds"), "{err}");
    }
}
