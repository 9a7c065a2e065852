//! `graphbox backup`: one snapshot per mailbox per run, incremental through
//! folder and item delta, resumable after a crash through checkpoints.
//!
//! Per mailbox:
//! 1. folder delta from the parent snapshot's link (a full round without one
//!    or when the server says the sync state is gone) gives the folder tree;
//! 2. item delta per folder from the parent's links gives what changed; an
//!    item whose changeKey is the parent's (or the interrupted run's
//!    checkpoint's) keeps its content reference and is not exported again;
//! 3. the rest is exported in batches (exportItems, at most the profile's
//!    concurrency of requests per mailbox), each item's FTS stored once in
//!    the repository; every few hundred items the repository is flushed and
//!    a checkpoint saved, so a killed run resumes where it stopped;
//! 4. the snapshot (folder tree, items, delta links, per-item errors) is
//!    saved last.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use backup::{
    FolderEntry, ItemEntry, ItemError, ListChunk, ListPart, LockKind, Repository, Snapshot,
    SnapshotHead,
};
use bytes::Bytes;
use clap::Args;
use client::{ExportOutcome, GraphClient, ItemSummary};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::carry::Carry;
use super::conn::{ConnArgs, mailbox_keys};
use super::deltas::{self, DeltaBase, Deltas, FolderItems};
use super::prefetch::{Hint, HintCache, Prefetch};
use super::reuse;
use super::{RepoArgs, human_bytes, progress_bar, state_key};

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Mailbox to back up: a user principal name or an MBX: id (repeatable).
    #[arg(long = "mailbox", short = 'm', value_name = "UPN|MBX")]
    pub mailboxes: Vec<String>,
    /// A file listing mailboxes, one per line (# comments allowed).
    #[arg(long, value_name = "FILE")]
    pub mailboxes_file: Option<PathBuf>,
    /// Also back up each user's archive mailbox, when it has one.
    #[arg(long)]
    pub archive: bool,
    /// Tag the snapshots (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Ignore the previous snapshot: export everything again.
    #[arg(long)]
    pub full: bool,
    /// zstd level for the content this run stores (0 to 22). Level 1 is the
    /// default: exported items are mostly attachments that compress little,
    /// and level 3 cost twice the CPU for a few percent of size.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(0..=22))]
    pub compression: i32,
    /// Items between checkpoints (a killed run resumes from the last one).
    #[arg(long, default_value_t = 500)]
    pub checkpoint_items: usize,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
    /// Directory for the hint each run leaves for the next: the first
    /// mailbox's id and delta links, so that the next run asks for changes
    /// while the repository key is derived (ids and opaque links only, mode
    /// 0600). Default: $XDG_CACHE_HOME/graphbox, else ~/.cache/graphbox.
    #[arg(long, env = "GRAPHBOX_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Keep no hint: ask for changes once the repository is open.
    #[arg(long)]
    pub no_cache: bool,
}

/// What an interrupted run had already saved (repository state).
#[derive(Serialize, Deserialize, Default)]
struct Checkpoint {
    mailbox_id: String,
    items: Vec<ItemEntry>,
}

#[derive(Serialize, Default, Debug)]
pub struct MailboxSummary {
    pub mailbox: String,
    pub label: String,
    pub snapshot: Option<String>,
    pub parent: Option<String>,
    pub folders: usize,
    pub items: usize,
    pub exported: usize,
    pub exported_bytes: u64,
    pub reused: usize,
    pub resumed: usize,
    pub new_blobs: usize,
    pub removed: usize,
    pub full_delta: bool,
    /// The delta answers came from requests sent ahead, from the hint.
    pub prefetched_deltas: bool,
    /// Items whose export was asked for ahead, from the hint.
    pub prefetched_items: usize,
    /// Chunks of the parent's item list (0 without a chunk index), and how
    /// many of them were read (the others were carried unread).
    pub parent_chunks: usize,
    pub parent_chunks_read: usize,
    pub errors: Vec<ItemError>,
    pub seconds: f64,
    /// The run failed as a whole (no snapshot was saved).
    pub failed: Option<String>,
    /// What the next run's delta requests are made from.
    #[serde(skip)]
    pub next_base: Option<DeltaBase>,
}

