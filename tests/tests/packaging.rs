//! Issue 21: what ships is what is tested. `scripts/package.sh` builds the deployment zips with
//! cargo-lambda (`scripts/test.sh` builds the x86_64 ones of the ingestion and real-time
//! functions before the tests: this machine's architecture); this test unpacks the planner's and
//! the fetcher's and runs their `bootstrap` (not the workspace's binaries) under the runner
//! through a full ingestion of the simulator's store into LocalStack: bronze must equal the
//! store's truth, key for key and version for version, with personal data sealed.
//!
//! `ALKASBA_PACKAGES=.local/package/arm64` runs the arm64 packages the template deploys instead
//! (`scripts/package.sh --arch arm64 planner fetcher webhook realtime` builds them; not in CI: an
//! arm64 build from a cold target dir takes ~25 min here): the runner starts them under QEMU's
//! user-mode emulator (`alkasba_runner::emulate`), so the same ingestion checks the Graviton
//! binaries too.
//!
//! It also checks what Lambda needs of a package: one executable file named `bootstrap` at the
//! zip's root, linked for Amazon Linux 2023's glibc, and no query engine in the ingestion and
//! real-time functions (≤ 20 MB zipped, issue 21's target).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alkasba_it::{Stack, lake, plan, repo, sim_credentials, wait_completed};
use alkasba_lake::read::strings;
use alkasba_runner::{Runner, RunnerConfig};
use alkasba_sim::{SimConfig, serve};
use serde_json::Value;

/// The functions `scripts/test.sh` packages for this test.
const PACKAGED: [&str; 4] = ["planner", "fetcher", "webhook", "realtime"];

/// Lambda's limit is 50 MB for a zip uploaded directly; issue 21 asks ≤ 20 MB of these.
const MAX_ZIP_BYTES: u64 = 20 * 1024 * 1024;

fn packages() -> PathBuf {
    std::env::var_os("ALKASBA_PACKAGES").map(PathBuf::from).unwrap_or_else(|| repo().join(".local/package/x86_64"))
}

/// The entries of `zip` (name, unix mode), and the zip unpacked into `into`.
fn unpack(zip: &Path, into: &Path) -> Vec<(String, u32)> {
    // zipfile does not restore permissions: each file gets the mode the zip records for it (as
    // Lambda's unpacking does).
    let script = "import os, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nfor i in z.infolist():\n    print(i.filename, i.external_attr >> 16)\n    os.chmod(z.extract(i, sys.argv[2]), (i.external_attr >> 16) & 0o777)";
    let out = std::process::Command::new("python3").args(["-c", script]).arg(zip).arg(into).output().unwrap();
    assert!(out.status.success(), "unpacking {}: {}", zip.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (name, mode) = l.rsplit_once(' ').unwrap();
            (name.to_string(), mode.parse().unwrap())
        })
        .collect()
}

