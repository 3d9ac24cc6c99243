/// Everything that can go wrong turning records into rows.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Sealing a personal field failed (KMS, keys).
    #[error("personal data protection: {0}")]
    Pii(alkasba_pii::Error),

    /// Building an Arrow batch failed (a bug in a stream's declared types, never input data).
    #[error("building a batch: {0}")]
    Batch(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the same records may be turned into rows later (a KMS hiccup), as opposed to a
    /// bug in the stream's declaration.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Pii(e) => e.is_retryable(),
            Error::Batch(_) => false,
        }
    }
}
