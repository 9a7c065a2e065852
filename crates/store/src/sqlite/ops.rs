//! The synchronous operations behind [`super::SqliteMetaStore`]; each runs
//! inside the transaction its caller opened.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, Transaction, params, params_from_iter};
use time::OffsetDateTime;
use uuid::Uuid;

use super::filter::{Entity, filter_sql, order_sql};
use super::{from_ticks, ticks};
use crate::blob::check_hash;
use crate::domain::{
    BlobRef, ExtProp, Folder, FolderPatch, Item, Mailbox, MailboxId, MailboxKind, NewFolder,
    NewItem, Result, StoreError, Tenant, User, truncate_to_tick,
};
use crate::ids::{looks_like_object_id, new_change_key, new_object_id};
use crate::query::{Change, DeltaPage, DeltaScope, ListQuery, Page, RemovedReason};

const KIND_FOLDER: i64 = 0;
const KIND_ITEM: i64 = 1;
const REASON_DELETED: i64 = 0;
const REASON_MOVED_OUT: i64 = 1;

/// Longest display name accepted (Exchange's limit for folder names).
pub(crate) const MAX_NAME: usize = 255;

/// The standard folder tree: (well-known name, display name, class, hidden, parent).
pub(crate) const DEFAULT_FOLDERS: &[(&str, &str, &str, bool, &str)] = &[
    (
        "msgfolderroot",
        "Top of Information Store",
        "IPF.Note",
        false,
        "root",
    ),
    ("inbox", "Inbox", "IPF.Note", false, "msgfolderroot"),
    ("drafts", "Drafts", "IPF.Note", false, "msgfolderroot"),
    (
        "sentitems",
        "Sent Items",
        "IPF.Note",
        false,
        "msgfolderroot",
    ),
    (
        "deleteditems",
        "Deleted Items",
        "IPF.Note",
        false,
        "msgfolderroot",
    ),
    (
        "junkemail",
        "Junk Email",
        "IPF.Note",
        false,
        "msgfolderroot",
    ),
    ("outbox", "Outbox", "IPF.Note", false, "msgfolderroot"),
    ("archive", "Archive", "IPF.Note", false, "msgfolderroot"),
    (
        "conversationhistory",
        "Conversation History",
        "IPF.Note",
        false,
        "msgfolderroot",
    ),
    (
        "calendar",
        "Calendar",
        "IPF.Appointment",
        false,
        "msgfolderroot",
    ),
    (
        "contacts",
        "Contacts",
        "IPF.Contact",
        false,
        "msgfolderroot",
    ),
    ("tasks", "Tasks", "IPF.Task", false, "msgfolderroot"),
    ("notes", "Notes", "IPF.StickyNote", false, "msgfolderroot"),
    ("journal", "Journal", "IPF.Journal", false, "msgfolderroot"),
    (
        "recoverableitemsroot",
        "Recoverable Items",
        "IPF.Note",
        true,
        "msgfolderroot",
    ),
    (
        "recoverableitemsdeletions",
        "Deletions",
        "IPF.Note",
        true,
        "recoverableitemsroot",
    ),
    (
        "recoverableitemsversions",
        "Versions",
        "IPF.Note",
        true,
        "recoverableitemsroot",
    ),
    (
        "recoverableitemspurges",
        "Purges",
        "IPF.Note",
        true,
        "recoverableitemsroot",
    ),
];

fn now() -> OffsetDateTime {
    truncate_to_tick(OffsetDateTime::now_utc())
}

fn uuid_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let s: String = row.get(idx)?;
    Uuid::parse_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn u64_of(v: i64) -> u64 {
    v.max(0) as u64
}

fn i64_of(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encoding json: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Backend(format!("stored json is corrupt: {e}")))
}

fn blob_key(hash: &str) -> Result<[u8; 32]> {
    check_hash(hash)?;
    let h = blake3::Hash::from_hex(hash)
        .map_err(|e| StoreError::Invalid(format!("bad blob hash '{hash}': {e}")))?;
    Ok(*h.as_bytes())
}

fn blob_hex(bytes: &[u8]) -> Result<String> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Backend("stored blob hash is not 32 bytes".into()))?;
    Ok(blake3::Hash::from_bytes(arr).to_hex().to_string())
}

