//! The delta requests of one mailbox's run: the folder delta and every
//! folder's item delta, from the links of the previous snapshot.
//!
//! The requests depend only on a [`DeltaBase`] (the previous snapshot's
//! links and folder ids), so they can be sent before the repository is open
//! (see `prefetch.rs`); their answers are put on the previous folder tree by
//! [`merge`] once the snapshot is read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result, anyhow};
use backup::{FolderEntry, Snapshot};
use client::{DeltaResult, Folder, GraphClient, ItemSummary};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// One folder's item delta, and whether it is a full one.
pub(super) type FolderItems = (DeltaResult<ItemSummary>, bool);

/// What a run's delta requests are made from: the previous snapshot's
/// folder delta link, its folders and its item delta links.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeltaBase {
    pub folder_link: Option<String>,
    /// The previous snapshot's folder ids, in its order.
    pub folders: Vec<String>,
    /// Item delta link per folder id.
    pub item_links: BTreeMap<String, String>,
}

impl DeltaBase {
    /// The base of a run after `parent` (`None`: a first or `--full` run,
    /// whose deltas start over).
    pub fn of(parent: Option<&Snapshot>) -> DeltaBase {
        match parent {
            None => DeltaBase::default(),
            Some(p) => DeltaBase {
                folder_link: p.folder_delta_link.clone(),
                folders: p.folders.iter().map(|f| f.id.clone()).collect(),
                item_links: p.item_delta_links.clone(),
            },
        }
    }
}

/// The answers of a run's delta requests, not yet put on the folder tree.
pub(super) struct RawDeltas {
    pub folders: DeltaResult<Folder>,
    /// The folder delta started over (no usable link).
    pub full_folders: bool,
    /// Item delta per folder id (errors included), for every folder the
    /// folder delta leaves.
    pub items: HashMap<String, client::Result<FolderItems>>,
}

impl RawDeltas {
    /// The items the item deltas report created or changed, with sizes.
    pub fn changed_items(&self) -> impl Iterator<Item = &ItemSummary> {
        self.items
            .values()
            .filter_map(|r| r.as_ref().ok())
            .flat_map(|(d, _)| d.changed.iter())
    }
}

/// What the delta requests of one run returned.
pub(super) struct Deltas {
    /// The folder tree after the folder delta.
    pub folders: BTreeMap<String, FolderEntry>,
    /// The folder delta started over (no usable link).
    pub full_folders: bool,
    pub folder_delta_link: String,
    /// Per folder, in folder order: its item delta and whether that is a
    /// full one (no link, or the link had expired), or the request's error.
    pub items: Vec<(String, client::Result<FolderItems>)>,
}

/// The folder delta and the item delta of every folder, up to the client's
/// per-mailbox concurrency at once (one round trip each on an incremental
/// run: most of its time when little changed). The base's folders do not
/// wait for the folder delta: their item deltas start with it, and the
/// answers of folders it reports removed are dropped. Folders it adds are
/// asked for after it.
pub(super) async fn fetch(client: &GraphClient, mbx: &str, base: &DeltaBase) -> Result<RawDeltas> {
    let item_delta = |id: String| async move {
        let link = base.item_links.get(&id).cloned();
        let r = match client.items_delta(mbx, &id, link.as_deref()).await {
            Ok(d) => Ok((d, link.is_none())),
            Err(client::Error::SyncStateNotFound { .. }) if link.is_some() => {
                client.items_delta(mbx, &id, None).await.map(|d| (d, true))
            }
            Err(e) => Err(e),
        };
        (id, r)
    };
    let concurrency = client.profile().max_concurrency_per_mailbox;
    let (folder_delta, early) = tokio::join!(
        folder_delta(client, mbx, base.folder_link.as_deref()),
        futures::stream::iter(base.folders.clone())
            .map(item_delta)
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>(),
    );
    let (folders, full_folders) = folder_delta?;
    let after = folder_ids_after(&base.folders, &folders, full_folders);
    let mut items: HashMap<String, client::Result<FolderItems>> = early
        .into_iter()
        .filter(|(id, _)| after.contains(id.as_str()))
        .collect();
    let added: Vec<String> = after
        .iter()
        .filter(|id| !items.contains_key(**id))
        .map(|id| id.to_string())
        .collect();
    let later: Vec<(String, client::Result<FolderItems>)> = futures::stream::iter(added)
        .map(item_delta)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    items.extend(later);
    Ok(RawDeltas {
        folders,
        full_folders,
        items,
    })
}

/// The folder ids after a folder delta on top of `before` (nothing of it
/// when the delta started over).
fn folder_ids_after<'a>(
    before: &'a [String],
    delta: &'a DeltaResult<Folder>,
    full: bool,
) -> BTreeSet<&'a str> {
    let mut ids: BTreeSet<&str> = BTreeSet::new();
    if !full {
        ids.extend(before.iter().map(String::as_str));
    }
    for id in &delta.removed {
        ids.remove(id.as_str());
    }
    ids.extend(delta.changed.iter().map(|f| f.id.as_str()));
    ids
}

