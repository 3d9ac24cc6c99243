//! The floors of ingestion's CPU work, on pages already in memory, on every core:
//! * **ours**: the fetcher's own record path (`process_page`: read → validate → tokenise → seal
//!   → Arrow) and the Parquet encoding of the keyring, quarantine and bronze batches;
//! * **bare**: the same pages decoded by arrow-json (the page's array as one `List<Struct>`
//!   value, the schema inferred beforehand, untimed) and written as Parquet, nothing else: what
//!   the bare libraries need for the same bytes, so "ours / bare" is the share of the machine our
//!   own code keeps.
//!
//! `alkasba-bench floor` runs both against an in-process simulator (no LocalStack), for quick
//! iterations and profiling (`perf record -g target/release/alkasba-bench floor`);
//! `alkasba-bench ingest` runs them after the end-to-end run on the same pages.

use std::sync::Arc;
use std::time::Instant;

use alkasba_lake::arrow::array::{Array, ListArray, StructArray};
use alkasba_lake::arrow::datatypes::{DataType, Field};
use alkasba_lake::arrow::json::ReaderBuilder;
use alkasba_lake::arrow::json::reader::infer_json_schema_from_iterator;
use alkasba_lake::arrow::record_batch::RecordBatch;
use alkasba_pii::{KeyService, LocalKeys, Sealer, Tokenizer, keyring_batch};
use alkasba_records::record::{Origin, Prepared, Processed, quarantine_batch};
use alkasba_sim::{SimConfig, serve};
use alkasba_sources::{Page, first_url, with_param};
use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use serde_json::Value;

/// One page: its number, URL and raw body.
pub type RawPage = (u64, String, bytes::Bytes);

/// What one floor did.
pub struct Floor {
    pub records: u64,
    pub seconds: f64,
    /// Parquet bytes written (in memory).
    pub parquet_bytes: usize,
    /// CPU seconds of this process while it ran (both cores' worth).
    pub cpu_seconds: f64,
}

impl Floor {
    pub fn rate(&self) -> f64 {
        self.records as f64 / self.seconds
    }

    /// Records, time, rate, CPU and bytes per record, in one line.
    pub fn summary(&self, threads: usize) -> String {
        let n = self.records.max(1) as f64;
        format!(
            "{} records in {:.2} s on {threads} threads = {:.0} records/s ({:.1} µs CPU per record, {:.0} bytes of Parquet per record)",
            self.records,
            self.seconds,
            self.rate(),
            self.cpu_seconds * 1e6 / n,
            self.parquet_bytes as f64 / n
        )
    }
}

#[derive(Args)]
pub struct FloorArgs {
    /// Orders in the simulated store.
    #[arg(long, default_value_t = 100_000)]
    orders: u32,
    /// Pages per group (a fetcher's commit; its PAGES_PER_COMMIT default).
    #[arg(long, default_value_t = 100)]
    pages_per_commit: u64,
    /// Times each floor is run, alternated with the other (the best of each is kept; the first
    /// warms the allocator).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Only our path (for profiling it alone).
    #[arg(long)]
    ours_only: bool,
    /// Also time each step of our path alone, on one thread, over the same records (where our
    /// CPU per record goes).
    #[arg(long)]
    stages: bool,
    /// Instead, measure the resident memory one group of each of these sizes (pages) takes
    /// through our path, on this thread: what bounds a fetcher's group size (issue 20).
    #[arg(long, value_delimiter = ',')]
    memory: Vec<u64>,
}

