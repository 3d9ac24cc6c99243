//! Metrics for alarms: libraries count through the `metrics` facade (`metrics::counter!`), which
//! costs nothing where no recorder is installed (tests, the CLI); a function's `main` installs
//! this recorder and runs its handler with [`run`], which writes one CloudWatch Embedded Metric
//! Format document to stdout after each invocation. CloudWatch Logs turns it into metrics in
//! [`NAMESPACE`] with the function's name as dimension, with no API call and no extra latency
//! (the alarms in the template are set on them). Written with `metrics_cloudwatch_embedded`
//! rather than by hand: it aggregates per invocation and keeps to the EMF limits.

use metrics_cloudwatch_embedded::Collector;

/// The CloudWatch namespace of every Alkasba Lake metric.
pub const NAMESPACE: &str = "AlkasbaLake";

/// The dimension naming the function (its deployed name; `local` outside Lambda).
pub const FUNCTION_DIMENSION: &str = "Function";

/// Installs the EMF recorder for this process (call once, at start-up).
pub fn init() -> Result<&'static Collector, lambda_runtime::Error> {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
    metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension(FUNCTION_DIMENSION, function)
        .with_lambda_request_id("RequestId")
        .init()
        .map_err(|e| format!("cannot install the metrics recorder: {e}").into())
}

/// Runs a Lambda handler with the recorder: the metrics it counted are flushed after each
/// invocation (and the runtime's tracing layer puts the request id on every log line).
pub use metrics_cloudwatch_embedded::lambda::handler::run;
