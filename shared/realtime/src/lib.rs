//! The real-time path of Alkasba Lake.
//!
//! * [`webhook`]: the `webhook` function's logic: signature ([`signature`]),
//!   validation and sealing with ingestion's stream definitions, enqueue ([`event`]).
//! * [`engine`] and [`state`]: the `realtime` function's logic: rolling windows, alert rules
//!   ([`rules`]), exactly-once application under S3 conditional writes, outbox to the lake
//!   (bronze events, alerts, keyring), alerts to SNS, and the live view.
//! * [`aws`]: the ports on S3, Delta, SQS and SNS; [`memory`]: in-memory ports for unit tests.

pub mod aws;
pub mod engine;
mod error;
pub mod event;
pub mod memory;
pub mod rules;
pub mod settings;
pub mod signature;
pub mod state;
pub mod webhook;

pub use error::{Error, Result};
