//! Content-addressed blob storage for item content.
//!
//! A blob's key is the BLAKE3 hash of its bytes (64 lower-case hex digits),
//! stored under `blobs/<h[0..2]>/<h[2..4]>/<hash>`. Identical content is
//! therefore stored once, and every read is verified against its key: a
//! corrupt or truncated blob is an error, never silently wrong data.
//!
//! Backends, chosen by URL in [`BlobStore::open`]:
//!
//! * `file:///path`: a local directory, written by this module rather than
//!   by `object_store`'s `LocalFileSystem`, because that one does not fsync.
//!   A write goes to `blobs/tmp/<uuid>`, is fsynced, renamed to its key and
//!   the directory is fsynced, so an acknowledged blob survives a crash and a
//!   crash never leaves a partial blob under a valid key.
//! * `memory://`: `object_store`'s in-memory store (tests, ephemeral servers).
//! * `s3://…`, `az://…` (and the other `object_store` schemes) with the
//!   crate features `s3` / `azure`; configuration comes from the usual
//!   environment variables (`AWS_…`, `AZURE_…`).
//!
//! Large blobs stream in ([`BlobStore::put_stream`]: hashed while written to
//! a temporary object, then moved to their key) and out
//! ([`BlobStore::get_stream`]) in bounded chunks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, Stream, StreamExt};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::domain::{BlobRef, Result, StoreError};

/// A stream of blob content chunks.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// Largest chunk `get_stream` yields.
const READ_CHUNK: usize = 256 * 1024;
/// Part size for multipart uploads to object stores (S3's minimum is 5 MiB).
const UPLOAD_PART: usize = 5 * 1024 * 1024;
/// Parts in flight per multipart upload: memory is bounded by
/// `UPLOAD_PART * (UPLOAD_CONCURRENCY + 1)`.
const UPLOAD_CONCURRENCY: usize = 2;

/// Default size up to which imported content is kept in the meta store
/// (with the item, in one transaction) instead of the blob store.
pub const DEFAULT_INLINE_MAX: u64 = 64 * 1024;

/// The reference and the joined bytes of content made of `parts`, for
/// keeping it in the meta store ([`crate::NewItem::inline`]).
pub fn inline_ref(parts: &[Bytes]) -> (BlobRef, Bytes) {
    let total: usize = parts.iter().map(Bytes::len).sum();
    let data = if parts.len() == 1 {
        parts[0].clone()
    } else {
        let mut joined = bytes::BytesMut::with_capacity(total);
        for p in parts {
            joined.extend_from_slice(p);
        }
        joined.freeze()
    };
    let blob = BlobRef {
        hash: blake3::hash(&data).to_hex().to_string(),
        size: data.len() as u64,
    };
    (blob, data)
}

/// `Invalid` unless `data` is the content `blob` names (size and hash).
pub fn check_inline(blob: &BlobRef, data: &[u8]) -> Result<()> {
    if data.len() as u64 != blob.size {
        return Err(StoreError::Invalid(format!(
            "inline content of blob {} has {} bytes, not {}",
            blob.hash,
            data.len(),
            blob.size
        )));
    }
    let actual = blake3::hash(data).to_hex();
    if actual.as_str() != blob.hash {
        return Err(StoreError::Invalid(format!(
            "inline content given for blob {} hashes to {actual}",
            blob.hash
        )));
    }
    Ok(())
}

/// Content-addressed blob storage. Cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    backend: Arc<Backend>,
}

enum Backend {
    Local(LocalBlobs),
    Object {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
    },
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.backend {
            Backend::Local(l) => write!(f, "BlobStore(file://{})", l.root.display()),
            Backend::Object { store, prefix } => write!(f, "BlobStore({store} /{prefix})"),
        }
    }
}

/// Checks that `hash` is a BLAKE3 key: 64 lower-case hex digits.
pub fn check_hash(hash: &str) -> Result<()> {
    if hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "'{hash}' is not a blob hash (64 lower-case hex digits)"
        )))
    }
}

fn relative_key(hash: &str) -> String {
    format!("blobs/{}/{}/{hash}", &hash[0..2], &hash[2..4])
}

