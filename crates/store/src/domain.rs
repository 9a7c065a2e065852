//! The mailbox domain: tenants, users, mailboxes, folders, items and the
//! values they carry. Plain data; every backend produces exactly these.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Everything a store operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (or exists only in another mailbox).
    #[error("{what} not found: {id}")]
    NotFound { what: &'static str, id: String },
    /// The request contradicts the current state: a duplicate folder name
    /// under a parent, a stale change key, a duplicate tenant domain or UPN.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request itself is wrong: a bad id, a filter on a field the entity
    /// does not have, deleting a well-known folder.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The storage backend failed (I/O, database, corrupt data).
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    pub(crate) fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        StoreError::NotFound {
            what,
            id: id.into(),
        }
    }
}

/// An organisation (an Entra tenant).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tenant {
    pub id: Uuid,
    /// The primary domain, e.g. `contoso.com` (unique, case-insensitive).
    pub domain: String,
    pub display_name: String,
}

/// A user of a tenant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// User principal name, unique across the store, matched case-insensitively.
    pub upn: String,
    pub display_name: String,
}

/// Which of a user's mailboxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MailboxKind {
    Primary,
    Archive,
}

impl MailboxKind {
    /// The stored / displayed name (`primary`, `archive`).
    pub fn as_str(self) -> &'static str {
        match self {
            MailboxKind::Primary => "primary",
            MailboxKind::Archive => "archive",
        }
    }

    /// Parses `primary` / `archive` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("primary") {
            Ok(MailboxKind::Primary)
        } else if s.eq_ignore_ascii_case("archive") {
            Ok(MailboxKind::Archive)
        } else {
            Err(StoreError::Invalid(format!(
                "unknown mailbox kind '{s}' (expected primary or archive)"
            )))
        }
    }
}

/// A mailbox id in Graph's documented shape `MBX:<mailbox guid>@<tenant guid>`,
/// both GUIDs hyphenated lower-case. Parsing is case-insensitive and also
/// accepts the GUIDs without hyphens; display is always canonical.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId {
    mailbox: Uuid,
    tenant: Uuid,
}

impl MailboxId {
    /// Builds the id of mailbox `mailbox` of tenant `tenant`.
    pub fn new(mailbox: Uuid, tenant: Uuid) -> Self {
        MailboxId { mailbox, tenant }
    }

    /// The mailbox GUID.
    pub fn mailbox_guid(&self) -> Uuid {
        self.mailbox
    }

    /// The tenant GUID.
    pub fn tenant_guid(&self) -> Uuid {
        self.tenant
    }

    /// Parses `MBX:<guid>@<guid>` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            StoreError::Invalid(format!(
                "'{s}' is not a mailbox id; expected MBX:<mailbox guid>@<tenant guid>"
            ))
        };
        let prefix = s.get(..4).ok_or_else(bad)?;
        if !prefix.eq_ignore_ascii_case("MBX:") {
            return Err(bad());
        }
        let (m, t) = s[4..].split_once('@').ok_or_else(bad)?;
        let guid = |g: &str| {
            // Only the plain 32-hex or hyphenated 36-char forms, not braces/urn.
            if g.len() != 32 && g.len() != 36 {
                return Err(bad());
            }
            Uuid::parse_str(g).map_err(|_| bad())
        };
        Ok(MailboxId {
            mailbox: guid(m)?,
            tenant: guid(t)?,
        })
    }
}

impl fmt::Display for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MBX:{}@{}",
            self.mailbox.as_hyphenated(),
            self.tenant.as_hyphenated()
        )
    }
}

impl FromStr for MailboxId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        MailboxId::parse(s)
    }
}

impl Serialize for MailboxId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A mailbox.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mailbox {
    pub id: MailboxId,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub kind: MailboxKind,
    pub created: OffsetDateTime,
}

/// A single- or multi-valued extended property, already rendered as Graph
/// renders it (`singleValueExtendedProperties` / `multiValueExtendedProperties`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtProp {
    /// Canonical Graph legacy extended property id, e.g. `String 0x37`.
    pub id: String,
    pub value: ExtValue,
}

/// The value of an [`ExtProp`]. Serialized untagged: a string or an array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExtValue {
    Single(String),
    Multi(Vec<String>),
}

/// A reference to content in the blob store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    /// BLAKE3 of the content, 64 lower-case hex digits.
    pub hash: String,
    pub size: u64,
}

