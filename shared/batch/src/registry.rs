//! Every table of this deployment: the lake's own tables ([`Registry::core`]), the bronze
//! table of each stream silver reads, and the silver and gold catalogues, with the maintenance
//! policy of each (the columns it is z-ordered by, where the usual filters pay for it).
//! `maintain` takes its targets from here.

use alkasba_lake::layout::{self, Layer, Registry, TableSpec};

use crate::{forecast, gold, silver};

/// Z-order columns of the tables whose readers filter on one column most.
fn zorder(path: &str) -> &'static [&'static str] {
    match path {
        "silver/orders" => &["customer_token"],
        "silver/order_lines" => &["product_id"],
        "silver/competitor_prices" => &["sku"],
        "gold/daily_product_sales" => &["product_id"],
        _ => &[],
    }
}

/// The registry of every table.
pub fn registry() -> Registry {
    let mut streams: Vec<(&str, &str)> = silver::SILVER.iter().map(|s| (s.source, s.stream)).collect();
    streams.dedup();
    let mut r = Registry::core().with_bronze(streams);
    for s in silver::SILVER {
        let path = layout::silver(s.name);
        r.add(TableSpec::new(&path, Layer::Silver, s.partition, zorder(&path)));
    }
    for m in gold::MARTS {
        let path = layout::gold(m.name);
        r.add(TableSpec::new(&path, Layer::Gold, m.partition, zorder(&path)));
    }
    for (name, _) in forecast::TABLES {
        r.add(TableSpec::new(layout::gold(name), Layer::Gold, Some(forecast::PARTITION), &[]));
    }
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_silver_table_and_mart_is_registered_with_the_shared_tables() {
        let r = super::registry();
        for s in crate::silver::SILVER {
            assert!(r.get(&format!("silver/{}", s.name)).is_some(), "{}", s.name);
            assert!(r.get(&format!("bronze/{}/{}", s.source, s.stream)).is_some(), "{}", s.name);
        }
        for m in crate::gold::MARTS {
            assert!(r.get(&format!("gold/{}", m.name)).is_some(), "{}", m.name);
        }
        for (name, _) in crate::forecast::TABLES {
            assert!(r.get(&format!("gold/{name}")).is_some(), "{name}");
        }
        for p in ["security/keyring", "ops/alerts", "bronze/realtime/store_events", "quarantine/ingest", "ops/ingestion_runs", "ops/heartbeat"] {
            assert!(r.get(p).is_some(), "{p}");
        }
    }

    /// The Glue definitions the template creates are what Trino's Delta Lake connector requires
    /// of a Delta table in a metastore (it reads `spark.sql.sources.provider = delta` to know
    /// one, and the storage's serde parameter `path` for where it is: without it a query fails
    /// with "No path property defined for table") and what Athena's native Delta reader
    /// requires (`table_type = DELTA`, the location); every silver, gold and ops table has one,
    /// named `<layer>_<name>`, pointing at its registry path.
    #[test]
    fn glue_definitions_meet_trino_and_athena_for_every_bi_table() {
        use serde_yaml_ng::Value;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml");
        let template: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // `!Sub "s3://${LakeBucket}/x/"` as its string.
        let sub = |v: &Value| match v {
            Value::Tagged(t) if t.tag == "!Sub" => t.value.as_str().unwrap().to_string(),
            other => panic!("expected !Sub, found {other:?}"),
        };
        let mut glue = std::collections::BTreeMap::new();
        for (id, res) in template["Resources"].as_mapping().unwrap() {
            if res["Type"].as_str() != Some("AWS::Glue::Table") {
                continue;
            }
            let input = &res["Properties"]["TableInput"];
            let name = input["Name"].as_str().unwrap().to_string();
            let params = &input["Parameters"];
            assert_eq!(params["spark.sql.sources.provider"].as_str(), Some("delta"), "{id:?}: Trino needs spark.sql.sources.provider=delta");
            assert_eq!(params["table_type"].as_str(), Some("DELTA"), "{id:?}: Athena needs table_type=DELTA");
            assert_eq!(input["TableType"].as_str(), Some("EXTERNAL_TABLE"), "{id:?}");
            let sd = &input["StorageDescriptor"];
            let location = sub(&sd["Location"]);
            let serde_path = sub(&sd["SerdeInfo"]["Parameters"]["path"]);
            assert_eq!(format!("{serde_path}/"), location, "{id:?}: the serde path (Trino) and the location (Athena) name the same table");
            let table = location.strip_prefix("s3://${LakeBucket}/").and_then(|l| l.strip_suffix('/')).unwrap_or_else(|| panic!("{id:?}: {location}")).to_string();
            glue.insert(table, name);
        }
        let r = super::registry();
        for spec in r.tables() {
            let bi = crate::glue::catalogued(spec.layer);
            match glue.get(&spec.path) {
                Some(name) => assert_eq!(name, &spec.path.replace('/', "_"), "{}", spec.path),
                None => assert!(!bi, "{} has no Glue definition", spec.path),
            }
        }
        for path in glue.keys() {
            assert!(r.get(path).is_some(), "the Glue table at {path} is not a table of the lake");
        }
    }
}
