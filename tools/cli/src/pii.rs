//! `alkasba pii decrypt|open-error|erase`: personal data and sealed error objects, in clear, for
//! a person with `kms:Decrypt`; a person's erasure.

use std::sync::Arc;

use alkasba_lake::StorageConfig;
use alkasba_pii::{KmsClient, KmsKeys, Opener, is_sealed, read_keyring};
use alkasba_records::{SEALED, merge};
use anyhow::{Context, Result};
use serde_json::{Map, Value};

use crate::stack::settings;

/// Where the sealed values of the table at `rel` (its path under the lake root) were sealed:
/// the stream's table id and the column holding the record key. A value opens only at its
/// place, so the place is derived from where the value is read, never from the value.
fn places_of(rel: &str) -> Result<(String, &'static str)> {
    let parts: Vec<&str> = rel.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["bronze", "realtime", ..] => anyhow::bail!("{rel}: real-time events keep their sealed part inside the record JSON; read the bronze stream table instead"),
        ["bronze", source, stream] => Ok((format!("{source}.{stream}"), "_key")),
        ["silver", "customers"] => {
            let spec = alkasba_batch::silver::spec("customers")?;
            Ok((format!("{}.{}", spec.source, spec.stream), "customer_id"))
        }
        _ => anyhow::bail!("{rel}: decrypt reads the bronze stream tables (bronze/<source>/<stream>) and silver/customers, the tables with a sealed column"),
    }
}

pub async fn decrypt(sdk: &aws_config::SdkConfig, stack: Option<&str>, table: &str, keys: Vec<String>, limit: usize) -> Result<()> {
    let s = settings(sdk, stack).await?;
    let storage = StorageConfig::from_env()?;
    let root = s.lake_root.trim_end_matches('/');
    let rel = table.strip_prefix(root).with_context(|| format!("{table} is not a table of the lake {root}"))?;
    let (stream_table, key_column) = places_of(rel)?;
    let uri = url::Url::parse(table).with_context(|| format!("table {table:?}"))?;
    let t = alkasba_lake::read::open_table(&uri, &storage).await?.with_context(|| format!("no Delta table at {table}"))?;
    let filter = (!keys.is_empty()).then(|| deltalake::datafusion::prelude::col(key_column).in_list(keys.iter().map(|k| deltalake::datafusion::prelude::lit(k.as_str())).collect(), false));
    let batches = alkasba_lake::read::scan(&t, filter, &[]).await?;
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    'outer: for b in &batches {
        let names: Vec<String> = b.schema().fields().iter().map(|f| f.name().clone()).collect();
        let cols: Vec<_> = (0..b.num_columns()).map(|i| alkasba_lake::read::strings(b.column(i))).collect::<std::result::Result<_, _>>()?;
        for r in 0..b.num_rows() {
            if rows.len() >= limit {
                break 'outer;
            }
            let mut m = Map::new();
            for (c, name) in cols.iter().zip(&names) {
                use alkasba_lake::arrow::array::Array;
                m.insert(name.clone(), if c.is_null(r) { Value::Null } else { Value::String(c.value(r).to_string()) });
            }
            rows.push(m);
        }
    }
    let key_ids: Vec<String> = rows.iter().flat_map(|m| m.values().filter_map(Value::as_str).filter(|v| is_sealed(v)).filter_map(|v| v.split(':').nth(1).map(str::to_string))).collect();
    let keyring = url::Url::parse(&format!("{}/security/keyring", s.lake_root.trim_end_matches('/')))?;
    let ring = read_keyring(&keyring, &storage, Some(&key_ids)).await?;
    let keys = Arc::new(KmsKeys::new(KmsClient::new(sdk), &s.pii_key_id));
    let lake = alkasba_lake::Lake::new(root, storage)?;
    let mut opener = Opener::new(keys, ring).with_erased(alkasba_batch::erase::erased_keys(&lake).await?);
    for mut m in rows {
        // A record's sealed part (`_sealed` in bronze, `pii_sealed` in silver) opens into the
        // fields it holds, put back where they were.
        let mut hidden = Map::new();
        for col in [SEALED, "pii_sealed"] {
            let Some(sealed) = m.get(col).and_then(Value::as_str).filter(|v| is_sealed(v)).map(str::to_string) else { continue };
            let key = m.get(key_column).and_then(Value::as_str).unwrap_or("-");
            let place = alkasba_pii::place(&stream_table, key, SEALED);
            match opener.open(&place, &sealed).await.map_err(anyhow::Error::from).and_then(|p| Ok(serde_json::from_slice::<Map<String, Value>>(&p)?)) {
                Ok(fields) => {
                    m.remove(col);
                    hidden.extend(fields);
                }
                Err(e) => {
                    m.insert(col.to_string(), Value::String(format!("<{e}>")));
                }
            }
        }
        let mut row = Value::Object(m);
        merge(&mut row, hidden);
        println!("{row}");
    }
    Ok(())
}

