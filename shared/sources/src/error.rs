/// Everything that can go wrong with source definitions and pages.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source file cannot be read.
    #[error("{file}: {reason}")]
    Read { file: String, reason: String },

    /// A source file is not valid: names the file, the key and the problem.
    #[error("{file}: {key}: {problem}")]
    Config { file: String, key: String, problem: String },

    /// A page does not have the shape the stream's paginator expects.
    #[error("stream {stream}: page {url}: {problem}")]
    Page { stream: String, url: String, problem: String },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Page-shape problems may be a truncated or malformed response: worth a retry. Config errors
    /// never are.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Page { .. })
    }
}
