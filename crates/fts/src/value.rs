//! Property types and typed values, decoded lazily from the raw bytes in the AST.

use crate::ast::{Guid, Prop, PropData};
use bytes::Bytes;

/// Fixed-size and variable-size property type codes ([MS-OXCDATA] 2.11.1).
pub mod ptype {
    pub const UNSPECIFIED: u16 = 0x0000;
    pub const NULL: u16 = 0x0001;
    pub const I16: u16 = 0x0002;
    pub const I32: u16 = 0x0003;
    pub const F32: u16 = 0x0004;
    pub const F64: u16 = 0x0005;
    pub const CURRENCY: u16 = 0x0006;
    pub const APPTIME: u16 = 0x0007;
    pub const ERROR: u16 = 0x000A;
    pub const BOOLEAN: u16 = 0x000B;
    pub const OBJECT: u16 = 0x000D;
    pub const I64: u16 = 0x0014;
    pub const STRING8: u16 = 0x001E;
    pub const UNICODE: u16 = 0x001F;
    pub const SYSTIME: u16 = 0x0040;
    pub const GUID: u16 = 0x0048;
    pub const SERVERID: u16 = 0x00FB;
    pub const BINARY: u16 = 0x0102;
    pub const MV: u16 = 0x1000;
    /// Bit that marks a code-page string type: `0x8000 | codepage`.
    pub const CODEPAGE: u16 = 0x8000;
    /// 0x8000 | 1200: UTF-16LE in code-page form, what Exchange writes for every string.
    pub const CP_UNICODE: u16 = 0x84B0;
    /// The observed multi-valued code-page form (0x9000 | 1200).
    pub const MV_CP_UNICODE: u16 = 0x94B0;
}

/// How the bytes of a type are laid out in FTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A fixed number of bytes (PtypBoolean is 2 in FTS).
    Fixed(usize),
    /// u32 byte length, then the bytes.
    Var,
}

/// What a raw type word means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    /// The base type with the MV bit removed (for code-page strings: 0x8000|cp).
    pub base: u16,
    pub multi: bool,
    pub layout: Layout,
    /// For code-page strings (0x8000|cp and the MV form): the code page.
    pub codepage: Option<u16>,
}

/// Code pages we know how to name, used to disambiguate the MV bit in the
/// code-page form (a 15-bit code page may itself have bit 0x1000 set).
pub fn is_known_codepage(cp: u16) -> bool {
    cp == 1200 || cp == 1201 || codepage_encoding(cp).is_some()
}

/// The encoding_rs encoding for a Windows code page, where there is one.
pub fn codepage_encoding(cp: u16) -> Option<&'static encoding_rs::Encoding> {
    use encoding_rs::*;
    Some(match cp {
        1200 => UTF_16LE,
        1201 => UTF_16BE,
        65001 => UTF_8,
        20127 | 28591 | 1252 => WINDOWS_1252,
        1250 => WINDOWS_1250,
        1251 => WINDOWS_1251,
        1253 => WINDOWS_1253,
        1254 => WINDOWS_1254,
        1255 => WINDOWS_1255,
        1256 => WINDOWS_1256,
        1257 => WINDOWS_1257,
        1258 => WINDOWS_1258,
        874 => WINDOWS_874,
        932 => SHIFT_JIS,
        936 => GBK,
        949 => EUC_KR,
        950 => BIG5,
        866 => IBM866,
        20866 => KOI8_R,
        21866 => KOI8_U,
        28592 => ISO_8859_2,
        28593 => ISO_8859_3,
        28594 => ISO_8859_4,
        28595 => ISO_8859_5,
        28596 => ISO_8859_6,
        28597 => ISO_8859_7,
        28598 => ISO_8859_8,
        28603 => ISO_8859_13,
        28605 => ISO_8859_15,
        50220..=50222 => ISO_2022_JP,
        51932 | 20932 => EUC_JP,
        54936 => GB18030,
        10000 => MACINTOSH,
        _ => return None,
    })
}

