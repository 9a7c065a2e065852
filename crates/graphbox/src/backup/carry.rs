//! Which of the parent snapshot's items an incremental run carries over.
//!
//! The parent's item list is read once, owned, and never cloned item by
//! item: each folder's item delta only flips a flag per parent item (kept or
//! not), and the few items that reappear in another folder with unchanged
//! content are copied. After the export the kept items are moved into the new
//! snapshot's list, which the parent's order leaves almost sorted.

use std::collections::{HashMap, HashSet};

use backup::ItemEntry;
use client::ItemSummary;

/// The parent's items, looked up by id and by folder, and what this run
/// keeps of them.
pub(super) struct Carry<'a> {
    parent: &'a [ItemEntry],
    /// Id → position (the last one when an id repeats).
    by_id: HashMap<&'a str, usize>,
    /// Folder id → positions of its items, sorted by item id.
    by_folder: HashMap<&'a str, Vec<usize>>,
    keep: Vec<bool>,
    /// Parent items found again, unchanged, in another folder's delta.
    moved: Vec<ItemEntry>,
}

/// What [`Carry`] decided, without borrowing the parent's list.
pub(super) struct CarryPlan {
    keep: Vec<bool>,
    moved: Vec<ItemEntry>,
    /// Some id appears more than once in the parent's list.
    repeated_ids: bool,
}

impl<'a> Carry<'a> {
    pub(super) fn new(parent: &'a [ItemEntry]) -> Carry<'a> {
        let mut by_id = HashMap::with_capacity(parent.len());
        let mut by_folder: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, e) in parent.iter().enumerate() {
            by_id.insert(e.id.as_str(), i);
            by_folder.entry(e.folder_id.as_str()).or_default().push(i);
        }
        // Snapshots are saved sorted by folder and id, so this is a check
        // more than a sort.
        for positions in by_folder.values_mut() {
            positions.sort_by(|&x, &y| parent[x].id.cmp(&parent[y].id));
        }
        Carry {
            parent,
            by_id,
            by_folder,
            keep: vec![false; parent.len()],
            moved: Vec::new(),
        }
    }

    /// The position of this folder's parent item `id`.
    fn own(&self, folder: &str, id: &str) -> Option<usize> {
        let positions = self.by_folder.get(folder)?;
        positions
            .binary_search_by(|&p| self.parent[p].id.as_str().cmp(id))
            .ok()
            .map(|k| positions[k])
    }

    /// Applies one folder's item delta: an incremental one starts from the
    /// parent's items of the folder, a full one (`full`) from nothing; the
    /// removed ones go; a changed one whose changeKey is the parent's (and
    /// whose content `usable` says the repository still has) is carried,
    /// in this folder. Returns the changed items that are not carried.
    pub(super) fn folder(
        &mut self,
        folder: &str,
        full: bool,
        removed: &[String],
        changed: Vec<ItemSummary>,
        usable: impl Fn(&ItemEntry) -> bool,
    ) -> Vec<ItemSummary> {
        if !full && let Some(positions) = self.by_folder.get(folder) {
            for &p in positions {
                self.keep[p] = true;
            }
        }
        for id in removed {
            if let Some(p) = self.own(folder, id) {
                self.keep[p] = false;
            }
        }
        // Items carried into this folder from another one, by id.
        let mut arrived: HashMap<String, ItemEntry> = HashMap::new();
        let mut fresh = Vec::new();
        for s in changed {
            let known =
                self.by_id.get(s.id.as_str()).copied().filter(|&p| {
                    self.parent[p].change_key == s.change_key && usable(&self.parent[p])
                });
            match known {
                Some(p) if self.parent[p].folder_id == folder => {
                    self.keep[p] = true;
                    arrived.remove(&s.id);
                }
                Some(p) => {
                    if let Some(o) = self.own(folder, &s.id) {
                        self.keep[o] = false;
                    }
                    let mut e = self.parent[p].clone();
                    e.folder_id = folder.to_owned();
                    arrived.insert(s.id.clone(), e);
                }
                None => {
                    if let Some(o) = self.own(folder, &s.id) {
                        self.keep[o] = false;
                    }
                    arrived.remove(&s.id);
                    fresh.push(s);
                }
            }
        }
        self.moved.extend(arrived.into_values());
        fresh
    }

    pub(super) fn into_plan(self) -> CarryPlan {
        CarryPlan {
            repeated_ids: self.by_id.len() < self.parent.len(),
            keep: self.keep,
            moved: self.moved,
        }
    }
}

impl CarryPlan {
    /// How many of the parent's items are carried.
    pub(super) fn len(&self) -> usize {
        self.keep.iter().filter(|k| **k).count() + self.moved.len()
    }