pub(crate) fn check_name(name: &str, what: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(StoreError::Invalid(format!("{what} must not be empty")));
    }
    if name.chars().count() > MAX_NAME {
        return Err(StoreError::Invalid(format!(
            "{what} is longer than {MAX_NAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

// ---- tenants and users ------------------------------------------------------

fn row_tenant(row: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: uuid_col(row, 0)?,
        domain: row.get(1)?,
        display_name: row.get(2)?,
    })
}

const TENANT_COLS: &str = "id, domain, display_name";

pub(super) fn create_tenant(tx: &Transaction<'_>, domain: &str, name: &str) -> Result<Tenant> {
    let domain = domain.trim();
    check_name(domain, "tenant domain")?;
    if domain.contains(char::is_whitespace) || domain.contains('@') {
        return Err(StoreError::Invalid(format!(
            "'{domain}' is not a domain name"
        )));
    }
    let key = domain.to_lowercase();
    let exists: Option<String> = tx
        .query_row(
            "SELECT id FROM tenants WHERE domain_key = ?1",
            [&key],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Err(StoreError::Conflict(format!(
            "a tenant with domain '{domain}' exists"
        )));
    }
    let t = Tenant {
        id: Uuid::new_v4(),
        domain: domain.to_string(),
        display_name: name.to_string(),
    };
    tx.execute(
        "INSERT INTO tenants (id, domain, domain_key, display_name) VALUES (?1, ?2, ?3, ?4)",
        params![t.id.to_string(), t.domain, key, t.display_name],
    )?;
    Ok(t)
}

pub(super) fn get_tenant(tx: &Transaction<'_>, id: Uuid) -> Result<Tenant> {
    tx.query_row(
        &format!("SELECT {TENANT_COLS} FROM tenants WHERE id = ?1"),
        [id.to_string()],
        row_tenant,
    )
    .optional()?
    .ok_or_else(|| StoreError::not_found("tenant", id.to_string()))
}

pub(super) fn find_tenant(tx: &Transaction<'_>, key: &str) -> Result<Tenant> {
    if let Ok(id) = Uuid::parse_str(key) {
        return get_tenant(tx, id);
    }
    tx.query_row(
        &format!("SELECT {TENANT_COLS} FROM tenants WHERE domain_key = ?1"),
        [key.trim().to_lowercase()],
        row_tenant,
    )
    .optional()?
    .ok_or_else(|| StoreError::not_found("tenant", key))
}

pub(super) fn list_tenants(tx: &Transaction<'_>) -> Result<Vec<Tenant>> {
    let mut st = tx.prepare(&format!(
        "SELECT {TENANT_COLS} FROM tenants ORDER BY domain_key"
    ))?;
    let rows = st.query_map([], row_tenant)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

const USER_COLS: &str = "id, tenant_id, upn, display_name";

fn row_user(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: uuid_col(row, 0)?,
        tenant_id: uuid_col(row, 1)?,
        upn: row.get(2)?,
        display_name: row.get(3)?,
    })
}

pub(super) fn create_user(
    tx: &Transaction<'_>,
    tenant_id: Uuid,
    upn: &str,
    name: &str,
) -> Result<User> {
    get_tenant(tx, tenant_id)?;
    let upn = upn.trim();
    check_name(upn, "user principal name")?;
    match upn.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {}
        _ => {
            return Err(StoreError::Invalid(format!(
                "'{upn}' is not a user principal name (expected name@domain)"
            )));
        }
    }
    let key = upn.to_lowercase();
    let exists: Option<String> = tx
        .query_row("SELECT id FROM users WHERE upn_key = ?1", [&key], |r| {
            r.get(0)
        })
        .optional()?;
    if exists.is_some() {
        return Err(StoreError::Conflict(format!("user '{upn}' exists")));
    }
    let u = User {
        id: Uuid::new_v4(),
        tenant_id,
        upn: upn.to_string(),
        display_name: name.to_string(),
    };
    tx.execute(
        "INSERT INTO users (id, tenant_id, upn, upn_key, display_name) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            u.id.to_string(),
            tenant_id.to_string(),
            u.upn,
            key,
            u.display_name
        ],
    )?;
    Ok(u)
}

pub(super) fn get_user(tx: &Transaction<'_>, id: Uuid) -> Result<User> {
    tx.query_row(
        &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
        [id.to_string()],
        row_user,
    )
    .optional()?
    .ok_or_else(|| StoreError::not_found("user", id.to_string()))
}

pub(super) fn find_user(tx: &Transaction<'_>, tenant: Option<Uuid>, key: &str) -> Result<User> {
    let user = if let Ok(id) = Uuid::parse_str(key) {
        tx.query_row(
            &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
            [id.to_string()],
            row_user,
        )
        .optional()?
    } else {
        tx.query_row(
            &format!("SELECT {USER_COLS} FROM users WHERE upn_key = ?1"),
            [key.trim().to_lowercase()],
            row_user,
        )
        .optional()?
    };
    match user {
        Some(u) if tenant.is_none_or(|t| t == u.tenant_id) => Ok(u),
        _ => Err(StoreError::not_found("user", key)),
    }
}

