//! The decoder: contiguous FTS bytes → [`Root`].
//!
//! # Why a second parser next to the lexer
//! Decoding a stored item is the hot path (export, indexing at import). When
//! the whole FTS is in memory, a slice-based reader is far cheaper than the
//! push lexer: values become zero-copy [`Bytes::slice`]s of the input, so a
//! message with a 5 MB attachment costs a scan of its headers, not a copy of its
//! data. The element rules are the lexer's ([`crate::lex::value_shape`], the
//! same limit checks in the same order, the same field names in truncation
//! errors); `tests/lexer_vs_decoder.rs` proves both produce identical elements
//! and errors on the same inputs at every split point.
//!
//! # Root selection (for [`decode_fts`] and [`crate::decode()`])
//! Decided from the start of the stream, before any value is kept:
//! - empty input → an empty `messageContent`;
//! - `StartMessage`/`StartFAIMsg` first → `message` when the stream is exactly
//!   one message, else `messageList`;
//! - `MetaTagEcWarning` followed by `StartMessage`/`StartFAIMsg` → `messageList`;
//! - a folder, ICS or errorInfo marker first → [`Root::Elements`];
//! - otherwise (a propValue, `StartRecip` or `NewAttach` first) → `messageContent`,
//!   **unless the leading propList of the top level ends in a non-message signal**:
//!   a folder/ICS/errorInfo marker, a `MetaTagFXDelProp` whose value is neither
//!   PidTagMessageRecipients nor PidTagMessageAttachments (folders use
//!   0x360F000D/0x3610000D), or a `MetaTagNewFXFolder` propValue. Those streams
//!   are folder or ICS content and decode as [`Root::Elements`].
//!
//! Once a stream has been taken as a message (a message marker or a message
//! `MetaTagFXDelProp` has been seen at the top level, or anything at all inside a
//! recipient, attachment, embedded message or `message`), the grammar is
//! enforced strictly: a marker or propValue out of place (EndEmbed without
//! StartEmbed, StartRecip inside an attachment, a property after the
//! attachments, a second FXDelProp for the same list…), a missing end marker,
//! or nesting deeper than [`Limits::max_depth`] is an [`Error`] with the offset
//! of the offending element. Nothing falls back to `Elements` after that point.
//! [`decode_fts_as`] forces a root and never falls back.
//!
//! # MetaTagFXDelProp slots
//! `messageContent` has two optional FXDelProp slots (before the recipients and
//! before the attachments). The first FXDelProp after the propList fills the
//! attachment slot iff its value is PidTagMessageAttachments and the next
//! element is neither `StartRecip` nor another FXDelProp; otherwise it fills the
//! recipient slot. A second one fills the attachment slot. The writer emits the
//! slots in grammar order, so every accepted stream re-encodes byte for byte.
//!
//! # Accepted with a warning
//! An attachment whose first property is not PidTagAttachNumber is kept as is
//! and reported as [`WarningKind::MissingAttachNumber`].

use crate::ast::{
    Attachment, Element, Guid, Message, MessageContent, NamedProp, Prop, PropData, PropName,
    Recipient, Root, RootKind,
};
use crate::error::{Error, ErrorKind, Limits, Warning, WarningKind};
use crate::frame::{self, Framing};
use crate::lex::{Shape, check_count, check_len, field, is_named_id, value_shape};
use crate::markers::{self, delprop, meta};
use bytes::Bytes;

/// A decoded input: the framing (when the input was framed) and the FTS root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub framing: Option<Framing>,
    pub root: Root,
    /// Grammar-level warnings (offsets in the original input). Frame-level
    /// warnings are in [`Framing::warnings`].
    pub warnings: Vec<Warning>,
}

/// Decodes framed or raw input (auto-detected, see [`frame::is_framed`]).
pub fn decode(input: &Bytes) -> Result<Decoded, Error> {
    decode_with_limits(input, &Limits::default())
}

/// [`decode`] with explicit limits.
pub fn decode_with_limits(input: &Bytes, limits: &Limits) -> Result<Decoded, Error> {
    check_total(input.len(), limits)?;
    if !frame::is_framed(input) {
        let (root, warnings) = parse(input, None, limits)?;
        return Ok(Decoded {
            framing: None,
            root,
            warnings,
        });
    }
    let (framing, fts) = frame::unframe(input)?;
    finish_framed(framing, &fts, input.len(), limits)
}

