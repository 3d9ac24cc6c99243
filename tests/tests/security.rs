//! Issue 19's acceptance tests on LocalStack: the real template, the real binaries under the
//! runner, the simulator over HTTP.
//!
//! * A customer ingested over two runs is erased through the erasure queue (the `erase`
//!   function): every sealed value of theirs fails with "erased" (KMS of LocalStack), other
//!   people's open; after `maintain`, no current object in the bucket nor message in any queue
//!   holds their wrapped keys, and older object versions expire by the bucket's lifecycle within
//!   the erasure deadline; gold's figures are the same after the next build; the audit row
//!   exists; the CLI says "erased" where the value was, and "no data" for a stranger.
//! * The deployed policies (IAM, the PII key's, the bucket's) grant what docs/security.md says
//!   and nothing more (LocalStack stores policies without enforcing them: the checks are on the
//!   documents).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use alkasba_it::{Stack, bin_dir, eventually, lake, plan, repo, sdk, sim_credentials, wait_completed};
use alkasba_lake::Lake;
use alkasba_lake::arrow::array::Array;
use alkasba_lake::read::strings;
use alkasba_pii::{KmsKeys, Opener, place, read_keyring};
use alkasba_runner::{Outcome, Runner, RunnerConfig};
use alkasba_sim::{SimConfig, serve};
use base64::Engine;
use serde_json::{Value, json};

async fn invoke(runner: &Runner, function: &str, event: Value) -> Value {
    match runner.invoke(function, &event).await.unwrap().outcome {
        Outcome::Success(v) => v,
        other => panic!("{function} failed: {other:?}"),
    }
}

async fn build(runner: &Runner) {
    invoke(runner, "TransformFunction", json!({})).await;
    invoke(runner, "AggregateFunction", json!({})).await;
}

/// (place, sealed value, customer id) of every bronze row of `stream`.
async fn sealed(lake: &Lake, stream: &str, customer_column: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for b in lake.scan(&lake.bronze("alkasba_store", stream).unwrap(), None, &["_key", "_sealed", customer_column]).await.unwrap() {
        let (k, s, c) = (strings(b.column(0)).unwrap(), strings(b.column(1)).unwrap(), strings(b.column(2)).unwrap());
        for i in (0..b.num_rows()).filter(|i| !s.is_null(*i) && !c.is_null(*i)) {
            out.push((place(&format!("alkasba_store.{stream}"), k.value(i), "_sealed"), s.value(i).to_string(), c.value(i).to_string()));
        }
    }
    out
}

/// Every gold mart as sorted rows, without its token columns (they become pseudonyms).
async fn gold(lake: &Lake) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for m in alkasba_batch::gold::MARTS {
        let mut rows = Vec::new();
        for b in lake.scan(&lake.table(&format!("gold/{}", m.name)).unwrap(), None, &[]).await.unwrap() {
            let cols: Vec<_> = (0..b.num_columns()).filter(|i| !alkasba_batch::erase::catalogue::holds_tokens("gold", b.schema().field(*i).name())).map(|i| strings(b.column(i)).unwrap()).collect();
            rows.extend((0..b.num_rows()).map(|r| cols.iter().map(|c| if c.is_null(r) { "-".into() } else { c.value(r).to_string() }).collect::<Vec<_>>().join("|")));
        }
        rows.sort();
        out.insert(m.name.to_string(), rows);
    }
    out
}

