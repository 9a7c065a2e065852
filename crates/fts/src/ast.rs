//! The FTS message grammar as plain data.
//!
//! Everything here is *lossless*: a value is kept as the exact bytes that were on
//! the wire (without the u32 length/count prefixes, which the writer derives), the
//! raw 32-bit tag (so `0x001F`, `0x84B0` and `0x94B0` stay distinct), the named
//! property definition exactly as sent, and the element order. Typed views decode
//! lazily from these bytes (see [`Prop::value`]).
//!
//! `encode(decode(x)) == x` holds for every stream the decoder accepts.

use bytes::Bytes;

/// A GUID in the byte order it has on the wire (Microsoft mixed-endian:
/// Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4 8 raw bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

/// How a named property is identified inside its property set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PropName {
    /// kind 0x00: a numeric dispid (LID).
    Id(u32),
    /// kind 0x01: a name, kept as the raw UTF-16 code units without the NUL
    /// terminator (unpaired surrogates survive a round trip).
    Name(Vec<u16>),
}

/// The inline definition that follows the tag of every property whose id is >= 0x8000.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamedProp {
    pub guid: Guid,
    pub name: PropName,
}

/// The value bytes of a property, as on the wire, without length or count prefixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropData {
    /// A single value: for fixed types exactly the type's size (2 bytes for
    /// PtypBoolean); for variable types the bytes the u32 length covered
    /// (including any string terminator, even a malformed one).
    Single(Bytes),
    /// A multi-valued property (bit 0x1000 of the type, or the MV code-page
    /// form): one entry per element, each the element's bytes (fixed size, or
    /// the bytes its own u32 length covered).
    Multi(Vec<Bytes>),
}

/// One propValue element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prop {
    /// Raw 32-bit tag: property id in the high 16 bits, raw type word in the low 16.
    pub tag: u32,
    /// Present iff the id is >= 0x8000.
    pub named: Option<NamedProp>,
    pub data: PropData,
}

/// A recipient: `StartRecip propList EndToRecip`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Recipient {
    pub props: Vec<Prop>,
}

/// An attachment: `NewAttach propList [embeddedMessage] EndAttach`
/// (the grammar wants PidTagAttachNumber first in `props`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Attachment {
    pub props: Vec<Prop>,
    /// `StartEmbed messageContent EndEmbed`.
    pub embedded: Option<Box<MessageContent>>,
}

/// `messageContent := propList [MetaTagFXDelProp] recipient* [MetaTagFXDelProp] attachment*`
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MessageContent {
    pub props: Vec<Prop>,
    /// The MetaTagFXDelProp element before the recipients, kept whole (tag and value) when present.
    pub recip_delprop: Option<Prop>,
    pub recipients: Vec<Recipient>,
    /// The MetaTagFXDelProp element before the attachments, kept whole when present.
    pub attach_delprop: Option<Prop>,
    pub attachments: Vec<Attachment>,
}

/// `message := (StartMessage | StartFAIMsg) messageContent EndMessage`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// true for StartFAIMsg (folder-associated).
    pub fai: bool,
    pub content: MessageContent,
}

/// One element of the flat lexical stream: used by the permissive fallback root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Element {
    Marker(u32),
    Prop(Prop),
}

/// The root of a decoded FTS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Root {
    /// What Graph/EWS exports carry: a bare messageContent.
    MessageContent(MessageContent),
    Message(Message),
    /// `attachmentContent := propList [embeddedMessage]`
    AttachmentContent(Attachment),
    /// `messageList := ([MetaTagEcWarning] message)*`; the warning is kept whole.
    MessageList(Vec<(Option<Prop>, Message)>),
    /// Anything else that lexes: the elements in order.
    Elements(Vec<Element>),
}

impl Guid {
    /// Builds a GUID from its textual fields (`{d1-d2-d3-d4[0..2]-d4[2..8]}`).
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    pub fn data1(&self) -> u32 {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
    pub fn data2(&self) -> u16 {
        u16::from_le_bytes([self.0[4], self.0[5]])
    }
    pub fn data3(&self) -> u16 {
        u16::from_le_bytes([self.0[6], self.0[7]])
    }

    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, with or without braces, any case.
    pub fn parse(s: &str) -> Option<Guid> {
        let s = s.trim();
        let s = s
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or(s);
        let parts: Vec<&str> = s.split('-').collect();
        let lens = [8usize, 4, 4, 4, 12];
        if parts.len() != 5
            || parts
                .iter()
                .zip(lens)
                .any(|(p, l)| p.len() != l || !p.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return None;
        }
        let d1 = u32::from_str_radix(parts[0], 16).ok()?;
        let d2 = u16::from_str_radix(parts[1], 16).ok()?;
        let d3 = u16::from_str_radix(parts[2], 16).ok()?;
        let tail = format!("{}{}", parts[3], parts[4]);
        let mut d4 = [0u8; 8];
        for (i, b) in d4.iter_mut().enumerate() {
            *b = u8::from_str_radix(&tail[i * 2..i * 2 + 2], 16).ok()?;
        }
        Some(Guid::from_fields(d1, d2, d3, d4))
    }
}

impl std::fmt::Display for Guid {
    /// Lower-case canonical form without braces: `00062008-0000-0000-c000-000000000046`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d4 = &self.0[8..];
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            self.data1(),
            self.data2(),
            self.data3(),
            d4[0],
            d4[1],
            d4[2],
            d4[3],
            d4[4],
            d4[5],
            d4[6],
            d4[7]
        )
    }
}