/// [`decode`] of an owned buffer, for callers that hold the only copy of a
/// large input (the import endpoint): framed input is unframed in place
/// ([`frame::unframe_vec`]), so decoding never allocates a second buffer the
/// size of the input. Returns the decoded stream and the unframed FTS its
/// values borrow from; `Framing::parts` rebuilds the framed bytes from it.
pub fn decode_vec(input: Vec<u8>, limits: &Limits) -> Result<(Decoded, Bytes), Error> {
    check_total(input.len(), limits)?;
    if !frame::is_framed(&input) {
        let fts = Bytes::from(input);
        let (root, warnings) = parse(&fts, None, limits)?;
        return Ok((
            Decoded {
                framing: None,
                root,
                warnings,
            },
            fts,
        ));
    }
    let input_len = input.len();
    let (framing, fts) = frame::unframe_vec(input)?;
    let decoded = finish_framed(framing, &fts, input_len, limits)?;
    Ok((decoded, fts))
}

/// The grammar over an unframed FTS, with errors and warnings reported at
/// offsets of the framed input (`input_len` bytes).
fn finish_framed(
    framing: frame::Framing,
    fts: &Bytes,
    input_len: usize,
    limits: &Limits,
) -> Result<Decoded, Error> {
    match parse(fts, None, limits) {
        Ok((root, mut warnings)) => {
            if let Some(need) = framing.truncated {
                return Err(Error::new(
                    input_len as u64,
                    ErrorKind::Truncated {
                        what: "frame record",
                        need,
                    },
                ));
            }
            for w in &mut warnings {
                w.offset = framing.map_offset(w.offset);
            }
            Ok(Decoded {
                framing: Some(framing),
                root,
                warnings,
            })
        }
        Err(mut e) => {
            if let Some(need) = framing.truncated
                && e.is_truncation()
            {
                // The FTS ran out because the frame did: report the frame.
                return Err(Error::new(
                    input_len as u64,
                    ErrorKind::Truncated {
                        what: "frame record",
                        need,
                    },
                ));
            }
            e.offset = framing.map_offset(e.offset);
            Err(e)
        }
    }
}

/// Decodes a raw (unframed) FTS, choosing the root as described in the module docs.
pub fn decode_fts(input: &Bytes) -> Result<Root, Error> {
    decode_fts_with_limits(input, &Limits::default())
}

/// [`decode_fts`] with explicit limits.
pub fn decode_fts_with_limits(input: &Bytes, limits: &Limits) -> Result<Root, Error> {
    check_total(input.len(), limits)?;
    Ok(parse(input, None, limits)?.0)
}

/// Decodes a raw FTS as the given root, strictly (no fallback).
pub fn decode_fts_as(input: &Bytes, kind: RootKind) -> Result<Root, Error> {
    decode_fts_as_with_limits(input, kind, &Limits::default())
}

/// [`decode_fts_as`] with explicit limits.
pub fn decode_fts_as_with_limits(
    input: &Bytes,
    kind: RootKind,
    limits: &Limits,
) -> Result<Root, Error> {
    check_total(input.len(), limits)?;
    Ok(parse(input, Some(kind), limits)?.0)
}

fn check_total(len: usize, limits: &Limits) -> Result<(), Error> {
    if len as u64 > limits.max_total_size {
        return Err(Error::new(
            limits.max_total_size,
            ErrorKind::TotalSizeExceeded {
                max: limits.max_total_size,
            },
        ));
    }
    Ok(())
}

fn parse(
    input: &Bytes,
    kind: Option<RootKind>,
    limits: &Limits,
) -> Result<(Root, Vec<Warning>), Error> {
    let mut p = Parser {
        r: Reader {
            src: input,
            d: input,
            pos: 0,
            limits,
        },
        warnings: Vec::new(),
    };
    let root = match kind {
        Some(k) => p.root_as(k)?,
        None => p.root_auto()?,
    };
    Ok((root, p.warnings))
}

// ---------------------------------------------------------------------------
// Element reader

/// A cursor over a contiguous FTS. Cheap to copy (used for look-ahead).
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    src: &'a Bytes,
    d: &'a [u8],
    pos: usize,
    limits: &'a Limits,
}

