//! The PostgreSQL schema and its versioned migrations.
//!
//! The same shape as the SQLite schema (see `crate::sqlite::schema` for the
//! reasons behind each index), with PostgreSQL types: identity keys, `bytea`
//! blob hashes, `boolean` flags, and every text column `COLLATE "C"` so that
//! comparisons and orders are by code point exactly as on SQLite. Item
//! categories are kept twice: the JSON as given, and a Unicode-lower-cased
//! `text[]` (`category_keys`) for `categories/any(...)` filters.
//!
//! `schema_version` records every migration applied. [`migrate`] runs the
//! missing ones at open inside one transaction that first takes a
//! transaction-level advisory lock, so many instances starting at once
//! migrate exactly once; a database written by a newer graphbox is refused.

use deadpool_postgres::Client;

use crate::domain::{Result, StoreError};

const V1: &str = r#"
CREATE TABLE settings (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id           TEXT COLLATE "C" PRIMARY KEY,
    domain       TEXT COLLATE "C" NOT NULL,
    domain_key   TEXT COLLATE "C" NOT NULL UNIQUE,
    display_name TEXT COLLATE "C" NOT NULL
);

CREATE TABLE users (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    upn          TEXT COLLATE "C" NOT NULL,
    upn_key      TEXT COLLATE "C" NOT NULL UNIQUE,
    display_name TEXT COLLATE "C" NOT NULL
);
CREATE INDEX users_tenant ON users(tenant_id);

CREATE TABLE mailboxes (
    mbx       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guid      TEXT COLLATE "C" NOT NULL UNIQUE,
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    user_id   TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    kind      TEXT COLLATE "C" NOT NULL,
    created   BIGINT NOT NULL,
    cn        BIGINT NOT NULL DEFAULT 0,
    horizon   BIGINT NOT NULL DEFAULT 0,
    UNIQUE (user_id, kind)
);
CREATE INDEX mailboxes_tenant ON mailboxes(tenant_id);

CREATE TABLE folders (
    fk           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mbx          BIGINT NOT NULL REFERENCES mailboxes(mbx),
    id           TEXT COLLATE "C" NOT NULL UNIQUE,
    parent_fk    BIGINT REFERENCES folders(fk),
    display_name TEXT COLLATE "C" NOT NULL,
    name_key     TEXT COLLATE "C" NOT NULL,
    class        TEXT COLLATE "C" NOT NULL,
    well_known   TEXT COLLATE "C",
    hidden       BOOLEAN NOT NULL,
    child_count  BIGINT NOT NULL DEFAULT 0,
    item_count   BIGINT NOT NULL DEFAULT 0,
    change_key   TEXT COLLATE "C" NOT NULL,
    cn           BIGINT NOT NULL,
    created      BIGINT NOT NULL,
    modified     BIGINT NOT NULL,
    ext_props    TEXT NOT NULL
);
CREATE UNIQUE INDEX folders_name ON folders(parent_fk, name_key);
CREATE UNIQUE INDEX folders_well_known ON folders(mbx, well_known) WHERE well_known IS NOT NULL;
CREATE INDEX folders_mbx_cn ON folders(mbx, cn);
CREATE INDEX folders_parent_cn ON folders(parent_fk, cn);

CREATE TABLE blobs (
    hash BYTEA PRIMARY KEY,
    size BIGINT NOT NULL,
    refs BIGINT NOT NULL
);
CREATE INDEX blobs_unreferenced ON blobs(hash) WHERE refs = 0;

CREATE TABLE items (
    ik            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            TEXT COLLATE "C" NOT NULL UNIQUE,
    mbx           BIGINT NOT NULL,
    folder_fk     BIGINT NOT NULL REFERENCES folders(fk),
    change_key    TEXT COLLATE "C" NOT NULL,
    class         TEXT COLLATE "C" NOT NULL,
    size          BIGINT NOT NULL,
    created       BIGINT NOT NULL,
    modified      BIGINT NOT NULL,
    categories    TEXT NOT NULL,
    category_keys TEXT[] COLLATE "C" NOT NULL,
    blob          BYTEA NOT NULL,
    blob_size     BIGINT NOT NULL,
    cn            BIGINT NOT NULL,
    ext_props     TEXT NOT NULL
);
CREATE INDEX items_folder_cn ON items(folder_fk, cn);
CREATE INDEX items_folder_created ON items(folder_fk, created, id);

CREATE TABLE tombstones (
    mbx      BIGINT NOT NULL,
    kind     SMALLINT NOT NULL,
    scope_fk BIGINT NOT NULL,
    id       TEXT COLLATE "C" NOT NULL,
    reason   SMALLINT NOT NULL,
    cn       BIGINT NOT NULL
);
CREATE INDEX tombstones_scope ON tombstones(scope_fk, kind, cn);
CREATE INDEX tombstones_mbx ON tombstones(mbx, kind, cn);
CREATE INDEX tombstones_id ON tombstones(id);
"#;

/// Small blobs' content in the meta store, written in the same transaction
/// as the item that brings it (no blob-store round trip for small imports).
/// Blobs without a row here are in the blob store. Large values are TOASTed.
const V3_INLINE: &str = r#"
CREATE TABLE blob_content (
    hash BYTEA PRIMARY KEY,
    data BYTEA NOT NULL
);
"#;

/// Every migration, in order; `schema_version` holds the ones applied.
pub(crate) const MIGRATIONS: &[&str] = &[V1, super::directory::DIRECTORY_V1, V3_INLINE];

/// Key of the advisory lock that serialises migrations across instances.
const MIGRATION_LOCK: i64 = 0x6772_6170_6862_6f78; // "graphbox"

/// Brings the database up to the current schema.
pub(crate) async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version BIGINT PRIMARY KEY,
             applied TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let current: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await?
        .try_get(0)?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, newer than this graphbox knows ({known}); \
             run a newer graphbox"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )
        .await?;
        tracing::info!(version = i + 1, "applied store schema migration (postgres)");
    }
    tx.commit().await?;
    Ok(())
}
