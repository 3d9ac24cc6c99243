//! Delta Lake access for Alkasba Lake.
//!
//! * [`StorageConfig`]: how the lake's object store is reached (endpoint, region), read from the
//!   environment once at start-up.
//! * [`TableAppender`]: the port every job writes through; [`DeltaAppender`] is the real Delta
//!   implementation, [`MemoryAppender`] the in-memory fake for unit tests.
//! * [`Lake`]: the lake root, a cache of opened tables, and the one commit loop every writer
//!   uses (exactly-once appends under application transactions, bounded jittered retries).
//! * [`layout`]: the registry of every table (path, partitioning, maintenance).
//! * [`read`]: reading tables back: pruned lookups without a query engine, DataFusion scans with
//!   the `query` feature.
//! * [`options`]: reading a job's options from the environment, errors naming the variable.
//! * [`heartbeat`]: the scheduled job that proves the chain template → runner → Lambda → Delta.

mod error;
pub mod heartbeat;
pub mod lake;
pub mod layout;
mod log_cache;
pub mod options;
pub mod read;
mod select;
mod storage;
mod table;
mod write;
pub use write::{encode as encode_parquet, parquet_properties};

pub use error::{Error, Result};
pub use lake::{Append, Attempt, Lake, Pending, Written, commit_properties};
pub use storage::StorageConfig;
pub use table::{AppTransaction, Appended, DeltaAppender, MemoryAppender, TableAppender, is_conflict};

/// The global allocator of every binary that links this crate (every function, the runner's
/// tools, the tests): DataFusion and Delta allocate many small, short-lived buffers, and with
/// glibc's malloc an incremental gold run spent ~20% of its CPU in malloc/free (perf); mimalloc
/// made that run about twice as fast and the full gold build ~15% faster (docs/benchmarks.md,
/// batch). Set here, once, because this crate is what brings DataFusion and Delta in; a binary
/// that must keep the system allocator builds without the `mimalloc` feature.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Re-exported so callers build batches with the exact arrow version deltalake uses.
pub use deltalake::arrow;
