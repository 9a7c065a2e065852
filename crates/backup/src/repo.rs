//! The repository: blobs in packs, the index, snapshots and the state area.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chacha20poly1305::XChaCha20Poly1305;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::backend::{Backend, redact_url};
use crate::chunks::{Boundaries, ChunkIndex, ChunkInfo, ListChunk, ListPart, item_order, key_cmp};
use crate::crypto::{self, BlobId, KdfParams, KeyFile, MasterKey, aad};
use crate::error::{Error, Result};
use crate::lock::{self, LockGuard, LockKind};
use crate::pack::{BlobKind, PackBuilder, PackEntry, PackId, pack_key};
use crate::snapshot::{ItemEntry, Snapshot, SnapshotFile, SnapshotId, SnapshotSummary};
use crate::{indexfile, itemlist};

/// The repository format version new repositories get: 2 stores item lists
/// and index files in binary, 1 in JSON. This library reads and writes
/// both; it writes each repository in the version its config names.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this library reads and writes.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

fn supported(version: u32) -> bool {
    (OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version)
}
/// Default target size of a pack file.
pub const DEFAULT_PACK_SIZE: u64 = 16 * 1024 * 1024;
/// Default zstd level.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;
/// Blobs at least this large are hashed, compressed and encrypted on the
/// blocking thread pool rather than on the calling task.
const BLOCKING_THRESHOLD: usize = 256 * 1024;
/// An index file is written once this many packs are not yet indexed (and
/// on every flush).
const INDEX_EVERY_PACKS: usize = 8;
/// Concurrent reads when loading many files.
pub(crate) const READ_CONCURRENCY: usize = 8;

/// How a new repository is set up.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Argon2id parameters of the first key.
    pub kdf: KdfParams,
    /// Target pack size in bytes (at least 64 KiB).
    pub pack_size: u64,
    /// zstd level for blobs and files (0 stores everything uncompressed).
    pub compression_level: i32,
    /// The format version ([`OLDEST_FORMAT_VERSION`]..=[`FORMAT_VERSION`]);
    /// 1 for a repository that older graphbox versions must still read.
    pub format_version: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::default(),
            pack_size: DEFAULT_PACK_SIZE,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            format_version: FORMAT_VERSION,
        }
    }
}

/// The `config` file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Config {
    pub version: u32,
    /// Random id of the repository (32 hex digits).
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    pub pack_size: u64,
    pub compression_level: i32,
}

/// Where a blob is stored.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loc {
    pub pack: u32,
    pub offset: u64,
    pub length: u64,
    pub raw_length: u64,
}

/// An `index/<id>` file (indexfile.rs encodes it).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct IndexFile {
    pub version: u32,
    pub packs: Vec<IndexPack>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct IndexPack {
    pub id: PackId,
    pub blobs: Vec<PackEntry>,
}

enum Pending {
    /// Being hashed / compressed / encrypted by a `put_blob` call.
    Processing,
    /// In the pack being filled.
    Open(PackEntry),
    /// In a finished pack being uploaded.
    InFlight(u64, PackEntry),
}

#[derive(Default)]
pub(crate) struct State {
    pub packs: Vec<PackId>,
    pub pack_numbers: HashMap<PackId, u32>,
    pub index: HashMap<BlobId, Loc>,
    pub index_files: HashSet<String>,
    pending: HashMap<BlobId, Pending>,
    open: PackBuilder,
    next_seq: u64,
    inflight: HashMap<u64, Bytes>,
    unindexed: Vec<IndexPack>,
}

impl State {
    pub(crate) fn intern(&mut self, pack: &str) -> u32 {
        if let Some(&n) = self.pack_numbers.get(pack) {
            return n;
        }
        let n = self.packs.len() as u32;
        self.packs.push(pack.to_string());
        self.pack_numbers.insert(pack.to_string(), n);
        n
    }

    pub(crate) fn add_pack_entries(&mut self, pack: &str, entries: &[PackEntry]) {
        let n = self.intern(pack);
        for e in entries {
            self.index.entry(e.id).or_insert(Loc {
                pack: n,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
            });
        }
    }
}

#[derive(Default)]
struct Counters {
    blobs_stored: AtomicU64,
    blobs_deduplicated: AtomicU64,
    raw_bytes_stored: AtomicU64,
    raw_bytes_deduplicated: AtomicU64,
    stored_bytes: AtomicU64,
    packs_written: AtomicU64,
    index_files_written: AtomicU64,
}

/// Counters of this `Repository` value since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RepoStats {
    /// Blobs newly stored.
    pub blobs_stored: u64,
    /// `put_blob` calls whose content was already stored.
    pub blobs_deduplicated: u64,
    /// Plaintext bytes of the newly stored blobs.
    pub raw_bytes_stored: u64,
    /// Plaintext bytes not stored again thanks to deduplication.
    pub raw_bytes_deduplicated: u64,
    /// Bytes written for the new blobs (compressed, encrypted).
    pub stored_bytes: u64,
    pub packs_written: u64,
    pub index_files_written: u64,
    /// Blobs in the index (all runs).
    pub indexed_blobs: u64,
}

pub(crate) struct Inner {
    pub url: String,
    pub backend: Backend,
    pub cipher: XChaCha20Poly1305,
    pub key: MasterKey,
    pub config: Config,
    pub instance: String,
    level: AtomicI32,
    /// `put_blob` holds it shared, `flush` exclusively: a flush waits for the
    /// blobs being added and then writes everything.
    pub(crate) gate: tokio::sync::RwLock<()>,
    pub state: Mutex<State>,
    counters: Counters,
    failed: Mutex<Option<String>>,
    /// Snapshot files read while the key was derived, by name. A snapshot
    /// file's name is the hash of its bytes, so they never go stale; one
    /// that was deleted since is no longer listed.
    snapshot_bytes: Mutex<HashMap<String, Bytes>>,
    /// Where item list chunks end (chunks.rs).
    boundaries: Boundaries,
}

/// A backup repository. Cheap to clone; safe to use from many tasks.
#[derive(Clone)]
pub struct Repository {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.inner.url)
    }
}

/// Removes a `Processing` entry if `put_blob` stops early (error or
/// cancellation), so the blob can be stored by a later call.
struct ProcessingGuard<'a> {
    inner: &'a Inner,
    id: BlobId,
    armed: bool,
}

impl Drop for ProcessingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut st = self.inner.state.lock().expect("state lock");
            if matches!(st.pending.get(&self.id), Some(Pending::Processing)) {
                st.pending.remove(&self.id);
            }
        }
    }
}

/// Marks the repository failed if a pack upload is abandoned midway.
struct UploadGuard<'a> {
    inner: &'a Inner,
    seq: u64,
    entries: &'a [PackEntry],
    armed: bool,
}

impl Drop for UploadGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.inner
                .abandon_pack(self.seq, self.entries, "a pack upload was cancelled".into());
        }
    }
}

