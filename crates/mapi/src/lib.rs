//! mapi: MAPI property constants, named-property sets, a typed view over the
//! FTS AST, Graph extended-property ids, an Exchange-layout message builder
//! and a lossless JSON dump of decoded streams.

#![forbid(unsafe_code)]

pub mod builder;
pub mod demo;
pub mod extprop;
pub mod filetime;
pub mod json;
pub mod named;
pub mod tags;
pub mod view;

pub use builder::{Mailbox, MessageBuilder};
pub use extprop::{ExtPropId, GraphType};
pub use filetime::FileTime;
pub use json::{JsonError, from_json, to_json};
pub use view::{Address, AttachmentView, MessageView, RecipientKind, RecipientView};
