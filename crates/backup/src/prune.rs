//! `prune`: forget snapshots by retention policy, then reclaim the space of
//! blobs no kept snapshot references.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

use crate::crypto::BlobId;
use crate::error::{Error, Result};
use crate::lock::LockKind;
use crate::pack::{PackBuilder, PackEntry, PackId, pack_key};
use crate::repo::{IndexFile, IndexPack, READ_CONCURRENCY, Repository};
use crate::retention::{self, RetentionPolicy};
use crate::snapshot::{SnapshotId, SnapshotSummary};

/// Blobs per index file written by prune.
const BLOBS_PER_INDEX: usize = 100_000;

/// What [`Repository::prune`] did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots_kept: Vec<SnapshotId>,
    pub snapshots_removed: Vec<SnapshotSummary>,
    /// Packs removed because none of their blobs is used.
    pub packs_deleted: usize,
    /// Packs rewritten with only their used blobs.
    pub packs_rewritten: usize,
    /// New packs written by the rewrite.
    pub packs_written: usize,
    /// Packs no index lists (left by interrupted runs), removed.
    pub unindexed_packs_deleted: usize,
    /// Blobs no longer stored.
    pub blobs_removed: usize,
    /// Bytes of pack files removed minus bytes of pack files written.
    pub bytes_freed: u64,
    /// Pack bytes still holding unused blobs (below the repack threshold).
    pub unused_bytes_kept: u64,
}

struct PackUse {
    size: u64,
    used_bytes: u64,
    unused_bytes: u64,
    entries: Vec<PackEntry>,
}

impl Repository {
    /// Forgets the snapshots `policy` does not keep, then deletes packs with
    /// no used blob and rewrites packs whose unused share reaches the policy's
    /// repack threshold. Takes an exclusive lock (fails at once with
    /// [`Error::Locked`] if another process holds a lock). With `dry_run`
    /// nothing is changed.
    pub async fn prune(&self, policy: &RetentionPolicy, dry_run: bool) -> Result<PruneReport> {
        if policy.is_empty() {
            return Err(Error::invalid(
                "retention policy",
                "it keeps nothing: give at least one of keep-last, keep-hourly, keep-daily, \
                 keep-weekly, keep-monthly, keep-yearly or keep-tag",
            ));
        }
        if !(0.0..=1.0).contains(&policy.repack_threshold) {
            return Err(Error::invalid(
                "repack threshold",
                format!("{} is not between 0 and 1", policy.repack_threshold),
            ));
        }
        let guard = self
            .lock(LockKind::Exclusive, "prune", Duration::ZERO)
            .await?;
        let result = self.prune_locked(policy, dry_run).await;
        guard.release().await?;
        result
    }

