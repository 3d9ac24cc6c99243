/// Everything that can go wrong reading a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The secret could not be read (missing, no permission, the service down).
    #[error("secret {name}: {reason}")]
    Secret { name: String, reason: String, retryable: bool },

    /// The secret is there but is not what it must be (not a JSON object, no string value).
    #[error("secret {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A network failure or throttling is worth a retry; a missing or malformed secret is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Secret { retryable, .. } => *retryable,
            Error::Invalid { .. } => false,
        }
    }
}
