//! fts: a lossless reader and writer of the FastTransfer stream (FTS).
//!
//! Graph `exportItems` / EWS `ExportItems` return an [MS-OXCFXICS] FastTransfer
//! stream wrapped in a small record envelope. This crate reads and writes both
//! layers without losing a byte: `encode(decode(x)) == x` for every input the
//! decoder accepts.
//!
//! Layers, each usable alone (see `docs/ARCHITECTURE.md`):
//! - [`frame`]: the EWS/Graph record envelope (Config, IsInterfaceOk,
//!   TellPartnerVersion, TransferBuffer…), kept verbatim;
//! - [`lex`]: a resumable push tokenizer for streaming input split at any byte;
//! - [`decode`](mod@decode): the fast zero-copy decoder for contiguous input, building the [`ast`];
//! - [`ast`]: the message grammar as plain data, lossless;
//! - [`write`](mod@write): the encoder, the inverse of the decoder;
//! - [`value`]: property types and typed values decoded from the raw bytes;
//! - [`markers`]: marker and meta-property constants.
//!
//! Every decoder is bounded by [`Limits`] and reports an [`Error`] with the byte
//! offset in the original input. No input panics, hangs, or allocates more than
//! the input can justify.

#![forbid(unsafe_code)]

pub mod ast;
pub mod decode;
pub mod error;
pub mod frame;
pub mod lex;
pub mod markers;
pub mod value;
pub mod write;

pub use ast::*;
pub use decode::{
    Decoded, decode, decode_fts, decode_fts_as, decode_fts_as_with_limits, decode_fts_with_limits,
    decode_with_limits,
};
pub use error::{Error, ErrorKind, Limits, Warning, WarningKind};
pub use frame::{FrameHeader, Framing, PartnerVersion, unframe, write_frames};
pub use value::{TypeInfo, Value, ValueError};
pub use write::{encode, encode_fts, encode_fts_into, encode_into, encoded_len, validate};
