//! Every table of this deployment: the lake's own tables ([`Registry::core`]), the bronze
//! table of each stream silver reads, and the silver and gold catalogues, with the maintenance
//! policy of each (the columns it is z-ordered by, where the usual filters pay for it).
//! `maintain` takes its targets from here.

use alkasba_lake::layout::{self, Layer, Registry, TableSpec};

use crate::{gold, silver};

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
        for p in ["security/keyring", "ops/alerts", "bronze/realtime/store_events", "quarantine/ingest", "ops/ingestion_runs", "ops/heartbeat"] {
            assert!(r.get(p).is_some(), "{p}");
        }
    }
}
