//! Repository locks (`locks/<random id>`): who works on the repository, so
//! that two writers never prune or repack under each other.
//!
//! Shared locks (backup, restore, find, verify) coexist; an exclusive lock
//! (prune) excludes every other lock. Acquiring writes the lock file, then
//! lists the locks again: if a conflicting lock appeared meanwhile, the new
//! lock is withdrawn and the attempt repeated until the wait is over. Locks
//! of other instances count; the same [`crate::Repository`] value may hold
//! several.

use std::time::Duration;

use bytes::Bytes;
use chacha20poly1305::XChaCha20Poly1305;
use rand::Rng;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::backend::Backend;
use crate::crypto::{self, aad};
use crate::error::{Error, Result};

/// Removals of lock files whose guards were dropped (not released): on an
/// object store each is a task on the runtime, which a program must let
/// finish before it exits ([`finish_releases`]); a runtime that shuts down
/// cancels unfinished tasks, which would leave the lock file for other hosts
/// to wait on until it is stale.
static PENDING: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

/// Waits (up to `within`) for the removal of every lock file whose guard
/// was dropped so far. Call it before the runtime shuts down. `false` when
/// some removal had not finished in time (its lock file goes stale after
/// [`STALE_AFTER`]).
pub async fn finish_releases(within: Duration) -> bool {
    let pending = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
    tokio::time::timeout(within, futures::future::join_all(pending))
        .await
        .is_ok()
}

/// A lock not refreshed for this long is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How often a held lock is refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// Shared (readers, backups) or exclusive (prune).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    Shared,
    Exclusive,
}

/// The content of a lock file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub hostname: String,
    pub pid: u32,
    pub exclusive: bool,
    /// What the holder does (`backup`, `prune`, …).
    pub purpose: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub refreshed: OffsetDateTime,
    /// Random id of the `Repository` value holding it.
    pub instance: String,
}

impl LockRecord {
    /// A record for this process.
    pub fn new(kind: LockKind, purpose: &str, instance: &str) -> LockRecord {
        let now = OffsetDateTime::now_utc();
        LockRecord {
            hostname: hostname(),
            pid: std::process::id(),
            exclusive: kind == LockKind::Exclusive,
            purpose: purpose.to_string(),
            created: now,
            refreshed: now,
            instance: instance.to_string(),
        }
    }

    /// One line for messages: purpose, kind, process, host, age.
    pub fn describe(&self) -> String {
        let fmt = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| t.to_string())
        };
        format!(
            "'{}' ({} lock) of process {} on host {}, created {}, last refreshed {}",
            self.purpose,
            if self.exclusive {
                "exclusive"
            } else {
                "shared"
            },
            self.pid,
            self.hostname,
            fmt(self.created),
            fmt(self.refreshed)
        )
    }

    /// Stale: not refreshed for [`STALE_AFTER`], or of a process of this
    /// host that no longer runs.
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        if now - self.refreshed > STALE_AFTER {
            return true;
        }
        self.hostname == hostname() && !pid_alive(self.pid)
    }

    fn conflicts(&self, exclusive: bool) -> bool {
        exclusive || self.exclusive
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at
        // most that many bytes.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let name = String::from_utf8_lossy(&buf[..end]).into_owned();
            if !name.is_empty() {
                return name;
            }
        }
    }
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_else(|_| "unknown-host".into())
}

fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

pub(crate) fn lock_key(name: &str) -> String {
    format!("locks/{name}")
}

pub(crate) async fn write_record(
    backend: &Backend,
    cipher: &XChaCha20Poly1305,
    name: &str,
    rec: &LockRecord,
) -> Result<()> {
    let json = serde_json::to_vec(rec).expect("lock record serializes");
    let sealed = crypto::seal(cipher, aad::LOCK, &json, 0);
    backend.put(&lock_key(name), Bytes::from(sealed)).await
}