fn state_key(key: &MasterKey, name: &str) -> String {
    let h = blake3::keyed_hash(&key.id, format!("state:{name}").as_bytes());
    format!("state/{}", h.to_hex())
}

impl Inner {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("repository state lock poisoned")
    }

    fn check_failed(&self) -> Result<()> {
        match &*self.failed.lock().expect("failed lock") {
            Some(e) => Err(Error::WriteFailed(e.clone())),
            None => Ok(()),
        }
    }

    fn abandon_pack(&self, seq: u64, entries: &[PackEntry], why: String) {
        let mut st = self.lock_state();
        st.inflight.remove(&seq);
        for e in entries {
            st.pending.remove(&e.id);
        }
        drop(st);
        let mut f = self.failed.lock().expect("failed lock");
        if f.is_none() {
            *f = Some(why);
        }
    }

    /// Writes a finished pack and records its blobs as stored.
    async fn upload_pack(
        &self,
        seq: u64,
        id: PackId,
        bytes: Bytes,
        entries: Vec<PackEntry>,
    ) -> Result<()> {
        let mut guard = UploadGuard {
            inner: self,
            seq,
            entries: &entries,
            armed: true,
        };
        let result = self.backend.put(&pack_key(&id), bytes).await;
        guard.armed = false;
        drop(guard);
        if let Err(e) = result {
            self.abandon_pack(seq, &entries, format!("writing pack {id}: {e}"));
            return Err(e);
        }
        self.counters.packs_written.fetch_add(1, Ordering::Relaxed);
        let write_index = {
            let mut st = self.lock_state();
            st.add_pack_entries(&id, &entries);
            for e in &entries {
                st.pending.remove(&e.id);
            }
            st.inflight.remove(&seq);
            st.unindexed.push(IndexPack { id, blobs: entries });
            st.unindexed.len() >= INDEX_EVERY_PACKS
        };
        if write_index {
            self.write_unindexed().await?;
        }
        Ok(())
    }

    /// Writes an index file for the packs not yet indexed.
    async fn write_unindexed(&self) -> Result<()> {
        let packs = std::mem::take(&mut self.lock_state().unindexed);
        if packs.is_empty() {
            return Ok(());
        }
        let file = IndexFile {
            version: self.config.version,
            packs,
        };
        match self.write_index_file(&file).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.lock_state().unindexed.extend(file.packs);
                let mut f = self.failed.lock().expect("failed lock");
                if f.is_none() {
                    *f = Some(format!("writing an index file: {e}"));
                }
                Err(e)
            }
        }
    }

    pub(crate) async fn write_index_file(&self, file: &IndexFile) -> Result<String> {
        let payload = indexfile::encode(file);
        let sealed = crypto::seal(&self.cipher, aad::INDEX, &payload, self.level());
        let id = blake3::hash(&sealed).to_hex().to_string();
        self.backend
            .put(&format!("index/{id}"), Bytes::from(sealed))
            .await?;
        self.counters
            .index_files_written
            .fetch_add(1, Ordering::Relaxed);
        self.lock_state().index_files.insert(id.clone());
        Ok(id)
    }

    pub(crate) fn level(&self) -> i32 {
        self.level.load(Ordering::Relaxed)
    }

    /// Takes the open pack if it is not empty, marking its blobs in flight.
    fn take_open(
        st: &mut State,
        cipher: &XChaCha20Poly1305,
    ) -> Option<(u64, PackId, Bytes, Vec<PackEntry>)> {
        if st.open.is_empty() {
            return None;
        }
        let cap = st.open.capacity();
        let builder = std::mem::replace(&mut st.open, PackBuilder::with_capacity(cap));
        let (id, bytes, entries) = builder.finish(cipher);
        let seq = st.next_seq;
        st.next_seq += 1;
        for e in &entries {
            st.pending.insert(e.id, Pending::InFlight(seq, *e));
        }
        st.inflight.insert(seq, bytes.clone());
        Some((seq, id, bytes, entries))
    }
}

impl Repository {
    /// Creates a repository at `url` (a directory, `file://`, `s3://…`,
    /// `az://…`, `memory://`) protected by `password`. Fails with
    /// [`Error::AlreadyExists`] if one is there.
    pub async fn init(url: &str, password: &str) -> Result<Repository> {
        Self::init_with(url, password, InitOptions::default()).await
    }

    /// [`Repository::init`] with explicit options.
    pub async fn init_with(url: &str, password: &str, opts: InitOptions) -> Result<Repository> {
        let backend = Backend::open(url)?;
        Self::init_backend(backend, url, password, opts).await
    }

    /// [`Repository::init_with`] on an existing object store (tests that
    /// need to reopen an in-memory repository).
    pub async fn init_object_store(
        store: Arc<dyn object_store::ObjectStore>,
        password: &str,
        opts: InitOptions,
    ) -> Result<Repository> {
        Self::init_backend(
            Backend::with_object_store(store),
            "object-store",
            password,
            opts,
        )
        .await
    }

    /// Opens the repository in an existing object store.
    pub async fn open_object_store(
        store: Arc<dyn object_store::ObjectStore>,
        password: &str,
    ) -> Result<Repository> {
        Self::open_backend(Backend::with_object_store(store), "object-store", password).await
    }