fn holds_any(bytes: &[u8], needles: &[Vec<u8>]) -> bool {
    needles.iter().any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_request_leaves_nothing_of_the_person_that_opens_or_names_them() {
    let stack = Stack::deploy("sec", &repo().join("infra/template.yaml"), false).unwrap();
    let mut cfg = SimConfig::small(41, 800);
    cfg.credentials = sim_credentials(&stack.name).await;
    let (addr, _state, _) = serve(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{addr}");
    let mut rc = RunnerConfig::new(repo().join("infra/template.yaml"), &stack.name, bin_dir());
    rc.functions = ["planner", "fetcher", "transform", "aggregate", "maintain", "erase"].map(String::from).to_vec();
    rc.concurrency = 2;
    rc.log_dir = Some(repo().join(".local/logs").join(&stack.name));
    rc.extra_env.insert("SOURCE_BASE_URLS".into(), format!("alkasba_store={base},competitor_prices={base},exchange_rates={base}"));
    rc.extra_env.insert("PAGES_PER_COMMIT".into(), "1".into());
    // maintain's keyring vacuum takes orphan files at once here (nothing else writes by then).
    rc.extra_env.insert("KEYRING_RETENTION_MINUTES".into(), "0".into());
    let runner = Runner::start(rc).await.unwrap();
    let lake = lake(&stack);
    let store = ["alkasba_store.products", "alkasba_store.customers", "alkasba_store.orders", "alkasba_store.refunds"];
    let runs = plan(&runner, &store, None).await;
    wait_completed(&lake, &runs, Duration::from_secs(300)).await;
    reqwest::Client::new().post(format!("{base}/_sim/mutate?n=150")).send().await.unwrap();
    let runs = plan(&runner, &["alkasba_store.customers", "alkasba_store.orders"], None).await;
    wait_completed(&lake, &runs, Duration::from_secs(300)).await;
    build(&runner).await;
    // The second plan measured how far the lake was behind the store (issue 21's watermark-lag
    // alarms watch this EMF metric, per stream).
    let text = std::fs::read_to_string(repo().join(".local/logs").join(&stack.name).join("PlannerFunction.log")).unwrap();
    let emf = text.lines().filter_map(|l| serde_json::from_str::<Value>(&l[l.find('{')?..]).ok()).find(|v| v.get("WatermarkLagSeconds").is_some() && v["Stream"] == "alkasba_store.orders");
    let emf = emf.unwrap_or_else(|| panic!("no WatermarkLagSeconds for alkasba_store.orders in the planner's output"));
    assert!(emf["WatermarkLagSeconds"].as_f64().is_some_and(|s| s > 0.0), "the store changed after the first run: {emf}");
    let directive = &emf["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "AlkasbaLake", "{emf}");
    assert!(directive["Dimensions"][0].as_array().unwrap().iter().any(|d| d == "Stream") && emf["RequestId"].is_string(), "{emf}");

    let all: Vec<_> = [sealed(&lake, "customers", "id").await, sealed(&lake, "orders", "customer_id").await].concat();
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    all.iter().filter(|(p, _, c)| p.contains(".orders/") && c != "0").for_each(|(_, _, c)| *per.entry(c.as_str()).or_default() += 1);
    let victim = per.iter().max_by_key(|(_, n)| **n).map(|(c, _)| c.to_string()).unwrap();
    let (theirs, others): (Vec<_>, Vec<_>) = all.iter().cloned().partition(|(_, _, c)| *c == victim);
    let their_keys: BTreeSet<String> = theirs.iter().filter_map(|(_, v, _)| Opener::<KmsKeys>::key_id(v).map(str::to_string)).collect();
    let ring = read_keyring(&lake.keyring().unwrap(), lake.storage(), None).await.unwrap();
    let wrapped: Vec<Vec<u8>> = ring.iter().filter(|r| their_keys.contains(&r.key_id)).map(|r| r.wrapped_key.clone()).collect();
    assert!(theirs.len() >= 3 && wrapped.len() == their_keys.len(), "customer {victim}: {} values, {} keys", theirs.len(), wrapped.len());
    let needles: Vec<Vec<u8>> =
        wrapped.iter().flat_map(|k| [k.clone(), base64::engine::general_purpose::STANDARD.encode(k).into_bytes(), base64::engine::general_purpose::STANDARD_NO_PAD.encode(k).into_bytes()]).collect();
    let before = gold(&lake).await;

    // The shop's privacy tool asks through the queue; the erase function does it.
    let cfg = sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    sqs.send_message().queue_url(stack.output("ErasureRequestsQueueUrl")).message_body(json!({"customer_id": victim.parse::<i64>().unwrap()}).to_string()).send().await.unwrap();
    let erasures = lake.table("ops/erasures").unwrap();
    eventually(Duration::from_secs(180), "the erasure audited in ops/erasures", || async { lake.scan(&erasures, None, &[]).await.ok().filter(|b| b.iter().map(|b| b.num_rows()).sum::<usize>() == 1) })
        .await;

    let keys = Arc::new(KmsKeys::new(alkasba_pii::KmsClient::new(&cfg), stack.output("PiiKeyArn")));
    let ring = read_keyring(&lake.keyring().unwrap(), lake.storage(), None).await.unwrap();
    let mut opener = Opener::new(keys, ring).with_erased(alkasba_batch::erase::erased_keys(&lake).await.unwrap());
    for (p, v, _) in &theirs {
        let e = opener.open(p, v).await.unwrap_err();
        assert!(e.to_string().starts_with("erased"), "{p}: {e}");
    }
    for (p, v, _) in others.iter().take(30) {
        opener.open(p, v).await.unwrap_or_else(|e| panic!("{p} (someone else): {e}"));
    }

    invoke(&runner, "MaintainFunction", json!({"tables": ["security/keyring"]})).await;
    // No current object holds their keys; older versions are noncurrent, which the lifecycle
    // expires within the deadline.
    let s3 = aws_sdk_s3::Client::new(&cfg);
    let bucket = stack.output("LakeBucketName");
    let mut checked = 0;
    for v in alkasba_it::object_versions(&s3, bucket).await.into_iter().filter(|v| !v.delete_marker) {
        let obj = s3.get_object().bucket(bucket).key(&v.key).set_version_id(v.version_id.clone()).send().await.unwrap();
        let bytes = obj.body.collect().await.unwrap().into_bytes();
        checked += 1;
        if holds_any(&bytes, &needles) {
            assert!(!v.is_latest, "{} (current) still holds a wrapped key of theirs", v.key);
        }
    }
    assert!(checked > 50, "{checked} object versions checked");
    // LocalStack's CloudFormation does not apply a bucket's LifecycleConfiguration (checked:
    // GetBucketLifecycleConfiguration answers NoSuchLifecycleConfiguration), so the expiry of
    // old versions is checked on the template (see the policy test).
    assert_eq!(s3.get_bucket_versioning().bucket(bucket).send().await.unwrap().status().map(|s| s.as_str().to_string()), Some("Enabled".into()));
    // Nor does any message waiting in the stack's queues.
    for q in ["FetchTasksQueueUrl", "FetchTasksDlqUrl", "StoreEventsQueueUrl", "StoreEventsDlqUrl", "ErasureRequestsQueueUrl", "ErasureRequestsDlqUrl"] {
        let got = sqs.receive_message().queue_url(stack.output(q)).max_number_of_messages(10).visibility_timeout(0).send().await.unwrap();
        for m in got.messages() {
            assert!(!holds_any(m.body().unwrap_or_default().as_bytes(), &needles), "a message on {q} holds their keys");
        }
    }

    build(&runner).await;
    assert_eq!(gold(&lake).await, before, "gold's figures changed");

    // The CLI shows the erasure where their data was, and finds nothing of a stranger.
    let cli = |args: &[&str]| std::process::Command::new(bin_dir().join("alkasba")).args(args).args(["--stack", &stack.name]).env("AWS_ENDPOINT_URL", alkasba_it::ENDPOINT).output().unwrap();
    let root = stack.output("LakeRoot");
    let out = cli(&["pii", "decrypt", "--table", &format!("{root}/bronze/alkasba_store/customers"), "--keys", &victim]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("<erased: key") && !text.contains('@'), "{text}");
    let out = cli(&["pii", "erase", "--email", "stranger@example.org"]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("No data"), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // By email through the queue: the email crosses it encrypted, the function decrypts it.
    let out = cli(&["pii", "erase", "--email", "another.stranger@example.org", "--queue"]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("Queued"), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let audit = eventually(Duration::from_secs(120), "the queued erasure audited", || async {
        let rows = lake.scan(&erasures, None, &["requested_by", "outcome"]).await.ok()?;
        let cells: Vec<(String, String)> = rows
            .iter()
            .flat_map(|b| {
                let (r, o) = (strings(b.column(0)).unwrap(), strings(b.column(1)).unwrap());
                (0..b.num_rows()).map(move |i| (r.value(i).to_string(), o.value(i).to_string()))
            })
            .collect();
        (cells.len() == 3).then_some(cells)
    })
    .await;
    assert_eq!(audit.iter().filter(|(r, o)| r == "email" && o == "no data").count(), 2, "{audit:?}");
    let log = std::fs::read_to_string(repo().join(".local/logs").join(&stack.name).join("EraseFunction.log")).unwrap_or_default();
    assert!(!log.contains("another.stranger@example.org"), "the email reached the erase function's log");
    stack.cleanup().await;
}

/// `*` and `?` glob of IAM resource patterns.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// IAM hands policy documents back URL-encoded.
fn decode(doc: &str) -> Value {
    serde_json::from_str(doc).unwrap_or_else(|_| {
        let mut out = Vec::new();
        let b = doc.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                out.push(u8::from_str_radix(&doc[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(if b[i] == b'+' { b' ' } else { b[i] });
                i += 1;
            }
        }
        serde_json::from_slice(&out).unwrap()
    })
}

/// Allow statements of every inline policy of each role of the stack, by logical id.
async fn role_statements(stack: &Stack) -> BTreeMap<String, Vec<Value>> {
    let cfg = sdk().await;
    let (cfn, iam) = (aws_sdk_cloudformation::Client::new(&cfg), aws_sdk_iam::Client::new(&cfg));
    let resources = cfn.list_stack_resources().stack_name(&stack.name).send().await.unwrap();
    let mut out = BTreeMap::new();
    for r in resources.stack_resource_summaries().iter().filter(|r| r.resource_type() == Some("AWS::IAM::Role")) {
        let (id, name) = (r.logical_resource_id().unwrap().to_string(), r.physical_resource_id().unwrap().to_string());
        let mut statements = Vec::new();
        for p in iam.list_role_policies().role_name(&name).send().await.unwrap().policy_names() {
            let doc = iam.get_role_policy().role_name(&name).policy_name(p).send().await.unwrap();
            let doc = decode(doc.policy_document());
            statements.extend(doc["Statement"].as_array().unwrap().iter().filter(|s| s["Effect"] == "Allow").cloned());
        }
        out.insert(id, statements);
    }
    out
}

/// Roles allowed `action` on a resource matching `resource`.
fn allowed(roles: &BTreeMap<String, Vec<Value>>, action: &str, resource: &str) -> BTreeSet<String> {
    roles.iter().filter(|(_, st)| st.iter().any(|s| list(&s["Action"]).iter().any(|a| glob(a, action)) && list(&s["Resource"]).iter().any(|r| glob(r, resource)))).map(|(id, _)| id.clone()).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Point 3 of issue 19, rule by rule, on the deployed documents (and, for what LocalStack does
/// not deploy here, on the template).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_policies_grant_least_privilege() {
    let stack = Stack::deploy("iam", &repo().join("infra/template.yaml"), false).unwrap();
    let cfg = sdk().await;
    let roles = role_statements(&stack).await;
    assert!(roles.len() >= 10, "{:?}", roles.keys());
    let bucket = stack.output("LakeBucketName");
    let pii_key = stack.output("PiiKeyArn");
    let object = |path: &str| format!("arn:aws:s3:::{bucket}/{path}");

    // Only the PII reader decrypts with the PII key; only the sealing writers make data keys;
    // both only with the encryption context named.
    assert_eq!(allowed(&roles, "kms:Decrypt", pii_key), set(&["PiiReaderRole"]));
    assert_eq!(allowed(&roles, "kms:GenerateDataKey", pii_key), set(&["FetcherRole", "WebhookRole"]));
    for (id, st) in &roles {
        for s in st.iter().filter(|s| list(&s["Resource"]).iter().any(|r| glob(r, pii_key))) {
            assert!(s["Condition"]["Null"]["kms:EncryptionContext:source"] == "false", "{id}: PII key use without the encryption context: {s}");
        }
    }
    // The key policy: administrators manage, never use; users are named, with the context.
    let kms = aws_sdk_kms::Client::new(&cfg);
    let policy = decode(kms.get_key_policy().key_id(pii_key).policy_name("default").send().await.unwrap().policy().unwrap());
    for s in policy["Statement"].as_array().unwrap() {
        let actions = list(&s["Action"]);
        assert!(!actions.iter().any(|a| a == "kms:*" || a == "*"), "no kms:* on the PII key: {s}");
        let uses = actions.iter().any(|a| ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:ReEncryptFrom"].iter().any(|u| glob(a, u)));
        if uses {
            assert!(!s["Condition"]["ArnEquals"]["aws:PrincipalArn"].is_null(), "use of the PII key by a named role only: {s}");
            assert_eq!(s["Condition"]["Null"]["kms:EncryptionContext:stream"], "false", "{s}");
        }
    }
    let decrypters: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| list(&s["Action"]).iter().any(|a| glob(a, "kms:Decrypt")))
        .flat_map(|s| list(&s["Condition"]["ArnEquals"]["aws:PrincipalArn"]))
        .collect();
    assert_eq!(decrypters.len(), 1, "{decrypters:?}");
    assert!(decrypters[0].ends_with(&format!("role/{}-pii-reader", stack.name)), "{decrypters:?}");

    // The public webhook writes nothing to the bucket (issue 20: one queue send per delivery;
    // realtime applies a replay once).
    for path in ["_realtime/replay/x", "_realtime/state.json.zst", "bronze/realtime/store_events/part-0.parquet"] {
        assert!(!allowed(&roles, "s3:PutObject", &object(path)).contains("WebhookRole"), "the webhook can write {path}");
    }

    // The keyring: the writers append, maintain and erase delete, nobody overwrites its log.
    let keyring_file = object("security/keyring/part-0.parquet");
    assert_eq!(allowed(&roles, "s3:PutObject", &keyring_file), set(&["FetcherRole", "RealtimeRole", "MaintainRole", "EraseRole"]));
    assert_eq!(allowed(&roles, "s3:DeleteObject", &keyring_file), set(&["MaintainRole", "EraseRole"]));
    let s3 = aws_sdk_s3::Client::new(&cfg);
    let bp = decode(s3.get_bucket_policy().bucket(bucket).send().await.unwrap().policy().unwrap());
    let denies: Vec<&Value> = bp["Statement"].as_array().unwrap().iter().filter(|s| s["Effect"] == "Deny").collect();
    assert!(
        denies.iter().any(|s| list(&s["Action"]).contains(&"s3:PutObject".into())
            && list(&s["Resource"]).iter().any(|r| glob(r, &object("security/keyring/_delta_log/00000000000000000007.json")))
            && s["Condition"]["Null"]["s3:if-none-match"] == "true"),
        "the bucket refuses an unconditional put over a keyring commit: {bp}"
    );
    let overwrite_guard = denies
        .iter()
        .find(|s| list(&s["Action"]).contains(&"s3:PutObject".into()) && list(&s["Resource"]).iter().any(|r| glob(r, &object("security/keyring/part-00000-x-c000.zstd.parquet"))))
        .expect("a deny on unconditional puts of keyring data files");
    assert_eq!(overwrite_guard["Condition"]["Null"]["s3:if-none-match"], "true", "{overwrite_guard}");
    assert_eq!(list(&overwrite_guard["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]).len(), 2, "only maintain and erase rewrite: {overwrite_guard}");
    let delete_guard =
        denies.iter().find(|s| list(&s["Action"]).contains(&"s3:DeleteObject".into()) && list(&s["Resource"]).iter().any(|r| glob(r, &keyring_file))).expect("a deny on keyring deletes");
    let exempt = list(&delete_guard["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]);
    assert!(exempt.len() == 2 && exempt.iter().any(|a| a.ends_with("-maintain")) && exempt.iter().any(|a| a.ends_with("-erase")), "{exempt:?}");

    // Listing is limited to each role's prefixes.
    for (id, st) in &roles {
        for s in st.iter().filter(|s| list(&s["Action"]).iter().any(|a| glob(a, "s3:ListBucket")) && list(&s["Resource"]).iter().any(|r| r.ends_with(bucket))) {
            assert!(!list(&s["Condition"]["StringLike"]["s3:prefix"]).is_empty(), "{id} lists the whole lake bucket: {s}");
        }
    }
    // The token key: only the functions that compute tokens.
    let token_key = stack.output("TokenKeySecretArn");
    assert_eq!(allowed(&roles, "secretsmanager:GetSecretValue", token_key), set(&["FetcherRole", "WebhookRole", "EraseRole"]));
    // Old object versions exist (an overwrite is recoverable).
    assert_eq!(s3.get_bucket_versioning().bucket(bucket).send().await.unwrap().status().map(|s| s.as_str().to_string()), Some("Enabled".into()));

    // What LocalStack does not deploy here (analytics, functions, lifecycle), on the template.
    let t: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(repo().join("infra/template.yaml")).unwrap()).unwrap();
    let r = &t["Resources"];
    let sub = |v: &serde_yaml_ng::Value| match v {
        serde_yaml_ng::Value::Tagged(tag) => tag.value.as_str().unwrap_or_default().to_string(),
        other => other.as_str().unwrap_or_default().to_string(),
    };
    let analyst: Vec<String> = r["AnalystRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|s| s["Action"].as_str() == Some("s3:GetObject"))
        .flat_map(|s| s["Resource"].as_sequence().unwrap().iter().map(sub).collect::<Vec<_>>())
        .collect();
    assert_eq!(analyst, vec!["${LakeBucket.Arn}/silver/*".to_string(), "${LakeBucket.Arn}/gold/*".to_string()], "the analyst reads silver and gold only");
    assert!(r["WebhookFunction"]["Properties"]["ReservedConcurrentExecutions"].as_u64().is_some_and(|n| n > 0), "the public webhook has reserved concurrency");
    for id in ["PiiKey", "LakeKey", "LakeBucket", "TokenKey", "StoreCredentials", "CompetitorFeedCredentials", "ExchangeRateFeedCredentials", "WebhookSigningSecret", "DashboardAccessSecret"] {
        assert_eq!(r[id]["DeletionPolicy"].as_str(), Some("Retain"), "{id} outlives the stack");
    }
    let rules = r["LakeBucket"]["Properties"]["LifecycleConfiguration"]["Rules"].as_sequence().unwrap();
    let noncurrent = rules.iter().filter_map(|x| x["NoncurrentVersionExpiration"]["NoncurrentDays"].as_u64()).min();
    assert!(noncurrent.is_some_and(|d| d <= 30), "old versions expire within the erasure deadline: {noncurrent:?}");
    let errors = rules.iter().find(|x| x["Prefix"].as_str() == Some("errors/")).and_then(|x| x["ExpirationInDays"].as_u64());
    assert!(errors.is_some_and(|d| d <= 30), "dead-letter pages expire within the erasure deadline: {errors:?}");
    stack.cleanup().await;
}

/// Point 4: checkov (pinned in tests/checkov.lock) finds no failed check in the template, and
/// every check it skips is skipped with its reason written beside the suppression.
#[test]
fn checkov_passes_and_every_suppression_says_why() {
    let checkov = repo().join(".local/checkov/bin/checkov");
    assert!(checkov.is_file(), "{} is missing: run localstack/install.sh", checkov.display());
    let out = std::process::Command::new(&checkov).args(["--framework", "cloudformation", "--output", "json", "--skip-download", "-f"]).arg(repo().join("infra/template.yaml")).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("checkov's report: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    let summary = &report["summary"];
    assert!(summary["passed"].as_u64().unwrap() > 100 && summary["parsing_errors"] == 0, "{summary}");
    let failed: Vec<String> = report["results"]["failed_checks"].as_array().unwrap().iter().map(|c| format!("{} {} ({})", c["check_id"], c["resource"], c["check_name"])).collect();
    assert!(failed.is_empty(), "checkov failed checks:\n{}", failed.join("\n"));
    for c in report["results"]["skipped_checks"].as_array().unwrap() {
        let why = c["check_result"]["suppress_comment"].as_str().unwrap_or_default();
        assert!(why.len() >= 40, "{} on {} is skipped without a reason: {why:?}", c["check_id"], c["resource"]);
    }
}
