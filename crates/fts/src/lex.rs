//! The lexical layer: a resumable push tokenizer over a raw FTS.
//!
//! # Why a push lexer
//! An FTS arrives in buffers cut at arbitrary bytes (EWS/Graph TransferBuffer
//! records, ROP GetBuffer calls), and a single PidTagAttachDataBinary may be
//! 150 MB. [`Lexer::feed`] accepts any slice, emits [`Token`]s for what it can,
//! and keeps only the bytes of the field it is in the middle of: at most 16 bytes
//! of a tag/length/GUID, plus a named-property name bounded by
//! [`Limits::max_name_len`]. Value bytes are passed through as
//! [`Token::ValueChunk`]s borrowed from the input and are never buffered, so the
//! token sequence is the same whatever the split points (only how value bytes are
//! cut into chunks differs).
//!
//! # Element rules (shared with the slice decoder)
//! A 32-bit word is a marker iff it is one of the values in [`crate::markers`];
//! otherwise it is a tag and [`value_shape`] says what follows it. Both the lexer
//! and the contiguous decoder (`decode.rs`) classify words through
//! [`value_shape`] and the same limit checks, in the same order, and report the
//! same [`ErrorKind`] at the same offset. A test feeds both the same streams, at
//! every split point, and compares elements and errors.
//!
//! # Token sequence for one propValue
//! - fixed type: `PropStart { len_or_count: None }`, `ValueChunk`*, `PropEnd`;
//! - variable type: `PropStart { len_or_count: Some(byte_len) }`, `ValueChunk`*, `PropEnd`;
//! - multi-valued: `PropStart { len_or_count: Some(count) }`, then per element
//!   `MvElement { len }` (the fixed size, or the element's own u32 length)
//!   followed by its `ValueChunk`s, then `PropEnd`.
//!
//! Chunks are never empty.

use crate::ast::{Element, Guid, NamedProp, Prop, PropData, PropName};
use crate::error::{Error, ErrorKind, Limits};
use crate::markers;
use crate::value::{Layout, TypeInfo};
use bytes::Bytes;

/// What follows a property tag on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Exactly this many bytes.
    Fixed(usize),
    /// u32 byte length, then the bytes.
    Var,
    /// u32 count, then count × this many bytes.
    MultiFixed(usize),
    /// u32 count, then count × (u32 length, bytes).
    MultiVar,
}

impl Shape {
    pub fn is_multi(self) -> bool {
        matches!(self, Shape::MultiFixed(_) | Shape::MultiVar)
    }
}

/// The value layout of a (non-marker) tag, or None for a type that cannot appear
/// in an FTS. MetaTagIdsetGiven (0x40170003) is declared PtypInteger32 but is
/// serialized as binary.
#[inline]
pub fn value_shape(tag: u32) -> Option<Shape> {
    if tag == markers::meta::IDSET_GIVEN {
        return Some(Shape::Var);
    }
    let info = TypeInfo::of(tag as u16)?;
    Some(match (info.multi, info.layout) {
        (false, Layout::Fixed(n)) => Shape::Fixed(n),
        (false, Layout::Var) => Shape::Var,
        (true, Layout::Fixed(n)) => Shape::MultiFixed(n),
        (true, Layout::Var) => Shape::MultiVar,
    })
}

/// True iff the tag's property id is in the named range (>= 0x8000).
#[inline]
pub fn is_named_id(tag: u32) -> bool {
    tag >> 16 >= 0x8000
}

/// Names of the fixed-size fields, used in truncation errors (shared with the decoder).
pub(crate) mod field {
    pub const TAG: &str = "property tag";
    pub const GUID: &str = "named-property GUID";
    pub const KIND: &str = "named-property kind";
    pub const DISPID: &str = "named-property dispid";
    pub const LEN: &str = "value length";
    pub const COUNT: &str = "multi-valued count";
    pub const ELEM_LEN: &str = "multi-valued element length";
    pub const VALUE: &str = "value";
    pub const ELEM: &str = "multi-valued element";
}