pub(super) fn list_users(tx: &Transaction<'_>, tenant_id: Uuid) -> Result<Vec<User>> {
    let mut st = tx.prepare(&format!(
        "SELECT {USER_COLS} FROM users WHERE tenant_id = ?1 ORDER BY upn_key"
    ))?;
    let rows = st.query_map([tenant_id.to_string()], row_user)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---- mailboxes ----------------------------------------------------------------

const MAILBOX_COLS: &str = "guid, tenant_id, user_id, kind, created";

fn row_mailbox(row: &Row<'_>) -> Result<Mailbox> {
    let guid = uuid_col(row, 0)?;
    let tenant_id = uuid_col(row, 1)?;
    let kind: String = row.get(3)?;
    Ok(Mailbox {
        id: MailboxId::new(guid, tenant_id),
        tenant_id,
        user_id: uuid_col(row, 2)?,
        kind: MailboxKind::parse(&kind).map_err(|e| StoreError::Backend(e.to_string()))?,
        created: from_ticks(row.get(4)?)?,
    })
}

/// The internal key of a mailbox.
fn mbx_key(tx: &Transaction<'_>, id: &MailboxId) -> Result<i64> {
    tx.prepare_cached("SELECT mbx FROM mailboxes WHERE guid = ?1 AND tenant_id = ?2")?
        .query_row(
            params![id.mailbox_guid().to_string(), id.tenant_guid().to_string()],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::not_found("mailbox", id.to_string()))
}

/// Allocates `n` consecutive change numbers of a mailbox; returns the first.
fn alloc_cn(tx: &Transaction<'_>, mbx: i64, n: u64) -> Result<u64> {
    let last: i64 = tx
        .prepare_cached("UPDATE mailboxes SET cn = cn + ?2 WHERE mbx = ?1 RETURNING cn")?
        .query_row(params![mbx, i64_of(n)], |r| r.get(0))?;
    Ok(u64_of(last) - n + 1)
}

pub(super) fn create_mailbox(
    tx: &Transaction<'_>,
    user_id: Uuid,
    kind: MailboxKind,
) -> Result<Mailbox> {
    let user = get_user(tx, user_id)?;
    let exists: Option<i64> = tx
        .query_row(
            "SELECT mbx FROM mailboxes WHERE user_id = ?1 AND kind = ?2",
            params![user_id.to_string(), kind.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Err(StoreError::Conflict(format!(
            "user '{}' already has a {} mailbox",
            user.upn,
            kind.as_str()
        )));
    }
    let created = now();
    let mailbox = Mailbox {
        id: MailboxId::new(Uuid::new_v4(), user.tenant_id),
        tenant_id: user.tenant_id,
        user_id,
        kind,
        created,
    };
    tx.execute(
        "INSERT INTO mailboxes (guid, tenant_id, user_id, kind, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            mailbox.id.mailbox_guid().to_string(),
            user.tenant_id.to_string(),
            user_id.to_string(),
            kind.as_str(),
            ticks(created)
        ],
    )?;
    let mbx = tx.last_insert_rowid();
    let first = alloc_cn(tx, mbx, DEFAULT_FOLDERS.len() as u64 + 1)?;
    let root = insert_folder(
        tx,
        mbx,
        None,
        "Root",
        "IPF.Note",
        Some("root"),
        true,
        first,
        created,
        &[],
    )?;
    let mut keys: Vec<(&str, i64)> = vec![("root", root)];
    for (i, (wk, name, class, hidden, parent)) in DEFAULT_FOLDERS.iter().enumerate() {
        let parent_fk = keys
            .iter()
            .find(|(k, _)| k == parent)
            .map(|(_, fk)| *fk)
            .expect("default folders are listed parents first");
        let fk = insert_folder(
            tx,
            mbx,
            Some(parent_fk),
            name,
            class,
            Some(wk),
            *hidden,
            first + 1 + i as u64,
            created,
            &[],
        )?;
        keys.push((wk, fk));
    }
    Ok(mailbox)
}

pub(super) fn get_mailbox(tx: &Transaction<'_>, id: &MailboxId) -> Result<Mailbox> {
    let mut st = tx.prepare_cached(&format!(
        "SELECT {MAILBOX_COLS} FROM mailboxes WHERE guid = ?1 AND tenant_id = ?2"
    ))?;
    let mut rows = st.query(params![
        id.mailbox_guid().to_string(),
        id.tenant_guid().to_string()
    ])?;
    match rows.next()? {
        Some(row) => row_mailbox(row),
        None => Err(StoreError::not_found("mailbox", id.to_string())),
    }
}

pub(super) fn list_mailboxes(
    tx: &Transaction<'_>,
    tenant: Option<Uuid>,
    user: Option<Uuid>,
) -> Result<Vec<Mailbox>> {
    let (sql, key) = match (tenant, user) {
        (Some(t), _) => ("tenant_id", t),
        (None, Some(u)) => ("user_id", u),
        (None, None) => return Err(StoreError::Invalid("no tenant or user given".into())),
    };
    let mut st = tx.prepare(&format!(
        "SELECT {MAILBOX_COLS} FROM mailboxes WHERE {sql} = ?1 ORDER BY mbx"
    ))?;
    let mut rows = st.query([key.to_string()])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(row_mailbox(row)?);
    }
    Ok(out)
}

// ---- folders ------------------------------------------------------------------

/// What writes need to know about a folder.
struct FolderRef {
    fk: i64,
    id: String,
    parent_fk: Option<i64>,
    class: String,
    well_known: Option<String>,
}

/// Finds a folder of mailbox `mbx` by id or well-known name.
fn folder_ref(tx: &Transaction<'_>, mbx: i64, key: &str) -> Result<FolderRef> {
    let map = |r: &Row<'_>| {
        Ok(FolderRef {
            fk: r.get(0)?,
            id: r.get(1)?,
            parent_fk: r.get(2)?,
            class: r.get(3)?,
            well_known: r.get(4)?,
        })
    };
    let found = if looks_like_object_id(key) {
        tx.prepare_cached(
            "SELECT fk, id, parent_fk, class, well_known FROM folders WHERE id = ?1 AND mbx = ?2",
        )?
        .query_row(params![key, mbx], map)
        .optional()?
    } else {
        tx.prepare_cached(
            "SELECT fk, id, parent_fk, class, well_known FROM folders \
             WHERE mbx = ?2 AND well_known = ?1",
        )?
        .query_row(params![key.to_lowercase(), mbx], map)
        .optional()?
    };
    found.ok_or_else(|| StoreError::not_found("folder", key))
}

const FOLDER_COLS: &str = "f.id, (SELECT p.id FROM folders p WHERE p.fk = f.parent_fk), \
     f.display_name, f.class, f.well_known, f.hidden, f.child_count, f.item_count, \
     f.change_key, f.cn, f.created, f.modified, f.ext_props";

fn row_folder(row: &Row<'_>, mailbox_id: &MailboxId) -> Result<Folder> {
    let ext: String = row.get(12)?;
    Ok(Folder {
        id: row.get(0)?,
        mailbox_id: *mailbox_id,
        parent_id: row.get(1)?,
        display_name: row.get(2)?,
        class: row.get(3)?,
        well_known: row.get(4)?,
        hidden: row.get(5)?,
        child_folder_count: row.get(6)?,
        total_item_count: row.get(7)?,
        change_key: row.get(8)?,
        cn: u64_of(row.get(9)?),
        created: from_ticks(row.get(10)?)?,
        modified: from_ticks(row.get(11)?)?,
        ext_props: from_json(&ext)?,
    })
}

fn load_folder(tx: &Transaction<'_>, mailbox_id: &MailboxId, fk: i64) -> Result<Folder> {
    let mut st = tx.prepare_cached(&format!(
        "SELECT {FOLDER_COLS} FROM folders f WHERE f.fk = ?1"
    ))?;
    let mut rows = st.query([fk])?;
    match rows.next()? {
        Some(row) => row_folder(row, mailbox_id),
        None => Err(StoreError::not_found("folder", fk.to_string())),
    }
}