pub async fn run(a: BackupArgs) -> Result<()> {
    let keys = mailbox_keys(&a.mailboxes, a.mailboxes_file.as_ref())?;
    // The repository key derivation (Argon2id, 64 MiB × 3 passes, its 4
    // lanes on parallel threads: ~0.06 s of CPU plus faulting in the 64 MiB;
    // crates/argon2id) runs while the HTTP client is built (it reads and
    // parses the system's CA certificates) and the mailboxes are resolved (a
    // token and one request each): on a small incremental run these fixed
    // costs are most of the time.
    //
    // The first mailbox's delta requests (and the export of what they report
    // changed) start from the hint the previous run left, as soon as the
    // client is built: see prefetch.rs.
    let conn = a.conn.clone();
    let (repo, connected) = tokio::join!(a.repo.open(), async {
        let client = tokio::task::spawn_blocking(move || conn.client())
            .await
            .context("building the HTTP client")??;
        let hints = (!a.no_cache)
            .then(|| {
                let p = client.profile();
                let graph = format!("{}/{}", p.graph_base, p.api_version.segment());
                HintCache::new(a.cache_dir.as_deref(), &a.repo.repo, &graph)
            })
            .flatten();
        let prefetch = hints
            .as_ref()
            .filter(|_| !a.full)
            .and_then(HintCache::load)
            .filter(|h| keys.first() == Some(&h.key))
            .map(|h| Prefetch::start(client.clone(), h));
        let mut resolved = Vec::with_capacity(keys.len());
        for key in &keys {
            resolved.push(client.mailbox_for_user(key).await);
        }
        anyhow::Ok((client, resolved, hints, prefetch))
    });
    let (client, resolved, hints, mut prefetch) = connected?;
    let repo = repo?;
    repo.set_compression_level(a.compression)?;
    let lock = repo
        .lock(LockKind::Exclusive, "backup", a.repo.lock_wait())
        .await
        .map_err(|e| match e {
            backup::Error::Locked { .. } => anyhow::anyhow!(
                "{e}\nAnother backup or prune is using the repository; wait for it (or use --lock-wait SECONDS). A lock left by a crashed process on this host is taken over automatically once that process is gone."
            ),
            other => anyhow::Error::new(other).context("locking the repository"),
        })?;
    let started = Instant::now();
    // Every mailbox's previous snapshot head, from one reading of the
    // snapshot files. A mailbox named twice (by user and by id) reads its
    // own new snapshot the second time.
    let mut heads = if a.full {
        HashMap::new()
    } else {
        repo.latest_snapshot_heads()
            .await
            .context("reading the previous snapshots")?
    };
    let mut done: HashSet<String> = HashSet::new();
    let mut summaries = Vec::new();
    let mut next_hint = None;
    for (n, (key, mailbox)) in keys.iter().zip(resolved).enumerate() {
        let mut targets = Vec::new();
        match mailbox {
            Ok(m) => {
                if a.archive
                    && let Some(arch) = &m.archive
                {
                    targets.push((arch.clone(), format!("{} (archive)", m.label)));
                }
                targets.insert(0, (m.id.clone(), m.label.clone()));
            }
            Err(e) => {
                summaries.push(MailboxSummary {
                    mailbox: key.clone(),
                    label: key.clone(),
                    failed: Some(format!("cannot resolve the mailbox: {e}")),
                    ..Default::default()
                });
                continue;
            }
        }
        for (t, (id, label)) in targets.into_iter().enumerate() {
            let t0 = Instant::now();
            let head = if a.full {
                Ok(None)
            } else if done.insert(id.clone()) {
                Ok(heads.remove(&id))
            } else {
                repo.latest_snapshot_head(&id).await
            };
            let ahead = prefetch.take_if(|p| p.mailbox == id);
            let result = match head {
                Ok(head) => backup_mailbox(&repo, &client, &id, &label, head, ahead, &a).await,
                Err(e) => Err(anyhow::Error::new(e).context("reading the previous snapshot")),
            };
            let s = match result {
                Ok(mut s) => {
                    if (n, t) == (0, 0) {
                        next_hint = s.next_base.take().map(|base| Hint {
                            key: key.clone(),
                            mailbox: id.clone(),
                            base,
                        });
                    }
                    s
                }
                Err(e) => MailboxSummary {
                    mailbox: id.clone(),
                    label: label.clone(),
                    failed: Some(format!("{e:#}")),
                    seconds: t0.elapsed().as_secs_f64(),
                    ..Default::default()
                },
            };
            summaries.push(s);
        }
        // A hint for another mailbox is of no use.
        prefetch = None;
    }
    drop(lock);
    if let (Some(cache), Some(hint)) = (&hints, &next_hint)
        && let Err(e) = cache.store(hint)
    {
        eprintln!(
            "warning: could not write the hint file {} ({e}); the next run will not ask for changes ahead (see --cache-dir)",
            cache.path().display()
        );
    }
    let stats = client.stats();
    let failed: Vec<&MailboxSummary> = summaries
        .iter()
        .filter(|s| s.failed.is_some() || !s.errors.is_empty())
        .collect();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "mailboxes": summaries,
                "seconds": started.elapsed().as_secs_f64(),
                "requests": stats.requests,
                "retries": stats.retries,
                "throttled": stats.throttled,
                "networkErrors": stats.network_errors,
                "ok": failed.is_empty(),
            }))?
        );
    } else {
        for s in &summaries {
            match &s.failed {
                Some(why) => println!("{}: FAILED: {why}", s.label),
                None => println!(
                    "{}: snapshot {} ({} folders, {} items; exported {} = {}, unchanged {}, resumed {}, removed {}, {} errors) in {:.1} s",
                    s.label,
                    s.snapshot.as_deref().unwrap_or("-"),
                    s.folders,
                    s.items,
                    s.exported,
                    human_bytes(s.exported_bytes),
                    s.reused,
                    s.resumed,
                    s.removed,
                    s.errors.len(),
                    s.seconds
                ),
            }
            for e in &s.errors {
                println!(
                    "  item {} (folder {}): {}: {}",
                    e.item_id.as_deref().unwrap_or("-"),
                    e.folder_id.as_deref().unwrap_or("-"),
                    e.code,
                    e.message
                );
            }
        }
        println!(
            "{} requests, {} retries, {} throttled answers",
            stats.requests, stats.retries, stats.throttled
        );
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} mailboxes had failures (listed above); the snapshots that were saved record their item errors",
            failed.len(),
            summaries.len()
        );
    }
    Ok(())
}

