//! How a snapshot's item list is cut into chunk blobs, and the chunk index
//! that lets an incremental backup read and rewrite only the chunks its
//! changes touch (docs/REPOSITORY.md, section 7).
//!
//! Items are stored sorted by folder id, then item id. A chunk ends after
//! an item whose *boundary hash* (keyed SipHash of its folder id and id) is a
//! multiple of [`CHUNK_BOUNDARY_MODULUS`], or when it holds
//! [`ITEMS_PER_CHUNK`] items. Where a chunk ends therefore depends on the
//! items around the boundary only, not on their positions: adding or
//! removing items changes the chunks that held them, and the others come
//! out the same (and are stored once). The snapshot file records each
//! chunk's first key, item count and size, so a run that knows which keys
//! changed can tell which chunks hold them without reading any.

use std::cmp::Ordering;
use std::hash::Hasher;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::crypto::BlobId;
use crate::snapshot::ItemEntry;

/// At most this many items per chunk blob of a snapshot's item list.
pub const ITEMS_PER_CHUNK: usize = 4096;
/// A chunk ends after an item whose boundary hash is a multiple of this, so
/// chunks hold this many items on average.
pub const CHUNK_BOUNDARY_MODULUS: u64 = 2048;
/// The BLAKE3 key-derivation context of the boundary hash's keys.
const BOUNDARY_CONTEXT: &str = "graphbox 2026-11-28 item list chunk boundaries";

/// One chunk of a stored item list: where it starts and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    /// The folder id of its first item.
    pub folder: String,
    /// The id of its first item.
    pub id: String,
    /// How many items it holds.
    pub count: u64,
    /// The sum of their sizes.
    pub size: u64,
}

impl ChunkInfo {
    /// The info of a chunk holding `items` (not empty).
    pub(crate) fn of(items: &[ItemEntry]) -> ChunkInfo {
        ChunkInfo {
            folder: items[0].folder_id.clone(),
            id: items[0].id.clone(),
            count: items.len() as u64,
            size: items.iter().map(|i| i.size).sum(),
        }
    }
}

/// A stored chunk of a snapshot's item list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListChunk {
    pub blob: BlobId,
    pub info: ChunkInfo,
}

/// A piece of the item list [`crate::Repository::save_snapshot_parts`] saves.
#[derive(Clone, Debug)]
pub enum ListPart {
    /// Items to store (cut into chunks; a chunk never spans two parts).
    Items(Vec<ItemEntry>),
    /// A chunk already stored (another snapshot's), referenced as it is.
    Chunk(ListChunk),
}

/// Compares two item keys (folder id, then item id, bytewise): the order
/// of stored item lists.
pub fn key_cmp(folder_a: &str, id_a: &str, folder_b: &str, id_b: &str) -> Ordering {
    folder_a.cmp(folder_b).then_with(|| id_a.cmp(id_b))
}

/// [`key_cmp`] of two items.
pub fn item_order(a: &ItemEntry, b: &ItemEntry) -> Ordering {
    key_cmp(&a.folder_id, &a.id, &b.folder_id, &b.id)
}

/// Whether chunks' first keys are in item order.
pub(crate) fn in_order<'a>(infos: impl IntoIterator<Item = &'a ChunkInfo>) -> bool {
    let mut prev: Option<&ChunkInfo> = None;
    infos.into_iter().all(|i| {
        let ok =
            prev.is_none_or(|p| key_cmp(&p.folder, &p.id, &i.folder, &i.id) != Ordering::Greater);
        prev = Some(i);
        ok
    })
}

/// Where chunks end, for one repository (the hash is keyed, so chunk sizes
/// say nothing about ids to whoever sees only the stored files).
///
/// The hash is SipHash-1-3 (a keyed pseudo-random function made for short
/// inputs: a fraction of BLAKE3's cost on ids, and it runs once per item of
/// every list written).
#[derive(Clone)]
pub(crate) struct Boundaries {
    keys: (u64, u64),
}