#[allow(clippy::too_many_arguments)]
fn insert_folder(
    tx: &Transaction<'_>,
    mbx: i64,
    parent_fk: Option<i64>,
    name: &str,
    class: &str,
    well_known: Option<&str>,
    hidden: bool,
    cn: u64,
    at: OffsetDateTime,
    ext_props: &[ExtProp],
) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO folders (mbx, id, parent_fk, display_name, name_key, class, well_known, \
         hidden, change_key, cn, created, modified, ext_props) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
    )?
    .execute(params![
        mbx,
        new_object_id(),
        parent_fk,
        name,
        name.to_lowercase(),
        class,
        well_known,
        hidden,
        new_change_key(cn),
        i64_of(cn),
        ticks(at),
        to_json(&ext_props)?,
    ])?;
    let fk = tx.last_insert_rowid();
    if let Some(p) = parent_fk {
        tx.prepare_cached("UPDATE folders SET child_count = child_count + 1 WHERE fk = ?1")?
            .execute([p])?;
    }
    Ok(fk)
}

fn name_taken(
    tx: &Transaction<'_>,
    parent_fk: i64,
    name: &str,
    except: Option<i64>,
) -> Result<bool> {
    let fk: Option<i64> = tx
        .prepare_cached("SELECT fk FROM folders WHERE parent_fk = ?1 AND name_key = ?2")?
        .query_row(params![parent_fk, name.to_lowercase()], |r| r.get(0))
        .optional()?;
    Ok(fk.is_some() && fk != except)
}

pub(super) fn get_folder(
    tx: &Transaction<'_>,
    mailbox_id: &MailboxId,
    key: &str,
) -> Result<Folder> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let f = folder_ref(tx, mbx, key)?;
    load_folder(tx, mailbox_id, f.fk)
}

fn limit_offset(query: &ListQuery, params: &mut Vec<Value>) -> &'static str {
    params.push(Value::Integer(i64_of(query.top)));
    params.push(Value::Integer(i64_of(query.skip)));
    " LIMIT ? OFFSET ?"
}

fn count(tx: &Transaction<'_>, table: &str, where_sql: &str, params: &[Value]) -> Result<u64> {
    let n: i64 = tx.query_row(
        &format!("SELECT COUNT(*) FROM {table} WHERE {where_sql}"),
        params_from_iter(params.iter()),
        |r| r.get(0),
    )?;
    Ok(u64_of(n))
}

pub(super) fn list_folders(
    tx: &Transaction<'_>,
    mailbox_id: &MailboxId,
    parent: &str,
    query: &ListQuery,
) -> Result<Page<Folder>> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let parent = folder_ref(tx, mbx, parent)?;
    let mut where_sql = String::from("f.parent_fk = ?");
    let mut params = vec![Value::Integer(parent.fk)];
    if !query.include_hidden {
        where_sql.push_str(" AND f.hidden = 0");
    }
    if let Some(filter) = &query.filter {
        where_sql.push_str(" AND ");
        filter_sql(Entity::Folders, filter, &mut where_sql, &mut params)?;
    }
    let order = order_sql(Entity::Folders, query)?;
    let total = if query.count {
        Some(count(tx, "folders f", &where_sql, &params)?)
    } else {
        None
    };
    let mut page_params = params;
    let limit = limit_offset(query, &mut page_params);
    let mut st = tx.prepare(&format!(
        "SELECT {FOLDER_COLS} FROM folders f WHERE {where_sql} ORDER BY {order}{limit}"
    ))?;
    let mut rows = st.query(params_from_iter(page_params.iter()))?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        items.push(row_folder(row, mailbox_id)?);
    }
    Ok(Page { items, total })
}

pub(super) fn create_folder(
    tx: &Transaction<'_>,
    mailbox_id: &MailboxId,
    parent: &str,
    folder: NewFolder,
) -> Result<Folder> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let parent = folder_ref(tx, mbx, parent)?;
    check_name(&folder.display_name, "folder display name")?;
    if name_taken(tx, parent.fk, &folder.display_name, None)? {
        return Err(StoreError::Conflict(format!(
            "a folder named '{}' exists under this parent",
            folder.display_name
        )));
    }
    let class = if folder.class.is_empty() {
        parent.class.clone()
    } else {
        folder.class
    };
    let cn = alloc_cn(tx, mbx, 1)?;
    let fk = insert_folder(
        tx,
        mbx,
        Some(parent.fk),
        &folder.display_name,
        &class,
        None,
        false,
        cn,
        now(),
        &folder.ext_props,
    )?;
    load_folder(tx, mailbox_id, fk)
}

pub(super) fn update_folder(
    tx: &Transaction<'_>,
    mailbox_id: &MailboxId,
    id: &str,
    patch: FolderPatch,
) -> Result<Folder> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let f = folder_ref(tx, mbx, id)?;
    if patch.display_name.is_none() && patch.ext_props.is_none() {
        return load_folder(tx, mailbox_id, f.fk);
    }
    if let Some(name) = &patch.display_name {
        check_name(name, "folder display name")?;
        let current = load_folder(tx, mailbox_id, f.fk)?;
        if *name != current.display_name {
            if let Some(wk) = &f.well_known {
                return Err(StoreError::Invalid(format!(
                    "the well-known folder '{wk}' cannot be renamed"
                )));
            }
            if let Some(p) = f.parent_fk
                && name_taken(tx, p, name, Some(f.fk))?
            {
                return Err(StoreError::Conflict(format!(
                    "a folder named '{name}' exists under this parent"
                )));
            }
        }
    }
    let cn = alloc_cn(tx, mbx, 1)?;
    tx.execute(
        "UPDATE folders SET \
           display_name = COALESCE(?2, display_name), \
           name_key = COALESCE(?3, name_key), \
           ext_props = COALESCE(?4, ext_props), \
           change_key = ?5, cn = ?6, modified = ?7 \
         WHERE fk = ?1",
        params![
            f.fk,
            patch.display_name,
            patch.display_name.as_ref().map(|n| n.to_lowercase()),
            patch.ext_props.as_ref().map(to_json).transpose()?,
            new_change_key(cn),
            i64_of(cn),
            ticks(now()),
        ],
    )?;
    load_folder(tx, mailbox_id, f.fk)
}

