//! The operations behind [`super::PgMetaStore`]; each runs inside the
//! transaction its caller opened. Writes lock their mailbox row first
//! ([`mbx_lock`]), which serialises writers of one mailbox across instances.

use std::collections::BTreeMap;

use deadpool_postgres::Transaction;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::filter::{Entity, Param, filter_sql, order_sql};
use crate::blob::check_hash;
use crate::domain::{
    BlobRef, ExtProp, Folder, FolderPatch, Item, Mailbox, MailboxId, MailboxKind, NewFolder,
    NewItem, Result, StoreError, Tenant, User, truncate_to_tick,
};
use crate::ids::{looks_like_object_id, new_change_key, new_object_id};
use crate::query::{Change, DeltaPage, DeltaScope, ListQuery, Page, RemovedReason};
use crate::sqlite::ops::{DEFAULT_FOLDERS, check_name, merge};
use crate::sqlite::{from_ticks, ticks};

pub(super) type Tx<'a> = Transaction<'a>;
type P<'a> = &'a (dyn ToSql + Sync);

const KIND_FOLDER: i16 = 0;
const KIND_ITEM: i16 = 1;
const REASON_DELETED: i16 = 0;
const REASON_MOVED_OUT: i16 = 1;
/// Rows per multi-row statement in a bulk insert.
const BULK_CHUNK: usize = 5_000;

fn now() -> OffsetDateTime {
    truncate_to_tick(OffsetDateTime::now_utc())
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

fn uuid_of(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Backend(format!("stored id '{s}' is corrupt: {e}")))
}

fn blob_key(hash: &str) -> Result<Vec<u8>> {
    check_hash(hash)?;
    let h = blake3::Hash::from_hex(hash)
        .map_err(|e| StoreError::Invalid(format!("bad blob hash '{hash}': {e}")))?;
    Ok(h.as_bytes().to_vec())
}

fn blob_hex(bytes: &[u8]) -> Result<String> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Backend("stored blob hash is not 32 bytes".into()))?;
    Ok(blake3::Hash::from_bytes(arr).to_hex().to_string())
}

pub(super) async fn rows(tx: &Tx<'_>, sql: &str, p: &[P<'_>]) -> Result<Vec<Row>> {
    let st = tx.prepare_cached(sql).await?;
    Ok(tx.query(&st, p).await?)
}

pub(super) async fn opt(tx: &Tx<'_>, sql: &str, p: &[P<'_>]) -> Result<Option<Row>> {
    let st = tx.prepare_cached(sql).await?;
    Ok(tx.query_opt(&st, p).await?)
}

pub(super) async fn one(tx: &Tx<'_>, sql: &str, p: &[P<'_>]) -> Result<Row> {
    let st = tx.prepare_cached(sql).await?;
    Ok(tx.query_one(&st, p).await?)
}

pub(super) async fn exec(tx: &Tx<'_>, sql: &str, p: &[P<'_>]) -> Result<u64> {
    let st = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&st, p).await?)
}

/// Runs a dynamically built query (not cached: its text depends on the filter).
async fn dyn_rows(tx: &Tx<'_>, sql: &str, params: &[Param]) -> Result<Vec<Row>> {
    let p: Vec<P<'_>> = params
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect();
    Ok(tx.query(sql, &p).await?)
}

// ---- tenants and users ------------------------------------------------------

const TENANT_COLS: &str = "id, domain, display_name";

fn row_tenant(row: &Row) -> Result<Tenant> {
    Ok(Tenant {
        id: uuid_of(row.try_get(0)?)?,
        domain: row.try_get(1)?,
        display_name: row.try_get(2)?,
    })
}

pub(super) async fn create_tenant(tx: &Tx<'_>, domain: &str, name: &str) -> Result<Tenant> {
    let domain = domain.trim();
    check_name(domain, "tenant domain")?;
    if domain.contains(char::is_whitespace) || domain.contains('@') {
        return Err(StoreError::Invalid(format!(
            "'{domain}' is not a domain name"
        )));
    }
    let key = domain.to_lowercase();
    if opt(tx, "SELECT id FROM tenants WHERE domain_key = $1", &[&key])
        .await?
        .is_some()
    {
        return Err(StoreError::Conflict(format!(
            "a tenant with domain '{domain}' exists"
        )));
    }
    let t = Tenant {
        id: Uuid::new_v4(),
        domain: domain.to_string(),
        display_name: name.to_string(),
    };
    exec(
        tx,
        "INSERT INTO tenants (id, domain, domain_key, display_name) VALUES ($1, $2, $3, $4)",
        &[&t.id.to_string(), &t.domain, &key, &t.display_name],
    )
    .await
    .map_err(|e| match e {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a tenant with domain '{domain}' exists"))
        }
        e => e,
    })?;
    Ok(t)
}

pub(super) async fn get_tenant(tx: &Tx<'_>, id: Uuid) -> Result<Tenant> {
    match opt(
        tx,
        &format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1"),
        &[&id.to_string()],
    )
    .await?
    {
        Some(r) => row_tenant(&r),
        None => Err(StoreError::not_found("tenant", id.to_string())),
    }
}

pub(super) async fn find_tenant(tx: &Tx<'_>, key: &str) -> Result<Tenant> {
    if let Ok(id) = Uuid::parse_str(key) {
        return get_tenant(tx, id).await;
    }
    match opt(
        tx,
        &format!("SELECT {TENANT_COLS} FROM tenants WHERE domain_key = $1"),
        &[&key.trim().to_lowercase()],
    )
    .await?
    {
        Some(r) => row_tenant(&r),
        None => Err(StoreError::not_found("tenant", key)),
    }
}

pub(super) async fn list_tenants(tx: &Tx<'_>) -> Result<Vec<Tenant>> {
    rows(
        tx,
        &format!("SELECT {TENANT_COLS} FROM tenants ORDER BY domain_key"),
        &[],
    )
    .await?
    .iter()
    .map(row_tenant)
    .collect()
}

const USER_COLS: &str = "id, tenant_id, upn, display_name";

fn row_user(row: &Row) -> Result<User> {
    Ok(User {
        id: uuid_of(row.try_get(0)?)?,
        tenant_id: uuid_of(row.try_get(1)?)?,
        upn: row.try_get(2)?,
        display_name: row.try_get(3)?,
    })
}

