//! Item metadata from an item's FTS, for snapshots and `find`.
//!
//! The same properties the graphbox server indexes on import
//! (`api::ingest::metadata`): both read them through [`mapi::MessageView`].

use bytes::Bytes;
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// A sender as the item names it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Sender {
    pub name: Option<String>,
    /// The SMTP address when known, else the native address (e.g. an
    /// Exchange legacy DN).
    pub address: Option<String>,
}

impl Sender {
    /// `Name <address>`, or whichever part is known.
    pub fn display(&self) -> String {
        match (&self.name, &self.address) {
            (Some(n), Some(a)) if n != a => format!("{n} <{a}>"),
            (Some(n), _) => n.clone(),
            (None, Some(a)) => a.clone(),
            (None, None) => String::new(),
        }
    }
}

/// What [`extract`] reads from an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractedMeta {
    /// PR_MESSAGE_CLASS (`IPM.Note` when the stream has none).
    pub item_type: String,
    pub subject: Option<String>,
    /// The "From" (sent-representing) address, else the sender.
    pub sender: Option<Sender>,
    pub categories: Vec<String>,
    pub created: Option<OffsetDateTime>,
    pub modified: Option<OffsetDateTime>,
    /// PR_MESSAGE_SIZE, else the length of the stream.
    pub size: u64,
}

/// Reads an item's metadata from its FTS (raw or framed as `exportItems`
/// returns it).
pub fn extract(fts: &[u8]) -> Result<ExtractedMeta> {
    extract_bytes(&Bytes::copy_from_slice(fts))
}

/// [`extract`] of bytes already in a shared buffer (not copied: the
/// decoded properties and attachments are slices of it).
pub fn extract_bytes(bytes: &Bytes) -> Result<ExtractedMeta> {
    if bytes.is_empty() {
        return Err(Error::invalid(
            "item content",
            "it is empty: an item's FTS stream is at least a property list",
        ));
    }
    let decoded = fts::decode(bytes).map_err(|e| {
        Error::invalid(
            "item content",
            format!(
                "it is not a valid FTS stream: at byte {}: {}",
                e.offset, e.kind
            ),
        )
    })?;
    let view = mapi::MessageView::from_root(&decoded.root).ok_or_else(|| {
        Error::invalid(
            "item content",
            "it decodes as an FTS stream but not as one item (messageContent)",
        )
    })?;
    let address = |a: mapi::Address| Sender {
        address: a.smtp().map(str::to_owned).or(a.email_address.clone()),
        name: a.name,
    };
    let sender = view
        .sent_representing()
        .map(address)
        .filter(|s| s.name.is_some() || s.address.is_some())
        .or_else(|| view.sender().map(address));
    let created = view.creation_datetime();
    Ok(ExtractedMeta {
        item_type: view
            .message_class()
            .unwrap_or_else(|| "IPM.Note".to_owned()),
        subject: view.subject(),
        sender,
        categories: view.categories(),
        created,
        modified: view.last_modification_datetime().or(created),
        size: view
            .message_size()
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(bytes.len() as u64),
    })
}
