//! `graphbox restore`: items of a snapshot back into a mailbox (the same or
//! another one), recreating missing folders by name, or into .fts files.
//!
//! A restore journal in the repository (per source and target mailbox) maps
//! each restored source item to the target item it became, with the content
//! it had: running the same restore again imports nothing twice, and
//! restoring a later snapshot replaces (update mode) what changed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use backup::{FindQuery, FolderEntry, ItemEntry, LockKind, Repository, Snapshot};
use clap::Args;
use client::GraphClient;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::conn::ConnArgs;
use super::inspect::FilterArgs;
use super::{RepoArgs, human_bytes, progress_bar, state_key};

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Snapshot id (or unique prefix), or `latest` with --mailbox.
    pub snapshot: String,
    /// With `latest`: whose latest snapshot (mailbox id or label).
    #[arg(long)]
    pub mailbox: Option<String>,
    /// Target mailbox (UPN or MBX: id); default: the snapshot's own mailbox.
    #[arg(long, value_name = "UPN|MBX")]
    pub to: Option<String>,
    /// Only this folder subtree: a folder id or path such as /Inbox/Projects.
    #[arg(long)]
    pub folder: Option<String>,
    /// Only these items (source item ids; repeatable).
    #[arg(long = "item", value_name = "ID")]
    pub items: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the chosen items as .fts files under this directory instead of
    /// importing them (no server needed).
    #[arg(long, value_name = "DIR", conflicts_with = "to")]
    pub to_file: Option<PathBuf>,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Source item id -> what it became in the target mailbox.
#[derive(Serialize, Deserialize, Default)]
struct Journal {
    source_mailbox: String,
    target_mailbox: String,
    items: BTreeMap<String, JournalEntry>,
}

#[derive(Serialize, Deserialize, Clone)]
struct JournalEntry {
    target_id: String,
    /// The target folder it was imported into.
    #[serde(default)]
    folder: String,
    change_key: String,
    /// The content (blob id) that was imported.
    blob: String,
}

#[derive(Serialize, Default)]
struct Summary {
    snapshot: String,
    source_mailbox: String,
    target: String,
    dry_run: bool,
    selected: usize,
    imported: usize,
    updated: usize,
    skipped_already_restored: usize,
    folders_created: Vec<String>,
    bytes: u64,
    failed: Vec<serde_json::Value>,
    /// Stopped by Ctrl-C or SIGTERM: this many selected items were not
    /// started (the imports in flight finished and are in the journal).
    #[serde(skip_serializing_if = "Option::is_none")]
    interrupted_not_started: Option<usize>,
    seconds: f64,
}