    /// The new snapshot's items (the carried ones and `saved`, sorted by
    /// folder and id) and how many of the parent's ids it no longer has.
    pub(super) fn finish(
        self,
        parent: Vec<ItemEntry>,
        saved: Vec<ItemEntry>,
    ) -> (Vec<ItemEntry>, usize) {
        let removed = {
            let arrived: HashSet<&str> = self
                .moved
                .iter()
                .chain(&saved)
                .map(|i| i.id.as_str())
                .collect();
            // An id the parent lists twice may be kept under the other entry
            // (only then is the whole kept set worth building).
            let kept: HashSet<&str> = if self.repeated_ids {
                parent
                    .iter()
                    .zip(&self.keep)
                    .filter(|(_, k)| **k)
                    .map(|(i, _)| i.id.as_str())
                    .collect()
            } else {
                HashSet::new()
            };
            parent
                .iter()
                .zip(&self.keep)
                .filter(|(i, k)| {
                    !**k && !arrived.contains(i.id.as_str()) && !kept.contains(i.id.as_str())
                })
                .count()
        };
        let mut items = parent;
        let mut keep = self.keep.into_iter();
        items.retain(|_| keep.next().unwrap_or(false));
        items.extend(self.moved);
        items.extend(saved);
        // A long sorted run and a short tail: the stable sort merges them.
        items.sort_by(|a, b| a.folder_id.cmp(&b.folder_id).then(a.id.cmp(&b.id)));
        (items, removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, folder: &str, ck: &str) -> ItemEntry {
        ItemEntry {
            id: id.into(),
            folder_id: folder.into(),
            change_key: ck.into(),
            item_type: "IPM.Note".into(),
            size: 10,
            created: None,
            modified: None,
            subject: None,
            sender: None,
            categories: Vec::new(),
            blob: backup::BlobId([id.len() as u8; 32]),
        }
    }

    fn changed(id: &str, folder: &str, ck: &str) -> ItemSummary {
        ItemSummary {
            id: id.into(),
            folder_id: folder.into(),
            change_key: ck.into(),
            item_type: String::new(),
            size: None,
            created: None,
            modified: None,
            categories: Vec::new(),
        }
    }

    fn summary_ids(items: &[ItemSummary]) -> Vec<&str> {
        items.iter().map(|s| s.id.as_str()).collect()
    }

    fn ids(items: &[ItemEntry]) -> Vec<String> {
        items
            .iter()
            .map(|i| format!("{}/{}", i.folder_id, i.id))
            .collect()
    }

    fn parent() -> Vec<ItemEntry> {
        vec![
            entry("a1", "A", "1"),
            entry("a2", "A", "1"),
            entry("a3", "A", "1"),
            entry("b1", "B", "1"),
            entry("b2", "B", "1"),
            entry("c1", "C", "1"),
        ]
    }

    #[test]
    fn incremental_keeps_removes_changes_and_moves() {
        let parent = parent();
        let mut carry = Carry::new(&parent);
        // A: a2 removed, a3 changed, a1 reported again with its old key.
        let fresh = carry.folder(
            "A",
            false,
            &["a2".into()],
            vec![changed("a3", "A", "2"), changed("a1", "A", "1")],
            |_| true,
        );
        assert_eq!(summary_ids(&fresh), ["a3"]);
        // B: b1 moved here from C's point of view: c1 arrives unchanged;
        // b2 is new content.
        let fresh = carry.folder(
            "B",
            false,
            &[],
            vec![changed("c1", "B", "1"), changed("new", "B", "1")],
            |_| true,
        );
        assert_eq!(summary_ids(&fresh), ["new"]);
        // C: c1 left (removed from C's delta).
        let fresh = carry.folder("C", false, &["c1".into()], vec![], |_| true);
        assert!(fresh.is_empty());
        let plan = carry.into_plan();
        assert_eq!(plan.len(), 4); // a1, b1, b2, c1 (now in B)
        let (items, removed) = plan.finish(
            parent.clone(),
            vec![entry("a3", "A", "2"), entry("new", "B", "1")],
        );
        assert_eq!(
            ids(&items),
            ["A/a1", "A/a3", "B/b1", "B/b2", "B/c1", "B/new"]
        );
        assert_eq!(items[1].change_key, "2");
        // a2 is gone; c1 moved (still there); a3 was replaced.
        assert_eq!(removed, 1);
    }

    #[test]
    fn full_delta_starts_from_nothing_and_reuses_known_content() {
        let parent = parent();
        let mut carry = Carry::new(&parent);
        // A full delta of A lists a1 (unchanged) and a3 (changed) only.
        let fresh = carry.folder(
            "A",
            true,
            &[],
            vec![changed("a1", "A", "1"), changed("a3", "A", "9")],
            |_| true,
        );
        assert_eq!(summary_ids(&fresh), ["a3"]);
        let plan = carry.into_plan();
        let (items, removed) = plan.finish(parent.clone(), vec![entry("a3", "A", "9")]);
        // B and C had no delta (gone): their items are not carried.
        assert_eq!(ids(&items), ["A/a1", "A/a3"]);
        assert_eq!(removed, 4); // a2, b1, b2, c1
    }

    #[test]
    fn content_missing_from_the_repository_is_exported_again() {
        let parent = parent();
        let mut carry = Carry::new(&parent);
        let fresh = carry.folder("A", false, &[], vec![changed("a1", "A", "1")], |e| {
            e.id != "a1"
        });
        assert_eq!(fresh.len(), 1);
        let (items, _) = carry.into_plan().finish(parent.clone(), vec![]);
        assert_eq!(ids(&items), ["A/a2", "A/a3"]);
    }

    #[test]
    fn no_parent() {
        let parent = Vec::new();
        let mut carry = Carry::new(&parent);
        let fresh = carry.folder("A", true, &[], vec![changed("x", "A", "1")], |_| true);
        assert_eq!(fresh.len(), 1);
        let plan = carry.into_plan();
        assert_eq!(plan.len(), 0);
        let (items, removed) = plan.finish(Vec::new(), vec![entry("x", "A", "1")]);
        assert_eq!(ids(&items), ["A/x"]);
        assert_eq!(removed, 0);
    }
}
