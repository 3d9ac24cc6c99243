//! A bucket's object store that keeps the Delta commit files (`_delta_log/<version>.json`) and
//! checkpoints (`_delta_log/<version>.checkpoint[...].parquet`) it has read or written, so a
//! process reads each once.
//!
//! delta-rs reads a table's new commits twice when it brings a table up to date (once for the
//! protocol and metadata, once for the file list), and the lake reads them a third time for
//! their commit metadata (ingestion's progress); a fetcher also reads back its own commits.
//! Each is a request (on LocalStack ~1.5 ms of CPU; on AWS billed). Commit files are written
//! once (put-if-absent) and never change, so what was read stays true, with one exception: a
//! table deleted and created again reuses the names. A listing of the log (which every table
//! update makes before reading) carries each file's e-tag, and an entry whose listed e-tag
//! differs is dropped; the listed e-tags of commit files are also noted, so the lake can tell a
//! cached table was not replaced from the listing its own update made, without a HEAD.
//! Checkpoints are read in ranges (the Parquet footer, then its row groups), again on every
//! marker lookup of an application id the log tail does not hold: the first ranged read of one
//! reads it whole and later ranges are cut from memory. Hand-written: object_store has no read
//! cache, and a general one could not know which files never change.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

/// Files kept at most; past it the cache starts again empty (a process reads a table's recent
/// commits, a few KB each, and its latest checkpoint).
const MAX_FILES: usize = 4096;
/// Bytes kept at most, with the same rule: a checkpoint of a table with thousands of files is
/// a few MB, and a fetcher's memory is bounded (under 200 MB per 10,000-record task; at
/// 1,000,000 orders this cache held well under 1 MB).
const MAX_BYTES: usize = 32 << 20;

#[derive(Debug, Default)]
struct Kept {
    files: HashMap<Path, (ObjectMeta, bytes::Bytes)>,
    bytes: usize,
    /// The e-tag of each commit file as a listing last showed it, kept or not, until taken
    /// ([`LogCache::take_listed`]); emptied past [`MAX_FILES`] entries.
    listed: HashMap<Path, Option<String>>,
}

type Files = Arc<Mutex<Kept>>;

#[derive(Debug)]
pub(crate) struct LogCache {
    inner: Arc<dyn ObjectStore>,
    files: Files,
}

impl std::fmt::Display for LogCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogCache({})", self.inner)
    }
}

/// A file of a Delta log, `<table>/_delta_log/<20-digit version><rest>`: its log directory,
/// version and the rest of its name.
fn log_file(path: &Path) -> Option<(&str, u64, &str)> {
    let (log, file) = path.as_ref().rsplit_once('/')?;
    let (version, rest) = file.split_at_checked(20)?;
    (log.ends_with("/_delta_log") && version.bytes().all(|b| b.is_ascii_digit())).then_some((log, version.parse().ok()?, rest))
}

/// `_delta_log/<20 digits>.json`.
fn is_commit(path: &Path) -> bool {
    log_file(path).is_some_and(|(_, _, rest)| rest == ".json")
}

/// `_delta_log/<20 digits>.checkpoint.parquet`, or a part or a V2 checkpoint
/// (`<20 digits>.checkpoint.<part>.<parts>.parquet`, `<20 digits>.checkpoint.<uuid>.parquet`):
/// named by their version, written once.
fn is_checkpoint(path: &Path) -> bool {
    log_file(path).is_some_and(|(_, _, rest)| rest.starts_with(".checkpoint.") && rest.ends_with(".parquet"))
}

/// A read without conditions or a version: what the cache can answer (whole, or a range of a
/// checkpoint).
fn plain(o: &GetOptions) -> bool {
    o.if_match.is_none() && o.if_none_match.is_none() && o.if_modified_since.is_none() && o.if_unmodified_since.is_none() && o.version.is_none() && !o.head
}

/// `range` of a kept object of `len` bytes, or object_store's own error for a range outside it.
fn cut(location: &Path, range: &deltalake::logstore::object_store::GetRange, len: u64) -> Result<Range<u64>> {
    range.as_range(len).map_err(|e| deltalake::logstore::object_store::Error::Generic { store: "LogCache", source: format!("{location}: {e}").into() })
}

