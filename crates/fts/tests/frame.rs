//! Framing: the EWS/Graph record envelope (reference §3, §12 item 10).

mod common;

use bytes::Bytes;
use common::*;
use fts::ast::Root;
use fts::error::{ErrorKind, WarningKind};
use fts::frame::{self, DEFAULT_CHUNK, Frame, FrameHeader, PartnerVersion};
use fts::{decode, decode_fts, encode, write::encoded_len};

fn framed_with_chunks(fts: &[u8], sizes: &[usize]) -> Bytes {
    let mut v = header_records();
    let mut pos = 0;
    for &n in sizes {
        record(&mut v, 2, &fts[pos..pos + n]);
        pos += n;
    }
    assert_eq!(pos, fts.len());
    Bytes::from(v)
}

#[test]
fn chunk_boundary_at_every_offset() {
    let fts = worked_fts();
    let want = decode_fts(&fts).unwrap();
    for k in 0..=fts.len() {
        let input = framed_with_chunks(&fts, &[k, fts.len() - k]);
        let d = decode(&input).unwrap_or_else(|e| panic!("split {k}: {e}"));
        assert_eq!(d.root, want, "split {k}");
        assert_eq!(encode(&d), input.to_vec(), "split {k}");
        let empty = usize::from(k == 0) + usize::from(k == fts.len());
        assert_eq!(d.framing.unwrap().warnings.len(), empty);
    }
    // Three chunks, including cuts inside tags, lengths and UTF-16 code units.
    for a in (1..fts.len()).step_by(7) {
        for b in (a + 1..fts.len()).step_by(5) {
            let input = framed_with_chunks(&fts, &[a, b - a, fts.len() - b]);
            let d = decode(&input).unwrap();
            assert_eq!(d.root, want);
            assert_eq!(encode(&d), input.to_vec());
        }
    }
}

#[test]
fn zero_length_transfer_buffer_is_kept_and_reported() {
    let fts = worked_fts();
    let mut v = header_records();
    record(&mut v, 2, &[]);
    record(&mut v, 2, &fts);
    let input = Bytes::from(v);
    let d = decode(&input).unwrap();
    let f = d.framing.as_ref().unwrap();
    assert_eq!(f.warnings.len(), 1);
    assert_eq!(f.warnings[0].offset, 62);
    assert_eq!(f.warnings[0].kind, WarningKind::EmptyTransferBuffer);
    assert_eq!(encode(&d), input.to_vec());
    // write_frames never emits an empty one.
    let h = FrameHeader::default();
    let empty = fts::write_frames(&h, &[], DEFAULT_CHUNK);
    assert_eq!(empty.len(), 62);
    let (f, body) = fts::unframe(&Bytes::from(empty)).unwrap();
    assert_eq!(f.chunk_sizes().count(), 0);
    assert!(body.is_empty());
}

#[test]
fn unknown_opcodes_are_kept_verbatim() {
    let fts = worked_fts();
    let mut v = header_records();
    record(&mut v, 17, b"props");
    record(&mut v, 2, &fts[..100]);
    record(&mut v, 0x1234_5678, &[]);
    record(&mut v, 2, &fts[100..]);
    record(&mut v, 12, &1u32.to_le_bytes());
    let input = Bytes::from(v);
    let d = decode(&input).unwrap();
    let f = d.framing.as_ref().unwrap();
    let ops: Vec<u32> = f.records().map(|r| r.opcode).collect();
    assert_eq!(ops, [1, 3, 4, 17, 0x1234_5678, 12]);
    assert_eq!(f.records().nth(3).unwrap().payload.as_ref(), b"props");
    assert_eq!(encode(&d), input.to_vec());
}

#[test]
fn unframed_input_is_auto_detected() {
    let d = decode(&worked_fts()).unwrap();
    assert!(d.framing.is_none());
    assert_eq!(encode(&d), worked_fts().to_vec());
    assert!(!frame::is_framed(&worked_fts()));
    assert!(frame::is_framed(&worked_framed()));
    assert_eq!(
        fts::unframe(&worked_fts()).unwrap_err().kind,
        ErrorKind::NotFramed
    );
}

#[test]
fn edited_content_is_rechunked() {
    let fts = worked_fts();
    let input = framed_with_chunks(&fts, &[50, 161]);
    let mut d = decode(&input).unwrap();
    let Root::MessageContent(mc) = &mut d.root else {
        panic!()
    };
    mc.props
        .push(fts::value::build::binary(0x1013, None, vec![7u8; 70_000]));
    let out = encode(&d);
    let again = decode(&Bytes::from(out.clone())).unwrap();
    assert_eq!(again.root, d.root);
    let f = again.framing.unwrap();
    let sizes: Vec<u32> = f.chunk_sizes().collect();
    let total = encoded_len(&d.root);
    assert_eq!(sizes.iter().map(|&n| n as usize).sum::<usize>(), total);
    assert!(sizes.iter().all(|&n| n as usize <= DEFAULT_CHUNK && n > 0));
    assert_eq!(sizes.len(), total.div_ceil(DEFAULT_CHUNK));
    assert_eq!(f.records().count(), 3);
    assert_eq!(f.partner_version().unwrap().to_string(), "14.1.164.0");
}

