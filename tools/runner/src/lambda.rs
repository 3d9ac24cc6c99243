//! Runs a real function binary as AWS Lambda would: each instance is a process that talks to its
//! own emulated Runtime API (`AWS_LAMBDA_RUNTIME_API`), gets one invocation at a time, and is
//! stopped when it overruns its timeout or memory limit, exits, or reports an init error.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};

use crate::{Error, Result};

/// How long an instance may take from process start to asking for its first event (AWS: 10 s).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a running invocation's memory is sampled.
const MEMORY_SAMPLE: Duration = Duration::from_millis(20);

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The function answered.
    Success(Value),
    /// The function reported an error through the Runtime API.
    FunctionError { error_type: String, message: String },
    /// The instance failed to initialise (init error, crash or init timeout).
    InitError(String),
    /// The invocation overran the function's timeout; the instance was stopped.
    Timeout(Duration),
    /// The process exceeded the function's memory size; the instance was stopped.
    OutOfMemory { rss_mb: u64, limit_mb: u64 },
    /// The process exited during the invocation.
    Crashed(String),
}

impl Outcome {
    /// Whether the invocation succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success(_))
    }
    /// A short label for logs and summaries.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success(_) => "ok",
            Outcome::FunctionError { .. } => "function-error",
            Outcome::InitError(_) => "init-error",
            Outcome::Timeout(_) => "timeout",
            Outcome::OutOfMemory { .. } => "out-of-memory",
            Outcome::Crashed(_) => "crashed",
        }
    }
}

/// The result of one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub outcome: Outcome,
    pub duration: Duration,
    /// The instance was started for this invocation.
    pub cold_start: bool,
    /// Peak resident memory of the instance since it started (the kernel's high-water mark,
    /// `VmHWM`), in MiB: what Lambda reports as "Max Memory Used".
    pub peak_rss_mb: u64,
    /// On a cold start: from process start until the runtime asked for its first event (Lambda's
    /// "Init Duration").
    pub init_duration: Option<Duration>,
}

/// Everything needed to start instances of one function.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// Logical id, used as the function name.
    pub name: String,
    /// Path of the binary.
    pub binary: PathBuf,
    /// How the binary is started: directly, or under an emulator when it is built for another
    /// architecture (`emulate`).
    pub launcher: crate::emulate::Launcher,
    pub timeout: Duration,
    pub memory_mb: u64,
    /// Environment (resolved template variables plus AWS settings).
    pub env: HashMap<String, String>,
    /// Where the instances' stdout/stderr are appended (one file per function), if anywhere.
    pub log_file: Option<PathBuf>,
    /// Also echo instance output on the runner's stderr, prefixed with the function name.
    pub echo_logs: bool,
    /// The ARN reported to the function.
    pub function_arn: String,
}

struct Pending {
    request_id: String,
    event: Bytes,
    deadline_ms: u64,
    reply: oneshot::Sender<Reply>,
}

enum Reply {
    Response(Bytes),
    Error { error_type: String, body: Bytes },
}

#[derive(Default)]
struct ApiState {
    next: Mutex<Option<mpsc::Receiver<Pending>>>,
    in_flight: std::sync::Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    picked_up: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    init_error: std::sync::Mutex<Option<oneshot::Sender<String>>>,
    function_arn: String,
}

/// One running execution environment.
struct Instance {
    child: Child,
    pid: u32,
    invocations: mpsc::Sender<Pending>,
    state: Arc<ApiState>,
    server: tokio::task::JoinHandle<()>,
    initialised: bool,
    init_error: Option<oneshot::Receiver<String>>,
    spawned: Instant,
    init_duration: Option<Duration>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        kill_group(self.pid);
        self.server.abort();
    }
}

fn kill_group(pid: u32) {
    // SAFETY: plain kill(2) on the process group we created for the instance.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
}

/// Resident set size of `pid` in MiB, from /proc (Linux). Hand-written: it is one line of procfs
/// and no crate is needed for it.
fn rss_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    // The high-water mark, not the current size: a short spike between samples still counts.
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