impl<'a> Reader<'a> {
    #[inline]
    fn trunc(&self, what: &'static str, n: usize) -> Error {
        Error::new(
            self.d.len() as u64,
            ErrorKind::Truncated {
                what,
                need: (n - (self.d.len() - self.pos)) as u64,
            },
        )
    }

    #[inline]
    fn take(&mut self, n: usize, what: &'static str) -> Result<usize, Error> {
        if self.d.len() - self.pos < n {
            return Err(self.trunc(what, n));
        }
        let at = self.pos;
        self.pos += n;
        Ok(at)
    }

    #[inline]
    fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        let at = self.take(4, what)?;
        Ok(u32::from_le_bytes([
            self.d[at],
            self.d[at + 1],
            self.d[at + 2],
            self.d[at + 3],
        ]))
    }

    #[inline]
    fn slice(&mut self, n: usize, what: &'static str) -> Result<Bytes, Error> {
        let at = self.take(n, what)?;
        Ok(self.src.slice(at..at + n))
    }

    /// The next word without consuming it: None at the end, an error for a partial word.
    #[inline]
    fn peek(&self) -> Result<Option<u32>, Error> {
        if self.pos == self.d.len() {
            return Ok(None);
        }
        let mut r = *self;
        r.u32(field::TAG).map(Some)
    }

    fn named(&mut self) -> Result<NamedProp, Error> {
        let at = self.take(16, field::GUID)?;
        let guid = Guid(self.d[at..at + 16].try_into().expect("16 bytes"));
        let kat = self.take(1, field::KIND)?;
        let name = match self.d[kat] {
            0 => PropName::Id(self.u32(field::DISPID)?),
            1 => {
                let start = self.pos;
                let max = self.limits.max_name_len as usize;
                let mut n = 0usize;
                loop {
                    let p = start + 2 * n;
                    if self.d.len() < p + 2 {
                        return Err(Error::new(self.d.len() as u64, ErrorKind::UnterminatedName));
                    }
                    if self.d[p] == 0 && self.d[p + 1] == 0 {
                        break;
                    }
                    if n >= max {
                        return Err(Error::new(
                            p as u64,
                            ErrorKind::NameTooLong {
                                max: self.limits.max_name_len,
                            },
                        ));
                    }
                    n += 1;
                }
                let units = self.d[start..start + 2 * n]
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                self.pos = start + 2 * n + 2;
                PropName::Name(units)
            }
            k => return Err(Error::new(kat as u64, ErrorKind::BadNamedKind(k))),
        };
        Ok(NamedProp { guid, name })
    }

    /// Reads what follows a non-marker tag that starts at `at`.
    #[inline]
    fn prop_body(&mut self, tag: u32, at: usize) -> Result<Prop, Error> {
        let shape = value_shape(tag)
            .ok_or_else(|| Error::new(at as u64, ErrorKind::UnknownType { tag }))?;
        let named = if is_named_id(tag) {
            Some(self.named()?)
        } else {
            None
        };
        let data = match shape {
            Shape::Fixed(n) => PropData::Single(self.slice(n, field::VALUE)?),
            Shape::Var => {
                let lat = self.pos;
                let len = self.u32(field::LEN)?;
                check_len(len, lat as u64, self.limits)?;
                PropData::Single(self.slice(len as usize, field::VALUE)?)
            }
            Shape::MultiFixed(n) => {
                let cat = self.pos;
                let count = self.u32(field::COUNT)?;
                check_count(count, cat as u64, self.limits)?;
                let fit = (self.d.len() - self.pos) / n;
                let mut items = Vec::with_capacity((count as usize).min(fit));
                for _ in 0..count {
                    items.push(self.slice(n, field::ELEM)?);
                }
                PropData::Multi(items)
            }
            Shape::MultiVar => {
                let cat = self.pos;
                let count = self.u32(field::COUNT)?;
                check_count(count, cat as u64, self.limits)?;
                let fit = (self.d.len() - self.pos) / 4;
                let mut items = Vec::with_capacity((count as usize).min(fit));
                for _ in 0..count {
                    let lat = self.pos;
                    let len = self.u32(field::ELEM_LEN)?;
                    check_len(len, lat as u64, self.limits)?;
                    items.push(self.slice(len as usize, field::ELEM)?);
                }
                PropData::Multi(items)
            }
        };
        Ok(Prop { tag, named, data })
    }

    /// Reads one element.
    #[inline]
    fn element(&mut self) -> Result<Element, Error> {
        let at = self.pos;
        let w = self.u32(field::TAG)?;
        if markers::is_marker(w) {
            Ok(Element::Marker(w))
        } else {
            Ok(Element::Prop(self.prop_body(w, at)?))
        }
    }
}

