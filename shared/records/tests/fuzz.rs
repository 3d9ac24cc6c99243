//! Issue 18, fuzzing: records no one wrote on purpose through validation, tokens, sealing and the
//! bronze batch of every shipped stream. Whatever the record, processing answers a row or a
//! quarantine row and never panics (crafted amounts included), a row makes a bronze batch, and
//! the personal values of the documented payloads never appear in clear, however the rest of
//! the record is mangled.
//!
//! Cases per property: `PROPTEST_CASES` (256 by default, as in CI); `scripts/fuzz.sh` runs each
//! with a million (docs/fuzzing.md).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use alkasba_lake::arrow::array::{Array, StringArray};
use alkasba_lake::arrow::compute::cast;
use alkasba_lake::arrow::datatypes::DataType;
use alkasba_pii::{LocalKeys, Sealer, Tokenizer};
use alkasba_records::{Origin, Prepared};
use proptest::prelude::*;
use serde_json::{Map, Value};

struct Fixed {
    streams: Vec<(Prepared, Value)>,
    tokens: Tokenizer,
    keys: Arc<LocalKeys>,
    runtime: tokio::runtime::Runtime,
}

/// Built once: the shipped streams with their documented payloads, and the key services.
fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(|| {
        let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let dir = PathBuf::from(manifest).join("../../tests/fixtures/woocommerce");
        let files = alkasba_sources::shipped().unwrap();
        let store = files.iter().find(|f| f.source.name == "alkasba_store").unwrap();
        let streams = [("orders", "order"), ("customers", "customer"), ("products", "product"), ("refunds", "refund")]
            .iter()
            .map(|(s, f)| {
                let def = store.streams.iter().find(|x| x.name == *s).unwrap();
                let rec: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{f}.json"))).unwrap()).unwrap();
                (Prepared::new("alkasba_store", def), rec)
            })
            .collect();
        Fixed {
            streams,
            tokens: Tokenizer::new("token-key-for-tests-0123456789abcdef").unwrap(),
            keys: Arc::new(LocalKeys::random().unwrap()),
            runtime: tokio::runtime::Builder::new_current_thread().build().unwrap(),
        }
    })
}

/// Values chosen to hit the corners: numbers at and past every limit, decimal strings past
/// rust_decimal's range, dates that are almost dates, unicode, nesting.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        Just(Value::from("79228162514264337593543950335")),
        Just(Value::from("-79228162514264337593543950336.5")),
        Just(Value::from("1e400")),
        Just(Value::from("0.0000000000000000000000000001")),
        "-?[0-9]{1,40}(\\.[0-9]{0,30})?".prop_map(Value::from),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:?[0-9]{2})?".prop_map(Value::from),
        "[A-Z]{0,4}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_/~*]{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => o.iter().for_each(|(k, x)| pointers(x, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| pointers(x, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

/// The documented payload with a few of its values replaced or removed.
fn mutate(mut rec: Value, edits: &[(prop::sample::Index, bool, Value)]) -> Value {
    for (at, remove, value) in edits {
        let mut all = Vec::new();
        pointers(&rec, String::new(), &mut all);
        let p = at.get(&all).clone();
        if p.is_empty() {
            rec = value.clone();
            continue;
        }
        let (parent, key) = p.rsplit_once('/').unwrap_or(("", ""));
        let key = key.replace("~1", "/").replace("~0", "~");
        match rec.pointer_mut(parent) {
            Some(Value::Object(o)) if *remove => {
                o.remove(&key);
            }
            Some(Value::Object(o)) => {
                o.insert(key, value.clone());
            }
            Some(Value::Array(a)) => {
                if let Ok(i) = key.parse::<usize>()
                    && i < a.len()
                {
                    a[i] = value.clone();
                }
            }
            _ => {}
        }
    }
    rec
}

const PERSONAL: [&str; 6] = ["yasmine.ouazzani@example.net", "Ouazzani", "Derb Sidi Bouloukat", "197.230.41.88", "EE482913", "wc_order_Xq7PzL2mN9vB4"];

fn check(prep: &Prepared, record: Value) -> Result<(), TestCaseError> {
    let f = fixed();
    let mut sealer = Sealer::new(f.keys.clone(), alkasba_pii::kms_context("test", "stream"));
    let origin = Origin { run_id: "r", page: 1, url: "https://shop.example.ma/x" };
    let out = f.runtime.block_on(prep.process(record, origin, &f.tokens, &mut sealer)).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let texts: Vec<String> = match out {
        Ok(row) => {
            let batch = prep.bronze_batch(std::slice::from_ref(&row), "r", chrono::Utc::now()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            batch
                .columns()
                .iter()
                .filter_map(|c| cast(c, &DataType::Utf8).ok())
                .filter_map(|c| c.as_any().downcast_ref::<StringArray>().filter(|s| !s.is_null(0)).map(|s| s.value(0).to_string()))
                .collect()
        }
        Err(q) => {
            prop_assert!(!q.reasons.is_empty());
            vec![q.record, q.reasons.join("; ")]
        }
    };
    for t in &texts {
        for p in PERSONAL {
            prop_assert!(!t.contains(p), "{p} in clear: {t}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_documented_records_mangled(which in 0usize..4, edits in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>(), json()), 1..5)) {
        let (prep, rec) = &fixed().streams[which];
        check(prep, mutate(rec.clone(), &edits))?;
    }

    #[test]
    fn fuzz_arbitrary_records(which in 0usize..4, record in json()) {
        check(&fixed().streams[which].0, record)?;
    }
}
