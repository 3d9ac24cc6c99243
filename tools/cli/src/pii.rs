//! `alkasba pii decrypt|open-error`: personal data and sealed error objects, in clear, for a
//! person with `kms:Decrypt`.

use std::sync::Arc;

use alkasba_lake::StorageConfig;
use alkasba_pii::{KmsClient, KmsKeys, Opener, is_sealed, read_keyring};
use alkasba_records::{SEALED, merge};
use anyhow::{Context, Result};
use serde_json::{Map, Value};

use crate::stack::settings;

pub async fn decrypt(sdk: &aws_config::SdkConfig, stack: Option<&str>, table: &str, keys: Vec<String>, limit: usize) -> Result<()> {
    let s = settings(sdk, stack).await?;
    let storage = StorageConfig::from_env()?;
    let uri = url::Url::parse(table).with_context(|| format!("table {table:?}"))?;
    let t = alkasba_lake::read::open_table(&uri, &storage).await?.with_context(|| format!("no Delta table at {table}"))?;
    let filter = (!keys.is_empty()).then(|| deltalake::datafusion::prelude::col("_key").in_list(keys.iter().map(|k| deltalake::datafusion::prelude::lit(k.as_str())).collect(), false));
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
    let mut opener = Opener::new(keys, ring);
    for mut m in rows {
        // A record's sealed part (`_sealed` in bronze, `pii_sealed` in silver) opens into the
        // fields it holds, put back where they were.
        let mut hidden = Map::new();
        for col in [SEALED, "pii_sealed"] {
            let Some(sealed) = m.get(col).and_then(Value::as_str).filter(|v| is_sealed(v)).map(str::to_string) else { continue };
            match opener.open(SEALED, &sealed).await.map_err(anyhow::Error::from).and_then(|p| Ok(serde_json::from_slice::<Map<String, Value>>(&p)?)) {
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
    let plain = alkasba_pii::open_blob(&keys, &format!("errors/{key}"), &sealed).await?;
    use std::io::Write;
    std::io::stdout().write_all(&plain)?;
    Ok(())
}
