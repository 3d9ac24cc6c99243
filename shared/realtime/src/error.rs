/// Everything that can go wrong on the real-time path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong or missing configuration (environment, alert rules): permanent until fixed.
    #[error("configuration: {0}")]
    Config(String),

    /// A queue message that is not a store event of this version: permanent (goes to the DLQ).
    #[error("message {id}: {reason}")]
    BadMessage { id: String, reason: String },

    /// The state, outbox or live-view objects (S3) failed: retryable.
    #[error("state object {path}: {reason}")]
    State { path: String, reason: String },

    /// Another instance committed the state first: reload and apply again.
    #[error("state changed since it was read")]
    StateConflict,

    /// SQS or SNS failed.
    #[error("{service} {operation}: {reason}")]
    Aws { service: &'static str, operation: &'static str, reason: String },

    /// The lake (tables, commits).
    #[error(transparent)]
    Lake(#[from] alkasba_lake::Error),

    /// Validation and sealing of records.
    #[error(transparent)]
    Records(#[from] alkasba_records::Error),

    /// A source definition.
    #[error(transparent)]
    Source(#[from] alkasba_sources::Error),

    /// Sealing or key handling.
    #[error(transparent)]
    Pii(#[from] alkasba_pii::Error),

    /// Building an Arrow batch (a bug in our schema, never input data).
    #[error("building Arrow batch: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether trying again later may succeed (storage, queues, topics, lost races), as opposed
    /// to configuration or a malformed message.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_) | Error::BadMessage { .. } | Error::Arrow(_) => false,
            Error::State { .. } | Error::StateConflict | Error::Aws { .. } => true,
            Error::Lake(e) => e.is_retryable(),
            Error::Records(e) => e.is_retryable(),
            Error::Source(e) => e.is_retryable(),
            Error::Pii(e) => e.is_retryable(),
        }
    }
}
