//! `verify`: check the repository's structure and, optionally, every byte.

use std::collections::{HashMap, HashSet};
use std::fmt;

use futures::StreamExt;

use crate::crypto::{self, BlobId};
use crate::error::{Error, Result};
use crate::pack::{self, PackEntry, PackId, pack_key};
use crate::repo::{READ_CONCURRENCY, Repository};
use crate::snapshot::{ItemEntry, SnapshotFile, SnapshotId};

/// One thing wrong with the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// An index file does not open or parse.
    UnreadableIndex { file: String, detail: String },
    /// The index lists a pack that does not exist.
    MissingPack { pack: PackId, blobs: usize },
    /// A pack is shorter than the blobs the index places in it.
    TruncatedPack {
        pack: PackId,
        size: u64,
        needed: u64,
    },
    /// A pack's header does not open, or disagrees with the index.
    PackHeader { pack: PackId, detail: String },
    /// A pack's content does not hash to its name.
    PackHash { pack: PackId, actual: String },
    /// A blob does not decrypt, decompress or hash to its id.
    CorruptBlob {
        blob: BlobId,
        pack: PackId,
        detail: String,
    },
    /// A snapshot file does not open, or its item list does not load.
    UnreadableSnapshot {
        snapshot: SnapshotId,
        detail: String,
    },
    /// A snapshot references a blob the index does not have.
    MissingBlob {
        snapshot: SnapshotId,
        blob: BlobId,
        /// The item id, or `None` for an item-list chunk.
        item: Option<String>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::UnreadableIndex { file, detail } => {
                write!(f, "index file {file} is unreadable: {detail}")
            }
            Problem::MissingPack { pack, blobs } => {
                write!(f, "pack {pack} is missing ({blobs} indexed blobs lost)")
            }
            Problem::TruncatedPack { pack, size, needed } => write!(
                f,
                "pack {pack} is truncated: {size} bytes, the index needs at least {needed}"
            ),
            Problem::PackHeader { pack, detail } => write!(f, "pack {pack}: {detail}"),
            Problem::PackHash { pack, actual } => {
                write!(f, "pack {pack} is corrupt: its content hashes to {actual}")
            }
            Problem::CorruptBlob { blob, pack, detail } => {
                write!(f, "blob {blob} in pack {pack} is corrupt: {detail}")
            }
            Problem::UnreadableSnapshot { snapshot, detail } => {
                write!(f, "snapshot {snapshot} is unreadable: {detail}")
            }
            Problem::MissingBlob {
                snapshot,
                blob,
                item,
            } => match item {
                Some(i) => write!(
                    f,
                    "snapshot {snapshot}: item {i} references blob {blob}, which is not in the index"
                ),
                None => write!(
                    f,
                    "snapshot {snapshot}: item-list chunk {blob} is not in the index"
                ),
            },
        }
    }
}

/// The outcome of [`Repository::verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub read_data: bool,
    pub index_files_checked: usize,
    pub packs_checked: usize,
    /// Blobs decrypted and re-hashed (with `read_data`).
    pub blobs_checked: usize,
    pub snapshots_checked: usize,
    pub bytes_read: u64,
    /// Packs no index lists (from interrupted runs; `prune` removes them).
    pub unindexed_packs: Vec<PackId>,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// No problem found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

struct PackOutcome {
    problems: Vec<Problem>,
    blobs_checked: usize,
    bytes_read: u64,
}

