use deltalake::DeltaTableError;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required environment variable is not set.
    #[error("environment variable {name} is not set: {hint}")]
    MissingEnv { name: &'static str, hint: &'static str },

    /// An environment variable is set to something unusable.
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    InvalidEnv { name: &'static str, value: String, reason: String },

    /// A table location that is not a URL deltalake can open.
    #[error("table URI {uri:?} is invalid: {reason}")]
    InvalidTableUri { uri: String, reason: String },

    /// Delta Lake (object store, log, commit) failed.
    #[error("Delta table {uri}: {source}")]
    Delta {
        uri: String,
        #[source]
        source: Box<DeltaTableError>,
    },

    /// A read query failed.
    #[error("query on {uri}: {reason}")]
    Query { uri: String, reason: String },

    /// Building an Arrow batch failed (a bug in the caller's schema, never input data).
    #[error("building Arrow batch: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),

    /// A commit lost its race with other writers every time it was tried: the work is fine and
    /// may be tried again later.
    #[error("{uri}: lost {attempts} commit races in a row")]
    Contended { uri: String, attempts: usize },

    /// The triggering event could not be understood.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether retrying the same work later may succeed (a storage hiccup, a lost commit race),
    /// as opposed to a permanent problem (bad config, bad event) that must go to a DLQ.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Contended { .. } => true,
            Error::Delta { source, .. } => matches!(
                source.as_ref(),
                DeltaTableError::ObjectStore { .. }
                    | DeltaTableError::Io { .. }
                    | DeltaTableError::VersionAlreadyExists(_)
                    | DeltaTableError::CommitValidation { .. }
                    | DeltaTableError::Transaction { .. }
            ),
            _ => false,
        }
    }

    /// An object store failure while reading or writing the table at `uri`.
    pub fn delta_store(uri: &str, source: deltalake::ObjectStoreError) -> Self {
        Error::Delta { uri: uri.to_string(), source: Box::new(DeltaTableError::from(source)) }
    }

    pub fn delta(uri: &url::Url, source: DeltaTableError) -> Self {
        Error::Delta { uri: uri.to_string(), source: Box::new(source) }
    }
}
