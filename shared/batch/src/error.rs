/// Everything that can go wrong in the batch layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong or missing configuration: permanent until someone fixes it.
    #[error("configuration: {0}")]
    Config(String),

    /// Reading or writing a Delta table failed.
    #[error("{uri}: {source}")]
    Delta { uri: String, source: Box<deltalake::DeltaTableError> },

    /// A query (a transform's or a mart's SQL) failed.
    #[error("{what}: {reason}")]
    Query { what: String, reason: String },

    /// A table's content cannot be turned into silver rows (a bug or an unexpected shape).
    #[error("{what}: {reason}")]
    Data { what: String, reason: String },

    /// A lease another job holds (an erasure, or the jobs an erasure waits for): retried later.
    #[error("{what} is held by {holder} until {until} at the latest; run again after it")]
    Busy { what: String, holder: String, until: chrono::DateTime<chrono::Utc> },

    /// The lake crates failed.
    #[error(transparent)]
    Lake(#[from] alkasba_lake::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether running the job again later may succeed (a scheduled job is simply retried by the
    /// next tick; an invocation that failed this way reports an error so Lambda retries it).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_) | Error::Data { .. } => false,
            Error::Query { .. } => false,
            Error::Busy { .. } => true,
            Error::Delta { source, .. } => matches!(
                source.as_ref(),
                deltalake::DeltaTableError::ObjectStore { .. }
                    | deltalake::DeltaTableError::Io { .. }
                    | deltalake::DeltaTableError::VersionAlreadyExists(_)
                    | deltalake::DeltaTableError::Transaction { .. }
            ),
            Error::Lake(e) => e.is_retryable(),
        }
    }

    pub(crate) fn delta(uri: &url::Url, source: deltalake::DeltaTableError) -> Self {
        Error::Delta { uri: uri.to_string(), source: Box::new(source) }
    }

    pub(crate) fn query(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        Error::Query { what: what.to_string(), reason: e.to_string() }
    }
}