pub(super) async fn create_user(
    tx: &Tx<'_>,
    tenant_id: Uuid,
    upn: &str,
    name: &str,
) -> Result<User> {
    get_tenant(tx, tenant_id).await?;
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
    if opt(tx, "SELECT id FROM users WHERE upn_key = $1", &[&key])
        .await?
        .is_some()
    {
        return Err(StoreError::Conflict(format!("user '{upn}' exists")));
    }
    let u = User {
        id: Uuid::new_v4(),
        tenant_id,
        upn: upn.to_string(),
        display_name: name.to_string(),
    };
    exec(
        tx,
        "INSERT INTO users (id, tenant_id, upn, upn_key, display_name) VALUES ($1, $2, $3, $4, $5)",
        &[
            &u.id.to_string(),
            &tenant_id.to_string(),
            &u.upn,
            &key,
            &u.display_name,
        ],
    )
    .await
    .map_err(|e| match e {
        StoreError::Conflict(_) => StoreError::Conflict(format!("user '{upn}' exists")),
        e => e,
    })?;
    Ok(u)
}

pub(super) async fn get_user(tx: &Tx<'_>, id: Uuid) -> Result<User> {
    match opt(
        tx,
        &format!("SELECT {USER_COLS} FROM users WHERE id = $1"),
        &[&id.to_string()],
    )
    .await?
    {
        Some(r) => row_user(&r),
        None => Err(StoreError::not_found("user", id.to_string())),
    }
}

pub(super) async fn find_user(tx: &Tx<'_>, tenant: Option<Uuid>, key: &str) -> Result<User> {
    let row = if let Ok(id) = Uuid::parse_str(key) {
        opt(
            tx,
            &format!("SELECT {USER_COLS} FROM users WHERE id = $1"),
            &[&id.to_string()],
        )
        .await?
    } else {
        opt(
            tx,
            &format!("SELECT {USER_COLS} FROM users WHERE upn_key = $1"),
            &[&key.trim().to_lowercase()],
        )
        .await?
    };
    match row.as_ref().map(row_user).transpose()? {
        Some(u) if tenant.is_none_or(|t| t == u.tenant_id) => Ok(u),
        _ => Err(StoreError::not_found("user", key)),
    }
}

pub(super) async fn list_users(tx: &Tx<'_>, tenant_id: Uuid) -> Result<Vec<User>> {
    rows(
        tx,
        &format!("SELECT {USER_COLS} FROM users WHERE tenant_id = $1 ORDER BY upn_key"),
        &[&tenant_id.to_string()],
    )
    .await?
    .iter()
    .map(row_user)
    .collect()
}

// ---- mailboxes ----------------------------------------------------------------

const MAILBOX_COLS: &str = "guid, tenant_id, user_id, kind, created";

fn row_mailbox(row: &Row) -> Result<Mailbox> {
    let guid = uuid_of(row.try_get(0)?)?;
    let tenant_id = uuid_of(row.try_get(1)?)?;
    let kind: &str = row.try_get(3)?;
    Ok(Mailbox {
        id: MailboxId::new(guid, tenant_id),
        tenant_id,
        user_id: uuid_of(row.try_get(2)?)?,
        kind: MailboxKind::parse(kind).map_err(|e| StoreError::Backend(e.to_string()))?,
        created: from_ticks(row.try_get(4)?)?,
    })
}

/// The internal key of a mailbox (reads).
async fn mbx_key(tx: &Tx<'_>, id: &MailboxId) -> Result<i64> {
    match opt(
        tx,
        "SELECT mbx FROM mailboxes WHERE guid = $1 AND tenant_id = $2",
        &[
            &id.mailbox_guid().to_string(),
            &id.tenant_guid().to_string(),
        ],
    )
    .await?
    {
        Some(r) => Ok(r.try_get(0)?),
        None => Err(StoreError::not_found("mailbox", id.to_string())),
    }
}

/// The internal key of a mailbox, locking its row until the transaction
/// ends: every write to a mailbox starts here, so writers of one mailbox
/// run one after the other on every instance.
async fn mbx_lock(tx: &Tx<'_>, id: &MailboxId) -> Result<i64> {
    match opt(
        tx,
        "SELECT mbx FROM mailboxes WHERE guid = $1 AND tenant_id = $2 FOR NO KEY UPDATE",
        &[
            &id.mailbox_guid().to_string(),
            &id.tenant_guid().to_string(),
        ],
    )
    .await?
    {
        Some(r) => Ok(r.try_get(0)?),
        None => Err(StoreError::not_found("mailbox", id.to_string())),
    }
}

/// Allocates `n` consecutive change numbers of a mailbox; returns the first.
async fn alloc_cn(tx: &Tx<'_>, mbx: i64, n: u64) -> Result<u64> {
    let last: i64 = one(
        tx,
        "UPDATE mailboxes SET cn = cn + $2 WHERE mbx = $1 RETURNING cn",
        &[&mbx, &i64_of(n)],
    )
    .await?
    .try_get(0)?;
    Ok(u64_of(last) - n + 1)
}

pub(super) async fn create_mailbox(
    tx: &Tx<'_>,
    user_id: Uuid,
    kind: MailboxKind,
) -> Result<Mailbox> {
    let user = get_user(tx, user_id).await?;
    let conflict = || {
        StoreError::Conflict(format!(
            "user '{}' already has a {} mailbox",
            user.upn,
            kind.as_str()
        ))
    };
    if opt(
        tx,
        "SELECT mbx FROM mailboxes WHERE user_id = $1 AND kind = $2",
        &[&user_id.to_string(), &kind.as_str()],
    )
    .await?
    .is_some()
    {
        return Err(conflict());
    }
    let created = now();
    let mailbox = Mailbox {
        id: MailboxId::new(Uuid::new_v4(), user.tenant_id),
        tenant_id: user.tenant_id,
        user_id,
        kind,
        created,
    };
    let mbx: i64 = one(
        tx,
        "INSERT INTO mailboxes (guid, tenant_id, user_id, kind, created) \
         VALUES ($1, $2, $3, $4, $5) RETURNING mbx",
        &[
            &mailbox.id.mailbox_guid().to_string(),
            &user.tenant_id.to_string(),
            &user_id.to_string(),
            &kind.as_str(),
            &ticks(created),
        ],
    )
    .await
    .map_err(|e| match e {
        StoreError::Conflict(_) => conflict(),
        e => e,
    })?
    .try_get(0)?;
    let first = alloc_cn(tx, mbx, DEFAULT_FOLDERS.len() as u64 + 1).await?;
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
    )
    .await?;
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
        )
        .await?;
        keys.push((wk, fk));
    }
    Ok(mailbox)
}