impl Repository {
    /// Checks that every index entry points into an existing pack within
    /// bounds, that pack headers agree with the index, and that every blob a
    /// snapshot references is indexed; with `read_data`, also reads every
    /// pack and checks every blob against its id. Problems are collected,
    /// not returned as errors; `Err` means the check itself could not run.
    pub async fn verify(&self, read_data: bool) -> Result<VerifyReport> {
        self.flush().await?;
        let mut report = VerifyReport {
            read_data,
            ..Default::default()
        };
        // Index files, one by one, so a damaged one is named.
        let mut by_pack: HashMap<PackId, Vec<PackEntry>> = HashMap::new();
        let mut indexed: HashSet<BlobId> = HashSet::new();
        for f in self.inner.backend.list("index").await? {
            report.index_files_checked += 1;
            match self.read_index_file(&f.name).await {
                Ok(file) => {
                    for p in file.packs {
                        let v = by_pack.entry(p.id).or_default();
                        for e in p.blobs {
                            indexed.insert(e.id);
                            if !v.contains(&e) {
                                v.push(e);
                            }
                        }
                    }
                }
                Err(e @ (Error::UnsupportedVersion { .. } | Error::Corrupt { .. })) => {
                    report.problems.push(Problem::UnreadableIndex {
                        file: f.name.clone(),
                        detail: e.to_string(),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        let stored: HashMap<String, u64> = self
            .inner
            .backend
            .list("data")
            .await?
            .into_iter()
            .map(|f| (f.name, f.size))
            .collect();
        report.unindexed_packs = stored
            .keys()
            .filter(|n| !by_pack.contains_key(*n))
            .cloned()
            .collect();
        report.unindexed_packs.sort();

        let mut packs: Vec<(PackId, Vec<PackEntry>)> = by_pack.into_iter().collect();
        packs.sort_by(|a, b| a.0.cmp(&b.0));
        report.packs_checked = packs.len();
        let outcomes: Vec<Result<PackOutcome>> = futures::stream::iter(packs)
            .map(|(id, entries)| {
                let size = stored.get(&id).copied();
                async move { self.verify_pack(id, entries, size, read_data).await }
            })
            // Whole packs are in memory with read_data: fewer at a time.
            .buffered(if read_data { 2 } else { READ_CONCURRENCY })
            .collect()
            .await;
        for o in outcomes {
            let o = o?;
            report.problems.extend(o.problems);
            report.blobs_checked += o.blobs_checked;
            report.bytes_read += o.bytes_read;
        }

        // Snapshots: every referenced blob must be indexed.
        let mut names = self.snapshot_names().await?;
        names.sort();
        for name in names {
            report.snapshots_checked += 1;
            let sid = SnapshotId(name.clone());
            let file = match self.read_snapshot_file(&name).await {
                Ok(f) => f,
                Err(e @ (Error::Corrupt { .. } | Error::UnsupportedVersion { .. })) => {
                    report.problems.push(Problem::UnreadableSnapshot {
                        snapshot: sid,
                        detail: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            let missing: Vec<BlobId> = file
                .item_chunks
                .iter()
                .filter(|c| !indexed.contains(c))
                .copied()
                .collect();
            if !missing.is_empty() {
                for blob in missing {
                    report.problems.push(Problem::MissingBlob {
                        snapshot: sid.clone(),
                        blob,
                        item: None,
                    });
                }
                continue;
            }
            match self.load_chunks(file.version, &file.item_chunks).await {
                Ok(chunks) => {
                    if let Some(detail) = index_problem(&file, &chunks) {
                        report.problems.push(Problem::UnreadableSnapshot {
                            snapshot: sid.clone(),
                            detail,
                        });
                    }
                    for i in chunks.into_iter().flatten() {
                        if !indexed.contains(&i.blob) {
                            report.problems.push(Problem::MissingBlob {
                                snapshot: sid.clone(),
                                blob: i.blob,
                                item: Some(i.id),
                            });
                        }
                    }
                }
                Err(e @ (Error::Corrupt { .. } | Error::NotFound { .. })) => {
                    report.problems.push(Problem::UnreadableSnapshot {
                        snapshot: sid,
                        detail: format!("its item list does not load: {e}"),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    async fn verify_pack(
        &self,
        id: PackId,
        entries: Vec<PackEntry>,
        size: Option<u64>,
        read_data: bool,
    ) -> Result<PackOutcome> {
        let mut out = PackOutcome {
            problems: Vec::new(),
            blobs_checked: 0,
            bytes_read: 0,
        };
        let Some(size) = size else {
            out.problems.push(Problem::MissingPack {
                pack: id,
                blobs: entries.len(),
            });
            return Ok(out);
        };
        let needed = entries
            .iter()
            .map(|e| e.offset + e.length)
            .max()
            .unwrap_or(0)
            + 4;
        if size < needed {
            out.problems.push(Problem::TruncatedPack {
                pack: id.clone(),
                size,
                needed,
            });
        }
        let key = pack_key(&id);
        // The header: from the whole pack with read_data, else by range.
        let whole = if read_data {
            let data = match self.inner.backend.get(&key).await {
                Ok(d) => d,
                Err(e) if e.is_not_found() => {
                    out.problems.push(Problem::MissingPack {
                        pack: id,
                        blobs: entries.len(),
                    });
                    return Ok(out);
                }
                Err(e) => return Err(e),
            };
            out.bytes_read += data.len() as u64;
            let actual = blake3::hash(&data).to_hex().to_string();
            if actual != id {
                out.problems.push(Problem::PackHash {
                    pack: id.clone(),
                    actual,
                });
            }
            Some(data)
        } else {
            None
        };
        let header = match &whole {
            Some(data) => pack::read_header(&self.inner.cipher, data),
            None => self.read_pack_header(&key, size).await?,
        };
        match header {
            Ok(h) => {
                for e in &entries {
                    if !h.contains(e) {
                        out.problems.push(Problem::PackHeader {
                            pack: id.clone(),
                            detail: format!(
                                "the index places blob {} at {}+{} but the pack header does not list it there",
                                e.id, e.offset, e.length
                            ),
                        });
                    }
                }
            }
            Err(detail) => out.problems.push(Problem::PackHeader {
                pack: id.clone(),
                detail,
            }),
        }
        if let Some(data) = whole {
            let inner = self.inner.clone();
            let pid = id.clone();
            let (problems, n) = tokio::task::spawn_blocking(move || {
                let mut problems = Vec::new();
                let mut n = 0;
                for e in &entries {
                    n += 1;
                    let Some(sealed) = data.get(e.offset as usize..(e.offset + e.length) as usize)
                    else {
                        problems.push(Problem::CorruptBlob {
                            blob: e.id,
                            pack: pid.clone(),
                            detail: "it lies beyond the end of the pack".into(),
                        });
                        continue;
                    };
                    let detail = match crypto::open_bounded(
                        &inner.cipher,
                        &e.id.0,
                        sealed,
                        e.raw_length as usize,
                    ) {
                        Err(err) => Some(err.to_string()),
                        Ok(plain) if plain.len() as u64 != e.raw_length => Some(format!(
                            "it holds {} bytes, the index says {}",
                            plain.len(),
                            e.raw_length
                        )),
                        Ok(plain) => {
                            let actual = blake3::keyed_hash(&inner.key.id, &plain);
                            (actual.as_bytes() != &e.id.0)
                                .then(|| format!("its content hashes to {}", actual.to_hex()))
                        }
                    };
                    if let Some(detail) = detail {
                        problems.push(Problem::CorruptBlob {
                            blob: e.id,
                            pack: pid.clone(),
                            detail,
                        });
                    }
                }
                (problems, n)
            })
            .await
            .map_err(|e| Error::backend("checking blobs", e))?;
            out.problems.extend(problems);
            out.blobs_checked += n;
        }
        Ok(out)
    }

    /// The header of a stored pack, read by two range requests; `Err(detail)`
    /// when it is unreadable.
    async fn read_pack_header(
        &self,
        key: &str,
        size: u64,
    ) -> Result<std::result::Result<Vec<PackEntry>, String>> {
        if size < 4 {
            return Ok(Err(format!("it is {size} bytes, too short for a pack")));
        }
        let tail = self.inner.backend.get_range(key, size - 4..size).await?;
        let hlen = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
        let Some(start) = (size - 4).checked_sub(hlen) else {
            return Ok(Err(format!(
                "its trailer announces a {hlen}-byte header but the pack is only {size} bytes (truncated?)"
            )));
        };
        let sealed = self.inner.backend.get_range(key, start..size - 4).await?;
        Ok(
            crypto::open(&self.inner.cipher, crypto::aad::PACK_HEADER, &sealed)
                .map_err(|e| format!("its header does not open: {e}"))
                .and_then(|plain| pack::decode_header(&plain, start)),
        )
    }
}

/// How a snapshot's chunk index disagrees with its item list chunks (an
/// incremental backup trusts the index to find the chunks it rewrites).
fn index_problem(file: &SnapshotFile, chunks: &[Vec<ItemEntry>]) -> Option<String> {
    let index = &file.item_chunk_index;
    if index.is_empty() {
        return None;
    }
    if index.len() != chunks.len() {
        return Some(format!(
            "its chunk index lists {} chunks where its item list has {}",
            index.len(),
            chunks.len()
        ));
    }
    if !crate::chunks::in_order(index) {
        return Some("its chunk index is not in item order".into());
    }
    let mut items = chunks.iter().flatten();
    if let Some(first) = items.next() {
        let mut prev = first;
        for item in items {
            if crate::chunks::item_order(prev, item) == std::cmp::Ordering::Greater {
                return Some(format!(
                    "it has a chunk index but its items are not in item order (item {} in folder {} follows item {} in folder {})",
                    item.id, item.folder_id, prev.id, prev.folder_id
                ));
            }
            prev = item;
        }
    }
    index
        .iter()
        .zip(chunks)
        .zip(&file.item_chunks)
        .find_map(|((info, items), blob)| {
            crate::repo::chunk_mismatch(info, items)
                .map(|p| format!("item list chunk {blob} does not match its chunk index: {p}"))
        })
}
