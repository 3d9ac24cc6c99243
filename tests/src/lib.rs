//! Helpers shared by the integration tests: LocalStack, stacks, binaries, SDK clients.
//!
//! Every test deploys its own stack (so its own bucket and queues) under a unique name and
//! deletes it at the end, so tests run in parallel without seeing each other's data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub const ENDPOINT: &str = "http://127.0.0.1:4566";

/// The repository root. From the runtime `CARGO_MANIFEST_DIR` (set by cargo and nextest): a test
/// binary reused from a build in another checkout (CI's shared target dir) would carry that
/// checkout's compile-time path.
pub fn repo() -> PathBuf {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    Path::new(&manifest).parent().expect("tests/ has a parent").to_path_buf()
}

/// The directory holding the built binaries: this test's target profile dir, or
/// `ALKASBA_BIN_DIR` (what `scripts/test-packaged.sh` assembles: deployment packages unpacked as
/// `<function>/bootstrap`, the workspace's binaries beside them), which the runner takes alike.
pub fn bin_dir() -> PathBuf {
    let dir = match std::env::var_os("ALKASBA_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("test binary path");
            // target/<profile>/deps/<test> -> target/<profile>
            exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
        }
    };
    for bin in ["heartbeat", "planner", "fetcher", "dashboard", "alkasba", "probe", "alkasba-runner", "alkasba-sim"] {
        let found = dir.join(bin).is_file() || dir.join(bin).join("bootstrap").is_file();
        assert!(found, "{} is missing: build the binaries first (cargo build --bins)", dir.join(bin).display());
    }
    dir
}

/// Credentials and region for LocalStack, set once for the whole test process before any
/// thread reads the environment.
pub fn local_env() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        for (k, v) in [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")] {
            if std::env::var_os(k).is_none() {
                // SAFETY: called once, first thing in every test, before the test spawns threads
                // that read the environment (the SDK reads it when a client is built).
                unsafe { std::env::set_var(k, v) };
            }
        }
    });
}