pub(super) async fn get_mailbox(tx: &Tx<'_>, id: &MailboxId) -> Result<Mailbox> {
    match opt(
        tx,
        &format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE guid = $1 AND tenant_id = $2"),
        &[
            &id.mailbox_guid().to_string(),
            &id.tenant_guid().to_string(),
        ],
    )
    .await?
    {
        Some(r) => row_mailbox(&r),
        None => Err(StoreError::not_found("mailbox", id.to_string())),
    }
}

pub(super) async fn list_mailboxes(
    tx: &Tx<'_>,
    tenant: Option<Uuid>,
    user: Option<Uuid>,
) -> Result<Vec<Mailbox>> {
    let (col, key) = match (tenant, user) {
        (Some(t), _) => ("tenant_id", t),
        (None, Some(u)) => ("user_id", u),
        (None, None) => return Err(StoreError::Invalid("no tenant or user given".into())),
    };
    rows(
        tx,
        &format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE {col} = $1 ORDER BY mbx"),
        &[&key.to_string()],
    )
    .await?
    .iter()
    .map(row_mailbox)
    .collect()
}

// ---- folders ------------------------------------------------------------------

struct FolderRef {
    fk: i64,
    id: String,
    parent_fk: Option<i64>,
    class: String,
    well_known: Option<String>,
}

async fn folder_ref(tx: &Tx<'_>, mbx: i64, key: &str) -> Result<FolderRef> {
    let row = if looks_like_object_id(key) {
        opt(
            tx,
            "SELECT fk, id, parent_fk, class, well_known FROM folders WHERE id = $1 AND mbx = $2",
            &[&key, &mbx],
        )
        .await?
    } else {
        opt(
            tx,
            "SELECT fk, id, parent_fk, class, well_known FROM folders \
             WHERE mbx = $2 AND well_known = $1",
            &[&key.to_lowercase(), &mbx],
        )
        .await?
    };
    match row {
        Some(r) => Ok(FolderRef {
            fk: r.try_get(0)?,
            id: r.try_get(1)?,
            parent_fk: r.try_get(2)?,
            class: r.try_get(3)?,
            well_known: r.try_get(4)?,
        }),
        None => Err(StoreError::not_found("folder", key)),
    }
}

const FOLDER_COLS: &str = "f.id, (SELECT p.id FROM folders p WHERE p.fk = f.parent_fk), \
     f.display_name, f.class, f.well_known, f.hidden, f.child_count, f.item_count, \
     f.change_key, f.cn, f.created, f.modified, f.ext_props";

fn row_folder(row: &Row, mailbox_id: &MailboxId) -> Result<Folder> {
    let ext: &str = row.try_get(12)?;
    Ok(Folder {
        id: row.try_get(0)?,
        mailbox_id: *mailbox_id,
        parent_id: row.try_get(1)?,
        display_name: row.try_get(2)?,
        class: row.try_get(3)?,
        well_known: row.try_get(4)?,
        hidden: row.try_get(5)?,
        child_folder_count: row.try_get(6)?,
        total_item_count: row.try_get(7)?,
        change_key: row.try_get(8)?,
        cn: u64_of(row.try_get(9)?),
        created: from_ticks(row.try_get(10)?)?,
        modified: from_ticks(row.try_get(11)?)?,
        ext_props: from_json(ext)?,
    })
}

