//! The pack header format: encode/decode round trips, and bad headers are
//! rejected without panicking.

use backup::BlobId;
use backup::pack::{BlobKind, ENTRY_LEN, PackEntry, decode_header, encode_header};
use proptest::prelude::*;

fn entries_strategy() -> impl Strategy<Value = Vec<(u8, [u8; 32], u16, u32)>> {
    prop::collection::vec(
        (0u8..2, any::<[u8; 32]>(), 0u16..1000, 41u32..100_000),
        0..40,
    )
}

proptest! {
    #[test]
    fn header_round_trips(raw in entries_strategy()) {
        let mut off = 0u64;
        let entries: Vec<PackEntry> = raw
            .iter()
            .map(|(k, id, gap, len)| {
                off += u64::from(*gap);
                let e = PackEntry {
                    id: BlobId(*id),
                    kind: if *k == 0 { BlobKind::Data } else { BlobKind::Tree },
                    offset: off,
                    length: u64::from(*len),
                    raw_length: u64::from(*len) * 3,
                };
                off += u64::from(*len);
                e
            })
            .collect();
        let enc = encode_header(&entries);
        prop_assert_eq!(enc.len(), 9 + entries.len() * ENTRY_LEN);
        prop_assert_eq!(decode_header(&enc, off).unwrap(), entries.clone());
        if off > 0 {
            // A pack shorter than its blobs is rejected.
            prop_assert!(decode_header(&enc, off - 1).is_err());
        }
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), len in any::<u64>()) {
        let _ = decode_header(&bytes, len);
        let mut with_magic = b"GBPK\x01".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = decode_header(&with_magic, len);
    }
}

#[test]
fn overlapping_entries_are_rejected() {
    let e = |offset| PackEntry {
        id: BlobId([1; 32]),
        kind: BlobKind::Data,
        offset,
        length: 100,
        raw_length: 100,
    };
    let enc = encode_header(&[e(0), e(50)]);
    let err = decode_header(&enc, 1000).unwrap_err();
    assert!(err.contains("overlaps"), "{err}");
    let mut bad = encode_header(&[e(0)]);
    bad[4] = 9;
    assert!(decode_header(&bad, 1000).unwrap_err().contains("version"));
}
