//! The grammar decoder on arbitrary bytes, as a raw FTS and framed. Properties:
//! - no input panics (any root, auto-detected or forced);
//! - `decode` of unframed input agrees with `decode_fts`;
//! - the same bytes framed by `write_frames` (chunk size from the input) decode
//!   to the same root, or fail with the same error at the mapped offset;
//! - every property of an accepted tree yields a typed value or a `ValueError`
//!   without panicking.
#![no_main]

use bytes::Bytes;
use fts::frame::{self, FrameHeader};
use fts::{Root, RootKind};
use fts_fuzz::control;
use libfuzzer_sys::fuzz_target;

fn touch_values(root: &Root) {
    root.for_each_prop(&mut |_, p| {
        let _ = p.value();
        let _ = p.value_cp(Some(932));
        let _ = p.as_str();
        if let Some(n) = &p.named {
            let _ = n.name.name_lossy();
        }
    });
    let _ = root.message_content();
}

fuzz_target!(|data: &[u8]| {
    let (ctl, payload) = control(data, 2);
    let chunk = match ctl {
        [a, b] => 1 + (u16::from_le_bytes([*a, *b]) as usize % 40_000),
        _ => frame::DEFAULT_CHUNK,
    };

    // Whole input, auto-detected.
    let input = Bytes::copy_from_slice(data);
    let auto = fts::decode(&input);
    if let Ok(d) = &auto {
        touch_values(&d.root);
        if !frame::is_framed(data) {
            assert!(d.framing.is_none());
        }
    }
    if !frame::is_framed(data) {
        let raw = fts::decode_fts(&input);
        assert_eq!(auto.map(|d| d.root), raw, "decode and decode_fts disagree");
    }

    // Every forced root.
    for kind in [
        RootKind::MessageContent,
        RootKind::Message,
        RootKind::AttachmentContent,
        RootKind::MessageList,
        RootKind::Elements,
    ] {
        if let Ok(root) = fts::decode_fts_as(&input, kind) {
            assert_eq!(root.kind(), kind);
            touch_values(&root);
        }
    }

    // The payload as a raw FTS, and the same bytes framed.
    let raw_in = Bytes::copy_from_slice(payload);
    let raw = fts::decode_fts(&raw_in);
    let framed = Bytes::from(fts::write_frames(&FrameHeader::default(), payload, chunk));
    let (framing, _) = fts::unframe(&framed).expect("own framing rejected");
    match (raw, fts::decode(&framed)) {
        (Ok(r), Ok(d)) => {
            assert!(d.framing.is_some());
            assert_eq!(r, d.root, "framing changed the decoded root");
        }
        (Err(e1), Err(e2)) => {
            assert_eq!(e1.kind, e2.kind, "framing changed the error");
            assert_eq!(
                framing.map_offset(e1.offset),
                e2.offset,
                "framed error offset is not the mapped raw offset"
            );
        }
        (Ok(_), Err(e)) => panic!("raw FTS decodes but framed fails: {e}"),
        (Err(e), Ok(_)) => panic!("raw FTS fails ({e}) but framed decodes"),
    }
});
