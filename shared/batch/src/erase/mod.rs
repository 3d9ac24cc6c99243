//! Erasure of one person (GDPR article 17; Moroccan law 09-08, article 8): crypto-shredding,
//! tokens made unlinkable, an audit row.
//!
//! 1. **Find** the person: by email (its token) or by the shop's customer id, in every bronze
//!    table of the registry ([`catalogue::CUSTOMER_ID_COLUMNS`]), then by the email tokens those
//!    rows carry (guest orders placed with the same email). From their rows: every token they
//!    carry and the key id of every sealed value.
//! 2. **Destroy their keys**: the keyring rows of those key ids and of those tokens (a person's
//!    keys, including those of quarantined records) are deleted in one commit, and the keyring
//!    files that held them are removed at once (a lite vacuum with no retention: only files the
//!    log has removed, never a file a concurrent writer has uploaded and not yet committed).
//!    Every value sealed under those keys, in every version of every table, quarantine and
//!    real-time events included, can no longer be opened: their wrapped keys exist nowhere.
//!    Files that no commit references (a writer killed between upload and commit) are removed
//!    by `maintain`'s keyring vacuum, within its retention.
//! 3. **Unlink their tokens**: each token becomes a random pseudonym, the same in every table
//!    (bronze, silver, gold, alerts), so nobody holding the token key can find their rows by
//!    their email or phone, and gold's counts of distinct customers do not move. Superseded
//!    files still hold the old tokens until `maintain` vacuums them (the table's retention) and
//!    cleans expired logs (their statistics): within [`catalogue::DEADLINE_DAYS`].
//! 4. **Audit**: one row in `ops/erasures` (when, the request, the tokens and key ids
//!    concerned, what was done), never the person's data; written once per request id.
//!
//! Gold aggregates stay as they are: they hold no personal data, only counts and sums. An
//! erasure for a person the lake does not know succeeds, says so, and is audited.

pub mod catalogue;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use alkasba_lake::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use alkasba_lake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use alkasba_lake::layout::{self, Layer};
use alkasba_lake::{Attempt, Lake, commit_properties, is_conflict, read};
use alkasba_pii::{Opener, Tokenizer};
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::{Expr, col, lit};
use serde::Serialize;

use crate::{Error, Result, lease, registry, tables};
use catalogue::{CUSTOMER_ID_COLUMNS, DEADLINE_DAYS, EMAIL_TOKEN, PSEUDONYM_PREFIX, holds_tokens};

/// Who to erase: exactly one of an email or a customer id.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The person's email (as the shop knows it; case and spaces do not matter).
    #[serde(default)]
    pub email: Option<String>,
    /// The person's WooCommerce customer id.
    #[serde(default)]
    pub customer_id: Option<i64>,
    /// Names the request in the audit; a request seen again (a redelivered message) is
    /// audited once.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl Request {
    /// Checks that the request names one person.
    pub fn validate(&self) -> Result<()> {
        match (&self.email, self.customer_id) {
            (Some(_), Some(_)) => Err(Error::Config("an erasure names one person: an email or a customer id, not both".into())),
            (None, None) => Err(Error::Config("an erasure needs an email or a customer id".into())),
            (Some(e), None) if !e.contains('@') || e.trim().len() < 3 => Err(Error::Config("the email to erase is not an email address".into())),
            (None, Some(id)) if id < 1 => Err(Error::Config(format!("customer id {id} is not a WooCommerce customer id (they start at 1)"))),
            _ => Ok(()),
        }
    }

    fn requested_by(&self) -> &'static str {
        if self.email.is_some() { "email" } else { "customer_id" }
    }
}

/// An erasure request as it crosses the erasure queue: the customer id, or the email encrypted
/// by KMS (`email_kms`, under the lake key with [`request_context`]) so that no email sits on
/// the queue in plaintext. `alkasba pii erase --queue` sends this form.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueuedRequest {
    /// The WooCommerce customer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<i64>,
    /// The email, KMS-encrypted (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_kms: Option<String>,
    /// Names the request in the audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The KMS encryption context of a queued request's email.
