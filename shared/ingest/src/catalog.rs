//! The loaded sources: definitions, HTTP clients with their credentials, prepared streams.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use alkasba_sources::{Source, SourceFile, load_dir};
use url::Url;

use crate::http::HttpSource;
use crate::{Error, Result};
use alkasba_records::Prepared;
use alkasba_runtime::SecretSource;

/// The source files of `dir`, or the shipped ones.
pub fn source_files(dir: Option<&Path>) -> Result<Vec<SourceFile>> {
    match dir {
        Some(d) => Ok(load_dir(d)?),
        None => Ok(alkasba_sources::shipped()?),
    }
}

/// One source, ready to fetch.
#[derive(Debug)]
pub struct SourceEntry {
    pub source: Source,
    pub http: HttpSource,
    pub streams: BTreeMap<String, Prepared>,
}

/// Every source.
#[derive(Debug, Default)]
pub struct Catalog {
    pub sources: BTreeMap<String, SourceEntry>,
}

impl Catalog {
    /// Loads sources from `dir` (or the shipped ones), applies base-URL overrides and reads each
    /// source's credentials.
    pub async fn load<S: SecretSource>(dir: Option<&Path>, base_urls: &HashMap<String, Url>, secrets: &S) -> Result<Self> {
        let files = source_files(dir)?;
        for name in base_urls.keys() {
            if !files.iter().any(|f| &f.source.name == name) {
                return Err(Error::Config(format!("SOURCE_BASE_URLS names {name:?}, which is not a source")));
            }
        }
        // Every source's secret at once: start-up (a fetcher's cold start) waits for one round
        // trip, not one per source.
        let secrets_read = futures::future::try_join_all(files.iter().map(|f| async move {
            match f.source.auth.secret() {
                None => Ok(None),
                Some(r) => secrets.get(r).await.map(Some),
            }
        }))
        .await?;
        let mut sources = BTreeMap::new();
        for (f, secret) in files.into_iter().zip(secrets_read) {
            let mut source = f.source.clone();
            if let Some(u) = base_urls.get(&source.name) {
                source.base_url = u.clone();
            }
            let header = match (source.auth.secret(), secret) {
                (Some(r), Some(secret)) => source.auth.header(&secret).map_err(|e| Error::Config(format!("source {}: secret {}: {e}", source.name, r.name)))?,
                _ => None,
            };
            let http = HttpSource::new(&source, header)?;
            let streams = f.streams.iter().map(|s| (s.name.clone(), Prepared::new(&source.name, s))).collect();
            sources.insert(source.name.clone(), SourceEntry { source, http, streams });
        }
        Ok(Self { sources })
    }

    /// A stream by source and name.
    pub fn stream(&self, source: &str, stream: &str) -> Result<(&SourceEntry, &Prepared)> {
        let e = self.sources.get(source).ok_or_else(|| Error::Task(format!("unknown source {source:?}")))?;
        let p = e.streams.get(stream).ok_or_else(|| Error::Task(format!("source {source:?} has no stream {stream:?}")))?;
        Ok((e, p))
    }
}