pub async fn run(a: RestoreArgs) -> Result<()> {
    let t0 = Instant::now();
    let repo = a.repo.open().await?;
    let _lock = repo
        .lock(LockKind::Shared, "restore", a.repo.lock_wait())
        .await
        .context("locking the repository")?;
    let snap = load(&repo, &a.snapshot, a.mailbox.as_deref()).await?;
    let chosen = select(&snap, &a)?;
    if chosen.is_empty() {
        bail!("nothing to restore: no item of snapshot matches the selection");
    }
    if let Some(dir) = &a.to_file {
        return to_files(&repo, &snap, &chosen, dir, a.dry_run, a.json).await;
    }
    let client = a.conn.client()?;
    let target = match &a.to {
        Some(t) => {
            client
                .mailbox_for_user(t)
                .await
                .with_context(|| format!("resolving the target mailbox {t}"))?
                .id
        }
        None => snap.mailbox_id.clone(),
    };
    let mut summary = Summary {
        snapshot: snap.id.as_ref().map(|i| i.0.clone()).unwrap_or_default(),
        source_mailbox: snap.mailbox_id.clone(),
        target: target.clone(),
        dry_run: a.dry_run,
        selected: chosen.len(),
        ..Default::default()
    };
    let journal_name = format!("restore-{}", state_key(&[&snap.mailbox_id, &target]));
    let mut journal: Journal = match repo.get_state(&journal_name).await? {
        Some(raw) => serde_json::from_slice(&raw).context("reading the restore journal")?,
        None => Journal {
            source_mailbox: snap.mailbox_id.clone(),
            target_mailbox: target.clone(),
            items: BTreeMap::new(),
        },
    };

    // Folders: map each needed source folder to a target folder by name,
    // top-down, creating what is missing.
    let folders: HashMap<&str, &FolderEntry> =
        snap.folders.iter().map(|f| (f.id.as_str(), f)).collect();
    let mut needed: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for i in &chosen {
        let mut chain = Vec::new();
        let mut cur = Some(i.folder_id.as_str());
        while let Some(id) = cur {
            let Some(f) = folders.get(id) else { break };
            if !seen.insert(id) {
                break;
            }
            chain.push(id);
            cur = f.parent_id.as_deref();
        }
        chain.reverse();
        needed.extend(chain);
    }
    // Parents before children.
    let depth = |id: &str| {
        let mut d = 0;
        let mut cur = folders.get(id).and_then(|f| f.parent_id.as_deref());
        while let Some(p) = cur {
            let Some(f) = folders.get(p) else { break };
            d += 1;
            cur = f.parent_id.as_deref();
        }
        d
    };
    needed.sort_by_key(|id| depth(id));
    let mut mapped: HashMap<String, Option<String>> = HashMap::new();
    let mut children: HashMap<Option<String>, Vec<client::Folder>> = HashMap::new();
    for id in needed {
        let f = folders[id];
        let parent_target: Option<String> = match f.parent_id.as_deref() {
            Some(p) if folders.contains_key(p) => match mapped.get(p) {
                Some(Some(t)) => Some(t.clone()),
                // The parent exists only in a dry run.
                Some(None) => {
                    mapped.insert(id.to_string(), None);
                    summary.folders_created.push(snap.folder_path(id));
                    continue;
                }
                None => None,
            },
            _ => None,
        };
        if !children.contains_key(&parent_target) {
            let list = client
                .list_child_folders(&target, parent_target.as_deref())
                .await
                .context("listing folders of the target mailbox")?;
            children.insert(parent_target.clone(), list);
        }
        let existing = children[&parent_target]
            .iter()
            .find(|c| c.display_name.to_lowercase() == f.display_name.to_lowercase())
            .map(|c| c.id.clone());
        let target_id = match existing {
            Some(t) => Some(t),
            None if a.dry_run => {
                summary.folders_created.push(snap.folder_path(id));
                None
            }
            None => {
                let created = client
                    .create_folder(
                        &target,
                        parent_target.as_deref(),
                        &f.display_name,
                        &f.folder_type,
                    )
                    .await
                    .with_context(|| format!("creating the folder {}", snap.folder_path(id)))?;
                summary.folders_created.push(snap.folder_path(id));
                let tid = created.id.clone();
                children
                    .get_mut(&parent_target)
                    .expect("listed above")
                    .push(created);
                Some(tid)
            }
        };
        mapped.insert(id.to_string(), target_id);
    }

    // Items.
    let mut work = Vec::new();
    for i in &chosen {
        let blob = i.blob.to_string();
        match journal.items.get(&i.id) {
            Some(j) if j.blob == blob => summary.skipped_already_restored += 1,
            prev => work.push(((*i).clone(), prev.cloned())),
        }
    }
    if a.dry_run {
        summary.imported = work.iter().filter(|(_, p)| p.is_none()).count();
        summary.updated = work.len() - summary.imported;
        summary.bytes = work.iter().map(|(i, _)| i.size).sum();
        summary.seconds = t0.elapsed().as_secs_f64();
        return report(&summary, a.json);
    }
    let pb = progress_bar(work.len() as u64, "restore", a.json);
    let total = work.len();
    let stop = stop_on_interrupt();
    let mut stream = futures::stream::iter(work)
        // After an interruption no further import starts; the ones in flight
        // finish and go into the journal, so the next run imports nothing twice.
        .take_while({
            let stop = stop.clone();
            move |_| std::future::ready(!stop.load(Ordering::SeqCst))
        })
        .map(|(item, prev)| {
            let repo = repo.clone();
            let client = client.clone();
            let target = target.clone();
            let folder = mapped.get(&item.folder_id).cloned().flatten();
            async move {
                let r = restore_one(&repo, &client, &target, folder.as_deref(), &item, prev).await;
                (item, r)
            }
        })
        .buffer_unordered(client.profile().max_concurrency_per_mailbox.max(1));
    // The journal is saved every JOURNAL_ITEMS items and at least every
    // JOURNAL_INTERVAL while items complete: a run killed outright (SIGKILL,
    // a crash) can only have imported the items of that last stretch without
    // recording them, and those are what a rerun could import again.
    let (mut since_save, mut saved_at) = (0, Instant::now());
    while let Some((item, r)) = stream.next().await {
        pb.inc(1);
        match r {
            Ok((entry, updated, bytes)) => {
                if updated {
                    summary.updated += 1;
                } else {
                    summary.imported += 1;
                }
                summary.bytes += bytes;
                journal.items.insert(item.id.clone(), entry);
                since_save += 1;
                if since_save >= JOURNAL_ITEMS || saved_at.elapsed() >= JOURNAL_INTERVAL {
                    repo.put_state(&journal_name, &serde_json::to_vec(&journal)?)
                        .await?;
                    (since_save, saved_at) = (0, Instant::now());
                }
            }
            Err(e) => summary.failed.push(serde_json::json!({
                "itemId": item.id,
                "folder": snap.folder_path(&item.folder_id),
                "error": format!("{e:#}"),
            })),
        }
    }
    pb.finish_and_clear();
    repo.put_state(&journal_name, &serde_json::to_vec(&journal)?)
        .await
        .context("saving the restore journal")?;
    // Every item that started ended imported, updated or failed.
    let not_started = total - (summary.imported + summary.updated + summary.failed.len());
    if not_started > 0 {
        summary.interrupted_not_started = Some(not_started);
        summary.seconds = t0.elapsed().as_secs_f64();
        report(&summary, a.json)?;
        bail!(
            "interrupted: {} items restored, {not_started} not started{}; the restore journal is saved, so running the same restore again continues without importing anything twice",
            summary.imported + summary.updated,
            if summary.failed.is_empty() {
                String::new()
            } else {
                format!(", {} failed", summary.failed.len())
            }
        );
    }
    summary.seconds = t0.elapsed().as_secs_f64();
    report(&summary, a.json)?;
    if !summary.failed.is_empty() {
        bail!(
            "{} of {} items could not be restored (listed above); run the same restore again to retry them",
            summary.failed.len(),
            summary.selected
        );
    }
    Ok(())
}

