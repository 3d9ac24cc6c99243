//! The dashboard's server side, run by the `dashboard` function behind a Function URL:
//!
//! * [`queries`]: the catalogue of named queries over the gold and ops tables (one idea: what
//!   the pages ask);
//! * [`engine`]: runs them with DataFusion over the Delta tables themselves, filters bound as
//!   typed parameters ([`params`]);
//! * [`http`]: the routes (pages from `_dashboard/` in the lake bucket, the queries, the live
//!   view) and access by signed session cookies ([`auth`]).
//!
//! The pages themselves are in `web/dashboard/` (served from the lake bucket, published by
//! `alkasba dashboard publish`); `docs/dashboard.md` says why the queries run here rather than
//! in the browser.

pub mod auth;
pub mod engine;
pub mod error;
pub mod http;
pub mod params;
pub mod queries;
pub mod report;

pub use error::{Error, Result};

#[cfg(test)]
mod tests;
