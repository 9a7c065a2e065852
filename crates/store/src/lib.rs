//! The durable mailbox store of graphbox.
//!
//! Two halves, both behind small interfaces so engines can be swapped:
//!
//! * [`MetaStore`] keeps the metadata: tenants, users, mailboxes, the folder
//!   tree, items (their extracted properties and a [`BlobRef`] to their
//!   content), change tracking and a few shared server settings. The embedded
//!   default is [`SqliteMetaStore`]; the contract test suite
//!   ([`testsuite`], feature `testsuite`) runs on every implementation.
//! * [`BlobStore`] keeps item content (the FTS bytes as imported),
//!   content-addressed by BLAKE3 so identical items share one blob.
//!
//! # Change tracking
//!
//! Each mailbox has a monotonic *change number* (cn). Every write allocates
//! fresh numbers inside its own transaction, one per object it touches, and
//! stamps them on the folder/item rows it changes. A delete (or a move out of
//! a folder) leaves a *tombstone* row (mailbox, scope folder, object id,
//! kind, reason, cn). A delta round is then two index range scans:
//! "rows of this scope with cn > N" merged with "tombstones of this scope
//! with cn > N", so its cost is proportional to the number of changes, not
//! to the size of the folder. Because every object gets its own cn, paging
//! by `after_cn` can never split a group of equal numbers. Tombstones are
//! purged explicitly ([`MetaStore::purge_tombstones`]); the purge raises the
//! mailbox's *horizon*, and a sync state older than the horizon must start
//! over (Graph's 410 `syncStateNotFound`).
//!
//! # Identifiers
//!
//! Mailbox ids have Graph's documented shape ([`MailboxId`]). Folder and item
//! ids are `AAMk` followed by URL-safe base64 of a millisecond timestamp and
//! 128 random bits: opaque, never reused, and always looked up together with
//! their mailbox (the time prefix keeps the id index append-mostly). A change
//! key is `CQAAA` followed by URL-safe base64 of the object's cn and 32
//! random bits, so it is new on every change.
//!
//! # Durability
//!
//! An `Ok` from a write means the change is on disk: SQLite runs in WAL mode
//! with `synchronous=FULL` (every commit is fsynced), and the local blob
//! backend writes a temporary file, fsyncs it, renames it into place and
//! fsyncs the directory. Blob reference counts change in the same transaction
//! as the item rows that hold them.
//!
//! # Bounded memory
//!
//! Blobs stream in and out ([`BlobStore::put_stream`],
//! [`BlobStore::get_stream`]) in fixed-size chunks; lists and deltas are
//! paged; folder counters are maintained on write, never counted on read.

pub mod blob;
pub mod directory;
pub mod domain;
pub mod meta;
pub mod migration;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod query;
pub mod sqlite;
#[cfg(feature = "testsuite")]
pub mod testsuite;

mod ids;

pub use blob::{BlobStore, ByteStream};
pub use directory::DirectoryStore;
pub use domain::{
    BlobRef, ExtProp, ExtValue, Folder, FolderPatch, Item, Mailbox, MailboxId, MailboxKind,
    NewFolder, NewItem, Result, StoreError, Tenant, User,
};
pub use meta::MetaStore;
#[cfg(feature = "postgres")]
pub use postgres::PgMetaStore;
pub use query::{
    Change, CmpOp, DeltaPage, DeltaScope, Field, Filter, ListQuery, Literal, Page, RemovedReason,
};
pub use sqlite::SqliteMetaStore;