pub async fn open_error(sdk: &aws_config::SdkConfig, stack: Option<&str>, object: &str) -> Result<()> {
    let s = settings(sdk, stack).await?;
    let root = s.lake_root.trim_end_matches('/');
    let key = object.strip_prefix(&format!("{root}/errors/")).with_context(|| format!("{object} is not under {root}/errors/"))?;
    let lake = alkasba_lake::Lake::new(root, StorageConfig::from_env()?)?;
    let control = alkasba_ingest::control::Control::for_lake(&lake)?;
    let sealed = control.get_error(key).await?;
    let keys = KmsKeys::new(KmsClient::new(sdk), &s.pii_key_id);
    // errors/<source>/<stream>/...: the fetcher task that sealed it had that KMS context.
    let mut parts = key.split('/');
    let (Some(source), Some(stream)) = (parts.next(), parts.next()) else { anyhow::bail!("{object} is not errors/<source>/<stream>/...") };
    let plain = alkasba_pii::open_blob(&keys, &format!("errors/{key}"), &alkasba_pii::kms_context(source, stream), &sealed).await?;
    use std::io::Write;
    std::io::stdout().write_all(&plain)?;
    Ok(())
}

/// Sends the request to the stack's erasure queue (the `erase` function does it), the email
/// encrypted under the lake key so that it never sits on the queue in plaintext.
async fn erase_via_queue(sdk: &aws_config::SdkConfig, stack: Option<&str>, request: alkasba_batch::erase::Request) -> Result<()> {
    let stack = stack.context("--queue needs --stack (the queue and the lake key are its outputs)")?;
    let outputs = crate::stack::stack_outputs(sdk, stack).await?;
    let output = |k: &str| outputs.get(k).cloned().with_context(|| format!("stack {stack} has no output {k}"));
    let email_kms = match &request.email {
        Some(e) => Some(KmsKeys::new(KmsClient::new(sdk), output("LakeKeyArn")?).encrypt_value(e.as_bytes(), &alkasba_batch::erase::request_context()).await?),
        None => None,
    };
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let queued = alkasba_batch::erase::QueuedRequest { customer_id: request.customer_id, email_kms, request_id: Some(request_id.clone()) };
    aws_sdk_sqs::Client::new(sdk).send_message().queue_url(output("ErasureRequestsQueueUrl")?).message_body(serde_json::to_string(&queued)?).send().await.context("sending the erasure request")?;
    println!("Queued: erasure {request_id} (its row appears in ops/erasures once the erase function has run).");
    Ok(())
}

pub async fn erase(sdk: &aws_config::SdkConfig, stack: Option<&str>, email: Option<String>, customer_id: Option<i64>, queue: bool, json: bool) -> Result<()> {
    if queue {
        let request = alkasba_batch::erase::Request { email, customer_id, request_id: None };
        request.validate()?;
        return erase_via_queue(sdk, stack, request).await;
    }
    let s = settings(sdk, stack).await?;
    let lake = alkasba_lake::Lake::new(&s.lake_root, StorageConfig::from_env()?)?;
    let request = alkasba_batch::erase::Request { email, customer_id, request_id: None };
    request.validate()?;
    let tokens = s.tokenizer(sdk).await?;
    eprintln!("erasing: finding the person, destroying their keys, unlinking their tokens...");
    let r = alkasba_batch::erase::erase(&lake, &tokens, &request).await?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    if r.outcome == "no data" {
        println!("No data: the lake holds nothing of this person (erasure {} recorded in ops/erasures).", r.erasure_id);
        return Ok(());
    }
    println!("Erased (erasure {}, recorded in ops/erasures):", r.erasure_id);
    println!("  keys destroyed        {} (keyring files removed: {})", r.keys_destroyed, r.keyring_files_removed);
    println!("  tokens unlinked       {}", r.tokens);
    for (table, n) in &r.rows_pseudonymised {
        println!("  rows pseudonymised    {n:>6}  {table}");
    }
    println!("  superseded copies gone by {} (docs/security.md)", r.complete_by.format("%Y-%m-%d"));
    Ok(())
}
