//! Where the repository's files live: a local directory (written durably:
//! temporary file, fsync, rename, fsync of the directory) or any
//! `object_store` URL (`s3://`, `az://`, `memory://`).
//!
//! Keys are relative slash-separated paths such as `data/ab/ab12…`.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use crate::aligned::AlignedBuf;
use crate::error::{Error, Result};

/// One stored file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileInfo {
    /// The last path component.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

#[derive(Clone)]
pub(crate) enum Backend {
    Local(Arc<PathBuf>),
    Object {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local(root) => write!(f, "local:{}", root.display()),
            Backend::Object { store, prefix } => write!(f, "{store}/{prefix}"),
        }
    }
}

/// `url` without user information (credentials never reach messages).
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.scheme().len() > 1 => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn io_err(action: &str, path: &Path, e: std::io::Error) -> Error {
    Error::backend(format!("{action} {}", path.display()), e)
}

fn blocking_err(e: tokio::task::JoinError) -> Error {
    Error::backend("running a storage task", e)
}

impl Backend {
    /// Opens the location named by `url`: a plain path or `file://` URL (a
    /// local directory), `memory://` (a fresh in-memory store), or any other
    /// `object_store` URL (`s3://bucket/prefix`, `az://container/prefix`),
    /// configured from the environment (`AWS_*`, `AZURE_*`, e.g.
    /// `AWS_ENDPOINT` and `AWS_ALLOW_HTTP` for an emulator).
    pub fn open(url: &str) -> Result<Backend> {
        let parsed = match url::Url::parse(url) {
            // A one-letter scheme is a Windows drive, not a URL.
            Ok(u) if u.scheme().len() > 1 => u,
            _ => {
                if url.trim().is_empty() {
                    return Err(Error::invalid(
                        "repository location",
                        "it is empty: give a directory or an s3:// / az:// URL",
                    ));
                }
                return Ok(Backend::Local(Arc::new(PathBuf::from(url))));
            }
        };
        match parsed.scheme() {
            "file" => {
                let path = parsed.to_file_path().map_err(|_| {
                    Error::invalid(
                        "repository URL",
                        format!("'{url}' is not an absolute local path"),
                    )
                })?;
                Ok(Backend::Local(Arc::new(path)))
            }
            "memory" => Ok(Backend::Object {
                store: Arc::new(object_store::memory::InMemory::new()),
                prefix: ObjectPath::default(),
            }),
            _ => {
                let options = std::env::vars().map(|(k, v)| (k.to_ascii_lowercase(), v));
                let (store, prefix) =
                    object_store::parse_url_opts(&parsed, options).map_err(|e| {
                        Error::invalid(
                            "repository URL",
                            format!(
                                "'{}' is not usable: {e} (supported: a directory, file://, \
                                 memory://, s3://bucket/prefix, az://container/prefix)",
                                redact_url(url)
                            ),
                        )
                    })?;
                // object_store reads `az://container/a/b` as if `a` named the
                // container again and returns the prefix `b`; the container is
                // the host, so the whole path is the prefix.
                let prefix = if parsed.scheme() == "az" {
                    ObjectPath::from_url_path(parsed.path()).map_err(|e| {
                        Error::invalid(
                            "repository URL",
                            format!("'{}' has an unusable path: {e}", redact_url(url)),
                        )
                    })?
                } else {
                    prefix
                };
                Ok(Backend::Object {
                    store: Arc::from(store),
                    prefix,
                })
            }
        }
    }

    /// A backend over an existing object store (tests, embedding).
    pub fn with_object_store(store: Arc<dyn ObjectStore>) -> Backend {
        Backend::Object {
            store,
            prefix: ObjectPath::default(),
        }
    }

    fn object_path(prefix: &ObjectPath, rel: &str) -> ObjectPath {
        let mut full = prefix.as_ref().to_string();
        if !full.is_empty() {
            full.push('/');
        }
        full.push_str(rel);
        ObjectPath::from(full)
    }

