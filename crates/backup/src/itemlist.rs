//! The binary encoding of a snapshot's item-list chunk (repository format 2;
//! docs/REPOSITORY.md, "Item lists"). Format 1 stored each chunk as a JSON
//! array, which every incremental run parsed and wrote again in full: for a
//! 10,000-item mailbox that was most of the run's time outside the key
//! derivation and the network.
//!
//! A chunk is self-contained: its folder ids and item types are listed once
//! in two tables that the items refer to by position; integers are LEB128
//! varints; blob ids are their 32 bytes.

use std::collections::HashMap;

use time::{OffsetDateTime, UtcOffset};

use crate::crypto::BlobId;
use crate::snapshot::ItemEntry;

const MAGIC: &[u8; 4] = b"GBIL";
const CHUNK_VERSION: u8 = 1;
/// The fewest bytes an item can take (id, folder, change key, type, size,
/// two times, subject, sender, categories: one byte each; the blob id):
/// bounds the allocation a hostile item count can ask for.
const MIN_ITEM_LEN: usize = 10 + 32;

/// Encodes `items` as one chunk the way repository format `format` stores
/// it (format 1: a JSON array).
pub(crate) fn encode(items: &[ItemEntry], format: u32) -> Vec<u8> {
    if format < 2 {
        return serde_json::to_vec(items).expect("items serialize");
    }
    encode_binary(items)
}

/// Decodes a chunk of repository format `format`; the error says what is
/// wrong with it.
pub(crate) fn decode(data: &[u8], format: u32) -> Result<Vec<ItemEntry>, String> {
    if format < 2 {
        return serde_json::from_slice(data).map_err(|e| format!("not valid JSON: {e}"));
    }
    decode_binary(data)
}

fn encode_binary(items: &[ItemEntry]) -> Vec<u8> {
    let mut folders: Table = Table::default();
    let mut types: Table = Table::default();
    let refs: Vec<(u32, u32)> = items
        .iter()
        .map(|i| (folders.intern(&i.folder_id), types.intern(&i.item_type)))
        .collect();
    let body: usize = items
        .iter()
        .map(|i| {
            i.id.len()
                + i.change_key.len()
                + i.subject.as_ref().map_or(0, String::len)
                + i.sender.as_ref().map_or(0, String::len)
                + i.categories.iter().map(|c| c.len() + 2).sum::<usize>()
                + 64
        })
        .sum();
    let mut out = Vec::with_capacity(16 + folders.bytes + types.bytes + body);
    out.extend_from_slice(MAGIC);
    out.push(CHUNK_VERSION);
    put_uint(&mut out, items.len() as u64);
    folders.write(&mut out);
    types.write(&mut out);
    for (item, (folder, kind)) in items.iter().zip(refs) {
        put_str(&mut out, &item.id);
        put_uint(&mut out, u64::from(folder));
        put_str(&mut out, &item.change_key);
        put_uint(&mut out, u64::from(kind));
        put_uint(&mut out, item.size);
        put_time(&mut out, item.created);
        put_time(&mut out, item.modified);
        put_opt_str(&mut out, item.subject.as_deref());
        put_opt_str(&mut out, item.sender.as_deref());
        put_uint(&mut out, item.categories.len() as u64);
        for c in &item.categories {
            put_str(&mut out, c);
        }
        out.extend_from_slice(&item.blob.0);
    }
    out
}

fn decode_binary(data: &[u8]) -> Result<Vec<ItemEntry>, String> {
    let mut r = Reader::new(data);
    if r.take(4)? != MAGIC {
        return Err("it does not start with GBIL".into());
    }
    let version = r.byte()?;
    if version != CHUNK_VERSION {
        return Err(format!(
            "its chunk version {version} is not {CHUNK_VERSION}"
        ));
    }
    let count = r.len("item count")?;
    let folders = r.table("folder")?;
    let types = r.table("item type")?;
    let mut items = Vec::with_capacity(count.min(r.remaining() / MIN_ITEM_LEN));
    for n in 0..count {
        let item = r
            .item(&folders, &types)
            .map_err(|e| format!("item {n}: {e}"))?;
        items.push(item);
    }
    if r.remaining() != 0 {
        return Err(format!("{} bytes follow its last item", r.remaining()));
    }
    Ok(items)
}

