//! `graphbox snapshots | verify | prune | find`: work on the repository
//! alone, no server needed.

use anyhow::{Context, Result, bail};
use backup::{FindQuery, LockKind, RetentionPolicy};
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::{RepoArgs, human_bytes, rfc3339};

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(subcommand)]
    pub cmd: Option<SnapshotsCmd>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotsCmd {
    /// List snapshots (the default).
    List {
        /// Only this mailbox (id or label).
        #[arg(long)]
        mailbox: Option<String>,
    },
    /// One snapshot: its folders and, with --items, its items.
    Show {
        id: String,
        #[arg(long)]
        items: bool,
    },
    /// What changed between two snapshots (older first).
    Diff { from: String, to: String },
}

/// Item filters shared by `find` and `restore`.
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Subject or sender contains this (case-insensitive).
    #[arg(long)]
    pub text: Option<String>,
    /// Subject contains this (case-insensitive).
    #[arg(long)]
    pub subject: Option<String>,
    /// Sender name or address contains this (case-insensitive).
    #[arg(long)]
    pub sender: Option<String>,
    /// Item class or class prefix (IPM.Note, IPM.Appointment, …).
    #[arg(long = "type", value_name = "CLASS")]
    pub item_type: Option<String>,
    /// Modified (else created) at or after this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    pub after: Option<String>,
    /// Modified (else created) before this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    pub before: Option<String>,
}

fn parse_time(flag: &str, s: &str) -> Result<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            anyhow::anyhow!(
                "--{flag} {s:?} is not a time: use RFC 3339 (2026-11-27T08:00:00Z) or a date (2026-11-27)"
            )
        })
}

impl FilterArgs {
    pub fn query(&self) -> Result<FindQuery> {
        Ok(FindQuery {
            text: self.text.clone(),
            subject: self.subject.clone(),
            sender: self.sender.clone(),
            item_type: self.item_type.clone(),
            after: self
                .after
                .as_deref()
                .map(|s| parse_time("after", s))
                .transpose()?,
            before: self
                .before
                .as_deref()
                .map(|s| parse_time("before", s))
                .transpose()?,
            ..Default::default()
        })
    }
}