/// `url` without user information (credentials never reach messages).
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => "<unparseable url>".into(),
    }
}

fn backend_err(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what}: {e}"))
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

fn object_err(hash: &str, e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::not_found("blob", hash),
        e => backend_err("object store", e),
    }
}

fn corrupt(hash: &str, actual: &str) -> StoreError {
    StoreError::Backend(format!(
        "blob {hash} is corrupt: its content hashes to {actual}"
    ))
}

impl BlobStore {
    /// Opens a blob store by URL: `file:///abs/path`, `memory://`, or (with
    /// the matching crate feature) `s3://bucket/prefix`, `az://container/prefix`.
    pub fn open(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url)
            .map_err(|e| StoreError::Invalid(format!("blob store URL '{url}': {e}")))?;
        match parsed.scheme() {
            "file" => {
                let path = parsed.to_file_path().map_err(|_| {
                    StoreError::Invalid(format!(
                        "blob store URL '{url}' is not an absolute local path"
                    ))
                })?;
                Self::local(path)
            }
            "memory" => Ok(Self::memory()),
            _ => {
                // Everything else is whatever object_store was built with;
                // credentials and endpoints come from the environment.
                let options = std::env::vars().map(|(k, v)| (k.to_ascii_lowercase(), v));
                let (store, prefix) = object_store::parse_url_opts(&parsed, options)
                    .map_err(|e| {
                        StoreError::Invalid(format!(
                            "blob store URL '{url}' is not usable: {e} (supported: file://, memory://, \
                             and s3:// / az:// when built with the s3 / azure features)"
                        ))
                    })?;
                Ok(BlobStore {
                    backend: Arc::new(Backend::Object {
                        store: Arc::from(store),
                        prefix,
                    }),
                })
            }
        }
    }

    /// [`BlobStore::open`], then [`BlobStore::probe`]: a missing bucket or
    /// container, bad credentials, an unreachable endpoint or a read-only
    /// directory fail here, at start, rather than at the first request.
    pub async fn connect(url: &str) -> Result<Self> {
        let store = Self::open(url)?;
        store.probe().await.map_err(|e| {
            StoreError::Backend(format!(
                "blob store '{}' is not usable: {e}",
                redact_url(url)
            ))
        })?;
        Ok(store)
    }

    /// Checks that the store can be written, read and deleted from by
    /// writing, reading back and deleting a small probe object under
    /// `blobs/tmp/`.
    pub async fn probe(&self) -> Result<()> {
        let name = format!("probe-{}", uuid::Uuid::new_v4().simple());
        let body = Bytes::from_static(b"graphbox blob store probe");
        match &*self.backend {
            Backend::Local(local) => {
                let path = local.root.join("blobs").join("tmp").join(name);
                tokio::fs::write(&path, &body)
                    .await
                    .map_err(|e| io_err("writing", &path, e))?;
                tokio::fs::remove_file(&path)
                    .await
                    .map_err(|e| io_err("removing", &path, e))
            }
            Backend::Object { store, prefix } => {
                let key = Self::object_path(prefix, &format!("blobs/tmp/{name}"));
                let explain = |what: &str, e: object_store::Error| {
                    let hint = match &e {
                        object_store::Error::NotFound { .. } => {
                            " (does the bucket / container exist?)"
                        }
                        object_store::Error::PermissionDenied { .. }
                        | object_store::Error::Unauthenticated { .. } => {
                            " (check the credentials in the environment)"
                        }
                        _ => "",
                    };
                    StoreError::Backend(format!("{what} a probe object: {e}{hint}"))
                };
                store
                    .put(&key, body.clone().into())
                    .await
                    .map_err(|e| explain("writing", e))?;
                let back = store
                    .get(&key)
                    .await
                    .map_err(|e| explain("reading", e))?
                    .bytes()
                    .await
                    .map_err(|e| explain("reading", e))?;
                store
                    .delete(&key)
                    .await
                    .map_err(|e| explain("deleting", e))?;
                if back != body {
                    return Err(StoreError::Backend(
                        "the probe object read back differs from what was written".into(),
                    ));
                }
                Ok(())
            }
        }
    }

    /// A store in a local directory (created if missing).
    pub fn local(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let blobs = root.join("blobs");
        let tmp = blobs.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| io_err("creating", &tmp, e))?;
        // The 256 first-level shard directories exist (durably) from the
        // start, so storing a blob never has to sync `blobs/` itself.
        let mut created = false;
        for b in 0..=255u8 {
            let d = blobs.join(format!("{b:02x}"));
            match std::fs::create_dir(&d) {
                Ok(()) => created = true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("creating", &d, e)),
            }
        }
        if created {
            sync_dir(&blobs)?;
            sync_dir(&root)?;
        }
        Ok(BlobStore {
            backend: Arc::new(Backend::Local(LocalBlobs { root })),
        })
    }

    /// A store in memory.
    pub fn memory() -> Self {
        Self::with_object_store(Arc::new(object_store::memory::InMemory::new()))
    }

    /// A store over any `object_store` implementation (keys at its root).
    pub fn with_object_store(store: Arc<dyn ObjectStore>) -> Self {
        BlobStore {
            backend: Arc::new(Backend::Object {
                store,
                prefix: ObjectPath::default(),
            }),
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

    /// Stores `data`; a no-op if the same content is already stored.
    pub async fn put(&self, data: Bytes) -> Result<BlobRef> {
        match &*self.backend {
            Backend::Local(local) => {
                let local = local.clone();
                tokio::task::spawn_blocking(move || local.put(&data))
                    .await
                    .map_err(|e| backend_err("blob writer task", e))?
            }
            Backend::Object { .. } if data.len() > UPLOAD_PART => {
                // Large content goes up in parts (S3 / Azure multipart upload).
                let parts: Vec<std::result::Result<Bytes, std::convert::Infallible>> = (0..data
                    .len())
                    .step_by(UPLOAD_PART)
                    .map(|s| Ok(data.slice(s..(s + UPLOAD_PART).min(data.len()))))
                    .collect();
                self.put_stream(futures::stream::iter(parts)).await
            }
            Backend::Object { store, prefix } => {
                let hash = blake3::hash(&data).to_hex().to_string();
                let size = data.len() as u64;
                let key = Self::object_path(prefix, &relative_key(&hash));
                match store.head(&key).await {
                    Ok(_) => {}
                    Err(object_store::Error::NotFound { .. }) => {
                        store
                            .put(&key, data.into())
                            .await
                            .map_err(|e| object_err(&hash, e))?;
                    }
                    Err(e) => return Err(object_err(&hash, e)),
                }
                Ok(BlobRef { hash, size })
            }
        }
    }

    /// Stores the concatenation of `parts` without joining them first (an
    /// imported item's framed FTS is rebuilt this way from its unframed
    /// bytes and its record layout).
    pub async fn put_parts(&self, parts: Vec<Bytes>) -> Result<BlobRef> {
        match &*self.backend {
            Backend::Local(local) => {
                let local = local.clone();
                tokio::task::spawn_blocking(move || local.put_parts(&parts))
                    .await
                    .map_err(|e| backend_err("blob writer task", e))?
            }
            Backend::Object { .. } => {
                let total: usize = parts.iter().map(Bytes::len).sum();
                if total <= UPLOAD_PART {
                    let mut joined = bytes::BytesMut::with_capacity(total);
                    for p in &parts {
                        joined.extend_from_slice(p);
                    }
                    return self.put(joined.freeze()).await;
                }
                let stream = futures::stream::iter(
                    parts.into_iter().map(Ok::<Bytes, std::convert::Infallible>),
                );
                self.put_stream(stream).await
            }
        }
    }

    /// Stores a stream of chunks with bounded memory: the content is hashed
    /// while it is written to a temporary object, then moved to its key.
    pub async fn put_stream<S, E>(&self, stream: S) -> Result<BlobRef>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut stream = std::pin::pin!(stream);
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let input_err = |e: E| StoreError::Backend(format!("reading blob content: {e}"));
        match &*self.backend {
            Backend::Local(local) => {
                let tmp = local.temp_path();
                let result: Result<()> = async {
                    let mut file = tokio::fs::File::create(&tmp)
                        .await
                        .map_err(|e| io_err("creating", &tmp, e))?;
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(input_err)?;
                        hasher.update(&chunk);
                        size += chunk.len() as u64;
                        file.write_all(&chunk)
                            .await
                            .map_err(|e| io_err("writing", &tmp, e))?;
                    }
                    file.flush().await.map_err(|e| io_err("writing", &tmp, e))?;
                    file.sync_all()
                        .await
                        .map_err(|e| io_err("syncing", &tmp, e))?;
                    Ok(())
                }
                .await;
                if let Err(e) = result {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(e);
                }
                let hash = hasher.finalize().to_hex().to_string();
                let local = local.clone();
                let h = hash.clone();
                tokio::task::spawn_blocking(move || local.install(&tmp, &h))
                    .await
                    .map_err(|e| backend_err("blob writer task", e))??;
                Ok(BlobRef { hash, size })
            }
            Backend::Object { store, prefix } => {
                let tmp = Self::object_path(
                    prefix,
                    &format!("blobs/tmp/{}", uuid::Uuid::new_v4().simple()),
                );
                let upload = store
                    .put_multipart(&tmp)
                    .await
                    .map_err(|e| backend_err("starting upload", e))?;
                let mut writer =
                    object_store::WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART);
                while let Some(chunk) = stream.next().await {
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = writer.abort().await;
                            return Err(input_err(e));
                        }
                    };
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    if let Err(e) = writer.wait_for_capacity(UPLOAD_CONCURRENCY).await {
                        let _ = writer.abort().await;
                        return Err(backend_err("uploading blob", e));
                    }
                    writer.put(chunk);
                }
                writer
                    .finish()
                    .await
                    .map_err(|e| backend_err("finishing upload", e))?;
                let hash = hasher.finalize().to_hex().to_string();
                let key = Self::object_path(prefix, &relative_key(&hash));
                let moved = match store.head(&key).await {
                    Ok(_) => Ok(()),
                    Err(object_store::Error::NotFound { .. }) => store.copy(&tmp, &key).await,
                    Err(e) => Err(e),
                };
                let cleanup = store.delete(&tmp).await;
                moved.map_err(|e| object_err(&hash, e))?;
                cleanup.map_err(|e| backend_err("removing temporary upload", e))?;
                Ok(BlobRef { hash, size })
            }
        }
    }

    /// The whole content of a blob (verified against its hash).
    pub async fn get(&self, hash: &str) -> Result<Bytes> {
        check_hash(hash)?;
        let data = match &*self.backend {
            Backend::Local(local) => {
                let local = local.clone();
                let h = hash.to_string();
                tokio::task::spawn_blocking(move || local.read(&h))
                    .await
                    .map_err(|e| backend_err("blob reader task", e))??
            }
            Backend::Object { store, prefix } => {
                let key = Self::object_path(prefix, &relative_key(hash));
                store
                    .get(&key)
                    .await
                    .map_err(|e| object_err(hash, e))?
                    .bytes()
                    .await
                    .map_err(|e| object_err(hash, e))?
            }
        };
        check_content(hash, data)
    }

    /// Several whole blobs at once (exportItems of small items): one blocking
    /// task for local files instead of one per blob, concurrent requests for
    /// object stores. Each is verified against its hash.
    pub async fn get_many(&self, hashes: Vec<String>) -> Vec<Result<Bytes>> {
        match &*self.backend {
            Backend::Local(local) => {
                let local = local.clone();
                let n = hashes.len();
                tokio::task::spawn_blocking(move || {
                    hashes
                        .iter()
                        .map(|h| {
                            check_hash(h)?;
                            check_content(h, local.read(h)?)
                        })
                        .collect()
                })
                .await
                .unwrap_or_else(|e| {
                    (0..n)
                        .map(|_| Err(backend_err("blob reader task", &e)))
                        .collect()
                })
            }
            Backend::Object { .. } => {
                futures::future::join_all(hashes.iter().map(|h| self.get(h))).await
            }
        }
    }

    /// The content of a blob as a stream of chunks. `NotFound` is returned
    /// up front; a hash mismatch is reported as the stream's last item.
    pub async fn get_stream(&self, hash: &str) -> Result<ByteStream> {
        check_hash(hash)?;
        let raw: ByteStream = match &*self.backend {
            Backend::Local(local) => {
                let path = local.blob_path(hash);
                let file = match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(StoreError::not_found("blob", hash));
                    }
                    Err(e) => return Err(io_err("opening", &path, e)),
                };
                futures::stream::try_unfold((file, path), |(mut file, path)| async move {
                    let mut buf = BytesMut::with_capacity(READ_CHUNK);
                    while buf.len() < READ_CHUNK {
                        let n = file
                            .read_buf(&mut buf)
                            .await
                            .map_err(|e| io_err("reading", &path, e))?;
                        if n == 0 {
                            break;
                        }
                    }
                    if buf.is_empty() {
                        Ok(None)
                    } else {
                        Ok(Some((buf.freeze(), (file, path))))
                    }
                })
                .boxed()
            }
            Backend::Object { store, prefix } => {
                let key = Self::object_path(prefix, &relative_key(hash));
                let h = hash.to_string();
                store
                    .get(&key)
                    .await
                    .map_err(|e| object_err(hash, e))?
                    .into_stream()
                    .map(move |r| {
                        let pieces: Vec<Result<Bytes>> = match r {
                            // Re-slice (zero-copy) so consumers always get
                            // bounded chunks, whatever the backend yields.
                            Ok(b) => split_chunk(b).into_iter().map(Ok).collect(),
                            Err(e) => vec![Err(object_err(&h, e))],
                        };
                        futures::stream::iter(pieces)
                    })
                    .flatten()
                    .boxed()
            }
        };
        Ok(verified(raw, hash.to_string()))
    }

    /// Deletes a blob. Deleting a blob that is not there is not an error
    /// (collectors may retry).
    pub async fn delete(&self, hash: &str) -> Result<()> {
        check_hash(hash)?;
        match &*self.backend {
            Backend::Local(local) => {
                let local = local.clone();
                let h = hash.to_string();
                tokio::task::spawn_blocking(move || local.delete(&h))
                    .await
                    .map_err(|e| backend_err("blob deleter task", e))?
            }
            Backend::Object { store, prefix } => {
                let key = Self::object_path(prefix, &relative_key(hash));
                match store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(object_err(hash, e)),
                }
            }
        }
    }

    /// Whether a blob is stored.
    pub async fn exists(&self, hash: &str) -> Result<bool> {
        check_hash(hash)?;
        match &*self.backend {
            Backend::Local(local) => {
                let path = local.blob_path(hash);
                match tokio::fs::metadata(&path).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(io_err("inspecting", &path, e)),
                }
            }
            Backend::Object { store, prefix } => {
                let key = Self::object_path(prefix, &relative_key(hash));
                match store.head(&key).await {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(object_err(hash, e)),
                }
            }
        }
    }
}

