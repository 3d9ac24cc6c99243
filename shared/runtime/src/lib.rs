//! What every function's `main.rs` would otherwise repeat:
//!
//! * [`secrets`]: secrets read by reference (`SecretRef`, `${stack}` resolved) from Secrets
//!   Manager or SSM, behind the [`SecretSource`] port, with an in-memory fake.
//! * [`sqs`]: the invocation's deadline as a tokio instant, and the SQS partial-batch-failure
//!   response built from each message's outcome (retry, or done).
//! * [`metrics`]: the `metrics` facade's recorder for a Lambda function, flushed as one CloudWatch
//!   Embedded Metric Format document per invocation.

mod error;
pub mod metrics;
pub mod secrets;
pub mod sqs;

pub use error::{Error, Result};
pub use secrets::{AwsSecrets, SecretSource, StaticSecrets};
pub use sqs::{BatchFailures, deadline};
