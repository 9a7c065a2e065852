//! The push lexer, fed the input whole and in chunks whose sizes come from the
//! input's first 8 bytes. Properties checked:
//! - the token sequence (value chunks merged) and the final result (error kind
//!   and offset) do not depend on the split points;
//! - no value chunk is empty, and a successfully lexed stream is well formed
//!   (value bytes add up to the announced lengths and counts);
//! - the lexer agrees with the contiguous decoder's element reader
//!   (`fts::decode::read_elements`) on elements and errors.
#![no_main]

use bytes::Bytes;
use fts::lex::{Lexer, Shape, lex_elements, value_shape};
use fts::{Error, Limits};
use fts_fuzz::{OwnedToken, Rng, TokenLog, control, split};
use libfuzzer_sys::fuzz_target;

fn run<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<OwnedToken>, Result<(), Error>) {
    let mut lexer = Lexer::new(Limits::default());
    let mut log = TokenLog::default();
    let mut fed = 0u64;
    for c in chunks {
        if let Err(e) = lexer.feed(c, &mut |t| log.push(t)) {
            // A failed lexer stays failed with the same error.
            assert_eq!(lexer.feed(&[0], &mut |_| {}), Err(e.clone()));
            assert_eq!(lexer.finish(), Err(e.clone()));
            return (log.0, Err(e));
        }
        fed += c.len() as u64;
        assert_eq!(
            lexer.offset(),
            fed,
            "offset() is not the number of bytes fed"
        );
    }
    let r = lexer.finish();
    (log.0, r)
}

type Tokens<'a> = std::iter::Peekable<std::slice::Iter<'a, OwnedToken>>;

/// Consumes the (merged) value bytes at the cursor, if any, and returns their length.
fn value_len(it: &mut Tokens<'_>) -> usize {
    match it.peek() {
        Some(OwnedToken::Value(v)) => {
            it.next();
            v.len()
        }
        _ => 0,
    }
}

/// Checks that the tokens of a stream that lexed without error are well formed.
fn check_well_formed(tokens: &[OwnedToken]) {
    let mut it = tokens.iter().peekable();
    while let Some(t) = it.next() {
        match t {
            OwnedToken::Marker(m) => assert!(fts::markers::is_marker(*m), "non-marker {m:#010x}"),
            OwnedToken::PropStart {
                tag,
                named,
                len_or_count,
            } => {
                assert!(
                    !fts::markers::is_marker(*tag),
                    "marker {tag:#010x} lexed as a tag"
                );
                assert_eq!(
                    named.is_some(),
                    fts::lex::is_named_id(*tag),
                    "tag {tag:#010x}"
                );
                let shape = value_shape(*tag).expect("PropStart for a tag with no shape");
                match shape {
                    Shape::Fixed(n) => {
                        assert_eq!(*len_or_count, None);
                        assert_eq!(value_len(&mut it), n, "fixed value of {tag:#010x}");
                    }
                    Shape::Var => {
                        let len = len_or_count.expect("var value without a length");
                        assert_eq!(value_len(&mut it), len as usize, "var value of {tag:#010x}");
                    }
                    Shape::MultiFixed(_) | Shape::MultiVar => {
                        let count = len_or_count.expect("MV value without a count");
                        for _ in 0..count {
                            let Some(OwnedToken::MvElement { len }) = it.next() else {
                                panic!("MV {tag:#010x}: fewer than {count} elements");
                            };
                            if let Shape::MultiFixed(n) = shape {
                                assert_eq!(*len as usize, n);
                            }
                            assert_eq!(
                                value_len(&mut it),
                                *len as usize,
                                "MV element of {tag:#010x}"
                            );
                        }
                    }
                }
                assert_eq!(it.next(), Some(&OwnedToken::PropEnd), "after {tag:#010x}");
            }
            other => panic!("token out of place: {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (seed, input) = control(data, 8);
    let whole = run([input]);
    let mut rng = Rng::from_bytes(seed);
    let parts = split(input, &mut rng);
    let chunked = run(parts.iter().copied());
    assert_eq!(whole, chunked, "split points changed the lexer's output");
    if whole.1.is_ok() {
        check_well_formed(&whole.0);
    }

    // Differential: streaming lexer vs the contiguous decoder's element reader.
    let limits = Limits::default();
    let lexed = lex_elements(parts.iter().copied(), &limits);
    let read = fts::decode::read_elements(&Bytes::copy_from_slice(input), &limits);
    assert_eq!(lexed, read, "lexer and decoder disagree");
    assert_eq!(lexed.is_ok(), whole.1.is_ok());
});
