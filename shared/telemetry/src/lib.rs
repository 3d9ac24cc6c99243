//! Logging for every Alkasba Lake binary.
//!
//! Inside Lambda (or whenever `ALKASBA_LOG_FORMAT=json`) logs are JSON lines with structured
//! fields, as CloudWatch Logs Insights expects, each with `spans`, the first of which carries the
//! invocation's `requestId` (query it as `spans.0.requestId`); on a terminal they are compact text. The level
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
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("ALKASBA_LOG_FORMAT").map(|f| f == "json").unwrap_or(false) || std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let _ = if json {
        // `try_init` also forwards the `log` records of dependencies, as the text format does.
        tracing_subscriber::util::SubscriberInitExt::try_init(json_subscriber(filter(), std::io::stderr)).map_err(|e| e.to_string())
    } else {
        tracing_subscriber::fmt().with_env_filter(filter()).with_writer(std::io::stderr).compact().try_init().map_err(|e| e.to_string())
    };
}

/// JSON lines: the event's fields at the top level, and `spans`, every span it is inside,
/// outermost first. The Lambda runtime's own span (`Lambda runtime invoke`, with `requestId`)
/// is the first, so every line names its invocation however deep our spans nest (with only the
/// current span, the request id was lost inside ours).
fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).json().with_current_span(false).with_span_list(true).flatten_event(true).without_time().finish()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_names_the_invocation_inside_nested_spans() {
        let buf = Buffer::default();
        let out = buf.clone();
        let sub = json_subscriber(EnvFilter::new("info"), move || out.clone());
        tracing::subscriber::with_default(sub, || {
            let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "req-7f3a");
            let _a = invoke.enter();
            let stream = tracing::info_span!("stream", id = "alkasba_store.orders");
            let _b = stream.enter();
            tracing::info!(pages = 3, "task done");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["message"], "task done");
        assert_eq!(line["pages"], 3);
        assert_eq!(line["spans"][0]["requestId"], "req-7f3a", "{line}");
        assert_eq!(line["spans"][1]["id"], "alkasba_store.orders", "{line}");
    }
}