    async fn prune_locked(&self, policy: &RetentionPolicy, dry_run: bool) -> Result<PruneReport> {
        // No blob of this value may be added meanwhile: its pack could look
        // unindexed and be deleted.
        let _gate = self.inner.gate.write().await;
        self.flush_locked().await?;
        let mut report = PruneReport {
            dry_run,
            ..Default::default()
        };
        let summaries = self.list_snapshots().await?;
        let decisions = retention::apply(policy, &summaries);
        let removed: HashSet<SnapshotId> = decisions
            .iter()
            .filter(|d| d.reasons.is_empty())
            .map(|d| d.id.clone())
            .collect();
        for s in &summaries {
            if removed.contains(&s.id) {
                report.snapshots_removed.push(s.clone());
            } else {
                report.snapshots_kept.push(s.id.clone());
            }
        }

        // Every blob a kept snapshot needs.
        let used: HashSet<BlobId> = {
            let sets: Vec<HashSet<BlobId>> = futures::stream::iter(report.snapshots_kept.clone())
                .map(|id| async move {
                    let file = self.read_snapshot_file(&id.0).await?;
                    let items = self.load_items(&file).await?;
                    let mut set: HashSet<BlobId> = file.item_chunks.iter().copied().collect();
                    set.extend(items.iter().map(|i| i.blob));
                    Ok::<_, Error>(set)
                })
                .buffer_unordered(READ_CONCURRENCY)
                .try_collect()
                .await?;
            sets.into_iter().flatten().collect()
        };

        // The index as stored, pack by pack.
        self.load_index().await?;
        let (old_index_files, chosen) = {
            let st = self.inner.state.lock().expect("state lock");
            let files: Vec<String> = st.index_files.iter().cloned().collect();
            let chosen: HashMap<BlobId, PackId> = st
                .index
                .iter()
                .map(|(id, loc)| (*id, st.packs[loc.pack as usize].clone()))
                .collect();
            (files, chosen)
        };
        for f in self.inner.backend.list("index").await? {
            if !old_index_files.contains(&f.name) {
                return Err(Error::corrupt(
                    format!("index file index/{}", f.name),
                    "it does not open, so the packs it lists cannot be told from unused ones; \
                     nothing was pruned (run `graphbox verify` to see the damage)",
                ));
            }
        }
        let mut packs: HashMap<PackId, PackUse> = HashMap::new();
        for name in &old_index_files {
            let file = self.read_index_file(name).await?;
            for p in file.packs {
                let u = packs.entry(p.id.clone()).or_insert(PackUse {
                    size: 0,
                    used_bytes: 0,
                    unused_bytes: 0,
                    entries: Vec::new(),
                });
                for e in p.blobs {
                    if u.entries.iter().any(|x| x.id == e.id) {
                        continue;
                    }
                    let live = used.contains(&e.id) && chosen.get(&e.id) == Some(&p.id);
                    if live {
                        u.used_bytes += e.length;
                    } else {
                        u.unused_bytes += e.length;
                    }
                    u.entries.push(e);
                }
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
        for (id, u) in packs.iter_mut() {
            match stored.get(id) {
                Some(&size) => u.size = size,
                None => {
                    return Err(Error::corrupt(
                        format!("pack {id}"),
                        "the index lists it but it is missing; run `graphbox verify` and repair \
                         before pruning",
                    ));
                }
            }
        }
        let unindexed: Vec<(&String, u64)> = stored
            .iter()
            .filter(|(n, _)| !packs.contains_key(*n))
            .map(|(n, s)| (n, *s))
            .collect();

        let mut delete: Vec<PackId> = Vec::new();
        let mut rewrite: Vec<PackId> = Vec::new();
        let mut keep: Vec<PackId> = Vec::new();
        for (id, u) in &packs {
            let total = u.used_bytes + u.unused_bytes;
            if u.used_bytes == 0 {
                delete.push(id.clone());
            } else if u.unused_bytes > 0
                && u.unused_bytes as f64 >= policy.repack_threshold * total as f64
            {
                rewrite.push(id.clone());
            } else {
                report.unused_bytes_kept += u.unused_bytes;
                keep.push(id.clone());
            }
        }
        report.packs_deleted = delete.len();
        report.packs_rewritten = rewrite.len();
        report.unindexed_packs_deleted = unindexed.len();
        report.blobs_removed = delete
            .iter()
            .chain(&rewrite)
            .flat_map(|p| &packs[p].entries)
            .filter(|e| !used.contains(&e.id))
            .map(|e| e.id)
            .collect::<HashSet<_>>()
            .len();
        let freed_before: u64 = delete
            .iter()
            .chain(&rewrite)
            .map(|p| packs[p].size)
            .sum::<u64>()
            + unindexed.iter().map(|(_, s)| s).sum::<u64>();
        if dry_run {
            let estimate_written: u64 = rewrite.iter().map(|p| packs[p].used_bytes).sum();
            report.bytes_freed = freed_before.saturating_sub(estimate_written);
            return Ok(report);
        }

        // 1. Forget: snapshots go first, so an interruption only leaves
        //    unreferenced data behind.
        for id in &removed {
            self.forget_snapshot(id).await?;
        }

        // 2. Copy the used blobs of the packs to rewrite (sealed bytes are
        //    copied as they are: a blob's encryption does not depend on its
        //    pack).
        let mut new_packs: Vec<IndexPack> = Vec::new();
        let mut written_bytes = 0u64;
        let mut builder = PackBuilder::with_capacity(self.inner.config.pack_size as usize);
        for pid in &rewrite {
            let data = self.inner.backend.get(&pack_key(pid)).await?;
            for e in &packs[pid].entries {
                if !(used.contains(&e.id) && chosen.get(&e.id) == Some(pid)) {
                    continue;
                }
                let sealed = data
                    .get(e.offset as usize..(e.offset + e.length) as usize)
                    .ok_or_else(|| {
                        Error::corrupt(
                            format!("pack {pid}"),
                            format!("blob {} lies beyond its end", e.id),
                        )
                    })?;
                builder.add(e.id, e.kind, sealed, e.raw_length);
                if builder.len() as u64 >= self.inner.config.pack_size {
                    let full = std::mem::replace(
                        &mut builder,
                        PackBuilder::with_capacity(self.inner.config.pack_size as usize),
                    );
                    written_bytes += self.write_repacked(full, &mut new_packs).await?;
                }
            }
        }
        if !builder.is_empty() {
            written_bytes += self.write_repacked(builder, &mut new_packs).await?;
        }
        report.packs_written = new_packs.len();

        // 3. A new index of the kept and new packs, then the old index files go.
        let mut all: Vec<IndexPack> = keep
            .iter()
            .map(|p| IndexPack {
                id: p.clone(),
                blobs: packs[p].entries.clone(),
            })
            .collect();
        all.extend(new_packs);
        let mut batch: Vec<IndexPack> = Vec::new();
        let mut count = 0;
        let mut new_files = HashSet::new();
        for p in all {
            count += p.blobs.len();
            batch.push(p);
            if count >= BLOBS_PER_INDEX {
                let file = IndexFile {
                    version: self.inner.config.version,
                    packs: std::mem::take(&mut batch),
                };
                new_files.insert(self.inner.write_index_file(&file).await?);
                count = 0;
            }
        }
        if !batch.is_empty() {
            let file = IndexFile {
                version: self.inner.config.version,
                packs: batch,
            };
            new_files.insert(self.inner.write_index_file(&file).await?);
        }
        for name in &old_index_files {
            if !new_files.contains(name) {
                self.inner.backend.delete(&format!("index/{name}")).await?;
            }
        }

        // 4. The packs nothing points to any more.
        for pid in delete
            .iter()
            .chain(&rewrite)
            .chain(unindexed.iter().map(|(n, _)| *n))
        {
            self.inner.backend.delete(&pack_key(pid)).await?;
        }
        self.load_index().await?;
        report.bytes_freed = freed_before.saturating_sub(written_bytes);
        Ok(report)
    }

    async fn write_repacked(&self, builder: PackBuilder, out: &mut Vec<IndexPack>) -> Result<u64> {
        let (id, bytes, entries) = builder.finish(&self.inner.cipher);
        let len = bytes.len() as u64;
        self.inner.backend.put(&pack_key(&id), bytes).await?;
        out.push(IndexPack { id, blobs: entries });
        Ok(len)
    }
}