pub(super) fn delete_folder(tx: &Transaction<'_>, mailbox_id: &MailboxId, id: &str) -> Result<()> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let f = folder_ref(tx, mbx, id)?;
    if let Some(wk) = &f.well_known {
        return Err(StoreError::Invalid(format!(
            "the well-known folder '{wk}' cannot be deleted"
        )));
    }
    // The subtree, parents before children.
    let subtree: Vec<(i64, String, i64)> = {
        let mut st = tx.prepare(
            "WITH RECURSIVE sub(fk, depth) AS ( \
                 SELECT ?1, 0 \
                 UNION ALL \
                 SELECT c.fk, sub.depth + 1 FROM folders c JOIN sub ON c.parent_fk = sub.fk) \
             SELECT f.fk, f.id, f.parent_fk FROM sub JOIN folders f ON f.fk = sub.fk \
             ORDER BY sub.depth",
        )?;
        let rows = st.query_map([f.fk], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (fk, _, _) in &subtree {
        // Release the blobs of the folder's items, then drop the items and
        // the tombstones scoped to the folder (nobody can ask for them now).
        tx.prepare_cached(
            "UPDATE blobs SET refs = refs - c.n \
             FROM (SELECT blob, COUNT(*) AS n FROM items WHERE folder_fk = ?1 GROUP BY blob) AS c \
             WHERE blobs.hash = c.blob",
        )?
        .execute([fk])?;
        tx.prepare_cached("DELETE FROM items WHERE folder_fk = ?1")?
            .execute([fk])?;
        tx.prepare_cached("DELETE FROM tombstones WHERE scope_fk = ?1")?
            .execute([fk])?;
    }
    let first = alloc_cn(tx, mbx, subtree.len() as u64)?;
    for (i, (fk, id, parent)) in subtree.iter().enumerate().rev() {
        tx.prepare_cached("DELETE FROM folders WHERE fk = ?1")?
            .execute([fk])?;
        add_tombstone(
            tx,
            mbx,
            KIND_FOLDER,
            *parent,
            id,
            REASON_DELETED,
            first + i as u64,
        )?;
    }
    if let Some(p) = f.parent_fk {
        tx.prepare_cached("UPDATE folders SET child_count = child_count - 1 WHERE fk = ?1")?
            .execute([p])?;
    }
    Ok(())
}

fn add_tombstone(
    tx: &Transaction<'_>,
    mbx: i64,
    kind: i64,
    scope_fk: i64,
    id: &str,
    reason: i64,
    cn: u64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO tombstones (mbx, kind, scope_fk, id, reason, cn) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![mbx, kind, scope_fk, id, reason, i64_of(cn)])?;
    Ok(())
}

// ---- items ----------------------------------------------------------------------

const ITEM_COLS: &str = "i.id, i.change_key, i.class, i.size, i.created, i.modified, \
     i.categories, i.blob, i.blob_size, i.cn, i.ext_props";

fn row_item(row: &Row<'_>, mailbox_id: &MailboxId, folder_id: String) -> Result<Item> {
    let cats: String = row.get(6)?;
    let blob: Vec<u8> = row.get(7)?;
    let ext: String = row.get(10)?;
    Ok(Item {
        id: row.get(0)?,
        mailbox_id: *mailbox_id,
        folder_id,
        change_key: row.get(1)?,
        class: row.get(2)?,
        size: row.get(3)?,
        created: from_ticks(row.get(4)?)?,
        modified: from_ticks(row.get(5)?)?,
        categories: from_json(&cats)?,
        blob: BlobRef {
            hash: blob_hex(&blob)?,
            size: u64_of(row.get(8)?),
        },
        cn: u64_of(row.get(9)?),
        ext_props: from_json(&ext)?,
    })
}

/// What writes need to know about an item.
struct ItemRef {
    ik: i64,
    folder_fk: i64,
    change_key: String,
    blob: Vec<u8>,
}

fn item_ref(tx: &Transaction<'_>, mbx: i64, id: &str) -> Result<ItemRef> {
    if !looks_like_object_id(id) {
        return Err(StoreError::not_found("item", id));
    }
    tx.prepare_cached(
        "SELECT ik, folder_fk, change_key, blob FROM items WHERE id = ?1 AND mbx = ?2",
    )?
    .query_row(params![id, mbx], |r| {
        Ok(ItemRef {
            ik: r.get(0)?,
            folder_fk: r.get(1)?,
            change_key: r.get(2)?,
            blob: r.get(3)?,
        })
    })
    .optional()?
    .ok_or_else(|| StoreError::not_found("item", id))
}

fn load_item(tx: &Transaction<'_>, mailbox_id: &MailboxId, ik: i64) -> Result<Item> {
    let mut st = tx.prepare_cached(&format!(
        "SELECT {ITEM_COLS}, f.id FROM items i JOIN folders f ON f.fk = i.folder_fk WHERE i.ik = ?1"
    ))?;
    let mut rows = st.query([ik])?;
    match rows.next()? {
        Some(row) => {
            let folder: String = row.get(11)?;
            row_item(row, mailbox_id, folder)
        }
        None => Err(StoreError::not_found("item", ik.to_string())),
    }
}

/// Validated, encoded columns of a [`NewItem`].
struct ItemCols {
    class: String,
    size: i64,
    created: i64,
    modified: i64,
    categories: String,
    blob: [u8; 32],
    blob_size: i64,
    /// The content, when it is kept in the `blobs` row.
    inline: Option<bytes::Bytes>,
    ext_props: String,
}

fn item_cols(item: &NewItem) -> Result<ItemCols> {
    if let Some(data) = &item.inline {
        crate::blob::check_inline(&item.blob, data)?;
    }
    if item.size < 0 {
        return Err(StoreError::Invalid(format!(
            "item size {} is negative",
            item.size
        )));
    }
    Ok(ItemCols {
        class: item.class.clone(),
        size: item.size,
        created: ticks(item.created),
        modified: ticks(item.modified),
        categories: to_json(&item.categories)?,
        blob: blob_key(&item.blob.hash)?,
        blob_size: i64_of(item.blob.size),
        inline: item.inline.clone(),
        ext_props: to_json(&item.ext_props)?,
    })
}

/// Adds a reference to a blob (registering it if new) and keeps `c.inline`
/// in `blob_content` unless it is there already.
fn blob_incref(tx: &Transaction<'_>, c: &ItemCols) -> Result<()> {
    let (hash, size) = (&c.blob, c.blob_size);
    let stored: i64 = tx
        .prepare_cached(
            "INSERT INTO blobs (hash, size, refs) VALUES (?1, ?2, 1) \
             ON CONFLICT (hash) DO UPDATE SET refs = refs + 1 RETURNING size",
        )?
        .query_row(params![&hash[..], size], |r| r.get(0))?;
    if let Some(data) = &c.inline {
        tx.prepare_cached(
            "INSERT INTO blob_content (hash, data) VALUES (?1, ?2) ON CONFLICT (hash) DO NOTHING",
        )?
        .execute(params![&hash[..], &data[..]])?;
    }
    if stored != size {
        return Err(StoreError::Invalid(format!(
            "blob {} is {stored} bytes, not {size}",
            blob_hex(hash)?
        )));
    }
    Ok(())
}

fn blob_decref(tx: &Transaction<'_>, hash: &[u8]) -> Result<()> {
    tx.prepare_cached("UPDATE blobs SET refs = refs - 1 WHERE hash = ?1")?
        .execute([hash])?;
    Ok(())
}

fn bump_item_count(tx: &Transaction<'_>, fk: i64, by: i64) -> Result<()> {
    tx.prepare_cached("UPDATE folders SET item_count = item_count + ?2 WHERE fk = ?1")?
        .execute(params![fk, by])?;
    Ok(())
}

fn insert_item(
    tx: &Transaction<'_>,
    mbx: i64,
    folder_fk: i64,
    c: &ItemCols,
    cn: u64,
) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO items (id, mbx, folder_fk, change_key, class, size, created, modified, \
         categories, blob, blob_size, cn, ext_props) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        new_object_id(),
        mbx,
        folder_fk,
        new_change_key(cn),
        c.class,
        c.size,
        c.created,
        c.modified,
        c.categories,
        &c.blob[..],
        c.blob_size,
        i64_of(cn),
        c.ext_props,
    ])?;
    Ok(tx.last_insert_rowid())
}

