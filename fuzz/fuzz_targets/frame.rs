//! The record envelope. Properties checked:
//! - `unframe` accepts exactly the inputs `is_framed` recognises;
//! - the joined FTS is what the TransferBuffer records carry, and
//!   `Framing::map_offset` maps FTS offsets back to the same bytes of the input;
//! - a complete framed input is re-written byte for byte (`Framing::write`,
//!   `Framing::framed_len`);
//! - `write_frames` over arbitrary bytes (chunk size from the input) yields
//!   non-empty chunks no larger than asked, and `unframe` gives the bytes back.
#![no_main]

use bytes::Bytes;
use fts::frame::{self, FrameHeader};
use fts_fuzz::{Rng, control};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);
    match fts::unframe(&input) {
        Err(e) => assert!(!frame::is_framed(data), "framed input rejected: {e}"),
        Ok((framing, fts)) => {
            assert!(frame::is_framed(data), "unframed input accepted");
            let kept: u64 = framing.chunk_sizes().map(u64::from).sum();
            assert_eq!(
                kept,
                fts.len() as u64,
                "chunk sizes do not add up to the FTS"
            );
            // Sample FTS offsets: each must map to the same byte of the input.
            if !fts.is_empty() {
                let mut rng = Rng::from_bytes(data);
                for i in 0..32 {
                    let o = match i {
                        0 => 0,
                        1 => fts.len() - 1,
                        _ => rng.next_u64() as usize % fts.len(),
                    };
                    let m = framing.map_offset(o as u64) as usize;
                    assert!(m < data.len(), "offset {o} maps past the input to {m}");
                    assert_eq!(data[m], fts[o], "FTS offset {o} maps to framed offset {m}");
                }
            }
            let end = framing.map_offset(fts.len() as u64);
            assert!(end <= data.len() as u64, "end of FTS maps to {end}");
            let _ = framing.partner_version();
            if framing.truncated.is_none() {
                let mut out = Vec::new();
                framing.write(&fts, &mut out);
                assert!(out == data, "Framing::write did not reproduce the input");
                assert_eq!(framing.framed_len(fts.len()), data.len());
            }
        }
    }

    // The writer side, over arbitrary payload bytes.
    let (ctl, payload) = control(data, 2);
    let chunk = match ctl {
        [a, b] => 1 + (u16::from_le_bytes([*a, *b]) as usize % 40_000),
        _ => frame::DEFAULT_CHUNK,
    };
    let header = FrameHeader::default();
    let framed = fts::write_frames(&header, payload, chunk);
    let (framing, back) = fts::unframe(&Bytes::from(framed.clone())).expect("own framing rejected");
    assert!(framing.truncated.is_none() && framing.warnings.is_empty());
    assert!(back == payload, "write_frames/unframe lost bytes");
    let sizes: Vec<u32> = framing.chunk_sizes().collect();
    assert_eq!(sizes.len(), payload.len().div_ceil(chunk));
    assert!(
        sizes.iter().all(|&n| n > 0 && n as usize <= chunk),
        "bad chunk sizes {sizes:?}"
    );
    assert_eq!(framing.partner_version(), Some(header.version));
    assert_eq!(framing.framed_len(payload.len()), framed.len());
});
