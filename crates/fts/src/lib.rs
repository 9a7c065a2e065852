//! fts: a lossless reader and writer of the FastTransfer stream (FTS).
//!
//! Layers, each usable alone (see `docs/ARCHITECTURE.md`):
//! - [`ast`]: the message grammar as plain data, lossless;
//! - [`value`]: property types and typed values decoded from the raw bytes.

#![forbid(unsafe_code)]

pub mod ast;
pub mod value;

pub use ast::*;
pub use value::{TypeInfo, Value, ValueError};