impl Boundaries {
    pub(crate) fn new(id_key: &[u8; 32]) -> Boundaries {
        let key = blake3::derive_key(BOUNDARY_CONTEXT, id_key);
        let half = |at: usize| u64::from_le_bytes(key[at..at + 8].try_into().expect("8 bytes"));
        Boundaries {
            keys: (half(0), half(8)),
        }
    }

    /// Whether a chunk ends after `item` (unless it is full first).
    pub(crate) fn ends_after(&self, item: &ItemEntry) -> bool {
        let mut h = siphasher::sip::SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        h.write(item.folder_id.as_bytes());
        h.write(&[0]);
        h.write(item.id.as_bytes());
        h.finish().is_multiple_of(CHUNK_BOUNDARY_MODULUS)
    }

    /// `items` cut into chunks: consecutive, non-empty ranges covering it.
    pub(crate) fn split(&self, items: &[ItemEntry]) -> Vec<Range<usize>> {
        let mut out = Vec::with_capacity(items.len() / CHUNK_BOUNDARY_MODULUS as usize + 1);
        let mut start = 0;
        for (i, item) in items.iter().enumerate() {
            if i + 1 - start == ITEMS_PER_CHUNK || self.ends_after(item) {
                out.push(start..i + 1);
                start = i + 1;
            }
        }
        if start < items.len() {
            out.push(start..items.len());
        }
        out
    }
}

/// A stored item list's chunks, in order, looked up by item key.
///
/// Chunk `k` *covers* the keys from its first key up to (not including)
/// the next chunk's first key; the last chunk covers every key from its
/// first on. Every item of the list is in the chunk covering its key.
#[derive(Clone, Debug, Default)]
pub struct ChunkIndex {
    chunks: Vec<ListChunk>,
}

impl ChunkIndex {
    /// The index of sorted chunks (`None` when their first keys are out of
    /// order: such a list cannot be searched).
    pub fn new(chunks: Vec<ListChunk>) -> Option<ChunkIndex> {
        in_order(chunks.iter().map(|c| &c.info)).then_some(ChunkIndex { chunks })
    }