/// Every packaged function unpacked into a temporary directory (`<function>/bootstrap`, as the
/// runner's `--bin-dir` takes them), after checking each zip is what Lambda needs.
fn unpacked_packages() -> tempfile::TempDir {
    let dir = packages();
    let unpacked = tempfile::tempdir().unwrap();
    for f in PACKAGED {
        let zip = dir.join(f).join("bootstrap.zip");
        assert!(zip.is_file(), "{} is missing: run `scripts/package.sh --arch x86_64 {}` (scripts/test.sh does)", zip.display(), PACKAGED.join(" "));
        let size = std::fs::metadata(&zip).unwrap().len();
        assert!(size <= MAX_ZIP_BYTES, "{f}: {size} bytes zipped, above {MAX_ZIP_BYTES}: does it link DataFusion again? (cargo tree -p {f} -i datafusion)");
        let entries = unpack(&zip, &unpacked.path().join(f));
        assert_eq!(entries.len(), 1, "{f}: {entries:?}");
        let (name, mode) = &entries[0];
        assert_eq!(name, "bootstrap", "{f}: Lambda runs the file named bootstrap");
        assert_eq!(mode & 0o111, 0o111, "{f}: bootstrap must be executable (mode {mode:o})");
        // Linked against glibc 2.34 at most (Amazon Linux 2023), whatever this machine has.
        let binary = std::fs::read(unpacked.path().join(f).join("bootstrap")).unwrap();
        let text = String::from_utf8_lossy(&binary);
        let newest = text.match_indices("GLIBC_2.").filter_map(|(i, _)| text[i + 8..].split(|c: char| !c.is_ascii_digit()).next()?.parse::<u32>().ok()).max().unwrap_or(0);
        assert!(newest <= 34, "{f}: needs GLIBC_2.{newest}, newer than Amazon Linux 2023's 2.34");
    }
    unpacked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packaged_bootstraps_ingest_the_store_exactly() {
    let unpacked = unpacked_packages();
    let stack = Stack::deploy("pkg", &repo().join("infra/template.yaml"), false).unwrap();
    let mut sim = SimConfig::small(3, 1_200);
    sim.invalid_rate = 0.02;
    sim.credentials = sim_credentials(&stack.name).await;
    let (addr, state, _) = serve(sim, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let mut cfg = RunnerConfig::new(repo().join("infra/template.yaml"), &stack.name, unpacked.path());
    cfg.functions = vec!["planner".into(), "fetcher".into()];
    cfg.log_dir = Some(repo().join(".local/logs").join(&stack.name));
    cfg.extra_env.insert("SOURCE_BASE_URLS".into(), format!("alkasba_store={base},competitor_prices={base},exchange_rates={base}"));
    let runner = Runner::start(cfg).await.unwrap();
    let mut reports = runner.subscribe();
    let runs = plan(&runner, &["alkasba_store.orders", "alkasba_store.customers"], None).await;
    wait_completed(&lake(&stack), &runs, Duration::from_secs(300)).await;
    runner.shutdown().await;

    let lake = lake(&stack);
    for resource in ["orders", "customers"] {
        let truth: Value = reqwest::get(format!("{base}/_sim/truth/{resource}")).await.unwrap().json().await.unwrap();
        let valid: HashSet<(String, String)> = truth["valid"].as_array().unwrap().iter().map(|v| (v["id"].to_string(), v["date_modified_gmt"].as_str().unwrap().to_string())).collect();
        let batches = lake.select(&lake.bronze("alkasba_store", resource).unwrap(), None, &["_key", "_version"]).await.unwrap();
        let mut got = Vec::new();
        for b in batches {
            let (k, v) = (strings(b.column(0)).unwrap(), strings(b.column(1)).unwrap());
            got.extend((0..b.num_rows()).map(|i| (k.value(i).to_string(), v.value(i).to_string())));
        }
        let set: HashSet<(String, String)> = got.iter().cloned().collect();
        assert_eq!(got.len(), set.len(), "{resource}: a key and version twice in bronze");
        assert_eq!(set, valid, "{resource}: bronze differs from the store");
    }
    // Personal data is sealed: no customer's email, phone or name in any object of the bucket.
    let finder = alkasba_it::personal_data_finder(&state.store());
    let s3 = aws_sdk_s3::Client::new(&alkasba_it::sdk().await);
    let bucket = stack.output("LakeBucketName").to_string();
    for v in alkasba_it::object_versions(&s3, &bucket).await.into_iter().filter(|v| v.is_latest) {
        let body = s3.get_object().bucket(&bucket).key(&v.key).send().await.unwrap().body.collect().await.unwrap().into_bytes();
        assert!(finder.find(&body[..]).is_none(), "plaintext personal data in s3://{bucket}/{}", v.key);
    }
    // The packaged binaries' cold starts (what Lambda reports as Init Duration), for the record.
    let mut inits = Vec::new();
    while let Ok(r) = reports.try_recv() {
        if let Some(d) = r.invocation.init_duration {
            inits.push(format!("{} {:.1} ms", r.function, d.as_secs_f64() * 1e3));
        }
    }
    println!("packaged cold starts (process start to first /next): {}", inits.join(", "));
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packaged_webhook_and_realtime_land_every_delivery_once() {
    let unpacked = unpacked_packages();
    let stack = Stack::deploy("pkgrt", &repo().join("infra/template.yaml"), false).unwrap();
    let mut sim = SimConfig::small(5, 300);
    sim.credentials = sim_credentials(&stack.name).await;
    let secret = sim.credentials.webhook_secret.clone();
    let (addr, _state, _) = serve(sim, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let mut cfg = RunnerConfig::new(repo().join("infra/template.yaml"), &stack.name, unpacked.path());
    cfg.functions = vec!["webhook".into(), "realtime".into()];
    cfg.log_dir = Some(repo().join(".local/logs").join(&stack.name));
    let runner = Runner::start(cfg).await.unwrap();
    let url = format!("http://{}/", runner.http_endpoints()["WebhookFunction"]);

    // The store's signed webhooks for 15 s (WooCommerce's creation ping first), then the
    // scheduled tick writes what realtime holds to the events table.
    let log = alkasba_it::sim_webhook_run(&base, &url, 10, 15, serde_json::json!([]), Duration::from_secs(180)).await;
    assert_eq!(log["ping_status"], 200, "the packaged webhook answers WooCommerce's creation ping");
    let deliveries = log["deliveries"].as_array().unwrap();
    let refused: Vec<&Value> = deliveries.iter().filter(|d| d["status"] != serde_json::json!(202)).collect();
    assert!(refused.is_empty(), "the packaged webhook refused deliveries: {:?}", &refused[..refused.len().min(5)]);
    // A delivery is named by its payload's HMAC (hex of the signature), as realtime stores it.
    let accepted: HashSet<String> = deliveries.iter().map(|d| alkasba_it::payload_id(d["signature"].as_str().unwrap())).collect();
    assert!(accepted.len() > 50, "{} deliveries", accepted.len());
    // A wrong signature is refused by the packaged webhook too.
    let client = reqwest::Client::new();
    let body = br#"{"id": 1}"#;
    let forged = client
        .post(&url)
        .header("x-wc-webhook-topic", "order.created")
        .header("x-wc-webhook-delivery-id", "forged")
        .header("x-wc-webhook-signature", alkasba_realtime::signature::sign_woo(b"not-the-secret", body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    assert_ne!(secret, "not-the-secret");

    let table = format!("{}/bronze/realtime/store_events", stack.output("LakeRoot"));
    let got: Vec<Value> = alkasba_it::eventually(Duration::from_secs(120), "every accepted delivery in the events table", || async {
        // The tick writes whatever the batches have applied so far; repeated until all are in.
        let tick = runner.invoke("RealtimeFunction", &serde_json::json!({"tick": "now"})).await.ok()?;
        matches!(tick.outcome, alkasba_runner::Outcome::Success(_)).then_some(())?;
        let rows = alkasba_it::duckdb(&format!("SELECT delivery_id FROM delta_scan('{table}')")).ok()?;
        (rows.len() >= accepted.len()).then_some(rows)
    })
    .await;
    runner.shutdown().await;
    let ids: Vec<String> = got.iter().map(|r| r["delivery_id"].as_str().unwrap().to_string()).collect();
    let set: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), set.len(), "a delivery stored twice");
    assert_eq!(set, accepted, "the events table differs from the deliveries the webhook accepted");
    println!("packaged webhook and realtime: {} deliveries accepted, each once in the events table", accepted.len());
    stack.cleanup().await;
}