    /// Writes `key` atomically and durably (replacing any previous content).
    pub async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        match self {
            Backend::Local(root) => {
                let root = root.clone();
                let key = key.to_string();
                tokio::task::spawn_blocking(move || local_put(&root, &key, &data))
                    .await
                    .map_err(blocking_err)?
            }
            Backend::Object { store, prefix } => {
                let path = Self::object_path(prefix, key);
                store
                    .put(&path, data.into())
                    .await
                    .map(|_| ())
                    .map_err(|e| object_err(&format!("writing {key}"), e))
            }
        }
    }

    /// The whole content of `key`; [`Error::NotFound`] if it does not exist.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        match self {
            Backend::Local(root) => {
                let path = root.join(key);
                let key = key.to_string();
                tokio::task::spawn_blocking(move || match std::fs::read(&path) {
                    Ok(v) => Ok(Bytes::from(v)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Err(Error::not_found("file", key))
                    }
                    Err(e) => Err(io_err("reading", &path, e)),
                })
                .await
                .map_err(blocking_err)?
            }
            Backend::Object { store, prefix } => {
                let path = Self::object_path(prefix, key);
                let r = store.get(&path).await.map_err(|e| map_get(key, e))?;
                r.bytes().await.map_err(|e| map_get(key, e))
            }
        }
    }

    /// The bytes `range` of `key`. Fails if the file is shorter.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let want = range.end.saturating_sub(range.start);
        let data = match self {
            Backend::Local(root) => {
                let path = root.join(key);
                let key = key.to_string();
                let r = range.clone();
                tokio::task::spawn_blocking(move || {
                    use std::io::{Read, Seek, SeekFrom};
                    let mut f = match std::fs::File::open(&path) {
                        Ok(f) => f,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            return Err(Error::not_found("file", key));
                        }
                        Err(e) => return Err(io_err("opening", &path, e)),
                    };
                    f.seek(SeekFrom::Start(r.start))
                        .map_err(|e| io_err("seeking in", &path, e))?;
                    let mut buf = Vec::with_capacity(want as usize);
                    f.take(want)
                        .read_to_end(&mut buf)
                        .map_err(|e| io_err("reading", &path, e))?;
                    Ok(Bytes::from(buf))
                })
                .await
                .map_err(blocking_err)??
            }
            Backend::Object { store, prefix } => {
                let path = Self::object_path(prefix, key);
                store
                    .get_range(&path, range.clone())
                    .await
                    .map_err(|e| map_get(key, e))?
            }
        };
        if data.len() as u64 != want {
            return Err(Error::corrupt(
                format!("file {key}"),
                format!(
                    "it is truncated: bytes {}..{} were asked for, only {} exist there",
                    range.start,
                    range.end,
                    data.len()
                ),
            ));
        }
        Ok(data)
    }

    /// The size of `key`, `None` if it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        match self {
            Backend::Local(root) => {
                let path = root.join(key);
                match tokio::fs::metadata(&path).await {
                    Ok(m) => Ok(Some(m.len())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_err("inspecting", &path, e)),
                }
            }
            Backend::Object { store, prefix } => {
                match store.head(&Self::object_path(prefix, key)).await {
                    Ok(m) => Ok(Some(m.size)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(object_err(&format!("inspecting {key}"), e)),
                }
            }
        }
    }

    /// Every file under the directory `dir` (recursively), by name.
    pub async fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        match self {
            Backend::Local(root) => {
                let path = root.join(dir);
                tokio::task::spawn_blocking(move || {
                    let mut out = Vec::new();
                    local_list(&path, &mut out)?;
                    Ok(out)
                })
                .await
                .map_err(blocking_err)?
            }
            Backend::Object { store, prefix } => {
                let path = Self::object_path(prefix, dir);
                let metas: Vec<_> = store
                    .list(Some(&path))
                    .try_collect()
                    .await
                    .map_err(|e| object_err(&format!("listing {dir}"), e))?;
                Ok(metas
                    .into_iter()
                    .filter_map(|m| {
                        let name = m.location.filename()?.to_string();
                        Some(FileInfo { name, size: m.size })
                    })
                    .collect())
            }
        }
    }

    /// Removes `key`; removing a missing file is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self {
            Backend::Local(root) => {
                let path = root.join(key);
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_err("removing", &path, e)),
                }
            }
            Backend::Object { store, prefix } => {
                match store.delete(&Self::object_path(prefix, key)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(object_err(&format!("removing {key}"), e)),
                }
            }
        }
    }

    /// Removes `key` synchronously where that is possible without a runtime
    /// (local directories); `false` if the caller must delete asynchronously.
    pub fn delete_now(&self, key: &str) -> bool {
        match self {
            Backend::Local(root) => {
                let _ = std::fs::remove_file(root.join(key));
                true
            }
            Backend::Object { .. } => false,
        }
    }
}

