//! `realtime` Lambda (SQS): wiring only. The logic is `alkasba_realtime::engine`.

use alkasba_lake::StorageConfig;
use alkasba_realtime::aws::{DeltaSink, S3State, SnsAlerts};
use alkasba_realtime::engine::Engine;
use alkasba_realtime::rules::RulesFile;
use alkasba_realtime::settings::Settings;
use alkasba_runtime::BatchFailures;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    alkasba_telemetry::init();
    let metrics = alkasba_runtime::metrics::init()?;
    let settings = Settings::from_env()?;
    let rules = RulesFile::load(settings.rules_file.as_deref())?;
    let sdk = aws_config::load_from_env().await;
    let lake = alkasba_lake::Lake::new(&settings.lake_root, StorageConfig::from_env()?)?;
    let engine =
        Engine { rules, store: S3State::new(&lake)?, alerts: SnsAlerts::new(&sdk, settings.need(&settings.alerts_topic_arn, "ALERTS_TOPIC_ARN")?), lake: DeltaSink::new(lake)?, flush: settings.flush };
    tracing::info!(rules = engine.rules.rules.len(), "realtime ready");
    let engine = &engine;
    alkasba_runtime::metrics::run(metrics, move |event: LambdaEvent<serde_json::Value>| async move {
        // The scheduled tick: write what is pending to the lake, however little.
        if event.payload.get("Records").is_none() {
            let flushed = engine.flush().await?;
            tracing::info!(flushed, "tick");
            return Ok::<serde_json::Value, Error>(serde_json::json!({ "flushed": flushed }));
        }
        let event = LambdaEvent { payload: serde_json::from_value::<SqsEvent>(event.payload)?, context: event.context };
        let mut failures = BatchFailures::default();
        let mut events = Vec::new();
        let mut ids = Vec::new();
        for m in event.payload.records {
            let id = m.message_id.clone().unwrap_or_default();
            match alkasba_realtime::event::parse(&id, m.body.as_deref().unwrap_or_default()) {
                Ok(e) => {
                    events.push(e);
                    ids.push(id);
                }
                // Stays on the queue, then the redrive policy moves it to the DLQ.
                Err(e) => {
                    tracing::error!(error = %e, "bad message");
                    failures.retry(id);
                }
            }
        }
        let span = tracing::info_span!("batch", events = events.len());
        match engine.process(events).instrument(span).await {
            Ok(report) => tracing::info!(
                events = report.events,
                duplicates = report.duplicates,
                outdated = report.outdated,
                alerts = report.alerts.len(),
                generation = report.generation,
                attempts = report.attempts,
                flushed = report.flushed,
                commit_ms = report.commit_ms,
                lake_ms = report.lake_ms,
                publish_ms = report.publish_ms,
                total_ms = report.total_ms,
                "applied"
            ),
            Err(e) => {
                tracing::error!(error = %e, retryable = e.is_retryable(), "batch failed; SQS retries it");
                ids.into_iter().for_each(|id| failures.retry(id));
            }
        }
        Ok::<serde_json::Value, Error>(serde_json::to_value(failures.into_response())?)
    })
    .await
}
