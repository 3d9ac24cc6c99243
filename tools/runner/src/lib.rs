//! The local event runner.
//!
//! AWS's event sources (EventBridge schedules, SQS event source mappings, Function URLs) and
//! Lambda itself cannot run on LocalStack here, so this crate plays them: it reads the SAM
//! template, resolves each function's environment against the stack deployed on LocalStack, and
//! runs the **real function binaries** behind an emulated Lambda Runtime API, with the template's
//! timeout, memory size, batch sizes, batching windows and `ReportBatchItemFailures`. Retries and
//! dead-letter queues come from SQS itself (visibility timeout and redrive policy), exactly as on
//! AWS.

pub mod emulate;
mod error;
pub mod lambda;
pub mod resolve;
pub mod sources;
pub mod template;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use tokio::sync::{broadcast, watch};

pub use error::{Error, Result};
pub use lambda::{FunctionConfig, FunctionPool, Invocation, Outcome};
pub use resolve::StackContext;
pub use sources::{Report, Trigger};
pub use template::{EventSpec, FunctionSpec, Template};

/// Runner settings. Defaults suit the local set-up (LocalStack on 127.0.0.1:4566).
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The SAM template (the same file deployed to LocalStack).
    pub template: PathBuf,
    /// The deployed stack whose resources the functions use.
    pub stack: String,
    /// Directory with the built function binaries (`target/debug` or `target/release`), or with
    /// unpacked deployment packages (`<binary>/bootstrap`, as `scripts/package.sh` builds them).
    pub bin_dir: PathBuf,
    /// AWS endpoint for the runner and the functions (LocalStack); `None` for real AWS.
    pub endpoint: Option<String>,
    /// Functions to run, by logical id or binary name; empty: all of them.
    pub functions: Vec<String>,
    /// Instances per function (Lambda's concurrency), unless an SQS mapping sets less.
    pub concurrency: usize,
    /// Schedules fire this many times faster than their rate (scheduled times stay realistic).
    pub speedup: f64,
    /// Fire each schedule once at start instead of after its first interval.
    pub fire_on_start: bool,
    /// First port for HTTP endpoints (one per function with HTTP events); 0: any free port.
    pub http_port: u16,
    /// Long-poll wait of each SQS ReceiveMessage.
    pub sqs_poll_wait: Duration,
    /// Directory for one log file per function; `None`: no files.
    pub log_dir: Option<PathBuf>,
    /// Echo function output on stderr.
    pub echo_logs: bool,
    /// Extra environment for every function (overrides the template).
    pub extra_env: HashMap<String, String>,
}

impl RunnerConfig {
    /// Settings for `template` and `stack` with local defaults.
    pub fn new(template: impl Into<PathBuf>, stack: impl Into<String>, bin_dir: impl Into<PathBuf>) -> Self {
        Self {
            template: template.into(),
            stack: stack.into(),
            bin_dir: bin_dir.into(),
            endpoint: Some("http://127.0.0.1:4566".into()),
            functions: Vec::new(),
            concurrency: 2,
            speedup: 1.0,
            fire_on_start: false,
            http_port: 0,
            sqs_poll_wait: Duration::from_secs(1),
            log_dir: None,
            echo_logs: false,
            extra_env: HashMap::new(),
        }
    }
}

/// A running set of functions and their event sources.
pub struct Runner {
    reports: broadcast::Sender<Report>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pools: HashMap<String, Arc<FunctionPool>>,
    http: HashMap<String, SocketAddr>,
    context: StackContext,
}

/// Loads the AWS configuration the runner and the functions share, failing clearly when no
/// credentials or region can be found. With a local endpoint (LocalStack) region and
/// credentials come from the environment or the profile only: the default chains would fall
/// through to EC2 instance metadata, a network request that has no business here.
pub async fn aws_config(endpoint: Option<&str>) -> Result<aws_config::SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(e) = endpoint {
        let region = std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION")).unwrap_or_else(|_| "us-east-1".into());
        let credentials = CredentialsProviderChain::first_try("Environment", EnvironmentVariableCredentialsProvider::new()).or_else("Profile", ProfileFileCredentialsProvider::builder().build());
        loader = loader.endpoint_url(e).region(aws_config::Region::new(region)).credentials_provider(credentials);
    } else {
        loader = loader.region(RegionProviderChain::default_provider().or_else("us-east-1"));
    }
    let config = loader.load().await;
    let provider = config.credentials_provider().ok_or_else(|| Error::Config("no AWS credentials provider; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (LocalStack accepts test/test)".into()))?;
    aws_credential_types::provider::ProvideCredentials::provide_credentials(&provider)
        .await
        .map_err(|e| Error::Config(format!("AWS credentials missing or unusable ({}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (LocalStack accepts test/test)", resolve::display_sdk(&e))))?;
    Ok(config)
}