/// Checks a var-value length against the limit (shared with the decoder).
#[inline]
pub(crate) fn check_len(len: u32, at: u64, limits: &Limits) -> Result<(), Error> {
    if len > limits.max_value_len {
        return Err(Error::new(
            at,
            ErrorKind::ValueTooLong {
                len,
                max: limits.max_value_len,
            },
        ));
    }
    Ok(())
}

/// Checks an MV count against the limit (shared with the decoder).
#[inline]
pub(crate) fn check_count(count: u32, at: u64, limits: &Limits) -> Result<(), Error> {
    if count > limits.max_mv_count {
        return Err(Error::new(
            at,
            ErrorKind::MvCountTooLarge {
                count,
                max: limits.max_mv_count,
            },
        ));
    }
    Ok(())
}

/// One lexical event. Slices borrow from the input given to [`Lexer::feed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token<'a> {
    Marker(u32),
    PropStart {
        tag: u32,
        named: Option<NamedProp>,
        /// None for fixed types; the byte length for variable types; the element
        /// count for multi-valued types.
        len_or_count: Option<u32>,
    },
    /// Start of one element of a multi-valued property, with its byte length.
    MvElement {
        len: u32,
    },
    ValueChunk(&'a [u8]),
    PropEnd,
}

#[derive(Debug)]
enum State {
    Word,
    Guid {
        tag: u32,
    },
    Kind {
        tag: u32,
        guid: Guid,
    },
    Dispid {
        tag: u32,
        guid: Guid,
    },
    Name {
        tag: u32,
        guid: Guid,
        units: Vec<u16>,
    },
    /// Reading the u32 length (Var) or count (Multi*).
    Len {
        tag: u32,
        named: Option<NamedProp>,
        shape: Shape,
    },
    /// Streaming a single value's bytes.
    Value {
        left: u64,
    },
    /// MultiVar: reading the next element's u32 length.
    ElemLen {
        elems_left: u32,
    },
    /// Streaming an element's bytes; `fixed` is the element size for MultiFixed.
    Elem {
        left: u32,
        elems_left: u32,
        fixed: Option<usize>,
    },
    Failed(Error),
}

/// A resumable push tokenizer. See the module docs.
#[derive(Debug)]
pub struct Lexer {
    limits: Limits,
    state: State,
    /// Bytes of the current fixed-size field (tag, GUID, length…).
    buf: [u8; 16],
    buf_len: usize,
    /// Absolute offset of the next input byte.
    pos: u64,
    /// Absolute offset where the current field or name started.
    field_start: u64,
}

impl Lexer {
    pub fn new(limits: Limits) -> Lexer {
        Lexer {
            limits,
            state: State::Word,
            buf: [0; 16],
            buf_len: 0,
            pos: 0,
            field_start: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    /// Feeds the next slice of the stream. After an error the lexer stays
    /// failed and returns the same error again.
    pub fn feed<'a>(
        &mut self,
        input: &'a [u8],
        sink: &mut impl FnMut(Token<'a>),
    ) -> Result<(), Error> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        if self.pos + input.len() as u64 > self.limits.max_total_size {
            let e = Error::new(
                self.limits.max_total_size,
                ErrorKind::TotalSizeExceeded {
                    max: self.limits.max_total_size,
                },
            );
            self.state = State::Failed(e.clone());
            return Err(e);
        }
        let r = self.run(input, sink);
        if let Err(e) = &r {
            self.state = State::Failed(e.clone());
        }
        r
    }

    /// Declares the end of the stream: Ok iff it ended on an element boundary.
    pub fn finish(&self) -> Result<(), Error> {
        let at = self.pos;
        let trunc = |what, need: u64| Err(Error::new(at, ErrorKind::Truncated { what, need }));
        let have = self.buf_len as u64;
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            State::Word if self.buf_len == 0 => Ok(()),
            State::Word => trunc(field::TAG, 4 - have),
            State::Guid { .. } => trunc(field::GUID, 16 - have),
            State::Kind { .. } => trunc(field::KIND, 1),
            State::Dispid { .. } => trunc(field::DISPID, 4 - have),
            State::Name { .. } => Err(Error::new(at, ErrorKind::UnterminatedName)),
            State::Len { shape, .. } => trunc(
                if shape.is_multi() {
                    field::COUNT
                } else {
                    field::LEN
                },
                4 - have,
            ),
            State::Value { left } => trunc(field::VALUE, *left),
            State::ElemLen { .. } => trunc(field::ELEM_LEN, 4 - have),
            State::Elem { left, .. } => trunc(field::ELEM, *left as u64),
        }
    }