async fn next_invocation(State(state): State<Arc<ApiState>>) -> Response {
    let mut guard = state.next.lock().await;
    let Some(rx) = guard.as_mut() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "runtime API closed").into_response();
    };
    let Some(p) = rx.recv().await else {
        return (StatusCode::GONE, "instance shutting down").into_response();
    };
    if let Ok(mut picked) = state.picked_up.lock()
        && let Some(tx) = picked.take()
    {
        let _ = tx.send(());
    }
    if let Ok(mut map) = state.in_flight.lock() {
        map.insert(p.request_id.clone(), p.reply);
    }
    let mut headers = HeaderMap::new();
    let h = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    headers.insert("lambda-runtime-aws-request-id", h(&p.request_id));
    headers.insert("lambda-runtime-deadline-ms", h(&p.deadline_ms.to_string()));
    headers.insert("lambda-runtime-invoked-function-arn", h(&state.function_arn));
    headers.insert("lambda-runtime-trace-id", h(&format!("Root=1-{}", p.request_id)));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, p.event).into_response()
}

fn finish(state: &ApiState, id: &str, reply: Reply) -> Response {
    let tx = state.in_flight.lock().ok().and_then(|mut m| m.remove(id));
    match tx {
        Some(tx) => {
            let _ = tx.send(reply);
            (StatusCode::ACCEPTED, axum::Json(serde_json::json!({"status": "OK"}))).into_response()
        }
        None => (StatusCode::BAD_REQUEST, "unknown or finished request id").into_response(),
    }
}

async fn invocation_response(State(s): State<Arc<ApiState>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    finish(&s, &id, Reply::Response(body))
}

async fn invocation_error(State(s): State<Arc<ApiState>>, UrlPath(id): UrlPath<String>, headers: HeaderMap, body: Bytes) -> Response {
    let error_type = headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).unwrap_or("Unhandled").to_string();
    finish(&s, &id, Reply::Error { error_type, body })
}

async fn init_error(State(s): State<Arc<ApiState>>, body: Bytes) -> Response {
    if let Some(tx) = s.init_error.lock().ok().and_then(|mut g| g.take()) {
        let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
    }
    (StatusCode::ACCEPTED, axum::Json(serde_json::json!({"status": "OK"}))).into_response()
}

