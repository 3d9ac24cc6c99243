//! Issue 20: a group's rows are appended to Arrow builders as each record is processed. The
//! batch is the one rows built one by one would give: typed columns, undeclared clear fields as
//! text columns null where a record lacks them (a field first seen mid-group included), a
//! key+version seen twice kept once, invalid records in quarantine only; columns sized after the
//! first page for the pages to come hold the same rows.

use std::sync::Arc;

use alkasba_lake::arrow::array::{Array, AsArray, RecordBatch};
use alkasba_lake::arrow::datatypes::Int64Type;
use alkasba_pii::{LocalKeys, Opener, Sealer, Tokenizer};
use alkasba_records::{Origin, Prepared, Processed, SEALED};
use alkasba_sources::Page;
use serde_json::{Value, json};

fn page_of(prep: &Prepared, body: &str) -> Page {
    Page::new(&prep.stream, "http://127.0.0.1/p".parse().unwrap(), Vec::new(), body.to_string()).unwrap()
}

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
        prep.process_page(&page_of(&prep, &body.to_string()), Origin { run_id: "r", page, url: "http://127.0.0.1/p" }, &tokens, &mut sealer, &mut done).await.unwrap();
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

/// A cell as JSON when it is JSON text (a nested field kept in clear: the text path copies its
/// values as received, the `Value` path writes them again), else as text.
fn cells(batch: &RecordBatch, i: usize) -> Vec<Option<Value>> {
    let col = alkasba_lake::arrow::compute::cast(batch.column(i), &alkasba_lake::arrow::datatypes::DataType::Utf8).unwrap();
    col.as_string::<i32>().iter().map(|v| v.map(|t| serde_json::from_str(t).unwrap_or_else(|_| Value::from(t)))).collect()
}

/// Issue 20: pages are processed from their text (only the fields a stream reads parsed, the
/// split into clear and sealed parts made on the text). On the documented WooCommerce shapes
/// (pretty-printed, as the fixtures are) and on invalid and odd records, it makes the rows,
/// quarantine rows and sealed parts the `Value` path makes.
#[tokio::test]
async fn the_text_path_makes_what_the_value_path_makes() {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let fixture = |name: &str| std::fs::read_to_string(format!("{manifest}/../../tests/fixtures/woocommerce/{name}.json")).unwrap();
    let tokens = Tokenizer::new("token-key-for-tests-0123456789abcdef").unwrap();
    let files = alkasba_sources::shipped().unwrap();
    for (name, stream) in [("order", "orders"), ("customer", "customers"), ("product", "products"), ("refund", "refunds")] {
        let def = files.iter().filter(|f| f.source.name == "alkasba_store").flat_map(|f| f.streams.iter()).find(|s| s.name == stream).unwrap();
        let prep = Prepared::new("alkasba_store", def);
        let text = fixture(name);
        let record: Value = serde_json::from_str(&text).unwrap();
        // The record as given, one with a field twice (the last counts) and escapes in names
        // and values, one invalid (quarantined), one that is not an object.
        let twice = format!(r#"{}, "x\u0041": "a\"b", "id": 999999}}"#, text.trim().strip_suffix('}').unwrap());
        let mut invalid = record.clone();
        invalid["id"] = json!("not a number");
        // Nested fields the stream reads, changed: only those are parsed on the text path
        // (`Wanted`), so every reason about them must still be found.
        let mut nested = Vec::new();
        for (pointer, value) in [
            ("/line_items/0/quantity", json!(-1)),
            ("/line_items/0/total", json!("x")),
            ("/line_items/0/product_id", Value::Null),
            ("/line_items", json!("")),
            ("/line_items", Value::Null),
            ("/line_items", json!({"0": {"quantity": 1}})),
            ("/billing/email", json!("not-an-email")),
            ("/billing/phone", json!("call me")),
            ("/billing", json!([1, 2])),
            ("/total", json!("1.00")),
            ("/fee_lines", json!([{"total": "5.00"}, {"name": "no total"}])),
        ] {
            let mut r = record.clone();
            // Its own key: a valid one must not be dropped as a copy of the record above.
            r["id"] = json!(1_000 + nested.len());
            if let Some(slot) = r.pointer_mut(pointer) {
                *slot = value;
                nested.push(r);
            } else if let Some(obj) = r.as_object_mut() {
                obj.insert(pointer.trim_start_matches('/').to_string(), value);
                nested.push(r);
            }
        }
        let nested: Vec<String> = nested.iter().map(Value::to_string).collect();
        let body = format!("[{text}, {twice}, {invalid}, {}, \"odd\"]", nested.join(", "));
        let keys = Arc::new(LocalKeys::random().unwrap());
        let origin = Origin { run_id: "r", page: 1, url: "http://127.0.0.1/p" };

        let mut sealer = Sealer::new(keys.clone(), alkasba_pii::kms_context("test", "s"));
        let mut done = Processed::default();
        prep.process_page(&page_of(&prep, &body), origin, &tokens, &mut sealer, &mut done).await.unwrap();
        let mut value_sealer = Sealer::new(keys.clone(), alkasba_pii::kms_context("test", "s"));
        let (mut rows, mut quarantined) = (Vec::new(), Vec::new());
        for r in serde_json::from_str::<Vec<Value>>(&body).unwrap() {
            match prep.process(r, origin, &tokens, &mut value_sealer).await.unwrap() {
                Ok(row) => rows.push(row),
                Err(q) => quarantined.push(q),
            }
        }
        assert_eq!(done.rows.len(), rows.len(), "{name}");
        assert_eq!(done.quarantined.len(), quarantined.len(), "{name}");
        for (a, b) in done.quarantined.iter().zip(&quarantined) {
            assert_eq!((&a.key, &a.reasons), (&b.key, &b.reasons), "{name}");
        }
        let now = chrono::Utc::now();
        let ours = prep.bronze_rows_batch(std::mem::take(&mut done.rows), "r", now).unwrap();
        let theirs = prep.bronze_batch(&rows, "r", now).unwrap();
        assert_eq!(ours.schema(), theirs.schema(), "{name}");
        let mut opener = Opener::new(keys.clone(), sealer.take_new_keys().into_iter().chain(value_sealer.take_new_keys()).collect());
        let keys_col = strings(&ours, "_key");
        for (i, field) in ours.schema().fields().iter().enumerate() {
            if field.name() == SEALED {
                // Sealed under fresh nonces: equal once opened.
                for ((a, b), key) in strings(&ours, SEALED).into_iter().zip(strings(&theirs, SEALED)).zip(&keys_col) {
                    let place = prep.place(key.as_deref(), SEALED);
                    let (a, b) = (a.expect("sealed"), b.expect("sealed"));
                    let a: Value = serde_json::from_slice(&opener.open(&place, &a).await.unwrap()).unwrap();
                    let b: Value = serde_json::from_slice(&opener.open(&place, &b).await.unwrap()).unwrap();
                    assert_eq!(a, b, "{name}: sealed parts");
                }
            } else {
                assert_eq!(cells(&ours, i), cells(&theirs, i), "{name}: column {}", field.name());
            }
        }
    }
}
