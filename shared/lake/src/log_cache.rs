//! A bucket's object store that keeps the Delta commit files (`_delta_log/<version>.json`) it
//! has read or written, so a process reads each commit once.
//!
//! delta-rs reads a table's new commits twice when it brings a table up to date (once for the
//! protocol and metadata, once for the file list), and the lake reads them a third time for
//! their commit metadata (ingestion's progress); a fetcher also reads back its own commits.
//! Each is a request (on LocalStack ~1.5 ms of CPU; on AWS billed). Commit files are written
//! once (put-if-absent) and never change, so what was read stays true, with one exception: a
//! table deleted and created again reuses the names. A listing of the log (which every table
//! update makes before reading) carries each file's e-tag, and an entry whose listed e-tag
//! differs is dropped. Hand-written: object_store has no read cache, and a general one could
//! not know which files never change.

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

/// Commit files kept at most; past it the cache starts again empty (a process reads a table's
/// recent commits, a few KB each).
const MAX_FILES: usize = 4096;

type Files = Arc<Mutex<HashMap<Path, (ObjectMeta, bytes::Bytes)>>>;

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

/// `_delta_log/<20 digits>.json`.
fn is_commit(path: &Path) -> bool {
    path.filename().is_some_and(|f| f.len() == 25 && f.ends_with(".json") && f[..20].bytes().all(|b| b.is_ascii_digit())) && path.as_ref().contains("/_delta_log/")
}

/// A plain read of the whole object: what the cache can answer.
fn plain(o: &GetOptions) -> bool {
    o.if_match.is_none() && o.if_none_match.is_none() && o.if_modified_since.is_none() && o.if_unmodified_since.is_none() && o.range.is_none() && o.version.is_none() && !o.head
}

impl LogCache {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner, files: Files::default() }
    }

    fn keep(&self, meta: ObjectMeta, bytes: bytes::Bytes) {
        // A poisoned lock only means another task panicked mid-insert; the map is still sound.
        let mut files = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if files.len() >= MAX_FILES {
            files.clear();
        }
        files.insert(meta.location.clone(), (meta, bytes));
    }

    fn cached(&self, path: &Path) -> Option<(ObjectMeta, bytes::Bytes)> {
        self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(path).cloned()
    }
}

/// Drops the entry of a listed commit file whose e-tag or size is not the one kept.
fn check(files: &Files, listed: &ObjectMeta) {
    if !is_commit(&listed.location) {
        return;
    }
    let mut files = files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((kept, _)) = files.get(&listed.location)
        && (kept.e_tag != listed.e_tag || kept.size != listed.size)
    {
        files.remove(&listed.location);
    }
}

fn answer(meta: ObjectMeta, bytes: bytes::Bytes) -> GetResult {
    let range: Range<u64> = 0..bytes.len() as u64;
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
        if !(is_commit(location) && plain(&options)) {
            return self.inner.get_opts(location, options).await;
        }
        if let Some((meta, bytes)) = self.cached(location) {
            return Ok(answer(meta, bytes));
        }
        let got = self.inner.get_opts(location, options).await?;
        let meta = got.meta.clone();
        let bytes = got.bytes().await?;
        self.keep(meta.clone(), bytes.clone());
        Ok(answer(meta, bytes))
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
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
}