async fn backup_mailbox(
    repo: &Repository,
    client: &GraphClient,
    mbx: &str,
    label: &str,
    head: Option<SnapshotHead>,
    prefetch: Option<Prefetch>,
    a: &BackupArgs,
) -> Result<MailboxSummary> {
    let t0 = Instant::now();
    let mut summary = MailboxSummary {
        mailbox: mbx.to_string(),
        label: label.to_string(),
        ..Default::default()
    };
    // The parent's head (folders, delta links, where its item list's chunks
    // start) is one small file. Its item list, the checkpoint of an
    // interrupted run and the delta requests do not depend on each other, so
    // they run together; the list is read chunk by chunk, and once the
    // deltas say which chunks hold changed items, only those are applied and
    // written again: the others go into the new snapshot as they are.
    let parent_head = head.as_ref().map(|h| h.snapshot());
    summary.parent = parent_head.and_then(|p| p.id.as_ref().map(|i| i.0.clone()));
    let index = head.as_ref().and_then(|h| h.chunk_index());
    summary.parent_chunks = index.as_ref().map_or(0, |i| i.len());
    let checkpoint_name = format!("checkpoint-{}", state_key(&[mbx]));
    // Requests sent ahead from the hint count only if they are the ones
    // this parent's links make.
    let base = DeltaBase::of(parent_head);
    let mut prefetch = prefetch.filter(|p| p.base == base);
    // With requests sent ahead, their answers say which chunks the changes
    // touch, and only those are read (on a large mailbox most of the list is
    // carried as it is). Otherwise the whole list is read while the delta
    // requests are made.
    let ahead = match prefetch.as_mut() {
        Some(p) => p.deltas().await,
        None => None,
    };
    if ahead.is_none() {
        prefetch = None; // none, or its requests failed: nothing was exported ahead
    }
    let (parent_list, mut reuse, checkpoint, deltas, prefetched_deltas) =
        match (ahead, &head, index) {
            (Some(raw), Some(h), Some(index)) => {
                let d = deltas::merge(parent_head, raw)?;
                let dirty = touched_chunks(&index, parent_head, &d.folders, &d.items);
                let positions: Vec<usize> = (0..dirty.len()).filter(|&k| dirty[k]).collect();
                summary.parent_chunks_read = positions.len();
                let (list, checkpoint) = tokio::join!(
                    read_chunks(repo, h, &index, &positions),
                    repo.get_state(&checkpoint_name),
                );
                (list?, Some((index, dirty)), checkpoint?, d, true)
            }
            (ahead, _, index) => {
                let (parent_read, checkpoint, deltas) = tokio::join!(
                    async {
                        match (&head, &index) {
                            (Some(h), Some(index)) => {
                                let every: Vec<usize> = (0..index.len()).collect();
                                read_chunks(repo, h, index, &every).await
                            }
                            (Some(h), None) => repo
                                .load_snapshot_items(h)
                                .await
                                .context("reading the previous snapshot"),
                            (None, _) => Ok(Vec::new()),
                        }
                    },
                    repo.get_state(&checkpoint_name),
                    async {
                        match ahead {
                            Some(raw) => Ok((raw, true)),
                            None => deltas::fetch(client, mbx, &base).await.map(|r| (r, false)),
                        }
                    },
                );
                let parent_read = parent_read?;
                summary.parent_chunks_read = index.as_ref().map_or(0, |i| i.len());
                let (raw, prefetched) = deltas?;
                let d = deltas::merge(parent_head, raw)?;
                // The parent's items this run works on: those of the chunks
                // the deltas touch (all of them without a chunk index).
                let (list, reuse) = match index {
                    Some(index) => {
                        let dirty = touched_chunks(&index, parent_head, &d.folders, &d.items);
                        (
                            only_touched(&index, &dirty, parent_read),
                            Some((index, dirty)),
                        )
                    }
                    None => (parent_read, None),
                };
                (list, reuse, checkpoint?, d, prefetched)
            }
        };
    let checkpoint: HashMap<String, ItemEntry> = match checkpoint {
        Some(raw) => serde_json::from_slice::<Checkpoint>(&raw)
            .map(|c| c.items.into_iter().map(|i| (i.id.clone(), i)).collect())
            .unwrap_or_default(),
        None => HashMap::new(),
    };
    summary.prefetched_deltas = prefetched_deltas;
    let Deltas {
        folders,
        full_folders,
        folder_delta_link,
        items: item_deltas,
    } = deltas;
    summary.full_delta = full_folders;

    // 2. What changed in each folder (the item deltas fetched above).
    let mut snap = Snapshot::new(mbx, label);
    snap.tags = a.tags.clone();
    snap.parent = parent_head.and_then(|p| p.id.clone());
    snap.folder_delta_link = Some(folder_delta_link);
    let mut carry = Carry::new(&parent_list);
    let mut to_export: Vec<ItemSummary> = Vec::new();
    let mut resumed = Vec::new();
    for (folder_id, outcome) in item_deltas {
        let (d, full) = match outcome {
            Ok(found) => found,
            Err(e) if e.is_not_found() => {
                // The folder went away between folder delta and item delta:
                // the next run's folder delta records it.
                snap.errors.push(ItemError {
                    item_id: None,
                    folder_id: Some(folder_id.clone()),
                    code: e.code().unwrap_or("ErrorFolderNotFound").to_string(),
                    message: format!("{e}"),
                });
                continue;
            }
            Err(e) => return Err(e).context(format!("item delta of folder {folder_id}")),
        };
        let folder = &folders[&folder_id];
        snap.item_delta_links
            .insert(folder.id.clone(), d.delta_link.clone());
        // The parent's items of this folder (incremental), what changed
        // applied; the rest was saved by an interrupted run or is exported.
        let fresh = carry.folder(&folder.id, full, &d.removed, d.changed, |p| {
            repo.has_blob(&p.blob)
        });
        for s in fresh {
            match checkpoint
                .get(&s.id)
                .filter(|c| c.change_key == s.change_key && repo.has_blob(&c.blob))
            {
                Some(c) => {
                    let mut e = c.clone();
                    e.folder_id = folder.id.clone();
                    resumed.push(e);
                }
                None => to_export.push(s),
            }
        }
    }
    let carried = carry.into_plan();
    let untouched: usize = reuse.as_ref().map_or(0, |(index, dirty)| {
        index
            .chunks()
            .iter()
            .zip(dirty)
            .filter(|(_, d)| !**d)
            .map(|(c, _)| c.info.count as usize)
            .sum()
    });
    summary.reused = carried.len() + untouched;
    summary.resumed = resumed.len();

    // 3. Export what is new or changed.
    let total_bytes: u64 = to_export.iter().map(|s| s.size.unwrap_or(0)).sum();
    let pb = progress_bar(to_export.len() as u64, label, a.json);
    let by_id: HashMap<String, ItemSummary> = to_export
        .iter()
        .map(|s| (s.id.clone(), s.clone()))
        .collect();
    // Of the items exported ahead, those to store; the rest is asked for now.
    let ahead: Vec<ExportOutcome> = match prefetch {
        Some(p) => p.exported().await,
        None => Vec::new(),
    }
    .into_iter()
    .filter(|o| by_id.contains_key(o.id()))
    .collect();
    summary.prefetched_items = ahead.len();
    let asked: HashSet<&str> = ahead.iter().map(|o| o.id()).collect();
    let request: Vec<(String, u64)> = to_export
        .iter()
        .filter(|s| !asked.contains(s.id.as_str()))
        .map(|s| (s.id.clone(), s.size.unwrap_or(0)))
        .collect();
    // The resumed items go into the snapshot with the exported ones, and
    // into every further checkpoint (a second interruption keeps them).
    let mut saved: Vec<ItemEntry> = resumed;
    let mut since_checkpoint = 0usize;
    let mut last_checkpoint = Instant::now();
    let by_id = Arc::new(by_id);
    // The exportItems requests run in a task of their own that hands the
    // items over through a bounded channel (two rounds of requests): answers
    // keep arriving and being decoded while earlier items are compressed,
    // encrypted and written, not only when the storing side asks for more.
    let buffered = 2 * client.profile().max_concurrency_per_mailbox * client::MAX_IDS_PER_EXPORT;
    let (tx, rx) = tokio::sync::mpsc::channel(buffered.max(1));
    let mut exports = futures::stream::iter(ahead.into_iter().map(Ok))
        .chain(client.export_stream(mbx, request))
        .boxed();
    tokio::spawn(async move {
        while let Some(outcome) = exports.next().await {
            if tx.send(outcome).await.is_err() {
                break; // the run stopped
            }
        }
    });
    let mut stream = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|outcome| (outcome, rx))
    }))
    .map(|outcome| {
        let repo = repo.clone();
        let by_id = by_id.clone();
        tokio::spawn(async move { store_item(&repo, &by_id, outcome?).await })
    })
    .buffer_unordered(4);
    while let Some(joined) = stream.next().await {
        let stored = joined.context("a storing task failed")??;
        match stored {
            Stored::Saved { entry, bytes, new } => {
                summary.exported += 1;
                summary.exported_bytes += bytes;
                summary.new_blobs += usize::from(new);
                pb.inc(1);
                pb.set_message(format!(
                    "{} of ~{}",
                    human_bytes(summary.exported_bytes),
                    human_bytes(total_bytes)
                ));
                saved.push(entry);
                since_checkpoint += 1;
            }
            Stored::Failed(err) => {
                pb.inc(1);
                snap.errors.push(err);
            }
        }
        if since_checkpoint >= a.checkpoint_items.max(1)
            || (since_checkpoint > 0 && last_checkpoint.elapsed() > Duration::from_secs(30))
        {
            save_checkpoint(repo, &checkpoint_name, mbx, &saved).await?;
            since_checkpoint = 0;
            last_checkpoint = Instant::now();
        }
    }
    pb.finish_and_clear();

    // 4. The snapshot.
    let (mut items, removed) = carried.finish(parent_list, saved);
    summary.removed = removed;
    let parts = match &mut reuse {
        Some((index, dirty)) => {
            // The deltas name every key that changed, so this is a check:
            // items landing in an untouched chunk get its items beside them.
            loop {
                let late = reuse::misplaced(index, dirty, &items);
                if late.is_empty() {
                    break;
                }
                for &k in &late {
                    dirty[k] = true;
                }
                summary.parent_chunks_read += late.len();
                let head = head.as_ref().expect("a chunk index comes with a head");
                items.extend(read_chunks(repo, head, index, &late).await?);
                items.sort_by(backup::chunks::item_order);
            }
            reuse::assemble(index, dirty, items)
        }
        None => vec![ListPart::Items(items)],
    };
    snap.folders = folders.into_values().collect();
    snap.complete = true;
    summary.next_base = Some(DeltaBase::of(Some(&snap)));
    summary.folders = snap.folders.len();
    summary.items = reuse::count(&parts);
    summary.errors = snap.errors.clone();
    let id = repo
        .save_snapshot_parts(snap, parts)
        .await
        .context("saving the snapshot")?;
    repo.delete_state(&checkpoint_name).await?;
    summary.snapshot = Some(id.0.clone());
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok(summary)
}