async fn load_folder(tx: &Tx<'_>, mailbox_id: &MailboxId, fk: i64) -> Result<Folder> {
    match opt(
        tx,
        &format!("SELECT {FOLDER_COLS} FROM folders f WHERE f.fk = $1"),
        &[&fk],
    )
    .await?
    {
        Some(r) => row_folder(&r, mailbox_id),
        None => Err(StoreError::not_found("folder", fk.to_string())),
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert_folder(
    tx: &Tx<'_>,
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
    let fk: i64 = one(
        tx,
        "INSERT INTO folders (mbx, id, parent_fk, display_name, name_key, class, well_known, \
         hidden, change_key, cn, created, modified, ext_props) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12) RETURNING fk",
        &[
            &mbx,
            &new_object_id(),
            &parent_fk,
            &name,
            &name.to_lowercase(),
            &class,
            &well_known,
            &hidden,
            &new_change_key(cn),
            &i64_of(cn),
            &ticks(at),
            &to_json(&ext_props)?,
        ],
    )
    .await?
    .try_get(0)?;
    if let Some(p) = parent_fk {
        exec(
            tx,
            "UPDATE folders SET child_count = child_count + 1 WHERE fk = $1",
            &[&p],
        )
        .await?;
    }
    Ok(fk)
}

async fn name_taken(tx: &Tx<'_>, parent_fk: i64, name: &str, except: Option<i64>) -> Result<bool> {
    let fk: Option<i64> = match opt(
        tx,
        "SELECT fk FROM folders WHERE parent_fk = $1 AND name_key = $2",
        &[&parent_fk, &name.to_lowercase()],
    )
    .await?
    {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    };
    Ok(fk.is_some() && fk != except)
}

pub(super) async fn get_folder(tx: &Tx<'_>, mailbox_id: &MailboxId, key: &str) -> Result<Folder> {
    let mbx = mbx_key(tx, mailbox_id).await?;
    let f = folder_ref(tx, mbx, key).await?;
    load_folder(tx, mailbox_id, f.fk).await
}

/// Appends `LIMIT $n OFFSET $m` and its values.
fn limit_offset(query: &ListQuery, params: &mut Vec<Param>) -> String {
    params.push(Box::new(i64_of(query.top)));
    params.push(Box::new(i64_of(query.skip)));
    format!(" LIMIT ${} OFFSET ${}", params.len() - 1, params.len())
}

async fn count(tx: &Tx<'_>, table: &str, where_sql: &str, params: &[Param]) -> Result<u64> {
    let r = dyn_rows(
        tx,
        &format!("SELECT COUNT(*) FROM {table} WHERE {where_sql}"),
        params,
    )
    .await?;
    let n: i64 = r
        .first()
        .ok_or_else(|| StoreError::Backend("COUNT(*) returned no row".into()))?
        .try_get(0)?;
    Ok(u64_of(n))
}

pub(super) async fn list_folders(
    tx: &Tx<'_>,
    mailbox_id: &MailboxId,
    parent: &str,
    query: &ListQuery,
) -> Result<Page<Folder>> {
    let mbx = mbx_key(tx, mailbox_id).await?;
    let parent = folder_ref(tx, mbx, parent).await?;
    let mut where_sql = String::from("f.parent_fk = $1");
    let mut params: Vec<Param> = vec![Box::new(parent.fk)];
    if !query.include_hidden {
        where_sql.push_str(" AND NOT f.hidden");
    }
    if let Some(filter) = &query.filter {
        where_sql.push_str(" AND ");
        filter_sql(Entity::Folders, filter, &mut where_sql, &mut params)?;
    }
    let order = order_sql(Entity::Folders, query)?;
    let total = if query.count {
        Some(count(tx, "folders f", &where_sql, &params).await?)
    } else {
        None
    };
    let limit = limit_offset(query, &mut params);
    let items = dyn_rows(
        tx,
        &format!("SELECT {FOLDER_COLS} FROM folders f WHERE {where_sql} ORDER BY {order}{limit}"),
        &params,
    )
    .await?
    .iter()
    .map(|r| row_folder(r, mailbox_id))
    .collect::<Result<_>>()?;
    Ok(Page { items, total })
}

fn name_conflict(name: &str) -> StoreError {
    StoreError::Conflict(format!("a folder named '{name}' exists under this parent"))
}

pub(super) async fn create_folder(
    tx: &Tx<'_>,
    mailbox_id: &MailboxId,
    parent: &str,
    folder: &NewFolder,
) -> Result<Folder> {
    let mbx = mbx_lock(tx, mailbox_id).await?;
    let parent = folder_ref(tx, mbx, parent).await?;
    check_name(&folder.display_name, "folder display name")?;
    if name_taken(tx, parent.fk, &folder.display_name, None).await? {
        return Err(name_conflict(&folder.display_name));
    }
    let class = if folder.class.is_empty() {
        parent.class.clone()
    } else {
        folder.class.clone()
    };
    let cn = alloc_cn(tx, mbx, 1).await?;
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
    )
    .await?;
    load_folder(tx, mailbox_id, fk).await
}

pub(super) async fn update_folder(
    tx: &Tx<'_>,
    mailbox_id: &MailboxId,
    id: &str,
    patch: &FolderPatch,
) -> Result<Folder> {
    let mbx = mbx_lock(tx, mailbox_id).await?;
    let f = folder_ref(tx, mbx, id).await?;
    if patch.display_name.is_none() && patch.ext_props.is_none() {
        return load_folder(tx, mailbox_id, f.fk).await;
    }
    if let Some(name) = &patch.display_name {
        check_name(name, "folder display name")?;
        let current = load_folder(tx, mailbox_id, f.fk).await?;
        if *name != current.display_name {
            if let Some(wk) = &f.well_known {
                return Err(StoreError::Invalid(format!(
                    "the well-known folder '{wk}' cannot be renamed"
                )));
            }
            if let Some(p) = f.parent_fk
                && name_taken(tx, p, name, Some(f.fk)).await?
            {
                return Err(name_conflict(name));
            }
        }
    }
    let cn = alloc_cn(tx, mbx, 1).await?;
    let ext = patch.ext_props.as_ref().map(to_json).transpose()?;
    exec(
        tx,
        "UPDATE folders SET \
           display_name = COALESCE($2, display_name), \
           name_key = COALESCE($3, name_key), \
           ext_props = COALESCE($4, ext_props), \
           change_key = $5, cn = $6, modified = $7 \
         WHERE fk = $1",
        &[
            &f.fk,
            &patch.display_name,
            &patch.display_name.as_ref().map(|n| n.to_lowercase()),
            &ext,
            &new_change_key(cn),
            &i64_of(cn),
            &ticks(now()),
        ],
    )
    .await?;
    load_folder(tx, mailbox_id, f.fk).await
}

pub(super) async fn delete_folder(tx: &Tx<'_>, mailbox_id: &MailboxId, id: &str) -> Result<()> {
    let mbx = mbx_lock(tx, mailbox_id).await?;
    let f = folder_ref(tx, mbx, id).await?;
    if let Some(wk) = &f.well_known {
        return Err(StoreError::Invalid(format!(
            "the well-known folder '{wk}' cannot be deleted"
        )));
    }
    // The subtree, parents before children.
    let mut subtree: Vec<(i64, String, i64)> = Vec::new();
    for r in rows(
        tx,
        "WITH RECURSIVE sub(fk, depth) AS ( \
             SELECT $1::bigint, 0 \
             UNION ALL \
             SELECT c.fk, sub.depth + 1 FROM folders c JOIN sub ON c.parent_fk = sub.fk) \
         SELECT f.fk, f.id, f.parent_fk FROM sub JOIN folders f ON f.fk = sub.fk \
         ORDER BY sub.depth, f.fk",
        &[&f.fk],
    )
    .await?
    {
        subtree.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
    }
    for (fk, _, _) in &subtree {
        // Release the blobs of the folder's items (in hash order, so two
        // transactions never lock shared blob rows in opposite orders),
        // then drop the items and the tombstones scoped to the folder.
        exec(
            tx,
            "UPDATE blobs SET refs = blobs.refs - c.n \
             FROM (SELECT blob, COUNT(*) AS n FROM items WHERE folder_fk = $1 \
                   GROUP BY blob ORDER BY blob) AS c \
             WHERE blobs.hash = c.blob",
            &[fk],
        )
        .await?;
        exec(tx, "DELETE FROM items WHERE folder_fk = $1", &[fk]).await?;
        exec(tx, "DELETE FROM tombstones WHERE scope_fk = $1", &[fk]).await?;
    }
    let first = alloc_cn(tx, mbx, subtree.len() as u64).await?;
    for (i, (fk, id, parent)) in subtree.iter().enumerate().rev() {
        exec(tx, "DELETE FROM folders WHERE fk = $1", &[fk]).await?;
        add_tombstone(
            tx,
            mbx,
            KIND_FOLDER,
            *parent,
            id,
            REASON_DELETED,
            first + i as u64,
        )
        .await?;
    }
    if let Some(p) = f.parent_fk {
        exec(
            tx,
            "UPDATE folders SET child_count = child_count - 1 WHERE fk = $1",
            &[&p],
        )
        .await?;
    }
    Ok(())
}

async fn add_tombstone(
    tx: &Tx<'_>,
    mbx: i64,
    kind: i16,
    scope_fk: i64,
    id: &str,
    reason: i16,
    cn: u64,
) -> Result<()> {
    exec(
        tx,
        "INSERT INTO tombstones (mbx, kind, scope_fk, id, reason, cn) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&mbx, &kind, &scope_fk, &id, &reason, &i64_of(cn)],
    )
    .await?;
    Ok(())
}

// ---- items ----------------------------------------------------------------------

const ITEM_COLS: &str = "i.id, i.change_key, i.class, i.size, i.created, i.modified, \
     i.categories, i.blob, i.blob_size, i.cn, i.ext_props";

fn row_item(row: &Row, mailbox_id: &MailboxId, folder_id: String) -> Result<Item> {
    let cats: &str = row.try_get(6)?;
    let blob: &[u8] = row.try_get(7)?;
    let ext: &str = row.try_get(10)?;
    Ok(Item {
        id: row.try_get(0)?,
        mailbox_id: *mailbox_id,
        folder_id,
        change_key: row.try_get(1)?,
        class: row.try_get(2)?,
        size: row.try_get(3)?,
        created: from_ticks(row.try_get(4)?)?,
        modified: from_ticks(row.try_get(5)?)?,
        categories: from_json(cats)?,
        blob: BlobRef {
            hash: blob_hex(blob)?,
            size: u64_of(row.try_get(8)?),
        },
        cn: u64_of(row.try_get(9)?),
        ext_props: from_json(ext)?,
    })
}

struct ItemRef {
    ik: i64,
    folder_fk: i64,
    change_key: String,
    blob: Vec<u8>,
}

async fn item_ref(tx: &Tx<'_>, mbx: i64, id: &str) -> Result<ItemRef> {
    if !looks_like_object_id(id) {
        return Err(StoreError::not_found("item", id));
    }
    match opt(
        tx,
        "SELECT ik, folder_fk, change_key, blob FROM items WHERE id = $1 AND mbx = $2",
        &[&id, &mbx],
    )
    .await?
    {
        Some(r) => Ok(ItemRef {
            ik: r.try_get(0)?,
            folder_fk: r.try_get(1)?,
            change_key: r.try_get(2)?,
            blob: r.try_get(3)?,
        }),
        None => Err(StoreError::not_found("item", id)),
    }
}

async fn load_item(tx: &Tx<'_>, mailbox_id: &MailboxId, ik: i64) -> Result<Item> {
    match opt(
        tx,
        &format!(
            "SELECT {ITEM_COLS}, f.id FROM items i JOIN folders f ON f.fk = i.folder_fk \
             WHERE i.ik = $1"
        ),
        &[&ik],
    )
    .await?
    {
        Some(r) => {
            let folder: String = r.try_get(11)?;
            row_item(&r, mailbox_id, folder)
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
    category_keys: Vec<String>,
    blob: Vec<u8>,
    blob_size: i64,
    /// The content, when it is kept in `blob_content`.
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
        category_keys: item.categories.iter().map(|c| c.to_lowercase()).collect(),
        blob: blob_key(&item.blob.hash)?,
        blob_size: i64_of(item.blob.size),
        inline: item.inline.clone(),
        ext_props: to_json(&item.ext_props)?,
    })
}

/// Keeps the inline content of `cols` in `blob_content` (rows already
/// there are left as they are: same hash, same content).
async fn store_inline<'c>(tx: &Tx<'_>, cols: impl IntoIterator<Item = &'c ItemCols>) -> Result<()> {
    let mut content: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
    for c in cols {
        if let Some(d) = &c.inline {
            content.insert(&c.blob, d);
        }
    }
    if content.is_empty() {
        return Ok(());
    }
    let hashes: Vec<&[u8]> = content.keys().copied().collect();
    let data: Vec<&[u8]> = content.values().copied().collect();
    exec(
        tx,
        "INSERT INTO blob_content (hash, data) \
         SELECT u.h, u.d FROM unnest($1::bytea[], $2::bytea[]) AS u(h, d) ORDER BY u.h \
         ON CONFLICT (hash) DO NOTHING",
        &[&hashes, &data],
    )
    .await?;
    Ok(())
}

