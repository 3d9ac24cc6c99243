//! A stream's records, the same whether they come from a REST page or a webhook delivery:
//! validated against the stream's declared fields and rules ([`validate`]), given a key and a
//! version, tokens and sealed personal fields, and turned into bronze or quarantine rows as Arrow
//! batches ([`record`]).

mod bronze;
pub mod clear;
mod error;
mod pointer;
pub mod record;
pub mod validate;
mod wanted;

pub use bronze::BronzeRows;
pub use clear::{ClearFields, SEALED, merge};
pub use error::{Error, Result};
pub use record::{Origin, Prepared, Processed, QuarantineRow, Row, quarantine_batch};