/// The parent's chunks this run's deltas touch: those covering an item a
/// folder's incremental delta reports changed or removed, and those that
/// can hold items of a folder without such a delta (it started over, went
/// away, or is new).
fn touched_chunks(
    index: &backup::ChunkIndex,
    parent: Option<&Snapshot>,
    folders: &BTreeMap<String, FolderEntry>,
    deltas: &[(String, client::Result<FolderItems>)],
) -> Vec<bool> {
    let mut keys = Vec::new();
    let mut incremental = HashSet::new();
    for (folder, outcome) in deltas {
        if let Ok((d, false)) = outcome {
            incremental.insert(folder.as_str());
            keys.extend(d.removed.iter().map(|id| (folder.as_str(), id.as_str())));
            keys.extend(d.changed.iter().map(|s| (folder.as_str(), s.id.as_str())));
        }
    }
    let known = parent
        .into_iter()
        .flat_map(|p| p.folders.iter().map(|f| f.id.as_str()))
        .chain(folders.keys().map(String::as_str));
    let whole: HashSet<&str> = known.filter(|f| !incremental.contains(f)).collect();
    reuse::touched(index, keys, whole)
}

/// Of the whole parent list `read`, the items of the touched chunks.
fn only_touched(
    index: &backup::ChunkIndex,
    dirty: &[bool],
    read: Vec<ItemEntry>,
) -> Vec<ItemEntry> {
    if dirty.iter().all(|d| *d) {
        return read;
    }
    let mut read = read.into_iter();
    let mut list = Vec::new();
    for (chunk, touched) in index.chunks().iter().zip(dirty) {
        let items = read.by_ref().take(chunk.info.count as usize);
        if *touched {
            list.extend(items);
        } else {
            items.for_each(drop);
        }
    }
    list
}

