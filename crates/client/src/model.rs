//! The resources the client reads and writes, as Graph spells them.

use bytes::Bytes;
use serde::Deserialize;

/// A mailbox found for a user (or given by id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxRef {
    /// `MBX:…` id of the primary mailbox (or the id given).
    pub id: String,
    /// `inPlaceArchiveMailboxId` when the server reports one (beta).
    pub archive: Option<String>,
    /// What the caller asked for (UPN or id), for messages.
    pub label: String,
}

/// `microsoft.graph.mailbox`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mailbox {
    pub id: String,
    #[serde(default)]
    pub deleted_date_time: Option<String>,
}

/// `microsoft.graph.mailboxFolder`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Folder {
    pub id: String,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    #[serde(default)]
    pub display_name: String,
    /// Folder class (`IPF.Note`, …), Graph's `type`.
    #[serde(rename = "type", default)]
    pub folder_type: String,
    #[serde(default)]
    pub total_item_count: Option<u64>,
    #[serde(default)]
    pub child_folder_count: Option<u64>,
    /// `inbox`, `sentitems`, …; `None` for user folders.
    #[serde(default)]
    pub well_known_name: Option<String>,
    /// Present with `includeHiddenFolders=true`.
    #[serde(default)]
    pub is_hidden: Option<bool>,
    /// Beta: the mailbox the folder physically lives in.
    #[serde(default)]
    pub parent_mailbox_url: Option<String>,
}

/// `microsoft.graph.mailboxItem` metadata (no content).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemSummary {
    pub id: String,
    /// The folder the item was listed in (items delta is per folder; Graph's
    /// mailboxItem has no `parentFolderId` member, so the client fills it).
    #[serde(default, rename = "parentFolderId")]
    pub folder_id: String,
    #[serde(default)]
    pub change_key: String,
    /// Message class (`IPM.Note`, …), Graph's `type`.
    #[serde(rename = "type", default)]
    pub item_type: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default, rename = "createdDateTime")]
    pub created: Option<String>,
    #[serde(default, rename = "lastModifiedDateTime")]
    pub modified: Option<String>,
    #[serde(default)]
    pub categories: Vec<String>,
}

/// One round of delta: everything changed since the link (or everything,
/// for a first call), the ids removed, and the link for the next round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaResult<T> {
    /// Created or changed objects (replays collapsed: one entry per id, the last seen).
    pub changed: Vec<T>,
    /// Ids reported `@removed` (deleted or moved out of scope).
    pub removed: Vec<String>,
    /// The `@odata.deltaLink` to pass next time.
    pub delta_link: String,
    /// Pages read.
    pub pages: u32,
}

/// One exported item, or why it could not be exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportOutcome {
    Ok {
        id: String,
        change_key: String,
        /// The FTS bytes (base64-decoded `data`).
        data: Bytes,
    },
    Failed {
        id: String,
        /// Graph's per-item code (`ErrorItemNotFound`, …), `NotReturned` for
        /// an id missing from every answer, or the request's error code.
        code: String,
        message: String,
    },
}

impl ExportOutcome {
    pub fn id(&self) -> &str {
        match self {
            ExportOutcome::Ok { id, .. } | ExportOutcome::Failed { id, .. } => id,
        }
    }
}

/// `microsoft.graph.mailboxItemImportSession`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSession {
    /// The pre-authenticated URL (contains a token: don't log it).
    pub url: String,
    pub expires: time::OffsetDateTime,
}

/// Answer of an import: the item's id and its new change key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Imported {
    pub item_id: String,
    pub change_key: String,
}