    async fn init_backend(
        backend: Backend,
        url: &str,
        password: &str,
        opts: InitOptions,
    ) -> Result<Repository> {
        let shown = redact_url(url);
        if password.is_empty() {
            return Err(Error::invalid(
                "password",
                "it is empty: a repository needs a password",
            ));
        }
        if opts.pack_size < 64 * 1024 {
            return Err(Error::invalid(
                "pack size",
                format!("{} bytes is below the 64 KiB minimum", opts.pack_size),
            ));
        }
        if !(0..=22).contains(&opts.compression_level) {
            return Err(Error::invalid(
                "compression level",
                format!("{} is outside zstd's 0..=22", opts.compression_level),
            ));
        }
        if !supported(opts.format_version) {
            return Err(Error::invalid(
                "format version",
                format!(
                    "{} is not one this version writes ({OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})",
                    opts.format_version
                ),
            ));
        }
        if backend.size("config").await?.is_some() || !backend.list("keys").await?.is_empty() {
            return Err(Error::AlreadyExists { url: shown });
        }
        let key = MasterKey::random();
        let keyfile = KeyFile::create(&key, password, opts.kdf)?;
        let kjson = serde_json::to_vec_pretty(&keyfile).expect("key file serializes");
        let kid = blake3::hash(&kjson).to_hex().to_string();
        backend
            .put(&format!("keys/{kid}"), Bytes::from(kjson))
            .await?;
        let mut rid = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut rid);
        let config = Config {
            version: opts.format_version,
            id: hex::encode(rid),
            created: OffsetDateTime::now_utc(),
            pack_size: opts.pack_size,
            compression_level: opts.compression_level,
        };
        let cipher = key.cipher();
        let cjson = serde_json::to_vec(&config).expect("config serializes");
        backend
            .put(
                "config",
                Bytes::from(crypto::seal(&cipher, aad::CONFIG, &cjson, 0)),
            )
            .await?;
        Ok(Self::from_parts(shown, backend, key, config))
    }

    fn from_parts(url: String, backend: Backend, key: MasterKey, config: Config) -> Repository {
        let cipher = key.cipher();
        let boundaries = Boundaries::new(&key.id);
        let pack_cap = config.pack_size as usize + 1024 * 1024;
        Repository {
            inner: Arc::new(Inner {
                url,
                backend,
                cipher,
                level: AtomicI32::new(config.compression_level),
                key,
                config,
                instance: uuid::Uuid::new_v4().simple().to_string(),
                gate: tokio::sync::RwLock::new(()),
                state: Mutex::new(State {
                    open: PackBuilder::with_capacity(pack_cap.min(32 << 20)),
                    ..State::default()
                }),
                counters: Counters::default(),
                failed: Mutex::new(None),
                snapshot_bytes: Mutex::new(HashMap::new()),
                boundaries,
            }),
        }
    }

    /// Opens the repository at `url` with `password`; loads the index.
    pub async fn open(url: &str, password: &str) -> Result<Repository> {
        let backend = Backend::open(url)?;
        Self::open_backend(backend, url, password).await
    }

    async fn open_backend(backend: Backend, url: &str, password: &str) -> Result<Repository> {
        let shown = redact_url(url);
        let sealed_config = match backend.get("config").await {
            Ok(c) => c,
            Err(e) if e.is_not_found() => {
                return Err(Error::NotARepository {
                    url: shown,
                    detail: "it has no config file".into(),
                });
            }
            Err(e) => return Err(e),
        };
        let keys = backend.list("keys").await?;
        if keys.is_empty() {
            return Err(Error::NotARepository {
                url: shown,
                detail: "it has no key files".into(),
            });
        }
        // The index and snapshot files are read while the key is derived
        // (Argon2id takes tens of milliseconds; on an object store each file
        // is a round trip): they are decrypted once the key is known.
        let unlock = async {
            let mut master = None;
            for k in &keys {
                let data = backend.get(&format!("keys/{}", k.name)).await?;
                let kf: KeyFile = serde_json::from_slice(&data).map_err(|e| {
                    Error::corrupt(
                        format!("key file keys/{}", k.name),
                        format!("not valid JSON: {e}"),
                    )
                })?;
                let pw = password.to_string();
                let unlocked = tokio::task::spawn_blocking(move || kf.unlock(&pw))
                    .await
                    .map_err(|e| Error::backend("deriving the key", e))??;
                if let Some(m) = unlocked {
                    master = Some(m);
                    break;
                }
            }
            Ok::<_, Error>(master)
        };
        let (master, prefetched, snapshots) = tokio::join!(
            unlock,
            Self::fetch_files(&backend, "index"),
            Self::fetch_files(&backend, "snapshots"),
        );
        let master = master?;
        let Some(key) = master else {
            return Err(Error::WrongPassword { url: shown });
        };
        let cipher = key.cipher();
        let cplain = crypto::open(&cipher, aad::CONFIG, &sealed_config)
            .map_err(|e| Error::corrupt("the config file", e.to_string()))?;
        let config: Config = serde_json::from_slice(&cplain)
            .map_err(|e| Error::corrupt("the config file", format!("not valid JSON: {e}")))?;
        if !supported(config.version) {
            return Err(Error::UnsupportedVersion {
                url: shown,
                found: config.version,
                supported: FORMAT_VERSION,
            });
        }
        let repo = Self::from_parts(shown, backend, key, config);
        repo.install_index(prefetched?).await?;
        // Unreadable ones are read again when needed (and fail there).
        if let Ok(files) = snapshots {
            *repo
                .inner
                .snapshot_bytes
                .lock()
                .expect("snapshot cache lock") = files.into_iter().collect();
        }
        Ok(repo)
    }

    /// (Re)loads every index file.
    pub(crate) async fn load_index(&self) -> Result<()> {
        let raw = Self::fetch_files(&self.inner.backend, "index").await?;
        self.install_index(raw).await
    }

    /// The name and bytes of every file in `dir`.
    async fn fetch_files(backend: &Backend, dir: &str) -> Result<Vec<(String, Bytes)>> {
        let files = backend.list(dir).await?;
        futures::stream::iter(files)
            .map(|f| async move {
                let data = backend.get(&format!("{dir}/{}", f.name)).await?;
                Ok((f.name, data))
            })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Replaces the in-memory index with the index files `raw`. The files
    /// are decrypted and parsed on blocking threads, several at once (a
    /// large repository's index is megabytes of JSON, and every command
    /// that opens the repository waits for it).
    async fn install_index(&self, raw: Vec<(String, Bytes)>) -> Result<()> {
        let parsed: Vec<(String, Result<IndexFile>)> = futures::stream::iter(raw)
            .map(|(name, data)| {
                let repo = self.clone();
                async move {
                    tokio::task::spawn_blocking(move || {
                        let file = repo.parse_index_file(&name, &data);
                        (name, file)
                    })
                    .await
                    .map_err(|e| Error::backend("parsing an index file", e))
                }
            })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut loaded = Vec::with_capacity(parsed.len());
        for (name, file) in parsed {
            match file {
                Ok(file) => loaded.push((name, file)),
                // A damaged index file must not make the repository
                // unusable: its blobs are missing until it is repaired,
                // `verify` names it and `prune` refuses to run.
                Err(e @ Error::Corrupt { .. }) => {
                    tracing::warn!(error = %e, "skipping an unreadable index file");
                }
                Err(e) => return Err(e),
            }
        }
        let blobs: usize = loaded
            .iter()
            .flat_map(|(_, f)| &f.packs)
            .map(|p| p.blobs.len())
            .sum();
        let mut st = self.inner.lock_state();
        st.index.clear();
        // Sized once: growing it rehashes every entry into fresh memory.
        st.index.reserve(blobs);
        st.index_files.clear();
        for (name, file) in loaded {
            for p in &file.packs {
                st.add_pack_entries(&p.id, &p.blobs);
            }
            st.index_files.insert(name);
        }
        Ok(())
    }

    pub(crate) async fn read_index_file(&self, name: &str) -> Result<IndexFile> {
        let data = self.inner.backend.get(&format!("index/{name}")).await?;
        self.parse_index_file(name, &data)
    }

    fn parse_index_file(&self, name: &str, data: &[u8]) -> Result<IndexFile> {
        let plain = crypto::open(&self.inner.cipher, aad::INDEX, data)
            .map_err(|e| Error::corrupt(format!("index file index/{name}"), e.to_string()))?;
        let file = indexfile::decode(&plain)
            .map_err(|e| Error::corrupt(format!("index file index/{name}"), e))?;
        if !supported(file.version) {
            return Err(Error::UnsupportedVersion {
                url: self.inner.url.clone(),
                found: file.version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(file)
    }

    /// The repository location (credentials removed).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The repository's random id.
    pub fn id(&self) -> &str {
        &self.inner.config.id
    }

    /// The repository's format version (what its config names; this value
    /// writes that version).
    pub fn format_version(&self) -> u32 {
        self.inner.config.version
    }

    /// Changes the zstd level for what this value writes from now on.
    pub fn set_compression_level(&self, level: i32) -> Result<()> {
        if !(0..=22).contains(&level) {
            return Err(Error::invalid(
                "compression level",
                format!("{level} is outside zstd's 0..=22"),
            ));
        }
        self.inner.level.store(level, Ordering::Relaxed);
        Ok(())
    }

    /// The id `plaintext` has (or would have) in this repository.
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.inner.key.id, plaintext).as_bytes())
    }

    /// Whether the blob is stored (or being stored by this value).
    pub fn has_blob(&self, id: &BlobId) -> bool {
        let st = self.inner.lock_state();
        st.index.contains_key(id) || st.pending.contains_key(id)
    }

    /// Where a stored blob is: `(pack id, offset, sealed length)`; `None`
    /// when it is not in the index (yet).
    pub fn blob_location(&self, id: &BlobId) -> Option<(String, u64, u64)> {
        let st = self.inner.lock_state();
        st.index
            .get(id)
            .map(|l| (st.packs[l.pack as usize].clone(), l.offset, l.length))
    }

    /// Stores an item's content once: `(id, true)` when it was new.
    pub async fn put_blob(&self, plaintext: Bytes) -> Result<(BlobId, bool)> {
        self.put_blob_kind(plaintext, BlobKind::Data).await
    }

    pub(crate) async fn put_blob_kind(
        &self,
        plaintext: Bytes,
        kind: BlobKind,
    ) -> Result<(BlobId, bool)> {
        self.put_blob_on(plaintext, kind, false).await
    }

    /// [`Repository::put_blob_kind`]; `offload`: hash, compress and encrypt
    /// on the blocking pool whatever the size (many small blobs stored at
    /// once, as an item list's chunks are, are then processed in parallel).
    pub(crate) async fn put_blob_on(
        &self,
        plaintext: Bytes,
        kind: BlobKind,
        offload: bool,
    ) -> Result<(BlobId, bool)> {
        let inner = &*self.inner;
        let _gate = inner.gate.read().await;
        inner.check_failed()?;
        let large = offload || plaintext.len() >= BLOCKING_THRESHOLD;
        let id = if large {
            let key = inner.key.id;
            let p = plaintext.clone();
            tokio::task::spawn_blocking(move || BlobId(*blake3::keyed_hash(&key, &p).as_bytes()))
                .await
                .map_err(|e| Error::backend("hashing a blob", e))?
        } else {
            self.blob_id(&plaintext)
        };
        {
            let mut st = inner.lock_state();
            if st.index.contains_key(&id) || st.pending.contains_key(&id) {
                drop(st);
                inner
                    .counters
                    .blobs_deduplicated
                    .fetch_add(1, Ordering::Relaxed);
                inner
                    .counters
                    .raw_bytes_deduplicated
                    .fetch_add(plaintext.len() as u64, Ordering::Relaxed);
                return Ok((id, false));
            }
            st.pending.insert(id, Pending::Processing);
        }
        let mut guard = ProcessingGuard {
            inner,
            id,
            armed: true,
        };
        let level = inner.level();
        let raw_len = plaintext.len() as u64;
        let sealed = if large {
            let cipher = inner.cipher.clone();
            tokio::task::spawn_blocking(move || crypto::seal(&cipher, &id.0, &plaintext, level))
                .await
                .map_err(|e| Error::backend("compressing and encrypting a blob", e))?
        } else {
            crypto::seal(&inner.cipher, &id.0, &plaintext, level)
        };
        let sealed_len = sealed.len() as u64;
        // A large blob makes its own pack (finished off the state lock: its
        // hash covers the whole blob); the open pack stays open.
        let mut small = None;
        let own = if sealed_len >= inner.config.pack_size / 2 {
            let cipher = inner.cipher.clone();
            let build = move || PackBuilder::single(id, kind, sealed, raw_len).finish(&cipher);
            Some(if large {
                tokio::task::spawn_blocking(build)
                    .await
                    .map_err(|e| Error::backend("finishing a pack", e))?
            } else {
                build()
            })
        } else {
            small = Some(sealed);
            None
        };
        let to_upload = {
            let mut st = inner.lock_state();
            guard.armed = false;
            match own {
                Some((pid, bytes, entries)) => {
                    let seq = st.next_seq;
                    st.next_seq += 1;
                    st.pending.insert(id, Pending::InFlight(seq, entries[0]));
                    st.inflight.insert(seq, bytes.clone());
                    Some((seq, pid, bytes, entries))
                }
                None => {
                    let sealed = small.expect("a blob is either small or in its own pack");
                    let e = st.open.add(id, kind, &sealed, raw_len);
                    st.pending.insert(id, Pending::Open(e));
                    if st.open.len() as u64 >= inner.config.pack_size {
                        Inner::take_open(&mut st, &inner.cipher)
                    } else {
                        None
                    }
                }
            }
        };
        inner.counters.blobs_stored.fetch_add(1, Ordering::Relaxed);
        inner
            .counters
            .raw_bytes_stored
            .fetch_add(raw_len, Ordering::Relaxed);
        inner
            .counters
            .stored_bytes
            .fetch_add(sealed_len, Ordering::Relaxed);
        if let Some((seq, pid, bytes, entries)) = to_upload {
            inner.upload_pack(seq, pid, bytes, entries).await?;
        }
        Ok((id, true))
    }

    /// A blob's plaintext, verified against its id.
    pub async fn get_blob(&self, id: &BlobId) -> Result<Bytes> {
        self.get_blob_then(id, false, Ok).await
    }

    /// [`Repository::get_blob`], then `then` on its content; `offload`:
    /// decrypt, check and `then` on the blocking pool whatever the size
    /// (many small blobs read at once and decoded, as an item list's chunks
    /// are, are then processed in parallel, with one hand-over each).
    pub(crate) async fn get_blob_then<T: Send + 'static>(
        &self,
        id: &BlobId,
        offload: bool,
        then: impl FnOnce(Bytes) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        enum Source {
            Stored(PackId, Loc),
            Here(Bytes, u64),
        }
        let source = {
            let st = self.inner.lock_state();
            if let Some(loc) = st.index.get(id) {
                Source::Stored(st.packs[loc.pack as usize].clone(), *loc)
            } else {
                match st.pending.get(id) {
                    Some(Pending::Open(e)) => {
                        Source::Here(Bytes::copy_from_slice(st.open.slice(e)), e.raw_length)
                    }
                    Some(Pending::InFlight(seq, e)) => {
                        let b = &st.inflight[seq];
                        Source::Here(
                            b.slice(e.offset as usize..(e.offset + e.length) as usize),
                            e.raw_length,
                        )
                    }
                    Some(Pending::Processing) => {
                        return Err(Error::NotFound {
                            what: "blob",
                            id: id.to_hex(),
                            hint: " yet: it is still being stored by another task".into(),
                        });
                    }
                    None => return Err(Error::not_found("blob", id.to_hex())),
                }
            }
        };
        let (sealed, raw_length, pack) = match source {
            Source::Stored(pack, loc) => {
                let data = self
                    .inner
                    .backend
                    .get_range(&pack_key(&pack), loc.offset..loc.offset + loc.length)
                    .await
                    .map_err(|e| match e {
                        Error::NotFound { .. } => Error::corrupt(
                            format!("blob {id}"),
                            format!("its pack {pack} is missing"),
                        ),
                        Error::Corrupt { detail, .. } => {
                            Error::corrupt(format!("blob {id} in pack {pack}"), detail)
                        }
                        e => e,
                    })?;
                (data, loc.raw_length, Some(pack))
            }
            Source::Here(b, raw) => (b, raw, None),
        };
        let inner = self.inner.clone();
        let id = *id;
        let check = move || -> Result<T> {
            let what = || match &pack {
                Some(p) => format!("blob {id} in pack {p}"),
                None => format!("blob {id} (not yet written)"),
            };
            let plain = crypto::open_bounded(&inner.cipher, &id.0, &sealed, raw_length as usize)
                .map_err(|e| Error::corrupt(what(), e.to_string()))?;
            if plain.len() as u64 != raw_length {
                return Err(Error::corrupt(
                    what(),
                    format!(
                        "it holds {} bytes, the index says {raw_length}",
                        plain.len()
                    ),
                ));
            }
            let actual = BlobId(*blake3::keyed_hash(&inner.key.id, &plain).as_bytes());
            if actual != id {
                return Err(Error::corrupt(
                    what(),
                    format!("its content hashes to {actual}"),
                ));
            }
            then(Bytes::from(plain))
        };
        if offload || raw_length as usize >= BLOCKING_THRESHOLD {
            tokio::task::spawn_blocking(check)
                .await
                .map_err(|e| Error::backend("decrypting a blob", e))?
        } else {
            check()
        }
    }

    /// Makes every blob added so far durable and indexed.
    pub async fn flush(&self) -> Result<()> {
        let _gate = self.inner.gate.write().await;
        self.flush_locked().await
    }

    /// [`Repository::flush`] for a caller holding the gate exclusively.
    pub(crate) async fn flush_locked(&self) -> Result<()> {
        let inner = &*self.inner;
        inner.check_failed()?;
        let taken = Inner::take_open(&mut inner.lock_state(), &inner.cipher);
        if let Some((seq, pid, bytes, entries)) = taken {
            inner.upload_pack(seq, pid, bytes, entries).await?;
        }
        inner.write_unindexed().await
    }

    /// Takes a lock on the repository, waiting up to `wait` for conflicting
    /// locks of others to go away.
    ///
    /// The index was read when the repository was opened, perhaps while
    /// another process held the lock: a prune may have rewritten it and
    /// deleted packs it named since. So once the lock is held, a changed set
    /// of index files is read again.
    pub async fn lock(&self, kind: LockKind, purpose: &str, wait: Duration) -> Result<LockGuard> {
        let guard = lock::acquire(
            &self.inner.backend,
            &self.inner.cipher,
            &self.inner.instance,
            kind,
            purpose,
            wait,
        )
        .await?;
        let listed: HashSet<String> = self.file_names("index").await?.into_iter().collect();
        if listed != self.inner.lock_state().index_files {
            self.load_index().await?;
        }
        Ok(guard)
    }

    /// Every lock file's record (`None` for unreadable ones), by file name.
    pub async fn list_locks(&self) -> Result<Vec<(String, Option<lock::LockRecord>)>> {
        lock::read_all(&self.inner.backend, &self.inner.cipher).await
    }

    /// Writes a lock record as if another process held it (tests and
    /// recovery tooling); returns the lock file name.
    #[doc(hidden)]
    pub async fn plant_lock(&self, rec: &lock::LockRecord) -> Result<String> {
        let name = uuid::Uuid::new_v4().simple().to_string();
        lock::write_record(&self.inner.backend, &self.inner.cipher, &name, rec).await?;
        Ok(name)
    }

    /// Counters since this value was opened.
    pub fn stats(&self) -> RepoStats {
        let c = &self.inner.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RepoStats {
            blobs_stored: l(&c.blobs_stored),
            blobs_deduplicated: l(&c.blobs_deduplicated),
            raw_bytes_stored: l(&c.raw_bytes_stored),
            raw_bytes_deduplicated: l(&c.raw_bytes_deduplicated),
            stored_bytes: l(&c.stored_bytes),
            packs_written: l(&c.packs_written),
            index_files_written: l(&c.index_files_written),
            indexed_blobs: self.inner.lock_state().index.len() as u64,
        }
    }

    // ---- state area ----

    /// Stores `data` under `name` (durable, encrypted; replaces).
    pub async fn put_state(&self, name: &str, data: &[u8]) -> Result<()> {
        let aad = format!("{}{name}", aad::STATE_PREFIX);
        let sealed = crypto::seal(&self.inner.cipher, aad.as_bytes(), data, self.inner.level());
        self.inner
            .backend
            .put(&state_key(&self.inner.key, name), Bytes::from(sealed))
            .await
    }

    /// What [`Repository::put_state`] stored under `name`.
    pub async fn get_state(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let data = match self
            .inner
            .backend
            .get(&state_key(&self.inner.key, name))
            .await
        {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let aad = format!("{}{name}", aad::STATE_PREFIX);
        crypto::open(&self.inner.cipher, aad.as_bytes(), &data)
            .map(Some)
            .map_err(|e| Error::corrupt(format!("state '{name}'"), e.to_string()))
    }

    /// Removes the state `name` (no error if absent).
    pub async fn delete_state(&self, name: &str) -> Result<()> {
        self.inner
            .backend
            .delete(&state_key(&self.inner.key, name))
            .await
    }

    // ---- snapshots ----

    /// Saves a snapshot (after flushing every blob added so far).
    pub async fn save_snapshot(&self, mut snap: Snapshot) -> Result<SnapshotId> {
        let items = std::mem::take(&mut snap.items);
        self.save_snapshot_parts(snap, vec![ListPart::Items(items)])
            .await
    }

    /// Saves a snapshot whose item list is `parts`, in order (`snap.items`
    /// is not used): items to store, and chunks already stored that are
    /// referenced as they are (an incremental backup's unchanged chunks).
    /// Items are cut into chunks where [`crate::chunks`] says; a chunk never
    /// spans two parts. The chunk index is recorded when the list is in item
    /// order (folder id, then id), which is what lets the next run write
    /// again only the chunks it changes. Only the first key of a referenced
    /// chunk is known here, so items placed right after one must sort after
    /// all of its items: the caller's guarantee, which `verify` checks.
    pub async fn save_snapshot_parts(
        &self,
        mut snap: Snapshot,
        parts: Vec<ListPart>,
    ) -> Result<SnapshotId> {
        snap.id = None;
        snap.items = Vec::new();
        enum Job {
            Stored(ListChunk),
            Encode(Vec<ItemEntry>),
        }
        let mut jobs = Vec::new();
        // Whether the list is in item order: within each new chunk, and
        // from one chunk's first (and, for new ones, last) key to the next.
        let mut sorted = true;
        let mut last: Option<(String, String)> = None;
        let mut after = |first: (&str, &str), end: (&str, &str), sorted: &mut bool| {
            if let Some((f, i)) = &last
                && key_cmp(f, i, first.0, first.1) == std::cmp::Ordering::Greater
            {
                *sorted = false;
            }
            last = Some((end.0.to_string(), end.1.to_string()));
        };
        for part in parts {
            match part {
                ListPart::Chunk(c) => {
                    if !self.has_blob(&c.blob) {
                        return Err(Error::not_found("item list chunk", c.blob.to_string()));
                    }
                    let key = (c.info.folder.as_str(), c.info.id.as_str());
                    after(key, key, &mut sorted);
                    jobs.push(Job::Stored(c));
                }
                ListPart::Items(items) => {
                    if items.is_empty() {
                        continue;
                    }
                    sorted &= items
                        .windows(2)
                        .all(|w| item_order(&w[0], &w[1]) != std::cmp::Ordering::Greater);
                    let (a, z) = (&items[0], &items[items.len() - 1]);
                    after((&a.folder_id, &a.id), (&z.folder_id, &z.id), &mut sorted);
                    let ranges = self.inner.boundaries.split(&items);
                    let mut rest = items.into_iter();
                    for r in ranges {
                        jobs.push(Job::Encode(rest.by_ref().take(r.len()).collect()));
                    }
                }
            }
        }
        // New chunks are serialized on blocking threads and stored
        // concurrently (a large mailbox's list is megabytes to encode,
        // compress and encrypt, which `put_blob_kind` does on blocking
        // threads too); their order is kept.
        let version = self.inner.config.version;
        let chunks: Vec<(BlobId, ChunkInfo)> = futures::stream::iter(jobs)
            .map(|job| async move {
                let chunk = match job {
                    Job::Stored(c) => return Ok((c.blob, c.info)),
                    Job::Encode(chunk) => chunk,
                };
                let info = ChunkInfo::of(&chunk);
                let encoded =
                    tokio::task::spawn_blocking(move || itemlist::encode(&chunk, version))
                        .await
                        .map_err(|e| Error::backend("serializing the item list", e))?;
                let (id, _) = self
                    .put_blob_on(Bytes::from(encoded), BlobKind::Tree, true)
                    .await?;
                Ok::<_, Error>((id, info))
            })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        self.flush().await?;
        let item_count = chunks.iter().map(|(_, i)| i.count).sum();
        let total_size = chunks.iter().map(|(_, i)| i.size).sum();
        let (item_chunks, index): (Vec<BlobId>, Vec<ChunkInfo>) = chunks.into_iter().unzip();
        let file = SnapshotFile {
            version,
            snapshot: snap,
            item_count,
            total_size,
            item_chunks,
            item_chunk_index: if sorted { index } else { Vec::new() },
        };
        let json = serde_json::to_vec(&file).expect("snapshot serializes");
        let sealed = crypto::seal(&self.inner.cipher, aad::SNAPSHOT, &json, self.inner.level());
        let id = blake3::hash(&sealed).to_hex().to_string();
        self.inner
            .backend
            .put(&format!("snapshots/{id}"), Bytes::from(sealed))
            .await?;
        Ok(SnapshotId(id))
    }

    pub(crate) async fn snapshot_names(&self) -> Result<Vec<String>> {
        self.file_names("snapshots").await
    }

    /// The names of the files in `dir`.
    async fn file_names(&self, dir: &str) -> Result<Vec<String>> {
        Ok(self
            .inner
            .backend
            .list(dir)
            .await?
            .into_iter()
            .map(|f| f.name)
            .collect())
    }

    /// Every snapshot file (items not loaded), in no particular order.
    async fn snapshot_files(&self) -> Result<Vec<SnapshotFile>> {
        let names = self.snapshot_names().await?;
        futures::stream::iter(names)
            .map(|n| async move { self.read_snapshot_file(&n).await })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await
    }

    pub(crate) async fn read_snapshot_file(&self, id: &str) -> Result<SnapshotFile> {
        let cached = self
            .inner
            .snapshot_bytes
            .lock()
            .expect("snapshot cache lock")
            .get(id)
            .cloned();
        let data = match cached {
            Some(d) => d,
            None => match self.inner.backend.get(&format!("snapshots/{id}")).await {
                Ok(d) => d,
                Err(e) if e.is_not_found() => return Err(Error::not_found("snapshot", id)),
                Err(e) => return Err(e),
            },
        };
        let what = || format!("snapshot {id}");
        if blake3::hash(&data).to_hex().as_str() != id {
            return Err(Error::corrupt(
                what(),
                "its content does not hash to its name",
            ));
        }
        let plain = crypto::open(&self.inner.cipher, aad::SNAPSHOT, &data)
            .map_err(|e| Error::corrupt(what(), e.to_string()))?;
        let mut file: SnapshotFile = serde_json::from_slice(&plain)
            .map_err(|e| Error::corrupt(what(), format!("not valid JSON: {e}")))?;
        if !supported(file.version) {
            return Err(Error::UnsupportedVersion {
                url: self.inner.url.clone(),
                found: file.version,
                supported: FORMAT_VERSION,
            });
        }
        file.snapshot.id = Some(SnapshotId(id.to_string()));
        Ok(file)
    }

    /// A snapshot's item list: its chunks are read and parsed concurrently
    /// (parsing on blocking threads), then joined in order.
    pub(crate) async fn load_items(&self, file: &SnapshotFile) -> Result<Vec<ItemEntry>> {
        let parts = self.load_chunks(file.version, &file.item_chunks).await?;
        let mut items = Vec::with_capacity(file.item_count as usize);
        for part in parts {
            items.extend(part);
        }
        Ok(items)
    }

    /// The items of each of `chunks` (item list chunks of format `version`).
    pub(crate) async fn load_chunks(
        &self,
        version: u32,
        chunks: &[BlobId],
    ) -> Result<Vec<Vec<ItemEntry>>> {
        futures::stream::iter(chunks)
            .map(|chunk| {
                let id = *chunk;
                self.get_blob_then(chunk, true, move |data| {
                    itemlist::decode(&data, version)
                        .map_err(|e| Error::corrupt(format!("item list chunk {id}"), e))
                })
            })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Every snapshot, oldest first.
    pub async fn list_snapshots(&self) -> Result<Vec<SnapshotSummary>> {
        let mut out: Vec<SnapshotSummary> = self
            .snapshot_files()
            .await?
            .iter()
            .map(summary_of)
            .collect();
        out.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Resolves a snapshot id or unique prefix (at least 4 hex digits).
    pub async fn resolve_snapshot(&self, id_or_prefix: &str) -> Result<SnapshotId> {
        let p = id_or_prefix.trim().to_ascii_lowercase();
        if p.len() < 4 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(
                "snapshot id",
                format!(
                    "'{id_or_prefix}' is not a snapshot id or a prefix of at least 4 hex digits"
                ),
            ));
        }
        let matches: Vec<String> = self
            .snapshot_names()
            .await?
            .into_iter()
            .filter(|n| n.starts_with(&p))
            .collect();
        match matches.len() {
            0 => Err(Error::NotFound {
                what: "snapshot",
                id: id_or_prefix.to_string(),
                hint: "; list them with `graphbox snapshots`".into(),
            }),
            1 => Ok(SnapshotId(matches.into_iter().next().expect("one"))),
            _ => Err(Error::AmbiguousPrefix {
                prefix: id_or_prefix.to_string(),
                candidates: matches
                    .iter()
                    .map(|m| &m[..12])
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// A whole snapshot, items included.
    pub async fn load_snapshot(&self, id_or_prefix: &str) -> Result<Snapshot> {
        let id = self.resolve_snapshot(id_or_prefix).await?;
        let file = self.read_snapshot_file(&id.0).await?;
        let items = self.load_items(&file).await?;
        let mut snap = file.snapshot;
        snap.items = items;
        Ok(snap)
    }

    /// The newest snapshot of a mailbox (the parent of the next run).
    pub async fn latest_snapshot(&self, mailbox_id: &str) -> Result<Option<Snapshot>> {
        match self.latest_snapshot_head(mailbox_id).await? {
            Some(head) => {
                let items = self.load_snapshot_items(&head).await?;
                let mut snap = head.into_snapshot();
                snap.items = items;
                Ok(Some(snap))
            }
            None => Ok(None),
        }
    }

    /// The newest snapshot of a mailbox without its item list (folders,
    /// delta links, errors): one small file. The items, the bulk of a
    /// large mailbox's snapshot, come from [`Repository::load_snapshot_items`],
    /// which a caller can run beside its own work.
    pub async fn latest_snapshot_head(&self, mailbox_id: &str) -> Result<Option<SnapshotHead>> {
        Ok(self.latest_snapshot_heads().await?.remove(mailbox_id))
    }

    /// The newest snapshot head of every mailbox that has a snapshot, from
    /// one reading of the snapshot files (a run over many mailboxes asks
    /// once instead of reading every snapshot file per mailbox).
    pub async fn latest_snapshot_heads(&self) -> Result<HashMap<String, SnapshotHead>> {
        let mut newest: HashMap<String, SnapshotFile> = HashMap::new();
        for f in self.snapshot_files().await? {
            match newest.entry(f.snapshot.mailbox_id.clone()) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let old = &e.get().snapshot;
                    if (f.snapshot.time, &f.snapshot.id) > (old.time, &old.id) {
                        e.insert(f);
                    }
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(f);
                }
            }
        }
        Ok(newest
            .into_iter()
            .map(|(mailbox, file)| (mailbox, SnapshotHead { file }))
            .collect())
    }

    /// The item list of a snapshot whose head was read.
    pub async fn load_snapshot_items(&self, head: &SnapshotHead) -> Result<Vec<ItemEntry>> {
        self.load_items(&head.file).await
    }

    /// The items of some of a snapshot's item list chunks (from
    /// [`SnapshotHead::chunk_index`]), each chunk's in order. A chunk that
    /// does not hold what the index says is reported as corrupt.
    pub async fn load_list_chunks(
        &self,
        head: &SnapshotHead,
        chunks: &[&ListChunk],
    ) -> Result<Vec<Vec<ItemEntry>>> {
        let blobs: Vec<BlobId> = chunks.iter().map(|c| c.blob).collect();
        let parts = self.load_chunks(head.file.version, &blobs).await?;
        for (c, items) in chunks.iter().zip(&parts) {
            if let Some(problem) = chunk_mismatch(&c.info, items) {
                return Err(Error::corrupt(
                    format!("item list chunk {}", c.blob),
                    problem,
                ));
            }
        }
        Ok(parts)
    }

    /// Removes a snapshot (its data stays until [`Repository::prune`]).
    pub async fn forget_snapshot(&self, id: &SnapshotId) -> Result<()> {
        let key = format!("snapshots/{}", id.0);
        if self.inner.backend.size(&key).await?.is_none() {
            return Err(Error::not_found("snapshot", id.0.clone()));
        }
        self.inner
            .snapshot_bytes
            .lock()
            .expect("snapshot cache lock")
            .remove(&id.0);
        self.inner.backend.delete(&key).await
    }
}

/// A snapshot read without its item list
/// ([`Repository::latest_snapshot_head`]).
pub struct SnapshotHead {
    file: SnapshotFile,
}

impl SnapshotHead {
    /// The snapshot; its `items` are empty.
    pub fn snapshot(&self) -> &Snapshot {
        &self.file.snapshot
    }

    /// The snapshot (with empty `items`), taking it.
    pub fn into_snapshot(self) -> Snapshot {
        self.file.snapshot
    }

    /// How many items its list holds.
    pub fn item_count(&self) -> u64 {
        self.file.item_count
    }

    /// Its item list's chunks with their first keys, counts and sizes;
    /// `None` when the snapshot does not record them (written by a version
    /// before 2026-11-28, or its list is not in item order).
    pub fn chunk_index(&self) -> Option<ChunkIndex> {
        let f = &self.file;
        if f.item_chunk_index.len() != f.item_chunks.len() {
            return None;
        }
        let chunks = f
            .item_chunks
            .iter()
            .zip(&f.item_chunk_index)
            .map(|(blob, info)| ListChunk {
                blob: *blob,
                info: info.clone(),
            })
            .collect();
        ChunkIndex::new(chunks)
    }
}

/// How `items` (a chunk's) differ from the chunk index's `info`, if they do.
pub(crate) fn chunk_mismatch(info: &ChunkInfo, items: &[ItemEntry]) -> Option<String> {
    let first = items.first().map(|i| (i.folder_id.as_str(), i.id.as_str()));
    if first != Some((info.folder.as_str(), info.id.as_str())) {
        return Some(format!(
            "it does not start with the item the snapshot's chunk index names ({} in folder {})",
            info.id, info.folder
        ));
    }
    let size: u64 = items.iter().map(|i| i.size).sum();
    if items.len() as u64 != info.count || size != info.size {
        return Some(format!(
            "it holds {} items of {size} bytes where the snapshot's chunk index says {} of {}",
            items.len(),
            info.count,
            info.size
        ));
    }
    None
}

pub(crate) fn summary_of(f: &SnapshotFile) -> SnapshotSummary {
    let s = &f.snapshot;
    SnapshotSummary {
        id: s.id.clone().expect("loaded snapshots have ids"),
        time: s.time,
        hostname: s.hostname.clone(),
        tags: s.tags.clone(),
        mailbox_id: s.mailbox_id.clone(),
        label: s.label.clone(),
        parent: s.parent.clone(),
        item_count: f.item_count,
        total_size: f.total_size,
        error_count: s.errors.len() as u64,
        complete: s.complete,
    }
}

#[cfg(test)]
mod format_tests {
    //! What each format version stores, checked in the decrypted files, and
    //! versions newer than this library refused by name.
    use super::*;
    use crate::chunks::ITEMS_PER_CHUNK;
    use crate::snapshot::ItemEntry;

    const PASSWORD: &str = "format tests";

    fn opts(version: u32) -> InitOptions {
        InitOptions {
            kdf: KdfParams {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            format_version: version,
            ..InitOptions::default()
        }
    }

    fn items(blob: BlobId, n: usize) -> Vec<ItemEntry> {
        (0..n)
            .map(|i| ItemEntry {
                id: format!("item-{i}"),
                folder_id: format!("folder-{}", i % 7),
                change_key: format!("ck-{i}"),
                item_type: "IPM.Note".into(),
                size: i as u64,
                created: Some(OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()),
                modified: None,
                subject: (i % 2 == 0).then(|| format!("Subject {i}")),
                sender: None,
                categories: vec![],
                blob,
            })
            .collect()
    }

    async fn index_payloads(repo: &Repository) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for name in repo.file_names("index").await.unwrap() {
            let data = repo
                .inner
                .backend
                .get(&format!("index/{name}"))
                .await
                .unwrap();
            out.push(crypto::open(&repo.inner.cipher, aad::INDEX, &data).unwrap());
        }
        out
    }

    #[tokio::test]
    async fn each_version_stores_its_encoding_and_keeps_it_after_reopening() {
        for (version, list_start, index_start) in [(1, &b"["[..], &b"{"[..]), (2, b"GBIL", b"GBIX")]
        {
            let dir = tempfile::tempdir().unwrap();
            let url = dir.path().to_str().unwrap().to_string();
            let repo = Repository::init_with(&url, PASSWORD, opts(version))
                .await
                .unwrap();
            let (blob, _) = repo.put_blob(Bytes::from_static(b"content")).await.unwrap();
            let mut snap = Snapshot::new("MBX:1", "one");
            snap.items = items(blob, ITEMS_PER_CHUNK + 10);
            let id = repo.save_snapshot(snap.clone()).await.unwrap();
            // Reopened, the repository still writes its own version.
            let repo = Repository::open(&url, PASSWORD).await.unwrap();
            assert_eq!(repo.format_version(), version);
            let mut second = snap.clone();
            second.items.truncate(3);
            repo.save_snapshot(second).await.unwrap();
            let file = repo.read_snapshot_file(&id.0).await.unwrap();
            assert_eq!(file.version, version);
            // Cut where the boundary hash says, at most ITEMS_PER_CHUNK each;
            // the list is not in item order, so no chunk index.
            assert!(file.item_chunks.len() > 1);
            assert!(file.item_chunk_index.is_empty());
            for chunk in &file.item_chunks {
                let plain = repo.get_blob(chunk).await.unwrap();
                assert!(plain.starts_with(list_start), "version {version}");
            }
            let payloads = index_payloads(&repo).await;
            assert_eq!(payloads.len(), 2);
            for p in payloads {
                assert!(p.starts_with(index_start), "version {version}");
            }
            assert_eq!(repo.load_snapshot(&id.0).await.unwrap().items, snap.items);
        }
    }

    #[tokio::test]
    async fn versions_outside_the_supported_range_are_refused() {
        for bad in [0, FORMAT_VERSION + 1] {
            let err = Repository::init_with("memory://", PASSWORD, opts(bad))
                .await
                .err()
                .unwrap();
            assert!(err.to_string().contains("format version"), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().to_str().unwrap().to_string();
        let repo = Repository::init_with(&url, PASSWORD, opts(FORMAT_VERSION))
            .await
            .unwrap();
        let id = repo
            .save_snapshot(Snapshot::new("MBX:1", "one"))
            .await
            .unwrap();
        let newer = FORMAT_VERSION + 1;
        let unsupported = |r: Result<Repository>| match r {
            Err(Error::UnsupportedVersion {
                found, supported, ..
            }) => found == newer && supported == FORMAT_VERSION,
            _ => false,
        };

        // A snapshot file of a newer version.
        let mut file = repo.read_snapshot_file(&id.0).await.unwrap();
        file.version = newer;
        let json = serde_json::to_vec(&file).unwrap();
        let sealed = crypto::seal(&repo.inner.cipher, aad::SNAPSHOT, &json, 0);
        let name = blake3::hash(&sealed).to_hex().to_string();
        repo.inner
            .backend
            .put(&format!("snapshots/{name}"), Bytes::from(sealed))
            .await
            .unwrap();
        let fresh = Repository::open(&url, PASSWORD).await.unwrap();
        assert!(matches!(
            fresh.load_snapshot(&name).await,
            Err(Error::UnsupportedVersion { found, .. }) if found == newer
        ));

        // A JSON index file naming a newer version.
        let index = IndexFile {
            version: newer,
            packs: vec![],
        };
        let sealed = crypto::seal(
            &repo.inner.cipher,
            aad::INDEX,
            &serde_json::to_vec(&index).unwrap(),
            0,
        );
        let name = blake3::hash(&sealed).to_hex().to_string();
        repo.inner
            .backend
            .put(&format!("index/{name}"), Bytes::from(sealed))
            .await
            .unwrap();
        assert!(unsupported(Repository::open(&url, PASSWORD).await));
        repo.inner
            .backend
            .delete(&format!("index/{name}"))
            .await
            .unwrap();

        // A config of a newer version.
        let mut config = repo.inner.config.clone();
        config.version = newer;
        let sealed = crypto::seal(
            &repo.inner.cipher,
            aad::CONFIG,
            &serde_json::to_vec(&config).unwrap(),
            0,
        );
        repo.inner
            .backend
            .put("config", Bytes::from(sealed))
            .await
            .unwrap();
        assert!(unsupported(Repository::open(&url, PASSWORD).await));
    }
}