    /// Moves bytes into `buf` until it holds `need`; true when complete.
    #[inline]
    fn fill(&mut self, input: &[u8], i: &mut usize, need: usize) -> bool {
        if self.buf_len == 0 {
            self.field_start = self.pos;
        }
        let take = (need - self.buf_len).min(input.len() - *i);
        self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&input[*i..*i + take]);
        self.buf_len += take;
        *i += take;
        self.pos += take as u64;
        if self.buf_len == need {
            self.buf_len = 0;
            true
        } else {
            false
        }
    }

    fn u32_field(&self) -> u32 {
        u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
    }

    /// State after a tag (and its named info) is known.
    fn after_header<'a>(
        &mut self,
        tag: u32,
        named: Option<NamedProp>,
        sink: &mut impl FnMut(Token<'a>),
    ) -> Result<State, Error> {
        // value_shape was checked when the tag was read.
        let shape = value_shape(tag).unwrap_or(Shape::Var);
        Ok(match shape {
            Shape::Fixed(n) => {
                sink(Token::PropStart {
                    tag,
                    named,
                    len_or_count: None,
                });
                State::Value { left: n as u64 }
            }
            _ => State::Len { tag, named, shape },
        })
    }

    /// State after one element of an MV finished.
    fn next_elem<'a>(
        elems_left: u32,
        fixed: Option<usize>,
        sink: &mut impl FnMut(Token<'a>),
    ) -> State {
        if elems_left == 0 {
            sink(Token::PropEnd);
            return State::Word;
        }
        match fixed {
            Some(n) => {
                sink(Token::MvElement { len: n as u32 });
                State::Elem {
                    left: n as u32,
                    elems_left,
                    fixed,
                }
            }
            None => State::ElemLen { elems_left },
        }
    }

    fn run<'a>(&mut self, input: &'a [u8], sink: &mut impl FnMut(Token<'a>)) -> Result<(), Error> {
        let mut i = 0usize;
        while i < input.len() {
            let state = std::mem::replace(&mut self.state, State::Word);
            self.state = match state {
                State::Word => {
                    if !self.fill(input, &mut i, 4) {
                        State::Word
                    } else {
                        let w = self.u32_field();
                        if markers::is_marker(w) {
                            sink(Token::Marker(w));
                            State::Word
                        } else if value_shape(w).is_none() {
                            return Err(Error::new(
                                self.field_start,
                                ErrorKind::UnknownType { tag: w },
                            ));
                        } else if is_named_id(w) {
                            State::Guid { tag: w }
                        } else {
                            self.after_header(w, None, sink)?
                        }
                    }
                }
                State::Guid { tag } => {
                    if !self.fill(input, &mut i, 16) {
                        State::Guid { tag }
                    } else {
                        State::Kind {
                            tag,
                            guid: Guid(self.buf),
                        }
                    }
                }
                State::Kind { tag, guid } => {
                    let k = input[i];
                    let at = self.pos;
                    i += 1;
                    self.pos += 1;
                    match k {
                        0 => State::Dispid { tag, guid },
                        1 => State::Name {
                            tag,
                            guid,
                            units: Vec::new(),
                        },
                        _ => return Err(Error::new(at, ErrorKind::BadNamedKind(k))),
                    }
                }
                State::Dispid { tag, guid } => {
                    if !self.fill(input, &mut i, 4) {
                        State::Dispid { tag, guid }
                    } else {
                        let named = NamedProp {
                            guid,
                            name: PropName::Id(self.u32_field()),
                        };
                        self.after_header(tag, Some(named), sink)?
                    }
                }
                State::Name {
                    tag,
                    guid,
                    mut units,
                } => {
                    let mut done = false;
                    while i < input.len() {
                        // Keep a half code unit in buf across feeds.
                        let unit_start = self.pos - self.buf_len as u64;
                        if !self.fill(input, &mut i, 2) {
                            break;
                        }
                        let u = u16::from_le_bytes([self.buf[0], self.buf[1]]);
                        if u == 0 {
                            done = true;
                            break;
                        }
                        if units.len() as u64 >= self.limits.max_name_len as u64 {
                            return Err(Error::new(
                                unit_start,
                                ErrorKind::NameTooLong {
                                    max: self.limits.max_name_len,
                                },
                            ));
                        }
                        units.push(u);
                    }
                    if done {
                        let named = NamedProp {
                            guid,
                            name: PropName::Name(units),
                        };
                        self.after_header(tag, Some(named), sink)?
                    } else {
                        State::Name { tag, guid, units }
                    }
                }
                State::Len { tag, named, shape } => {
                    if !self.fill(input, &mut i, 4) {
                        State::Len { tag, named, shape }
                    } else {
                        let n = self.u32_field();
                        let at = self.field_start;
                        if shape.is_multi() {
                            check_count(n, at, &self.limits)?;
                        } else {
                            check_len(n, at, &self.limits)?;
                        }
                        sink(Token::PropStart {
                            tag,
                            named,
                            len_or_count: Some(n),
                        });
                        match shape {
                            Shape::Var | Shape::Fixed(_) => State::Value { left: n as u64 },
                            Shape::MultiFixed(sz) => Self::next_elem(n, Some(sz), sink),
                            Shape::MultiVar => Self::next_elem(n, None, sink),
                        }
                    }
                }
                State::Value { left } => {
                    let take = (left as usize).min(input.len() - i);
                    if take > 0 {
                        sink(Token::ValueChunk(&input[i..i + take]));
                    }
                    i += take;
                    self.pos += take as u64;
                    State::Value {
                        left: left - take as u64,
                    }
                }
                State::ElemLen { elems_left } => {
                    if !self.fill(input, &mut i, 4) {
                        State::ElemLen { elems_left }
                    } else {
                        let len = self.u32_field();
                        check_len(len, self.field_start, &self.limits)?;
                        sink(Token::MvElement { len });
                        State::Elem {
                            left: len,
                            elems_left,
                            fixed: None,
                        }
                    }
                }
                State::Elem {
                    left,
                    elems_left,
                    fixed,
                } => {
                    let take = (left as usize).min(input.len() - i);
                    if take > 0 {
                        sink(Token::ValueChunk(&input[i..i + take]));
                    }
                    i += take;
                    self.pos += take as u64;
                    State::Elem {
                        left: left - take as u32,
                        elems_left,
                        fixed,
                    }
                }
                State::Failed(e) => return Err(e),
            };
            // Close values that completed (possibly with zero bytes consumed).
            self.state = match std::mem::replace(&mut self.state, State::Word) {
                State::Value { left: 0 } => {
                    sink(Token::PropEnd);
                    State::Word
                }
                State::Elem {
                    left: 0,
                    elems_left,
                    fixed,
                } => Self::next_elem(elems_left - 1, fixed, sink),
                s => s,
            };
        }
        Ok(())
    }
}