pub fn request_context() -> alkasba_pii::KmsContext {
    alkasba_pii::KmsContext::from([("purpose".to_string(), "erasure-request".to_string())])
}

impl QueuedRequest {
    /// The request, its email decrypted by `keys` (the lake key).
    pub async fn open(self, keys: &alkasba_pii::KmsKeys) -> Result<Request> {
        let email = match &self.email_kms {
            None => None,
            Some(e) => {
                let plain = keys.decrypt_value(e, &request_context()).await.map_err(|e| Error::Config(format!("the request's email_kms does not decrypt: {e}")))?;
                Some(String::from_utf8(plain.to_vec()).map_err(|_| Error::Config("the request's email is not UTF-8".into()))?)
            }
        };
        Ok(Request { email, customer_id: self.customer_id, request_id: self.request_id })
    }
}

/// What an erasure did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub erasure_id: String,
    /// `erased`, or `no data` when the lake held nothing of the person.
    pub outcome: &'static str,
    pub erased_at: DateTime<Utc>,
    /// Tokens made unlinkable.
    pub tokens: usize,
    /// Person keys destroyed (keyring rows deleted).
    pub keys_destroyed: usize,
    /// Keyring files removed at once (they held the destroyed keys).
    pub keyring_files_removed: usize,
    /// Rows whose tokens became pseudonyms, per table.
    pub rows_pseudonymised: BTreeMap<String, usize>,
    /// By when every superseded copy is gone (see docs/security.md).
    pub complete_by: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Found {
    email_tokens: BTreeSet<String>,
    tokens: BTreeSet<String>,
    key_ids: BTreeSet<String>,
}

impl Found {
    fn take(&mut self, column: &str, value: &str) {
        if value.is_empty() || value.starts_with(PSEUDONYM_PREFIX) {
            return;
        }
        if column == EMAIL_TOKEN {
            self.email_tokens.insert(value.to_string());
        }
        self.tokens.insert(value.to_string());
    }

    fn take_sealed(&mut self, value: &str) {
        if let Some(id) = Opener::<alkasba_pii::LocalKeys>::key_id(value) {
            self.key_ids.insert(id.to_string());
        }
    }
}

/// Erases one person from the lake (see the module documentation).
///
/// Runs alone: it holds the lake's erasure fence exclusively ([`lease::fenced`]), so no
/// transform or aggregate step that read the person's rows before it commits them after it.
/// When such jobs are running it waits for them (up to [`lease::ERASURE_WAIT`]; then
/// [`Error::Busy`], retryable, the fence still marked for this request).
pub async fn erase(lake: &Lake, tokens: &Tokenizer, request: &Request) -> Result<Report> {
    request.validate()?;
    let erasure_id = request.request_id.clone().unwrap_or_else(uuid_like);
    lease::fenced(lake, &format!("erase:{erasure_id}"), lease::Mode::Exclusive, erase_fenced(lake, tokens, request, erasure_id.clone())).await
}

async fn erase_fenced(lake: &Lake, tokens: &Tokenizer, request: &Request, erasure_id: String) -> Result<Report> {
    let erased_at = Utc::now();
    let mut found = Found::default();
    if let Some(email) = &request.email {
        let t = tokens.token(email);
        found.email_tokens.insert(t.clone());
        found.tokens.insert(t);
    }
    find(lake, request.customer_id, &mut found).await?;
    tracing::info!(erasure = %erasure_id, tokens = found.tokens.len(), sealed_keys = found.key_ids.len(), "person found");

    // Keys: those their rows name, and every key made for their tokens (quarantined records,
    // real-time events not yet in bronze).
    let ring = alkasba_pii::read_keyring(&lake.keyring()?, lake.storage(), None).await.map_err(pii)?;
    let doomed: BTreeSet<String> = ring.iter().filter(|r| found.key_ids.contains(&r.key_id) || found.tokens.contains(&r.subject)).map(|r| r.key_id.clone()).collect();
    let (keys_destroyed, keyring_files_removed) = destroy_keys(lake, &doomed).await?;
    tracing::info!(erasure = %erasure_id, keys_destroyed, keyring_files_removed, "keys destroyed");

    let rows_pseudonymised = pseudonymise(lake, &found.tokens).await?;
    let nothing = keys_destroyed == 0 && rows_pseudonymised.values().all(|n| *n == 0);
    let report = Report {
        erasure_id,
        outcome: if nothing { "no data" } else { "erased" },
        erased_at,
        tokens: found.tokens.len(),
        keys_destroyed,
        keyring_files_removed,
        rows_pseudonymised,
        complete_by: erased_at + chrono::Duration::days(DEADLINE_DAYS),
    };
    audit(lake, request, &report, &found.tokens, &doomed).await?;
    tracing::info!(erasure = %report.erasure_id, outcome = report.outcome, keys_destroyed, "erasure recorded in ops/erasures");
    Ok(report)
}

