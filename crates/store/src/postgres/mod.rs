//! The PostgreSQL [`MetaStore`] (feature `postgres`): for deployments of
//! several stateless graphbox instances sharing one database.
//!
//! Connections come from a `deadpool-postgres` pool. Opening the store
//! connects (so a wrong URL or an unreachable server fails at start, not at
//! the first request) and runs the versioned migrations of [`schema`] under
//! an advisory lock.
//!
//! # Transactions and concurrency
//!
//! Every write is one transaction (`READ COMMITTED`) whose first statement
//! locks the mailbox row it writes to (`SELECT … FOR NO KEY UPDATE`): writes
//! to one mailbox are serialised across every instance, exactly as the
//! single SQLite writer serialises them, and each statement after the lock
//! sees everything committed before it. Change numbers are allocated in the
//! transaction (`UPDATE mailboxes SET cn = cn + n … RETURNING cn`), so two
//! instances can never hand out the same cn, and they become visible only
//! with the rows they stamp. Folder and item ids are 128 random bits (plus a
//! timestamp) under unique indexes, so they cannot collide either. Races the
//! lock does not cover (a tenant domain, a UPN, a user's mailbox kind) end
//! in a unique violation, mapped to `Conflict` like the SQLite engine's
//! check. A transaction aborted by a deadlock or serialisation failure
//! (possible when two transactions touch the same shared blob rows) is
//! retried from the start.
//!
//! Reads run in `REPEATABLE READ READ ONLY` transactions: a delta page and
//! its high-water mark come from one snapshot.
//!
//! # Durability
//!
//! A commit returns once PostgreSQL has flushed its WAL (the server's
//! `synchronous_commit`, `on` by default; with replication, as configured).

mod filter;
mod migration;
mod ops;
pub(crate) mod schema;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::domain::{
    Folder, FolderPatch, Item, Mailbox, MailboxId, MailboxKind, NewFolder, NewItem, Result,
    StoreError, Tenant, User,
};
use crate::meta::MetaStore;
use crate::query::{DeltaPage, DeltaScope, ListQuery, Page};

/// Connections in the pool.
const DEFAULT_POOL_SIZE: usize = 16;
/// How often a transaction aborted by a deadlock / serialisation failure is retried.
const MAX_RETRIES: u32 = 8;
/// Items per transaction in [`MetaStore::bulk_insert_items`].
const BULK_BATCH: usize = 50_000;
/// How long opening waits for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Marks a backend error as "retry the transaction" (deadlock, serialisation failure).
const RETRY_MARK: &str = "postgres: transaction aborted by a concurrent one";

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            if *code == SqlState::UNIQUE_VIOLATION {
                return StoreError::Conflict(match db.detail() {
                    Some(d) => format!("{} ({d})", db.message()),
                    None => db.message().to_string(),
                });
            }
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
            {
                return StoreError::Backend(format!("{RETRY_MARK}: {}", db.message()));
            }
            return StoreError::Backend(format!(
                "postgres: {} (SQLSTATE {})",
                db.message(),
                code.code()
            ));
        }
        let mut msg = format!("postgres: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        StoreError::Backend(msg)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            e => StoreError::Backend(format!("postgres connection pool: {e}")),
        }
    }
}

fn is_retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(m) if m.starts_with(RETRY_MARK))
}

/// The PostgreSQL metadata store. Cheap to clone (a shared pool).
#[derive(Clone)]
pub struct PgMetaStore {
    pool: Pool,
    /// The URL without its password, for messages.
    display: String,
}

impl std::fmt::Debug for PgMetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgMetaStore({})", self.display)
    }
}

/// `url` with any password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable url>".into(),
    }
}