/// Rebuilds whole [`Element`]s from tokens: the lexer's "whole value" mode, for
/// small values or tests. Value bytes are copied into owned [`Bytes`].
#[derive(Debug, Default)]
pub struct ElementCollector {
    cur: Option<Partial>,
    out: Vec<Element>,
}

/// The property being collected.
#[derive(Debug)]
struct Partial {
    tag: u32,
    named: Option<NamedProp>,
    /// The value bytes (single-valued) or one buffer per element (multi-valued).
    data: Collected,
}

#[derive(Debug)]
enum Collected {
    Single(Vec<u8>),
    Multi(Vec<Vec<u8>>),
}

impl ElementCollector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, tok: Token<'_>) {
        match tok {
            Token::Marker(m) => self.out.push(Element::Marker(m)),
            Token::PropStart { tag, named, .. } => {
                let multi = value_shape(tag).is_some_and(Shape::is_multi);
                let data = if multi {
                    Collected::Multi(Vec::new())
                } else {
                    Collected::Single(Vec::new())
                };
                self.cur = Some(Partial { tag, named, data });
            }
            Token::MvElement { .. } => {
                if let Some(Partial {
                    data: Collected::Multi(items),
                    ..
                }) = &mut self.cur
                {
                    items.push(Vec::new());
                }
            }
            Token::ValueChunk(c) => match self.cur.as_mut().map(|p| &mut p.data) {
                Some(Collected::Multi(items)) => {
                    if let Some(last) = items.last_mut() {
                        last.extend_from_slice(c);
                    }
                }
                Some(Collected::Single(v)) => v.extend_from_slice(c),
                None => {}
            },
            Token::PropEnd => {
                if let Some(Partial { tag, named, data }) = self.cur.take() {
                    let data = match data {
                        Collected::Multi(items) => {
                            PropData::Multi(items.into_iter().map(Bytes::from).collect())
                        }
                        Collected::Single(v) => PropData::Single(Bytes::from(v)),
                    };
                    self.out.push(Element::Prop(Prop { tag, named, data }));
                }
            }
        }
    }

    pub fn into_elements(self) -> Vec<Element> {
        self.out
    }
}

