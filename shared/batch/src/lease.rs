//! Leases held in the lake's object store with conditional writes: who may do what, and until
//! when.
//!
//! A lease is one small JSON object, `{"exclusive": {"owner", "expires_at"}, "shared": [...]}`.
//! Shared holders run together; an exclusive holder runs alone. Every change is a
//! compare-and-swap (If-None-Match to create it, If-Match on its ETag to change it), tried again
//! when another holder changed it first; a holder past its `expires_at` (a Lambda killed before
//! it released) is ignored and dropped by the next write. Holders' time to live must exceed the
//! longest run that holds them (a Lambda lives at most 15 minutes).
//!
//! Two uses:
//! * [`maintain`](crate::maintain): one exclusive lease per table (`<table>/_maintain.lease`):
//!   two maintenance runs never rewrite and vacuum the same table at once.
//! * **The erasure fence** ([`FENCE`], at the lake root): the jobs that copy tokens from one
//!   table into another (the transform: bronze → silver; the aggregate: silver → gold) hold it
//!   shared, an erasure holds it exclusively. Without it, a step that read bronze before an
//!   erasure and merged after it would put the erased person's tokens back into silver (the
//!   erasure had rewritten silver already). An erasure that finds jobs running marks the fence
//!   (no new job starts), waits for them to finish, up to a bound; past it, it keeps the mark and
//!   fails retryably, so its retry finds the fence free rather than starving behind a stream of
//!   scheduled jobs.
//!
//! Delta ignores objects whose name starts with `_` outside its log, and vacuum never deletes
//! them, so readers and the tables' own jobs never see these objects.
//!
//! Written here rather than taken from a crate: the lock crates for object stores (DynamoDB-based
//! lockers, delta-rs's own log-store locks) lock one table's commits, not a job across tables,
//! and need a service LocalStack does not run here (DynamoDB).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The erasure fence's object, at the lake root.
pub const FENCE: &str = "_erasure.fence";

/// How long a holder of the fence holds it at most (longer than any Lambda lives).
pub const FENCE_TTL: Duration = Duration::from_secs(20 * 60);

/// How long an erasure waits for running jobs to finish before failing retryably (its mark
/// stays: no job starts until it has run).
pub const ERASURE_WAIT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Holder {
    owner: String,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exclusive: Option<Holder>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    shared: Vec<Holder>,
}

impl State {
    fn live(mut self, now: DateTime<Utc>) -> Self {
        self.exclusive = self.exclusive.filter(|h| h.expires_at > now);
        self.shared.retain(|h| h.expires_at > now);
        self
    }
}

/// How a lease is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

/// A lease this process holds; [`Lease::release`] gives it back (an unreleased lease expires on
/// its own).
#[derive(Debug)]
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    path: Path,
    owner: String,
    mode: Mode,
}

/// The outcome of [`take`].
#[derive(Debug)]
pub enum Taken {
    Held(Lease),
    /// Someone else holds it: who, and until when at the latest.
    Busy {
        holder: String,
        until: DateTime<Utc>,
    },
}

/// The object as it is (absent: a new lease) and the version to write over.
async fn read(store: &dyn ObjectStore, path: &Path) -> Result<(State, Option<UpdateVersion>)> {
    match store.get(path).await {
        Ok(got) => {
            let version = UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
            let bytes = got.bytes().await.map_err(|e| err(path, e))?;
            Ok((decode(&bytes), Some(version)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok((State::default(), None)),
        Err(e) => Err(err(path, e)),
    }
}

/// The lease's state. The first format, `{"owner", "expires_at"}` (maintenance leases written
/// before shared holders existed), is an exclusive holder; anything unreadable is as good as
/// expired.
fn decode(bytes: &[u8]) -> State {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) if v.get("owner").is_some() => State { exclusive: serde_json::from_value(v).ok(), shared: Vec::new() },
        Ok(v) => serde_json::from_value(v).unwrap_or_default(),
        Err(_) => State::default(),
    }
}

fn err(path: &Path, e: object_store::Error) -> Error {
    Error::Query { what: format!("lease {path}"), reason: e.to_string() }
}

/// Writes `state` over `version` (or creates the object): `Ok(false)` when someone changed it
/// first.
async fn write(store: &dyn ObjectStore, path: &Path, state: &State, version: Option<UpdateVersion>) -> Result<bool> {
    let body = PutPayload::from(serde_json::to_vec(state).map_err(|e| Error::Query { what: format!("lease {path}"), reason: e.to_string() })?);
    let mode = match &version {
        Some(v) => PutMode::Update(v.clone()),
        None => PutMode::Create,
    };
    match store.put_opts(path, body.clone(), PutOptions { mode, ..Default::default() }).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(object_store::Error::NotImplemented { .. }) if let Some(v) = version => update_under_lock(store, path, body, v).await,
        Err(e) => Err(err(path, e)),
    }
}

