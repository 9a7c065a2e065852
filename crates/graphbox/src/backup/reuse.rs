//! The parent snapshot's item list, rewritten only where this run's
//! changes are.
//!
//! A snapshot's item list is stored in chunks cut at content-defined
//! boundaries, and its snapshot file records each chunk's first key
//! (`backup::chunks`). The item deltas name every key a run changes (changed
//! and removed items, per folder; whole folders when a delta starts over or
//! a folder went away), so the chunks covering none of them hold exactly
//! the items the new snapshot carries over unchanged: they are referenced
//! as they are, not applied, encoded, compressed, encrypted and stored
//! again. (They are still read, alongside the delta requests: on the
//! mailboxes measured, reading only the touched chunks after the deltas
//! cost more than it saved when changes were spread over the whole list;
//! docs/BENCHMARKS.md.)

use std::cmp::Ordering;

use backup::chunks::key_cmp;
use backup::{ChunkIndex, ItemEntry, ListPart};

/// Which chunks of the parent's list hold keys that changed: the chunk
/// covering each of `keys` (folder id, item id) and every chunk that can
/// hold items of one of `whole_folders`.
pub(super) fn touched<'a>(
    index: &ChunkIndex,
    keys: impl IntoIterator<Item = (&'a str, &'a str)>,
    whole_folders: impl IntoIterator<Item = &'a str>,
) -> Vec<bool> {
    let mut dirty = vec![false; index.len()];
    for (folder, id) in keys {
        if let Some(k) = index.locate(folder, id) {
            dirty[k] = true;
        }
    }
    for folder in whole_folders {
        for k in index.folder_span(folder) {
            dirty[k] = true;
        }
    }
    dirty
}

/// The untouched chunks that some of `entries` (in item order) would fall
/// into. Empty when the deltas named every key the run changed, which they
/// do; otherwise those chunks must be read and their items added.
pub(super) fn misplaced(index: &ChunkIndex, dirty: &[bool], entries: &[ItemEntry]) -> Vec<usize> {
    // One walk over both sorted lists: the chunk covering each entry is the
    // last one whose first key is not greater than the entry's.
    let chunks = index.chunks();
    let mut out: Vec<usize> = Vec::new();
    let mut covering: Option<usize> = None;
    for e in entries {
        let mut next = covering.map_or(0, |k| k + 1);
        while let Some(c) = chunks.get(next)
            && key_cmp(&c.info.folder, &c.info.id, &e.folder_id, &e.id) != Ordering::Greater
        {
            covering = Some(next);
            next += 1;
        }
        if let Some(k) = covering
            && !dirty[k]
            && out.last() != Some(&k)
        {
            out.push(k);
        }
    }
    out
}

/// The new list: `entries` (the touched chunks' items as this run leaves
/// them, and the new ones, in item order) with the untouched chunks
/// between them, where they sort. [`misplaced`] must be empty.
pub(super) fn assemble(
    index: &ChunkIndex,
    dirty: &[bool],
    entries: Vec<ItemEntry>,
) -> Vec<ListPart> {
    if dirty.iter().all(|d| *d) {
        // Every chunk touched (changes spread over the list): nothing to
        // interleave, and the entries are not moved into new lists.
        return vec![ListPart::Items(entries)];
    }
    let mut parts = Vec::new();
    let mut pending = Vec::new();
    let mut entries = entries.into_iter().peekable();
    for (chunk, _) in index.chunks().iter().zip(dirty).filter(|(_, d)| !**d) {
        while let Some(e) = entries.next_if(|e| {
            key_cmp(&e.folder_id, &e.id, &chunk.info.folder, &chunk.info.id) == Ordering::Less
        }) {
            pending.push(e);
        }
        if !pending.is_empty() {
            parts.push(ListPart::Items(std::mem::take(&mut pending)));
        }
        parts.push(ListPart::Chunk(chunk.clone()));
    }
    pending.extend(entries);
    if !pending.is_empty() {
        parts.push(ListPart::Items(pending));
    }
    parts
}