/// Reads every element of a contiguous FTS with the decoder's reader (used by
/// tests to compare with [`crate::lex::lex_elements`]).
pub fn read_elements(input: &Bytes, limits: &Limits) -> Result<Vec<Element>, Error> {
    check_total(input.len(), limits)?;
    let mut r = Reader {
        src: input,
        d: input,
        pos: 0,
        limits,
    };
    let mut out = Vec::new();
    while r.pos < r.d.len() {
        out.push(r.element()?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Grammar

struct Parser<'a> {
    r: Reader<'a>,
    warnings: Vec<Warning>,
}

/// What ends the outermost messageContent being parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Eof,
    Marker(u32),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// In the propList.
    Props,
    /// After the recipient FXDelProp or a recipient.
    Recips,
    /// After the attachment FXDelProp or an attachment.
    Attachs,
}

struct Level {
    mc: MessageContent,
    stage: Stage,
    /// The attachment whose embedded message is the next level (with the
    /// offset of its NewAttach), while that level is being parsed.
    pending: Option<Attachment>,
}

impl Level {
    fn new() -> Level {
        Level {
            mc: MessageContent::default(),
            stage: Stage::Props,
            pending: None,
        }
    }
}

const CTX_CONTENT: &str = "messageContent";
const CTX_RECIP: &str = "recipient";
const CTX_ATTACH: &str = "attachment propList";
const CTX_AFTER_EMBED: &str = "attachment after EndEmbed";
const CTX_LIST: &str = "messageList";
const CTX_ATTACH_CONTENT: &str = "attachmentContent";

fn marker_err(at: usize, marker: u32, context: &'static str, expected: &'static str) -> Error {
    Error::new(
        at as u64,
        ErrorKind::MarkerOutOfPlace {
            marker,
            context,
            expected,
        },
    )
}

fn prop_err(at: usize, tag: u32, context: &'static str, expected: &'static str) -> Error {
    Error::new(
        at as u64,
        ErrorKind::PropOutOfPlace {
            tag,
            context,
            expected,
        },
    )
}

fn delprop_value(p: &Prop) -> Option<u32> {
    match &p.data {
        PropData::Single(b) if b.len() == 4 => Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        _ => None,
    }
}

impl Parser<'_> {
    fn end_err(&self, context: &'static str, expected: &'static str) -> Error {
        Error::new(
            self.r.pos as u64,
            ErrorKind::UnexpectedEnd { context, expected },
        )
    }

    fn root_auto(&mut self) -> Result<Root, Error> {
        let first = match self.r.peek()? {
            None => return Ok(Root::MessageContent(MessageContent::default())),
            Some(w) => w,
        };
        if first == markers::START_MESSAGE || first == markers::START_FAI_MSG {
            return self.message_list_or_message();
        }
        if first == meta::EC_WARNING {
            let mut look = self.r;
            look.element()?;
            if matches!(
                look.peek(),
                Ok(Some(markers::START_MESSAGE | markers::START_FAI_MSG))
            ) {
                return Ok(Root::MessageList(self.message_list()?));
            }
        }
        if markers::is_marker(first) && !markers::is_message_marker(first) {
            return Ok(Root::Elements(self.elements()?));
        }
        match self.content(End::Eof, 0, true)? {
            Some(mc) => Ok(Root::MessageContent(mc)),
            None => {
                self.r.pos = 0;
                self.warnings.clear();
                Ok(Root::Elements(self.elements()?))
            }
        }
    }

    fn root_as(&mut self, kind: RootKind) -> Result<Root, Error> {
        Ok(match kind {
            RootKind::MessageContent => Root::MessageContent(
                self.content(End::Eof, 0, false)?
                    .expect("no fallback when not auto"),
            ),
            RootKind::Message => {
                let m = self.message()?;
                if let Some(w) = self.r.peek()? {
                    let at = self.r.pos;
                    return Err(if markers::is_marker(w) {
                        marker_err(at, w, "message", "end of input after EndMessage")
                    } else {
                        prop_err(at, w, "message", "end of input after EndMessage")
                    });
                }
                Root::Message(m)
            }
            RootKind::MessageList => Root::MessageList(self.message_list()?),
            RootKind::AttachmentContent => Root::AttachmentContent(self.attachment_content()?),
            RootKind::Elements => Root::Elements(self.elements()?),
        })
    }

    fn elements(&mut self) -> Result<Vec<Element>, Error> {
        let mut out = Vec::new();
        while self.r.pos < self.r.d.len() {
            out.push(self.r.element()?);
        }
        Ok(out)
    }

    fn message_list_or_message(&mut self) -> Result<Root, Error> {
        let mut list = self.message_list()?;
        if list.len() == 1 && list[0].0.is_none() {
            let (_, m) = list.pop().expect("one message");
            Ok(Root::Message(m))
        } else {
            Ok(Root::MessageList(list))
        }
    }

    /// `(StartMessage | StartFAIMsg) messageContent EndMessage`
    fn message(&mut self) -> Result<Message, Error> {
        let at = self.r.pos;
        match self.r.peek()? {
            None => Err(self.end_err("message", "StartMessage or StartFAIMsg")),
            Some(w @ (markers::START_MESSAGE | markers::START_FAI_MSG)) => {
                self.r.pos += 4;
                let content = self
                    .content(End::Marker(markers::END_MESSAGE), 0, false)?
                    .expect("no fallback when not auto");
                Ok(Message {
                    fai: w == markers::START_FAI_MSG,
                    content,
                })
            }
            Some(w) if markers::is_marker(w) => {
                Err(marker_err(at, w, "message", "StartMessage or StartFAIMsg"))
            }
            Some(w) => Err(prop_err(at, w, "message", "StartMessage or StartFAIMsg")),
        }
    }

    /// `([MetaTagEcWarning] message)*`
    fn message_list(&mut self) -> Result<Vec<(Option<Prop>, Message)>, Error> {
        let mut out = Vec::new();
        while let Some(w) = self.r.peek()? {
            let at = self.r.pos;
            let warning = if w == meta::EC_WARNING {
                match self.r.element()? {
                    Element::Prop(p) => Some(p),
                    Element::Marker(_) => unreachable!("EcWarning is not a marker"),
                }
            } else if w == markers::START_MESSAGE || w == markers::START_FAI_MSG {
                None
            } else if markers::is_marker(w) {
                return Err(marker_err(
                    at,
                    w,
                    CTX_LIST,
                    "StartMessage, StartFAIMsg or MetaTagEcWarning",
                ));
            } else {
                return Err(prop_err(
                    at,
                    w,
                    CTX_LIST,
                    "StartMessage, StartFAIMsg or MetaTagEcWarning",
                ));
            };
            out.push((warning, self.message()?));
        }
        Ok(out)
    }

    /// `attachmentContent := propList [StartEmbed messageContent EndEmbed]`, to the end.
    fn attachment_content(&mut self) -> Result<Attachment, Error> {
        let mut att = Attachment::default();
        loop {
            let at = self.r.pos;
            match self.r.peek()? {
                None => return Ok(att),
                Some(markers::START_EMBED) => {
                    self.r.pos += 4;
                    self.check_depth(1, at)?;
                    let mc = self
                        .content(End::Marker(markers::END_EMBED), 1, false)?
                        .expect("no fallback when not auto");
                    att.embedded = Some(Box::new(mc));
                    if let Some(w) = self.r.peek()? {
                        let at = self.r.pos;
                        return Err(if markers::is_marker(w) {
                            marker_err(at, w, CTX_ATTACH_CONTENT, "end of input after EndEmbed")
                        } else {
                            prop_err(at, w, CTX_ATTACH_CONTENT, "end of input after EndEmbed")
                        });
                    }
                    return Ok(att);
                }
                Some(w) if markers::is_marker(w) => {
                    return Err(marker_err(
                        at,
                        w,
                        CTX_ATTACH_CONTENT,
                        "a propValue or StartEmbed",
                    ));
                }
                Some(_) => match self.r.element()? {
                    Element::Prop(p) => att.props.push(p),
                    Element::Marker(_) => unreachable!("checked above"),
                },
            }
        }
    }

    fn check_depth(&self, depth: u32, at: usize) -> Result<(), Error> {
        if depth > self.r.limits.max_depth {
            return Err(Error::new(
                at as u64,
                ErrorKind::DepthExceeded {
                    max: self.r.limits.max_depth,
                },
            ));
        }
        Ok(())
    }

    /// `StartRecip` has been read: `propList EndToRecip`.
    fn recipient(&mut self) -> Result<Recipient, Error> {
        let mut rc = Recipient::default();
        loop {
            let at = self.r.pos;
            match self.r.peek()? {
                None => return Err(self.end_err(CTX_RECIP, "EndToRecip")),
                Some(markers::END_TO_RECIP) => {
                    self.r.pos += 4;
                    return Ok(rc);
                }
                Some(w) if markers::is_marker(w) => {
                    return Err(marker_err(at, w, CTX_RECIP, "a propValue or EndToRecip"));
                }
                Some(w) => {
                    self.r.pos += 4;
                    rc.props.push(self.r.prop_body(w, at)?);
                }
            }
        }
    }

    /// `NewAttach` (at `at`) has been read: reads the attachment propList and
    /// returns the marker that ended it (EndAttach or StartEmbed, consumed).
    fn attachment_props(&mut self, at_new: usize) -> Result<(Attachment, u32), Error> {
        let mut att = Attachment::default();
        loop {
            let at = self.r.pos;
            match self.r.peek()? {
                None => return Err(self.end_err(CTX_ATTACH, "EndAttach or StartEmbed")),
                Some(w @ (markers::END_ATTACH | markers::START_EMBED)) => {
                    self.r.pos += 4;
                    if att.props.first().map(|p| p.tag) != Some(markers::PID_TAG_ATTACH_NUMBER) {
                        self.warnings.push(Warning {
                            offset: at_new as u64,
                            kind: WarningKind::MissingAttachNumber,
                        });
                    }
                    return Ok((att, w));
                }
                Some(w) if markers::is_marker(w) => {
                    return Err(marker_err(
                        at,
                        w,
                        CTX_ATTACH,
                        "a propValue, EndAttach or StartEmbed",
                    ));
                }
                Some(w) => {
                    self.r.pos += 4;
                    att.props.push(self.r.prop_body(w, at)?);
                }
            }
        }
    }

    /// After EndEmbed: EndAttach must follow.
    fn expect_end_attach(&mut self) -> Result<(), Error> {
        let at = self.r.pos;
        match self.r.peek()? {
            Some(markers::END_ATTACH) => {
                self.r.pos += 4;
                Ok(())
            }
            None => Err(self.end_err(CTX_AFTER_EMBED, "EndAttach")),
            Some(w) if markers::is_marker(w) => {
                Err(marker_err(at, w, CTX_AFTER_EMBED, "EndAttach"))
            }
            Some(w) => Err(prop_err(at, w, CTX_AFTER_EMBED, "EndAttach")),
        }
    }

    /// Parses a messageContent and every embedded message inside it, iteratively
    /// (an explicit stack, so depth costs heap, not call stack). `end` is what
    /// terminates the outermost level; `base_depth` is its embedding depth.
    /// Returns None only when `auto` and the stream turned out not to be a
    /// message (see the module docs).
    fn content(
        &mut self,
        end: End,
        base_depth: u32,
        auto: bool,
    ) -> Result<Option<MessageContent>, Error> {
        let mut stack: Vec<Level> = vec![Level::new()];
        loop {
            let at = self.r.pos;
            let top = stack.len() - 1;
            let lvl = stack.last_mut().expect("non-empty stack");
            let word = self.r.peek()?;
            let ctx = if top == 0 && base_depth == 0 {
                CTX_CONTENT
            } else {
                "embedded messageContent"
            };
            match word {
                None => {
                    if top == 0 && end == End::Eof {
                        return Ok(stack.pop().map(|l| l.mc));
                    }
                    let expected = if top > 0 || end == End::Marker(markers::END_EMBED) {
                        "EndEmbed"
                    } else {
                        "EndMessage"
                    };
                    return Err(self.end_err(ctx, expected));
                }
                Some(w) if markers::is_marker(w) => {
                    match w {
                        markers::START_RECIP if lvl.stage != Stage::Attachs => {
                            self.r.pos += 4;
                            let rc = self.recipient()?;
                            let lvl = stack.last_mut().expect("non-empty stack");
                            lvl.mc.recipients.push(rc);
                            lvl.stage = Stage::Recips;
                        }
                        markers::NEW_ATTACH => {
                            self.r.pos += 4;
                            let (att, ended) = self.attachment_props(at)?;
                            let depth = base_depth + stack.len() as u32;
                            let lvl = stack.last_mut().expect("non-empty stack");
                            lvl.stage = Stage::Attachs;
                            if ended == markers::END_ATTACH {
                                lvl.mc.attachments.push(att);
                            } else {
                                // StartEmbed: its offset is the 4 bytes before pos.
                                self.check_depth(depth, self.r.pos - 4)?;
                                lvl.pending = Some(att);
                                stack.push(Level::new());
                            }
                        }
                        markers::END_EMBED if top > 0 => {
                            self.r.pos += 4;
                            let done = stack.pop().expect("top > 0");
                            self.expect_end_attach()?;
                            let parent = stack.last_mut().expect("top > 0");
                            let mut att = parent.pending.take().expect("pending attachment");
                            att.embedded = Some(Box::new(done.mc));
                            parent.mc.attachments.push(att);
                        }
                        _ if top == 0 && end == End::Marker(w) => {
                            self.r.pos += 4;
                            return Ok(stack.pop().map(|l| l.mc));
                        }
                        _ if auto
                            && top == 0
                            && lvl.stage == Stage::Props
                            && !markers::is_message_marker(w) =>
                        {
                            return Ok(None);
                        }
                        _ => {
                            let expected = match lvl.stage {
                                Stage::Props | Stage::Recips => {
                                    "a propValue, MetaTagFXDelProp, StartRecip, NewAttach or the end of the message"
                                }
                                Stage::Attachs => "NewAttach or the end of the message",
                            };
                            return Err(marker_err(at, w, ctx, expected));
                        }
                    }
                }
                Some(meta::FX_DEL_PROP) => {
                    let p = match self.r.element()? {
                        Element::Prop(p) => p,
                        Element::Marker(_) => unreachable!("FXDelProp is not a marker"),
                    };
                    let v = delprop_value(&p);
                    let lvl = stack.last_mut().expect("non-empty stack");
                    match lvl.stage {
                        Stage::Props => {
                            if auto
                                && top == 0
                                && v != Some(delprop::RECIPIENTS)
                                && v != Some(delprop::ATTACHMENTS)
                            {
                                return Ok(None);
                            }
                            let next = self.r.peek().ok().flatten();
                            if v == Some(delprop::ATTACHMENTS)
                                && next != Some(markers::START_RECIP)
                                && next != Some(meta::FX_DEL_PROP)
                            {
                                lvl.mc.attach_delprop = Some(p);
                                lvl.stage = Stage::Attachs;
                            } else {
                                lvl.mc.recip_delprop = Some(p);
                                lvl.stage = Stage::Recips;
                            }
                        }
                        Stage::Recips => {
                            lvl.mc.attach_delprop = Some(p);
                            lvl.stage = Stage::Attachs;
                        }
                        Stage::Attachs => {
                            return Err(prop_err(
                                at,
                                meta::FX_DEL_PROP,
                                ctx,
                                "NewAttach or the end of the message (MetaTagFXDelProp must precede the attachments)",
                            ));
                        }
                    }
                }
                Some(w) => {
                    if lvl.stage != Stage::Props {
                        return Err(prop_err(
                            at,
                            w,
                            ctx,
                            "StartRecip, NewAttach, MetaTagFXDelProp or the end of the message (properties belong before the recipients)",
                        ));
                    }
                    if auto && top == 0 && w == meta::NEW_FX_FOLDER {
                        return Ok(None);
                    }
                    self.r.pos += 4;
                    let p = self.r.prop_body(w, at)?;
                    stack.last_mut().expect("non-empty stack").mc.props.push(p);
                }
            }
        }
    }
}
