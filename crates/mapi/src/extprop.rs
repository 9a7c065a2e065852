//! Graph legacy extended-property ids and values
//! (`singleValueLegacyExtendedProperty` / `multiValueLegacyExtendedProperty`).
//!
//! # Id forms
//!
//! * proptag: `"{type} 0x{id}"`, e.g. `String 0x37`;
//! * named by dispid: `"{type} {guid} Id 0x{lid}"`;
//! * named by string: `"{type} {guid} Name {name}"`.
//!
//! `{type}` is one of the Graph type names (`Binary`, `BinaryArray`,
//! `Boolean`, `CLSID`, `CLSIDArray`, `Currency`, `CurrencyArray`, `Double`,
//! `DoubleArray`, `Float`, `FloatArray`, `Integer`, `IntegerArray`, `Long`,
//! `LongArray`, `Short`, `ShortArray`, `SystemTime`, `SystemTimeArray`,
//! `String`, `StringArray`); `ApplicationTime`/`ApplicationTimeArray` (the
//! EWS names for PtypFloatingTime) are accepted too.
//!
//! # Rendering decision
//!
//! Ids we *produce* follow what Exchange returns (as seen in public client
//! code that switches on returned ids: `"Integer 0xe07"`, `"SystemTime
//! 0xe06"`, `"Binary 0xff9"`, `"String 0x37"`): hex in **lower case without
//! leading zeros**. GUIDs are written the way .NET's `Guid.ToString("B")`
//! does: lower case, in braces (`{00020329-0000-0000-c000-000000000046}`).
//! Named dispids use the same hex style (`Id 0x8208`).
//!
//! Ids we *accept* ([`ExtPropId::parse`]) are normalised: type names in any
//! case, hex in any case with or without leading zeros (`String 0x0037` ==
//! `String 0x37`), GUIDs with or without braces, `Name`/`Id` in any case.
//! The string name is kept exactly (names are case-sensitive).
//!
//! # Values
//!
//! Strings as-is; integers as decimal; booleans `true`/`false`; floating
//! values in Rust's shortest round-trip form; Currency as its raw 64-bit
//! count of 1/10000 units; SystemTime as ISO 8601 UTC (`2024-01-01T00:00:00Z`,
//! fraction only when non-zero); CLSID as a lower-case GUID without braces;
//! Binary as standard base64.

use crate::filetime::FileTime;
use base64::Engine;
use fts::value::ptype;
use fts::{Guid, MessageContent, NamedProp, Prop, PropName, TypeInfo, Value};
use serde::Serialize;
use std::fmt;

/// A Graph extended-property type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GraphType {
    ApplicationTime,
    ApplicationTimeArray,
    Binary,
    BinaryArray,
    Boolean,
    Clsid,
    ClsidArray,
    Currency,
    CurrencyArray,
    Double,
    DoubleArray,
    Float,
    FloatArray,
    Integer,
    IntegerArray,
    Long,
    LongArray,
    Short,
    ShortArray,
    SystemTime,
    SystemTimeArray,
    String,
    StringArray,
}

const TYPE_NAMES: &[(GraphType, &str)] = &[
    (GraphType::ApplicationTime, "ApplicationTime"),
    (GraphType::ApplicationTimeArray, "ApplicationTimeArray"),
    (GraphType::Binary, "Binary"),
    (GraphType::BinaryArray, "BinaryArray"),
    (GraphType::Boolean, "Boolean"),
    (GraphType::Clsid, "CLSID"),
    (GraphType::ClsidArray, "CLSIDArray"),
    (GraphType::Currency, "Currency"),
    (GraphType::CurrencyArray, "CurrencyArray"),
    (GraphType::Double, "Double"),
    (GraphType::DoubleArray, "DoubleArray"),
    (GraphType::Float, "Float"),
    (GraphType::FloatArray, "FloatArray"),
    (GraphType::Integer, "Integer"),
    (GraphType::IntegerArray, "IntegerArray"),
    (GraphType::Long, "Long"),
    (GraphType::LongArray, "LongArray"),
    (GraphType::Short, "Short"),
    (GraphType::ShortArray, "ShortArray"),
    (GraphType::SystemTime, "SystemTime"),
    (GraphType::SystemTimeArray, "SystemTimeArray"),
    (GraphType::String, "String"),
    (GraphType::StringArray, "StringArray"),
];