impl LogCache {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner, files: Files::default() }
    }

    fn keep(&self, meta: ObjectMeta, bytes: bytes::Bytes) {
        // A poisoned lock only means another task panicked mid-insert; the map is still sound.
        let mut kept = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.files.len() >= MAX_FILES || kept.bytes + bytes.len() > MAX_BYTES {
            kept.files.clear();
            kept.bytes = 0;
        }
        if is_checkpoint(&meta.location)
            && let Some((log, version, _)) = log_file(&meta.location)
        {
            // Readers start from the newest checkpoint: what it supersedes is not read again.
            let mut freed = 0;
            kept.files.retain(|path, (_, b)| {
                let stale = log_file(path).is_some_and(|(l, v, _)| l == log && v < version);
                freed += if stale { b.len() } else { 0 };
                !stale
            });
            kept.bytes -= freed;
        }
        kept.bytes += bytes.len();
        if let Some((_, old)) = kept.files.insert(meta.location.clone(), (meta, bytes)) {
            kept.bytes -= old.len();
        }
    }

    fn cached(&self, path: &Path) -> Option<(ObjectMeta, bytes::Bytes)> {
        self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner).files.get(path).cloned()
    }

    /// The e-tag of `path` as this process last read, wrote or listed it (`Some(None)`: the
    /// store gave none), `None` when not kept. Only as fresh as that: a caller that must see a
    /// table deleted and created again asks the store.
    pub(crate) fn kept_tag(&self, path: &Path) -> Option<Option<String>> {
        self.cached(path).map(|(meta, _)| meta.e_tag)
    }

    /// The e-tag a listing showed for commit file `path` since the last call for it, taken
    /// (`Some(None)`: the store gave none); `None` when no listing has shown it since. A table
    /// update lists its log from the last checkpoint: a caller that takes the entry before the
    /// update and again after learns whether that listing saw the file, and as what, without a
    /// request of its own.
    pub(crate) fn take_listed(&self, path: &Path) -> Option<Option<String>> {
        self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner).listed.remove(path)
    }

    /// The whole of `location` (a checkpoint), kept or read now and kept.
    async fn whole(&self, location: &Path) -> Result<(ObjectMeta, bytes::Bytes)> {
        if let Some(kept) = self.cached(location) {
            return Ok(kept);
        }
        let got = self.inner.get_opts(location, GetOptions::default()).await?;
        let meta = got.meta.clone();
        let bytes = got.bytes().await?;
        self.keep(meta.clone(), bytes.clone());
        Ok((meta, bytes))
    }
}

/// Drops the entry of a listed commit file or checkpoint whose e-tag or size is not the one
/// kept, and notes a listed commit file's e-tag ([`LogCache::take_listed`]).
fn check(files: &Files, listed: &ObjectMeta) {
    let commit = is_commit(&listed.location);
    if !(commit || is_checkpoint(&listed.location)) {
        return;
    }
    let mut kept = files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if commit {
        if kept.listed.len() >= MAX_FILES {
            kept.listed.clear();
        }
        kept.listed.insert(listed.location.clone(), listed.e_tag.clone());
    }
    if let Some((meta, _)) = kept.files.get(&listed.location)
        && (meta.e_tag != listed.e_tag || meta.size != listed.size)
        && let Some((_, old)) = kept.files.remove(&listed.location)
    {
        kept.bytes -= old.len();
    }
}

/// `bytes` (the `range` of the object `meta` describes) as a read's result.
fn answer(meta: ObjectMeta, bytes: bytes::Bytes, range: Range<u64>) -> GetResult {
    GetResult { payload: GetResultPayload::Stream(futures::stream::once(async move { Ok(bytes) }).boxed()), meta, range, attributes: Default::default() }
}

