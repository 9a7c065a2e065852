//! The push lexer (streaming path) and the slice decoder (contiguous path) must
//! agree on every input: same elements, same errors, whatever the split points.

mod common;

use bytes::Bytes;
use common::*;
use fts::error::{ErrorKind, Limits};
use fts::lex::{Lexer, Token, lex_elements};

fn corpus() -> Vec<Bytes> {
    vec![
        worked_fts(),
        hex("
            0B007440 03000030 00000000 02017B40 03003A40 03001740 03000000 010203
            02019667 02000000 0102 03003B40 03001440"),
        hex("
            B0940080 08200600 00000000 C0000000 00000046 01
                45006E00 74006900 74007900 4E006100 6D006500 73000000
                01000000 22000000
                44006F00 6D006100 69006E00 43006C00 61007300 73006900 66006900 65007200 0000
            1F000280 86030200 00000000 C0000000 00000046 01 61003DD8 00DE0000 02000000 0000
            03100300 03000000 01000000 02000000 FFFFFFFF
            02110D00 03000000 00000000 01000000 FF 02000000 0102
            48100C00 01000000 86030200 00000000 C0000000 00000046
            1F100A00 02000000 02000000 0000 04000000 62000000
            0B000B00 0200 02100100 00000000"),
    ]
}

fn lex_split(input: &[u8], cuts: &[usize]) -> Result<Vec<fts::Element>, fts::Error> {
    let mut chunks = Vec::new();
    let mut last = 0;
    for &c in cuts {
        chunks.push(&input[last..c]);
        last = c;
    }
    chunks.push(&input[last..]);
    lex_elements(chunks, &Limits::default())
}

#[test]
fn same_elements_at_every_split_point() {
    for input in corpus() {
        let want = fts::decode::read_elements(&input, &Limits::default()).unwrap();
        assert_eq!(lex_split(&input, &[]).unwrap(), want);
        for k in 0..=input.len() {
            assert_eq!(lex_split(&input, &[k]).unwrap(), want, "split at {k}");
        }
        // Byte by byte.
        let cuts: Vec<usize> = (1..input.len()).collect();
        assert_eq!(lex_split(&input, &cuts).unwrap(), want);
    }
}

#[test]
fn same_errors_on_truncated_and_corrupted_input() {
    for input in corpus() {
        for n in 0..input.len() {
            let cut = input.slice(..n);
            let a = fts::decode::read_elements(&cut, &Limits::default());
            for k in [0, n / 3, n / 2, n.saturating_sub(1)] {
                assert_eq!(lex_split(&cut, &[k.min(n)]), a, "prefix {n} split {k}");
            }
        }
        // Flip every byte in turn to 0x02 / 0xFF (kind bytes, types, lengths).
        for i in 0..input.len() {
            for v in [0x02u8, 0xFF] {
                let mut bad = input.to_vec();
                bad[i] = v;
                let bad = Bytes::from(bad);
                let a = fts::decode::read_elements(&bad, &Limits::default());
                assert_eq!(lex_split(&bad, &[i / 2]), a, "byte {i} = {v:#x}");
            }
        }
    }
}

#[test]
fn small_limits_give_the_same_errors() {
    let limits = Limits {
        max_value_len: 2,
        max_mv_count: 2,
        max_name_len: 3,
        ..Limits::default()
    };
    for input in corpus() {
        let a = fts::decode::read_elements(&input, &limits);
        assert!(a.is_err());
        for k in 0..=input.len() {
            let b = lex_elements([&input[..k], &input[k..]], &limits);
            assert_eq!(b, a, "split at {k}");
        }
    }
}

/// A 100 MB value streams through the lexer without being buffered: the input
/// is fed from one reused 64 KiB buffer, and each chunk comes back as a slice of
/// it.
#[test]
fn hundred_megabyte_value_streams() {
    const LEN: u32 = 100_000_000;
    let mut lx = Lexer::new(Limits::default());
    let mut head = hex("02010137").to_vec();
    head.extend_from_slice(&LEN.to_le_bytes());
    let mut starts = 0;
    lx.feed(&head, &mut |t| {
        assert_eq!(
            t,
            Token::PropStart {
                tag: 0x3701_0102,
                named: None,
                len_or_count: Some(LEN)
            }
        );
        starts += 1;
    })
    .unwrap();
    assert_eq!(starts, 1);
    let buf = vec![0xA5u8; 65_536];
    let mut left = LEN as usize;
    let mut seen = 0usize;
    let mut ends = 0;
    while left > 0 {
        let n = left.min(buf.len());
        lx.feed(&buf[..n], &mut |t| match t {
            Token::ValueChunk(c) => {
                assert!(std::ptr::eq(c.as_ptr(), buf.as_ptr()));
                seen += c.len();
            }
            Token::PropEnd => ends += 1,
            other => panic!("{other:?}"),
        })
        .unwrap();
        left -= n;
    }
    assert_eq!((seen, ends), (LEN as usize, 1));
    lx.finish().unwrap();
}

#[test]
fn finish_reports_truncation_mid_element() {
    let input = worked_fts();
    let mut lx = Lexer::new(Limits::default());
    lx.feed(&input[..30], &mut |_| {}).unwrap();
    let e = lx.finish().unwrap_err();
    assert_eq!(e.offset, 30);
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            what: "value length",
            need: 4
        }
    );
    // A failed lexer stays failed.
    let mut lx = Lexer::new(Limits::default());
    let bad = hex("01003700");
    let e = lx.feed(&bad, &mut |_| {}).unwrap_err();
    assert_eq!(lx.feed(&input, &mut |_| {}).unwrap_err(), e);
}
