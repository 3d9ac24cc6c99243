//! Issue 18: a record that is not a JSON object (a bare string, an array, a number) is
//! quarantined with its reason, and all of it sealed: nothing says which part is personal.

use std::sync::Arc;

use alkasba_pii::{LocalKeys, Sealer, Tokenizer};
use alkasba_records::{Origin, Prepared};
use serde_json::json;

#[tokio::test]
async fn a_record_that_is_not_an_object_is_quarantined_sealed() {
    let files = alkasba_sources::shipped().unwrap();
    let stream = files.iter().filter(|f| f.source.name == "alkasba_store").flat_map(|f| f.streams.iter()).find(|s| s.name == "products").unwrap();
    // Products keep their catalogue fields in clear: a non-object record is sealed all the same.
    assert!(stream.in_clear.iter().any(|p| p == "/name"));
    let prep = Prepared::new("alkasba_store", stream);
    let tokens = Tokenizer::new("token-key-for-tests-0123456789abcdef").unwrap();
    let mut sealer = Sealer::new(Arc::new(LocalKeys::random().unwrap()), alkasba_pii::kms_context("test", "stream"));
    let origin = Origin { run_id: "r", page: 1, url: "http://127.0.0.1/p" };
    for record in [json!("ana.benali@example.ma"), json!(["ana.benali@example.ma", "+212612345678"]), json!(612345678)] {
        let row = prep.process(record.clone(), origin, &tokens, &mut sealer).await.unwrap().unwrap_err();
        assert!(row.reasons.iter().any(|r| r.contains("not a JSON object")), "{:?}", row.reasons);
        assert!(!row.record.contains("ana.benali") && !row.record.contains("612345678"), "{record}: {}", row.record);
        assert!(["pii1:", "pii2:", "pii3:"].iter().any(|p| row.record.contains(p)), "{}", row.record);
    }
}