/// A local lock older than this was left by a process that died holding it.
const STALE_LOCK: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// A conditional update where the store has none: object_store's local file system (a lake on
/// a local disk: tests, `alkasba` on a directory) refuses `PutMode::Update`. The version is
/// compared and the object written under a lock object created with `PutMode::Create`, which
/// is atomic there. `Ok(false)` when the version moved or another writer holds the lock.
async fn update_under_lock(store: &dyn ObjectStore, path: &Path, body: PutPayload, expected: UpdateVersion) -> Result<bool> {
    let lock = Path::from(format!("{path}.lock"));
    match store.put_opts(&lock, PutPayload::default(), PutOptions { mode: PutMode::Create, ..Default::default() }).await {
        Ok(_) => {}
        Err(object_store::Error::AlreadyExists { .. }) => {
            if store.head(&lock).await.is_ok_and(|m| Utc::now() - m.last_modified > STALE_LOCK) {
                tracing::warn!(lock = %lock, "removing a lease lock left by a process that died");
                store.delete(&lock).await.map_err(|e| err(&lock, e))?;
            }
            return Ok(false);
        }
        Err(e) => return Err(err(&lock, e)),
    }
    let written = async {
        let current = store.head(path).await.map_err(|e| err(path, e))?;
        if current.e_tag != expected.e_tag {
            return Ok(false);
        }
        store.put(path, body).await.map_err(|e| err(path, e))?;
        Ok(true)
    }
    .await;
    store.delete(&lock).await.map_err(|e| err(&lock, e))?;
    written
}

/// Compare-and-swap changes tried before giving up (each lost race means another holder's
/// write landed: progress elsewhere).
const CAS_ATTEMPTS: usize = 32;

/// Applies `change` to the lease's live state until the write lands. `change` returns `Err` to
/// stop without writing (the lease is busy), `Ok(None)` when there is nothing to write.
async fn update<T>(store: &dyn ObjectStore, path: &Path, mut change: impl FnMut(&mut State) -> std::result::Result<T, Taken>) -> Result<std::result::Result<T, Taken>> {
    for attempt in 0..CAS_ATTEMPTS {
        if attempt > 0 {
            // Lost a race: another holder's write landed (or, on a local disk, holds the lock).
            tokio::time::sleep(Duration::from_millis(5 * attempt as u64)).await;
        }
        let (state, version) = read(store, path).await?;
        let mut state = state.live(Utc::now());
        let out = match change(&mut state) {
            Ok(out) => out,
            Err(busy) => return Ok(Err(busy)),
        };
        if write(store, path, &state, version).await? {
            return Ok(Ok(out));
        }
    }
    Err(Error::Query { what: format!("lease {path}"), reason: format!("changed by others {CAS_ATTEMPTS} times in a row while taking it") })
}

