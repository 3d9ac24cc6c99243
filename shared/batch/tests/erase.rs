//! Erasure end to end on one machine (issue 19): the simulator over HTTP, two ingestion runs
//! with the store changing in between (the person's data in several versions and files),
//! silver and gold built, then the person erased by customer id.
//!
//! * Every sealed value of theirs, in every table, fails to open with an "erased" error; other
//!   people's values open; a value moved to another record or table does not open.
//! * No version of the keyring (time travel) gives their keys back; once `maintain` has run,
//!   no file anywhere under the lake holds their wrapped key bytes (raw or base64), an orphan
//!   keyring file (a writer killed between upload and commit) included.
//! * Their tokens are nowhere in the lake; gold's numbers are unchanged after the next build.
//! * The audit table has the erasure; an erasure of someone the lake does not know says so.
//! * The erasure waits for a transform already running, and no transform or aggregate starts
//!   while it waits or runs (the lake's erasure fence).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use alkasba_batch::erase::{self, Request};
use alkasba_batch::maintain::{self, MaintainOptions};
use alkasba_batch::{gold, lease, silver};
use alkasba_ingest::{Tuning, testkit};
use alkasba_lake::Lake;
use alkasba_lake::arrow::array::{Array, RecordBatch};
use alkasba_lake::arrow::compute::cast;
use alkasba_lake::arrow::datatypes::DataType;
use alkasba_lake::read::strings;
use alkasba_pii::{Error as PiiError, Opener, place, read_keyring};
use alkasba_sim::SimConfig;
use base64::Engine;
use chrono::{TimeZone, Utc};
use object_store::ObjectStoreExt;
use object_store::path::Path;

/// A sealed value and the place it was read from.
#[derive(Debug, Clone)]
struct Sealed {
    place: String,
    value: String,
    key_id: String,
    /// The customer id the row names (customers.id, orders.customer_id).
    customer: Option<String>,
}

async fn sealed_values(lake: &Lake, stream: &str, customer_column: &str) -> Vec<Sealed> {
    let uri = lake.bronze("alkasba_store", stream).unwrap();
    let mut out = Vec::new();
    for b in lake.scan(&uri, None, &["_key", "_sealed", customer_column]).await.unwrap() {
        let (k, s, c) = (strings(b.column(0)).unwrap(), strings(b.column(1)).unwrap(), strings(b.column(2)).unwrap());
        for i in (0..b.num_rows()).filter(|i| !s.is_null(*i)) {
            let value = s.value(i).to_string();
            let key_id = Opener::<alkasba_pii::LocalKeys>::key_id(&value).unwrap().to_string();
            out.push(Sealed { place: place(&format!("alkasba_store.{stream}"), k.value(i), "_sealed"), value, key_id, customer: (!c.is_null(i)).then(|| c.value(i).to_string()) });
        }
    }
    out
}

/// Every text cell of every column of `batches`, as one set.
fn cells(batches: &[RecordBatch]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for b in batches {
        for c in b.columns() {
            let Ok(s) = cast(c, &DataType::Utf8) else { continue };
            let s = s.as_any().downcast_ref::<alkasba_lake::arrow::array::StringArray>().unwrap().clone();
            out.extend((0..s.len()).filter(|i| !s.is_null(*i)).map(|i| s.value(i).to_string()));
        }
    }
    out
}

/// Each gold table as a sorted list of rows, without the columns holding tokens (they become
/// pseudonyms; every figure must stay).
async fn gold_figures(lake: &Lake) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for m in gold::MARTS {
        let uri = gold::uri(lake, "gold", m.name).unwrap();
        let mut rows = Vec::new();
        for b in lake.scan(&uri, None, &[]).await.unwrap() {
            let keep: Vec<usize> = (0..b.num_columns()).filter(|i| !erase::catalogue::holds_tokens(&format!("gold/{}", m.name), b.schema().field(*i).name())).collect();
            let cols: Vec<_> = keep.iter().map(|i| strings(b.column(*i)).unwrap()).collect();
            for r in 0..b.num_rows() {
                rows.push(cols.iter().map(|c| if c.is_null(r) { "∅".to_string() } else { c.value(r).to_string() }).collect::<Vec<_>>().join("|"));
            }
        }
        rows.sort();
        out.insert(m.name.to_string(), rows);
    }
    out
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Files under `dir` holding any of `keys` raw or in base64 (with and without padding).
fn files_holding(dir: &std::path::Path, keys: &[Vec<u8>]) -> Vec<String> {
    let needles: Vec<Vec<u8>> =
        keys.iter().flat_map(|k| [k.clone(), base64::engine::general_purpose::STANDARD.encode(k).into_bytes(), base64::engine::general_purpose::STANDARD_NO_PAD.encode(k).into_bytes()]).collect();
    files_under(dir).into_iter().filter(|f| std::fs::read(f).map(|bytes| needles.iter().any(|n| contains(&bytes, n))).unwrap_or(false)).map(|f| f.display().to_string()).collect()
}