/// `alkasba-bench floor`: both floors against an in-process simulator.
pub async fn run(a: FloorArgs) -> Result<()> {
    let mut sim = SimConfig::small(42, a.orders);
    sim.shape.customers = (a.orders / 5).max(10);
    sim.invalid_rate = 0.01;
    let (user, pass) = (sim.credentials.consumer_key.clone(), sim.credentials.consumer_secret.clone());
    let (addr, _state, _server) = serve(sim, "127.0.0.1:0".parse()?).await?;
    let base = format!("http://{addr}");
    let files = alkasba_sources::load_dir(std::path::Path::new("config/sources")).context("config/sources (run from the repository root)")?;
    let store = files.iter().find(|f| f.source.name == "alkasba_store").context("store source")?;
    let orders = store.streams.iter().find(|s| s.name == "orders").context("orders stream")?;
    let mut source = store.source.clone();
    source.base_url = url::Url::parse(&base)?;
    let first = first_url(&source, orders, None, chrono::Utc::now().date_naive());
    let pages = (a.orders as u64).div_ceil(100);
    eprintln!("machine: {}; fetching {pages} pages of the simulator's orders into memory (not timed)", crate::machine());
    let raw = fetch_pages(&first, pages, &user, &pass).await?;
    let prep = Prepared::new("alkasba_store", orders);
    let tokens = Tokenizer::new(&hex::encode([7u8; 32]))?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // Memory first, on a fresh process: the allocator keeps what earlier runs freed.
    if !a.memory.is_empty() {
        for &size in &a.memory {
            group_memory(&prep, &tokens, &raw, size).await?;
        }
        return Ok(());
    }
    let runs = alternated(&prep, &tokens, &raw, a.pages_per_commit, a.repeat, !a.ours_only).await?;
    let ours = runs.ours()?;
    println!("ours  {}", ours.summary(threads));
    if a.stages {
        stages(&prep, &tokens, &raw).await?;
    }
    if a.ours_only {
        return Ok(());
    }
    let bare = runs.bare()?;
    println!("bare  {}: arrow-json → Parquet, nothing else", bare.summary(threads));
    println!("runs  {}", runs.spread());
    println!("ours / bare = {:.0}% (target ≥ 40%)", 100.0 * ours.rate() / bare.rate());
    Ok(())
}

/// The runs of both floors, each kept.
pub struct Runs {
    pub ours: Vec<Floor>,
    pub bare: Vec<Floor>,
}

impl Runs {
    fn best(runs: &[Floor]) -> Option<&Floor> {
        runs.iter().max_by(|x, y| x.rate().total_cmp(&y.rate()))
    }

    /// Our path's best run.
    pub fn ours(&self) -> Result<&Floor> {
        Self::best(&self.ours).context("no run of our path")
    }

    /// The bare libraries' best run.
    pub fn bare(&self) -> Result<&Floor> {
        Self::best(&self.bare).context("no run of the bare libraries")
    }

    /// Every run's rate, in the order run: how far the host moved meanwhile.
    pub fn spread(&self) -> String {
        let rates = |runs: &[Floor]| runs.iter().map(|f| format!("{:.0}", f.rate())).collect::<Vec<_>>().join(", ");
        format!("records/s, ours {}; bare {}", rates(&self.ours), rates(&self.bare))
    }
}

/// Our path and (with `bare_too`) the bare libraries over `raw`, `repeat` times each,
/// alternated (ours, bare, ours, ...); each floor's best run stands for it. This host's speed
/// moves by 10-20% within minutes (the bare floor gave 64,539 and 77,965 records/s in two
/// runs of the same build minutes apart, docs/benchmarks.md): alternated runs meet the same
/// drift, and the best of a few is the floor least disturbed by it.
pub async fn alternated(prep: &Prepared, tokens: &Tokenizer, raw: &[RawPage], per_commit: u64, repeat: usize, bare_too: bool) -> Result<Runs> {
    let mut runs = Runs { ours: Vec::new(), bare: Vec::new() };
    for _ in 0..repeat.max(1) {
        runs.ours.push(ours(prep, tokens, raw, per_commit).await?);
        if bare_too {
            runs.bare.push(bare(raw, per_commit).await?);
        }
    }
    Ok(runs)
}