/// Takes the lease at `path` for `owner`. Shared: refused while someone holds (or waits for) it
/// exclusively. Exclusive: refused while someone else holds it exclusively; otherwise marked
/// at once (no shared holder starts from then on), then held once the shared holders are gone,
/// waiting for them at most `wait`; after that `Busy`, the mark left in place until `ttl`.
/// The same owner taking it again (a retried request) finds its own mark.
pub async fn take(store: Arc<dyn ObjectStore>, path: Path, owner: &str, mode: Mode, ttl: Duration, wait: Duration) -> Result<Taken> {
    let me = || Holder { owner: owner.to_string(), expires_at: Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default() };
    let other_exclusive = |s: &State| s.exclusive.as_ref().filter(|h| h.owner != owner).map(|h| Taken::Busy { holder: h.owner.clone(), until: h.expires_at });
    let taken = update(store.as_ref(), &path, |s| {
        if let Some(busy) = other_exclusive(s) {
            return Err(busy);
        }
        match mode {
            Mode::Shared => {
                s.shared.retain(|h| h.owner != owner);
                s.shared.push(me());
            }
            Mode::Exclusive => s.exclusive = Some(me()),
        }
        Ok(())
    })
    .await?;
    if let Err(busy) = taken {
        return Ok(busy);
    }
    let lease = Lease { store, path, owner: owner.to_string(), mode };
    if mode == Mode::Shared {
        return Ok(Taken::Held(lease));
    }
    // Marked: wait for the shared holders already running to finish. Polled (an object store
    // has no notifications), from 100 ms doubling to 5 s between reads.
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    let mut told = false;
    loop {
        let (state, _) = read(lease.store.as_ref(), &lease.path).await?;
        let state = state.live(Utc::now());
        if let Some(busy) = other_exclusive(&state) {
            // Our mark expired and another exclusive holder took over.
            return Ok(busy);
        }
        let Some(running) = state.shared.iter().filter(|h| h.owner != owner).max_by_key(|h| h.expires_at) else {
            return Ok(Taken::Held(lease));
        };
        if !told {
            tracing::info!(lease = %lease.path, running = %running.owner, "marked; waiting for the jobs holding the lease to finish");
            told = true;
        }
        if started.elapsed() >= wait {
            tracing::warn!(lease = %lease.path, running = %running.owner, "jobs still hold the lease; marked, not held: the retry takes it");
            return Ok(Taken::Busy { holder: running.owner.clone(), until: running.expires_at });
        }
        tokio::time::sleep(pause.min(wait.saturating_sub(started.elapsed()))).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

impl Lease {
    /// Who holds it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Gives the lease back.
    pub async fn release(self) -> Result<()> {
        let (owner, mode) = (self.owner.as_str(), self.mode);
        update(self.store.as_ref(), &self.path, |s| {
            match mode {
                Mode::Shared => s.shared.retain(|h| h.owner != owner),
                Mode::Exclusive => s.exclusive = s.exclusive.take().filter(|h| h.owner != owner),
            }
            Ok(())
        })
        .await?
        .map_err(|_| Error::Query { what: format!("lease {}", self.path), reason: "release refused".into() })
    }

    /// Gives the lease back, logging (not failing) when that does not work: it expires on its own.
    pub async fn release_or_warn(self) {
        let path = self.path.clone();
        if let Err(e) = self.release().await {
            tracing::warn!(lease = %path, error = %e, "could not release the lease; it expires on its own");
        }
    }
}

/// Runs `job` holding the lake's erasure fence in `mode`, owned by `owner` (a job name and its
/// invocation); [`Error::Busy`] when it is not free. The fence is released whatever `job`
/// returns.
pub async fn fenced<T>(lake: &alkasba_lake::Lake, owner: &str, mode: Mode, job: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let wait = if mode == Mode::Exclusive { ERASURE_WAIT } else { Duration::ZERO };
    let lease = match take(lake.object_store()?, Path::from(FENCE), owner, mode, FENCE_TTL, wait).await? {
        Taken::Held(lease) => lease,
        Taken::Busy { holder, until } => return Err(Error::Busy { what: format!("the lake's erasure fence ({FENCE})"), holder, until }),
    };
    let out = job.await;
    lease.release_or_warn().await;
    out
}

/// A name for this invocation of `job` (unique: two Lambdas may run the same job).
pub fn owner(job: &str) -> String {
    format!("{job}:{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    const TTL: Duration = Duration::from_secs(600);

    fn store() -> Arc<dyn ObjectStore> {
        Arc::new(InMemory::new())
    }

    async fn held(store: &Arc<dyn ObjectStore>, owner: &str, mode: Mode) -> Lease {
        match take(store.clone(), Path::from(FENCE), owner, mode, TTL, Duration::ZERO).await.unwrap() {
            Taken::Held(l) => l,
            Taken::Busy { holder, .. } => panic!("{owner}: busy, held by {holder}"),
        }
    }

    async fn busy(store: &Arc<dyn ObjectStore>, owner: &str, mode: Mode) -> String {
        match take(store.clone(), Path::from(FENCE), owner, mode, TTL, Duration::ZERO).await.unwrap() {
            Taken::Held(_) => panic!("{owner}: held, expected busy"),
            Taken::Busy { holder, .. } => holder,
        }
    }

    #[tokio::test]
    async fn shared_holders_run_together_and_an_exclusive_one_alone() {
        let s = store();
        let a = held(&s, "transform:a", Mode::Shared).await;
        let b = held(&s, "aggregate:b", Mode::Shared).await;
        // The erasure marks the fence and waits no longer than it was told: busy, mark kept.
        let running = busy(&s, "erase:r1", Mode::Exclusive).await;
        assert!(running == "transform:a" || running == "aggregate:b", "{running}");
        // Marked: no new job starts, and no other erasure either.
        assert_eq!(busy(&s, "transform:c", Mode::Shared).await, "erase:r1");
        assert_eq!(busy(&s, "erase:r2", Mode::Exclusive).await, "erase:r1");
        a.release().await.unwrap();
        assert_eq!(busy(&s, "erase:r1", Mode::Exclusive).await, "aggregate:b");
        b.release().await.unwrap();
        // Its retry finds its own mark and the jobs gone.
        let e = held(&s, "erase:r1", Mode::Exclusive).await;
        assert_eq!(busy(&s, "transform:c", Mode::Shared).await, "erase:r1");
        e.release().await.unwrap();
        held(&s, "transform:c", Mode::Shared).await;
    }

    #[tokio::test]
    async fn an_exclusive_taker_waits_for_the_running_jobs() {
        let s = store();
        let job = held(&s, "transform:a", Mode::Shared).await;
        let waiting = tokio::spawn(take(s.clone(), Path::from(FENCE), "erase:r1", Mode::Exclusive, TTL, Duration::from_secs(600)));
        // The job goes on until it sees the mark (its next start would be refused), then ends.
        loop {
            let (state, _) = read(s.as_ref(), &Path::from(FENCE)).await.unwrap();
            if state.exclusive.is_some() {
                break;
            }
            tokio::task::yield_now().await;
        }
        job.release().await.unwrap();
        match waiting.await.unwrap().unwrap() {
            Taken::Held(l) => assert_eq!(l.owner(), "erase:r1"),
            Taken::Busy { holder, .. } => panic!("still busy: {holder}"),
        }
    }

    #[tokio::test]
    async fn a_lake_on_a_local_disk_updates_under_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let a = held(&s, "transform:a", Mode::Shared).await;
        let b = held(&s, "aggregate:b", Mode::Shared).await;
        assert_eq!(busy(&s, "erase:r1", Mode::Exclusive).await, "aggregate:b");
        a.release().await.unwrap();
        b.release().await.unwrap();
        held(&s, "erase:r1", Mode::Exclusive).await;
        assert!(!dir.path().join(format!("{FENCE}.lock")).exists(), "the lock is removed after each update");
    }

    #[tokio::test]
    async fn expired_and_unreadable_holders_do_not_count() {
        let s = store();
        match take(s.clone(), Path::from(FENCE), "transform:dead", Mode::Shared, Duration::ZERO, Duration::ZERO).await.unwrap() {
            Taken::Held(_) => {} // never released: its Lambda was killed
            Taken::Busy { .. } => panic!("busy"),
        }
        held(&s, "erase:r1", Mode::Exclusive).await.release().await.unwrap();
        s.put(&Path::from(FENCE), PutPayload::from_static(b"{\"owner\":\"maintain-1\",\"expires_at\":\"x\"}")).await.unwrap();
        held(&s, "erase:r2", Mode::Exclusive).await.release().await.unwrap();
        // The first format, still held.
        let first = serde_json::json!({"owner": "maintain-1", "expires_at": (Utc::now() + chrono::Duration::minutes(5)).to_rfc3339()});
        s.put(&Path::from(FENCE), PutPayload::from(first.to_string())).await.unwrap();
        assert_eq!(busy(&s, "maintain-2", Mode::Exclusive).await, "maintain-1");
    }
}
