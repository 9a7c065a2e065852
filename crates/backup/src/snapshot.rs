//! Snapshots: what one backup run of one mailbox saw, and the differences
//! between two of them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::crypto::BlobId;

/// A snapshot's id: BLAKE3 of its stored file, 64 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotId(pub String);

impl SnapshotId {
    /// The first 8 hex digits (how listings show it).
    pub fn short(&self) -> &str {
        &self.0[..8.min(self.0.len())]
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One mailbox backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Set when loaded from (or saved to) the repository.
    #[serde(skip)]
    pub id: Option<SnapshotId>,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub hostname: String,
    pub tags: Vec<String>,
    pub mailbox_id: String,
    /// Human label, usually the user principal name.
    pub label: String,
    pub parent: Option<SnapshotId>,
    pub folders: Vec<FolderEntry>,
    /// Stored in chunk blobs, not in the snapshot file.
    #[serde(skip)]
    pub items: Vec<ItemEntry>,
    pub folder_delta_link: Option<String>,
    /// Item delta link per folder id.
    pub item_delta_links: BTreeMap<String, String>,
    /// Items that could not be backed up in this run.
    pub errors: Vec<ItemError>,
    /// False when the run stopped early (the snapshot holds what was saved).
    pub complete: bool,
}

impl Snapshot {
    /// An empty snapshot of `mailbox_id` at the current time on this host.
    pub fn new(mailbox_id: impl Into<String>, label: impl Into<String>) -> Snapshot {
        Snapshot {
            id: None,
            time: OffsetDateTime::now_utc(),
            hostname: crate::lock::hostname(),
            tags: Vec::new(),
            mailbox_id: mailbox_id.into(),
            label: label.into(),
            parent: None,
            folders: Vec::new(),
            items: Vec::new(),
            folder_delta_link: None,
            item_delta_links: BTreeMap::new(),
            errors: Vec::new(),
            complete: true,
        }
    }

    /// The folder path of `folder_id` (`/Inbox/Projects`), from the tree.
    pub fn folder_path(&self, folder_id: &str) -> String {
        let by_id: HashMap<&str, &FolderEntry> =
            self.folders.iter().map(|f| (f.id.as_str(), f)).collect();
        folder_path_in(&by_id, folder_id)
    }
}

pub(crate) fn folder_path_in(by_id: &HashMap<&str, &FolderEntry>, folder_id: &str) -> String {
    let mut parts = Vec::new();
    let mut cur = Some(folder_id);
    while let Some(id) = cur {
        let Some(f) = by_id.get(id) else { break };
        parts.push(f.display_name.as_str());
        if parts.len() > 64 {
            break;
        }
        cur = f.parent_id.as_deref();
    }
    if parts.is_empty() {
        return folder_id.to_string();
    }
    parts.reverse();
    format!("/{}", parts.join("/"))
}

/// A folder of the mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderEntry {
    pub id: String,
    pub parent_id: Option<String>,
    pub display_name: String,
    /// The folder class (`IPF.Note`, `IPF.Appointment`, …) or Graph type.
    pub folder_type: String,
}

/// An item of the mailbox and where its content is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemEntry {
    pub id: String,
    pub folder_id: String,
    pub change_key: String,
    /// The message class (`IPM.Note`, …).
    pub item_type: String,
    pub size: u64,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub created: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub modified: Option<OffsetDateTime>,
    pub subject: Option<String>,
    /// `Name <address>`, or whichever of the two is known.
    pub sender: Option<String>,
    pub categories: Vec<String>,
    /// The blob holding the item's FTS.
    pub blob: BlobId,
}

/// An item the run could not back up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemError {
    pub item_id: Option<String>,
    pub folder_id: Option<String>,
    /// A short machine-readable code (`ErrorItemNotFound`, `http-500`, …).
    pub code: String,
    pub message: String,
}

