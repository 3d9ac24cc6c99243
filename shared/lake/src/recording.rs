//! An object store that remembers the objects it uploaded, so a writer whose commit lost its race
//! deletes exactly the data files it wrote for it. delta-rs uploads a write's files before it
//! tries the commit and names them with a random writer id, and its write operation gives no
//! handle on them when the commit fails; wrapping the store it writes through is the one place
//! that sees every upload (no library offers this, hence by hand: a delegating wrapper).
//!
//! For the keyring it also writes every data file with If-None-Match (`PutMode::Create`):
//! delta-rs names data files with a random id and never means to replace one, and the bucket
//! policy refuses an unconditional put of a keyring data file to every writer (docs/security.md),
//! so a writer can add keys and never overwrite one.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use futures::stream::BoxStream;

/// Delegates everything to `inner`, and keeps the path of every object written.
#[derive(Debug)]
pub(crate) struct Recording {
    inner: Arc<dyn ObjectStore>,
    written: Arc<Mutex<Vec<Path>>>,
    /// Data files (outside `_delta_log/`) are put only if absent.
    create_only: bool,
}

impl Recording {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> (Self, Arc<Mutex<Vec<Path>>>) {
        let written = Arc::new(Mutex::new(Vec::new()));
        (Self { inner, written: written.clone(), create_only: false }, written)
    }

    /// Puts data files with If-None-Match (the keyring's writers).
    pub(crate) fn create_only(mut self) -> Self {
        self.create_only = true;
        self
    }

    fn record(&self, location: &Path) {
        if let Ok(mut w) = self.written.lock() {
            w.push(location.clone());
        }
    }
}

impl fmt::Display for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recording({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Recording {
    async fn put_opts(&self, location: &Path, payload: PutPayload, mut opts: PutOptions) -> Result<PutResult> {
        // The log's own writes (commits are already conditional; checkpoints) are left as they are.
        if self.create_only && matches!(opts.mode, PutMode::Overwrite) && !location.as_ref().starts_with("_delta_log") {
            opts.mode = PutMode::Create;
        }
        let r = self.inner.put_opts(location, payload, opts).await?;
        self.record(location);
        Ok(r)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        // Recorded before the upload completes: a part-written object is as orphaned as a whole.
        self.record(location);
        if self.create_only && !location.as_ref().starts_with("_delta_log") {
            // A multipart upload cannot be made conditional through object_store: the parts are
            // gathered and put once, with If-None-Match (keyring files are a few MB at most).
            return Ok(Box::new(CreateOnce { inner: self.inner.clone(), location: location.clone(), opts, parts: Arc::new(Mutex::new(Vec::new())) }));
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.record(to);
        Ok(())
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        self.record(to);
        Ok(())
    }
}

/// A "multipart" upload that keeps its parts in memory and puts them as one object, only if
/// absent, on completion.
#[derive(Debug)]
struct CreateOnce {
    inner: Arc<dyn ObjectStore>,
    location: Path,
    opts: PutMultipartOptions,
    parts: Arc<Mutex<Vec<PutPayload>>>,
}

#[async_trait]
impl MultipartUpload for CreateOnce {
    fn put_part(&mut self, data: PutPayload) -> deltalake::logstore::object_store::UploadPart {
        if let Ok(mut p) = self.parts.lock() {
            p.push(data);
        }
        Box::pin(async { Ok(()) })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let parts = self.parts.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        let payload: PutPayload = parts.into_iter().flat_map(|p| p.into_iter()).collect();
        let opts = PutOptions { mode: PutMode::Create, tags: self.opts.tags.clone(), attributes: self.opts.attributes.clone(), ..Default::default() };
        self.inner.put_opts(&self.location, payload, opts).await
    }

    async fn abort(&mut self) -> Result<()> {
        if let Ok(mut p) = self.parts.lock() {
            p.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::logstore::object_store::memory::InMemory;
    use deltalake::logstore::object_store::{Error, ObjectStoreExt};

    /// The keyring's writers add files and never replace one: a data file put twice is refused,
    /// by a single put or a multipart upload alike; the log's own files are left alone.
    #[tokio::test]
    async fn a_create_only_store_never_overwrites_a_data_file() {
        let (store, written) = Recording::new(Arc::new(InMemory::new()));
        let store = store.create_only();
        let file = Path::from("part-00000-a-c000.snappy.parquet");
        store.put(&file, PutPayload::from("keys")).await.unwrap();
        assert!(matches!(store.put(&file, PutPayload::from("other keys")).await, Err(Error::AlreadyExists { .. })));
        let mut upload = store.put_multipart(&file).await.unwrap();
        upload.put_part(PutPayload::from("more")).await.unwrap();
        assert!(matches!(upload.complete().await, Err(Error::AlreadyExists { .. })), "a multipart upload over it is refused too");
        let fresh = Path::from("part-00001-b-c000.snappy.parquet");
        let mut upload = store.put_multipart(&fresh).await.unwrap();
        upload.put_part(PutPayload::from("ab")).await.unwrap();
        upload.put_part(PutPayload::from("cd")).await.unwrap();
        upload.complete().await.unwrap();
        assert_eq!(store.get(&fresh).await.unwrap().bytes().await.unwrap().as_ref(), b"abcd");
        assert_eq!(store.get(&file).await.unwrap().bytes().await.unwrap().as_ref(), b"keys", "the first content stays");
        let pointer = Path::from("_delta_log/_last_checkpoint");
        store.put(&pointer, PutPayload::from("1")).await.unwrap();
        store.put(&pointer, PutPayload::from("2")).await.unwrap();
        assert!(written.lock().unwrap().contains(&fresh));
    }
}