/// Distinct strings in order of first use.
#[derive(Default)]
struct Table<'a> {
    index: HashMap<&'a str, u32>,
    order: Vec<&'a str>,
    bytes: usize,
}

impl<'a> Table<'a> {
    fn intern(&mut self, s: &'a str) -> u32 {
        if let Some(&n) = self.index.get(s) {
            return n;
        }
        let n = self.order.len() as u32;
        self.index.insert(s, n);
        self.order.push(s);
        self.bytes += s.len() + 2;
        n
    }

    fn write(&self, out: &mut Vec<u8>) {
        put_uint(out, self.order.len() as u64);
        for s in &self.order {
            put_str(out, s);
        }
    }
}

fn put_uint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_sint(out: &mut Vec<u8>, v: i64) {
    put_uint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// 0 for none, else the length plus one, then the bytes.
fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            put_uint(out, s.len() as u64 + 1);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// A byte 0 for none; else 1, the Unix time in seconds (zigzag), the
/// nanoseconds and the UTC offset in seconds (zigzag).
fn put_time(out: &mut Vec<u8>, t: Option<OffsetDateTime>) {
    match t {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            put_sint(out, t.unix_timestamp());
            put_uint(out, u64::from(t.nanosecond()));
            put_sint(out, i64::from(t.offset().whole_seconds()));
        }
    }
}

