//! SQS-triggered functions: the invocation's deadline and the partial batch response.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};

/// The invocation's deadline (`Context::deadline`, epoch milliseconds) as a tokio instant.
pub fn deadline(deadline_ms: u64) -> tokio::time::Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
    tokio::time::Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// The messages of a batch to leave on the queue (`ReportBatchItemFailures`): SQS redelivers
/// them, and after the queue's `maxReceiveCount` moves them to its dead-letter queue; the others
/// are deleted.
#[derive(Debug, Default)]
pub struct BatchFailures {
    response: SqsBatchResponse,
}

impl BatchFailures {
    /// Leaves message `id` on the queue.
    pub fn retry(&mut self, id: impl Into<String>) {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id.into();
        self.response.batch_item_failures.push(failure);
    }

    /// How many messages stay.
    pub fn len(&self) -> usize {
        self.response.batch_item_failures.len()
    }

    /// Whether every message is done.
    pub fn is_empty(&self) -> bool {
        self.response.batch_item_failures.is_empty()
    }

    /// The response to return to Lambda.
    pub fn into_response(self) -> SqsBatchResponse {
        self.response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_retried_messages_are_reported() {
        let mut f = BatchFailures::default();
        assert!(f.is_empty());
        f.retry("a");
        f.retry(String::from("c"));
        let r = f.into_response();
        assert_eq!(r.batch_item_failures.iter().map(|i| i.item_identifier.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    }

    #[tokio::test]
    async fn a_deadline_in_the_past_is_now() {
        let d = deadline(1);
        assert!(d <= tokio::time::Instant::now());
    }
}
