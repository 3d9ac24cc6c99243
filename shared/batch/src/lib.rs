//! The batch layer of Alkasba Lake.
//!
//! * [`silver`]: bronze → silver, incrementally (the bronze versions committed since the last
//!   one absorbed), cleaned, deduplicated to the latest version per key with MERGE, orders
//!   exploded to lines, enriched with products, categories and MAD amounts at the rate of the
//!   day. The `transform` function and `alkasba batch transform`.
//! * [`gold`]: silver → gold BI marts in SQL on DataFusion, incremental by touched dates,
//!   idempotent. The `aggregate` function and `alkasba batch aggregate`.
//! * [`maintain`]: compaction (z-order where it pays), checkpoints, vacuum and log clean-up,
//!   table by table under a lease. The `maintain` function and `alkasba batch maintain`.
//! * [`erase`]: a person's erasure (keys destroyed, tokens unlinked, audited). The `erase`
//!   function and `alkasba pii erase`.
//! * [`lease`]: leases in the object store: maintenance's per table, and the erasure fence the
//!   transform and the aggregate hold shared and an erasure exclusively.
//! * [`tables`]: the Delta plumbing both share (markers, change reads, MERGE, replaceWhere).
//!
//! Every commit carries Delta application-transaction markers naming the input versions it
//! absorbed, so a re-run, a redelivered event or a job killed half-way and run again never
//! applies anything twice, and concurrent runs of the same job cannot both commit the same work.

pub mod dictionary;
pub mod erase;
mod error;
pub mod forecast;
pub mod glue;
pub mod gold;
pub mod lease;
pub mod maintain;
pub mod registry;
pub mod settings;
pub mod silver;
pub mod tables;

pub use error::{Error, Result};
