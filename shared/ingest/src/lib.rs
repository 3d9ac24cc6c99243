//! Ingestion: from declarative REST sources to validated, PII-sealed, exactly-once bronze Delta
//! tables.
//!
//! * [`planner`]: opens a run per stream (watermark, the store's newest change, pages) and
//!   enqueues [`task::FetchTask`]s.
//! * [`fetcher`]: runs a task: fetches pages ([`http`]), validates ([`validate`]), seals personal
//!   fields ([`record`], `alkasba-pii`), commits groups of pages to quarantine and bronze once
//!   (through `alkasba_lake::Lake`), progress in the same commits, and completes runs
//!   ([`runs`]).
//! * [`ports`]: queues and secret stores behind small traits, with AWS and in-memory versions.
//! * [`settings`]: every option's name, default and documentation.

pub mod catalog;
pub mod control;
pub mod crash;
mod error;
pub mod fetcher;
pub mod http;
pub mod pace;
pub mod planner;
pub mod ports;
pub mod runs;
pub mod settings;
pub mod task;
#[cfg(feature = "testkit")]
pub mod testkit;

/// Records to rows (validation, sealing, Arrow), shared with the webhook.
pub use alkasba_records as records;
pub use error::{Error, Result};
pub use fetcher::{Delivery, Ingest, MessageOutcome, TaskReport, Tuning};
