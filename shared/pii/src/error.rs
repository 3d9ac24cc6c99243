/// Everything that can go wrong protecting or revealing personal data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// KMS refused or failed (permissions, throttling, a missing key).
    #[error("KMS {operation} on {key}: {reason}")]
    Kms { operation: &'static str, key: String, reason: String, retryable: bool },

    /// A value could not be sealed or opened (wrong key, tampered or truncated ciphertext).
    #[error("{0}")]
    Crypto(String),

    /// A sealed value names a key that is not in the keyring (erased, or never committed).
    #[error("key {key_id} is not in the keyring (erased, or from a run that never committed)")]
    UnknownKey { key_id: String },

    /// A sealed value names a key destroyed by an erasure (a person's right to erasure).
    #[error("erased: key {key_id} was destroyed by an erasure on {erased_at}; the value can never be opened again")]
    Erased { key_id: String, erased_at: chrono::DateTime<chrono::Utc> },

    /// The token key is unusable.
    #[error("token key: {0}")]
    TokenKey(String),

    /// Reading or writing the keyring table failed.
    #[error(transparent)]
    Lake(#[from] alkasba_lake::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// KMS throttling and network failures are worth a retry; the rest are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Kms { retryable, .. } => *retryable,
            Error::Lake(e) => e.is_retryable(),
            _ => false,
        }
    }
}