impl Instance {
    async fn start(cfg: &FunctionConfig, index: usize) -> Result<Self> {
        let ferr = |reason: String| Error::Function { function: cfg.name.clone(), reason };
        if !cfg.binary.is_file() {
            return Err(ferr(format!("binary {} not found (build it: cargo build --bins)", cfg.binary.display())));
        }
        let (tx, rx) = mpsc::channel(1);
        let (init_tx, init_rx) = oneshot::channel();
        let state = Arc::new(ApiState { next: Mutex::new(Some(rx)), init_error: std::sync::Mutex::new(Some(init_tx)), function_arn: cfg.function_arn.clone(), ..Default::default() });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(invocation_response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| Error::Listen { addr: "127.0.0.1:0".into(), reason: e.to_string() })?;
        let addr = listener.local_addr().map_err(|e| Error::Listen { addr: "127.0.0.1:0".into(), reason: e.to_string() })?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let mut cmd = Command::new(&cfg.launcher.program);
        cmd.args(&cfg.launcher.args)
            .env_clear()
            .envs(inherited_env())
            .envs(&cfg.env)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &cfg.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", cfg.memory_mb.to_string())
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", cfg.name))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("local/{index}"))
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("LAMBDA_TASK_ROOT", cfg.binary.parent().unwrap_or(std::path::Path::new(".")))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = cmd.spawn().map_err(|e| ferr(format!("cannot start {}: {e}", cfg.binary.display())))?;
        let pid = child.id().ok_or_else(|| ferr("process exited at once".into()))?;
        let label = format!("{}#{index}", cfg.name);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_lines(out, label.clone(), cfg.log_file.clone(), cfg.echo_logs));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_lines(err, label, cfg.log_file.clone(), cfg.echo_logs));
        }
        Ok(Self { child, pid, invocations: tx, state, server, initialised: false, init_error: Some(init_rx), spawned, init_duration: None })
    }

    /// Runs one invocation. Returns the outcome and whether the instance is still usable.
    async fn invoke(&mut self, cfg: &FunctionConfig, request_id: &str, event: Bytes) -> (Outcome, bool, u64) {
        let (picked_tx, picked_rx) = oneshot::channel();
        if let Ok(mut g) = self.state.picked_up.lock() {
            *g = Some(picked_tx);
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        let pending = Pending { request_id: request_id.to_string(), event, deadline_ms: epoch_ms() + cfg.timeout.as_millis() as u64, reply: reply_tx };
        if self.invocations.send(pending).await.is_err() {
            return (Outcome::Crashed("runtime API closed".into()), false, 0);
        }
        let mut peak = rss_mb(self.pid).unwrap_or(0);

        // Phase 1: the runtime picks the event up (bounded by the init timeout on a cold start).
        if !self.initialised {
            let mut init_rx = self.init_error.take();
            let init_err = async {
                match init_rx.as_mut() {
                    Some(rx) => rx.await.ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = picked_rx => {
                    self.initialised = true;
                    self.init_duration = Some(self.spawned.elapsed());
                }
                Some(msg) = init_err => return (Outcome::InitError(format!("init error: {msg}")), false, peak),
                status = self.child.wait() => {
                    return (Outcome::InitError(format!("exited during init: {}", describe_exit(status))), false, peak);
                }
                _ = tokio::time::sleep(INIT_TIMEOUT) => {
                    return (Outcome::InitError(format!("did not ask for an event within {INIT_TIMEOUT:?}")), false, peak);
                }
            }
        } else {
            // A warm instance is already waiting in `next`.
            let _ = picked_rx.await;
        }
        let started = Instant::now();

        // Phase 2: the invocation runs until it answers, overruns, blows its memory or dies.
        let mut sampler = tokio::time::interval(MEMORY_SAMPLE);
        let timeout = tokio::time::sleep(cfg.timeout);
        tokio::pin!(timeout);
        tokio::pin!(reply_rx);
        loop {
            tokio::select! {
                reply = &mut reply_rx => {
                    return match reply {
                        Ok(Reply::Response(body)) => {
                            let value = serde_json::from_slice(&body)
                                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
                            (Outcome::Success(value), true, peak)
                        }
                        Ok(Reply::Error { error_type, body }) => {
                            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let message = v.get("errorMessage").and_then(Value::as_str)
                                .map(str::to_string)
                                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                            let error_type = v.get("errorType").and_then(Value::as_str).map(str::to_string).unwrap_or(error_type);
                            (Outcome::FunctionError { error_type, message }, true, peak)
                        }
                        Err(_) => (Outcome::Crashed("runtime API dropped the invocation".into()), false, peak),
                    };
                }
                _ = &mut timeout => {
                    return (Outcome::Timeout(started.elapsed()), false, peak);
                }
                status = self.child.wait() => {
                    return (Outcome::Crashed(describe_exit(status)), false, peak);
                }
                _ = sampler.tick() => {
                    if let Some(rss) = rss_mb(self.pid) {
                        peak = peak.max(rss);
                        if rss > cfg.memory_mb {
                            return (Outcome::OutOfMemory { rss_mb: rss, limit_mb: cfg.memory_mb }, false, peak);
                        }
                    }
                }
            }
        }
    }
}

fn describe_exit(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => format!("process exited ({s})"),
        Err(e) => format!("process wait failed: {e}"),
    }
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The few variables a process needs from the runner's environment (as Lambda gives a clean one).
fn inherited_env() -> Vec<(String, String)> {
    ["PATH", "HOME", "TZ", "LANG", "RUST_BACKTRACE", "SSL_CERT_FILE"].iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect()
}

async fn forward_lines(stream: impl tokio::io::AsyncRead + Unpin, label: String, log_file: Option<PathBuf>, echo: bool) {
    let mut lines = BufReader::new(stream).lines();
    let mut file = match &log_file {
        Some(p) => tokio::fs::OpenOptions::new().create(true).append(true).open(p).await.ok(),
        None => None,
    };
    while let Ok(Some(line)) = lines.next_line().await {
        if echo {
            eprintln!("[{label}] {line}");
        }
        if let Some(f) = file.as_mut() {
            let _ = f.write_all(format!("{line}\n").as_bytes()).await;
        }
    }
}

/// A function's instances: up to `concurrency` processes, reused while warm, replaced when one
/// times out, runs out of memory or crashes.
pub struct FunctionPool {
    cfg: FunctionConfig,
    /// Free slots (a slot holds its instance while warm). A std mutex: a slot taken by an
    /// invocation is given back by [`Taken`]'s drop, even when the invocation is cancelled.
    idle: std::sync::Mutex<Vec<(usize, Option<Instance>)>>,
    permits: Semaphore,
}

/// A slot taken from the pool. Dropped without [`Taken::give_back`] (the invocation's future was
/// cancelled: an HTTP client went away, the runner stopped), the slot returns empty and its
/// instance, maybe mid-invocation, is stopped, so the pool never loses a slot.
struct Taken<'a> {
    pool: &'a FunctionPool,
    index: usize,
    given_back: bool,
}

