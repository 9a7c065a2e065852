//! Helpers shared by the fuzz targets: deterministic input splitting and an
//! owned, split-independent form of the lexer's token stream.

use fts::NamedProp;
use fts::lex::Token;

/// A tiny deterministic PRNG (xorshift64*) seeded from fuzz input bytes, so a
/// crashing input always reproduces the same chunking.
pub struct Rng(u64);

impl Rng {
    /// Seeds from up to 8 bytes (any seed, including zero, is usable).
    pub fn from_bytes(seed: &[u8]) -> Rng {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for &b in seed.iter().take(8) {
            s = (s ^ b as u64).wrapping_mul(0x100_0000_01B3);
        }
        Rng(s | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A chunk size biased to the small sizes that cut tags, lengths, GUIDs and
    /// UTF-16 units, with the occasional empty and large chunk.
    pub fn chunk_len(&mut self) -> usize {
        let r = self.next_u64();
        match r % 16 {
            0 => 0,
            1..=10 => 1 + (r >> 8) as usize % 8,
            11..=14 => 1 + (r >> 8) as usize % 64,
            _ => 1 + (r >> 8) as usize % 4096,
        }
    }
}

/// Cuts `data` into consecutive slices (some empty) whose sizes come from `rng`.
pub fn split<'a>(data: &'a [u8], rng: &mut Rng) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let n = rng.chunk_len().min(data.len() - pos);
        out.push(&data[pos..pos + n]);
        pos += n;
    }
    out
}

/// Splits fuzz input into a control prefix of `n` bytes and the payload.
pub fn control(data: &[u8], n: usize) -> (&[u8], &[u8]) {
    data.split_at(n.min(data.len()))
}

/// A token with owned value bytes; consecutive value chunks are merged, so the
/// sequence does not depend on where the input was split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedToken {
    Marker(u32),
    PropStart {
        tag: u32,
        named: Option<NamedProp>,
        len_or_count: Option<u32>,
    },
    MvElement {
        len: u32,
    },
    Value(Vec<u8>),
    PropEnd,
}

/// Collects tokens into [`OwnedToken`]s, merging adjacent value chunks.
/// Panics on an empty `ValueChunk` (the lexer promises never to emit one).
#[derive(Default)]
pub struct TokenLog(pub Vec<OwnedToken>);

impl TokenLog {
    pub fn push(&mut self, t: Token<'_>) {
        let owned = match t {
            Token::Marker(m) => OwnedToken::Marker(m),
            Token::PropStart {
                tag,
                named,
                len_or_count,
            } => OwnedToken::PropStart {
                tag,
                named,
                len_or_count,
            },
            Token::MvElement { len } => OwnedToken::MvElement { len },
            Token::ValueChunk(c) => {
                assert!(!c.is_empty(), "lexer emitted an empty ValueChunk");
                if let Some(OwnedToken::Value(v)) = self.0.last_mut() {
                    v.extend_from_slice(c);
                    return;
                }
                OwnedToken::Value(c.to_vec())
            }
            Token::PropEnd => OwnedToken::PropEnd,
        };
        self.0.push(owned);
    }
}
