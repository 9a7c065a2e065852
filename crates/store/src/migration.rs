//! Raw, lossless row access to a whole metadata database, for copying a
//! deployment from one engine to another (`graphbox admin migrate`).
//!
//! Every engine implements [`RawTables`]: it can count, stream out
//! ([`RawTables::export_rows`], in batches, so a million items never sit in
//! memory) and load ([`RawTables::import_rows`]) the rows of each table of
//! [`TABLES`] exactly as stored — internal keys, ids, change keys, change
//! numbers, horizons, tombstones, counters, settings and the identity
//! directory included. Values travel in an engine-neutral form ([`Value`]):
//! integers (flags as 0/1), text and bytes. Engine-specific derived columns
//! (PostgreSQL's lower-cased `items.category_keys`) are recomputed on load.
//!
//! [`copy_tables`] drives a copy into an empty target and checks the row
//! counts; [`copy_blobs`] and [`verify_blobs`] copy and check the content
//! every `blobs` row refers to (content kept in the metadata, `blob_content`,
//! travels with the tables and is checked by hash). The source must not be written to while it
//! is copied (stop the servers first): each table is read in one snapshot,
//! but not all tables in the same one.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;

use crate::blob::BlobStore;
use crate::domain::{Result, StoreError};

/// One stored value in engine-neutral form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    /// Integers of every width, and flags as 0 / 1.
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// One row: a value per column of its [`Table`], in column order.
pub type Row = Vec<Value>;

/// How a column is stored (both engines agree on the logical type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// 64-bit integer.
    Int,
    /// Small integer (PostgreSQL `SMALLINT`, SQLite `INTEGER`).
    SmallInt,
    /// Flag (PostgreSQL `BOOLEAN`, SQLite `INTEGER` 0 / 1); travels as `Int`.
    Bool,
    Text,
    Bytes,
}

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
}

/// A table that a migration copies.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// The export order (`None`: any). Parents come before children.
    pub order_by: Option<&'static str>,
}

impl Table {
    /// The column names, comma-separated.
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `SELECT <columns> FROM <table> [ORDER BY …]`.
    pub fn select_sql(&self) -> String {
        let mut sql = format!("SELECT {} FROM {}", self.column_list(), self.name);
        if let Some(o) = self.order_by {
            sql.push_str(" ORDER BY ");
            sql.push_str(o);
        }
        sql
    }

    /// Checks that `row` fits this table's columns (arity, types, nulls).
    pub fn check_row(&self, row: &Row) -> Result<()> {
        if row.len() != self.columns.len() {
            return Err(StoreError::Invalid(format!(
                "a row for table {} has {} values, the table has {} columns",
                self.name,
                row.len(),
                self.columns.len()
            )));
        }
        for (c, v) in self.columns.iter().zip(row) {
            let ok = match (c.ty, v) {
                (_, Value::Null) => c.nullable,
                (ColumnType::Int, Value::Int(_)) => true,
                (ColumnType::SmallInt, Value::Int(i)) => i16::try_from(*i).is_ok(),
                (ColumnType::Bool, Value::Int(i)) => *i == 0 || *i == 1,
                (ColumnType::Text, Value::Text(_)) => true,
                (ColumnType::Bytes, Value::Bytes(_)) => true,
                _ => false,
            };
            if !ok {
                return Err(StoreError::Invalid(format!(
                    "value {v:?} does not fit column {}.{} ({:?}{})",
                    self.name,
                    c.name,
                    c.ty,
                    if c.nullable { ", nullable" } else { "" }
                )));
            }
        }
        Ok(())
    }
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: false,
    }
}

const fn null(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: true,
    }
}

use ColumnType::{Bool, Bytes, Int, SmallInt, Text};

