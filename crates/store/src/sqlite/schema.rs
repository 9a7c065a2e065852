//! The SQLite schema and its versioned migrations.
//!
//! `schema_version` records every migration applied; [`migrate`] runs the
//! missing ones at open, inside one transaction, and refuses a database
//! written by a newer graphbox. A migration is never edited once released:
//! changes are new entries appended to [`MIGRATIONS`].
//!
//! Shape and why:
//!
//! * Internal integer keys (`mailboxes.mbx`, `folders.fk`, `items.ik`) keep
//!   rows and indexes small; the opaque text ids are unique-indexed for
//!   lookup, and every lookup also checks the mailbox. `folders.fk` is
//!   `AUTOINCREMENT` so a deleted folder's key is never reused (tombstones
//!   refer to their scope folder by key).
//! * `mailboxes.cn` is the mailbox's change counter, bumped inside each write
//!   transaction; `mailboxes.horizon` is the tombstone purge horizon.
//! * `items(folder_fk, cn)` and `folders(parent_fk, cn)` / `folders(mbx, cn)`
//!   make a delta round a range scan; `tombstones(scope_fk, kind, cn)` and
//!   `tombstones(mbx, kind, cn)` do the same for removals.
//! * `items(folder_fk, created, id)` serves the default item order (newest
//!   first) without sorting; `folders(parent_fk, name_key)` both enforces
//!   unique names under a parent and serves the default folder order.
//! * `name_key` / `upn_key` / `domain_key` hold Unicode-lower-cased copies so
//!   case-insensitive uniqueness and comparisons are exact for all scripts.
//! * `folders.child_count` / `item_count` are counters maintained by every
//!   write in the same transaction: reading a folder never counts rows.
//! * `blobs.refs` counts the items referencing each blob; the partial index
//!   on `refs = 0` lets a collector find garbage without a scan.
//! * `blob_content` (migration 3) holds the content of small blobs, written
//!   in the same transaction as the item that brings them: an import of a
//!   small item is then one WAL commit (shared with concurrent imports by the
//!   group commit) instead of a file write, two fsyncs and a rename. Blobs
//!   without a row there are in the blob store. It is a rowid table (the
//!   content sits in its leaves; the hash index stays small), not part of
//!   `blobs`, whose WITHOUT ROWID b-tree would carry the content in its
//!   interior pages.

use rusqlite::{Connection, TransactionBehavior};

use crate::domain::{Result, StoreError};

const V1: &str = r#"
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    domain       TEXT NOT NULL,
    domain_key   TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    upn          TEXT NOT NULL,
    upn_key      TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX users_tenant ON users(tenant_id);

CREATE TABLE mailboxes (
    mbx       INTEGER PRIMARY KEY,
    guid      TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id   TEXT NOT NULL REFERENCES users(id),
    kind      TEXT NOT NULL,
    created   INTEGER NOT NULL,
    cn        INTEGER NOT NULL DEFAULT 0,
    horizon   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (user_id, kind)
);
CREATE INDEX mailboxes_tenant ON mailboxes(tenant_id);

CREATE TABLE folders (
    fk           INTEGER PRIMARY KEY AUTOINCREMENT,
    mbx          INTEGER NOT NULL REFERENCES mailboxes(mbx),
    id           TEXT NOT NULL UNIQUE,
    parent_fk    INTEGER REFERENCES folders(fk),
    display_name TEXT NOT NULL,
    name_key     TEXT NOT NULL,
    class        TEXT NOT NULL,
    well_known   TEXT,
    hidden       INTEGER NOT NULL,
    child_count  INTEGER NOT NULL DEFAULT 0,
    item_count   INTEGER NOT NULL DEFAULT 0,
    change_key   TEXT NOT NULL,
    cn           INTEGER NOT NULL,
    created      INTEGER NOT NULL,
    modified     INTEGER NOT NULL,
    ext_props    TEXT NOT NULL
);
CREATE UNIQUE INDEX folders_name ON folders(parent_fk, name_key);
CREATE UNIQUE INDEX folders_well_known ON folders(mbx, well_known) WHERE well_known IS NOT NULL;
CREATE INDEX folders_mbx_cn ON folders(mbx, cn);
CREATE INDEX folders_parent_cn ON folders(parent_fk, cn);

CREATE TABLE blobs (
    hash BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX blobs_unreferenced ON blobs(hash) WHERE refs = 0;

CREATE TABLE items (
    ik         INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    mbx        INTEGER NOT NULL,
    folder_fk  INTEGER NOT NULL REFERENCES folders(fk),
    change_key TEXT NOT NULL,
    class      TEXT NOT NULL,
    size       INTEGER NOT NULL,
    created    INTEGER NOT NULL,
    modified   INTEGER NOT NULL,
    categories TEXT NOT NULL,
    blob       BLOB NOT NULL,
    blob_size  INTEGER NOT NULL,
    cn         INTEGER NOT NULL,
    ext_props  TEXT NOT NULL
);
CREATE INDEX items_folder_cn ON items(folder_fk, cn);
CREATE INDEX items_folder_created ON items(folder_fk, created, id);

CREATE TABLE tombstones (
    mbx      INTEGER NOT NULL,
    kind     INTEGER NOT NULL,
    scope_fk INTEGER NOT NULL,
    id       TEXT NOT NULL,
    reason   INTEGER NOT NULL,
    cn       INTEGER NOT NULL
);
CREATE INDEX tombstones_scope ON tombstones(scope_fk, kind, cn);
CREATE INDEX tombstones_mbx ON tombstones(mbx, kind, cn);
CREATE INDEX tombstones_id ON tombstones(id);
"#;

/// Small blobs' content in the meta store.
const V3_INLINE: &str = r#"
CREATE TABLE blob_content (
    id   INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    data BLOB NOT NULL
);
"#;

/// Every migration, in order; `schema_version` holds the count applied.
pub(crate) const MIGRATIONS: &[&str] = &[V1, super::directory::DIRECTORY_V1, V3_INLINE];

/// Brings the database up to the current schema.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version INTEGER PRIMARY KEY,
             applied INTEGER NOT NULL
         )",
    )?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, newer than this graphbox knows ({known}); \
             run a newer graphbox"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied) VALUES (?1, unixepoch())",
            [i as i64 + 1],
        )?;
        tracing::info!(version = i + 1, "applied store schema migration");
    }
    tx.commit()?;
    Ok(())
}
