//! Errors, warnings and resource limits.
//!
//! Every error carries the byte offset where reading went wrong, counted in the
//! *original input*: for a raw FTS the offset in the FTS, for framed input the
//! offset in the framed bytes (an FTS offset is mapped back through the
//! TransferBuffer records). A truncation error sits at the end of the input and
//! says how many more bytes the element being read needed.
//!
//! Limits exist because the input is untrusted: a u32 length or count is never
//! used to allocate before the bytes it announces have been seen, and the caps
//! below bound what a single element may cost.

use crate::markers;

/// Resource caps applied by every decoder and by the lexer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum input size in bytes (framed or raw), default 200 MiB.
    pub max_total_size: u64,
    /// Maximum length of one variable-size value or MV element, default 150 MiB
    /// (Exchange's message size limit).
    pub max_value_len: u32,
    /// Maximum element count of a multi-valued property, default 65,536.
    pub max_mv_count: u32,
    /// Maximum named-property name length in UTF-16 code units, without the NUL;
    /// default 1,024.
    pub max_name_len: u32,
    /// Maximum nesting of embedded messages (StartEmbed levels), default 32.
    pub max_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total_size: 200 << 20,
            max_value_len: 150 << 20,
            max_mv_count: 65_536,
            max_name_len: 1_024,
            max_depth: 32,
        }
    }
}

/// A decoding error: where, and what was expected there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {kind}")]
pub struct Error {
    /// Offset in the original input (framed bytes for framed input).
    pub offset: u64,
    pub kind: ErrorKind,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The input ended inside an element (or a frame record).
    #[error("truncated {what}: need {need} more bytes")]
    Truncated { what: &'static str, need: u64 },
    /// The byte after a named property's GUID is neither 0x00 nor 0x01.
    #[error("bad named-property kind byte 0x{0:02X}: expected 0x00 (dispid) or 0x01 (name)")]
    BadNamedKind(u8),
    /// The input ended inside a named-property name (no UTF-16 NUL was found).
    #[error("unterminated named-property name: expected a UTF-16 NUL before the end of the input")]
    UnterminatedName,
    #[error("named-property name longer than {max} UTF-16 units")]
    NameTooLong { max: u32 },
    #[error("value length {len} exceeds the limit of {max} bytes")]
    ValueTooLong { len: u32, max: u32 },
    #[error("multi-valued count {count} exceeds the limit of {max}")]
    MvCountTooLarge { count: u32, max: u32 },
    #[error("embedded messages nested deeper than {max}")]
    DepthExceeded { max: u32 },
    #[error("input larger than the limit of {max} bytes")]
    TotalSizeExceeded { max: u64 },
    /// A property tag whose type word is not a valid FTS type.
    #[error("unknown property type 0x{:04X} in tag 0x{tag:08X}", *tag as u16)]
    UnknownType { tag: u32 },
    /// A marker where the grammar does not allow it.
    #[error("marker {} (0x{marker:08X}) out of place in {context}: expected {expected}", marker_name(*marker))]
    MarkerOutOfPlace {
        marker: u32,
        context: &'static str,
        expected: &'static str,
    },
    /// A propValue where the grammar does not allow one.
    #[error("property 0x{tag:08X} out of place in {context}: expected {expected}")]
    PropOutOfPlace {
        tag: u32,
        context: &'static str,
        expected: &'static str,
    },
    /// The input ended where the grammar still expected an element.
    #[error("unexpected end of input in {context}: expected {expected}")]
    UnexpectedEnd {
        context: &'static str,
        expected: &'static str,
    },
    /// `unframe` was given input that does not start with a Config record.
    #[error("not a framed stream: expected a Config record (opcode 1, length 8)")]
    NotFramed,
}

fn marker_name(w: u32) -> &'static str {
    markers::name(w).unwrap_or("?")
}

impl Error {
    pub(crate) fn new(offset: u64, kind: ErrorKind) -> Error {
        Error { offset, kind }
    }
    /// True for errors caused by input ending early (more bytes would help).
    pub fn is_truncation(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Truncated { .. }
                | ErrorKind::UnterminatedName
                | ErrorKind::UnexpectedEnd { .. }
        )
    }
}

/// Something accepted but worth reporting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Offset in the original input, like [`Error::offset`].
    pub offset: u64,
    pub kind: WarningKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarningKind {
    /// A TransferBuffer record with no payload (Exchange's importer rejects these;
    /// we accept and keep it so the framed form still round-trips).
    EmptyTransferBuffer,
    /// An attachment whose first property is not PidTagAttachNumber, which the
    /// grammar requires; the attachment is kept as it is.
    MissingAttachNumber,
}