pub(super) fn get_item(tx: &Transaction<'_>, mailbox_id: &MailboxId, id: &str) -> Result<Item> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let r = item_ref(tx, mbx, id)?;
    load_item(tx, mailbox_id, r.ik)
}

pub(super) fn list_items(
    tx: &Transaction<'_>,
    mailbox_id: &MailboxId,
    folder: &str,
    query: &ListQuery,
) -> Result<Page<Item>> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let folder = folder_ref(tx, mbx, folder)?;
    let mut where_sql = String::from("i.folder_fk = ?");
    let mut params = vec![Value::Integer(folder.fk)];
    if let Some(filter) = &query.filter {
        where_sql.push_str(" AND ");
        filter_sql(Entity::Items, filter, &mut where_sql, &mut params)?;
    }
    let order = order_sql(Entity::Items, query)?;
    let total = if query.count {
        Some(count(tx, "items i", &where_sql, &params)?)
    } else {
        None
    };
    let mut page_params = params;
    let limit = limit_offset(query, &mut page_params);
    let mut st = tx.prepare(&format!(
        "SELECT {ITEM_COLS} FROM items i WHERE {where_sql} ORDER BY {order}{limit}"
    ))?;
    let mut rows = st.query(params_from_iter(page_params.iter()))?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        items.push(row_item(row, mailbox_id, folder.id.clone())?);
    }
    Ok(Page { items, total })
}

pub(super) fn create_item(
    tx: &Transaction<'_>,
    mailbox_id: &MailboxId,
    folder: &str,
    item: NewItem,
) -> Result<Item> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let folder = folder_ref(tx, mbx, folder)?;
    let c = item_cols(&item)?;
    let cn = alloc_cn(tx, mbx, 1)?;
    blob_incref(tx, &c)?;
    let ik = insert_item(tx, mbx, folder.fk, &c, cn)?;
    bump_item_count(tx, folder.fk, 1)?;
    load_item(tx, mailbox_id, ik)
}

pub(super) fn bulk_insert(
    tx: &Transaction<'_>,
    mailbox_id: &MailboxId,
    folder: &str,
    items: Vec<NewItem>,
) -> Result<u64> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let folder = folder_ref(tx, mbx, folder)?;
    let n = items.len() as u64;
    let first = alloc_cn(tx, mbx, n)?;
    for (i, item) in items.iter().enumerate() {
        let c = item_cols(item)?;
        blob_incref(tx, &c)?;
        insert_item(tx, mbx, folder.fk, &c, first + i as u64)?;
    }
    bump_item_count(tx, folder.fk, i64_of(n))?;
    Ok(n)
}

pub(super) fn replace_item(
    tx: &Transaction<'_>,
    mailbox_id: &MailboxId,
    id: &str,
    expected_change_key: &str,
    item: NewItem,
) -> Result<Item> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let r = item_ref(tx, mbx, id)?;
    if r.change_key != expected_change_key {
        return Err(StoreError::Conflict(format!(
            "item {id} has changed (change key '{expected_change_key}' is stale)"
        )));
    }
    let c = item_cols(&item)?;
    let cn = alloc_cn(tx, mbx, 1)?;
    blob_incref(tx, &c)?;
    blob_decref(tx, &r.blob)?;
    tx.prepare_cached(
        "UPDATE items SET change_key = ?2, class = ?3, size = ?4, created = ?5, modified = ?6, \
         categories = ?7, blob = ?8, blob_size = ?9, cn = ?10, ext_props = ?11 WHERE ik = ?1",
    )?
    .execute(params![
        r.ik,
        new_change_key(cn),
        c.class,
        c.size,
        c.created,
        c.modified,
        c.categories,
        &c.blob[..],
        c.blob_size,
        i64_of(cn),
        c.ext_props,
    ])?;
    load_item(tx, mailbox_id, r.ik)
}

