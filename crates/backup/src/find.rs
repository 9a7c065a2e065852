//! `find`: search item metadata across snapshots, without any server.

use std::collections::HashMap;

use time::OffsetDateTime;

use crate::error::Result;
use crate::repo::Repository;
use crate::snapshot::{FolderEntry, ItemEntry, SnapshotSummary, folder_path_in};

/// What to look for; every given criterion must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FindQuery {
    /// Substring of the subject or the sender (case-insensitive).
    pub text: Option<String>,
    /// Substring of the subject (case-insensitive).
    pub subject: Option<String>,
    /// Substring of the sender's name or address (case-insensitive).
    pub sender: Option<String>,
    /// Message class or a class prefix: `IPM.Note` also matches
    /// `IPM.Note.SMIME` but not `IPM.NoteX` (case-insensitive).
    pub item_type: Option<String>,
    /// Items modified (else created) at or after this time.
    pub after: Option<OffsetDateTime>,
    /// Items modified (else created) before this time.
    pub before: Option<OffsetDateTime>,
    /// Folder id, display name, or path (`/Inbox/Projects`), case-insensitive.
    pub folder: Option<String>,
    /// Mailbox id or label (case-insensitive).
    pub mailbox: Option<String>,
    /// Only snapshots whose id starts with this.
    pub snapshot: Option<String>,
    /// Only the newest snapshot of each mailbox.
    pub latest_only: bool,
}

/// One matching item in one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindHit {
    pub snapshot: SnapshotSummary,
    pub item: ItemEntry,
    /// The item's folder path in that snapshot.
    pub folder_path: String,
}

fn contains_ci(hay: &str, needle_lower: &str) -> bool {
    hay.to_lowercase().contains(needle_lower)
}

impl FindQuery {
    fn type_matches(&self, t: &str) -> bool {
        match &self.item_type {
            None => true,
            Some(q) => {
                let t = t.to_ascii_lowercase();
                let q = q.to_ascii_lowercase();
                t == q || t.starts_with(&format!("{q}."))
            }
        }
    }

    /// Whether `item` matches every item criterion.
    pub fn matches_item(&self, item: &ItemEntry) -> bool {
        let subject = item.subject.as_deref().unwrap_or("");
        let sender = item.sender.as_deref().unwrap_or("");
        if let Some(t) = &self.text {
            let t = t.to_lowercase();
            if !contains_ci(subject, &t) && !contains_ci(sender, &t) {
                return false;
            }
        }
        if let Some(s) = &self.subject
            && !contains_ci(subject, &s.to_lowercase())
        {
            return false;
        }
        if let Some(s) = &self.sender
            && !contains_ci(sender, &s.to_lowercase())
        {
            return false;
        }
        if !self.type_matches(&item.item_type) {
            return false;
        }
        let when = item.modified.or(item.created);
        if let Some(after) = self.after
            && when.is_none_or(|w| w < after)
        {
            return false;
        }
        if let Some(before) = self.before
            && when.is_none_or(|w| w >= before)
        {
            return false;
        }
        true
    }
}

impl Repository {
    /// Items matching `q` in every matching snapshot, oldest snapshot first.
    pub async fn find(&self, q: &FindQuery) -> Result<Vec<FindHit>> {
        let mut snaps = self.list_snapshots().await?;
        if let Some(m) = &q.mailbox {
            snaps.retain(|s| {
                s.mailbox_id.eq_ignore_ascii_case(m) || s.label.eq_ignore_ascii_case(m)
            });
        }
        if let Some(p) = &q.snapshot {
            let p = p.to_ascii_lowercase();
            snaps.retain(|s| s.id.0.starts_with(&p));
        }
        if q.latest_only {
            let mut newest: HashMap<String, SnapshotSummary> = HashMap::new();
            for s in snaps {
                match newest.get(&s.mailbox_id) {
                    Some(n) if n.time >= s.time => {}
                    _ => {
                        newest.insert(s.mailbox_id.clone(), s);
                    }
                }
            }
            snaps = newest.into_values().collect();
            snaps.sort_by_key(|s| s.time);
        }
        let mut hits = Vec::new();
        for s in snaps {
            let snap = self.load_snapshot(&s.id.0).await?;
            let by_id: HashMap<&str, &FolderEntry> =
                snap.folders.iter().map(|f| (f.id.as_str(), f)).collect();
            let folder_filter = q.folder.as_ref().map(|f| f.to_lowercase());
            for item in &snap.items {
                if !q.matches_item(item) {
                    continue;
                }
                let path = folder_path_in(&by_id, &item.folder_id);
                if let Some(f) = &folder_filter {
                    let name = by_id
                        .get(item.folder_id.as_str())
                        .map(|e| e.display_name.to_lowercase())
                        .unwrap_or_default();
                    if item.folder_id.to_lowercase() != *f
                        && name != *f
                        && path.to_lowercase() != *f
                    {
                        continue;
                    }
                }
                hits.push(FindHit {
                    snapshot: s.clone(),
                    item: item.clone(),
                    folder_path: path,
                });
            }
        }
        Ok(hits)
    }
}