/// Every table a migration copies, in an order that satisfies the foreign
/// keys (parents first).
pub const TABLES: &[Table] = &[
    Table {
        name: "settings",
        columns: &[col("key", Text), col("value", Text)],
        order_by: Some("key"),
    },
    Table {
        name: "tenants",
        columns: &[
            col("id", Text),
            col("domain", Text),
            col("domain_key", Text),
            col("display_name", Text),
        ],
        order_by: Some("id"),
    },
    Table {
        name: "users",
        columns: &[
            col("id", Text),
            col("tenant_id", Text),
            col("upn", Text),
            col("upn_key", Text),
            col("display_name", Text),
        ],
        order_by: Some("id"),
    },
    Table {
        name: "mailboxes",
        columns: &[
            col("mbx", Int),
            col("guid", Text),
            col("tenant_id", Text),
            col("user_id", Text),
            col("kind", Text),
            col("created", Int),
            col("cn", Int),
            col("horizon", Int),
        ],
        order_by: Some("mbx"),
    },
    Table {
        name: "folders",
        columns: &[
            col("fk", Int),
            col("mbx", Int),
            col("id", Text),
            null("parent_fk", Int),
            col("display_name", Text),
            col("name_key", Text),
            col("class", Text),
            null("well_known", Text),
            col("hidden", Bool),
            col("child_count", Int),
            col("item_count", Int),
            col("change_key", Text),
            col("cn", Int),
            col("created", Int),
            col("modified", Int),
            col("ext_props", Text),
        ],
        // Folders never move, so a parent's key is below its children's.
        order_by: Some("fk"),
    },
    Table {
        name: "blobs",
        columns: &[col("hash", Bytes), col("size", Int), col("refs", Int)],
        order_by: Some("hash"),
    },
    Table {
        name: "blob_content",
        columns: &[col("hash", Bytes), col("data", Bytes)],
        order_by: Some("hash"),
    },
    Table {
        name: "items",
        columns: &[
            col("ik", Int),
            col("id", Text),
            col("mbx", Int),
            col("folder_fk", Int),
            col("change_key", Text),
            col("class", Text),
            col("size", Int),
            col("created", Int),
            col("modified", Int),
            col("categories", Text),
            col("blob", Bytes),
            col("blob_size", Int),
            col("cn", Int),
            col("ext_props", Text),
        ],
        order_by: Some("ik"),
    },
    Table {
        name: "tombstones",
        columns: &[
            col("mbx", Int),
            col("kind", SmallInt),
            col("scope_fk", Int),
            col("id", Text),
            col("reason", SmallInt),
            col("cn", Int),
        ],
        order_by: None,
    },
    Table {
        name: "dir_apps",
        columns: &[
            col("client_id", Text),
            col("tenant_id", Text),
            col("display_name", Text),
            col("redirect_uris", Text),
            col("public_client", Bool),
            col("created", Int),
        ],
        order_by: Some("client_id"),
    },
    Table {
        name: "dir_secrets",
        columns: &[
            col("id", Text),
            col("client_id", Text),
            col("hint", Text),
            col("hash", Text),
            col("expires", Int),
        ],
        order_by: Some("id"),
    },
    Table {
        name: "dir_certs",
        columns: &[
            col("id", Text),
            col("client_id", Text),
            col("sha1", Text),
            col("sha256", Text),
            col("public_key", Text),
            col("expires", Int),
        ],
        order_by: Some("id"),
    },
    Table {
        name: "dir_permissions",
        columns: &[
            col("client_id", Text),
            col("kind", Text),
            col("value", Text),
        ],
        order_by: Some("client_id, kind, value"),
    },
    Table {
        name: "dir_grants",
        columns: &[
            col("client_id", Text),
            col("kind", Text),
            col("value", Text),
            col("user_id", Text),
        ],
        order_by: Some("client_id, kind, value, user_id"),
    },
    Table {
        name: "dir_user_credentials",
        columns: &[
            col("user_id", Text),
            null("password_hash", Text),
            col("is_admin", Bool),
        ],
        order_by: Some("user_id"),
    },
    Table {
        name: "dir_records",
        columns: &[
            col("kind", Text),
            col("key", Text),
            col("client_id", Text),
            col("data", Text),
            col("expires", Int),
        ],
        order_by: Some("kind, key"),
    },
];