pub(super) fn move_item(
    tx: &Transaction<'_>,
    mailbox_id: &MailboxId,
    id: &str,
    to: &str,
) -> Result<Item> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let r = item_ref(tx, mbx, id)?;
    let dest = folder_ref(tx, mbx, to)?;
    if dest.fk == r.folder_fk {
        return load_item(tx, mailbox_id, r.ik);
    }
    let cn = alloc_cn(tx, mbx, 1)?;
    tx.prepare_cached("UPDATE items SET folder_fk = ?2, change_key = ?3, cn = ?4 WHERE ik = ?1")?
        .execute(params![r.ik, dest.fk, new_change_key(cn), i64_of(cn)])?;
    bump_item_count(tx, r.folder_fk, -1)?;
    bump_item_count(tx, dest.fk, 1)?;
    add_tombstone(tx, mbx, KIND_ITEM, r.folder_fk, id, REASON_MOVED_OUT, cn)?;
    // Back in a folder it once left: its "moved out" entry there is obsolete.
    tx.prepare_cached("DELETE FROM tombstones WHERE id = ?1 AND scope_fk = ?2")?
        .execute(params![id, dest.fk])?;
    load_item(tx, mailbox_id, r.ik)
}

pub(super) fn delete_item(tx: &Transaction<'_>, mailbox_id: &MailboxId, id: &str) -> Result<()> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let r = item_ref(tx, mbx, id)?;
    let cn = alloc_cn(tx, mbx, 1)?;
    blob_decref(tx, &r.blob)?;
    tx.prepare_cached("DELETE FROM items WHERE ik = ?1")?
        .execute([r.ik])?;
    bump_item_count(tx, r.folder_fk, -1)?;
    add_tombstone(tx, mbx, KIND_ITEM, r.folder_fk, id, REASON_DELETED, cn)?;
    Ok(())
}

// ---- blobs --------------------------------------------------------------------------

pub(super) fn unreferenced_blobs(tx: &Transaction<'_>, limit: usize) -> Result<Vec<String>> {
    let mut st = tx.prepare_cached("SELECT hash FROM blobs WHERE refs = 0 LIMIT ?1")?;
    let mut rows = st.query([i64_of(limit as u64)])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let h: Vec<u8> = row.get(0)?;
        out.push(blob_hex(&h)?);
    }
    Ok(out)
}

pub(super) fn forget_blob(tx: &Transaction<'_>, hash: &str) -> Result<bool> {
    let key = blob_key(hash)?;
    let n = tx
        .prepare_cached("DELETE FROM blobs WHERE hash = ?1 AND refs = 0")?
        .execute([&key[..]])?;
    if n > 0 {
        tx.prepare_cached("DELETE FROM blob_content WHERE hash = ?1")?
            .execute([&key[..]])?;
    }
    Ok(n > 0)
}

pub(super) fn inline_content(
    tx: &Transaction<'_>,
    hashes: &[String],
) -> Result<HashMap<String, bytes::Bytes>> {
    let mut st = tx.prepare_cached("SELECT data FROM blob_content WHERE hash = ?1")?;
    let mut out = HashMap::new();
    for h in hashes {
        let key = blob_key(h)?;
        if let Some(data) = st
            .query_row([&key[..]], |r| r.get::<_, Vec<u8>>(0))
            .optional()?
        {
            out.insert(h.clone(), bytes::Bytes::from(data));
        }
    }
    Ok(out)
}

pub(super) fn blob_refs(
    tx: &Transaction<'_>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, u64, u64)>> {
    let after = match after {
        Some(h) => blob_key(h)?.to_vec(),
        None => Vec::new(),
    };
    let mut st = tx.prepare_cached(
        "SELECT hash, size, refs FROM blobs WHERE hash > ?1 ORDER BY hash LIMIT ?2",
    )?;
    let mut rows = st.query(rusqlite::params![after, i64_of(limit as u64)])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let h: Vec<u8> = row.get(0)?;
        let size: i64 = row.get(1)?;
        let refs: i64 = row.get(2)?;
        out.push((blob_hex(&h)?, size.max(0) as u64, refs.max(0) as u64));
    }
    Ok(out)
}

// ---- delta ----------------------------------------------------------------------------