/// Writes one store event for order `id` (as the store renders it) the way the webhook and the
/// real-time function do: sealed by `Prepared::protect` in a webhook session, its new key and the
/// event committed by the real-time lake sink. Returns the event's sealed value and its place.
async fn realtime_event(lake: &Lake, local: &testkit::Local, id: u32) -> Sealed {
    use alkasba_realtime::engine::{LakeSink, Outbox};
    use alkasba_realtime::event::{StoreEvent, WireKey};
    let record = local.sim.store().render(alkasba_sim::store::Resource::Orders, id);
    let files = alkasba_sources::shipped().unwrap();
    let def = files.iter().filter(|f| f.source.name == "alkasba_store").flat_map(|f| f.streams.iter()).find(|s| s.name == "orders").unwrap();
    let prep = alkasba_records::record::Prepared::new("alkasba_store", def);
    let mut sealer = alkasba_pii::Sealer::new(local.ingest.keys.clone(), alkasba_pii::kms_context("alkasba_store", "webhook"));
    let p = prep.protect(record, &local.ingest.tokens, &mut sealer).await.unwrap();
    let keys: Vec<WireKey> = sealer.take_new_keys().iter().map(WireKey::from).collect();
    let value = p.record["_sealed"].as_str().unwrap().to_string();
    let key = p.key.clone().unwrap();
    let event = StoreEvent {
        v: alkasba_realtime::event::WIRE_VERSION,
        delivery_id: "delivery-1".into(),
        topic: "order.updated".into(),
        signed_at: Utc::now().timestamp(),
        received_at_ms: Utc::now().timestamp_millis(),
        key: p.key,
        record: p.record,
        tokens: p.tokens,
        keys: keys.clone(),
        invalid: Vec::new(),
        version: None,
    };
    alkasba_realtime::aws::DeltaSink::new(lake.clone()).unwrap().write(&[Outbox { generation: 1, keys, events: vec![event], alerts: Vec::new() }]).await.unwrap();
    let key_id = Opener::<alkasba_pii::LocalKeys>::key_id(&value).unwrap().to_string();
    Sealed { place: place("alkasba_store.orders", &key, "_sealed"), value, key_id, customer: None }
}