/// 122 random bits (a v4 UUID), as hex.
fn uuid_like() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn pii(e: alkasba_pii::Error) -> Error {
    match e {
        alkasba_pii::Error::Lake(l) => Error::Lake(l),
        other => Error::Data { what: "keyring".into(), reason: other.to_string() },
    }
}

/// The table's columns, each with whether it is text.
fn column_names(table: &DeltaTable) -> Result<Vec<(String, bool)>> {
    let uri = table.table_url().clone();
    let snapshot = table.snapshot().map_err(|e| Error::delta(&uri, e))?;
    Ok(snapshot.schema().fields().map(|f| (f.name().clone(), f.data_type() == &deltalake::kernel::DataType::STRING)).collect())
}

fn any_of(preds: Vec<Expr>) -> Option<Expr> {
    preds.into_iter().reduce(Expr::or)
}

/// Two passes over bronze: by customer id (or the email's token), then by the email tokens
/// found (their guest orders).
async fn find(lake: &Lake, customer_id: Option<i64>, found: &mut Found) -> Result<()> {
    let registry = registry::registry();
    for pass in 0..2 {
        if pass == 1 && customer_id.is_none() {
            break;
        }
        for spec in registry.tables().iter().filter(|t| t.layer == Layer::Bronze) {
            let Some(table) = tables::open(lake, &lake.table(&spec.path)?).await? else { continue };
            let columns = column_names(&table)?;
            let has = |c: &str| columns.iter().any(|(n, _)| n == c);
            let mut preds = Vec::new();
            if !found.email_tokens.is_empty() && has(EMAIL_TOKEN) {
                preds.push(col(EMAIL_TOKEN).in_list(found.email_tokens.iter().map(|t| lit(t.as_str())).collect(), false));
            }
            let stream = spec.path.rsplit('/').next().unwrap_or_default();
            if pass == 0
                && let Some(id) = customer_id
                && let Some((_, c)) = CUSTOMER_ID_COLUMNS.iter().find(|(s, c)| *s == stream && has(c))
            {
                preds.push(col(*c).eq(lit(id)));
            }
            let Some(filter) = any_of(preds) else { continue };
            let wanted: Vec<&str> = columns.iter().filter(|(n, text)| *text && (holds_tokens(&spec.path, n) || n == SEALED || n == "record")).map(|(n, _)| n.as_str()).collect();
            if wanted.is_empty() {
                continue;
            }
            for b in read::scan(&table, Some(filter), &wanted).await? {
                for (i, name) in wanted.iter().enumerate() {
                    let values = read::strings(b.column(i))?;
                    for r in (0..values.len()).filter(|r| !values.is_null(*r)) {
                        let v = values.value(r);
                        match *name {
                            SEALED => found.take_sealed(v),
                            // A real-time event's record: its sealed part sits inside the JSON.
                            "record" => {
                                if let Some(s) = serde_json::from_str::<serde_json::Value>(v).ok().and_then(|j| j.get(SEALED).and_then(|s| s.as_str()).map(str::to_string)) {
                                    found.take_sealed(&s);
                                }
                            }
                            n => found.take(n, v),
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// The column bronze keeps a record's sealed part in (`alkasba_records::SEALED`; this crate
/// reads bronze through the lake, not the records crate).
const SEALED: &str = "_sealed";

/// Deletes the keyring rows of `key_ids` and removes, at once, the files that held them.
async fn destroy_keys(lake: &Lake, key_ids: &BTreeSet<String>) -> Result<(usize, usize)> {
    if key_ids.is_empty() {
        return Ok((0, 0));
    }
    let uri = lake.keyring()?;
    without_change_feed(lake, &uri).await?;
    let predicate = col("key_id").in_list(key_ids.iter().map(|k| lit(k.as_str())).collect(), false);
    let (table, deleted) = lake
        .commit_with_retries(&uri, |table| {
            let (predicate, uri) = (predicate.clone(), uri.clone());
            async move {
                match table.delete().with_predicate(predicate).with_commit_properties(commit_properties()).await {
                    Ok((t, m)) => Ok::<_, Error>(Attempt::Done((t, m.num_deleted_rows.unwrap_or(key_ids.len())))),
                    Err(e) if is_conflict(&e) => Ok(Attempt::Contended),
                    Err(e) => Err(Error::delta(&uri, e)),
                }
            }
        })
        .await?;
    // Lite: only the files the log has removed (the delete's, and older ones), whatever their
    // age; files uploaded by a writer that has not committed yet are not in the log and stay.
    let (_, metrics) = table
        .vacuum()
        .with_mode(deltalake::operations::vacuum::VacuumMode::Lite)
        .with_retention_period(chrono::Duration::zero())
        .with_enforce_retention_duration(false)
        .with_commit_properties(commit_properties())
        .await
        .map_err(|e| Error::delta(&uri, e))?;
    Ok((deleted, metrics.files_deleted.len()))
}

/// Turns the change data feed off on a keyring created before it was off by default
/// (`alkasba_lake::lake::KEYRING_PROPERTIES`): with it on, a delete copies the deleted rows,
/// wrapped keys included, into `_change_data/` files that the log keeps referencing.
async fn without_change_feed(lake: &Lake, uri: &url::Url) -> Result<()> {
    let table = lake.current(uri).await?;
    let on = table.snapshot().ok().and_then(|s| s.metadata().configuration().get("delta.enableChangeDataFeed").cloned()).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if on {
        let props = std::collections::HashMap::from([("delta.enableChangeDataFeed".to_string(), "false".to_string())]);
        table.set_tbl_properties().with_properties(props).with_commit_properties(commit_properties()).await.map_err(|e| Error::delta(uri, e))?;
        tracing::info!(table = %uri, "keyring change data feed turned off");
    }
    Ok(())
}

/// Replaces each of `tokens` by one random pseudonym in every table that holds tokens.
async fn pseudonymise(lake: &Lake, tokens: &BTreeSet<String>) -> Result<BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    if tokens.is_empty() {
        return Ok(out);
    }
    let pseudonyms: HashMap<&str, String> = tokens.iter().map(|t| (t.as_str(), format!("{PSEUDONYM_PREFIX}{}", uuid_like()))).collect();
    let list: Vec<Expr> = tokens.iter().map(|t| lit(t.as_str())).collect();
    for spec in registry::registry().tables() {
        if spec.path == layout::KEYRING || spec.path == layout::ERASURES {
            continue;
        }
        let Some(table) = tables::open(lake, &lake.table(&spec.path)?).await? else { continue };
        let columns: Vec<String> = column_names(&table)?.into_iter().filter(|(n, text)| *text && holds_tokens(&spec.path, n)).map(|(n, _)| n).collect();
        let Some(predicate) = any_of(columns.iter().map(|c| col(c.as_str()).in_list(list.clone(), false)).collect()) else { continue };
        let matching: usize = read::scan(&table, Some(predicate.clone()), &[columns[0].as_str()]).await?.iter().map(|b| b.num_rows()).sum();
        if matching == 0 {
            continue;
        }
        let uri = lake.table(&spec.path)?;
        let updated = lake
            .commit_with_retries(&uri, |table| {
                let (predicate, uri) = (predicate.clone(), uri.clone());
                let (columns, pseudonyms) = (&columns, &pseudonyms);
                async move {
                    let mut update = table.update().with_predicate(predicate).with_commit_properties(commit_properties());
                    for c in columns {
                        update = update.with_update(c.as_str(), replace(c, pseudonyms).map_err(|e| Error::query(&uri, e))?);
                    }
                    match update.await {
                        Ok((_, m)) => Ok::<_, Error>(Attempt::Done(m.num_updated_rows)),
                        Err(e) if is_conflict(&e) => Ok(Attempt::Contended),
                        Err(e) => Err(Error::delta(&uri, e)),
                    }
                }
            })
            .await?;
        tracing::info!(table = %spec.path, rows = updated, "tokens pseudonymised");
        out.insert(spec.path.clone(), updated);
    }
    Ok(out)
}

/// `CASE WHEN c = t1 THEN p1 ... ELSE c END`.
fn replace(column: &str, pseudonyms: &HashMap<&str, String>) -> deltalake::datafusion::error::Result<Expr> {
    use deltalake::datafusion::logical_expr::conditional_expressions::CaseBuilder;
    use deltalake::datafusion::logical_expr::when;
    let mut pairs = pseudonyms.iter();
    let Some((t, p)) = pairs.next() else { return Ok(col(column)) };
    let mut case: CaseBuilder = when(col(column).eq(lit(*t)), lit(p.as_str()));
    for (t, p) in pairs {
        case = case.when(col(column).eq(lit(*t)), lit(p.as_str()));
    }
    case.otherwise(col(column))
}

fn audit_schema() -> Arc<Schema> {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("erasure_id", DataType::Utf8, false),
        Field::new("erased_at", ts(), false),
        Field::new("requested_by", DataType::Utf8, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("tokens", DataType::Utf8, false),
        Field::new("key_ids", DataType::Utf8, false),
        Field::new("keys_destroyed", DataType::Int64, false),
        Field::new("keyring_files_removed", DataType::Int64, false),
        Field::new("rows_pseudonymised", DataType::Utf8, false),
        Field::new("complete_by", ts(), false),
    ]))
}

async fn audit(lake: &Lake, request: &Request, report: &Report, tokens: &BTreeSet<String>, key_ids: &BTreeSet<String>) -> Result<()> {
    let json = |v: serde_json::Value| v.to_string();
    let ts = |t: DateTime<Utc>| Arc::new(TimestampMicrosecondArray::from(vec![t.timestamp_micros()]).with_timezone("UTC")) as ArrayRef;
    let text = |s: String| Arc::new(StringArray::from(vec![s])) as ArrayRef;
    let cols: Vec<ArrayRef> = vec![
        text(report.erasure_id.clone()),
        ts(report.erased_at),
        text(request.requested_by().into()),
        text(report.outcome.into()),
        text(json(serde_json::json!(tokens))),
        text(json(serde_json::json!(key_ids))),
        Arc::new(Int64Array::from(vec![report.keys_destroyed as i64])),
        Arc::new(Int64Array::from(vec![report.keyring_files_removed as i64])),
        text(json(serde_json::json!(report.rows_pseudonymised))),
        ts(report.complete_by),
    ];
    let batch = RecordBatch::try_new(audit_schema(), cols).map_err(|e| Error::query("ops/erasures", e))?;
    lake.append_once(&lake.table(layout::ERASURES)?, batch, (format!("erasure:{}", report.erasure_id), 1), &[]).await?;
    Ok(())
}

/// The keys erasures destroyed, with when (for [`Opener::with_erased`]: an erased value says
/// so rather than "unknown key").
pub async fn erased_keys(lake: &Lake) -> Result<Vec<(String, DateTime<Utc>)>> {
    let mut out = Vec::new();
    for b in lake.scan(&lake.table(layout::ERASURES)?, None, &["key_ids", "erased_at"]).await? {
        let ids = read::strings(b.column(0))?;
        let at = b.column(1).as_any().downcast_ref::<TimestampMicrosecondArray>().cloned();
        for r in 0..b.num_rows() {
            let when = at.as_ref().and_then(|a| DateTime::from_timestamp_micros(a.value(r))).unwrap_or_default();
            let list: Vec<String> = serde_json::from_str(ids.value(r)).unwrap_or_default();
            out.extend(list.into_iter().map(|k| (k, when)));
        }
    }
    Ok(out)
}