/// Reads a byte string front to back (the binary index files use it too).
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err("it ends early".into());
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err("a number overflows 64 bits".into());
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a number overflows 64 bits".into())
    }

    fn sint(&mut self) -> Result<i64, String> {
        let u = self.uint()?;
        Ok((u >> 1) as i64 ^ -((u & 1) as i64))
    }

    /// A count or length, which cannot exceed what is left to read.
    fn len(&mut self, what: &str) -> Result<usize, String> {
        let v = self.uint()?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v <= self.remaining())
            .ok_or_else(|| format!("its {what} {v} exceeds the chunk"))
    }

    fn str(&mut self, what: &str) -> Result<String, String> {
        let n = self.len(what)?;
        self.utf8(n, what)
    }

    fn utf8(&mut self, n: usize, what: &str) -> Result<String, String> {
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| format!("its {what} is not UTF-8"))
    }

    fn opt_str(&mut self, what: &str) -> Result<Option<String>, String> {
        match self.len(what)? {
            0 => Ok(None),
            n => self.utf8(n - 1, what).map(Some),
        }
    }

    fn time(&mut self, what: &str) -> Result<Option<OffsetDateTime>, String> {
        match self.byte()? {
            0 => Ok(None),
            1 => {
                let secs = self.sint()?;
                let nanos = self.uint()?;
                let offset = self.sint()?;
                let bad = || format!("its {what} time is out of range");
                let offset = i32::try_from(offset)
                    .ok()
                    .and_then(|o| UtcOffset::from_whole_seconds(o).ok())
                    .ok_or_else(bad)?;
                let t = OffsetDateTime::from_unix_timestamp(secs)
                    .ok()
                    .and_then(|t| t.replace_nanosecond(u32::try_from(nanos).ok()?).ok())
                    .and_then(|t| t.checked_to_offset(offset))
                    .ok_or_else(bad)?;
                Ok(Some(t))
            }
            b => Err(format!("its {what} time has the tag {b}")),
        }
    }

    fn table(&mut self, what: &str) -> Result<Vec<String>, String> {
        let n = self.len(&format!("{what} count"))?;
        (0..n).map(|_| self.str(what)).collect()
    }

    fn pick(&mut self, table: &[String], what: &str) -> Result<String, String> {
        let n = self.uint()?;
        usize::try_from(n)
            .ok()
            .and_then(|n| table.get(n))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "its {what} number {n} is not in the table of {}",
                    table.len()
                )
            })
    }

    fn item(&mut self, folders: &[String], types: &[String]) -> Result<ItemEntry, String> {
        let id = self.str("id")?;
        let folder_id = self.pick(folders, "folder")?;
        let change_key = self.str("change key")?;
        let item_type = self.pick(types, "item type")?;
        let size = self.uint()?;
        let created = self.time("created")?;
        let modified = self.time("modified")?;
        let subject = self.opt_str("subject")?;
        let sender = self.opt_str("sender")?;
        let n = self.len("category count")?;
        let categories = (0..n)
            .map(|_| self.str("category"))
            .collect::<Result<Vec<_>, _>>()?;
        let blob = BlobId(self.take(32)?.try_into().expect("32 bytes"));
        Ok(ItemEntry {
            id,
            folder_id,
            change_key,
            item_type,
            size,
            created,
            modified,
            subject,
            sender,
            categories,
            blob,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(n: u64) -> ItemEntry {
        ItemEntry {
            id: format!("AAMkAGI2{n}"),
            folder_id: format!("folder-{}", n % 3),
            change_key: format!("CQAAAB{n}"),
            item_type: if n.is_multiple_of(2) {
                "IPM.Note"
            } else {
                "IPM.Appointment"
            }
            .into(),
            size: n * 1000,
            created: Some(OffsetDateTime::from_unix_timestamp(1_700_000_000 + n as i64).unwrap()),
            modified: None,
            subject: Some(format!("Subject {n} — ünïcode")),
            sender: None,
            categories: vec!["Red".into(), String::new()],
            blob: BlobId([n as u8; 32]),
        }
    }

    #[test]
    fn round_trip_and_tables() {
        let items: Vec<ItemEntry> = (0..50).map(entry).collect();
        let data = encode_binary(&items);
        assert_eq!(decode_binary(&data).unwrap(), items);
        // Three folder ids and two item types are each stored once.
        let text = String::from_utf8_lossy(&data);
        assert_eq!(text.matches("folder-1").count(), 1);
        assert_eq!(text.matches("IPM.Appointment").count(), 1);
        assert_eq!(
            decode_binary(&encode_binary(&[])).unwrap(),
            Vec::<ItemEntry>::new()
        );
    }

    #[test]
    fn every_truncation_and_trailing_bytes_are_refused() {
        let data = encode_binary(&(0..3).map(entry).collect::<Vec<_>>());
        for n in 0..data.len() {
            assert!(
                decode_binary(&data[..n]).is_err(),
                "a {n}-byte prefix was accepted"
            );
        }
        let mut longer = data.clone();
        longer.push(0);
        assert_eq!(
            decode_binary(&longer).unwrap_err(),
            "1 bytes follow its last item"
        );
    }

    #[test]
    fn bad_chunks_name_the_problem() {
        let good = encode_binary(&[entry(1)]);
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(decode_binary(&magic).unwrap_err().contains("GBIL"));
        let mut version = good.clone();
        version[4] = 9;
        assert!(
            decode_binary(&version)
                .unwrap_err()
                .contains("chunk version 9")
        );
        // A huge item count is refused before anything is allocated for it.
        let mut count = b"GBIL\x01".to_vec();
        count.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(
            decode_binary(&count)
                .unwrap_err()
                .contains("exceeds the chunk")
        );
        // A folder number outside the table.
        let mut folder = b"GBIL\x01\x01\x00\x00".to_vec();
        folder.extend_from_slice(&[1, b'i', 5]);
        folder.resize(folder.len() + 60, 0);
        assert!(
            decode_binary(&folder)
                .unwrap_err()
                .contains("folder number 5 is not in the table of 0")
        );
        // Invalid UTF-8 in the id.
        let mut utf = b"GBIL\x01\x01\x01\x01f\x01\x01t".to_vec();
        utf.extend_from_slice(&[1, 0xff]);
        utf.resize(utf.len() + 60, 0);
        assert!(decode_binary(&utf).unwrap_err().contains("id is not UTF-8"));
    }

    #[test]
    fn times_out_of_range_are_refused() {
        let mut out = Vec::new();
        put_sint(&mut out, i64::MAX);
        put_uint(&mut out, 0);
        put_sint(&mut out, 0);
        let data = [&[1][..], &out].concat();
        let mut r = Reader::new(&data);
        assert!(r.time("created").unwrap_err().contains("out of range"));
        let mut out = vec![1];
        put_sint(&mut out, 0);
        put_uint(&mut out, 1_000_000_000);
        put_sint(&mut out, 0);
        let mut r = Reader::new(&out);
        assert!(r.time("created").is_err());
        let mut out = vec![1];
        put_sint(&mut out, 0);
        put_uint(&mut out, 0);
        put_sint(&mut out, 200_000);
        let mut r = Reader::new(&out);
        assert!(r.time("created").is_err());
        let mut r = Reader::new(&[7]);
        assert!(r.time("created").unwrap_err().contains("tag 7"));
    }

    #[test]
    fn varints_at_the_edges() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_uint(&mut out, v);
            assert_eq!(Reader::new(&out).uint().unwrap(), v);
        }
        for v in [0, -1, 1, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            put_sint(&mut out, v);
            assert_eq!(Reader::new(&out).sint().unwrap(), v);
        }
        // 10 bytes whose last one sets bits past the 64th.
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&over).uint().is_err());
        let long = [0x80; 11];
        assert!(Reader::new(&long).uint().is_err());
    }

    fn arb_time() -> impl Strategy<Value = Option<OffsetDateTime>> {
        proptest::option::of(
            (
                -62_000_000_000i64..250_000_000_000,
                0u32..1_000_000_000,
                -93_599i32..93_600,
            )
                .prop_map(|(s, n, o)| {
                    OffsetDateTime::from_unix_timestamp(s)
                        .unwrap()
                        .replace_nanosecond(n)
                        .unwrap()
                        .to_offset(UtcOffset::from_whole_seconds(o).unwrap())
                }),
        )
    }

    fn arb_item() -> impl Strategy<Value = ItemEntry> {
        (
            (
                ".{0,40}",
                "[a-c]{1,2}",
                ".{0,20}",
                "IPM\\.[A-Z]{1,2}",
                any::<u64>(),
            ),
            (
                arb_time(),
                arb_time(),
                proptest::option::of(".{0,30}"),
                proptest::option::of(".{0,30}"),
            ),
            (
                proptest::collection::vec(".{0,10}", 0..4),
                any::<[u8; 32]>(),
            ),
        )
            .prop_map(
                |(
                    (id, folder_id, change_key, item_type, size),
                    (created, modified, subject, sender),
                    (categories, blob),
                )| {
                    ItemEntry {
                        id,
                        folder_id,
                        change_key,
                        item_type,
                        size,
                        created,
                        modified,
                        subject,
                        sender,
                        categories,
                        blob: BlobId(blob),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn any_list_round_trips(items in proptest::collection::vec(arb_item(), 0..40)) {
            let back = decode_binary(&encode_binary(&items)).unwrap();
            // Times compare as instants and offsets: the same value.
            prop_assert_eq!(back.len(), items.len());
            for (a, b) in back.iter().zip(&items) {
                prop_assert_eq!(a, b);
                prop_assert_eq!(a.created.map(|t| t.offset()), b.created.map(|t| t.offset()));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut with_magic = b"GBIL\x01".to_vec();
            with_magic.extend_from_slice(&data);
            let _ = decode_binary(&with_magic);
            let _ = decode_binary(&data);
        }
    }
}
