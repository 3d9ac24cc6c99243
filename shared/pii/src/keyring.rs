use std::sync::Arc;

use alkasba_lake::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, StringBuilder, TimestampMicrosecondArray};
use alkasba_lake::arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};
use alkasba_lake::arrow::record_batch::RecordBatch;
use alkasba_lake::{StorageConfig, read};
use chrono::{DateTime, Utc};
use url::Url;

use crate::{KmsContext, Result};

/// The keyring has no partitions: it is small, and erasure rewrites it whole.
pub const KEYRING_PARTITION: Option<&str> = None;

/// One person key, wrapped by a KMS data key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyringRow {
    /// The person's token (HMAC of their email), or a record-scoped stand-in.
    pub subject: String,
    /// Names the key inside every value sealed with it.
    pub key_id: String,
    /// `nonce | AES-256-GCM(data key, person key)`, bound to key id and subject.
    pub wrapped_key: Vec<u8>,
    /// The data key, encrypted by KMS.
    pub kms_blob: Vec<u8>,
    /// The KMS encryption context the data key was made under (needed to decrypt it); shared
    /// by a session's rows, not copied into each.
    pub kms_context: Arc<KmsContext>,
    /// When the key was made.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for KeyringRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringRow").field("subject", &self.subject).field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// The keyring table's schema.
pub fn keyring_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("subject", DataType::Utf8, false),
        Field::new("key_id", DataType::Utf8, false),
        Field::new("wrapped_key", DataType::Binary, false),
        Field::new("kms_blob", DataType::Binary, false),
        Field::new("created_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        // JSON object; nullable: rows written before encryption contexts existed have none.
        Field::new("kms_context", DataType::Utf8, true),
    ]))
}

/// Rows as one batch for appending.
pub fn keyring_batch(rows: &[KeyringRow]) -> Result<RecordBatch> {
    // A session's rows share its context: written as JSON once per run of equal contexts, not
    // once per row (a row per new person: most records on a first load, issue 20).
    let mut runs: Vec<(&Arc<KmsContext>, String, usize)> = Vec::new();
    for r in rows {
        match runs.last_mut() {
            Some((c, _, count)) if **c == r.kms_context => *count += 1,
            _ => runs.push((&r.kms_context, serde_json::to_string(&r.kms_context).unwrap_or_default(), 1)),
        }
    }
    let mut contexts = StringBuilder::with_capacity(rows.len(), runs.iter().map(|(_, json, count)| json.len() * count).sum());
    for (_, json, count) in &runs {
        (0..*count).for_each(|_| contexts.append_value(json));
    }
    let contexts = contexts.finish();
    // Each column sized for its values before it is filled: from an iterator the values' buffer
    // doubles as it grows, copying what it holds into pages not touched before (with a row
    // per new person on a first load, a fetcher's keyring batch was 8% of its page faults,
    // `perf record -e page-faults`, issue 20).
    fn strings<'a>(n: usize, values: impl Iterator<Item = &'a str> + Clone) -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, values.clone().map(str::len).sum());
        values.for_each(|v| b.append_value(v));
        Arc::new(b.finish())
    }
    fn binaries<'a>(n: usize, values: impl Iterator<Item = &'a [u8]> + Clone) -> ArrayRef {
        let mut b = BinaryBuilder::with_capacity(n, values.clone().map(<[u8]>::len).sum());
        values.for_each(|v| b.append_value(v));
        Arc::new(b.finish())
    }
    let n = rows.len();
    let cols: Vec<ArrayRef> = vec![
        strings(n, rows.iter().map(|r| r.subject.as_str())),
        strings(n, rows.iter().map(|r| r.key_id.as_str())),
        binaries(n, rows.iter().map(|r| r.wrapped_key.as_slice())),
        binaries(n, rows.iter().map(|r| r.kms_blob.as_slice())),
        Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.created_at.timestamp_micros())).with_timezone("UTC")),
        Arc::new(contexts),
    ];
    Ok(RecordBatch::try_new(keyring_schema(), cols).map_err(alkasba_lake::Error::from)?)
}

/// The keyring rows of `key_ids` (all rows when `None`); empty when there is no keyring yet.
pub async fn read_keyring(uri: &Url, storage: &StorageConfig, key_ids: Option<&[String]>) -> Result<Vec<KeyringRow>> {
    let Some(table) = read::open_table(uri, storage).await? else {
        return Ok(Vec::new());
    };
    let filter = key_ids.map(|ids| read::Filter::is_in("key_id", ids.iter().map(String::as_str)));
    let batches = read::select(&table, filter.as_ref(), &[]).await?;
    let mut out = Vec::new();
    for b in batches {
        let s = |i: usize| read::strings(b.column(i));
        let bin = |i: usize| read::binaries(b.column(i));
        let (subject, key_id, wrapped, blob) = (s(0)?, s(1)?, bin(2)?, bin(3)?);
        let created = b.column(4).as_primitive::<TimestampMicrosecondType>().clone();
        let context = match b.schema().index_of("kms_context") {
            Ok(i) => Some(s(i)?),
            Err(_) => None,
        };
        for i in 0..b.num_rows() {
            if subject.is_null(i) {
                continue;
            }
            out.push(KeyringRow {
                subject: subject.value(i).to_string(),
                key_id: key_id.value(i).to_string(),
                wrapped_key: wrapped.value(i).to_vec(),
                kms_blob: blob.value(i).to_vec(),
                kms_context: Arc::new(context.as_ref().filter(|c| !c.is_null(i)).and_then(|c| serde_json::from_str(c.value(i)).ok()).unwrap_or_default()),
                created_at: DateTime::from_timestamp_micros(created.value(i)).unwrap_or_default(),
            });
        }
    }
    Ok(out)
}