/// Merges upserts and tombstones (each sorted by cn, each fetched with
/// `limit + 1` rows) into one page.
pub(crate) fn merge<T>(
    upserts: Vec<(u64, T)>,
    removals: Vec<(u64, String, RemovedReason)>,
    start: u64,
    limit: usize,
) -> (Vec<Change<T>>, u64, bool) {
    let available = upserts.len() + removals.len();
    let mut ups = upserts.into_iter().peekable();
    let mut rems = removals.into_iter().peekable();
    let mut changes = Vec::with_capacity(limit.min(available));
    let mut last = start;
    while changes.len() < limit {
        let take_up = match (ups.peek(), rems.peek()) {
            (Some((a, _)), Some((b, _, _))) => a <= b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_up {
            let (cn, v) = ups.next().expect("peeked");
            last = cn;
            changes.push(Change::Upsert(v));
        } else {
            let (cn, id, reason) = rems.next().expect("peeked");
            last = cn;
            changes.push(Change::Removed { id, reason });
        }
    }
    let more = available > changes.len();
    (changes, last, more)
}

fn removals(
    tx: &Transaction<'_>,
    sql: &str,
    key: i64,
    kind: i64,
    start: u64,
    fetch: i64,
) -> Result<Vec<(u64, String, RemovedReason)>> {
    let mut st = tx.prepare_cached(sql)?;
    let rows = st.query_map(params![key, kind, i64_of(start), fetch], |r| {
        let reason: i64 = r.get(2)?;
        Ok((
            u64_of(r.get(0)?),
            r.get::<_, String>(1)?,
            if reason == REASON_MOVED_OUT {
                RemovedReason::MovedOut
            } else {
                RemovedReason::Deleted
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn mailbox_marks(tx: &Transaction<'_>, mbx: i64) -> Result<(u64, u64)> {
    let (cn, horizon): (i64, i64) = tx
        .prepare_cached("SELECT cn, horizon FROM mailboxes WHERE mbx = ?1")?
        .query_row([mbx], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((u64_of(cn), u64_of(horizon)))
}

fn check_limit(limit: usize) -> Result<i64> {
    if limit == 0 {
        return Err(StoreError::Invalid(
            "delta page size must be at least 1".into(),
        ));
    }
    Ok(i64_of(limit as u64).saturating_add(1))
}

pub(super) fn folder_delta(
    tx: &Transaction<'_>,
    mailbox_id: &MailboxId,
    scope: &DeltaScope,
    since_cn: u64,
    after_cn: u64,
    limit: usize,
) -> Result<DeltaPage<Folder>> {
    let fetch = check_limit(limit)?;
    let mbx = mbx_key(tx, mailbox_id)?;
    let start = since_cn.max(after_cn);
    let (where_sql, key, tomb_sql) = match scope {
        DeltaScope::AllFolders => (
            "f.mbx = ?1",
            mbx,
            "SELECT cn, id, reason FROM tombstones WHERE mbx = ?1 AND kind = ?2 AND cn > ?3 \
             ORDER BY cn LIMIT ?4",
        ),
        DeltaScope::ChildrenOf(parent) => (
            "f.parent_fk = ?1",
            folder_ref(tx, mbx, parent)?.fk,
            "SELECT cn, id, reason FROM tombstones WHERE scope_fk = ?1 AND kind = ?2 AND cn > ?3 \
             ORDER BY cn LIMIT ?4",
        ),
    };
    let mut upserts = Vec::new();
    {
        let mut st = tx.prepare_cached(&format!(
            "SELECT {FOLDER_COLS} FROM folders f WHERE {where_sql} AND f.cn > ?2 ORDER BY f.cn LIMIT ?3"
        ))?;
        let mut rows = st.query(params![key, i64_of(start), fetch])?;
        while let Some(row) = rows.next()? {
            let f = row_folder(row, mailbox_id)?;
            upserts.push((f.cn, f));
        }
    }
    let rems = if since_cn == 0 {
        Vec::new()
    } else {
        removals(tx, tomb_sql, key, KIND_FOLDER, start, fetch)?
    };
    let (changes, last_cn, more) = merge(upserts, rems, start, limit);
    let (high_water, horizon) = mailbox_marks(tx, mbx)?;
    Ok(DeltaPage {
        changes,
        last_cn,
        more,
        high_water,
        horizon,
    })
}

pub(super) fn item_delta(
    tx: &Transaction<'_>,
    mailbox_id: &MailboxId,
    folder: &str,
    since_cn: u64,
    after_cn: u64,
    limit: usize,
) -> Result<DeltaPage<Item>> {
    let fetch = check_limit(limit)?;
    let mbx = mbx_key(tx, mailbox_id)?;
    let folder = folder_ref(tx, mbx, folder)?;
    let start = since_cn.max(after_cn);
    let mut upserts = Vec::new();
    {
        let mut st = tx.prepare_cached(&format!(
            "SELECT {ITEM_COLS} FROM items i WHERE i.folder_fk = ?1 AND i.cn > ?2 ORDER BY i.cn LIMIT ?3"
        ))?;
        let mut rows = st.query(params![folder.fk, i64_of(start), fetch])?;
        while let Some(row) = rows.next()? {
            let it = row_item(row, mailbox_id, folder.id.clone())?;
            upserts.push((it.cn, it));
        }
    }
    let rems = if since_cn == 0 {
        Vec::new()
    } else {
        removals(
            tx,
            "SELECT cn, id, reason FROM tombstones WHERE scope_fk = ?1 AND kind = ?2 AND cn > ?3 \
             ORDER BY cn LIMIT ?4",
            folder.fk,
            KIND_ITEM,
            start,
            fetch,
        )?
    };
    let (changes, last_cn, more) = merge(upserts, rems, start, limit);
    let (high_water, horizon) = mailbox_marks(tx, mbx)?;
    Ok(DeltaPage {
        changes,
        last_cn,
        more,
        high_water,
        horizon,
    })
}

pub(super) fn purge_tombstones(
    tx: &Transaction<'_>,
    mailbox_id: &MailboxId,
    older_than_cn: u64,
) -> Result<u64> {
    let mbx = mbx_key(tx, mailbox_id)?;
    let n = tx.execute(
        "DELETE FROM tombstones WHERE mbx = ?1 AND cn < ?2",
        params![mbx, i64_of(older_than_cn)],
    )?;
    tx.execute(
        "UPDATE mailboxes SET horizon = MAX(horizon, ?2) WHERE mbx = ?1",
        params![mbx, i64_of(older_than_cn)],
    )?;
    Ok(n as u64)
}

// ---- settings -----------------------------------------------------------------------------

pub(super) fn get_setting(tx: &Transaction<'_>, key: &str) -> Result<Option<String>> {
    Ok(tx
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?)
}

pub(super) fn put_setting_if_absent(
    tx: &Transaction<'_>,
    key: &str,
    value: &str,
) -> Result<String> {
    tx.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        [key, value],
    )?;
    Ok(
        tx.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })?,
    )
}