/// Adds references to blobs (registering new ones); `refs` is (hash, size,
/// count). Rows are written in hash order so concurrent transactions lock
/// shared blob rows in the same order. A known blob with another size is
/// `Invalid`.
async fn blob_incref(tx: &Tx<'_>, refs: &BTreeMap<Vec<u8>, (i64, i64)>) -> Result<()> {
    if refs.is_empty() {
        return Ok(());
    }
    let hashes: Vec<&[u8]> = refs.keys().map(Vec::as_slice).collect();
    let sizes: Vec<i64> = refs.values().map(|(s, _)| *s).collect();
    let counts: Vec<i64> = refs.values().map(|(_, n)| *n).collect();
    let stored = rows(
        tx,
        "INSERT INTO blobs (hash, size, refs) \
         SELECT u.h, u.s, u.n FROM unnest($1::bytea[], $2::bigint[], $3::bigint[]) AS u(h, s, n) \
         ORDER BY u.h \
         ON CONFLICT (hash) DO UPDATE SET refs = blobs.refs + excluded.refs \
         RETURNING hash, size",
        &[&hashes, &sizes, &counts],
    )
    .await?;
    for r in stored {
        let hash: &[u8] = r.try_get(0)?;
        let size: i64 = r.try_get(1)?;
        if let Some((want, _)) = refs.get(hash)
            && *want != size
        {
            return Err(StoreError::Invalid(format!(
                "blob {} is {size} bytes, not {want}",
                blob_hex(hash)?
            )));
        }
    }
    Ok(())
}

fn one_ref(c: &ItemCols) -> BTreeMap<Vec<u8>, (i64, i64)> {
    BTreeMap::from([(c.blob.clone(), (c.blob_size, 1))])
}

async fn blob_decref(tx: &Tx<'_>, hash: &[u8]) -> Result<()> {
    exec(
        tx,
        "UPDATE blobs SET refs = refs - 1 WHERE hash = $1",
        &[&hash],
    )
    .await?;
    Ok(())
}

