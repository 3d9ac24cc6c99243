//! Personal data protection.
//!
//! Key hierarchy (crypto-shredding at ≤ 1 KMS request per invocation):
//!
//! ```text
//! KMS key (PiiKey, never leaves KMS)
//!   └─ data key: one GenerateDataKey per sealing session (one fetcher task), under an
//!      encryption context naming its source and stream
//!        └─ person key: 256 random bits per person per session, wrapped (AES-256-GCM) by the
//!           data key and stored in the keyring table with the data key's KMS blob
//!             └─ a record's sealed part: AES-256-GCM under the person key, bound to its place
//!                (table, record key, field)
//! ```
//!
//! A person is identified by the keyed token (HMAC-SHA256) of their email. Destroying every
//! keyring row of that token (and vacuuming the keyring's old files) makes all their ciphertext
//! in bronze, quarantine and error objects unreadable, history included, without touching those
//! tables. A session never decrypts anything, so steady-state ingestion costs one KMS request per
//! invocation; decryption costs one KMS request per distinct data key.

mod envelope;
mod error;
mod keyring;
mod keys;
mod token;

/// The KMS client type, re-exported so callers need no direct SDK dependency.
pub use aws_sdk_kms::Client as KmsClient;
pub use envelope::{Opener, Sealer, is_sealed, open_blob, place, seal_blob};
pub use error::{Error, Result};
pub use keyring::{KEYRING_PARTITION, KeyringRow, keyring_batch, keyring_schema, read_keyring};
pub use keys::{DataKey, KeyService, KmsContext, KmsKeys, LocalKeys, kms_context};
pub use token::{Tokenizer, normalize};