impl PgMetaStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/db[?…]`,
    /// or the key-value form libpq accepts), checks that the server answers
    /// and migrates the schema. TLS is not supported by this build: use a
    /// private network or a local socket (`host=/path/to/socket/dir`).
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with_pool_size(url, DEFAULT_POOL_SIZE).await
    }

    /// [`PgMetaStore::open`] with a pool of `size` connections.
    pub async fn open_with_pool_size(url: &str, size: usize) -> Result<Self> {
        let display = redact(url);
        let mut cfg = tokio_postgres::Config::from_str(url).map_err(|e| {
            StoreError::Invalid(format!(
                "'{display}' is not a PostgreSQL connection URL: {e} \
                 (expected postgres://user:password@host:port/database)"
            ))
        })?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(CONNECT_TIMEOUT);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("graphbox");
        }
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(format!("postgres pool for {display}: {e}")))?;
        let mut client = pool.get().await.map_err(|e| {
            let e: StoreError = e.into();
            StoreError::Backend(format!("cannot connect to PostgreSQL at {display}: {e}"))
        })?;
        schema::migrate(&mut client).await.map_err(|e| match e {
            StoreError::Backend(m) => {
                StoreError::Backend(format!("migrating PostgreSQL at {display}: {m}"))
            }
            e => e,
        })?;
        drop(client);
        tracing::debug!(url = %self::redact(url), "opened postgres meta store");
        Ok(PgMetaStore { pool, display })
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64> {
        let client = self.pool.get().await?;
        Ok(client
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .await?
            .try_get(0)?)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }
}

/// Runs `$body` (an expression using the transaction `$tx`) in a write
/// transaction, committing on `Ok`, rolling back on `Err`, and starting over
/// when a deadlock or serialisation failure aborted it.
macro_rules! write_tx {
    ($self:expr, |$tx:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            let mut client = $self.client().await?;
            let $tx = client.transaction().await?;
            let out = $body;
            let out = match out {
                Ok(v) => $tx.commit().await.map(|()| v).map_err(StoreError::from),
                Err(e) => {
                    let _ = $tx.rollback().await;
                    Err(e)
                }
            };
            match out {
                Err(e) if is_retryable(&e) && attempt < MAX_RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, error = %e, "retrying postgres transaction");
                    tokio::time::sleep(Duration::from_millis(
                        u64::from(attempt) * 5 + rand::random::<u64>() % 20,
                    ))
                    .await;
                }
                other => break other,
            }
        }
    }};
}

/// Runs `$body` in a read-only snapshot transaction.
macro_rules! read_tx {
    ($self:expr, |$tx:ident| $body:expr) => {{
        let mut client = $self.client().await?;
        let $tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let out = $body;
        let _ = $tx.rollback().await;
        out
    }};
}

// After the transaction macros, which it uses.
mod directory;

#[async_trait]
impl MetaStore for PgMetaStore {
    async fn create_tenant(&self, domain: &str, display_name: &str) -> Result<Tenant> {
        write_tx!(self, |tx| ops::create_tenant(&tx, domain, display_name)
            .await)
    }

    async fn get_tenant(&self, id: Uuid) -> Result<Tenant> {
        read_tx!(self, |tx| ops::get_tenant(&tx, id).await)
    }

    async fn find_tenant(&self, key: &str) -> Result<Tenant> {
        read_tx!(self, |tx| ops::find_tenant(&tx, key).await)
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        read_tx!(self, |tx| ops::list_tenants(&tx).await)
    }

    async fn create_user(&self, tenant_id: Uuid, upn: &str, display_name: &str) -> Result<User> {
        write_tx!(self, |tx| ops::create_user(
            &tx,
            tenant_id,
            upn,
            display_name
        )
        .await)
    }

    async fn get_user(&self, id: Uuid) -> Result<User> {
        read_tx!(self, |tx| ops::get_user(&tx, id).await)
    }

    async fn find_user(&self, tenant_id: Option<Uuid>, key: &str) -> Result<User> {
        read_tx!(self, |tx| ops::find_user(&tx, tenant_id, key).await)
    }

    async fn list_users(&self, tenant_id: Uuid) -> Result<Vec<User>> {
        read_tx!(self, |tx| ops::list_users(&tx, tenant_id).await)
    }

    async fn create_mailbox(&self, user_id: Uuid, kind: MailboxKind) -> Result<Mailbox> {
        write_tx!(self, |tx| ops::create_mailbox(&tx, user_id, kind).await)
    }

    async fn get_mailbox(&self, id: &MailboxId) -> Result<Mailbox> {
        read_tx!(self, |tx| ops::get_mailbox(&tx, id).await)
    }

    async fn list_mailboxes(&self, tenant_id: Uuid) -> Result<Vec<Mailbox>> {
        read_tx!(self, |tx| ops::list_mailboxes(&tx, Some(tenant_id), None)
            .await)
    }

    async fn user_mailboxes(&self, user_id: Uuid) -> Result<Vec<Mailbox>> {
        read_tx!(self, |tx| ops::list_mailboxes(&tx, None, Some(user_id))
            .await)
    }

    async fn get_folder(&self, mbx: &MailboxId, id: &str) -> Result<Folder> {
        read_tx!(self, |tx| ops::get_folder(&tx, mbx, id).await)
    }

    async fn resolve_folder(&self, mbx: &MailboxId, id_or_name: &str) -> Result<Folder> {
        read_tx!(self, |tx| ops::get_folder(&tx, mbx, id_or_name).await)
    }

    async fn list_folders(
        &self,
        mbx: &MailboxId,
        parent_id: &str,
        query: &ListQuery,
    ) -> Result<Page<Folder>> {
        read_tx!(self, |tx| ops::list_folders(&tx, mbx, parent_id, query)
            .await)
    }

    async fn create_folder(
        &self,
        mbx: &MailboxId,
        parent_id: &str,
        folder: NewFolder,
    ) -> Result<Folder> {
        write_tx!(self, |tx| ops::create_folder(&tx, mbx, parent_id, &folder)
            .await)
    }

    async fn update_folder(&self, mbx: &MailboxId, id: &str, patch: FolderPatch) -> Result<Folder> {
        write_tx!(self, |tx| ops::update_folder(&tx, mbx, id, &patch).await)
    }

    async fn delete_folder(&self, mbx: &MailboxId, id: &str) -> Result<()> {
        write_tx!(self, |tx| ops::delete_folder(&tx, mbx, id).await)
    }

    async fn get_item(&self, mbx: &MailboxId, id: &str) -> Result<Item> {
        read_tx!(self, |tx| ops::get_item(&tx, mbx, id).await)
    }

    async fn list_items(
        &self,
        mbx: &MailboxId,
        folder_id: &str,
        query: &ListQuery,
    ) -> Result<Page<Item>> {
        read_tx!(self, |tx| ops::list_items(&tx, mbx, folder_id, query).await)
    }

    async fn create_item(&self, mbx: &MailboxId, folder_id: &str, item: NewItem) -> Result<Item> {
        write_tx!(self, |tx| ops::create_item(&tx, mbx, folder_id, &item)
            .await)
    }

    async fn replace_item(
        &self,
        mbx: &MailboxId,
        id: &str,
        expected_change_key: &str,
        item: NewItem,
    ) -> Result<Item> {
        write_tx!(self, |tx| ops::replace_item(
            &tx,
            mbx,
            id,
            expected_change_key,
            &item
        )
        .await)
    }

    async fn move_item(&self, mbx: &MailboxId, id: &str, to_folder: &str) -> Result<Item> {
        write_tx!(self, |tx| ops::move_item(&tx, mbx, id, to_folder).await)
    }

    async fn delete_item(&self, mbx: &MailboxId, id: &str) -> Result<()> {
        write_tx!(self, |tx| ops::delete_item(&tx, mbx, id).await)
    }

    async fn bulk_insert_items(
        &self,
        mbx: &MailboxId,
        folder_id: &str,
        mut items: Box<dyn Iterator<Item = NewItem> + Send>,
    ) -> Result<u64> {
        let mut total = 0u64;
        loop {
            let batch: Vec<NewItem> = items.by_ref().take(BULK_BATCH).collect();
            if batch.is_empty() {
                return Ok(total);
            }
            total += write_tx!(self, |tx| ops::bulk_insert(&tx, mbx, folder_id, &batch)
                .await)?;
        }
    }

    async fn unreferenced_blobs(&self, limit: usize) -> Result<Vec<String>> {
        read_tx!(self, |tx| ops::unreferenced_blobs(&tx, limit).await)
    }

    async fn forget_blob(&self, hash: &str) -> Result<bool> {
        write_tx!(self, |tx| ops::forget_blob(&tx, hash).await)
    }

    async fn inline_content(
        &self,
        hashes: &[String],
    ) -> Result<std::collections::HashMap<String, bytes::Bytes>> {
        if hashes.is_empty() {
            return Ok(Default::default());
        }
        read_tx!(self, |tx| ops::inline_content(&tx, hashes).await)
    }

    async fn blob_refs(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64, u64)>> {
        read_tx!(self, |tx| ops::blob_refs(&tx, after, limit).await)
    }

    async fn folder_delta(
        &self,
        mbx: &MailboxId,
        scope: DeltaScope,
        since_cn: u64,
        after_cn: u64,
        limit: usize,
    ) -> Result<DeltaPage<Folder>> {
        read_tx!(self, |tx| ops::folder_delta(
            &tx, mbx, &scope, since_cn, after_cn, limit
        )
        .await)
    }

    async fn item_delta(
        &self,
        mbx: &MailboxId,
        folder_id: &str,
        since_cn: u64,
        after_cn: u64,
        limit: usize,
    ) -> Result<DeltaPage<Item>> {
        read_tx!(self, |tx| ops::item_delta(
            &tx, mbx, folder_id, since_cn, after_cn, limit
        )
        .await)
    }

    async fn purge_tombstones(&self, mbx: &MailboxId, older_than_cn: u64) -> Result<u64> {
        write_tx!(self, |tx| ops::purge_tombstones(&tx, mbx, older_than_cn)
            .await)
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        read_tx!(self, |tx| ops::get_setting(&tx, key).await)
    }

    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<String> {
        write_tx!(self, |tx| ops::put_setting_if_absent(&tx, key, value).await)
    }
}