/// Lexes a stream given as a sequence of chunks into whole elements.
pub fn lex_elements<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    limits: &Limits,
) -> Result<Vec<Element>, Error> {
    let mut lexer = Lexer::new(limits.clone());
    let mut col = ElementCollector::new();
    for c in chunks {
        lexer.feed(c, &mut |t| col.push(t))?;
    }
    lexer.finish()?;
    Ok(col.into_elements())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(chunks: &[&[u8]]) -> (Vec<String>, Result<(), Error>) {
        let mut lx = Lexer::new(Limits::default());
        let mut out = Vec::new();
        for c in chunks {
            if let Err(e) = lx.feed(c, &mut |t| out.push(format!("{t:?}"))) {
                return (out, Err(e));
            }
        }
        (out, lx.finish())
    }

    #[test]
    fn boolean_is_two_bytes_and_markers_by_full_value() {
        let s = hex("0B002900 0100 0B007440 0201 7B40");
        let mut lx = Lexer::new(Limits::default());
        let mut out = Vec::new();
        lx.feed(&s, &mut |t| out.push(t)).unwrap();
        lx.finish().unwrap();
        assert_eq!(
            out,
            [
                Token::PropStart {
                    tag: 0x0029_000B,
                    named: None,
                    len_or_count: None
                },
                Token::ValueChunk(&[1, 0]),
                Token::PropEnd,
                Token::Marker(markers::INCR_SYNC_PROGRESS_MODE),
                Token::Marker(markers::INCR_SYNC_GROUP_INFO),
            ]
        );
    }

    #[test]
    fn truncation_reports_field_and_need() {
        let s = hex("1F003700 06000000 4800");
        let (_, r) = toks(&[&s]);
        let e = r.unwrap_err();
        assert_eq!(e.offset, 10);
        assert_eq!(
            e.kind,
            ErrorKind::Truncated {
                what: field::VALUE,
                need: 4
            }
        );
    }

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
