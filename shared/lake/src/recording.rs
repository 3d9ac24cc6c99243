//! An object store that remembers the objects it uploaded, so a writer whose commit lost its race
//! deletes exactly the data files it wrote for it. delta-rs uploads a write's files before it
//! tries the commit and names them with a random writer id, and its write operation gives no
//! handle on them when the commit fails; wrapping the store it writes through is the one place
//! that sees every upload (no library offers this, hence by hand: a delegating wrapper).

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use futures::stream::BoxStream;

/// Delegates everything to `inner`, and keeps the path of every object written.
#[derive(Debug)]
pub(crate) struct Recording {
    inner: Arc<dyn ObjectStore>,
    written: Arc<Mutex<Vec<Path>>>,
}

impl Recording {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> (Self, Arc<Mutex<Vec<Path>>>) {
        let written = Arc::new(Mutex::new(Vec::new()));
        (Self { inner, written: written.clone() }, written)
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
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let r = self.inner.put_opts(location, payload, opts).await?;
        self.record(location);
        Ok(r)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        // Recorded before the upload completes: a part-written object is as orphaned as a whole.
        self.record(location);
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