impl GraphType {
    /// The Graph spelling (`CLSIDArray`, `SystemTime`, …).
    pub fn name(self) -> &'static str {
        TYPE_NAMES
            .iter()
            .find(|(t, _)| *t == self)
            .map(|(_, n)| *n)
            .expect("every GraphType is in TYPE_NAMES")
    }

    /// Parses a type name in any case.
    pub fn parse(s: &str) -> Option<GraphType> {
        TYPE_NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(s))
            .map(|(t, _)| *t)
    }

    /// Whether values of this type are collections (multiValue…).
    pub fn is_array(self) -> bool {
        self.name().ends_with("Array")
    }

    /// The Graph type of a raw FTS type word; None for types Graph cannot
    /// express (PtypErrorCode, PtypObject, PtypServerId, MV booleans, …).
    pub fn of_type_word(type_word: u16) -> Option<GraphType> {
        use GraphType as G;
        let info = TypeInfo::of(type_word)?;
        if info.codepage.is_some() {
            return Some(if info.multi {
                G::StringArray
            } else {
                G::String
            });
        }
        Some(match (info.base, info.multi) {
            (ptype::I16, false) => G::Short,
            (ptype::I16, true) => G::ShortArray,
            (ptype::I32, false) => G::Integer,
            (ptype::I32, true) => G::IntegerArray,
            (ptype::F32, false) => G::Float,
            (ptype::F32, true) => G::FloatArray,
            (ptype::F64, false) => G::Double,
            (ptype::F64, true) => G::DoubleArray,
            (ptype::CURRENCY, false) => G::Currency,
            (ptype::CURRENCY, true) => G::CurrencyArray,
            (ptype::APPTIME, false) => G::ApplicationTime,
            (ptype::APPTIME, true) => G::ApplicationTimeArray,
            (ptype::BOOLEAN, false) => G::Boolean,
            (ptype::I64, false) => G::Long,
            (ptype::I64, true) => G::LongArray,
            (ptype::STRING8 | ptype::UNICODE, false) => G::String,
            (ptype::STRING8 | ptype::UNICODE, true) => G::StringArray,
            (ptype::SYSTIME, false) => G::SystemTime,
            (ptype::SYSTIME, true) => G::SystemTimeArray,
            (ptype::GUID, false) => G::Clsid,
            (ptype::GUID, true) => G::ClsidArray,
            (ptype::BINARY, false) => G::Binary,
            (ptype::BINARY, true) => G::BinaryArray,
            _ => return None,
        })
    }

    /// The canonical MAPI type word for this Graph type (strings as 0x001F).
    pub fn type_word(self) -> u16 {
        use GraphType as G;
        let (base, mv) = match self {
            G::ApplicationTime => (ptype::APPTIME, false),
            G::ApplicationTimeArray => (ptype::APPTIME, true),
            G::Binary => (ptype::BINARY, false),
            G::BinaryArray => (ptype::BINARY, true),
            G::Boolean => (ptype::BOOLEAN, false),
            G::Clsid => (ptype::GUID, false),
            G::ClsidArray => (ptype::GUID, true),
            G::Currency => (ptype::CURRENCY, false),
            G::CurrencyArray => (ptype::CURRENCY, true),
            G::Double => (ptype::F64, false),
            G::DoubleArray => (ptype::F64, true),
            G::Float => (ptype::F32, false),
            G::FloatArray => (ptype::F32, true),
            G::Integer => (ptype::I32, false),
            G::IntegerArray => (ptype::I32, true),
            G::Long => (ptype::I64, false),
            G::LongArray => (ptype::I64, true),
            G::Short => (ptype::I16, false),
            G::ShortArray => (ptype::I16, true),
            G::SystemTime => (ptype::SYSTIME, false),
            G::SystemTimeArray => (ptype::SYSTIME, true),
            G::String => (ptype::UNICODE, false),
            G::StringArray => (ptype::UNICODE, true),
        };
        if mv { base | ptype::MV } else { base }
    }
}

impl fmt::Display for GraphType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an extended-property id points at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExtKey {
    /// A tagged property (id < 0x8000).
    Tag(u16),
    /// A named property by dispid.
    Id { guid: Guid, id: u32 },
    /// A named property by string name (kept exactly).
    Name { guid: Guid, name: String },
}