    pub fn chunks(&self) -> &[ListChunk] {
        &self.chunks
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The chunk covering the key, `None` when it sorts before every chunk.
    pub fn locate(&self, folder: &str, id: &str) -> Option<usize> {
        let after = self.chunks.partition_point(|c| {
            key_cmp(&c.info.folder, &c.info.id, folder, id) != Ordering::Greater
        });
        after.checked_sub(1)
    }

    /// The chunks that can hold items of `folder`.
    pub fn folder_span(&self, folder: &str) -> Range<usize> {
        let start = self.locate(folder, "").unwrap_or(0);
        let end = self
            .chunks
            .partition_point(|c| c.info.folder.as_str() <= folder);
        start..end.max(start)
    }

    /// Whether chunk `k` covers (`folder`, `id`). (A key before chunk 0's
    /// first key is covered by no chunk.)
    pub fn covers(&self, k: usize, folder: &str, id: &str) -> bool {
        self.locate(folder, id) == Some(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(folder: &str, id: &str) -> ItemEntry {
        ItemEntry {
            id: id.into(),
            folder_id: folder.into(),
            change_key: "ck".into(),
            item_type: "IPM.Note".into(),
            size: 7,
            created: None,
            modified: None,
            subject: None,
            sender: None,
            categories: Vec::new(),
            blob: BlobId([1; 32]),
        }
    }

    fn items(folder: &str, n: usize, tag: &str) -> Vec<ItemEntry> {
        (0..n)
            .map(|i| entry(folder, &format!("{tag}{i:06}")))
            .collect()
    }

    fn chunk(folder: &str, id: &str) -> ListChunk {
        ListChunk {
            blob: BlobId([0; 32]),
            info: ChunkInfo {
                folder: folder.into(),
                id: id.into(),
                count: 1,
                size: 1,
            },
        }
    }

    #[test]
    fn split_covers_everything_in_order_and_respects_the_maximum() {
        let b = Boundaries::new(&[7; 32]);
        let list = items("F", 20_000, "i");
        let ranges = b.split(&list);
        assert_eq!(ranges.first().unwrap().start, 0);
        assert_eq!(ranges.last().unwrap().end, list.len());
        for w in ranges.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert!(
            ranges
                .iter()
                .all(|r| !r.is_empty() && r.len() <= ITEMS_PER_CHUNK)
        );
        // About 20,000 / 2048 chunks, fewer where the maximum cuts (the hash
        // is random: within a wide margin).
        assert!((5..=25).contains(&ranges.len()), "{} chunks", ranges.len());
        assert!(b.split(&[]).is_empty());
    }

    #[test]
    fn an_unending_run_is_cut_at_the_maximum() {
        // A key for which no item of the list is a boundary is not practical
        // to find; a list of one repeated item has no boundary unless that
        // item is one, so pick such an item.
        let b = Boundaries::new(&[9; 32]);
        let item = (0..)
            .map(|i| entry("F", &format!("x{i}")))
            .find(|e| !b.ends_after(e))
            .unwrap();
        let list = vec![item; ITEMS_PER_CHUNK * 2 + 5];
        let lens: Vec<usize> = b.split(&list).iter().map(|r| r.len()).collect();
        assert_eq!(lens, [ITEMS_PER_CHUNK, ITEMS_PER_CHUNK, 5]);
    }

    #[test]
    fn changes_leave_the_other_chunks_as_they_were() {
        let b = Boundaries::new(&[3; 32]);
        let before = items("F", 60_000, "i");
        let cut = |l: &[ItemEntry]| -> Vec<Vec<String>> {
            b.split(l)
                .into_iter()
                .map(|r| l[r].iter().map(|e| e.id.clone()).collect())
                .collect()
        };
        let old = cut(&before);
        // Remove 3 items, add 2, in the middle.
        let mut after = before.clone();
        after.drain(20_000..20_003);
        after.push(entry("F", "i040000a"));
        after.push(entry("F", "i040000b"));
        after.sort_by(item_order);
        let new = cut(&after);
        let kept = new.iter().filter(|c| old.contains(c)).count();
        // At most the chunks holding the changes (and a neighbour when a
        // boundary item went, or the maximum had cut) differ.
        assert!(kept + 6 >= new.len(), "{kept} of {} chunks kept", new.len());
        assert!(new.len() > 20);
    }

    #[test]
    fn boundaries_depend_on_the_key() {
        let list = items("F", 3_000, "i");
        let a = Boundaries::new(&[1; 32]).split(&list);
        let b = Boundaries::new(&[2; 32]).split(&list);
        assert_ne!(a, b);
        assert_eq!(a, Boundaries::new(&[1; 32]).split(&list));
    }

    #[test]
    fn locate_and_folder_span() {
        let index = ChunkIndex::new(vec![
            chunk("A", "a5"),
            chunk("A", "a9"),
            chunk("B", "b3"),
            chunk("D", "d1"),
        ])
        .unwrap();
        assert_eq!(index.locate("A", "a1"), None);
        assert_eq!(index.locate("A", "a5"), Some(0));
        assert_eq!(index.locate("A", "a8"), Some(0));
        assert_eq!(index.locate("A", "a9"), Some(1));
        assert_eq!(index.locate("B", "b0"), Some(1));
        assert_eq!(index.locate("C", "c1"), Some(2));
        assert_eq!(index.locate("Z", "z"), Some(3));
        assert!(index.covers(2, "C", "x"));
        assert!(!index.covers(2, "D", "d1"));
        assert_eq!(index.folder_span("A"), 0..2);
        assert_eq!(index.folder_span("B"), 1..3);
        assert_eq!(index.folder_span("C"), 2..3);
        // Items of D before d1 would sort into chunk 2.
        assert_eq!(index.folder_span("D"), 2..4);
        assert_eq!(index.folder_span("0"), 0..0);
        assert_eq!(index.folder_span("E"), 3..4);
        assert!(ChunkIndex::new(vec![chunk("B", "b"), chunk("A", "a")]).is_none());
    }
}