impl TypeInfo {
    /// Classifies a raw type word; None for a type that may not appear in FTS.
    pub fn of(type_word: u16) -> Option<TypeInfo> {
        if type_word & ptype::CODEPAGE != 0 {
            let cp = type_word & 0x7FFF;
            // "bit 0x1000 = MV if the remaining 12 bits are a known code page"
            let low = cp & !ptype::MV;
            if cp & ptype::MV != 0 && is_known_codepage(low) && !is_known_codepage(cp) {
                return Some(TypeInfo {
                    base: ptype::CODEPAGE | low,
                    multi: true,
                    layout: Layout::Var,
                    codepage: Some(low),
                });
            }
            return Some(TypeInfo {
                base: type_word,
                multi: false,
                layout: Layout::Var,
                codepage: Some(cp),
            });
        }
        let multi = type_word & ptype::MV != 0;
        let base = type_word & !ptype::MV;
        let layout = match base {
            ptype::I16 => Layout::Fixed(2),
            ptype::I32 | ptype::F32 | ptype::ERROR => Layout::Fixed(4),
            ptype::F64 | ptype::CURRENCY | ptype::APPTIME | ptype::I64 | ptype::SYSTIME => {
                Layout::Fixed(8)
            }
            ptype::BOOLEAN if !multi => Layout::Fixed(2),
            ptype::GUID => Layout::Fixed(16),
            ptype::STRING8 | ptype::UNICODE | ptype::BINARY => Layout::Var,
            ptype::OBJECT | ptype::SERVERID if !multi => Layout::Var,
            _ => return None,
        };
        Some(TypeInfo {
            base,
            multi,
            layout,
            codepage: None,
        })
    }
}

/// A decoded property value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    I16(i16),
    I32(i32),
    F32(f32),
    F64(f64),
    /// PtypCurrency: a signed 64-bit count of 1/10000 units.
    Currency(i64),
    /// PtypFloatingTime (OLE automation date).
    AppTime(f64),
    ErrorCode(u32),
    /// Any non-zero u16 is true (the raw bytes stay in the AST).
    Bool(bool),
    I64(i64),
    /// PtypTime: FILETIME, 100-ns ticks since 1601-01-01 UTC.
    Time(u64),
    Guid(Guid),
    /// PtypString, PtypString8 and code-page strings, decoded to text without the terminator.
    String(String),
    Binary(Bytes),
    ServerId(Bytes),
    Object(Bytes),
    Multi(Vec<Value>),
}

/// Why a value's bytes could not be read as its type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("property type 0x{0:04X} is not a valid FTS type")]
    UnknownType(u16),
    #[error("expected {expected} bytes for type 0x{type_word:04X}, found {found}")]
    BadSize {
        type_word: u16,
        expected: usize,
        found: usize,
    },
    #[error("single/multi-valued shape does not match type 0x{0:04X}")]
    Shape(u16),
}

/// Strips the terminator of a string value: 2 zero bytes for UTF-16 forms, 1 otherwise.
fn strip_nul(bytes: &[u8], wide: bool) -> &[u8] {
    if wide {
        if bytes.len() >= 2 && bytes.len().is_multiple_of(2) && bytes[bytes.len() - 2..] == [0, 0] {
            return &bytes[..bytes.len() - 2];
        }
    } else if bytes.last() == Some(&0) {
        return &bytes[..bytes.len() - 1];
    }
    bytes
}

/// Decodes UTF-16LE bytes (an odd trailing byte is replaced, never dropped silently).
pub fn utf16le_to_string(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| {
            if c.len() == 2 {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                0xFFFD
            }
        })
        .collect();
    String::from_utf16_lossy(&units)
}

/// Decodes a string value of the given base type. `string8_codepage` is the
/// code page to use for PtypString8 (the message's PidTagMessageCodepage or
/// PidTagInternetCodepage); None means Windows-1252.
pub fn decode_string(base: u16, bytes: &[u8], string8_codepage: Option<u16>) -> String {
    match base {
        ptype::UNICODE => utf16le_to_string(strip_nul(bytes, true)),
        ptype::STRING8 => {
            let enc = string8_codepage
                .and_then(codepage_encoding)
                .unwrap_or(encoding_rs::WINDOWS_1252);
            decode_with(enc, strip_nul(bytes, false))
        }
        _ => {
            let cp = base & 0x7FFF;
            match cp {
                1200 => utf16le_to_string(strip_nul(bytes, true)),
                1201 => {
                    let b = strip_nul(bytes, true);
                    let units: Vec<u16> = b
                        .chunks(2)
                        .map(|c| {
                            if c.len() == 2 {
                                u16::from_be_bytes([c[0], c[1]])
                            } else {
                                0xFFFD
                            }
                        })
                        .collect();
                    String::from_utf16_lossy(&units)
                }
                _ => {
                    let enc = codepage_encoding(cp).unwrap_or(encoding_rs::WINDOWS_1252);
                    decode_with(enc, strip_nul(bytes, false))
                }
            }
        }
    }
}