/// At most this many restored items are not yet in the saved journal...
const JOURNAL_ITEMS: usize = 200;
/// ...and the journal is at most this old while items complete.
const JOURNAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A flag set by the first Ctrl-C (or SIGTERM). A second one exits at once.
fn stop_on_interrupt() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        crate::interrupt_signal().await;
        flag.store(true, Ordering::SeqCst);
        eprintln!(
            "interrupted: finishing the imports in flight and saving the restore journal (interrupt again to stop at once: the items in flight may then be imported again by the next restore)"
        );
        crate::interrupt_signal().await;
        std::process::exit(130);
    });
    stop
}

async fn restore_one(
    repo: &Repository,
    client: &GraphClient,
    target: &str,
    folder: Option<&str>,
    item: &ItemEntry,
    prev: Option<JournalEntry>,
) -> Result<(JournalEntry, bool, u64)> {
    let Some(folder) = folder else {
        bail!("its folder could not be mapped to the target mailbox");
    };
    let data = repo
        .get_blob(&item.blob)
        .await
        .with_context(|| format!("reading item {} from the repository", item.id))?;
    let bytes = data.len() as u64;
    if let Some(p) = prev {
        // Restored before with other content: replace it in place.
        match client
            .update_item(target, &p.folder, &p.target_id, &p.change_key, &data)
            .await
        {
            Ok(done) => {
                return Ok((
                    JournalEntry {
                        target_id: done.item_id,
                        folder: p.folder.clone(),
                        change_key: done.change_key,
                        blob: item.blob.to_string(),
                    },
                    true,
                    bytes,
                ));
            }
            // Gone or changed in the target since: import a new copy.
            Err(e) if e.is_not_found() || e.status() == Some(409) => {}
            Err(e) => return Err(e).context("updating the restored item"),
        }
    }
    let done = client
        .import_item(target, folder, &data)
        .await
        .context("importing")?;
    Ok((
        JournalEntry {
            target_id: done.item_id,
            folder: folder.to_string(),
            change_key: done.change_key,
            blob: item.blob.to_string(),
        },
        false,
        bytes,
    ))
}