/// Splits a chunk into zero-copy slices of at most `READ_CHUNK` bytes.
fn split_chunk(b: Bytes) -> Vec<Bytes> {
    if b.len() <= READ_CHUNK {
        return vec![b];
    }
    (0..b.len())
        .step_by(READ_CHUNK)
        .map(|start| b.slice(start..(start + READ_CHUNK).min(b.len())))
        .collect()
}

/// Wraps a raw content stream so that the content is hashed as it passes and
/// a mismatch with `hash` ends the stream with an error.
fn verified(raw: ByteStream, hash: String) -> ByteStream {
    struct State {
        raw: ByteStream,
        hasher: blake3::Hasher,
        hash: String,
        done: bool,
    }
    let state = State {
        raw,
        hasher: blake3::Hasher::new(),
        hash,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match st.raw.next().await {
            Some(Ok(chunk)) => {
                st.hasher.update(&chunk);
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.done = true;
                Some((Err(e), st))
            }
            None => {
                st.done = true;
                let actual = st.hasher.finalize().to_hex();
                if actual.as_str() == st.hash {
                    None
                } else {
                    let err = corrupt(&st.hash, actual.as_str());
                    Some((Err(err), st))
                }
            }
        }
    })
    .boxed()
}

/// The local-directory backend (synchronous; called via `spawn_blocking`).
#[derive(Clone)]
struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    fn blob_path(&self, hash: &str) -> PathBuf {
        self.root.join(relative_key(hash))
    }

    fn temp_path(&self) -> PathBuf {
        self.root
            .join("blobs")
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// A blob file's bytes (not yet checked against the hash).
    fn read(&self, hash: &str) -> Result<Bytes> {
        let path = self.blob_path(hash);
        match std::fs::read(&path) {
            Ok(v) => Ok(Bytes::from(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::not_found("blob", hash.to_string()))
            }
            Err(e) => Err(io_err("reading", &path, e)),
        }
    }

    fn put(&self, data: &[u8]) -> Result<BlobRef> {
        self.put_parts(&[data])
    }

    /// Stores the concatenation of `parts` (hashed and written part by part:
    /// no joined copy).
    fn put_parts<P: AsRef<[u8]>>(&self, parts: &[P]) -> Result<BlobRef> {
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        for p in parts {
            hasher.update(p.as_ref());
            size += p.as_ref().len() as u64;
        }
        let hash = hasher.finalize().to_hex().to_string();
        let blob = BlobRef {
            hash: hash.clone(),
            size,
        };
        if self.blob_path(&hash).exists() {
            return Ok(blob);
        }
        let tmp = self.temp_path();
        let written = (|| {
            let f = std::fs::File::create(&tmp).map_err(|e| io_err("creating", &tmp, e))?;
            let mut w = std::io::BufWriter::with_capacity(256 * 1024, f);
            for p in parts {
                w.write_all(p.as_ref())
                    .map_err(|e| io_err("writing", &tmp, e))?;
            }
            let f = w
                .into_inner()
                .map_err(|e| io_err("writing", &tmp, e.into_error()))?;
            f.sync_all().map_err(|e| io_err("syncing", &tmp, e))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.install(&tmp, &hash)?;
        Ok(blob)
    }

    /// Moves a fully written and fsynced temporary file to its key and makes
    /// the rename durable. If the key exists already, the temp file is dropped.
    fn install(&self, tmp: &Path, hash: &str) -> Result<()> {
        let dest = self.blob_path(hash);
        let dir = dest.parent().expect("blob path has a parent");
        if dest.exists() {
            std::fs::remove_file(tmp).map_err(|e| io_err("removing", tmp, e))?;
            return Ok(());
        }
        if !dir.exists() {
            // Make the new directory entry blobs/ab/cd durable; blobs/ab
            // itself was made (and synced) when the store was opened.
            let level1 = dir.parent().expect("two levels");
            std::fs::create_dir_all(dir).map_err(|e| io_err("creating", dir, e))?;
            sync_dir(level1)?;
        }
        if let Err(e) = std::fs::rename(tmp, &dest) {
            let _ = std::fs::remove_file(tmp);
            return Err(io_err("renaming into", &dest, e));
        }
        sync_dir(dir)
    }

    fn delete(&self, hash: &str) -> Result<()> {
        let path = self.blob_path(hash);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().expect("blob path has a parent")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("deleting", &path, e)),
        }
    }
}

/// `data` if it hashes to `hash`, else the corruption error.
fn check_content(hash: &str, data: Bytes) -> Result<Bytes> {
    let actual = blake3::hash(&data).to_hex();
    if actual.as_str() != hash {
        return Err(corrupt(hash, actual.as_str()));
    }
    Ok(data)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("syncing directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_check() {
        assert!(check_hash(&"a".repeat(64)).is_ok());
        assert!(check_hash(&"A".repeat(64)).is_err());
        assert!(check_hash(&"a".repeat(63)).is_err());
        assert!(check_hash("../../etc/passwd").is_err());
    }

    #[test]
    fn layout() {
        let h = "abcd".to_string() + &"0".repeat(60);
        assert_eq!(relative_key(&h), format!("blobs/ab/cd/{h}"));
    }
}
