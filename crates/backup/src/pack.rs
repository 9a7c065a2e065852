//! Pack files: sealed blobs one after another, then a sealed header listing
//! them, then the header's length (u32, little-endian). See
//! docs/REPOSITORY.md, "Pack files".

use bytes::Bytes;
use chacha20poly1305::XChaCha20Poly1305;
use serde::{Deserialize, Serialize};

use crate::crypto::{self, BlobId, aad};

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// An item's content (its FTS bytes).
    Data,
    /// Repository metadata: a chunk of a snapshot's item list.
    Tree,
}

impl BlobKind {
    fn to_byte(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }
    fn from_byte(b: u8) -> Option<BlobKind> {
        match b {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// One blob in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    pub id: BlobId,
    pub kind: BlobKind,
    /// Where the sealed blob starts in the pack.
    pub offset: u64,
    /// Length of the sealed blob.
    pub length: u64,
    /// Length of the plaintext.
    pub raw_length: u64,
}

/// Size of one header entry: id, kind, offset, length, raw length.
pub const ENTRY_LEN: usize = 32 + 1 + 8 + 8 + 8;
const MAGIC: &[u8; 4] = b"GBPK";
const HEADER_VERSION: u8 = 1;

/// The 64-hex-digit id of a pack: BLAKE3 (unkeyed) of the whole pack file.
pub type PackId = String;

/// The key of pack `id`: `data/<first two hex digits>/<id>`.
pub fn pack_key(id: &str) -> String {
    format!("data/{}/{id}", &id[..2.min(id.len())])
}

/// Encodes a header's plaintext.
pub fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + entries.len() * ENTRY_LEN);
    out.extend_from_slice(MAGIC);
    out.push(HEADER_VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        put_entry(&mut out, e);
    }
    out
}

/// Appends one entry's `ENTRY_LEN` bytes (the layout pack headers and
/// binary index files share).
pub(crate) fn put_entry(out: &mut Vec<u8>, e: &PackEntry) {
    out.extend_from_slice(&e.id.0);
    out.push(e.kind.to_byte());
    out.extend_from_slice(&e.offset.to_le_bytes());
    out.extend_from_slice(&e.length.to_le_bytes());
    out.extend_from_slice(&e.raw_length.to_le_bytes());
}

/// Reads entry number `i` from its `ENTRY_LEN` bytes `c`.
pub(crate) fn parse_entry(c: &[u8], i: usize) -> Result<PackEntry, String> {
    let u64_at = |o: usize| u64::from_le_bytes(c[o..o + 8].try_into().expect("8 bytes"));
    let kind = BlobKind::from_byte(c[32])
        .ok_or_else(|| format!("entry {i} has unknown blob type {}", c[32]))?;
    Ok(PackEntry {
        id: BlobId(c[..32].try_into().expect("32 bytes")),
        kind,
        offset: u64_at(33),
        length: u64_at(41),
        raw_length: u64_at(49),
    })
}

/// Decodes a header's plaintext, checking that every blob lies within the
/// first `data_len` bytes of the pack and that blobs do not overlap.
pub fn decode_header(plain: &[u8], data_len: u64) -> Result<Vec<PackEntry>, String> {
    if plain.len() < 9 || &plain[..4] != MAGIC {
        return Err("the header does not start with GBPK".into());
    }
    if plain[4] != HEADER_VERSION {
        return Err(format!(
            "header version {} is not supported (1 is)",
            plain[4]
        ));
    }
    let count = u32::from_le_bytes(plain[5..9].try_into().expect("4 bytes")) as usize;
    let body = &plain[9..];
    if body.len() != count * ENTRY_LEN {
        return Err(format!(
            "the header announces {count} blobs but holds {} bytes of entries ({} expected)",
            body.len(),
            count * ENTRY_LEN
        ));
    }
    let mut entries = Vec::with_capacity(count);
    let mut end = 0u64;
    for (i, c) in body.chunks_exact(ENTRY_LEN).enumerate() {
        let e = parse_entry(c, i)?;
        let stop = e.offset.checked_add(e.length).ok_or("entry overflows")?;
        if e.offset < end || stop > data_len || e.length < crypto::OVERHEAD as u64 {
            return Err(format!(
                "entry {i} (blob {}) at {}..{stop} overlaps another blob or lies outside the \
                 {data_len} data bytes",
                e.id, e.offset
            ));
        }
        end = stop;
        entries.push(e);
    }
    Ok(entries)
}

/// A pack being filled.
#[derive(Default)]
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    pub fn with_capacity(n: usize) -> PackBuilder {
        PackBuilder {
            buf: Vec::with_capacity(n),
            entries: Vec::new(),
        }
    }

    /// A pack of one sealed blob, reusing its buffer (no copy).
    pub fn single(id: BlobId, kind: BlobKind, sealed: Vec<u8>, raw_length: u64) -> PackBuilder {
        let e = PackEntry {
            id,
            kind,
            offset: 0,
            length: sealed.len() as u64,
            raw_length,
        };
        PackBuilder {
            buf: sealed,
            entries: vec![e],
        }
    }

    /// Appends a sealed blob.
    pub fn add(&mut self, id: BlobId, kind: BlobKind, sealed: &[u8], raw_length: u64) -> PackEntry {
        let e = PackEntry {
            id,
            kind,
            offset: self.buf.len() as u64,
            length: sealed.len() as u64,
            raw_length,
        };
        self.buf.extend_from_slice(sealed);
        self.entries.push(e);
        e
    }

    /// Bytes the buffer holds without growing.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sealed blob `e` (which must have been added here).
    pub fn slice(&self, e: &PackEntry) -> &[u8] {
        &self.buf[e.offset as usize..(e.offset + e.length) as usize]
    }

    /// Seals the header and appends it: the pack's id, bytes and entries.
    pub fn finish(mut self, cipher: &XChaCha20Poly1305) -> (PackId, Bytes, Vec<PackEntry>) {
        let header = crypto::seal(cipher, aad::PACK_HEADER, &encode_header(&self.entries), 0);
        self.buf.extend_from_slice(&header);
        self.buf
            .extend_from_slice(&(header.len() as u32).to_le_bytes());
        let id = blake3::hash(&self.buf).to_hex().to_string();
        (id, Bytes::from(self.buf), self.entries)
    }
}

/// Splits a whole pack into its data part and header entries.
pub fn read_header(cipher: &XChaCha20Poly1305, pack: &[u8]) -> Result<Vec<PackEntry>, String> {
    if pack.len() < 4 {
        return Err(format!("it is {} bytes, too short for a pack", pack.len()));
    }
    let hlen = u32::from_le_bytes(pack[pack.len() - 4..].try_into().expect("4 bytes")) as usize;
    let Some(start) = (pack.len() - 4).checked_sub(hlen) else {
        return Err(format!(
            "its trailer announces a {hlen}-byte header but the pack is only {} bytes (truncated?)",
            pack.len()
        ));
    };
    let plain = crypto::open(cipher, aad::PACK_HEADER, &pack[start..pack.len() - 4])
        .map_err(|e| format!("its header does not open: {e}"))?;
    decode_header(&plain, start as u64)
}
