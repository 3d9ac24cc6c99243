//! The dashboard's one error type.

/// Everything that can go wrong answering the dashboard.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong or missing configuration (environment, the access secret): permanent until fixed.
    #[error("configuration: {0}")]
    Config(String),

    /// A request parameter that is missing or malformed: the caller's mistake (400).
    #[error("parameter {param}: {reason}")]
    BadParam { param: String, reason: String },

    /// No query, page or asset by that name (404).
    #[error("not found: {0}")]
    NotFound(String),

    /// A table a query needs has not been built yet (the forecast before its first run): 404
    /// with a code the page uses to hide what depends on it.
    #[error("table {0} does not exist yet")]
    NoTable(String),

    /// No valid session, or a wrong access key (401).
    #[error("not signed in: {0}")]
    Unauthorized(&'static str),

    /// A query failed to plan or run (a bug in the catalogue or a table whose schema moved).
    #[error("query {query}: {reason}")]
    Query { query: String, reason: String },

    /// Reading an object (assets, the live view) failed.
    #[error("object {path}: {reason}")]
    Object { path: String, reason: String },

    /// The lake (tables, the object store).
    #[error(transparent)]
    Lake(#[from] alkasba_lake::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether trying again later may succeed (storage), as opposed to a bad request, a missing
    /// table or configuration.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_) | Error::BadParam { .. } | Error::NotFound(_) | Error::NoTable(_) | Error::Unauthorized(_) | Error::Query { .. } => false,
            Error::Object { .. } => true,
            Error::Lake(e) => e.is_retryable(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadParam { .. } => 400,
            Error::Unauthorized(_) => 401,
            Error::NotFound(_) | Error::NoTable(_) => 404,
            e if e.is_retryable() => 503,
            _ => 500,
        }
    }

    /// A short machine-readable code for the page.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::BadParam { .. } => "bad_param",
            Error::NotFound(_) => "not_found",
            Error::NoTable(_) => "no_table",
            Error::Unauthorized(_) => "unauthorized",
            Error::Query { .. } => "query",
            Error::Object { .. } | Error::Lake(_) => "storage",
        }
    }

    pub(crate) fn bad(param: &str, reason: impl Into<String>) -> Self {
        Error::BadParam { param: param.to_string(), reason: reason.into() }
    }
}