fn decode_with(enc: &'static encoding_rs::Encoding, bytes: &[u8]) -> String {
    let (text, _) = enc.decode_without_bom_handling(bytes);
    text.into_owned()
}

fn fixed(base: u16, b: &[u8]) -> Result<Value, ValueError> {
    let need = match TypeInfo::of(base).map(|t| t.layout) {
        Some(Layout::Fixed(n)) => n,
        _ => return Err(ValueError::UnknownType(base)),
    };
    // Booleans inside an MV are not a valid FTS type, so need is the FTS size here.
    if b.len() != need {
        return Err(ValueError::BadSize {
            type_word: base,
            expected: need,
            found: b.len(),
        });
    }
    let a8 = |b: &[u8]| -> [u8; 8] { b[..8].try_into().unwrap() };
    Ok(match base {
        ptype::I16 => Value::I16(i16::from_le_bytes([b[0], b[1]])),
        ptype::I32 => Value::I32(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ptype::F32 => Value::F32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ptype::ERROR => Value::ErrorCode(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ptype::F64 => Value::F64(f64::from_le_bytes(a8(b))),
        ptype::CURRENCY => Value::Currency(i64::from_le_bytes(a8(b))),
        ptype::APPTIME => Value::AppTime(f64::from_le_bytes(a8(b))),
        ptype::I64 => Value::I64(i64::from_le_bytes(a8(b))),
        ptype::SYSTIME => Value::Time(u64::from_le_bytes(a8(b))),
        ptype::BOOLEAN => Value::Bool(u16::from_le_bytes([b[0], b[1]]) != 0),
        ptype::GUID => Value::Guid(Guid(b[..16].try_into().unwrap())),
        _ => return Err(ValueError::UnknownType(base)),
    })
}

fn var(base: u16, b: &Bytes, string8_codepage: Option<u16>) -> Value {
    match base {
        ptype::BINARY => Value::Binary(b.clone()),
        ptype::SERVERID => Value::ServerId(b.clone()),
        ptype::OBJECT => Value::Object(b.clone()),
        _ => Value::String(decode_string(base, b, string8_codepage)),
    }
}

impl Prop {
    /// The typed value (PtypString8 decoded as Windows-1252; see [`Prop::value_cp`]).
    pub fn value(&self) -> Result<Value, ValueError> {
        self.value_cp(None)
    }

    /// The typed value, decoding PtypString8 in `string8_codepage`.
    pub fn value_cp(&self, string8_codepage: Option<u16>) -> Result<Value, ValueError> {
        let tw = self.type_word();
        // MetaTagIdsetGiven is declared PtypInteger32 but carries binary IDSET bytes.
        if self.tag == crate::markers::meta::IDSET_GIVEN {
            return match &self.data {
                PropData::Single(b) => Ok(Value::Binary(b.clone())),
                PropData::Multi(_) => Err(ValueError::Shape(tw)),
            };
        }
        let info = TypeInfo::of(tw).ok_or(ValueError::UnknownType(tw))?;
        let one = |b: &Bytes| -> Result<Value, ValueError> {
            match info.layout {
                Layout::Fixed(_) => fixed(info.base, b),
                Layout::Var => Ok(var(info.base, b, string8_codepage)),
            }
        };
        match (&self.data, info.multi) {
            (PropData::Single(b), false) => one(b),
            (PropData::Multi(items), true) => Ok(Value::Multi(
                items.iter().map(one).collect::<Result<_, _>>()?,
            )),
            _ => Err(ValueError::Shape(tw)),
        }
    }

    /// The value as text, for string-typed properties.
    pub fn as_str(&self) -> Option<String> {
        match self.value().ok()? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as i32 (PtypInteger32, or PtypInteger16 widened).
    pub fn as_i32(&self) -> Option<i32> {
        match self.value().ok()? {
            Value::I32(v) => Some(v),
            Value::I16(v) => Some(v as i32),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.value().ok()? {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// FILETIME ticks of a PtypTime value.
    pub fn as_filetime(&self) -> Option<u64> {
        match self.value().ok()? {
            Value::Time(v) => Some(v),
            _ => None,
        }
    }

    /// The raw bytes of a single-valued property.
    pub fn bytes(&self) -> Option<&Bytes> {
        match &self.data {
            PropData::Single(b) => Some(b),
            PropData::Multi(_) => None,
        }
    }
}

/// Canonical encoders for building properties (the writer keeps raw bytes as they are).
pub mod build {
    use super::ptype;
    use crate::ast::{NamedProp, Prop, PropData};
    use bytes::Bytes;

    fn tag(id: u16, ty: u16) -> u32 {
        ((id as u32) << 16) | ty as u32
    }

    /// UTF-16LE with the 2-byte terminator.
    pub fn utf16z(s: &str) -> Vec<u8> {
        let mut v = Vec::with_capacity(s.len() * 2 + 2);
        for u in s.encode_utf16() {
            v.extend_from_slice(&u.to_le_bytes());
        }
        v.extend_from_slice(&[0, 0]);
        v
    }

    /// A string in Exchange's form (0x84B0, UTF-16LE, terminated).
    pub fn string(id: u16, named: Option<NamedProp>, s: &str) -> Prop {
        Prop::single(tag(id, ptype::CP_UNICODE), named, utf16z(s))
    }
    /// A string in the spec-plain form (0x001F).
    pub fn unicode(id: u16, named: Option<NamedProp>, s: &str) -> Prop {
        Prop::single(tag(id, ptype::UNICODE), named, utf16z(s))
    }
    pub fn i32(id: u16, named: Option<NamedProp>, v: i32) -> Prop {
        Prop::single(tag(id, ptype::I32), named, v.to_le_bytes().to_vec())
    }
    pub fn i64(id: u16, named: Option<NamedProp>, v: i64) -> Prop {
        Prop::single(tag(id, ptype::I64), named, v.to_le_bytes().to_vec())
    }
    pub fn f64(id: u16, named: Option<NamedProp>, v: f64) -> Prop {
        Prop::single(tag(id, ptype::F64), named, v.to_le_bytes().to_vec())
    }
    /// PtypBoolean as FTS writes it: 2 bytes.
    pub fn bool(id: u16, named: Option<NamedProp>, v: bool) -> Prop {
        Prop::single(tag(id, ptype::BOOLEAN), named, vec![v as u8, 0])
    }
    /// PtypTime from FILETIME ticks.
    pub fn time(id: u16, named: Option<NamedProp>, filetime: u64) -> Prop {
        Prop::single(
            tag(id, ptype::SYSTIME),
            named,
            filetime.to_le_bytes().to_vec(),
        )
    }
    pub fn binary(id: u16, named: Option<NamedProp>, b: impl Into<Bytes>) -> Prop {
        Prop::single(tag(id, ptype::BINARY), named, b)
    }
    pub fn guid(id: u16, named: Option<NamedProp>, g: crate::ast::Guid) -> Prop {
        Prop::single(tag(id, ptype::GUID), named, g.0.to_vec())
    }
    /// A multi-valued string in Exchange's observed form (0x94B0).
    pub fn strings(id: u16, named: Option<NamedProp>, items: &[&str]) -> Prop {
        Prop {
            tag: tag(id, ptype::MV_CP_UNICODE),
            named,
            data: PropData::Multi(items.iter().map(|s| Bytes::from(utf16z(s))).collect()),
        }
    }
    /// A multi-valued string in the spec-plain form (0x101F).
    pub fn unicodes(id: u16, named: Option<NamedProp>, items: &[&str]) -> Prop {
        Prop {
            tag: tag(id, ptype::MV | ptype::UNICODE),
            named,
            data: PropData::Multi(items.iter().map(|s| Bytes::from(utf16z(s))).collect()),
        }
    }
    pub fn i32s(id: u16, named: Option<NamedProp>, items: &[i32]) -> Prop {
        Prop {
            tag: tag(id, ptype::MV | ptype::I32),
            named,
            data: PropData::Multi(
                items
                    .iter()
                    .map(|v| Bytes::from(v.to_le_bytes().to_vec()))
                    .collect(),
            ),
        }
    }
}

/// Converts FILETIME ticks to Unix seconds and nanoseconds (None before 1970 or out of range).
pub fn filetime_to_unix(ft: u64) -> Option<(i64, u32)> {
    const EPOCH_DIFF: u64 = 116_444_736_000_000_000;
    if ft < EPOCH_DIFF {
        return None;
    }
    let t = ft - EPOCH_DIFF;
    Some(((t / 10_000_000) as i64, ((t % 10_000_000) * 100) as u32))
}

/// Converts Unix seconds and nanoseconds to FILETIME ticks (saturating at 0
/// before 1601 and at u64::MAX far in the future, instead of overflowing).
pub fn unix_to_filetime(secs: i64, nanos: u32) -> u64 {
    const EPOCH_DIFF: i128 = 116_444_736_000_000_000;
    let t = secs as i128 * 10_000_000 + (nanos / 100) as i128 + EPOCH_DIFF;
    t.clamp(0, u64::MAX as i128) as u64
}