async fn bump_item_count(tx: &Tx<'_>, fk: i64, by: i64) -> Result<()> {
    exec(
        tx,
        "UPDATE folders SET item_count = item_count + $2 WHERE fk = $1",
        &[&fk, &by],
    )
    .await?;
    Ok(())
}

async fn insert_item(tx: &Tx<'_>, mbx: i64, folder_fk: i64, c: &ItemCols, cn: u64) -> Result<i64> {
    Ok(one(
        tx,
        "INSERT INTO items (id, mbx, folder_fk, change_key, class, size, created, modified, \
         categories, category_keys, blob, blob_size, cn, ext_props) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING ik",
        &[
            &new_object_id(),
            &mbx,
            &folder_fk,
            &new_change_key(cn),
            &c.class,
            &c.size,
            &c.created,
            &c.modified,
            &c.categories,
            &c.category_keys,
            &c.blob,
            &c.blob_size,
            &i64_of(cn),
            &c.ext_props,
        ],
    )
    .await?
    .try_get(0)?)
}

pub(super) async fn get_item(tx: &Tx<'_>, mailbox_id: &MailboxId, id: &str) -> Result<Item> {
    let mbx = mbx_key(tx, mailbox_id).await?;
    let r = item_ref(tx, mbx, id).await?;
    load_item(tx, mailbox_id, r.ik).await
}

pub(super) async fn list_items(
    tx: &Tx<'_>,
    mailbox_id: &MailboxId,
    folder: &str,
    query: &ListQuery,
) -> Result<Page<Item>> {
    let mbx = mbx_key(tx, mailbox_id).await?;
    let folder = folder_ref(tx, mbx, folder).await?;
    let mut where_sql = String::from("i.folder_fk = $1");
    let mut params: Vec<Param> = vec![Box::new(folder.fk)];
    if let Some(filter) = &query.filter {
        where_sql.push_str(" AND ");
        filter_sql(Entity::Items, filter, &mut where_sql, &mut params)?;
    }
    let order = order_sql(Entity::Items, query)?;
    let total = if query.count {
        Some(count(tx, "items i", &where_sql, &params).await?)
    } else {
        None
    };
    let limit = limit_offset(query, &mut params);
    let items = dyn_rows(
        tx,
        &format!("SELECT {ITEM_COLS} FROM items i WHERE {where_sql} ORDER BY {order}{limit}"),
        &params,
    )
    .await?
    .iter()
    .map(|r| row_item(r, mailbox_id, folder.id.clone()))
    .collect::<Result<_>>()?;
    Ok(Page { items, total })
}

pub(super) async fn create_item(
    tx: &Tx<'_>,
    mailbox_id: &MailboxId,
    folder: &str,
    item: &NewItem,
) -> Result<Item> {
    let mbx = mbx_lock(tx, mailbox_id).await?;
    let folder = folder_ref(tx, mbx, folder).await?;
    let c = item_cols(item)?;
    let cn = alloc_cn(tx, mbx, 1).await?;
    blob_incref(tx, &one_ref(&c)).await?;
    store_inline(tx, [&c]).await?;
    let ik = insert_item(tx, mbx, folder.fk, &c, cn).await?;
    bump_item_count(tx, folder.fk, 1).await?;
    load_item(tx, mailbox_id, ik).await
}

pub(super) async fn bulk_insert(
    tx: &Tx<'_>,
    mailbox_id: &MailboxId,
    folder: &str,
    items: &[NewItem],
) -> Result<u64> {
    let mbx = mbx_lock(tx, mailbox_id).await?;
    let folder = folder_ref(tx, mbx, folder).await?;
    let n = items.len() as u64;
    let cols = items.iter().map(item_cols).collect::<Result<Vec<_>>>()?;
    // Blob references, aggregated per hash.
    let mut refs: BTreeMap<Vec<u8>, (i64, i64)> = BTreeMap::new();
    for c in &cols {
        let e = refs.entry(c.blob.clone()).or_insert((c.blob_size, 0));
        if e.0 != c.blob_size {
            return Err(StoreError::Invalid(format!(
                "blob {} is given with sizes {} and {}",
                blob_hex(&c.blob)?,
                e.0,
                c.blob_size
            )));
        }
        e.1 += 1;
    }
    let first = alloc_cn(tx, mbx, n).await?;
    blob_incref(tx, &refs).await?;
    store_inline(tx, &cols).await?;
    for (chunk_no, chunk) in cols.chunks(BULK_CHUNK).enumerate() {
        let base = first + (chunk_no * BULK_CHUNK) as u64;
        let len = chunk.len();
        let cns: Vec<i64> = (0..len).map(|i| i64_of(base + i as u64)).collect();
        let ids: Vec<String> = (0..len).map(|_| new_object_id()).collect();
        let cks: Vec<String> = cns.iter().map(|cn| new_change_key(*cn as u64)).collect();
        let classes: Vec<&str> = chunk.iter().map(|c| c.class.as_str()).collect();
        let sizes: Vec<i64> = chunk.iter().map(|c| c.size).collect();
        let created: Vec<i64> = chunk.iter().map(|c| c.created).collect();
        let modified: Vec<i64> = chunk.iter().map(|c| c.modified).collect();
        let cats: Vec<&str> = chunk.iter().map(|c| c.categories.as_str()).collect();
        let keys: Vec<String> = chunk
            .iter()
            .map(|c| to_json(&c.category_keys))
            .collect::<Result<_>>()?;
        let blobs: Vec<&[u8]> = chunk.iter().map(|c| c.blob.as_slice()).collect();
        let blob_sizes: Vec<i64> = chunk.iter().map(|c| c.blob_size).collect();
        let exts: Vec<&str> = chunk.iter().map(|c| c.ext_props.as_str()).collect();
        exec(
            tx,
            "INSERT INTO items (id, mbx, folder_fk, change_key, class, size, created, modified, \
             categories, category_keys, blob, blob_size, cn, ext_props) \
             SELECT u.id, $1, $2, u.ck, u.class, u.size, u.created, u.modified, u.cats, \
                    ARRAY(SELECT jsonb_array_elements_text(u.keys::jsonb)), \
                    u.blob, u.bsize, u.cn, u.ext \
             FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], \
                         $8::bigint[], $9::text[], $10::text[], $11::bytea[], $12::bigint[], \
                         $13::bigint[], $14::text[]) \
                  AS u(id, ck, class, size, created, modified, cats, keys, blob, bsize, cn, ext)",
            &[
                &mbx,
                &folder.fk,
                &ids,
                &cks,
                &classes,
                &sizes,
                &created,
                &modified,
                &cats,
                &keys,
                &blobs,
                &blob_sizes,
                &cns,
                &exts,
            ],
        )
        .await?;
    }
    bump_item_count(tx, folder.fk, i64_of(n)).await?;
    Ok(n)
}

