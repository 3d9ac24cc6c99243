//! Issue 20: a group's rows are appended to Arrow builders as each record is processed. The
//! batch is the one rows built one by one would give: typed columns, undeclared clear fields as
//! text columns null where a record lacks them (a field first seen mid-group included), a
//! key+version seen twice kept once, invalid records in quarantine only; columns sized after the
//! first page for the pages to come hold the same rows.

use std::sync::Arc;

use alkasba_lake::arrow::array::{Array, AsArray, RecordBatch};
use alkasba_lake::arrow::datatypes::Int64Type;
use alkasba_pii::{LocalKeys, Sealer, Tokenizer};
use alkasba_records::{Origin, Prepared, Processed};
use serde_json::json;

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let col = batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}: {:?}", batch.schema()));
    col.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect()
}

#[tokio::test]
async fn rows_appended_as_processed_make_the_batch_rows_would() {
    let files = alkasba_sources::shipped().unwrap();
    let stream = files.iter().filter(|f| f.source.name == "alkasba_store").flat_map(|f| f.streams.iter()).find(|s| s.name == "products").unwrap();
    let prep = Prepared::new("alkasba_store", stream);
    let tokens = Tokenizer::new("token-key-for-tests-0123456789abcdef").unwrap();
    let mut sealer = Sealer::new(Arc::new(LocalKeys::random().unwrap()), alkasba_pii::kms_context("test", "products"));
    let product = |id: i64, modified: &str| json!({"id": id, "name": format!("P{id}"), "price": "9.50", "date_created_gmt": "2026-11-01T10:00:00", "date_modified_gmt": modified});
    let mut a = product(1, "2026-11-02T10:00:00");
    a["meta_data"] = json!([{"key": "supplier", "value": "Atlas"}]);
    let mut b = product(2, "2026-11-02T11:00:00");
    b["slug"] = json!("p2");
    b["status"] = json!("publish");
    let mut c = product(3, "2026-11-02T12:00:00");
    c["status"] = json!("draft");
    // First seen at the third row: one column sorting before the group's others, one after.
    c["backorders"] = json!("no");
    c["weight"] = json!("1.5");
    let again = b.clone();
    let mut invalid = product(4, "2026-11-02T13:00:00");
    invalid["price"] = json!("-1");
    let page1 = json!([a, b]);
    let page2 = json!([c, again, invalid]);

    let mut done = Processed::default();
    // As a fetcher does: its columns are regrown after the first page for the pages to come.
    done.expect_pages(2);
    for (page, body) in [(1, page1.clone()), (2, page2.clone())] {
        prep.process_page(body, Origin { run_id: "r", page, url: "http://127.0.0.1/p" }, &tokens, &mut sealer, &mut done).await.unwrap();
    }
    assert_eq!((done.fetched, done.duplicates, done.quarantined.len(), done.rows.len()), (5, 1, 1, 3));
    let now = chrono::Utc::now();
    let batch = prep.bronze_rows_batch(std::mem::take(&mut done.rows), "r", now).unwrap();

    assert_eq!(batch.num_rows(), 3);
    assert_eq!(batch.column_by_name("id").unwrap().as_primitive::<Int64Type>().values().to_vec(), vec![1, 2, 3]);
    assert_eq!(strings(&batch, "_key"), vec![Some("1".into()), Some("2".into()), Some("3".into())]);
    assert_eq!(strings(&batch, "slug"), vec![None, Some("p2".into()), None]);
    assert_eq!(strings(&batch, "status"), vec![None, Some("publish".into()), Some("draft".into())]);
    assert_eq!(strings(&batch, "backorders"), vec![None, None, Some("no".into())]);
    assert_eq!(strings(&batch, "weight"), vec![None, None, Some("1.5".into())]);
    assert_eq!(batch.column_by_name("_page").unwrap().as_primitive::<Int64Type>().values().to_vec(), vec![1, 1, 2]);
    let sealed = strings(&batch, "_sealed");
    assert!(sealed[0].as_deref().is_some_and(|s| !s.contains("Atlas")) && sealed[1].is_none(), "{sealed:?}");

    // The same records made into rows one by one give the same batch.
    let mut sealer = Sealer::new(Arc::new(LocalKeys::random().unwrap()), alkasba_pii::kms_context("test", "products"));
    let mut rows = Vec::new();
    for (page, body) in [(1, page1), (2, page2)] {
        for record in body.as_array().unwrap().iter().cloned() {
            if let Ok(row) = prep.process(record, Origin { run_id: "r", page, url: "http://127.0.0.1/p" }, &tokens, &mut sealer).await.unwrap() {
                rows.push(row);
            }
        }
    }
    rows.remove(3); // the copy of product 2
    let one_by_one = prep.bronze_batch(&rows, "r", now).unwrap();
    assert_eq!(one_by_one.schema(), batch.schema());
    for (i, field) in batch.schema().fields().iter().enumerate() {
        if field.name() != "_sealed" {
            assert_eq!(one_by_one.column(i).to_data(), batch.column(i).to_data(), "column {}", field.name());
        }
    }
}

#[tokio::test]
async fn a_group_without_valid_rows_gives_an_empty_batch_of_the_streams_columns() {
    let files = alkasba_sources::shipped().unwrap();
    let stream = files.iter().filter(|f| f.source.name == "alkasba_store").flat_map(|f| f.streams.iter()).find(|s| s.name == "products").unwrap();
    let prep = Prepared::new("alkasba_store", stream);
    let batch = prep.bronze_rows_batch(Default::default(), "r", chrono::Utc::now()).unwrap();
    assert_eq!(batch.num_rows(), 0);
    assert!(batch.column_by_name("id").is_some() && batch.column_by_name("_sealed").is_some() && batch.column_by_name("_ingest_date").is_some());
}
