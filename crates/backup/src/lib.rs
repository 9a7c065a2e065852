//! graphbox's backup repository: a versioned, deduplicated, compressed and
//! encrypted store of mailbox snapshots, in a local directory or an object
//! store. The format is specified in `docs/REPOSITORY.md`.
//!
//! - [`Repository`]: init / open, blobs ([`Repository::put_blob`],
//!   [`Repository::get_blob`]), [`Repository::flush`], snapshots, locks, the
//!   state area, [`Repository::verify`], [`Repository::prune`],
//!   [`Repository::find`].
//! - [`diff`] between two snapshots; [`meta::extract`] reads an item's
//!   metadata from its FTS.

mod aligned;
mod backend;
pub mod chunks;
mod crypto;
mod error;
mod find;
mod indexfile;
mod itemlist;
pub mod lock;
pub mod meta;
pub mod pack;
mod prune;
mod repo;
pub mod retention;
mod snapshot;
mod verify;

pub use chunks::{ChunkIndex, ChunkInfo, ITEMS_PER_CHUNK, ListChunk, ListPart};
pub use crypto::{BlobId, KdfParams};
pub use error::{Error, Result};
pub use find::{FindHit, FindQuery};
pub use lock::{LockGuard, LockKind, LockRecord};
pub use meta::{ExtractedMeta, Sender, extract, extract_bytes};
pub use pack::{BlobKind, PackEntry};
pub use prune::PruneReport;
pub use repo::{
    DEFAULT_COMPRESSION_LEVEL, DEFAULT_PACK_SIZE, FORMAT_VERSION, InitOptions,
    OLDEST_FORMAT_VERSION, RepoStats, Repository, SnapshotHead,
};
pub use retention::RetentionPolicy;
pub use snapshot::{
    FolderEntry, ItemChange, ItemEntry, ItemError, Snapshot, SnapshotDiff, SnapshotId,
    SnapshotSummary, diff,
};
pub use verify::{Problem, VerifyReport};
