//! The payload of an `index/<id>` file: JSON in repository format 1, binary
//! in format 2 (docs/REPOSITORY.md, "Index"). Every command that opens a
//! repository reads every index file; a binary entry is read without
//! parsing text.

use crate::itemlist::Reader;
use crate::pack::{ENTRY_LEN, PackEntry, parse_entry, put_entry};
use crate::repo::{IndexFile, IndexPack};

const MAGIC: &[u8; 4] = b"GBIX";
const BINARY_VERSION: u8 = 1;

/// Encodes `file` the way repository format `file.version` stores index
/// files.
pub(crate) fn encode(file: &IndexFile) -> Vec<u8> {
    if file.version < 2 {
        return serde_json::to_vec(file).expect("index serializes");
    }
    let entries: usize = file.packs.iter().map(|p| p.blobs.len()).sum();
    let mut out = Vec::with_capacity(9 + file.packs.len() * 36 + entries * ENTRY_LEN);
    out.extend_from_slice(MAGIC);
    out.push(BINARY_VERSION);
    out.extend_from_slice(&(file.packs.len() as u32).to_le_bytes());
    for p in &file.packs {
        let mut id = [0u8; 32];
        hex::decode_to_slice(&p.id, &mut id).expect("pack ids are 64 hex digits");
        out.extend_from_slice(&id);
        out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
        for e in &p.blobs {
            put_entry(&mut out, e);
        }
    }
    out
}

/// Decodes an index file's payload, binary or JSON; the error says what is
/// wrong with it.
pub(crate) fn decode(plain: &[u8]) -> Result<IndexFile, String> {
    let file = if plain.starts_with(MAGIC) {
        decode_binary(plain)?
    } else {
        let file: IndexFile =
            serde_json::from_slice(plain).map_err(|e| format!("not valid JSON: {e}"))?;
        if let Some(p) = file.packs.iter().find(|p| !is_pack_id(&p.id)) {
            return Err(format!("'{}' is not a pack id", p.id));
        }
        file
    };
    Ok(file)
}

fn is_pack_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn decode_binary(plain: &[u8]) -> Result<IndexFile, String> {
    let mut r = Reader::new(&plain[MAGIC.len()..]);
    let version = r.take(1)?[0];
    if version != BINARY_VERSION {
        return Err(format!(
            "its binary version {version} is not {BINARY_VERSION}"
        ));
    }
    let u32_at = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize;
    let pack_count = u32_at(r.take(4)?);
    let mut packs = Vec::with_capacity(pack_count.min(plain.len() / 36));
    let mut n = 0;
    for _ in 0..pack_count {
        let id = hex::encode(r.take(32)?);
        let count = u32_at(r.take(4)?);
        let bytes = count
            .checked_mul(ENTRY_LEN)
            .ok_or("a blob count overflows")?;
        let blobs = r
            .take(bytes)?
            .chunks_exact(ENTRY_LEN)
            .map(|c| {
                n += 1;
                parse_entry(c, n - 1)
            })
            .collect::<Result<Vec<PackEntry>, String>>()?;
        packs.push(IndexPack { id, blobs });
    }
    if r.remaining() != 0 {
        return Err(format!("{} bytes follow its last pack", r.remaining()));
    }
    Ok(IndexFile { version: 2, packs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::BlobId;
    use crate::pack::BlobKind;

    fn file() -> IndexFile {
        let pack = |n: u8, blobs: usize| IndexPack {
            id: hex::encode([n; 32]),
            blobs: (0..blobs)
                .map(|i| PackEntry {
                    id: BlobId([i as u8 ^ n; 32]),
                    kind: if i % 2 == 0 {
                        BlobKind::Data
                    } else {
                        BlobKind::Tree
                    },
                    offset: i as u64 * 100,
                    length: 100,
                    raw_length: u64::MAX - i as u64,
                })
                .collect(),
        };
        IndexFile {
            version: 2,
            packs: vec![pack(1, 3), pack(2, 0), pack(0xab, 5)],
        }
    }

    fn same(a: &IndexFile, b: &IndexFile) -> bool {
        a.packs.len() == b.packs.len()
            && a.packs
                .iter()
                .zip(&b.packs)
                .all(|(x, y)| x.id == y.id && x.blobs == y.blobs)
    }

    #[test]
    fn both_formats_round_trip() {
        let f = file();
        let bin = encode(&f);
        assert!(bin.starts_with(b"GBIX"));
        assert_eq!(bin.len(), 9 + 3 * 36 + 8 * ENTRY_LEN);
        assert!(same(&decode(&bin).unwrap(), &f));
        let json = encode(&IndexFile {
            version: 1,
            packs: file().packs,
        });
        assert!(json.starts_with(b"{"));
        assert!(same(&decode(&json).unwrap(), &f));
    }

    #[test]
    fn damaged_files_are_refused() {
        let bin = encode(&file());
        for n in 4..bin.len() {
            assert!(decode(&bin[..n]).is_err(), "a {n}-byte prefix was accepted");
        }
        let mut longer = bin.clone();
        longer.push(0);
        assert!(decode(&longer).unwrap_err().contains("1 bytes follow"));
        let mut kind = bin.clone();
        kind[9 + 36 + 32] = 7;
        assert!(decode(&kind).unwrap_err().contains("unknown blob type 7"));
        let mut version = bin.clone();
        version[4] = 3;
        assert!(decode(&version).unwrap_err().contains("binary version 3"));
        let huge = [&b"GBIX\x01"[..], &u32::MAX.to_le_bytes()].concat();
        assert!(decode(&huge).unwrap_err().contains("ends early"));
        assert!(
            decode(b"{\"version\":1,\"packs\":[{\"id\":\"../x\",\"blobs\":[]}]}")
                .unwrap_err()
                .contains("not a pack id")
        );
        assert!(decode(b"[1,2").unwrap_err().contains("not valid JSON"));
    }
}