#[async_trait]
impl ObjectStore for LogCache {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let create = matches!(opts.mode, PutMode::Create) && is_commit(location);
        let bytes = create.then(|| payload.iter().flat_map(|b| b.iter().copied()).collect::<Vec<u8>>());
        let put = self.inner.put_opts(location, payload, opts).await?;
        // Our own commit, written only if absent: its content is what we sent.
        if let Some(bytes) = bytes {
            let meta = ObjectMeta { location: location.clone(), last_modified: chrono::Utc::now(), size: bytes.len() as u64, e_tag: put.e_tag.clone(), version: put.version.clone() };
            self.keep(meta, bytes.into());
        }
        Ok(put)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let whole = is_commit(location) && options.range.is_none();
        if !((whole || is_checkpoint(location)) && plain(&options)) {
            return self.inner.get_opts(location, options).await;
        }
        let (meta, bytes) = self.whole(location).await?;
        let range = match &options.range {
            Some(r) => cut(location, r, bytes.len() as u64)?,
            None => 0..bytes.len() as u64,
        };
        let part = bytes.slice(range.start as usize..range.end as usize);
        Ok(answer(meta, part, range))
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        if !is_checkpoint(location) {
            return self.inner.get_ranges(location, ranges).await;
        }
        let (_, bytes) = self.whole(location).await?;
        let len = bytes.len() as u64;
        ranges.iter().map(|r| cut(location, &r.clone().into(), len).map(|r| bytes.slice(r.start as usize..r.end as usize))).collect()
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let files = self.files.clone();
        self.inner.list(prefix).inspect_ok(move |m| check(&files, m)).boxed()
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        let files = self.files.clone();
        self.inner.list_with_offset(prefix, offset).inspect_ok(move |m| check(&files, m)).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects.iter().for_each(|m| check(&self.files, m));
        Ok(listed)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use deltalake::logstore::object_store::memory::InMemory;
    use deltalake::logstore::object_store::{ObjectStoreExt, PutMode};

    use super::*;

    async fn read(store: &LogCache, path: &Path) -> bytes::Bytes {
        store.get_opts(path, GetOptions::default()).await.unwrap().bytes().await.unwrap()
    }

    #[tokio::test]
    async fn commit_files_are_read_once_and_a_listing_drops_one_rewritten() {
        let inner = Arc::new(InMemory::new());
        let cache = LogCache::new(inner.clone());
        let commit = Path::from("t/_delta_log/00000000000000000000.json");
        let other = Path::from("t/_delta_log/_last_checkpoint");
        inner.put(&commit, PutPayload::from_static(b"v0")).await.unwrap();
        inner.put(&other, PutPayload::from_static(b"a")).await.unwrap();
        assert_eq!(read(&cache, &commit).await, "v0");
        assert_eq!(read(&cache, &other).await, "a");
        // The table deleted and created again behind the cache's back: the kept commit is
        // answered until a listing shows its new e-tag; other files are never kept.
        inner.put(&commit, PutPayload::from_static(b"v0 again")).await.unwrap();
        inner.put(&other, PutPayload::from_static(b"b")).await.unwrap();
        assert_eq!(read(&cache, &commit).await, "v0", "answered from the cache");
        assert_eq!(read(&cache, &other).await, "b", "not a commit file: read through");
        let listed: Vec<ObjectMeta> = cache.list(Some(&Path::from("t/_delta_log"))).try_collect().await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(read(&cache, &commit).await, "v0 again", "dropped by the listing, read again");
        // What the listing showed of the commit file, once; nothing of other files.
        let tag = inner.head(&commit).await.unwrap().e_tag;
        assert!(tag.is_some());
        assert_eq!(cache.take_listed(&commit), Some(tag), "as listed");
        assert_eq!(cache.take_listed(&commit), None, "taken: no listing since");
        assert_eq!(cache.take_listed(&other), None, "not a commit file");
        // A commit written through the cache (put if absent) is kept as sent.
        let next = Path::from("t/_delta_log/00000000000000000001.json");
        cache.put_opts(&next, PutPayload::from_static(b"v1"), PutOptions { mode: PutMode::Create, ..Default::default() }).await.unwrap();
        inner.delete(&next).await.unwrap();
        assert_eq!(read(&cache, &next).await, "v1", "our own commit is not read back");
        // Ranged and conditional reads go to the store.
        let ranged = cache.get_opts(&commit, GetOptions { range: Some((0..2).into()), ..Default::default() }).await.unwrap().bytes().await.unwrap();
        assert_eq!(ranged, "v0");
        assert!(!is_commit(&Path::from("t/_delta_log/00000000000000000001.checkpoint.parquet")) && !is_commit(&Path::from("t/00000000000000000001.json")));
    }

