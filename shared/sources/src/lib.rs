//! Declarative REST sources.
//!
//! A source is one TOML file in `config/sources/`: base URL, authentication (by reference to a
//! secret, never the secret itself), retry and rate limits, and its streams, each with a path,
//! where the records are, a primary key, an optional incremental cursor, its personal-data
//! fields and its paginator. A new REST API needs only a new file.
//!
//! ```toml
//! [source]
//! name = "alkasba_store"
//! base_url = "http://127.0.0.1:8787"
//! auth = { type = "basic", secret = "secretsmanager:${stack}/store/credentials", username_key = "consumer_key", password_key = "consumer_secret" }
//!
//! [[stream]]
//! name = "orders"
//! path = "/wp-json/wc/v3/orders"
//! primary_key = ["/id"]
//! in_clear = ["/id", "/status", "/total", "/date_modified_gmt"]
//! cursor = { field = "/date_modified_gmt", param = "modified_after", lookback_secs = 60 }
//! paginator = { type = "page_number", size = 100, total_pages_header = "X-WP-TotalPages" }
//! ```

mod config;
mod error;
mod paginate;
pub mod raw;

pub use config::{
    Auth, Cursor, FieldSpec, FieldType, Format, Paginator, RateLimit, RetryPolicy, Rule, SecretRef, SecretStore, Source, SourceFile, Stream, covers, load_dir, load_file, parse, top_level,
    transport_is_safe,
};
pub use error::{Error, Result};

mod shipped_files {
    include!(concat!(env!("OUT_DIR"), "/shipped_sources.rs"));
}

/// The shipped source files (`config/sources/*.toml`, embedded at build time so a function needs
/// no packaged config directory), parsed.
pub fn shipped() -> Result<Vec<SourceFile>> {
    shipped_files::SHIPPED.iter().map(|(name, text)| parse(&format!("config/sources/{name}"), text)).collect()
}

pub use paginate::{MAX_PAGES, Next, Page, first_url, next_page, page_count, page_url, total_pages, with_param};