/// The folder delta from `link` (a full round without one, or when the
/// server says the sync state is gone), and whether it started over.
async fn folder_delta(
    client: &GraphClient,
    mbx: &str,
    link: Option<&str>,
) -> Result<(DeltaResult<Folder>, bool)> {
    match client.folders_delta(mbx, link).await {
        Ok(d) => Ok((d, link.is_none())),
        Err(client::Error::SyncStateNotFound { .. }) if link.is_some() => {
            Ok((client.folders_delta(mbx, None).await?, true))
        }
        Err(e) => Err(e).context("folder delta"),
    }
}

/// `raw` put on the folder tree of `parent`, whose [`DeltaBase`] the
/// requests were made from.
pub(super) fn merge(parent: Option<&Snapshot>, raw: RawDeltas) -> Result<Deltas> {
    let RawDeltas {
        folders: fdelta,
        full_folders,
        mut items,
    } = raw;
    let mut folders: BTreeMap<String, FolderEntry> = BTreeMap::new();
    if !full_folders && let Some(p) = parent {
        for f in &p.folders {
            folders.insert(f.id.clone(), f.clone());
        }
    }
    for id in &fdelta.removed {
        folders.remove(id);
    }
    for f in fdelta.changed {
        folders.insert(
            f.id.clone(),
            FolderEntry {
                id: f.id,
                parent_id: f.parent_folder_id,
                display_name: f.display_name,
                folder_type: f.folder_type,
            },
        );
    }
    let items = folders
        .keys()
        .map(|id| {
            let answer = items
                .remove(id)
                .ok_or_else(|| anyhow!("no item delta was fetched for folder {id}"))?;
            Ok((id.clone(), answer))
        })
        .collect::<Result<_>>()?;
    Ok(Deltas {
        folders,
        full_folders,
        folder_delta_link: fdelta.delta_link,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(id: &str) -> Folder {
        serde_json::from_value(serde_json::json!({"id": id, "displayName": id})).unwrap()
    }

    fn delta(changed: &[&str], removed: &[&str]) -> DeltaResult<Folder> {
        DeltaResult {
            changed: changed.iter().map(|id| folder(id)).collect(),
            removed: removed.iter().map(|s| s.to_string()).collect(),
            delta_link: "next".into(),
            pages: 1,
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A snapshot of folders named "old <id>".
    fn snapshot_with(folders: &[&str]) -> Snapshot {
        let mut s = Snapshot::new("MBX:1", "u");
        for id in folders {
            s.folders.push(FolderEntry {
                id: id.to_string(),
                parent_id: None,
                display_name: format!("old {id}"),
                folder_type: "IPF.Note".into(),
            });
        }
        s
    }

    #[test]
    fn the_folders_after_a_delta_drop_removed_ones_and_add_new_ones() {
        let before = ids(&["a", "b", "c"]);
        let d = delta(&["d", "b"], &["c"]);
        let after: Vec<&str> = folder_ids_after(&before, &d, false).into_iter().collect();
        assert_eq!(after, ["a", "b", "d"]);
        // A delta that started over keeps nothing of before.
        let after: Vec<&str> = folder_ids_after(&before, &d, true).into_iter().collect();
        assert_eq!(after, ["b", "d"]);
    }

    #[test]
    fn the_base_of_a_snapshot_holds_its_links_and_folder_order() {
        let mut s = snapshot_with(&["z", "a"]);
        s.folder_delta_link = Some("f".into());
        s.item_delta_links.insert("z".into(), "zl".into());
        let b = DeltaBase::of(Some(&s));
        assert_eq!(b.folders, ids(&["z", "a"]));
        assert_eq!(b.folder_link.as_deref(), Some("f"));
        assert_eq!(b.item_links.get("z").map(String::as_str), Some("zl"));
        assert_eq!(DeltaBase::of(None), DeltaBase::default());
        // A renamed folder leaves the base as it is; a new link changes it.
        let mut renamed = s.clone();
        renamed.folders[0].display_name = "other".into();
        assert_eq!(DeltaBase::of(Some(&renamed)), b);
        let mut relinked = s.clone();
        relinked.item_delta_links.insert("a".into(), "al".into());
        assert_ne!(DeltaBase::of(Some(&relinked)), b);
    }

    #[test]
    fn merging_puts_the_answers_on_the_parent_tree_and_refuses_a_missing_answer() {
        let s = snapshot_with(&["a", "b"]);
        let answer = |id: &str| {
            (
                id.to_string(),
                Ok((
                    DeltaResult {
                        changed: Vec::new(),
                        removed: Vec::new(),
                        delta_link: format!("l-{id}"),
                        pages: 1,
                    },
                    false,
                )),
            )
        };
        let raw = RawDeltas {
            folders: delta(&["c"], &["b"]),
            full_folders: false,
            items: [answer("a"), answer("c")].into_iter().collect(),
        };
        let d = merge(Some(&s), raw).unwrap();
        assert_eq!(d.folders.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(d.folders["a"].display_name, "old a");
        assert_eq!(d.items.len(), 2);
        assert_eq!(d.folder_delta_link, "next");
        let raw = RawDeltas {
            folders: delta(&["c"], &[]),
            full_folders: false,
            items: [answer("a"), answer("c")].into_iter().collect(),
        };
        let err = merge(Some(&s), raw).err().expect("folder b has no answer");
        assert!(format!("{err}").contains("folder b"), "{err}");
    }
}