pub async fn snapshots(a: SnapshotsArgs) -> Result<()> {
    let repo = a.repo.open().await?;
    let _lock = repo
        .lock(LockKind::Shared, "snapshots", a.repo.lock_wait())
        .await?;
    match a.cmd.unwrap_or(SnapshotsCmd::List { mailbox: None }) {
        SnapshotsCmd::List { mailbox } => {
            let mut list = repo.list_snapshots().await?;
            if let Some(m) = &mailbox {
                list.retain(|s| {
                    s.mailbox_id.eq_ignore_ascii_case(m) || s.label.eq_ignore_ascii_case(m)
                });
            }
            list.sort_by_key(|s| s.time);
            if a.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<12} {:<25} {:<30} {:>8} {:>10} {:>6}  tags",
                    "id", "time", "mailbox", "items", "size", "errors"
                );
                for s in &list {
                    println!(
                        "{:<12} {:<25} {:<30} {:>8} {:>10} {:>6}  {}{}",
                        s.id.short(),
                        rfc3339(s.time),
                        s.label,
                        s.item_count,
                        human_bytes(s.total_size),
                        s.error_count,
                        s.tags.join(","),
                        if s.complete { "" } else { " (incomplete)" }
                    );
                }
                println!("{} snapshots", list.len());
            }
        }
        SnapshotsCmd::Show { id, items } => {
            let s = repo
                .load_snapshot(&id)
                .await
                .with_context(|| format!("no snapshot {id}"))?;
            if a.json {
                // Items and the id are not part of the snapshot file's
                // serialization (items live in tree blobs): add them here.
                let mut v = serde_json::to_value(&s)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "id".into(),
                        s.id.as_ref()
                            .map(|i| i.0.clone())
                            .unwrap_or_default()
                            .into(),
                    );
                    o.insert("itemCount".into(), s.items.len().into());
                    if items {
                        o.insert("items".into(), serde_json::to_value(&s.items)?);
                    }
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "snapshot {} of {} ({}) at {} on {}",
                    s.id.as_ref().map(|i| i.0.as_str()).unwrap_or("?"),
                    s.label,
                    s.mailbox_id,
                    rfc3339(s.time),
                    s.hostname
                );
                if let Some(p) = &s.parent {
                    println!("parent {p}");
                }
                println!(
                    "{} folders, {} items, {} errors",
                    s.folders.len(),
                    s.items.len(),
                    s.errors.len()
                );
                let mut paths: Vec<(String, usize)> = s
                    .folders
                    .iter()
                    .map(|f| {
                        (
                            s.folder_path(&f.id),
                            s.items.iter().filter(|i| i.folder_id == f.id).count(),
                        )
                    })
                    .collect();
                paths.sort();
                for (p, n) in paths {
                    println!("  {p}  ({n} items)");
                }
                if items {
                    for i in &s.items {
                        println!(
                            "  {}  {}  {}  {}  {}",
                            i.id,
                            s.folder_path(&i.folder_id),
                            i.item_type,
                            i.subject.as_deref().unwrap_or(""),
                            human_bytes(i.size)
                        );
                    }
                }
                for e in &s.errors {
                    println!(
                        "  error: item {} folder {}: {}: {}",
                        e.item_id.as_deref().unwrap_or("-"),
                        e.folder_id.as_deref().unwrap_or("-"),
                        e.code,
                        e.message
                    );
                }
            }
        }
        SnapshotsCmd::Diff { from, to } => {
            let x = repo.load_snapshot(&from).await?;
            let y = repo.load_snapshot(&to).await?;
            let d = backup::diff(&x, &y);
            if a.json {
                let item = |i: &backup::ItemEntry, s: &backup::Snapshot| serde_json::json!({"id": i.id, "folder": s.folder_path(&i.folder_id), "subject": i.subject});
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "itemsAdded": d.items_added.iter().map(|i| item(i, &y)).collect::<Vec<_>>(),
                        "itemsRemoved": d.items_removed.iter().map(|i| item(i, &x)).collect::<Vec<_>>(),
                        "itemsChanged": d.items_changed.iter().map(|c| serde_json::json!({
                            "id": c.new.id, "contentChanged": c.content_changed,
                            "changeKeyChanged": c.change_key_changed, "moved": c.moved,
                            "from": x.folder_path(&c.old.folder_id), "to": y.folder_path(&c.new.folder_id),
                        })).collect::<Vec<_>>(),
                        "foldersAdded": d.folders_added.iter().map(|f| y.folder_path(&f.id)).collect::<Vec<_>>(),
                        "foldersRemoved": d.folders_removed.iter().map(|f| x.folder_path(&f.id)).collect::<Vec<_>>(),
                        "foldersRenamed": d.folders_renamed.iter().map(|(a, b)| serde_json::json!({
                            "from": x.folder_path(&a.id), "to": y.folder_path(&b.id)})).collect::<Vec<_>>(),
                    }))?
                );
            } else {
                for i in &d.items_added {
                    println!(
                        "+ {}  {}  {}",
                        i.id,
                        y.folder_path(&i.folder_id),
                        i.subject.as_deref().unwrap_or("")
                    );
                }
                for i in &d.items_removed {
                    println!(
                        "- {}  {}  {}",
                        i.id,
                        x.folder_path(&i.folder_id),
                        i.subject.as_deref().unwrap_or("")
                    );
                }
                for c in &d.items_changed {
                    let what = [
                        (c.content_changed, "content"),
                        (c.moved, "moved"),
                        (c.change_key_changed && !c.content_changed, "changeKey"),
                    ]
                    .iter()
                    .filter(|(b, _)| *b)
                    .map(|(_, w)| *w)
                    .collect::<Vec<_>>()
                    .join(",");
                    println!(
                        "M {}  {}  ({what})",
                        c.new.id,
                        y.folder_path(&c.new.folder_id)
                    );
                }
                for f in &d.folders_added {
                    println!("+ folder {}", y.folder_path(&f.id));
                }
                for f in &d.folders_removed {
                    println!("- folder {}", x.folder_path(&f.id));
                }
                for (a, b) in &d.folders_renamed {
                    println!(
                        "R folder {} -> {}",
                        x.folder_path(&a.id),
                        y.folder_path(&b.id)
                    );
                }
                println!(
                    "{} added, {} removed, {} changed items; {} added, {} removed, {} renamed folders",
                    d.items_added.len(),
                    d.items_removed.len(),
                    d.items_changed.len(),
                    d.folders_added.len(),
                    d.folders_removed.len(),
                    d.folders_renamed.len()
                );
            }
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Also read every blob and check it against its hash.
    #[arg(long)]
    pub read_data: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn verify(a: VerifyArgs) -> Result<()> {
    let repo = a.repo.open().await?;
    let _lock = repo
        .lock(LockKind::Shared, "verify", a.repo.lock_wait())
        .await?;
    let r = repo.verify(a.read_data).await?;
    let problems: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": r.is_ok(),
                "readData": r.read_data,
                "indexFiles": r.index_files_checked,
                "packs": r.packs_checked,
                "blobs": r.blobs_checked,
                "snapshots": r.snapshots_checked,
                "bytesRead": r.bytes_read,
                "unindexedPacks": r.unindexed_packs.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                "problems": problems,
            }))?
        );
    } else {
        println!(
            "checked {} index files, {} packs, {} snapshots{}",
            r.index_files_checked,
            r.packs_checked,
            r.snapshots_checked,
            if r.read_data {
                format!(
                    ", {} blobs ({} read)",
                    r.blobs_checked,
                    human_bytes(r.bytes_read)
                )
            } else {
                String::new()
            }
        );
        if !r.unindexed_packs.is_empty() {
            println!(
                "{} packs are not indexed (left by an interrupted run; `graphbox prune` removes them)",
                r.unindexed_packs.len()
            );
        }
        for p in &problems {
            println!("PROBLEM: {p}");
        }
    }
    if !r.is_ok() {
        bail!(
            "the repository has {} problems (listed above)",
            r.problems.len()
        );
    }
    if !a.json {
        println!("no problems found");
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Keep the last N snapshots of each mailbox.
    #[arg(long, default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the last snapshot of each of the last N days.
    #[arg(long, default_value_t = 0)]
    pub keep_daily: u32,
    /// Keep the last snapshot of each of the last N weeks.
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: u32,
    /// Keep the last snapshot of each of the last N months.
    #[arg(long, default_value_t = 0)]
    pub keep_monthly: u32,
    /// Keep the last snapshot of each of the last N years.
    #[arg(long, default_value_t = 0)]
    pub keep_yearly: u32,
    /// Always keep snapshots with this tag (repeatable).
    #[arg(long = "keep-tag")]
    pub keep_tags: Vec<String>,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn prune(a: PruneArgs) -> Result<()> {
    let policy = RetentionPolicy {
        keep_last: a.keep_last,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
        keep_yearly: a.keep_yearly,
        keep_tags: a.keep_tags.clone(),
        ..Default::default()
    };
    if policy.is_empty() && policy.keep_tags.is_empty() {
        bail!(
            "no retention rule: give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-tag (prune never forgets every snapshot)"
        );
    }
    let repo = a.repo.open().await?;
    let _lock = repo
        .lock(LockKind::Exclusive, "prune", a.repo.lock_wait())
        .await?;
    let r = repo.prune(&policy, a.dry_run).await?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dryRun": r.dry_run,
                "kept": r.snapshots_kept.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
                "removed": r.snapshots_removed.iter().map(|s| s.id.0.clone()).collect::<Vec<_>>(),
                "packsDeleted": r.packs_deleted,
                "packsRewritten": r.packs_rewritten,
                "packsWritten": r.packs_written,
                "unindexedPacksDeleted": r.unindexed_packs_deleted,
                "blobsRemoved": r.blobs_removed,
                "bytesFreed": r.bytes_freed,
                "unusedBytesKept": r.unused_bytes_kept,
            }))?
        );
    } else {
        let verb = if r.dry_run { "would remove" } else { "removed" };
        for s in &r.snapshots_removed {
            println!(
                "{verb} snapshot {} of {} ({})",
                s.id.short(),
                s.label,
                rfc3339(s.time)
            );
        }
        println!(
            "kept {} snapshots, {verb} {}; {} packs deleted, {} rewritten, {} blobs and {} freed",
            r.snapshots_kept.len(),
            r.snapshots_removed.len(),
            r.packs_deleted + r.unindexed_packs_deleted,
            r.packs_rewritten,
            r.blobs_removed,
            human_bytes(r.bytes_freed)
        );
        if r.unused_bytes_kept > 0 {
            println!(
                "{} of unused data left in packs below the repack threshold",
                human_bytes(r.unused_bytes_kept)
            );
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct FindArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only in this folder (id, name or path such as /Inbox/Projects).
    #[arg(long)]
    pub folder: Option<String>,
    /// Only this mailbox (id or label).
    #[arg(long)]
    pub mailbox: Option<String>,
    /// Only this snapshot (id prefix).
    #[arg(long)]
    pub snapshot: Option<String>,
    /// Only the newest snapshot of each mailbox.
    #[arg(long)]
    pub latest: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn find(a: FindArgs) -> Result<()> {
    let mut q = a.filter.query()?;
    q.folder = a.folder.clone();
    q.mailbox = a.mailbox.clone();
    q.snapshot = a.snapshot.clone();
    q.latest_only = a.latest;
    let repo = a.repo.open().await?;
    let _lock = repo
        .lock(LockKind::Shared, "find", a.repo.lock_wait())
        .await?;
    let hits = repo.find(&q).await?;
    if a.json {
        let v: Vec<serde_json::Value> = hits
            .iter()
            .map(|h| {
                serde_json::json!({
                    "snapshot": h.snapshot.id.0,
                    "time": rfc3339(h.snapshot.time),
                    "mailbox": h.snapshot.mailbox_id,
                    "label": h.snapshot.label,
                    "folder": h.folder_path,
                    "item": h.item,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for h in &hits {
            println!(
                "{}  {}  {}  {}  {}  {}  {}",
                h.snapshot.id.short(),
                h.snapshot.label,
                h.folder_path,
                h.item.id,
                h.item.item_type,
                h.item.subject.as_deref().unwrap_or(""),
                h.item.sender.as_deref().unwrap_or("")
            );
        }
        println!("{} matches", hits.len());
    }
    Ok(())
}