/// A parsed Graph extended-property id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExtPropId {
    pub ty: GraphType,
    pub key: ExtKey,
}

/// Why an extended-property id string was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtPropIdError {
    #[error("extended property id is empty")]
    Empty,
    #[error(
        "unknown extended property type {0:?}: expected one of Binary, Boolean, CLSID, Currency, Double, Float, Integer, Long, Short, SystemTime, String (or an …Array form)"
    )]
    UnknownType(String),
    #[error("extended property id {0:?} has a type but no property tag or GUID")]
    Incomplete(String),
    #[error("bad property tag {0:?}: expected hex like 0x37 or 0x0037")]
    BadTag(String),
    #[error(
        "property tag {0:#x} is out of range: the proptag form takes a 16-bit id below 0x8000 (for named properties use \"{{type}} {{guid}} Id 0x…\" or \"… Name …\")"
    )]
    TagOutOfRange(u32),
    #[error("bad GUID {0:?}: expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, braces optional")]
    BadGuid(String),
    #[error("expected 'Name' or 'Id' after the GUID, found {0:?}")]
    BadKind(String),
    #[error("bad dispid {0:?}: expected hex like 0x8208 or a decimal number")]
    BadDispid(String),
    #[error("the 'Name' form needs a non-empty name")]
    EmptyName,
    #[error("unexpected text after the property tag: {0:?}")]
    Trailing(String),
}

fn parse_hex_u32(s: &str) -> Option<u32> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

impl ExtPropId {
    /// The id for a property of a stream (None when Graph cannot express its type).
    pub fn for_prop(prop: &Prop) -> Option<ExtPropId> {
        let ty = GraphType::of_type_word(prop.type_word())?;
        let key = match &prop.named {
            None => ExtKey::Tag(prop.id()),
            Some(n) => match &n.name {
                PropName::Id(id) => ExtKey::Id {
                    guid: n.guid,
                    id: *id,
                },
                PropName::Name(units) => ExtKey::Name {
                    guid: n.guid,
                    name: String::from_utf16(units).ok()?,
                },
            },
        };
        Some(ExtPropId { ty, key })
    }

    /// Parses any accepted form (see the module docs).
    pub fn parse(s: &str) -> Result<ExtPropId, ExtPropIdError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ExtPropIdError::Empty);
        }
        let (ty_s, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
        let ty = GraphType::parse(ty_s).ok_or_else(|| ExtPropIdError::UnknownType(ty_s.into()))?;
        let rest = rest.trim_start();
        if rest.is_empty() {
            return Err(ExtPropIdError::Incomplete(s.into()));
        }
        let (second, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if second.starts_with("0x") || second.starts_with("0X") {
            let v = parse_hex_u32(second).ok_or_else(|| ExtPropIdError::BadTag(second.into()))?;
            if v >= 0x8000 {
                return Err(ExtPropIdError::TagOutOfRange(v));
            }
            if !tail.trim().is_empty() {
                return Err(ExtPropIdError::Trailing(tail.trim().into()));
            }
            return Ok(ExtPropId {
                ty,
                key: ExtKey::Tag(v as u16),
            });
        }
        let guid = Guid::parse(second).ok_or_else(|| {
            if second.bytes().all(|b| b.is_ascii_digit()) {
                ExtPropIdError::BadTag(second.into())
            } else {
                ExtPropIdError::BadGuid(second.into())
            }
        })?;
        let tail = tail.trim_start();
        let (kind, value) = tail.split_once(char::is_whitespace).unwrap_or((tail, ""));
        if kind.eq_ignore_ascii_case("name") {
            // The name is everything after one separator; it may contain spaces.
            if value.is_empty() {
                return Err(ExtPropIdError::EmptyName);
            }
            Ok(ExtPropId {
                ty,
                key: ExtKey::Name {
                    guid,
                    name: value.to_owned(),
                },
            })
        } else if kind.eq_ignore_ascii_case("id") {
            let v = value.trim();
            let id = parse_hex_u32(v)
                .or_else(|| {
                    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| v.parse().ok())
                        .flatten()
                })
                .ok_or_else(|| ExtPropIdError::BadDispid(v.into()))?;
            Ok(ExtPropId {
                ty,
                key: ExtKey::Id { guid, id },
            })
        } else {
            Err(ExtPropIdError::BadKind(kind.into()))
        }
    }

    /// Whether `prop` is the property this id denotes: same Graph type, and
    /// the same tagged id, or the same (GUID, dispid/name) for named
    /// properties (never the stream-local id).
    pub fn matches(&self, prop: &Prop) -> bool {
        if GraphType::of_type_word(prop.type_word()) != Some(self.ty) {
            return false;
        }
        match (&self.key, &prop.named) {
            (ExtKey::Tag(id), None) => prop.id() == *id,
            (ExtKey::Id { guid, id }, Some(NamedProp { guid: g, name })) => {
                g == guid && *name == PropName::Id(*id)
            }
            (ExtKey::Name { guid, name }, Some(NamedProp { guid: g, name: n })) => {
                g == guid
                    && matches!(n, PropName::Name(units) if units.iter().copied().eq(name.encode_utf16()))
            }
            _ => false,
        }
    }
}