/// Pages 1..=`pages` of `first` read into memory, 8 requests at a time.
pub async fn fetch_pages(first: &url::Url, pages: u64, user: &str, pass: &str) -> Result<Vec<RawPage>> {
    let http = reqwest::Client::new();
    let mut raw: Vec<RawPage> = futures::stream::iter(1..=pages)
        .map(|p| {
            let url = with_param(first, "page", &p.to_string());
            let req = http.get(url.clone()).basic_auth(user, Some(pass));
            async move {
                let body = req.send().await?.error_for_status()?.bytes().await?;
                Ok::<_, reqwest::Error>((p, url.to_string(), body))
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<std::result::Result<_, _>>()?;
    raw.sort_by_key(|(p, _, _)| *p);
    Ok(raw)
}

/// CPU seconds (user + system) this process has used, threads included.
pub fn process_cpu_seconds() -> f64 {
    crate::cpu::of_pid("self").unwrap_or(f64::NAN)
}

/// Runs `work` on each group of `per_commit` pages, as many groups at once as there are cores.
async fn on_every_core<F, Fut>(raw: &[RawPage], per_commit: u64, work: F) -> Result<Floor>
where
    F: Fn(Vec<RawPage>) -> Fut,
    Fut: Future<Output = Result<(u64, usize)>> + Send + 'static,
{
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let groups: Vec<Vec<RawPage>> = raw.chunks(per_commit.max(1) as usize).map(<[_]>::to_vec).collect();
    let (cpu, t) = (process_cpu_seconds(), Instant::now());
    let results = futures::stream::iter(groups.into_iter().map(|g| tokio::spawn(work(g)))).buffer_unordered(threads).collect::<Vec<_>>().await;
    let seconds = t.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu;
    let (mut records, mut parquet_bytes) = (0u64, 0usize);
    for r in results {
        let (n, b) = r??;
        records += n;
        parquet_bytes += b;
    }
    Ok(Floor { records, seconds, parquet_bytes, cpu_seconds })
}

/// Our record path over `raw`, fresh keys each time (a first load: every person new).
pub async fn ours(prep: &Prepared, tokens: &Tokenizer, raw: &[RawPage], per_commit: u64) -> Result<Floor> {
    let (prep, tokens) = (Arc::new(prep.clone()), Arc::new(tokens.clone()));
    let keys = Arc::new(LocalKeys::random()?);
    on_every_core(raw, per_commit, move |group| {
        let (prep, tokens, keys) = (prep.clone(), tokens.clone(), keys.clone());
        async move { ours_group(&prep, &tokens, keys, group).await }
    })
    .await
}

/// One commit's worth of pages through the fetcher's CPU path, written as Parquet in memory.
/// Returns (records, Parquet bytes).
async fn ours_group<K: KeyService>(prep: &Prepared, tokens: &Tokenizer, keys: Arc<K>, group: Vec<RawPage>) -> Result<(u64, usize)> {
    let run_id = "floor";
    let mut sealer = Sealer::new(keys, alkasba_pii::kms_context("bench", "orders"));
    let mut done = Processed::default();
    done.expect_pages(group.len() as u64);
    let mut urls = Vec::new();
    for (page, url, body) in &group {
        let page_of = to_page(prep, *page, url, body)?;
        prep.process_page(&page_of, Origin { run_id, page: *page, url }, tokens, &mut sealer, &mut done).await?;
        urls.push((*page, url.clone()));
    }
    let now = chrono::Utc::now();
    let mut bytes = parquet(&keyring_batch(&sealer.take_new_keys())?)?;
    if !done.quarantined.is_empty() {
        let url_of = |p: u64| urls.iter().find(|(q, _)| *q == p).map(|(_, u)| u.clone()).unwrap_or_default();
        bytes += parquet(&quarantine_batch(&prep.id, &done.quarantined, run_id, url_of, now)?)?;
    }
    bytes += parquet(&prep.bronze_rows_batch(done.rows, run_id, now)?)?;
    Ok((done.fetched, bytes))
}

/// The resident memory of one group of `pages` pages through our path, on this thread, step by
/// step: the processed records held until the commit, then its bronze batch, then its Parquet.
/// Each figure is the peak above what was resident before the group (the raw pages, already in
/// memory, excluded), over the group's records; the allocator keeps what it freed, so a later
/// step's figure includes the earlier steps' peaks.
async fn group_memory(prep: &Prepared, tokens: &Tokenizer, raw: &[RawPage], pages: u64) -> Result<()> {
    let group = raw.get(..(pages as usize).min(raw.len())).context("no pages")?;
    let keys = Arc::new(LocalKeys::random()?);
    let mut sealer = Sealer::new(keys, alkasba_pii::kms_context("bench", "orders"));
    let mut done = Processed::default();
    done.expect_pages(group.len() as u64);
    let m = crate::mem::start();
    for (page, url, body) in group {
        let page_of = to_page(prep, *page, url, body)?;
        prep.process_page(&page_of, Origin { run_id: "floor", page: *page, url }, tokens, &mut sealer, &mut done).await?;
    }
    let processed = crate::mem::end(m);
    let batch = prep.bronze_rows_batch(std::mem::take(&mut done.rows), "floor", chrono::Utc::now())?;
    let built = crate::mem::end(m);
    drop(done);
    let arrow_mb = batch.get_array_memory_size() as f64 / 1e6;
    let bytes = parquet(&batch)?;
    let encoded = crate::mem::end(m);
    let n = batch.num_rows().max(1) as f64;
    let kb = |mb: f64| mb * 1024.0 / n;
    println!(
        "memory, one group of {pages} pages ({} records): processed {:.1} MB ({:.1} KB/record), + bronze batch {:.1} MB ({:.1} KB/record; its Arrow buffers {:.1} MB), + Parquet ({:.1} MB) {:.1} MB ({:.1} KB/record)",
        batch.num_rows(),
        processed.own(),
        kb(processed.own()),
        built.own(),
        kb(built.own()),
        arrow_mb,
        bytes as f64 / 1e6,
        encoded.own(),
        kb(encoded.own())
    );
    Ok(())
}

/// arrow-json → Parquet over `raw`, nothing else. The schema is inferred from every record
/// first (not timed: a reader is given its schema).
pub async fn bare(raw: &[RawPage], per_commit: u64) -> Result<Floor> {
    let mut values = Vec::new();
    for (page, _, body) in raw {
        let records: Vec<Value> = serde_json::from_slice(body).with_context(|| format!("page {page} is not a JSON array"))?;
        values.extend(records);
    }
    let schema = infer_json_schema_from_iterator(values.iter().map(|v| Ok(v.clone()))).context("inferring the pages' schema")?;
    drop(values);
    let row = DataType::Struct(schema.fields().clone());
    let page_field = Arc::new(Field::new("page", DataType::List(Arc::new(Field::new("item", row, true))), true));
    on_every_core(raw, per_commit, move |group| {
        let field = page_field.clone();
        async move { bare_group(field, group) }
    })
    .await
}

fn bare_group(page_field: Arc<Field>, group: Vec<RawPage>) -> Result<(u64, usize)> {
    // A page is one JSON array: decoded as one value of List<Struct>, its rows are the list's.
    let mut decoder = ReaderBuilder::new_with_field(page_field).with_batch_size(group.len().max(1)).build_decoder()?;
    for (page, _, body) in &group {
        let used = decoder.decode(body)?;
        if used != body.len() {
            bail!("page {page}: arrow-json stopped at byte {used} of {}", body.len());
        }
    }
    let Some(batch) = decoder.flush()? else { return Ok((0, 0)) };
    let list = batch.column(0).as_any().downcast_ref::<ListArray>().context("pages as a list")?;
    let rows = list.values().as_any().downcast_ref::<StructArray>().context("rows as a struct")?;
    let rows = RecordBatch::from(rows.clone());
    Ok((rows.num_rows() as u64, parquet(&rows)?))
}

/// A raw page as the fetcher's HTTP layer makes it (its records found, not parsed).
fn to_page(prep: &Prepared, page: u64, url: &str, body: &[u8]) -> Result<Page> {
    let text = std::str::from_utf8(body).with_context(|| format!("page {page} is not UTF-8"))?.to_string();
    Ok(Page::new(&prep.stream, url::Url::parse(url)?, Vec::new(), text)?)
}

/// The batch as a Parquet file in memory, encoded by the lake's appends' own function.
fn parquet(batch: &RecordBatch) -> Result<usize> {
    Ok(alkasba_lake::encode_parquet("floor", batch)?.len())
}

/// Each step of our record path timed alone, group by group (20 pages, as a fetcher commits),
/// on one thread: µs per record. The steps are the ones `Prepared::process_page` runs on a valid
/// record, called through their public functions.
async fn stages(prep: &Prepared, tokens: &Tokenizer, raw: &[RawPage]) -> Result<()> {
    const NAMES: [&str; 13] = [
        "find the records (text) and their fields, parse the fields read into Values",
        "validate",
        "key and version",
        "tokens (subject and token fields)",
        "split clear / sealed (on the text)",
        "the sealed part as JSON text",
        "seal (a key per new person, AES-GCM, base64)",
        "keyring rows to Parquet",
        "typed cells (from the fields read and the text kept)",
        "whole process_page (all of the above but the keyring)",
        "bronze batch from its builders (the appends are in process_page)",
        "bronze Arrow to Parquet",
        "total of the real path (process_page, Arrow, Parquet)",
    ];
    let mut secs = [0f64; 13];
    let (mut n, mut invalid, mut raw_bytes, mut bronze_bytes, mut keyring_bytes, mut extra_bytes, mut persons) = (0usize, 0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    for group in raw.chunks(20) {
        let mut lap = {
            let mut t = Instant::now();
            move |i: usize, secs: &mut [f64; 13]| {
                secs[i] += t.elapsed().as_secs_f64();
                t = Instant::now();
            }
        };
        let mut pages = Vec::with_capacity(group.len());
        for (page, url, body) in group {
            raw_bytes += body.len();
            pages.push(to_page(prep, *page, url, body)?);
        }
        let mut records = Vec::new();
        for p in &pages {
            for text in p.records() {
                let top = alkasba_sources::raw::valid_object(text).context("a record that is not an object")?;
                let view = prep.view(&top).context("the stream reads records whole")?;
                records.push((text, top, view));
            }
        }
        n += records.len();
        lap(0, &mut secs);
        invalid += records.iter().filter(|(_, _, r)| !prep.validator().validate(r).is_empty()).count();
        lap(1, &mut secs);
        let keys: Vec<Option<String>> = records.iter().map(|(_, _, r)| prep.key(r)).collect();
        std::hint::black_box(records.iter().filter(|(_, _, r)| prep.version_of(r).is_some()).count());
        lap(2, &mut secs);
        let mut subjects = Vec::with_capacity(records.len());
        for (_, _, r) in &records {
            let subject = prep.stream.subject.as_ref().and_then(|f| r.pointer(f)).and_then(Value::as_str).map(|s| tokens.token(s)).unwrap_or_default();
            for p in prep.stream.tokens.values() {
                std::hint::black_box(r.pointer(p).and_then(Value::as_str).map(|s| tokens.token(s)));
            }
            subjects.push(subject);
        }
        lap(3, &mut secs);
        let splits: Vec<_> = records.iter().map(|(text, top, _)| prep.in_clear().split_text(text, top)).collect();
        lap(4, &mut secs);
        let plain: Vec<String> = splits.iter().map(|s| s.sealed_json().unwrap_or_default()).collect();
        lap(5, &mut secs);
        let mut sealer = Sealer::new(Arc::new(LocalKeys::random()?), alkasba_pii::kms_context("bench", "orders"));
        lap(12, &mut secs); // the local key service's set-up (not ours to count): reset below
        for ((p, subject), key) in plain.iter().zip(&subjects).zip(&keys) {
            std::hint::black_box(sealer.seal(subject, &prep.place(key.as_deref(), alkasba_records::SEALED), p.as_bytes()).await?);
        }
        lap(6, &mut secs);
        let new_keys = sealer.take_new_keys();
        persons += new_keys.len();
        keyring_bytes += parquet(&keyring_batch(&new_keys)?)?;
        lap(7, &mut secs);
        for ((_, _, r), split) in records.iter().zip(&splits) {
            std::hint::black_box(prep.cells(r, split)?);
        }
        lap(8, &mut secs);
        for s in &splits {
            extra_bytes += s.kept.iter().map(|(_, k)| k.json()).filter(|j| j.starts_with(['[', '{'])).map(str::len).sum::<usize>();
        }
        drop(splits);
        drop(records);
        let mut sealer = Sealer::new(Arc::new(LocalKeys::random()?), alkasba_pii::kms_context("bench", "orders"));
        let mut done = Processed::default();
        lap(12, &mut secs);
        for (p, (page, url, _)) in pages.iter().zip(group) {
            prep.process_page(p, Origin { run_id: "floor", page: *page, url }, tokens, &mut sealer, &mut done).await?;
        }
        lap(9, &mut secs);
        let batch = prep.bronze_rows_batch(done.rows, "floor", chrono::Utc::now())?;
        lap(10, &mut secs);
        bronze_bytes += parquet(&batch)?;
        lap(11, &mut secs);
    }
    secs[12] = secs[9] + secs[10] + secs[11];
    println!("stages of our path, one thread, {n} records ({invalid} invalid; {:.0} bytes of JSON per record), µs per record:", raw_bytes as f64 / n as f64);
    for (name, s) in NAMES.iter().zip(secs) {
        println!("  {:>7.2}  {name}", s * 1e6 / n as f64);
    }
    println!(
        "  bronze {:.0} bytes/record; keyring {persons} keys, {:.0} bytes/record; nested clear fields {:.0} bytes of JSON text per record",
        bronze_bytes as f64 / n as f64,
        keyring_bytes as f64 / n as f64,
        extra_bytes as f64 / n as f64
    );
    Ok(())
}