/// What [`crate::Repository::list_snapshots`] shows of a snapshot without
/// loading its items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub id: SnapshotId,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub hostname: String,
    pub tags: Vec<String>,
    pub mailbox_id: String,
    pub label: String,
    pub parent: Option<SnapshotId>,
    pub item_count: u64,
    /// Sum of the items' content sizes.
    pub total_size: u64,
    pub error_count: u64,
    pub complete: bool,
}

/// The stored form of a snapshot (`snapshots/<id>`).
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotFile {
    pub version: u32,
    #[serde(flatten)]
    pub snapshot: Snapshot,
    pub item_count: u64,
    pub total_size: u64,
    /// Blobs (kind tree) each holding a chunk of the item list, in order.
    pub item_chunks: Vec<BlobId>,
    /// Each chunk's first key, count and size (chunks.rs); empty in
    /// snapshots written before 2026-11-28 and when the list is not in
    /// item order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub item_chunk_index: Vec<crate::chunks::ChunkInfo>,
}

/// An item present in both snapshots that differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemChange {
    pub old: ItemEntry,
    pub new: ItemEntry,
    pub change_key_changed: bool,
    pub content_changed: bool,
    pub moved: bool,
}

/// What changed from one snapshot to another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotDiff {
    pub items_added: Vec<ItemEntry>,
    pub items_removed: Vec<ItemEntry>,
    pub items_changed: Vec<ItemChange>,
    pub folders_added: Vec<FolderEntry>,
    pub folders_removed: Vec<FolderEntry>,
    /// (old, new) for folders whose name or parent changed.
    pub folders_renamed: Vec<(FolderEntry, FolderEntry)>,
}

impl SnapshotDiff {
    /// True when the snapshots hold the same folders and items.
    pub fn is_empty(&self) -> bool {
        self.items_added.is_empty()
            && self.items_removed.is_empty()
            && self.items_changed.is_empty()
            && self.folders_added.is_empty()
            && self.folders_removed.is_empty()
            && self.folders_renamed.is_empty()
    }
}

/// The differences from `a` (older) to `b` (newer), matched by id; results
/// are in the order of `b` (additions, changes) and `a` (removals).
pub fn diff(a: &Snapshot, b: &Snapshot) -> SnapshotDiff {
    let mut d = SnapshotDiff::default();
    let old_items: HashMap<&str, &ItemEntry> = a.items.iter().map(|i| (i.id.as_str(), i)).collect();
    let new_items: HashMap<&str, &ItemEntry> = b.items.iter().map(|i| (i.id.as_str(), i)).collect();
    for n in &b.items {
        match old_items.get(n.id.as_str()) {
            None => d.items_added.push(n.clone()),
            Some(o) => {
                let change_key_changed = o.change_key != n.change_key;
                let content_changed = o.blob != n.blob;
                let moved = o.folder_id != n.folder_id;
                if change_key_changed || content_changed || moved {
                    d.items_changed.push(ItemChange {
                        old: (*o).clone(),
                        new: n.clone(),
                        change_key_changed,
                        content_changed,
                        moved,
                    });
                }
            }
        }
    }
    d.items_removed = a
        .items
        .iter()
        .filter(|o| !new_items.contains_key(o.id.as_str()))
        .cloned()
        .collect();
    let old_folders: HashMap<&str, &FolderEntry> =
        a.folders.iter().map(|f| (f.id.as_str(), f)).collect();
    let new_folders: HashMap<&str, &FolderEntry> =
        b.folders.iter().map(|f| (f.id.as_str(), f)).collect();
    for n in &b.folders {
        match old_folders.get(n.id.as_str()) {
            None => d.folders_added.push(n.clone()),
            Some(o) if o.display_name != n.display_name || o.parent_id != n.parent_id => {
                d.folders_renamed.push(((*o).clone(), n.clone()))
            }
            Some(_) => {}
        }
    }
    d.folders_removed = a
        .folders
        .iter()
        .filter(|o| !new_folders.contains_key(o.id.as_str()))
        .cloned()
        .collect();
    d
}