/// How many items `parts` hold.
pub(super) fn count(parts: &[ListPart]) -> usize {
    parts
        .iter()
        .map(|p| match p {
            ListPart::Items(items) => items.len(),
            ListPart::Chunk(c) => c.info.count as usize,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup::{BlobId, ChunkInfo, ListChunk};

    fn chunk(folder: &str, id: &str, count: u64) -> ListChunk {
        ListChunk {
            blob: BlobId([count as u8; 32]),
            info: ChunkInfo {
                folder: folder.into(),
                id: id.into(),
                count,
                size: 0,
            },
        }
    }

    fn entry(folder: &str, id: &str) -> ItemEntry {
        ItemEntry {
            id: id.into(),
            folder_id: folder.into(),
            change_key: "1".into(),
            item_type: "IPM.Note".into(),
            size: 1,
            created: None,
            modified: None,
            subject: None,
            sender: None,
            categories: Vec::new(),
            blob: BlobId([0; 32]),
        }
    }

    /// Chunks: 0 = A/a10.., 1 = A/a50.., 2 = B/b10.., 3 = C/c10..
    fn index() -> ChunkIndex {
        ChunkIndex::new(vec![
            chunk("A", "a10", 4),
            chunk("A", "a50", 5),
            chunk("B", "b10", 6),
            chunk("C", "c10", 7),
        ])
        .unwrap()
    }

    fn shape(parts: &[ListPart]) -> Vec<String> {
        parts
            .iter()
            .map(|p| match p {
                ListPart::Items(items) => items
                    .iter()
                    .map(|e| format!("{}/{}", e.folder_id, e.id))
                    .collect::<Vec<_>>()
                    .join(","),
                ListPart::Chunk(c) => format!("[{}/{}]", c.info.folder, c.info.id),
            })
            .collect()
    }

    #[test]
    fn touched_marks_the_chunks_covering_keys_and_folders() {
        let index = index();
        let dirty = touched(&index, [("A", "a60"), ("A", "a01")], []);
        // a01 sorts before every chunk: nothing to read for it.
        assert_eq!(dirty, [false, true, false, false]);
        let dirty = touched(&index, [], ["B"]);
        // Items of B before b10 would be in chunk 1.
        assert_eq!(dirty, [false, true, true, false]);
        let dirty = touched(&index, [("Z", "z")], ["C"]);
        assert_eq!(dirty, [false, false, true, true]);
    }

    #[test]
    fn assemble_puts_entries_between_the_untouched_chunks() {
        let index = index();
        let dirty = [false, true, false, false];
        // Chunk 1's items as the run leaves them, and a new first item.
        let entries = vec![entry("A", "a01"), entry("A", "a50"), entry("A", "a70")];
        assert!(misplaced(&index, &dirty, &entries).is_empty());
        let parts = assemble(&index, &dirty, entries);
        assert_eq!(
            shape(&parts),
            ["A/a01", "[A/a10]", "A/a50,A/a70", "[B/b10]", "[C/c10]"]
        );
        assert_eq!(count(&parts), 1 + 4 + 2 + 6 + 7);
        // Everything of chunk 1 removed: the untouched chunks follow each other.
        let parts = assemble(&index, &dirty, vec![]);
        assert_eq!(shape(&parts), ["[A/a10]", "[B/b10]", "[C/c10]"]);
        // New items after the last chunk's range need it read.
        let late = vec![entry("D", "d1")];
        assert_eq!(misplaced(&index, &dirty, &late), [3]);
        let dirty = [false, true, false, true];
        let parts = assemble(&index, &dirty, vec![entry("C", "c10"), entry("D", "d1")]);
        assert_eq!(shape(&parts), ["[A/a10]", "[B/b10]", "C/c10,D/d1"]);
        // Everything touched: the entries as they are.
        let parts = assemble(&index, &[true; 4], vec![entry("A", "a1"), entry("D", "d1")]);
        assert_eq!(shape(&parts), ["A/a1,D/d1"]);
    }

    #[test]
    fn misplaced_names_each_untouched_chunk_once() {
        let index = index();
        let entries = vec![entry("A", "a11"), entry("A", "a12"), entry("B", "b99")];
        assert_eq!(misplaced(&index, &[false; 4], &entries), [0, 2]);
        assert!(misplaced(&index, &[true, false, true, false], &entries).is_empty());
    }
}
