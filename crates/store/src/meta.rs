//! The [`MetaStore`] trait: everything the api needs from the metadata store.

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{
    Folder, FolderPatch, Item, Mailbox, MailboxId, MailboxKind, NewFolder, NewItem, Result, Tenant,
    User,
};
use crate::query::{DeltaPage, DeltaScope, ListQuery, Page};

/// The metadata store: tenants, users, mailboxes, folders, items, change
/// tracking, blob reference counts and shared server settings.
///
/// Every method that returns `Ok` has made its change durable. Folder and
/// item lookups are scoped by mailbox: an id of another mailbox is
/// `NotFound`. Wherever a folder id is taken, a well-known folder name
/// (`inbox`, `msgfolderroot`, …, case-insensitive) is accepted too.
#[async_trait]
pub trait MetaStore: Send + Sync {
    // ---- tenants and users -------------------------------------------------

    /// Creates a tenant; `Conflict` if the domain exists (case-insensitive).
    async fn create_tenant(&self, domain: &str, display_name: &str) -> Result<Tenant>;
    async fn get_tenant(&self, id: Uuid) -> Result<Tenant>;
    /// By id (GUID text) or domain (case-insensitive); `NotFound` otherwise.
    async fn find_tenant(&self, key: &str) -> Result<Tenant>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;

    /// Creates a user; `Conflict` if the UPN exists (case-insensitive),
    /// `NotFound` if the tenant does not.
    async fn create_user(&self, tenant_id: Uuid, upn: &str, display_name: &str) -> Result<User>;
    async fn get_user(&self, id: Uuid) -> Result<User>;
    /// By id (GUID text) or UPN (case-insensitive), optionally within one tenant.
    async fn find_user(&self, tenant_id: Option<Uuid>, key: &str) -> Result<User>;
    async fn list_users(&self, tenant_id: Uuid) -> Result<Vec<User>>;

    // ---- mailboxes ---------------------------------------------------------

    /// Creates a mailbox and its standard folder tree in one transaction.
    /// `Conflict` if the user already has a mailbox of that kind.
    async fn create_mailbox(&self, user_id: Uuid, kind: MailboxKind) -> Result<Mailbox>;
    async fn get_mailbox(&self, id: &MailboxId) -> Result<Mailbox>;
    async fn list_mailboxes(&self, tenant_id: Uuid) -> Result<Vec<Mailbox>>;
    async fn user_mailboxes(&self, user_id: Uuid) -> Result<Vec<Mailbox>>;

    // ---- folders -----------------------------------------------------------

    async fn get_folder(&self, mbx: &MailboxId, id: &str) -> Result<Folder>;
    /// By id or well-known name (case-insensitive).
    async fn resolve_folder(&self, mbx: &MailboxId, id_or_well_known_name: &str) -> Result<Folder>;
    /// The immediate children of `parent_id`; hidden ones only with
    /// `include_hidden`.
    async fn list_folders(
        &self,
        mbx: &MailboxId,
        parent_id: &str,
        query: &ListQuery,
    ) -> Result<Page<Folder>>;
    /// `Conflict` on a duplicate display name under the parent (case-insensitive).
    async fn create_folder(
        &self,
        mbx: &MailboxId,
        parent_id: &str,
        folder: NewFolder,
    ) -> Result<Folder>;
    /// Renaming a well-known folder is `Invalid`; a duplicate name `Conflict`.
    async fn update_folder(&self, mbx: &MailboxId, id: &str, patch: FolderPatch) -> Result<Folder>;
    /// Deletes the folder, its subtree and their items, leaving tombstones.
    /// `Invalid` for well-known folders.
    async fn delete_folder(&self, mbx: &MailboxId, id: &str) -> Result<()>;

    // ---- items -------------------------------------------------------------