impl fmt::Display for ExtPropId {
    /// Exchange's rendering: lower-case hex without leading zeros, GUIDs
    /// lower case in braces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            ExtKey::Tag(id) => write!(f, "{} 0x{:x}", self.ty, id),
            ExtKey::Id { guid, id } => write!(f, "{} {{{}}} Id 0x{:x}", self.ty, guid, id),
            ExtKey::Name { guid, name } => write!(f, "{} {{{}}} Name {}", self.ty, guid, name),
        }
    }
}

impl std::str::FromStr for ExtPropId {
    type Err = ExtPropIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExtPropId::parse(s)
    }
}

/// `singleValueLegacyExtendedProperty`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SingleValue {
    pub id: String,
    pub value: String,
}

/// `multiValueLegacyExtendedProperty`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MultiValue {
    pub id: String,
    pub value: Vec<String>,
}

/// A rendered value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtValue {
    Single(String),
    Multi(Vec<String>),
}

fn render_one(v: &Value) -> Option<String> {
    Some(match v {
        Value::I16(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::Currency(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::F64(x) | Value::AppTime(x) => x.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Time(t) => FileTime(*t).to_iso8601(),
        Value::Guid(g) => g.to_string(),
        Value::String(s) => s.clone(),
        Value::Binary(b) => base64::engine::general_purpose::STANDARD.encode(b),
        Value::ErrorCode(_) | Value::ServerId(_) | Value::Object(_) | Value::Multi(_) => {
            return None;
        }
    })
}

/// Renders a property's value the way Graph does (None when the type has no
/// Graph form or the bytes do not decode as the type).
pub fn render_value(prop: &Prop, string8_codepage: Option<u16>) -> Option<ExtValue> {
    GraphType::of_type_word(prop.type_word())?;
    match prop.value_cp(string8_codepage).ok()? {
        Value::Multi(items) => Some(ExtValue::Multi(
            items.iter().map(render_one).collect::<Option<_>>()?,
        )),
        v => render_one(&v).map(ExtValue::Single),
    }
}

/// Every message-level property as Graph extended properties, split into
/// single- and multi-valued lists, in stream order. Properties whose type
/// Graph cannot express, or whose named-property name is not valid UTF-16,
/// are left out.
pub fn extended_properties(msg: &MessageContent) -> (Vec<SingleValue>, Vec<MultiValue>) {
    let view = crate::view::MessageView::new(msg);
    let cp = view
        .message_codepage()
        .or_else(|| view.internet_codepage())
        .and_then(|v| u16::try_from(v).ok());
    let mut single = Vec::new();
    let mut multi = Vec::new();
    for p in &msg.props {
        let Some(id) = ExtPropId::for_prop(p) else {
            continue;
        };
        match render_value(p, cp) {
            Some(ExtValue::Single(value)) => single.push(SingleValue {
                id: id.to_string(),
                value,
            }),
            Some(ExtValue::Multi(value)) => multi.push(MultiValue {
                id: id.to_string(),
                value,
            }),
            None => {}
        }
    }
    (single, multi)
}

/// The first message-level property an id denotes (for
/// `$expand=singleValueExtendedProperties($filter=id eq '…')`).
pub fn find<'a>(msg: &'a MessageContent, id: &ExtPropId) -> Option<&'a Prop> {
    msg.props.iter().find(|p| id.matches(p))
}