/// A mail folder (or calendar, contacts, … folder: `class` tells).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Folder {
    pub id: String,
    pub mailbox_id: MailboxId,
    /// `None` only for the mailbox root (well-known `root`).
    pub parent_id: Option<String>,
    pub display_name: String,
    /// Container class (`IPF.Note`, …), Graph's `type`.
    pub class: String,
    /// Well-known name (`inbox`, `msgfolderroot`, …), lower-case.
    pub well_known: Option<String>,
    pub hidden: bool,
    pub child_folder_count: i64,
    pub total_item_count: i64,
    pub change_key: String,
    pub cn: u64,
    pub created: OffsetDateTime,
    pub modified: OffsetDateTime,
    pub ext_props: Vec<ExtProp>,
}

/// An item (message, appointment, contact, …); its content is a blob.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Item {
    pub id: String,
    pub mailbox_id: MailboxId,
    pub folder_id: String,
    pub change_key: String,
    /// Message class (`IPM.Note`, …), Graph's `type`.
    pub class: String,
    pub size: i64,
    pub created: OffsetDateTime,
    pub modified: OffsetDateTime,
    pub categories: Vec<String>,
    pub blob: BlobRef,
    pub cn: u64,
    pub ext_props: Vec<ExtProp>,
}

/// What `create_folder` needs. An empty `class` inherits the parent's.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct NewFolder {
    pub display_name: String,
    pub class: String,
    pub ext_props: Vec<ExtProp>,
}

/// What `update_folder` changes; `None` leaves a field as it is.
/// `ext_props` replaces the whole list.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FolderPatch {
    pub display_name: Option<String>,
    pub ext_props: Option<Vec<ExtProp>>,
}

/// What `create_item` / `replace_item` need: the metadata extracted at import
/// and the blob holding the content.
#[derive(Clone, Debug, PartialEq)]
pub struct NewItem {
    pub class: String,
    pub size: i64,
    pub created: OffsetDateTime,
    pub modified: OffsetDateTime,
    pub categories: Vec<String>,
    pub blob: BlobRef,
    /// The content itself when it is small enough to be kept in the meta
    /// store, in the same transaction as the item (see
    /// [`crate::blob::inline_ref`]); `None` when it is in the blob store
    /// already. Must hash to `blob`.
    pub inline: Option<bytes::Bytes>,
    pub ext_props: Vec<ExtProp>,
}

/// Time precision of stored timestamps: 100 ns ticks, as Exchange (FILETIME)
/// keeps them. Values passed in are truncated to it, so what a create returns
/// equals what a later read returns.
pub fn truncate_to_tick(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 100)
        .expect("truncating nanoseconds stays in range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_id_round_trip() {
        let m = Uuid::new_v4();
        let t = Uuid::new_v4();
        let id = MailboxId::new(m, t);
        let s = id.to_string();
        assert!(s.starts_with("MBX:"));
        assert_eq!(s, s.to_lowercase().replacen("mbx:", "MBX:", 1));
        assert_eq!(MailboxId::parse(&s).unwrap(), id);
        assert_eq!(MailboxId::parse(&s.to_uppercase()).unwrap(), id);
        assert_eq!(MailboxId::parse(&s.to_lowercase()).unwrap(), id);
        let simple = format!("MBX:{}@{}", m.simple(), t.simple());
        assert_eq!(MailboxId::parse(&simple).unwrap(), id);
    }

    #[test]
    fn mailbox_id_rejects_garbage() {
        for bad in [
            "",
            "MBX",
            "MBX:",
            "MBX:@",
            "XBX:6a1e5f60-0000-0000-0000-000000000000@6a1e5f60-0000-0000-0000-000000000000",
            "MBX:6a1e5f60-0000-0000-0000-000000000000",
            "MBX:6a1e5f60-0000-0000-0000-000000000000@zz",
            "MBX:{6a1e5f60-0000-0000-0000-000000000000}@6a1e5f60-0000-0000-0000-000000000000",
            "MBX:6a1e5f60-0000-0000-0000-000000000000@6a1e5f60-0000-0000-0000-000000000000@x",
        ] {
            assert!(
                matches!(MailboxId::parse(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn ext_value_serializes_untagged() {
        let p = ExtProp {
            id: "String 0x37".into(),
            value: ExtValue::Multi(vec!["a".into()]),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"id":"String 0x37","value":["a"]}"#
        );
        let back: ExtProp = serde_json::from_str(r#"{"id":"x","value":"v"}"#).unwrap();
        assert_eq!(back.value, ExtValue::Single("v".into()));
    }
}
