/// Everything that can go wrong in the runner.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template cannot be read or is not what the runner understands.
    #[error("template {path}: {reason}")]
    Template { path: String, reason: String },

    /// A value in the template cannot be resolved against the deployed stack.
    #[error("cannot resolve {what}: {reason}")]
    Resolve { what: String, reason: String },

    /// The CloudFormation stack cannot be read (not deployed, LocalStack down, no credentials).
    #[error("stack {stack}: {reason}")]
    Stack { stack: String, reason: String },

    /// A function binary is missing or cannot be started.
    #[error("function {function}: {reason}")]
    Function { function: String, reason: String },

    /// A queue operation failed.
    #[error("queue {queue}: {reason}")]
    Queue { queue: String, reason: String },

    /// A local port cannot be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },

    /// The runner's own configuration is wrong.
    #[error("configuration: {0}")]
    Config(String),
}

/// Result alias for the runner.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the same operation may succeed later (a queue or stack call that hit a passing
    /// fault), as opposed to a mistake that needs a fix.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Queue { .. })
    }
}
