/// Everything that can go wrong when forecasting a series.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The series itself is unusable (empty, not finite, negative).
    #[error("bad series: {0}")]
    Input(String),
    /// The history is shorter than a model needs.
    #[error("{model} needs {needs} days of history, the series has {days}")]
    TooShort { model: &'static str, days: usize, needs: usize },
    /// A model failed to fit or forecast.
    #[error("{model}: {reason}")]
    Model { model: &'static str, reason: String },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether trying again may succeed: never, the computation is deterministic.
    pub fn is_retryable(&self) -> bool {
        false
    }
}