fn report(s: &Summary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    let verb = if s.dry_run {
        "would restore"
    } else {
        "restored"
    };
    println!(
        "{verb} {} of {} selected items of snapshot {} into {} ({} new, {} replaced, {} already restored, {}) in {:.1} s",
        s.imported + s.updated,
        s.selected,
        &s.snapshot[..s.snapshot.len().min(12)],
        s.target,
        s.imported,
        s.updated,
        s.skipped_already_restored,
        human_bytes(s.bytes),
        s.seconds
    );
    for f in &s.folders_created {
        println!(
            "  folder {}{f}",
            if s.dry_run {
                "to create: "
            } else {
                "created: "
            }
        );
    }
    for f in &s.failed {
        println!(
            "  FAILED item {} in {}: {}",
            f["itemId"].as_str().unwrap_or("?"),
            f["folder"].as_str().unwrap_or("?"),
            f["error"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

pub(super) async fn load(repo: &Repository, id: &str, mailbox: Option<&str>) -> Result<Snapshot> {
    if id == "latest" {
        let Some(m) = mailbox else {
            bail!("`latest` needs --mailbox (a mailbox id or label)");
        };
        let list = repo.list_snapshots().await?;
        let best = list
            .iter()
            .filter(|s| {
                s.complete
                    && (s.mailbox_id.eq_ignore_ascii_case(m) || s.label.eq_ignore_ascii_case(m))
            })
            .max_by_key(|s| s.time)
            .ok_or_else(|| anyhow::anyhow!("no snapshot of mailbox {m} in this repository"))?;
        return Ok(repo.load_snapshot(&best.id.0).await?);
    }
    repo.load_snapshot(id)
        .await
        .with_context(|| format!("no snapshot {id} (see `graphbox snapshots`)"))
}

fn select<'a>(snap: &'a Snapshot, a: &RestoreArgs) -> Result<Vec<&'a ItemEntry>> {
    let subtree: Option<HashSet<String>> = match &a.folder {
        None => None,
        Some(key) => {
            let root = snap
                .folders
                .iter()
                .find(|f| {
                    f.id == *key || snap.folder_path(&f.id).eq_ignore_ascii_case(key.trim_end_matches('/'))
                })
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no folder {key} in the snapshot: give a folder id or a path such as /Inbox (see `graphbox snapshots show`)"
                    )
                })?;
            let mut set = HashSet::from([root.id.clone()]);
            loop {
                let before = set.len();
                for f in &snap.folders {
                    if f.parent_id.as_ref().is_some_and(|p| set.contains(p)) {
                        set.insert(f.id.clone());
                    }
                }
                if set.len() == before {
                    break;
                }
            }
            Some(set)
        }
    };
    let ids: HashSet<&str> = a.items.iter().map(String::as_str).collect();
    let q: FindQuery = a.filter.query()?;
    let chosen: Vec<&ItemEntry> = snap
        .items
        .iter()
        .filter(|i| subtree.as_ref().is_none_or(|s| s.contains(&i.folder_id)))
        .filter(|i| ids.is_empty() || ids.contains(i.id.as_str()))
        .filter(|i| q.matches_item(i))
        .collect();
    let unknown: Vec<&&str> = ids
        .iter()
        .filter(|id| !snap.items.iter().any(|i| i.id == **id))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "these items are not in the snapshot: {} (find them with `graphbox find`)",
            unknown
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(chosen)
}

/// File names: keep letters, digits, `-`, `_`, `.`; replace the rest.
fn safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim().trim_start_matches('.').to_string();
    if s.is_empty() { "_".into() } else { s }
}

async fn to_files(
    repo: &Repository,
    snap: &Snapshot,
    chosen: &[&ItemEntry],
    dir: &Path,
    dry_run: bool,
    json: bool,
) -> Result<()> {
    let mut written = Vec::new();
    let mut failed = Vec::new();
    let mut bytes = 0u64;
    for i in chosen {
        let folder = snap.folder_path(&i.folder_id);
        let mut path = dir.to_path_buf();
        for part in folder.split('/').filter(|p| !p.is_empty()) {
            path.push(safe(part));
        }
        path.push(format!("{}.fts", safe(&i.id)));
        if !dry_run {
            // An unreadable item (damaged repository) does not stop the others.
            let data = match repo.get_blob(&i.blob).await {
                Ok(d) => d,
                Err(e) => {
                    failed.push(serde_json::json!({
                        "itemId": i.id,
                        "folder": folder,
                        "error": format!("reading the item from the repository: {e}"),
                    }));
                    continue;
                }
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&path, &data).with_context(|| format!("writing {}", path.display()))?;
            bytes += data.len() as u64;
        } else {
            bytes += i.size;
        }
        written.push(serde_json::json!({"itemId": i.id, "path": path.display().to_string()}));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dryRun": dry_run, "files": written, "bytes": bytes, "failed": failed,
            }))?
        );
    } else {
        println!(
            "{} {} items ({}) under {}",
            if dry_run { "would write" } else { "wrote" },
            written.len(),
            human_bytes(bytes),
            dir.display()
        );
        for f in &failed {
            println!(
                "  FAILED item {} in {}: {}",
                f["itemId"].as_str().unwrap_or("?"),
                f["folder"].as_str().unwrap_or("?"),
                f["error"].as_str().unwrap_or("?")
            );
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} items could not be read from the repository (listed above); `graphbox verify --read-data` shows the damage",
            failed.len(),
            chosen.len()
        );
    }
    Ok(())
}