pub(super) async fn replace_item(
    tx: &Tx<'_>,
    mailbox_id: &MailboxId,
    id: &str,
    expected_change_key: &str,
    item: &NewItem,
) -> Result<Item> {
    let mbx = mbx_lock(tx, mailbox_id).await?;
    let r = item_ref(tx, mbx, id).await?;
    if r.change_key != expected_change_key {
        return Err(StoreError::Conflict(format!(
            "item {id} has changed (change key '{expected_change_key}' is stale)"
        )));
    }
    let c = item_cols(item)?;
    let cn = alloc_cn(tx, mbx, 1).await?;
    blob_incref(tx, &one_ref(&c)).await?;
    store_inline(tx, [&c]).await?;
    blob_decref(tx, &r.blob).await?;
    exec(
        tx,
        "UPDATE items SET change_key = $2, class = $3, size = $4, created = $5, modified = $6, \
         categories = $7, category_keys = $8, blob = $9, blob_size = $10, cn = $11, \
         ext_props = $12 WHERE ik = $1",
        &[
            &r.ik,
            &new_change_key(cn),
            &c.class,
            &c.size,
            &c.created,
            &c.modified,
            &c.categories,
            &c.category_keys,
            &c.blob,
            &c.blob_size,
            &i64_of(cn),
            &c.ext_props,
        ],
    )
    .await?;
    load_item(tx, mailbox_id, r.ik).await
}

pub(super) async fn move_item(
    tx: &Tx<'_>,
    mailbox_id: &MailboxId,
    id: &str,
    to: &str,
) -> Result<Item> {
    let mbx = mbx_lock(tx, mailbox_id).await?;
    let r = item_ref(tx, mbx, id).await?;
    let dest = folder_ref(tx, mbx, to).await?;
    if dest.fk == r.folder_fk {
        return load_item(tx, mailbox_id, r.ik).await;
    }
    let cn = alloc_cn(tx, mbx, 1).await?;
    exec(
        tx,
        "UPDATE items SET folder_fk = $2, change_key = $3, cn = $4 WHERE ik = $1",
        &[&r.ik, &dest.fk, &new_change_key(cn), &i64_of(cn)],
    )
    .await?;
    bump_item_count(tx, r.folder_fk, -1).await?;
    bump_item_count(tx, dest.fk, 1).await?;
    add_tombstone(tx, mbx, KIND_ITEM, r.folder_fk, id, REASON_MOVED_OUT, cn).await?;
    // Back in a folder it once left: its "moved out" entry there is obsolete.
    exec(
        tx,
        "DELETE FROM tombstones WHERE id = $1 AND scope_fk = $2",
        &[&id, &dest.fk],
    )
    .await?;
    load_item(tx, mailbox_id, r.ik).await
}

pub(super) async fn delete_item(tx: &Tx<'_>, mailbox_id: &MailboxId, id: &str) -> Result<()> {
    let mbx = mbx_lock(tx, mailbox_id).await?;
    let r = item_ref(tx, mbx, id).await?;
    let cn = alloc_cn(tx, mbx, 1).await?;
    blob_decref(tx, &r.blob).await?;
    exec(tx, "DELETE FROM items WHERE ik = $1", &[&r.ik]).await?;
    bump_item_count(tx, r.folder_fk, -1).await?;
    add_tombstone(tx, mbx, KIND_ITEM, r.folder_fk, id, REASON_DELETED, cn).await?;
    Ok(())
}

// ---- blobs --------------------------------------------------------------------------

pub(super) async fn unreferenced_blobs(tx: &Tx<'_>, limit: usize) -> Result<Vec<String>> {
    rows(
        tx,
        "SELECT hash FROM blobs WHERE refs = 0 LIMIT $1",
        &[&i64_of(limit as u64)],
    )
    .await?
    .iter()
    .map(|r| blob_hex(r.try_get(0)?))
    .collect()
}

pub(super) async fn forget_blob(tx: &Tx<'_>, hash: &str) -> Result<bool> {
    let key = blob_key(hash)?;
    let n = exec(
        tx,
        "DELETE FROM blobs WHERE hash = $1 AND refs = 0",
        &[&key],
    )
    .await?;
    if n > 0 {
        exec(tx, "DELETE FROM blob_content WHERE hash = $1", &[&key]).await?;
    }
    Ok(n > 0)
}

/// The inline content of those of `hashes` that have it.
pub(super) async fn inline_content(
    tx: &Tx<'_>,
    hashes: &[String],
) -> Result<std::collections::HashMap<String, bytes::Bytes>> {
    let keys = hashes
        .iter()
        .map(|h| blob_key(h))
        .collect::<Result<Vec<_>>>()?;
    let found = rows(
        tx,
        "SELECT hash, data FROM blob_content WHERE hash = ANY($1::bytea[])",
        &[&keys],
    )
    .await?;
    let mut out = std::collections::HashMap::new();
    for r in found {
        let h: &[u8] = r.try_get(0)?;
        let d: Vec<u8> = r.try_get(1)?;
        out.insert(blob_hex(h)?, bytes::Bytes::from(d));
    }
    Ok(out)
}

/// Registered blobs with a hash greater than `after`, in hash order (byte
/// order of `bytea` is the hex order), as (hash, size, references).
pub(super) async fn blob_refs(
    tx: &Tx<'_>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, u64, u64)>> {
    let after = match after {
        Some(h) => blob_key(h)?,
        None => Vec::new(),
    };
    rows(
        tx,
        "SELECT hash, size, refs FROM blobs WHERE hash > $1 ORDER BY hash LIMIT $2",
        &[&after, &i64_of(limit as u64)],
    )
    .await?
    .iter()
    .map(|r| {
        Ok((
            blob_hex(r.try_get(0)?)?,
            u64_of(r.try_get(1)?),
            u64_of(r.try_get(2)?),
        ))
    })
    .collect()
}