    async fn get_item(&self, mbx: &MailboxId, id: &str) -> Result<Item>;
    /// Several items at once (exportItems): in the order of `ids`, `None`
    /// for an id that is unknown, deleted or of another mailbox. Engines
    /// override this to read them in one transaction.
    async fn get_items(&self, mbx: &MailboxId, ids: &[String]) -> Result<Vec<Option<Item>>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.get_item(mbx, id).await {
                Ok(i) => out.push(Some(i)),
                Err(crate::domain::StoreError::NotFound { .. }) => out.push(None),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
    async fn list_items(
        &self,
        mbx: &MailboxId,
        folder_id: &str,
        query: &ListQuery,
    ) -> Result<Page<Item>>;
    async fn create_item(&self, mbx: &MailboxId, folder_id: &str, item: NewItem) -> Result<Item>;
    /// Replaces the item's metadata and content, keeping id and folder.
    /// `Conflict` (and nothing changed) when `expected_change_key` is stale.
    async fn replace_item(
        &self,
        mbx: &MailboxId,
        id: &str,
        expected_change_key: &str,
        item: NewItem,
    ) -> Result<Item>;
    /// Moves the item, keeping its id. Moving into its own folder changes nothing.
    async fn move_item(&self, mbx: &MailboxId, id: &str, to_folder: &str) -> Result<Item>;
    async fn delete_item(&self, mbx: &MailboxId, id: &str) -> Result<()>;

    /// Inserts many items into one folder in large transactions (seeding,
    /// benchmarks, bulk import), with the same change-number and counter
    /// semantics as `create_item`. Returns how many were inserted. Each batch
    /// is atomic; the whole call is not.
    async fn bulk_insert_items(
        &self,
        mbx: &MailboxId,
        folder_id: &str,
        items: Box<dyn Iterator<Item = NewItem> + Send>,
    ) -> Result<u64>;

    // ---- blob reference counts ---------------------------------------------

    /// Up to `limit` blob hashes that no item references any more.
    async fn unreferenced_blobs(&self, limit: usize) -> Result<Vec<String>>;
    /// Forgets an unreferenced blob. Returns `false` (and keeps it) if it is
    /// referenced again or unknown. A collector calls this *before* deleting
    /// the blob's content, and only deletes the content when it returns `true`.
    async fn forget_blob(&self, hash: &str) -> Result<bool>;
    /// The content kept in the meta store (see [`NewItem::inline`]) of those
    /// of `hashes` that have it, by hash; hashes whose content is in the
    /// blob store (or unknown) are absent from the answer.
    async fn inline_content(
        &self,
        hashes: &[String],
    ) -> Result<std::collections::HashMap<String, bytes::Bytes>>;
    /// Integrity checks: up to `limit` registered blobs with hash greater
    /// than `after` (hex order), as (hash, size, reference count). The
    /// default reports that the engine cannot list them.
    async fn blob_refs(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64, u64)>> {
        let _ = (after, limit);
        Err(crate::domain::StoreError::Backend(
            "this metadata engine does not list blob reference counts".into(),
        ))
    }

    // ---- delta ---------------------------------------------------------------

    async fn folder_delta(
        &self,
        mbx: &MailboxId,
        scope: DeltaScope,
        since_cn: u64,
        after_cn: u64,
        limit: usize,
    ) -> Result<DeltaPage<Folder>>;
    async fn item_delta(
        &self,
        mbx: &MailboxId,
        folder_id: &str,
        since_cn: u64,
        after_cn: u64,
        limit: usize,
    ) -> Result<DeltaPage<Item>>;
    /// Purges tombstones with `cn < older_than_cn` and raises the mailbox's
    /// horizon to `older_than_cn`. Returns how many tombstones were purged.
    async fn purge_tombstones(&self, mbx: &MailboxId, older_than_cn: u64) -> Result<u64>;

    // ---- server settings -----------------------------------------------------

    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    /// Stores `value` unless `key` has a value; returns the value that won.
    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<String>;
}