/// The table named `name`.
pub fn table(name: &str) -> Result<&'static Table> {
    TABLES.iter().find(|t| t.name == name).ok_or_else(|| {
        StoreError::Invalid(format!(
            "no migratable table '{name}' (known: {})",
            TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// The internal key counters a migration carries over: `(table, column)`.
/// A deleted folder's key must never be handed out again (tombstones refer
/// to their scope folder by key), so the target continues after the highest
/// key the source ever allocated, not after the highest one still present.
pub const KEY_COUNTERS: &[(&str, &str)] =
    &[("mailboxes", "mbx"), ("folders", "fk"), ("items", "ik")];

/// A batch stream of one table's rows.
pub type RowStream = BoxStream<'static, Result<Vec<Row>>>;

/// Raw row access to a metadata database (both engines implement it).
#[async_trait]
pub trait RawTables: Send + Sync + std::fmt::Debug {
    /// How many rows `table` holds.
    async fn count_rows(&self, table: &'static Table) -> Result<u64>;
    /// Every row of `table`, from one snapshot, in batches of at most
    /// `batch` rows, in [`Table::order_by`] order.
    fn export_rows(&self, table: &'static Table, batch: usize) -> RowStream;
    /// Inserts `rows` exactly as given (internal keys included) in one
    /// transaction. Returns how many were inserted.
    async fn import_rows(&self, table: &'static Table, rows: Vec<Row>) -> Result<u64>;
    /// For each of [`KEY_COUNTERS`], the highest key ever allocated.
    async fn key_counters(&self) -> Result<Vec<(String, i64)>>;
    /// After every row is imported: makes each key counter continue after
    /// `max(given value, highest key present)`.
    async fn finish_import(&self, counters: &[(String, i64)]) -> Result<()>;
}

/// Refuses a target that holds any row (`Conflict` naming the tables).
pub async fn ensure_empty(target: &dyn RawTables) -> Result<()> {
    let mut busy = Vec::new();
    for t in TABLES {
        let n = target.count_rows(t).await?;
        if n > 0 {
            busy.push(format!("{} ({n} rows)", t.name));
        }
    }
    if busy.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "the target metadata store is not empty: {}; migrate only into a new, empty \
             database (nothing was changed)",
            busy.join(", ")
        )))
    }
}

/// Rows of one table on both sides after a copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableCount {
    pub table: &'static str,
    pub source: u64,
    pub target: u64,
}

/// Copies every table of [`TABLES`] from `from` into the empty `to`, then
/// the key counters, and checks that each table has as many rows on both
/// sides (`Backend` error otherwise). `progress` is told each table's name
/// and running row count after every batch.
pub async fn copy_tables(
    from: &dyn RawTables,
    to: &dyn RawTables,
    batch: usize,
    progress: &mut (dyn FnMut(&str, u64) + Send),
) -> Result<Vec<TableCount>> {
    ensure_empty(to).await?;
    let batch = batch.max(1);
    for t in TABLES {
        let mut rows = from.export_rows(t, batch);
        let mut copied = 0u64;
        while let Some(b) = rows.next().await {
            // `import_rows` checks every row against the table's columns.
            copied += to.import_rows(t, b?).await?;
            progress(t.name, copied);
        }
    }
    to.finish_import(&from.key_counters().await?).await?;
    verify_counts(from, to).await
}

/// Row counts of every table on both sides; `Backend` error on a difference.
pub async fn verify_counts(from: &dyn RawTables, to: &dyn RawTables) -> Result<Vec<TableCount>> {
    let mut out = Vec::new();
    for t in TABLES {
        let c = TableCount {
            table: t.name,
            source: from.count_rows(t).await?,
            target: to.count_rows(t).await?,
        };
        if c.source != c.target {
            return Err(StoreError::Backend(format!(
                "table {} has {} rows in the source but {} in the target after the copy",
                t.name, c.source, c.target
            )));
        }
        out.push(c);
    }
    Ok(out)
}

/// What [`copy_blobs`] / [`verify_blobs`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BlobCount {
    /// Blobs registered in the metadata.
    pub blobs: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Copied (or checked) content.
    pub copied: u64,
    /// Already present in the target with the right hash (not uploaded again).
    pub present: u64,
    /// Unreferenced blobs (`refs = 0`) whose content the source no longer
    /// has (a collector removed it); skipped.
    pub skipped_unreferenced: u64,
    /// Blobs whose content is kept in the metadata (`blob_content`): it
    /// travels with the tables, not through the blob stores (checked by hash
    /// when verifying).
    pub inline: u64,
}

/// `blob_content` read for its keys only.
static BLOB_CONTENT_KEYS: Table = Table {
    name: "blob_content",
    columns: &[col("hash", Bytes)],
    order_by: Some("hash"),
};

fn hex_of(h: &[u8]) -> Result<String> {
    let arr: [u8; 32] = h.try_into().map_err(|_| {
        StoreError::Backend(format!("a stored blob hash has {} bytes, not 32", h.len()))
    })?;
    Ok(blake3::Hash::from_bytes(arr).to_hex().to_string())
}

/// The hashes (hex) of the blobs whose content `meta` keeps itself.
async fn inline_hashes(meta: &dyn RawTables) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    let mut batches = meta.export_rows(&BLOB_CONTENT_KEYS, 1024);
    while let Some(b) = batches.next().await {
        for r in b? {
            match r.as_slice() {
                [Value::Bytes(h)] => {
                    out.insert(hex_of(h)?);
                }
                other => {
                    return Err(StoreError::Backend(format!(
                        "unexpected blob_content row {other:?}"
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// Checks every `blob_content` row of `meta` (its data hashes to its key)
/// and returns the sizes by hash.
async fn check_inline_content(meta: &dyn RawTables) -> Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    let mut batches = meta.export_rows(table("blob_content")?, 64);
    while let Some(b) = batches.next().await {
        for r in b? {
            let [Value::Bytes(h), Value::Bytes(data)] = r.as_slice() else {
                return Err(StoreError::Backend(format!(
                    "unexpected blob_content row {r:?}"
                )));
            };
            let hash = hex_of(h)?;
            let actual = blake3::hash(data).to_hex();
            if actual.as_str() != hash {
                return Err(StoreError::Backend(format!(
                    "the content of blob {hash} kept in the metadata hashes to {actual}"
                )));
            }
            out.insert(hash, data.len() as u64);
        }
    }
    Ok(out)
}

/// Hash (hex), size and reference count of each row of a `blobs` batch.
fn blob_rows(rows: Vec<Row>) -> Result<Vec<(String, u64, i64)>> {
    rows.into_iter()
        .map(|r| match r.as_slice() {
            [Value::Bytes(h), Value::Int(size), Value::Int(refs)] => {
                Ok((hex_of(h)?, (*size).max(0) as u64, *refs))
            }
            other => Err(StoreError::Backend(format!(
                "unexpected blobs row {other:?}"
            ))),
        })
        .collect()
}

/// Reads a whole blob as a stream, checking its hash (the stream does) and size.
async fn drain(blobs: &BlobStore, hash: &str, size: u64) -> Result<()> {
    let mut s = blobs.get_stream(hash).await?;
    let mut n = 0u64;
    while let Some(chunk) = s.next().await {
        n += chunk?.len() as u64;
    }
    if n != size {
        return Err(StoreError::Backend(format!(
            "blob {hash} has {n} bytes, its metadata says {size}"
        )));
    }
    Ok(())
}

/// Copies the content of every blob registered in `meta` (the source's
/// metadata) from `from` to `to`, `concurrency` at a time, streaming each
/// one (bounded memory) and checking that what was stored hashes to its key.
/// A referenced blob missing from `from` is an error; an unreferenced one is
/// skipped and counted.
pub async fn copy_blobs(
    meta: &dyn RawTables,
    from: &BlobStore,
    to: &BlobStore,
    concurrency: usize,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<BlobCount> {
    let inline = inline_hashes(meta).await?;
    let t = table("blobs")?;
    let mut batches = meta.export_rows(t, 256);
    let mut count = BlobCount::default();
    while let Some(b) = batches.next().await {
        let mut rows = blob_rows(b?)?;
        rows.retain(|(hash, size, _)| {
            if inline.contains(hash) {
                count.blobs += 1;
                count.bytes += size;
                count.inline += 1;
                false
            } else {
                true
            }
        });
        let results: Vec<Result<(u64, bool, bool)>> =
            futures::stream::iter(rows.into_iter().map(|(hash, size, refs)| async move {
                if to.exists(&hash).await? {
                    // Content-addressed: present means the same content, but
                    // check it rather than trust a half-written target.
                    drain(to, &hash, size).await?;
                    return Ok((size, true, false));
                }
                let src = match from.get_stream(&hash).await {
                    Ok(s) => s,
                    Err(StoreError::NotFound { .. }) if refs == 0 => {
                        return Ok((size, false, true));
                    }
                    Err(StoreError::NotFound { .. }) => {
                        return Err(StoreError::Backend(format!(
                            "blob {hash} is referenced by {refs} item(s) but missing from the \
                             source blob store; check the --from-blobs location"
                        )));
                    }
                    Err(e) => return Err(e),
                };
                let stored = to.put_stream(src).await?;
                if stored.hash != hash || stored.size != size {
                    return Err(StoreError::Backend(format!(
                        "blob {hash} ({size} bytes) was stored as {} ({} bytes)",
                        stored.hash, stored.size
                    )));
                }
                Ok((size, false, false))
            }))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for r in results {
            let (size, present, skipped) = r?;
            count.blobs += 1;
            count.bytes += size;
            if skipped {
                count.skipped_unreferenced += 1;
            } else if present {
                count.present += 1;
            } else {
                count.copied += 1;
            }
        }
        progress(count.blobs);
    }
    Ok(count)
}

/// Reads back every blob registered in `meta` from `blobs`, checking its
/// BLAKE3 hash and size. Unreferenced blobs may be absent (counted as
/// skipped); a referenced one missing or corrupt is an error.
pub async fn verify_blobs(
    meta: &dyn RawTables,
    blobs: &BlobStore,
    concurrency: usize,
) -> Result<BlobCount> {
    let inline = check_inline_content(meta).await?;
    let t = table("blobs")?;
    let mut batches = meta.export_rows(t, 256);
    let mut count = BlobCount::default();
    while let Some(b) = batches.next().await {
        let mut rows = blob_rows(b?)?;
        let mut wrong = None;
        rows.retain(|(hash, size, _)| match inline.get(hash) {
            Some(len) => {
                if len != size && wrong.is_none() {
                    wrong = Some(format!(
                        "blob {hash} is registered as {size} bytes but its content kept in the \
                         metadata has {len}"
                    ));
                }
                count.blobs += 1;
                count.bytes += size;
                count.inline += 1;
                false
            }
            None => true,
        });
        if let Some(w) = wrong {
            return Err(StoreError::Backend(w));
        }
        let results: Vec<Result<(u64, bool)>> =
            futures::stream::iter(rows.into_iter().map(|(hash, size, refs)| async move {
                match drain(blobs, &hash, size).await {
                    Ok(()) => Ok((size, false)),
                    Err(StoreError::NotFound { .. }) if refs == 0 => Ok((size, true)),
                    Err(StoreError::NotFound { .. }) => Err(StoreError::Backend(format!(
                        "blob {hash} is referenced by {refs} item(s) but missing from the target \
                         blob store"
                    ))),
                    Err(e) => Err(e),
                }
            }))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for r in results {
            let (size, skipped) = r?;
            count.blobs += 1;
            count.bytes += size;
            if skipped {
                count.skipped_unreferenced += 1;
            } else {
                count.copied += 1;
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_unique_and_known() {
        let mut names: Vec<_> = TABLES.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TABLES.len());
        assert!(table("items").is_ok());
        assert!(matches!(table("nope"), Err(StoreError::Invalid(_))));
        for (t, c) in KEY_COUNTERS {
            let t = table(t).unwrap();
            assert!(t.columns.iter().any(|x| x.name == *c));
        }
    }

    #[test]
    fn check_row_rejects_misfits() {
        let t = table("folders").unwrap();
        let mut row: Row = t
            .columns
            .iter()
            .map(|c| match c.ty {
                ColumnType::Text => Value::Text("x".into()),
                ColumnType::Bytes => Value::Bytes(vec![1]),
                _ => Value::Int(1),
            })
            .collect();
        t.check_row(&row).unwrap();
        // parent_fk may be null, id may not.
        row[3] = Value::Null;
        t.check_row(&row).unwrap();
        let mut bad = row.clone();
        bad[2] = Value::Null;
        assert!(
            matches!(t.check_row(&bad), Err(StoreError::Invalid(m)) if m.contains("folders.id"))
        );
        let mut bad = row.clone();
        bad[8] = Value::Int(2); // hidden is a flag
        assert!(t.check_row(&bad).is_err());
        let mut bad = row.clone();
        bad[0] = Value::Text("1".into());
        assert!(t.check_row(&bad).is_err());
        assert!(t.check_row(&row[1..].to_vec()).is_err());
        let tomb = table("tombstones").unwrap();
        let r = vec![
            Value::Int(1),
            Value::Int(70_000),
            Value::Int(1),
            Value::Text("i".into()),
            Value::Int(0),
            Value::Int(5),
        ];
        assert!(tomb.check_row(&r).is_err(), "kind is a small integer");
    }

    #[test]
    fn select_sql_orders_parents_first() {
        assert_eq!(
            table("folders").unwrap().select_sql(),
            "SELECT fk, mbx, id, parent_fk, display_name, name_key, class, well_known, hidden, \
             child_count, item_count, change_key, cn, created, modified, ext_props FROM folders \
             ORDER BY fk"
        );
        assert!(!table("tombstones").unwrap().select_sql().contains("ORDER"));
    }
}