impl std::fmt::Debug for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{self}}}")
    }
}

impl PropName {
    /// The name as text (lossy for unpaired surrogates), or None for a dispid.
    pub fn name_lossy(&self) -> Option<String> {
        match self {
            PropName::Id(_) => None,
            PropName::Name(units) => Some(String::from_utf16_lossy(units)),
        }
    }
}

impl Prop {
    /// Property id (high 16 bits of the tag).
    pub fn id(&self) -> u16 {
        (self.tag >> 16) as u16
    }
    /// Raw type word (low 16 bits of the tag), e.g. 0x001F, 0x84B0, 0x94B0.
    pub fn type_word(&self) -> u16 {
        self.tag as u16
    }
    /// A single-valued property.
    pub fn single(tag: u32, named: Option<NamedProp>, bytes: impl Into<Bytes>) -> Prop {
        Prop {
            tag,
            named,
            data: PropData::Single(bytes.into()),
        }
    }
}

/// Which grammar rule a [`Root`] follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RootKind {
    MessageContent,
    Message,
    AttachmentContent,
    MessageList,
    Elements,
}

/// Where a property sits in the tree, for [`Root::for_each_prop`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropOwner {
    /// The propList of a message content (top level or embedded).
    Message,
    /// The MetaTagFXDelProp before the recipients.
    RecipDelProp,
    /// A recipient, by index within its message.
    Recipient(usize),
    /// The MetaTagFXDelProp before the attachments.
    AttachDelProp,
    /// An attachment, by index within its message.
    Attachment(usize),
    /// The MetaTagEcWarning before a message of a message list.
    EcWarning,
    /// An element of the flat fallback root.
    Element,
}

/// Position of a property: its owner and the embedding depth (0 = top level;
/// each StartEmbed adds 1; in a message list, `message` is the message index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PropPath {
    pub depth: u32,
    pub message: usize,
    pub owner: PropOwner,
}

impl Root {
    pub fn kind(&self) -> RootKind {
        match self {
            Root::MessageContent(_) => RootKind::MessageContent,
            Root::Message(_) => RootKind::Message,
            Root::AttachmentContent(_) => RootKind::AttachmentContent,
            Root::MessageList(_) => RootKind::MessageList,
            Root::Elements(_) => RootKind::Elements,
        }
    }

    /// The top-level message content, for the message-shaped roots (the first
    /// message of a list).
    pub fn message_content(&self) -> Option<&MessageContent> {
        match self {
            Root::MessageContent(mc) => Some(mc),
            Root::Message(m) => Some(&m.content),
            Root::MessageList(list) => list.first().map(|(_, m)| &m.content),
            Root::AttachmentContent(_) | Root::Elements(_) => None,
        }
    }

    /// Calls `f` for every property in document order, with its position.
    /// Embedded messages are visited with an explicit stack (no recursion).
    pub fn for_each_prop(&self, f: &mut dyn FnMut(PropPath, &Prop)) {
        let at = |depth, message, owner| PropPath {
            depth,
            message,
            owner,
        };
        match self {
            Root::MessageContent(mc) => visit_content(mc, 0, 0, f),
            Root::Message(m) => visit_content(&m.content, 0, 0, f),
            Root::AttachmentContent(a) => {
                for p in &a.props {
                    f(at(0, 0, PropOwner::Attachment(0)), p);
                }
                if let Some(mc) = &a.embedded {
                    visit_content(mc, 1, 0, f);
                }
            }
            Root::MessageList(list) => {
                for (i, (w, m)) in list.iter().enumerate() {
                    if let Some(p) = w {
                        f(at(0, i, PropOwner::EcWarning), p);
                    }
                    visit_content(&m.content, 0, i, f);
                }
            }
            Root::Elements(els) => {
                for e in els {
                    if let Element::Prop(p) = e {
                        f(at(0, 0, PropOwner::Element), p);
                    }
                }
            }
        }
    }
}

fn visit_content(
    top: &MessageContent,
    depth: u32,
    message: usize,
    f: &mut dyn FnMut(PropPath, &Prop),
) {
    // The part of a content before its attachments.
    let head = |mc: &MessageContent, depth: u32, f: &mut dyn FnMut(PropPath, &Prop)| {
        let at = |owner| PropPath {
            depth,
            message,
            owner,
        };
        for p in &mc.props {
            f(at(PropOwner::Message), p);
        }
        if let Some(p) = &mc.recip_delprop {
            f(at(PropOwner::RecipDelProp), p);
        }
        for (i, r) in mc.recipients.iter().enumerate() {
            for p in &r.props {
                f(at(PropOwner::Recipient(i)), p);
            }
        }
        if let Some(p) = &mc.attach_delprop {
            f(at(PropOwner::AttachDelProp), p);
        }
    };
    // (content, depth, index of the next attachment to visit)
    let mut stack = vec![(top, depth, 0usize)];
    head(top, depth, f);
    while let Some((mc, depth, next)) = stack.last_mut() {
        let Some(a) = mc.attachments.get(*next) else {
            stack.pop();
            continue;
        };
        let (i, d) = (*next, *depth);
        *next += 1;
        for p in &a.props {
            f(
                PropPath {
                    depth: d,
                    message,
                    owner: PropOwner::Attachment(i),
                },
                p,
            );
        }
        if let Some(e) = &a.embedded {
            head(e, d + 1, f);
            stack.push((e, d + 1, 0));
        }
    }
}