impl Runner {
    /// Reads the template and the stack, and starts every selected function's event sources.
    pub async fn start(cfg: RunnerConfig) -> Result<Self> {
        if !(cfg.speedup > 0.0 && cfg.speedup.is_finite()) {
            return Err(Error::Config(format!("speed-up must be a positive number, got {}", cfg.speedup)));
        }
        let template = Template::load(&cfg.template)?;
        let selected: Vec<&FunctionSpec> = if cfg.functions.is_empty() {
            template.functions.iter().collect()
        } else {
            cfg.functions
                .iter()
                .map(|name| {
                    template.function(name).ok_or_else(|| {
                        let known: Vec<&str> = template.functions.iter().map(|f| f.logical_id.as_str()).collect();
                        Error::Config(format!("no function {name:?} in {} (known: {known:?})", cfg.template.display()))
                    })
                })
                .collect::<Result<_>>()?
        };
        let sdk = aws_config(cfg.endpoint.as_deref()).await?;
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        let context = StackContext::load(&aws_sdk_cloudformation::Client::new(&sdk), &cfg.stack, &region).await?;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        if let Some(dir) = &cfg.log_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::Config(format!("cannot create log dir {}: {e}", dir.display())))?;
        }

        let (reports, _) = broadcast::channel(4096);
        let (stop, stop_rx) = watch::channel(false);
        let mut runner = Runner { reports, stop, tasks: Vec::new(), pools: HashMap::new(), http: HashMap::new(), context };
        let mut next_port = cfg.http_port;
        for spec in selected {
            let pool = Arc::new(FunctionPool::new(runner.function_config(&cfg, spec, &region)?, cfg.concurrency));
            runner.pools.insert(spec.logical_id.clone(), pool.clone());
            let mut http_events: Vec<String> = spec.events.iter().filter(|e| matches!(e, EventSpec::Http { .. })).map(|e| e.name().to_string()).collect();
            if spec.function_url {
                http_events.push("FunctionUrl".into());
            }
            for ev in &spec.events {
                match ev {
                    EventSpec::Schedule { name, every, scheduler, input, enabled } => {
                        if !enabled {
                            continue;
                        }
                        let ctx = &runner.context;
                        let source = sources::ScheduleSource {
                            function: spec.logical_id.clone(),
                            event: name.clone(),
                            every: *every,
                            speedup: cfg.speedup,
                            scheduler: *scheduler,
                            input: input.clone(),
                            schedule_arn: if *scheduler {
                                format!("arn:aws:scheduler:{}:{}:schedule/{}/{}-{}", region, ctx.account_id, ctx.stack_name, spec.logical_id, name)
                            } else {
                                format!("arn:aws:events:{}:{}:rule/{}-{}{}", region, ctx.account_id, ctx.stack_name, spec.logical_id, name)
                            },
                            region: region.clone(),
                            account_id: ctx.account_id.clone(),
                            fire_on_start: cfg.fire_on_start,
                        };
                        runner.tasks.push(tokio::spawn(source.run(pool.clone(), runner.reports.clone(), stop_rx.clone())));
                    }
                    EventSpec::Sqs { name, queue, batch_size, batching_window, report_batch_item_failures, max_concurrency, enabled } => {
                        if !enabled {
                            continue;
                        }
                        let queue_arn = runner.context.resolve(queue)?;
                        let queue_url =
                            runner.context.queue_url_for_arn(&queue_arn).ok_or_else(|| Error::Resolve { what: queue_arn.clone(), reason: format!("no queue with that ARN in stack {}", cfg.stack) })?;
                        let source = sources::SqsSource {
                            function: spec.logical_id.clone(),
                            event: name.clone(),
                            queue_url,
                            queue_arn,
                            region: region.clone(),
                            batch_size: *batch_size,
                            batching_window: *batching_window,
                            report_batch_item_failures: *report_batch_item_failures,
                            concurrency: max_concurrency.map(|m| m as usize).unwrap_or(cfg.concurrency).min(cfg.concurrency),
                            poll_wait: cfg.sqs_poll_wait,
                        };
                        runner.tasks.push(tokio::spawn(source.run(pool.clone(), sqs.clone(), runner.reports.clone(), stop_rx.clone())));
                    }
                    EventSpec::Http { .. } => {}
                }
            }
            if let Some(event) = http_events.first() {
                let addr = SocketAddr::from(([127, 0, 0, 1], next_port));
                let bound = sources::serve_http(addr, pool.clone(), spec.logical_id.clone(), event.clone(), runner.reports.clone(), stop_rx.clone()).await?;
                tracing::info!(function = %spec.logical_id, url = %format!("http://{bound}"), "HTTP endpoint");
                runner.http.insert(spec.logical_id.clone(), bound);
                if next_port != 0 {
                    next_port += 1;
                }
            }
        }
        Ok(runner)
    }

    fn function_config(&self, cfg: &RunnerConfig, spec: &FunctionSpec, region: &str) -> Result<FunctionConfig> {
        // A cargo build's binary, or a deployment package unpacked as cargo-lambda lays it out.
        let built = cfg.bin_dir.join(&spec.binary);
        let packaged = built.join("bootstrap");
        let binary = if packaged.is_file() { packaged } else { built };
        if !binary.is_file() {
            return Err(Error::Function {
                function: spec.logical_id.clone(),
                reason: format!("binary {} not found; build it with `cargo build --bins` (or unpack its package as {})", binary.display(), cfg.bin_dir.join(&spec.binary).join("bootstrap").display()),
            });
        }
        let launcher =
            emulate::launcher(&binary, std::env::consts::ARCH, std::env::var_os("PATH"), std::path::Path::new("/")).map_err(|reason| Error::Function { function: spec.logical_id.clone(), reason })?;
        if let Some(arch) = launcher.emulated {
            tracing::info!(function = %spec.logical_id, arch, emulator = %launcher.program.display(), "running an emulated binary (correctness only: its timings are the emulator's)");
        }
        let mut env = HashMap::new();
        for (k, v) in &spec.environment {
            let value = self.context.resolve(v).map_err(|e| Error::Function { function: spec.logical_id.clone(), reason: format!("environment variable {k}: {e}") })?;
            env.insert(k.clone(), value);
        }
        env.insert("AWS_REGION".into(), region.to_string());
        env.insert("AWS_DEFAULT_REGION".into(), region.to_string());
        // Locally the function gets the runner's credentials (on AWS: its role's).
        for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            if let Ok(v) = std::env::var(k) {
                env.insert(k.into(), v);
            }
        }
        if let Some(e) = &cfg.endpoint {
            env.insert("AWS_ENDPOINT_URL".into(), e.clone());
        }
        env.extend(cfg.extra_env.clone());
        let timeout = match &spec.timeout_ref {
            None => spec.timeout,
            Some(v) => {
                let bad = |reason: String| Error::Function { function: spec.logical_id.clone(), reason: format!("Timeout: {reason}") };
                let secs: f64 = self.context.resolve(v).map_err(|e| bad(e.to_string()))?.parse().map_err(|_| bad("does not resolve to a number".into()))?;
                if !(1.0..=900.0).contains(&secs) {
                    return Err(bad(format!("{secs} is outside 1..=900 seconds")));
                }
                std::time::Duration::from_secs_f64(secs)
            }
        };
        Ok(FunctionConfig {
            name: spec.logical_id.clone(),
            binary,
            launcher,
            timeout,
            memory_mb: spec.memory_mb,
            env,
            log_file: cfg.log_dir.as_ref().map(|d| d.join(format!("{}.log", spec.logical_id))),
            echo_logs: cfg.echo_logs,
            function_arn: format!("arn:aws:lambda:{region}:{}:function:{}", self.context.account_id, spec.logical_id),
        })
    }

    /// Every invocation from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Report> {
        self.reports.subscribe()
    }

    /// The local URL of each function that has an HTTP endpoint.
    pub fn http_endpoints(&self) -> &HashMap<String, SocketAddr> {
        &self.http
    }

    /// The resolved stack.
    pub fn stack(&self) -> &StackContext {
        &self.context
    }

    /// Invokes a function (by logical id or binary name) directly, as `aws lambda invoke` would,
    /// outside any event source.
    pub async fn invoke(&self, function: &str, event: &serde_json::Value) -> Result<Invocation> {
        let pool = self
            .pools
            .get(function)
            .or_else(|| self.pools.values().find(|p| p.config().binary.file_name().is_some_and(|b| b == function)))
            .ok_or_else(|| Error::Config(format!("function {function:?} is not running")))?;
        Ok(pool.invoke(event).await)
    }

    /// Stops the event sources and every instance.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        for pool in self.pools.values() {
            pool.shutdown().await;
        }
    }
}