async fn build(lake: &Lake) {
    silver::transform(lake, None, silver::TransformOptions::default(), || true).await.unwrap();
    gold::aggregate(lake, &Default::default(), None, || true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_customer_opens_nowhere_leaves_no_key_behind_and_gold_keeps_its_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::small(31, 1_200);
    cfg.shape.days = 10;
    let end = cfg.shape.end;
    // Small commits: a person's rows land in many files and versions.
    let local = testkit::local(cfg, dir.path(), Tuning { pages_per_task: 4, pages_per_commit: 1, ..Tuning::default() }).await;
    let lake = local.ingest.lake.clone();
    let store = ["alkasba_store.products", "alkasba_store.customers", "alkasba_store.orders", "alkasba_store.refunds"];
    local.run(&store).await;
    let mut day = end - chrono::Days::new(11);
    while day <= end + chrono::Days::new(1) {
        local.run_at(&["exchange_rates.rates"], Utc.from_utc_datetime(&day.and_hms_opt(12, 0, 0).unwrap())).await;
        day = day.succ_opt().unwrap();
    }
    build(&lake).await;
    // The store changes; a second run brings new versions.
    reqwest::Client::new().post(format!("{}/_sim/mutate?n=200", local.base)).send().await.unwrap();
    local.run(&["alkasba_store.customers", "alkasba_store.orders"]).await;
    build(&lake).await;

    let customers = sealed_values(&lake, "customers", "id").await;
    let orders_before = sealed_values(&lake, "orders", "customer_id").await;
    let order_customer = |want: &str| orders_before.iter().find(|o| o.customer.as_deref() == Some(want)).map(|o| o.place.split('/').nth(1).unwrap().to_string());
    let orders = sealed_values(&lake, "orders", "customer_id").await;
    // The customer with the most order rows (versions included).
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for o in orders.iter().filter(|o| o.customer.as_deref().is_some_and(|c| c != "0")) {
        *per.entry(o.customer.clone().unwrap()).or_default() += 1;
    }
    let (victim, n) = per.iter().max_by_key(|(_, n)| **n).map(|(c, n)| (c.clone(), *n)).unwrap();
    let theirs: Vec<Sealed> = customers.iter().chain(&orders).filter(|s| s.customer.as_deref() == Some(victim.as_str())).cloned().collect();
    let others: Vec<Sealed> = customers.iter().chain(&orders).filter(|s| s.customer.as_deref() != Some(victim.as_str())).take(40).cloned().collect();
    assert!(n >= 3 && theirs.iter().any(|s| s.place.starts_with("alkasba_store.customers/")), "customer {victim}: {n} order rows, {} sealed values", theirs.len());
    // One of their orders also came by webhook: a real-time event in bronze/realtime/store_events,
    // sealed by the webhook's path under a key of its own session.
    let order_id: u32 = order_customer(&victim).unwrap().parse().unwrap();
    let event_sealed = realtime_event(&lake, &local, order_id).await;
    let mut theirs = theirs;
    theirs.push(event_sealed);
    let their_keys: BTreeSet<String> = theirs.iter().map(|s| s.key_id.clone()).collect();
    assert!(their_keys.len() >= 2, "their data is sealed in several sessions (runs): {their_keys:?}");
    let ring = read_keyring(&lake.keyring().unwrap(), lake.storage(), None).await.unwrap();
    let wrapped: Vec<Vec<u8>> = ring.iter().filter(|r| their_keys.contains(&r.key_id)).map(|r| r.wrapped_key.clone()).collect();
    assert_eq!(wrapped.len(), their_keys.len(), "every key of theirs is in the keyring before");
    let keyring_dir = dir.path().join("security/keyring");
    assert!(!files_holding(&keyring_dir, &wrapped).is_empty(), "the detector finds their keys before the erasure");
    // Their tokens, from bronze (email and phone).
    let their_tokens: BTreeSet<String> = {
        let uri = lake.bronze("alkasba_store", "customers").unwrap();
        let filter = deltalake::datafusion::prelude::col("id").eq(deltalake::datafusion::prelude::lit(victim.parse::<i64>().unwrap()));
        cells(&lake.scan(&uri, Some(filter), &["email_token", "phone_token"]).await.unwrap())
    };
    assert!(!their_tokens.is_empty());
    let gold_before = gold_figures(&lake).await;

    // A writer killed between upload and commit left a keyring file holding their key.
    let committed = files_holding(&keyring_dir, &wrapped);
    let orphan = keyring_dir.join(format!("part-00000-{}-c000.snappy.parquet", uuid::Uuid::new_v4()));
    std::fs::copy(&committed[0], &orphan).unwrap();

    // A transform that started before the erasure holds the lake's fence: the erasure marks it,
    // from then on no transform or aggregate starts, and it runs once the running one is done.
    let store = lake.object_store().unwrap();
    let running = match lease::take(store.clone(), Path::from(lease::FENCE), "transform:running", lease::Mode::Shared, lease::FENCE_TTL, Duration::ZERO).await.unwrap() {
        lease::Taken::Held(l) => l,
        lease::Taken::Busy { holder, .. } => panic!("the fence is held by {holder}"),
    };
    let request = Request { email: None, customer_id: Some(victim.parse().unwrap()), request_id: Some("it-1".into()) };
    let jobs = async {
        loop {
            let fence: serde_json::Value = serde_json::from_slice(&store.get(&Path::from(lease::FENCE)).await.unwrap().bytes().await.unwrap()).unwrap();
            if fence["exclusive"]["owner"] == "erase:it-1" {
                break;
            }
            tokio::task::yield_now().await;
        }
        let refused = silver::transform(&lake, None, silver::TransformOptions::default(), || true).await.unwrap_err();
        assert!(matches!(refused, alkasba_batch::Error::Busy { .. }) && refused.to_string().contains("erase:it-1"), "{refused}");
        let refused = gold::aggregate(&lake, &Default::default(), None, || true).await.unwrap_err();
        assert!(refused.is_retryable() && refused.to_string().contains("erase:it-1"), "{refused}");
        running.release().await.unwrap();
    };
    let (report, ()) = tokio::join!(erase::erase(&lake, &local.ingest.tokens, &request), jobs);
    let report = report.unwrap();
    assert_eq!(report.outcome, "erased");
    // Released: the jobs run again.
    assert!(!silver::transform(&lake, None, silver::TransformOptions::default(), || true).await.unwrap().is_empty());
    assert!(report.keys_destroyed >= their_keys.len() && report.keyring_files_removed >= 1, "{report:?}");

    // Every value of theirs: "erased". Everyone else's: opens.
    let ring = read_keyring(&lake.keyring().unwrap(), lake.storage(), None).await.unwrap();
    let mut opener = Opener::new(local.ingest.keys.clone(), ring).with_erased(erase::erased_keys(&lake).await.unwrap());
    for s in &theirs {
        let e = opener.open(&s.place, &s.value).await.unwrap_err();
        assert!(matches!(e, PiiError::Erased { .. }) && e.to_string().starts_with("erased"), "{}: {e}", s.place);
    }
    for s in &others {
        opener.open(&s.place, &s.value).await.unwrap_or_else(|e| panic!("{} of someone else: {e}", s.place));
    }
    // Moved: another person's value copied to a third record, and to another table.
    let (a, b) = (&others[0], others.iter().find(|o| o.place != others[0].place && o.key_id != others[0].key_id).unwrap());
    let e = opener.open(&b.place, &a.value).await.unwrap_err();
    assert!(e.to_string().contains("does not open here"), "{e}");
    let other_table = a.place.replace("alkasba_store.customers/", "alkasba_store.refunds/").replace("alkasba_store.orders/", "alkasba_store.refunds/");
    assert!(opener.open(&other_table, &a.value).await.unwrap_err().to_string().contains("does not open here"));

    // Time travel: no version of the keyring gives their keys back.
    let latest = lake.open(&lake.keyring().unwrap()).await.unwrap().version().unwrap();
    for v in 0..=latest {
        let mut t = lake.open(&lake.keyring().unwrap()).await.unwrap();
        if t.load_version(v).await.is_err() {
            continue;
        }
        match alkasba_lake::read::scan(&t, None, &["key_id"]).await {
            // Files of that version removed by the erasure: unreadable, as it should be.
            Err(_) => {}
            Ok(batches) => {
                let ids = cells(&batches);
                assert!(their_keys.is_disjoint(&ids), "keyring version {v} still holds their keys");
            }
        }
    }
    // The committed copies are gone at once; the orphan only after maintain's keyring vacuum.
    assert_eq!(files_holding(&keyring_dir, &wrapped), vec![orphan.display().to_string()], "only the orphan is left before maintain");
    let opts = MaintainOptions { keyring_retention: chrono::Duration::zero(), ..MaintainOptions::default() };
    maintain::maintain(&lake, Some(&["security/keyring".to_string()]), &opts, || true).await.unwrap();
    let left = files_holding(dir.path(), &wrapped);
    assert!(left.is_empty(), "after maintain, files still hold their wrapped keys: {left:?}");
    // Nor does anything under the keyring name them (the log keeps statistics of key ids only).
    let named: Vec<Vec<u8>> = their_tokens.iter().map(|t| t.as_bytes().to_vec()).collect();
    let naming = files_holding(&keyring_dir, &named);
    assert!(naming.is_empty(), "keyring files still name their tokens: {naming:?}");

    // Their tokens are nowhere in any table; gold's numbers hold after the next build.
    for spec in alkasba_batch::registry::registry().tables() {
        if spec.path == alkasba_lake::layout::ERASURES {
            continue;
        }
        let found = cells(&lake.scan(&lake.table(&spec.path).unwrap(), None, &[]).await.unwrap());
        assert!(their_tokens.is_disjoint(&found), "{} still holds their tokens", spec.path);
    }
    build(&lake).await;
    assert_eq!(gold_figures(&lake).await, gold_before, "gold's figures changed");

    // The audit: one row for this erasure, naming its keys; none of their data.
    let audit = lake.scan(&lake.table("ops/erasures").unwrap(), None, &[]).await.unwrap();
    let audit_cells = cells(&audit);
    assert!(audit_cells.contains("it-1") && audit_cells.contains("customer_id") && audit_cells.contains("erased"), "{audit_cells:?}");
    assert!(!audit_cells.contains(&victim), "the audit holds no customer id");

    // Again, and for someone the lake never saw: both succeed and say there was nothing.
    let again = erase::erase(&lake, &local.ingest.tokens, &Request { email: None, customer_id: Some(victim.parse().unwrap()), request_id: Some("it-2".into()) }).await.unwrap();
    assert_eq!((again.outcome, again.keys_destroyed), ("no data", 0), "{again:?}");
    let nobody = erase::erase(&lake, &local.ingest.tokens, &Request { email: Some("nobody@example.org".into()), customer_id: None, request_id: None }).await.unwrap();
    assert_eq!(nobody.outcome, "no data");
    let rows: usize = lake.scan(&lake.table("ops/erasures").unwrap(), None, &[]).await.unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 3, "every request is audited once");
    // A request naming nobody, or two people, is refused with a reason.
    let bad = Request { email: Some("a@b.c".into()), customer_id: Some(1), request_id: None };
    assert!(erase::erase(&lake, &local.ingest.tokens, &bad).await.unwrap_err().to_string().contains("not both"));
}