/// The items of the parent's chunks at `positions`, in that order.
async fn read_chunks(
    repo: &Repository,
    head: &SnapshotHead,
    index: &backup::ChunkIndex,
    positions: &[usize],
) -> Result<Vec<ItemEntry>> {
    let chunks: Vec<&ListChunk> = positions.iter().map(|&k| &index.chunks()[k]).collect();
    let parts = repo
        .load_list_chunks(head, &chunks)
        .await
        .context("reading the previous snapshot")?;
    let mut list = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for part in parts {
        list.extend(part);
    }
    Ok(list)
}

enum Stored {
    Saved {
        entry: ItemEntry,
        bytes: u64,
        new: bool,
    },
    Failed(ItemError),
}

/// Stores one exported item: metadata from its FTS, content into a pack.
async fn store_item(
    repo: &Repository,
    by_id: &HashMap<String, ItemSummary>,
    outcome: ExportOutcome,
) -> Result<Stored> {
    let (id, change_key, data) = match outcome {
        ExportOutcome::Ok {
            id,
            change_key,
            data,
        } => (id, change_key, data),
        ExportOutcome::Failed { id, code, message } => {
            return Ok(Stored::Failed(ItemError {
                folder_id: by_id.get(&id).map(|s| s.folder_id.clone()),
                item_id: Some(id),
                code,
                message,
            }));
        }
    };
    let Some(summary) = by_id.get(&id) else {
        bail!("the server exported item {id}, which was not asked for");
    };
    let for_meta: Bytes = data.clone();
    let meta = tokio::task::spawn_blocking(move || backup::extract_bytes(&for_meta))
        .await
        .context("the metadata task failed")?;
    let meta = match meta {
        Ok(m) => m,
        Err(e) => {
            return Ok(Stored::Failed(ItemError {
                item_id: Some(id),
                folder_id: Some(summary.folder_id.clone()),
                code: "InvalidExportData".into(),
                message: format!("the exported data is not a valid item stream: {e}"),
            }));
        }
    };
    let bytes = data.len() as u64;
    let (blob, new) = repo
        .put_blob(data)
        .await
        .context("storing an item in the repository")?;
    Ok(Stored::Saved {
        entry: ItemEntry {
            id,
            folder_id: summary.folder_id.clone(),
            change_key: if change_key.is_empty() {
                summary.change_key.clone()
            } else {
                change_key
            },
            item_type: if summary.item_type.is_empty() {
                meta.item_type
            } else {
                summary.item_type.clone()
            },
            size: meta.size,
            created: meta.created,
            modified: meta.modified,
            subject: meta.subject,
            sender: meta.sender.map(|s| s.display()),
            categories: meta.categories,
            blob,
        },
        bytes,
        new,
    })
}

async fn save_checkpoint(
    repo: &Repository,
    name: &str,
    mbx: &str,
    saved: &[ItemEntry],
) -> Result<()> {
    repo.flush().await.context("flushing the repository")?;
    let c = Checkpoint {
        mailbox_id: mbx.to_string(),
        items: saved.to_vec(),
    };
    repo.put_state(name, &serde_json::to_vec(&c)?)
        .await
        .context("saving a checkpoint")?;
    Ok(())
}