fn object_err(action: &str, e: object_store::Error) -> Error {
    let hint = match &e {
        object_store::Error::NotFound { .. } => " (does the bucket / container exist?)",
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            " (check the credentials in the environment)"
        }
        _ => "",
    };
    Error::backend(action, format!("{e}{hint}"))
}

fn map_get(key: &str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::not_found("file", key),
        e => object_err(&format!("reading {key}"), e),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = std::fs::File::open(dir).map_err(|e| io_err("opening directory", dir, e))?;
        d.sync_all()
            .map_err(|e| io_err("syncing directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Temporary file in `<root>/tmp`, fsync, rename into place, fsync the
/// directory: an acknowledged write survives a crash, and a crash never
/// leaves a partial file under its final name.
fn local_put(root: &Path, key: &str, data: &[u8]) -> Result<()> {
    let target = root.join(key);
    let dir = target
        .parent()
        .ok_or_else(|| Error::invalid("key", key.to_string()))?
        .to_path_buf();
    let tmp_dir = root.join("tmp");
    for d in [&dir, &tmp_dir] {
        if !d.is_dir() {
            std::fs::create_dir_all(d).map_err(|e| io_err("creating", d, e))?;
            if let Some(p) = d.parent() {
                sync_dir(p)?;
            }
        }
    }
    let tmp = tmp_dir.join(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        if !(data.len() >= DIRECT_MIN && write_direct(&tmp, data)?) {
            let mut f = std::fs::File::create(&tmp).map_err(|e| io_err("creating", &tmp, e))?;
            f.write_all(data).map_err(|e| io_err("writing", &tmp, e))?;
            f.sync_all().map_err(|e| io_err("syncing", &tmp, e))?;
        }
        std::fs::rename(&tmp, &target).map_err(|e| io_err("renaming into", &target, e))?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Files at least this big (packs) are written past the page cache.
const DIRECT_MIN: usize = 1 << 20;

/// Writes and syncs the new file `path` with `O_DIRECT` (Linux): the data
/// goes from memory to the device without being copied into the page cache.
/// A backup writes every pack once and does not read it again, and on the
/// VMs graphbox was measured on, copying packs into fresh page-cache pages
/// was 13–16% of a full backup's CPU (docs/BENCHMARKS.md). `Ok(false)` when
/// the file system does not take direct I/O (tmpfs before Linux 6.6, some
/// network file systems): nothing was left behind and the caller writes
/// normally.
#[cfg(target_os = "linux")]
fn write_direct(path: &Path, data: &[u8]) -> Result<bool> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    /// Alignment of buffer, offsets and lengths (any device's block size).
    const ALIGN: usize = 4096;
    // One write for the whole file (a pack is 16 MiB by default): each direct
    // write waits for the device, so fewer and larger is faster.
    let size = data.len().next_multiple_of(ALIGN);
    let f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(false),
        Err(e) => return Err(io_err("creating", path, e)),
    };
    let layout = std::alloc::Layout::from_size_align(size, ALIGN)
        .map_err(|e| Error::invalid("file size", e.to_string()))?;
    let mut buffer =
        AlignedBuf::zeroed(layout).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
    let buf = buffer.as_mut_slice();
    buf[..data.len()].copy_from_slice(data);
    if let Err(e) = f.write_all_at(buf, 0) {
        drop(f);
        let _ = std::fs::remove_file(path);
        if e.raw_os_error() == Some(libc::EINVAL) {
            return Ok(false);
        }
        return Err(io_err("writing", path, e));
    }
    // The write was padded to the alignment: cut the file to its size.
    f.set_len(data.len() as u64)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err("syncing", path, e))?;
    Ok(true)
}

#[cfg(not(target_os = "linux"))]
fn write_direct(_path: &Path, _data: &[u8]) -> Result<bool> {
    Ok(false)
}

fn local_list(dir: &Path, out: &mut Vec<FileInfo>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("listing", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err("listing", dir, e))?;
        let ft = entry
            .file_type()
            .map_err(|e| io_err("inspecting", &entry.path(), e))?;
        if ft.is_dir() {
            local_list(&entry.path(), out)?;
        } else if ft.is_file() {
            let size = entry
                .metadata()
                .map_err(|e| io_err("inspecting", &entry.path(), e))?
                .len();
            out.push(FileInfo {
                name: entry.file_name().to_string_lossy().into_owned(),
                size,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory on the disk's file system and, where there is one, on tmpfs.
    fn file_systems() -> Vec<tempfile::TempDir> {
        let mut dirs = vec![tempfile::tempdir().unwrap()];
        if Path::new("/dev/shm").is_dir() {
            dirs.push(tempfile::tempdir_in("/dev/shm").unwrap());
        }
        dirs
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 253) as u8).collect()
    }

    /// Files below, at and above the direct-I/O size (not multiples of the
    /// 4 KiB alignment) read back exactly, with their exact length, and
    /// leave nothing in tmp/: on a disk file system and on tmpfs.
    #[test]
    fn large_and_small_files_round_trip_with_and_without_direct_io() {
        for root in &file_systems() {
            for (i, len) in [1, 4096, DIRECT_MIN - 1, DIRECT_MIN, 3 * DIRECT_MIN + 123]
                .into_iter()
                .enumerate()
            {
                let key = format!("data/{i:02x}/file{i}");
                let data = payload(len);
                local_put(root.path(), &key, &data).unwrap();
                let back = std::fs::read(root.path().join(&key)).unwrap();
                assert_eq!(back.len(), len, "{key} in {:?}", root.path());
                assert!(back == data, "{key} in {:?}", root.path());
                // Replacing keeps only the new content.
                let shorter = payload(len / 2 + 1);
                local_put(root.path(), &key, &shorter).unwrap();
                assert!(std::fs::read(root.path().join(&key)).unwrap() == shorter);
            }
            let tmp: Vec<_> = std::fs::read_dir(root.path().join("tmp"))
                .unwrap()
                .collect();
            assert!(tmp.is_empty(), "{tmp:?}");
        }
    }

    /// `write_direct` either writes the whole file (true) or leaves no file
    /// behind (false, the file system refuses O_DIRECT), on every file
    /// system at hand (tmpfs takes O_DIRECT since Linux 6.6).
    #[cfg(target_os = "linux")]
    #[test]
    fn direct_write_writes_all_or_nothing() {
        for dir in &file_systems() {
            let path = dir.path().join("f");
            let data = payload(DIRECT_MIN + 5);
            if write_direct(&path, &data).unwrap() {
                assert!(std::fs::read(&path).unwrap() == data);
            } else {
                assert!(!path.exists());
            }
            // An existing file is an error, not an overwrite.
            if path.exists() {
                assert!(write_direct(&path, &data).is_err());
            }
        }
    }
}
