//! Logging for every Alkasba Lake binary.
//!
//! Inside Lambda (or whenever `ALKASBA_LOG_FORMAT=json`) logs are JSON lines with structured
//! fields, as CloudWatch Logs Insights expects; on a terminal they are compact text. The level
//! comes from `RUST_LOG` (default [`DEFAULT_FILTER`]).

use tracing_subscriber::EnvFilter;

/// Our crates at `info`; the Delta kernel and DataFusion log every snapshot and scan at `info`,
/// which drowns everything else, so they start at `warn`. Three of their targets log at `error`
/// what is normal here and handled (and logged) by our code: probing a table that does not
/// exist yet (the kernel's snapshot builder and log listing) and a commit that lost an
/// optimistic-concurrency race we retry (the transaction module); they are off. The writer warns
/// on every commit that binary columns (the keyring's wrapped keys) get no statistics: by design.
pub const DEFAULT_FILTER: &str = "info,buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn,deltalake_aws=warn,datafusion=warn,aws_config=warn,\
buoyant_kernel::snapshot::builder=off,buoyant_kernel::log_segment_files=off,deltalake_core::kernel::transaction=off,\
deltalake_core::writer::stats=error";

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("ALKASBA_LOG_FORMAT").map(|f| f == "json").unwrap_or(false) || std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().with_current_span(true).with_span_list(false).flatten_event(true).without_time().try_init() } else { builder.compact().try_init() };
}