impl Taken<'_> {
    fn give_back(mut self, instance: Option<Instance>) {
        self.given_back = true;
        self.pool.put(self.index, instance);
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.given_back {
            self.pool.put(self.index, None);
        }
    }
}

impl FunctionPool {
    /// A pool of at most `concurrency` instances. Nothing starts until the first invocation.
    pub fn new(cfg: FunctionConfig, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self { cfg, idle: std::sync::Mutex::new((0..concurrency).map(|i| (i, None)).collect()), permits: Semaphore::new(concurrency) }
    }

    /// The function's configuration.
    pub fn config(&self) -> &FunctionConfig {
        &self.cfg
    }

    /// Invokes the function with `event`, waiting for a free instance.
    pub async fn invoke(&self, event: &Value) -> Invocation {
        let request_id = uuid::Uuid::new_v4().to_string();
        let begun = Instant::now();
        let Ok(_permit) = self.permits.acquire().await else {
            return Invocation { request_id, outcome: Outcome::Crashed("pool closed".into()), duration: Duration::ZERO, cold_start: false, peak_rss_mb: 0, init_duration: None };
        };
        // Prefer a warm instance. The permit guarantees a free slot.
        let Some((index, slot)) = self.take() else {
            return Invocation {
                request_id,
                outcome: Outcome::Crashed("no free instance slot (a bug in the pool)".into()),
                duration: Duration::ZERO,
                cold_start: false,
                peak_rss_mb: 0,
                init_duration: None,
            };
        };
        let taken = Taken { pool: self, index, given_back: false };
        let cold_start = slot.is_none();
        let mut instance = match slot {
            Some(i) => i,
            None => match Instance::start(&self.cfg, index).await {
                Ok(i) => i,
                Err(e) => {
                    taken.give_back(None);
                    return Invocation { request_id, outcome: Outcome::InitError(e.to_string()), duration: begun.elapsed(), cold_start, peak_rss_mb: 0, init_duration: None };
                }
            },
        };
        let body = Bytes::from(serde_json::to_vec(event).unwrap_or_default());
        let (outcome, reusable, peak_rss_mb) = instance.invoke(&self.cfg, &request_id, body).await;
        let init_duration = instance.init_duration.take();
        if !reusable {
            tracing::warn!(function = %self.cfg.name, request_id, outcome = outcome.label(), "instance stopped");
        }
        taken.give_back(reusable.then_some(instance));
        Invocation { request_id, outcome, duration: begun.elapsed(), cold_start, peak_rss_mb, init_duration }
    }

    fn take(&self) -> Option<(usize, Option<Instance>)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let pos = idle.iter().position(|(_, i)| i.is_some()).unwrap_or(0);
        (pos < idle.len()).then(|| idle.swap_remove(pos))
    }

    fn put(&self, index: usize, instance: Option<Instance>) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push((index, instance));
    }

    /// Stops every idle instance.
    pub async fn shutdown(&self) {
        let stopped: Vec<Instance> = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.iter_mut().filter_map(|(_, slot)| slot.take()).collect()
        };
        drop(stopped);
    }
}