/// Every lock file with its record; unreadable ones are reported as `None`.
pub(crate) async fn read_all(
    backend: &Backend,
    cipher: &XChaCha20Poly1305,
) -> Result<Vec<(String, Option<LockRecord>)>> {
    let mut out = Vec::new();
    for f in backend.list("locks").await? {
        let data = match backend.get(&lock_key(&f.name)).await {
            Ok(d) => d,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let rec = crypto::open(cipher, aad::LOCK, &data)
            .ok()
            .and_then(|p| serde_json::from_slice::<LockRecord>(&p).ok());
        out.push((f.name, rec));
    }
    Ok(out)
}

/// The first conflicting lock of another instance (removing stale ones).
async fn conflict(
    backend: &Backend,
    cipher: &XChaCha20Poly1305,
    instance: &str,
    exclusive: bool,
    own: Option<&str>,
) -> Result<Option<LockRecord>> {
    let now = OffsetDateTime::now_utc();
    for (name, rec) in read_all(backend, cipher).await? {
        if Some(name.as_str()) == own {
            continue;
        }
        let Some(rec) = rec else {
            // A lock this key cannot read (written by another tool or
            // damaged): respected until it is old enough to be stale.
            let size = backend.size(&lock_key(&name)).await?.unwrap_or(0);
            tracing::warn!(lock = %name, size, "unreadable lock file; remove it by hand if it is stale");
            return Ok(Some(LockRecord {
                hostname: "?".into(),
                pid: 0,
                exclusive: true,
                purpose: format!("unreadable lock file locks/{name}"),
                created: now,
                refreshed: now,
                instance: String::new(),
            }));
        };
        if rec.instance == instance {
            continue;
        }
        if rec.is_stale(now) {
            tracing::info!(lock = %name, holder = %rec.describe(), "removing stale lock");
            backend.delete(&lock_key(&name)).await?;
            continue;
        }
        if rec.conflicts(exclusive) {
            return Ok(Some(rec));
        }
    }
    Ok(None)
}

/// Takes a lock, waiting up to `wait` for conflicting locks to go away.
pub(crate) async fn acquire(
    backend: &Backend,
    cipher: &XChaCha20Poly1305,
    instance: &str,
    kind: LockKind,
    purpose: &str,
    wait: Duration,
) -> Result<LockGuard> {
    let exclusive = kind == LockKind::Exclusive;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let holder = match conflict(backend, cipher, instance, exclusive, None).await? {
            Some(h) => Some(h),
            None => {
                let name = uuid::Uuid::new_v4().simple().to_string();
                let rec = LockRecord::new(kind, purpose, instance);
                write_record(backend, cipher, &name, &rec).await?;
                match conflict(backend, cipher, instance, exclusive, Some(&name)).await {
                    Ok(None) => {
                        return Ok(LockGuard::start(backend.clone(), cipher.clone(), name, rec));
                    }
                    Ok(Some(h)) => {
                        backend.delete(&lock_key(&name)).await?;
                        Some(h)
                    }
                    Err(e) => {
                        let _ = backend.delete(&lock_key(&name)).await;
                        return Err(e);
                    }
                }
            }
        };
        let holder = holder.expect("a conflict was found");
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(Error::Locked {
                holder: holder.describe(),
            });
        }
        let jitter = rand::rng().random_range(0..100);
        let pause = Duration::from_millis(200 + jitter).min(deadline - now);
        tokio::time::sleep(pause).await;
    }
}

/// A held lock: refreshed in the background, removed on
/// [`LockGuard::release`] or drop. On an object store a drop removes it
/// from a task on the runtime: a program that drops guards calls
/// [`finish_releases`] before its runtime shuts down.
pub struct LockGuard {
    backend: Backend,
    name: String,
    record: LockRecord,
    refresher: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.name)
            .field("record", &self.record)
            .finish()
    }
}

impl LockGuard {
    fn start(
        backend: Backend,
        cipher: XChaCha20Poly1305,
        name: String,
        record: LockRecord,
    ) -> LockGuard {
        let refresher = {
            let backend = backend.clone();
            let name = name.clone();
            let mut rec = record.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(REFRESH_EVERY).await;
                    rec.refreshed = OffsetDateTime::now_utc();
                    if let Err(e) = write_record(&backend, &cipher, &name, &rec).await {
                        tracing::warn!(lock = %name, error = %e, "could not refresh the repository lock");
                    }
                }
            })
        };
        LockGuard {
            backend,
            name,
            record,
            refresher: Some(refresher),
            released: false,
        }
    }

    /// What the lock file says.
    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    /// Removes the lock file now.
    pub async fn release(mut self) -> Result<()> {
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
        self.released = true;
        self.backend.delete(&lock_key(&self.name)).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
        if self.released {
            return;
        }
        let key = lock_key(&self.name);
        if self.backend.delete_now(&key) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let backend = self.backend.clone();
            let task = handle.spawn(async move {
                if let Err(e) = backend.delete(&key).await {
                    tracing::warn!(lock = %key, error = %e, "could not remove the repository lock");
                }
            });
            let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
            // A long-lived program that never calls `finish_releases` keeps
            // only the unfinished ones.
            pending.retain(|t| !t.is_finished());
            pending.push(task);
        }
    }
}