    /// Counts the reads that reach the store under the cache.
    #[derive(Debug)]
    struct Counting {
        inner: InMemory,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl std::fmt::Display for Counting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Counting")
        }
    }

    #[async_trait]
    impl ObjectStore for Counting {
        async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn a_checkpoint_is_read_whole_once_and_its_ranges_cut_from_memory() {
        let inner = Arc::new(Counting { inner: InMemory::new(), reads: Default::default() });
        let cache = LogCache::new(inner.clone());
        let reads = || inner.reads.load(std::sync::atomic::Ordering::SeqCst);
        let checkpoint = Path::from("t/_delta_log/00000000000000000010.checkpoint.parquet");
        inner.put(&checkpoint, PutPayload::from_static(b"0123456789")).await.unwrap();
        let ranged = |r: std::ops::Range<u64>| GetOptions { range: Some(r.into()), ..Default::default() };
        let got = cache.get_opts(&checkpoint, ranged(6..10)).await.unwrap();
        assert_eq!((got.range.clone(), got.meta.size), (6..10, 10));
        assert_eq!(got.bytes().await.unwrap(), "6789");
        assert_eq!(cache.get_ranges(&checkpoint, &[0..2, 4..5]).await.unwrap(), vec![bytes::Bytes::from("01"), bytes::Bytes::from("4")]);
        let suffix = GetOptions { range: Some(deltalake::logstore::object_store::GetRange::Suffix(3)), ..Default::default() };
        assert_eq!(cache.get_opts(&checkpoint, suffix).await.unwrap().bytes().await.unwrap(), "789");
        assert_eq!(read(&cache, &checkpoint).await, "0123456789");
        assert_eq!(reads(), 1, "one read of the whole file answered every range");
        // As object_store answers ranges: one ending past the end is cut there, one starting
        // past it is an error (not a panic).
        assert_eq!(cache.get_ranges(&checkpoint, &[8..12, 0..1]).await.unwrap(), vec![bytes::Bytes::from("89"), bytes::Bytes::from("0")]);
        assert!(cache.get_opts(&checkpoint, ranged(11..12)).await.is_err());
        assert!(cache.get_ranges(&checkpoint, &[0..1, 11..12]).await.is_err());
        // Rewritten (a table created again): a listing drops it and the next read goes to the store.
        inner.put(&checkpoint, PutPayload::from_static(b"abcdefghijkl")).await.unwrap();
        let _: Vec<ObjectMeta> = cache.list(Some(&Path::from("t/_delta_log"))).try_collect().await.unwrap();
        assert_eq!(cache.get_range(&checkpoint, 10..12).await.unwrap(), "kl");
        assert_eq!(reads(), 2);
        // Its e-tag as kept; a file not kept has none.
        let head = inner.head(&checkpoint).await.unwrap();
        assert_eq!(cache.kept_tag(&checkpoint), Some(head.e_tag));
        assert_eq!(cache.kept_tag(&Path::from("t/_delta_log/00000000000000000011.json")), None);
        // A newer checkpoint of the same table supersedes what came before it; another table's
        // files stay.
        let (commit, other) = (Path::from("t/_delta_log/00000000000000000009.json"), Path::from("u/_delta_log/00000000000000000001.json"));
        for p in [&commit, &other] {
            inner.put(p, PutPayload::from_static(b"{}")).await.unwrap();
            read(&cache, p).await;
        }
        let newer = Path::from("t/_delta_log/00000000000000000020.checkpoint.parquet");
        inner.put(&newer, PutPayload::from_static(b"c20")).await.unwrap();
        read(&cache, &newer).await;
        assert_eq!((cache.kept_tag(&commit), cache.kept_tag(&checkpoint)), (None, None));
        assert!(cache.kept_tag(&other).is_some() && cache.kept_tag(&newer).is_some());
        assert_eq!(cache.files.lock().unwrap().bytes, 5, "c20 and u's {{}}");
        for name in ["00000000000000000010.checkpoint.0000000001.0000000002.parquet", "00000000000000000010.checkpoint.80a083e8-7026-4e79-81be-64bd76c43a11.parquet"] {
            assert!(is_checkpoint(&Path::from(format!("t/_delta_log/{name}"))), "{name}");
        }
        for name in ["t/_delta_log/00000000000000000010.json", "t/00000000000000000010.checkpoint.parquet", "t/_delta_log/0000000000000000001x.checkpoint.parquet", "t/_delta_log/1.checkpoint.parquet"]
        {
            assert!(!is_checkpoint(&Path::from(name)), "{name}");
        }
    }
}