#[test]
fn write_frames_chunks_at_31680() {
    let fts: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let out = fts::write_frames(&FrameHeader::default(), &fts, DEFAULT_CHUNK);
    let (f, body) = fts::unframe(&Bytes::from(out.clone())).unwrap();
    assert_eq!(body.as_ref(), &fts[..]);
    assert_eq!(
        f.chunk_sizes().collect::<Vec<_>>(),
        [31_680, 31_680, 31_680, 4_960]
    );
    assert_eq!(f.framed_len(fts.len()), out.len());
    // Exchange's header bytes.
    assert_eq!(
        &out[..56],
        &hex("01000000 08000000 00000000 01000000
              03000000 18000000 01000000 07030200 00000000 C0000000 00000046 00240080
              04000000 06000000")[..]
    );
    let v = f.partner_version().unwrap();
    assert_eq!(v, PartnerVersion::EXCHANGE_ONLINE);
    assert_eq!((v.major, v.minor), (15, 20));
}

#[test]
fn partner_version_bytes() {
    let v = PartnerVersion::from_bytes(&[0x01, 0x0E, 0xA4, 0x80, 0, 0]).unwrap();
    assert_eq!(
        (v.major, v.minor, v.build_major, v.build_minor),
        (14, 1, 164, 0)
    );
    assert_eq!(v.to_bytes(), [0x01, 0x0E, 0xA4, 0x80, 0, 0]);
    let v = PartnerVersion::from_bytes(&hex("010F0582 7B17")).unwrap();
    assert_eq!(v.to_string(), "15.1.517.6011");
    let v = PartnerVersion::from_bytes(&hex("000F9183 8417")).unwrap();
    assert_eq!(v.to_string(), "15.0.913.6020");
    assert!(PartnerVersion::from_bytes(&[1, 2, 3]).is_none());
}

#[test]
fn fts_errors_map_to_framed_offsets() {
    let mut fts = worked_fts().to_vec();
    // Corrupt the type word of PidTagSubject (FTS offset 26) → UnknownType.
    fts[26] = 0x01;
    fts[27] = 0x00;
    let input = framed_with_chunks(&fts, &[20, fts.len() - 20]);
    let e = decode(&input).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::UnknownType { .. }));
    // 62 header bytes + 8 (first TB header) + 20 + 8 (second TB header) + 6.
    assert_eq!(e.offset, 62 + 8 + 20 + 8 + 6);
    assert!(decode_fts(&Bytes::from(fts)).unwrap_err().offset == 26);
}

#[test]
fn truncated_framed_input_is_an_error_at_its_end() {
    let input = worked_framed();
    for n in 1..input.len() {
        let cut = input.slice(..n);
        match decode(&cut) {
            // Cuts at record boundaries before the TransferBuffer leave a
            // complete framed stream with an empty FTS.
            Ok(d) => {
                assert!([16, 48, 62].contains(&n), "prefix {n} decoded");
                assert_eq!(d.root, Root::MessageContent(Default::default()));
            }
            Err(e) => {
                if n >= 8 {
                    assert_eq!(e.offset, n as u64, "prefix {n}: {e}");
                    assert!(e.is_truncation(), "prefix {n}: {e}");
                }
            }
        }
    }
    // A partial record header after complete records.
    let mut v = input.to_vec();
    v.extend_from_slice(&[2, 0, 0]);
    let (f, _) = fts::unframe(&Bytes::from(v)).unwrap();
    assert_eq!(f.truncated, Some(5));
    assert!(matches!(f.frames.last(), Some(Frame::Chunk(211))));
}

/// The owned-buffer decode (import path) agrees with `decode` on every
/// layout, including empty chunks and records between chunks, and
/// `Framing::parts` rebuilds the framed input byte for byte.
#[test]
fn decode_vec_agrees_and_parts_rebuild_the_input() {
    let fts = worked_fts();
    let mut layouts: Vec<Bytes> = vec![worked_framed(), worked_fts()];
    for k in (0..=fts.len()).step_by(13) {
        layouts.push(framed_with_chunks(&fts, &[k, fts.len() - k]));
    }
    let mut v = header_records();
    record(&mut v, 2, &[]);
    record(&mut v, 2, &fts[..50]);
    record(&mut v, 17, b"props");
    record(&mut v, 2, &fts[50..]);
    record(&mut v, 12, &1u32.to_le_bytes());
    layouts.push(Bytes::from(v));
    for input in layouts {
        let want = decode(&input).unwrap();
        let (got, unframed) =
            fts::decode::decode_vec(input.to_vec(), &fts::Limits::default()).unwrap();
        assert_eq!(got, want);
        match &got.framing {
            Some(f) => {
                let rebuilt: Vec<u8> = f.parts(&unframed).concat();
                assert_eq!(rebuilt, input.to_vec());
                let mut written = Vec::new();
                f.write(&unframed, &mut written);
                assert_eq!(written, input.to_vec());
            }
            None => assert_eq!(unframed, input),
        }
    }
}

/// Errors of the owned-buffer decode name the same framed offsets.
#[test]
fn decode_vec_errors_match_decode() {
    let input = worked_framed();
    for cut in [70, 100, input.len() - 3] {
        let part = input.slice(..cut);
        let want = decode(&part).unwrap_err();
        let got = fts::decode::decode_vec(part.to_vec(), &fts::Limits::default()).unwrap_err();
        assert_eq!(
            (got.offset, got.kind),
            (want.offset, want.kind),
            "cut {cut}"
        );
    }
    let mut bad = input.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let bad = Bytes::from(bad);
    if let Err(want) = decode(&bad) {
        let got = fts::decode::decode_vec(bad.to_vec(), &fts::Limits::default()).unwrap_err();
        assert_eq!(got.offset, want.offset);
    }
}
