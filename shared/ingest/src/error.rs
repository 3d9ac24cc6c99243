/// Everything that can go wrong ingesting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong or missing configuration: permanent until someone fixes it.
    #[error("configuration: {0}")]
    Config(String),

    /// A source definition or page problem.
    #[error(transparent)]
    Source(#[from] alkasba_sources::Error),

    /// A Delta table read or write failed.
    #[error(transparent)]
    Lake(#[from] alkasba_lake::Error),

    /// A secret could not be read.
    #[error(transparent)]
    Secret(#[from] alkasba_runtime::Error),

    /// Turning records into rows failed.
    #[error(transparent)]
    Records(#[from] alkasba_records::Error),

    /// Sealing or key management failed.
    #[error("personal data protection: {0}")]
    Pii(alkasba_pii::Error),

    /// Building an Arrow batch failed (a bug, never input data).
    #[error("building a batch: {0}")]
    Batch(String),

    /// An AWS call failed.
    #[error("{service} {operation}: {reason}")]
    Aws { service: &'static str, operation: &'static str, reason: String, retryable: bool },

    /// A task message that cannot be understood or refers to unknown streams.
    #[error("task: {0}")]
    Task(String),

    /// The control store (run plans and progress markers) failed.
    #[error("control store {path}: {reason}")]
    Control { path: String, reason: String },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the same work may succeed later (the handler reports a batch item failure and SQS
    /// redelivers), as opposed to permanent problems that go to the dead-letter queue at once.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_) | Error::Task(_) | Error::Batch(_) => false,
            Error::Source(e) => e.is_retryable(),
            Error::Lake(e) => e.is_retryable() || matches!(e, alkasba_lake::Error::Query { .. }),
            Error::Pii(e) => e.is_retryable(),
            Error::Records(e) => e.is_retryable(),
            Error::Secret(e) => e.is_retryable(),
            Error::Aws { retryable, .. } => *retryable,
            Error::Control { .. } => true,
        }
    }

    pub(crate) fn aws<E: std::error::Error + 'static, R: std::fmt::Debug>(service: &'static str, operation: &'static str, e: aws_sdk_sqs::error::SdkError<E, R>) -> Self {
        use aws_sdk_sqs::error::SdkError;
        let retryable = matches!(e, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_));
        let reason = match &e {
            SdkError::ServiceError(s) => format!("{:?}", s.err()),
            other => other.to_string(),
        };
        let retryable = retryable || reason.contains("Throttl") || reason.contains("ServiceUnavailable");
        Error::Aws { service, operation, reason, retryable }
    }
}