/// Starts LocalStack unless a healthy one is running (the script is idempotent and locked).
pub fn ensure_localstack() -> Result<()> {
    local_env();
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            let out = Command::new(repo().join("localstack/start.sh")).output().map_err(|e| e.to_string())?;
            if out.status.success() { Ok(()) } else { Err(format!("localstack/start.sh failed:\n{}", String::from_utf8_lossy(&out.stderr))) }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// A unique, valid stack name for a test.
pub fn unique(prefix: &str) -> String {
    format!("it-{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

pub async fn sdk() -> aws_config::SdkConfig {
    local_env();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(ENDPOINT).load().await
}

/// A stack deployed for one test; `cleanup` empties its bucket and deletes it.
pub struct Stack {
    pub name: String,
    pub outputs: HashMap<String, String>,
}

impl Stack {
    /// Deploys `template` with localstack/provision.sh. `lint` runs cfn-lint first (slow: the
    /// real template is linted by its own test, fixtures skip it).
    pub fn deploy(prefix: &str, template: &Path, lint: bool) -> Result<Self> {
        Self::deploy_with(prefix, template, lint, &[])
    }

    /// [`Stack::deploy`] with template parameters.
    pub fn deploy_with(prefix: &str, template: &Path, lint: bool, parameters: &[(&str, &str)]) -> Result<Self> {
        ensure_localstack()?;
        let name = unique(prefix);
        let started = Instant::now();
        let mut cmd = Command::new(repo().join("localstack/provision.sh"));
        cmd.arg(&name).arg(template);
        if !lint {
            cmd.env("ALKASBA_SKIP_LINT", "1");
        }
        let params: Vec<String> = parameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        cmd.env("ALKASBA_STACK_PARAMETERS", params.join(" "));
        let out = cmd.output().context("running localstack/provision.sh")?;
        if !out.status.success() {
            bail!("provision {name} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        let outputs = String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_once('\t').map(|(k, v)| (k.to_string(), v.to_string()))).collect();
        eprintln!("deployed {name} in {:.1}s", started.elapsed().as_secs_f64());
        Ok(Stack { name, outputs })
    }

    pub fn output(&self, key: &str) -> &str {
        self.outputs.get(key).map(String::as_str).unwrap_or_else(|| panic!("stack {} has no output {key}", self.name))
    }

    /// Deletes what the stack created for the test (buckets emptied first, queues, topics),
    /// then asks CloudFormation to delete the stack. LocalStack 4.10 leaves the stack record in
    /// DELETE_IN_PROGRESS (its delete validation ignores the functions' condition), so the
    /// resources are removed directly; the record goes with the LocalStack process.
    pub async fn cleanup(self) {
        let cfg = sdk().await;
        let s3 = aws_sdk_s3::Client::new(&cfg);
        let sqs = aws_sdk_sqs::Client::new(&cfg);
        let cfn = aws_sdk_cloudformation::Client::new(&cfg);
        if let Ok(res) = cfn.list_stack_resources().stack_name(&self.name).send().await {
            for r in res.stack_resource_summaries() {
                let Some(id) = r.physical_resource_id() else { continue };
                match r.resource_type() {
                    Some("AWS::S3::Bucket") => {
                        empty_bucket(&s3, id).await;
                        let _ = s3.delete_bucket().bucket(id).send().await;
                    }
                    Some("AWS::SQS::Queue") => {
                        let _ = sqs.delete_queue().queue_url(id).send().await;
                    }
                    _ => {}
                }
            }
        }
        let _ = cfn.delete_stack().stack_name(&self.name).send().await;
    }
}

/// One stored version of an object (or a delete marker) in a versioned bucket.
#[derive(Debug, Clone)]
pub struct ObjectVersion {
    pub key: String,
    pub version_id: Option<String>,
    pub is_latest: bool,
    pub delete_marker: bool,
}

/// Every version and delete marker in `bucket` (ListObjectVersions, page by page: the SDK has
/// no paginator for it).
pub async fn object_versions(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<ObjectVersion> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let Ok(page) = s3.list_object_versions().bucket(bucket).set_key_marker(key_marker.clone()).set_version_id_marker(version_marker.clone()).send().await else { break };
        for v in page.versions() {
            out.push(ObjectVersion { key: v.key().unwrap_or_default().into(), version_id: v.version_id().map(str::to_string), is_latest: v.is_latest().unwrap_or(false), delete_marker: false });
        }
        for m in page.delete_markers() {
            out.push(ObjectVersion { key: m.key().unwrap_or_default().into(), version_id: m.version_id().map(str::to_string), is_latest: m.is_latest().unwrap_or(false), delete_marker: true });
        }
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        (key_marker, version_marker) = (page.next_key_marker().map(str::to_string), page.next_version_id_marker().map(str::to_string));
    }
    out
}

async fn empty_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    // Versioned (the lake bucket): every version and delete marker, or the bucket stays.
    for v in object_versions(s3, bucket).await {
        let _ = s3.delete_object().bucket(bucket).key(&v.key).set_version_id(v.version_id).send().await;
    }
}

/// Runs SQL with DuckDB over LocalStack S3 (tools/duckdb/lake_sql.py): the independent reader.
pub fn duckdb(sql: &str) -> Result<Vec<serde_json::Value>> {
    local_env();
    let python = repo().join(".local/venv/bin/python");
    let out = Command::new(&python)
        .arg(repo().join("tools/duckdb/lake_sql.py"))
        .arg(sql)
        .env("AWS_ENDPOINT_URL", ENDPOINT)
        .output()
        .with_context(|| format!("running {} (install with localstack/install.sh)", python.display()))?;
    if !out.status.success() {
        bail!("DuckDB query failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Polls `check` until it returns Some, at most `limit`; the condition, not a fixed sleep, is
/// what the tests wait for.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts the simulator's signed webhook run against `url` (`rate` deliveries/s for `secs`, with
/// `incidents`) and waits, at most `limit`, until the simulator reports it finished; returns its
/// delivery log (`ping_status`, `deliveries` with each one's `status` and `signature`).
pub async fn sim_webhook_run(base: &str, url: &str, rate: u32, secs: u32, incidents: serde_json::Value, limit: Duration) -> serde_json::Value {
    let client = reqwest::Client::new();
    let r = client.post(format!("{base}/_sim/webhooks/start")).json(&serde_json::json!({"url": url, "rate": rate, "duration_secs": secs, "incidents": incidents})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
    eventually(limit, "the simulator's webhook run ends", || async {
        let log: serde_json::Value = client.get(format!("{base}/_sim/webhooks/log")).send().await.ok()?.json().await.ok()?;
        (log["running"] == serde_json::json!(false)).then_some(log)
    })
    .await
}

/// The id realtime gives a delivered payload: its HMAC, the hex of WooCommerce's base64
/// `X-WC-Webhook-Signature`.
pub fn payload_id(signature: &str) -> String {
    hex::encode(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, signature).unwrap())
}

/// The processes of function binary `binary` that serve `stack` (their environment has
/// `LAKE_ROOT` of that stack's bucket): tests that kill instances must never touch those of
/// tests running beside them.
pub fn function_pids(binary: &str, stack: &Stack) -> Vec<u32> {
    let out = Command::new("pgrep").arg("-f").arg(bin_dir().join(binary)).output().map(|o| o.stdout).unwrap_or_default();
    let needle = format!("LAKE_ROOT={}", stack.output("LakeRoot"));
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/environ")).map(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes())).unwrap_or(false))
        .collect()
}

/// The simulator credentials matching the secrets `stack` generated.
pub async fn sim_credentials(stack: &str) -> alkasba_sim::Credentials {
    let sm = aws_sdk_secretsmanager::Client::new(&sdk().await);
    let get = |name: String| {
        let sm = sm.clone();
        async move {
            let v = sm.get_secret_value().secret_id(&name).send().await.unwrap();
            serde_json::from_str::<serde_json::Value>(v.secret_string().unwrap()).unwrap()
        }
    };
    let store = get(format!("{stack}/store/credentials")).await;
    let mut c = alkasba_sim::Credentials::random();
    c.consumer_key = store["consumer_key"].as_str().unwrap().into();
    c.consumer_secret = store["consumer_secret"].as_str().unwrap().into();
    c.feed_api_key = get(format!("{stack}/feeds/competitor-prices")).await["api_key"].as_str().unwrap().into();
    c.fx_token = get(format!("{stack}/feeds/exchange-rates")).await["token"].as_str().unwrap().into();
    c.webhook_secret = get(format!("{stack}/store/webhook-secret")).await["secret"].as_str().unwrap().into();
    c
}

/// The stack's lake.
pub fn lake(stack: &Stack) -> alkasba_lake::Lake {
    alkasba_lake::Lake::new(stack.output("LakeRoot"), alkasba_lake::StorageConfig { endpoint_url: Some(ENDPOINT.into()), region: "us-east-1".into() }).unwrap()
}

/// Plans `streams` through the planner binary (as of `run_date`, `YYYY-MM-DD`, or now); every
/// stream must plan. Returns the run ids it opened.
pub async fn plan(runner: &alkasba_runner::Runner, streams: &[&str], run_date: Option<&str>) -> Vec<String> {
    let mut event = serde_json::json!({"streams": streams});
    if let Some(d) = run_date {
        event["run_date"] = serde_json::json!(d);
    }
    let inv = runner.invoke("PlannerFunction", &event).await.unwrap();
    let alkasba_runner::Outcome::Success(v) = &inv.outcome else { panic!("planner failed: {:?}", inv.outcome) };
    assert_eq!(v["failed"], serde_json::json!([]), "{v}");
    v["planned"].as_array().unwrap().iter().filter_map(|p| p["run_id"].as_str().map(str::to_string)).collect()
}

/// Waits (at most `limit`) until every run of `runs` is recorded as completed in the ledger.
pub async fn wait_completed(lake: &alkasba_lake::Lake, runs: &[String], limit: Duration) {
    eventually(limit, "every run completed in the ledger", || async {
        let states = alkasba_ingest::runs::states(lake).await.ok()?;
        runs.iter().all(|r| states.values().any(|s| s.completed.contains(r))).then_some(())
    })
    .await;
}

/// One automaton finding any of the simulator's customers' emails, phones and full names (a
/// scan is linear in the text, whatever the number of needles): the plaintext-PII detector.
pub fn personal_data_finder(store: &alkasba_sim::store::Store) -> aho_corasick::AhoCorasick {
    use alkasba_sim::store::Resource;
    let mut needles = Vec::new();
    for id in 1..=store.len(Resource::Customers) as u32 {
        let c = store.render(Resource::Customers, id);
        needles.push(c["email"].as_str().unwrap_or_default().to_string());
        needles.push(c["billing"]["phone"].as_str().unwrap_or_default().to_string());
        needles.push(format!("{} {}", c["first_name"].as_str().unwrap_or_default(), c["last_name"].as_str().unwrap_or_default()));
    }
    needles.retain(|s| s.len() > 6);
    aho_corasick::AhoCorasick::new(&needles).expect("needles build an automaton")
}

/// The first CloudWatch Embedded Metric Format document in a function's log (the runner's
/// `<LogicalId>.log`) carrying `metric`, if any.
pub fn emf(log: &Path, metric: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(&l[l.find('{')?..]).ok()).find(|v| v.get(metric).is_some() && v["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "AlkasbaLake")
}