// ---- delta ----------------------------------------------------------------------------

async fn removals(
    tx: &Tx<'_>,
    sql: &str,
    key: i64,
    kind: i16,
    start: u64,
    fetch: i64,
) -> Result<Vec<(u64, String, RemovedReason)>> {
    rows(tx, sql, &[&key, &kind, &i64_of(start), &fetch])
        .await?
        .iter()
        .map(|r| {
            let reason: i16 = r.try_get(2)?;
            Ok((
                u64_of(r.try_get(0)?),
                r.try_get::<_, String>(1)?,
                if reason == REASON_MOVED_OUT {
                    RemovedReason::MovedOut
                } else {
                    RemovedReason::Deleted
                },
            ))
        })
        .collect()
}

async fn mailbox_marks(tx: &Tx<'_>, mbx: i64) -> Result<(u64, u64)> {
    let r = one(
        tx,
        "SELECT cn, horizon FROM mailboxes WHERE mbx = $1",
        &[&mbx],
    )
    .await?;
    Ok((u64_of(r.try_get(0)?), u64_of(r.try_get(1)?)))
}

fn check_limit(limit: usize) -> Result<i64> {
    if limit == 0 {
        return Err(StoreError::Invalid(
            "delta page size must be at least 1".into(),
        ));
    }
    Ok(i64_of(limit as u64).saturating_add(1))
}

pub(super) async fn folder_delta(
    tx: &Tx<'_>,
    mailbox_id: &MailboxId,
    scope: &DeltaScope,
    since_cn: u64,
    after_cn: u64,
    limit: usize,
) -> Result<DeltaPage<Folder>> {
    let fetch = check_limit(limit)?;
    let mbx = mbx_key(tx, mailbox_id).await?;
    let start = since_cn.max(after_cn);
    let (where_sql, key, tomb_sql) = match scope {
        DeltaScope::AllFolders => (
            "f.mbx = $1",
            mbx,
            "SELECT cn, id, reason FROM tombstones WHERE mbx = $1 AND kind = $2 AND cn > $3 \
             ORDER BY cn LIMIT $4",
        ),
        DeltaScope::ChildrenOf(parent) => (
            "f.parent_fk = $1",
            folder_ref(tx, mbx, parent).await?.fk,
            "SELECT cn, id, reason FROM tombstones WHERE scope_fk = $1 AND kind = $2 AND cn > $3 \
             ORDER BY cn LIMIT $4",
        ),
    };
    let upserts = rows(
        tx,
        &format!(
            "SELECT {FOLDER_COLS} FROM folders f WHERE {where_sql} AND f.cn > $2 \
             ORDER BY f.cn LIMIT $3"
        ),
        &[&key, &i64_of(start), &fetch],
    )
    .await?
    .iter()
    .map(|r| row_folder(r, mailbox_id).map(|f| (f.cn, f)))
    .collect::<Result<Vec<_>>>()?;
    let rems = if since_cn == 0 {
        Vec::new()
    } else {
        removals(tx, tomb_sql, key, KIND_FOLDER, start, fetch).await?
    };
    let (changes, last_cn, more): (Vec<Change<Folder>>, u64, bool) =
        merge(upserts, rems, start, limit);
    let (high_water, horizon) = mailbox_marks(tx, mbx).await?;
    Ok(DeltaPage {
        changes,
        last_cn,
        more,
        high_water,
        horizon,
    })
}

pub(super) async fn item_delta(
    tx: &Tx<'_>,
    mailbox_id: &MailboxId,
    folder: &str,
    since_cn: u64,
    after_cn: u64,
    limit: usize,
) -> Result<DeltaPage<Item>> {
    let fetch = check_limit(limit)?;
    let mbx = mbx_key(tx, mailbox_id).await?;
    let folder = folder_ref(tx, mbx, folder).await?;
    let start = since_cn.max(after_cn);
    let upserts = rows(
        tx,
        &format!(
            "SELECT {ITEM_COLS} FROM items i WHERE i.folder_fk = $1 AND i.cn > $2 \
             ORDER BY i.cn LIMIT $3"
        ),
        &[&folder.fk, &i64_of(start), &fetch],
    )
    .await?
    .iter()
    .map(|r| row_item(r, mailbox_id, folder.id.clone()).map(|it| (it.cn, it)))
    .collect::<Result<Vec<_>>>()?;
    let rems = if since_cn == 0 {
        Vec::new()
    } else {
        removals(
            tx,
            "SELECT cn, id, reason FROM tombstones WHERE scope_fk = $1 AND kind = $2 AND cn > $3 \
             ORDER BY cn LIMIT $4",
            folder.fk,
            KIND_ITEM,
            start,
            fetch,
        )
        .await?
    };
    let (changes, last_cn, more) = merge(upserts, rems, start, limit);
    let (high_water, horizon) = mailbox_marks(tx, mbx).await?;
    Ok(DeltaPage {
        changes,
        last_cn,
        more,
        high_water,
        horizon,
    })
}

pub(super) async fn purge_tombstones(
    tx: &Tx<'_>,
    mailbox_id: &MailboxId,
    older_than_cn: u64,
) -> Result<u64> {
    let mbx = mbx_lock(tx, mailbox_id).await?;
    let n = exec(
        tx,
        "DELETE FROM tombstones WHERE mbx = $1 AND cn < $2",
        &[&mbx, &i64_of(older_than_cn)],
    )
    .await?;
    exec(
        tx,
        "UPDATE mailboxes SET horizon = GREATEST(horizon, $2) WHERE mbx = $1",
        &[&mbx, &i64_of(older_than_cn)],
    )
    .await?;
    Ok(n)
}

// ---- settings -----------------------------------------------------------------------------

pub(super) async fn get_setting(tx: &Tx<'_>, key: &str) -> Result<Option<String>> {
    match opt(tx, "SELECT value FROM settings WHERE key = $1", &[&key]).await? {
        Some(r) => Ok(Some(r.try_get(0)?)),
        None => Ok(None),
    }
}

pub(super) async fn put_setting_if_absent(tx: &Tx<'_>, key: &str, value: &str) -> Result<String> {
    exec(
        tx,
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        &[&key, &value],
    )
    .await?;
    Ok(
        one(tx, "SELECT value FROM settings WHERE key = $1", &[&key])
            .await?
            .try_get(0)?,
    )
}
