//! The writer: [`Root`] → FTS bytes (and framed bytes for a [`Decoded`]).
//!
//! The writer is the exact inverse of the decoder: it writes each element's raw
//! tag, the named-property definition at every occurrence, and the value bytes
//! as kept; the u32 lengths and counts are derived from the data. Markers are
//! written in grammar order around the structure (StartRecip/EndToRecip,
//! NewAttach/EndAttach, StartEmbed/EndEmbed, StartMessage|StartFAIMsg/EndMessage).
//! So `encode(decode(x)) == x` for every accepted input.
//!
//! The writer does not second-guess its input: a [`Prop`] whose tag is a marker
//! value or has an invalid type, whose named info disagrees with its id, or
//! whose data has the wrong shape or size, is written as given and will not
//! decode back. [`validate`] checks a hand-built tree first; trees produced by
//! the decoder always pass.

use crate::ast::{
    Attachment, Element, Message, MessageContent, NamedProp, Prop, PropData, PropName, Root,
};
use crate::decode::Decoded;
use crate::frame::FramedWriter;
use crate::lex::{Shape, is_named_id, value_shape};
use crate::markers;
use std::io::{self, Write};

/// Encodes a root to a new buffer of exactly [`encoded_len`] bytes.
pub fn encode_fts(root: &Root) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(root));
    encode_fts_into(root, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Encodes a root into any writer.
pub fn encode_fts_into(root: &Root, w: &mut impl Write) -> io::Result<()> {
    match root {
        Root::MessageContent(mc) => content(w, mc),
        Root::Message(m) => message(w, m),
        Root::AttachmentContent(a) => {
            props(w, &a.props)?;
            embedded(w, a)
        }
        Root::MessageList(list) => {
            for (warning, m) in list {
                if let Some(p) = warning {
                    prop(w, p)?;
                }
                message(w, m)?;
            }
            Ok(())
        }
        Root::Elements(els) => {
            for e in els {
                match e {
                    Element::Marker(m) => marker(w, *m)?,
                    Element::Prop(p) => prop(w, p)?,
                }
            }
            Ok(())
        }
    }
}

/// Encodes a decoded input: framed again when it was framed (see
/// [`crate::frame::Framing::write`] for how chunk sizes are kept), raw otherwise.
pub fn encode(decoded: &Decoded) -> Vec<u8> {
    let len = encoded_len(&decoded.root);
    let cap = decoded.framing.as_ref().map_or(len, |f| f.framed_len(len));
    let mut out = Vec::with_capacity(cap);
    encode_into(decoded, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// [`encode`] into any writer, in one pass (the FTS is framed as it is written).
pub fn encode_into(decoded: &Decoded, w: &mut impl Write) -> io::Result<()> {
    match &decoded.framing {
        None => encode_fts_into(&decoded.root, w),
        Some(f) => {
            let layout = f.layout_for(encoded_len(&decoded.root));
            let mut fw = FramedWriter::new(w, layout);
            encode_fts_into(&decoded.root, &mut fw)?;
            fw.finish()
        }
    }
}

/// The exact number of bytes [`encode_fts`] produces.
pub fn encoded_len(root: &Root) -> usize {
    match root {
        Root::MessageContent(mc) => content_len(mc),
        Root::Message(m) => 8 + content_len(&m.content),
        Root::AttachmentContent(a) => props_len(&a.props) + embedded_len(a),
        Root::MessageList(list) => list
            .iter()
            .map(|(wp, m)| wp.as_ref().map_or(0, prop_len) + 8 + content_len(&m.content))
            .sum(),
        Root::Elements(els) => els
            .iter()
            .map(|e| match e {
                Element::Marker(_) => 4,
                Element::Prop(p) => prop_len(p),
            })
            .sum(),
    }
}

fn marker(w: &mut impl Write, m: u32) -> io::Result<()> {
    w.write_all(&m.to_le_bytes())
}

fn u32le(w: &mut impl Write, v: usize) -> io::Result<()> {
    w.write_all(&(v as u32).to_le_bytes())
}

fn named(w: &mut impl Write, n: &NamedProp) -> io::Result<()> {
    w.write_all(&n.guid.0)?;
    match &n.name {
        PropName::Id(id) => {
            w.write_all(&[0])?;
            w.write_all(&id.to_le_bytes())
        }
        PropName::Name(units) => {
            w.write_all(&[1])?;
            let mut buf = Vec::with_capacity(units.len() * 2 + 2);
            for u in units {
                buf.extend_from_slice(&u.to_le_bytes());
            }
            buf.extend_from_slice(&[0, 0]);
            w.write_all(&buf)
        }
    }
}

fn named_len(n: &NamedProp) -> usize {
    16 + 1
        + match &n.name {
            PropName::Id(_) => 4,
            PropName::Name(units) => units.len() * 2 + 2,
        }
}

/// Whether the value bytes carry u32 length prefixes (variable-size elements).
/// Unknown types fall back to the data's own shape with length prefixes.
fn var_elements(tag: u32) -> bool {
    !matches!(
        value_shape(tag),
        Some(Shape::Fixed(_) | Shape::MultiFixed(_))
    )
}

fn prop(w: &mut impl Write, p: &Prop) -> io::Result<()> {
    w.write_all(&p.tag.to_le_bytes())?;
    if let Some(n) = &p.named {
        named(w, n)?;
    }
    let var = var_elements(p.tag);
    match &p.data {
        PropData::Single(b) => {
            if var {
                u32le(w, b.len())?;
            }
            w.write_all(b)
        }
        PropData::Multi(items) => {
            u32le(w, items.len())?;
            for b in items {
                if var {
                    u32le(w, b.len())?;
                }
                w.write_all(b)?;
            }
            Ok(())
        }
    }
}

fn prop_len(p: &Prop) -> usize {
    let var = var_elements(p.tag) as usize;
    4 + p.named.as_ref().map_or(0, named_len)
        + match &p.data {
            PropData::Single(b) => 4 * var + b.len(),
            PropData::Multi(items) => 4 + items.iter().map(|b| 4 * var + b.len()).sum::<usize>(),
        }
}

fn props(w: &mut impl Write, ps: &[Prop]) -> io::Result<()> {
    ps.iter().try_for_each(|p| prop(w, p))
}

fn props_len(ps: &[Prop]) -> usize {
    ps.iter().map(prop_len).sum()
}

fn message(w: &mut impl Write, m: &Message) -> io::Result<()> {
    marker(
        w,
        if m.fai {
            markers::START_FAI_MSG
        } else {
            markers::START_MESSAGE
        },
    )?;
    content(w, &m.content)?;
    marker(w, markers::END_MESSAGE)
}

fn embedded(w: &mut impl Write, a: &Attachment) -> io::Result<()> {
    if let Some(mc) = &a.embedded {
        marker(w, markers::START_EMBED)?;
        content(w, mc)?;
        marker(w, markers::END_EMBED)?;
    }
    Ok(())
}

fn embedded_len(a: &Attachment) -> usize {
    a.embedded.as_ref().map_or(0, |mc| 8 + content_len(mc))
}

fn content(w: &mut impl Write, mc: &MessageContent) -> io::Result<()> {
    props(w, &mc.props)?;
    if let Some(p) = &mc.recip_delprop {
        prop(w, p)?;
    }
    for r in &mc.recipients {
        marker(w, markers::START_RECIP)?;
        props(w, &r.props)?;
        marker(w, markers::END_TO_RECIP)?;
    }
    if let Some(p) = &mc.attach_delprop {
        prop(w, p)?;
    }
    for a in &mc.attachments {
        marker(w, markers::NEW_ATTACH)?;
        props(w, &a.props)?;
        embedded(w, a)?;
        marker(w, markers::END_ATTACH)?;
    }
    Ok(())
}

fn content_len(mc: &MessageContent) -> usize {
    props_len(&mc.props)
        + mc.recip_delprop.as_ref().map_or(0, prop_len)
        + mc.recipients
            .iter()
            .map(|r| 8 + props_len(&r.props))
            .sum::<usize>()
        + mc.attach_delprop.as_ref().map_or(0, prop_len)
        + mc.attachments
            .iter()
            .map(|a| 8 + props_len(&a.props) + embedded_len(a))
            .sum::<usize>()
}

/// Why a hand-built property would not survive encode → decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProp {
    #[error("tag 0x{0:08X} is a marker value")]
    MarkerTag(u32),
    #[error("tag 0x{0:08X} has a type that cannot appear in an FTS")]
    UnknownType(u32),
    #[error("tag 0x{0:08X}: named info must be present iff the id is >= 0x8000")]
    NamedMismatch(u32),
    #[error("tag 0x{0:08X}: single/multi-valued data does not match the type")]
    Shape(u32),
    #[error("tag 0x{tag:08X}: value of {found} bytes where the type needs {expected}")]
    Size {
        tag: u32,
        expected: usize,
        found: usize,
    },
    #[error("tag 0x{0:08X}: a name contains a NUL code unit")]
    NulInName(u32),
    #[error("tag 0x{0:08X}: a length or count does not fit in u32")]
    TooLong(u32),
}

/// Checks one property (see [`InvalidProp`]).
pub fn validate_prop(p: &Prop) -> Result<(), InvalidProp> {
    let t = p.tag;
    if markers::is_marker(t) {
        return Err(InvalidProp::MarkerTag(t));
    }
    let shape = value_shape(t).ok_or(InvalidProp::UnknownType(t))?;
    if is_named_id(t) != p.named.is_some() {
        return Err(InvalidProp::NamedMismatch(t));
    }
    if let Some(NamedProp {
        name: PropName::Name(units),
        ..
    }) = &p.named
        && units.contains(&0)
    {
        return Err(InvalidProp::NulInName(t));
    }
    let size = |expected: usize, b: &[u8]| {
        if b.len() == expected {
            Ok(())
        } else {
            Err(InvalidProp::Size {
                tag: t,
                expected,
                found: b.len(),
            })
        }
    };
    let fits = |n: usize| {
        if n <= u32::MAX as usize {
            Ok(())
        } else {
            Err(InvalidProp::TooLong(t))
        }
    };
    match (&p.data, shape) {
        (PropData::Single(b), Shape::Fixed(n)) => size(n, b),
        (PropData::Single(b), Shape::Var) => fits(b.len()),
        (PropData::Multi(items), Shape::MultiFixed(n)) => {
            fits(items.len())?;
            items.iter().try_for_each(|b| size(n, b))
        }
        (PropData::Multi(items), Shape::MultiVar) => {
            fits(items.len())?;
            items.iter().try_for_each(|b| fits(b.len()))
        }
        _ => Err(InvalidProp::Shape(t)),
    }
}

/// Checks that every property of a tree can be encoded and decoded back
/// unchanged (structure aside: see [`crate::decode()`] for how roots are chosen).
pub fn validate(root: &Root) -> Result<(), InvalidProp> {
    let mut result = Ok(());
    root.for_each_prop(&mut |_, p| {
        if result.is_ok() {
            result = validate_prop(p);
        }
    });
    result
}
