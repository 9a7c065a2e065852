//! The [`MetaStore`] contract test suite, shared by every backend.
//!
//! A backend's integration test implements [`Harness`] and expands
//! [`metastore_tests!`](crate::metastore_tests) with an expression that
//! builds one; every case below becomes its own `#[tokio::test]` (the test
//! crate needs `tokio` with the `macros` and `rt-multi-thread` features).
//!
//! ```ignore
//! store::metastore_tests!(MyHarness::new());
//! ```
//!
//! The blob cases ([`blob_dedup`], …) take a [`BlobStore`] and are called
//! directly for each blob backend.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use time::OffsetDateTime;
use time::macros::datetime;

use crate::{
    BlobRef, BlobStore, Change, CmpOp, DeltaPage, DeltaScope, ExtProp, ExtValue, Field, Filter,
    Folder, FolderPatch, Item, ListQuery, Literal, MailboxId, MailboxKind, MetaStore, NewFolder,
    NewItem, RemovedReason, StoreError,
};

/// Gives the suite a fresh, empty store and, for persistent backends, a way
/// to close and reopen it on the same data.
#[async_trait]
pub trait Harness: Send {
    /// The store under test (the same one on every call until `reopen`).
    async fn store(&mut self) -> Arc<dyn MetaStore>;
    /// Drops every handle to the store and opens it again on the same data.
    /// `None` for a backend that does not persist (the case is skipped).
    async fn reopen(&mut self) -> Option<Arc<dyn MetaStore>>;
}

/// Expands to one `#[tokio::test]` per contract case; `$harness` is an
/// expression evaluated afresh for each test.
#[macro_export]
macro_rules! metastore_tests {
    ($harness:expr) => {
        $crate::metastore_tests!(@cases $harness;
            tenants_and_users,
            mailboxes_and_ids,
            default_folder_tree,
            folder_create_update_delete,
            folder_subtree_delete,
            item_lifecycle,
            cross_mailbox_ids_are_not_found,
            filters_on_folders,
            filters_on_items,
            order_skip_top_count,
            folder_delta,
            item_delta_initial_and_paging,
            item_delta_incremental,
            delta_sees_changes_between_pages,
            delta_horizon_after_purge,
            settings_put_if_absent,
            blob_reference_counts,
            inline_content,
            bulk_insert,
            persistence_across_reopen,
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let mut harness = $harness;
                $crate::testsuite::$case(&mut harness).await;
            }
        )*
    };
}

// ---- helpers -------------------------------------------------------------------

/// A blob reference for test content `n` (not stored anywhere).
pub fn test_blob(n: u32) -> BlobRef {
    let content = format!("content {n}");
    BlobRef {
        hash: blake3::hash(content.as_bytes()).to_hex().to_string(),
        size: content.len() as u64,
    }
}

/// An item with test content `n`, created at `2024-01-01 + n minutes`.
pub fn test_item(n: u32) -> NewItem {
    let t = datetime!(2024-01-01 0:00 UTC) + time::Duration::minutes(i64::from(n));
    NewItem {
        class: "IPM.Note".into(),
        size: 1000 + i64::from(n),
        created: t,
        modified: t,
        categories: Vec::new(),
        blob: test_blob(n),
        inline: None,
        ext_props: Vec::new(),
    }
}

async fn setup(store: &dyn MetaStore) -> MailboxId {
    let t = store
        .create_tenant("contoso.com", "Contoso")
        .await
        .expect("tenant");
    let u = store
        .create_user(t.id, "adele@contoso.com", "Adele Vance")
        .await
        .expect("user");
    store
        .create_mailbox(u.id, MailboxKind::Primary)
        .await
        .expect("mailbox")
        .id
}

fn is_not_found<T: std::fmt::Debug>(r: crate::Result<T>) -> bool {
    matches!(r, Err(StoreError::NotFound { .. }))
}

fn is_conflict<T: std::fmt::Debug>(r: crate::Result<T>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

fn is_invalid<T: std::fmt::Debug>(r: crate::Result<T>) -> bool {
    matches!(r, Err(StoreError::Invalid(_)))
}

fn upsert_ids<T>(page: &DeltaPage<T>, id: impl Fn(&T) -> &str) -> Vec<String> {
    page.changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert(v) => Some(id(v).to_string()),
            Change::Removed { .. } => None,
        })
        .collect()
}

fn removed<T>(page: &DeltaPage<T>) -> Vec<(String, RemovedReason)> {
    page.changes
        .iter()
        .filter_map(|c| match c {
            Change::Removed { id, reason } => Some((id.clone(), *reason)),
            Change::Upsert(_) => None,
        })
        .collect()
}

fn item_id(i: &Item) -> &str {
    &i.id
}

fn folder_id(f: &Folder) -> &str {
    &f.id
}

/// Runs a whole item delta (all pages) and returns the entries and the
/// final page's high-water mark.
async fn full_item_delta(
    store: &dyn MetaStore,
    mbx: &MailboxId,
    folder: &str,
    since: u64,
    limit: usize,
) -> (Vec<Change<Item>>, u64) {
    let mut after = 0;
    let mut all = Vec::new();
    loop {
        let page = store
            .item_delta(mbx, folder, since, after, limit)
            .await
            .expect("delta");
        assert!(page.changes.len() <= limit);
        after = page.last_cn;
        all.extend(page.changes);
        if !page.more {
            return (all, page.high_water);
        }
    }
}

async fn query_items(store: &dyn MetaStore, mbx: &MailboxId, folder: &str, f: Filter) -> Vec<i64> {
    let q = ListQuery {
        filter: Some(f),
        order_by: vec![(Field::Size, false)],
        ..ListQuery::default()
    };
    store
        .list_items(mbx, folder, &q)
        .await
        .expect("list")
        .items
        .iter()
        .map(|i| i.size)
        .collect()
}

async fn query_folders(
    store: &dyn MetaStore,
    mbx: &MailboxId,
    parent: &str,
    f: Filter,
) -> Vec<String> {
    let q = ListQuery {
        filter: Some(f),
        include_hidden: true,
        ..ListQuery::default()
    };
    store
        .list_folders(mbx, parent, &q)
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|f| f.display_name)
        .collect()
}

// ---- tenants, users, mailboxes -------------------------------------------------

pub async fn tenants_and_users(h: &mut dyn Harness) {
    let s = h.store().await;
    let t = s.create_tenant("contoso.com", "Contoso").await.unwrap();
    assert!(is_conflict(s.create_tenant("CONTOSO.com", "Again").await));
    assert!(is_invalid(s.create_tenant("", "Empty").await));
    let f = s.create_tenant("fabrikam.com", "Fabrikam").await.unwrap();
    assert_eq!(s.get_tenant(t.id).await.unwrap(), t);
    assert_eq!(s.find_tenant("Contoso.COM").await.unwrap(), t);
    assert_eq!(s.find_tenant(&t.id.to_string()).await.unwrap(), t);
    assert!(is_not_found(s.find_tenant("nowhere.com").await));
    assert!(is_not_found(s.get_tenant(uuid::Uuid::new_v4()).await));
    assert_eq!(s.list_tenants().await.unwrap(), vec![t.clone(), f.clone()]);

    let u = s
        .create_user(t.id, "Adele@Contoso.com", "Adele")
        .await
        .unwrap();
    assert_eq!(u.upn, "Adele@Contoso.com");
    assert!(is_conflict(
        s.create_user(t.id, "adele@contoso.COM", "x").await
    ));
    assert!(is_conflict(
        s.create_user(f.id, "ADELE@contoso.com", "x").await
    ));
    assert!(is_not_found(
        s.create_user(uuid::Uuid::new_v4(), "a@b.c", "x").await
    ));
    assert!(is_invalid(s.create_user(t.id, "no-at-sign", "x").await));
    let v = s.create_user(t.id, "bob@contoso.com", "Bob").await.unwrap();
    let w = s
        .create_user(f.id, "carol@fabrikam.com", "Carol")
        .await
        .unwrap();
    assert_eq!(s.get_user(u.id).await.unwrap(), u);
    assert_eq!(s.find_user(None, "ADELE@CONTOSO.COM").await.unwrap(), u);
    assert_eq!(s.find_user(Some(t.id), &u.id.to_string()).await.unwrap(), u);
    assert!(is_not_found(
        s.find_user(Some(f.id), "adele@contoso.com").await
    ));
    assert!(is_not_found(
        s.find_user(Some(f.id), &u.id.to_string()).await
    ));
    assert!(is_not_found(s.find_user(None, "nobody@contoso.com").await));
    assert_eq!(s.list_users(t.id).await.unwrap(), vec![u, v]);
    assert_eq!(s.list_users(f.id).await.unwrap(), vec![w]);
}

pub async fn mailboxes_and_ids(h: &mut dyn Harness) {
    let s = h.store().await;
    let t = s.create_tenant("contoso.com", "Contoso").await.unwrap();
    let u = s.create_user(t.id, "adele@contoso.com", "A").await.unwrap();
    let m = s.create_mailbox(u.id, MailboxKind::Primary).await.unwrap();
    assert!(is_conflict(
        s.create_mailbox(u.id, MailboxKind::Primary).await
    ));
    assert!(is_not_found(
        s.create_mailbox(uuid::Uuid::new_v4(), MailboxKind::Primary)
            .await
    ));
    let a = s.create_mailbox(u.id, MailboxKind::Archive).await.unwrap();
    assert_eq!(m.tenant_id, t.id);
    assert_eq!(m.user_id, u.id);
    assert_eq!(m.id.tenant_guid(), t.id);
    assert_eq!(s.get_mailbox(&m.id).await.unwrap(), m);

    let text = m.id.to_string();
    assert_eq!(
        text,
        format!(
            "MBX:{}@{}",
            m.id.mailbox_guid().as_hyphenated(),
            t.id.as_hyphenated()
        )
    );
    let parsed = MailboxId::parse(&text.to_uppercase()).unwrap();
    assert_eq!(parsed, m.id);
    assert_eq!(s.get_mailbox(&parsed).await.unwrap(), m);
    assert!(is_invalid(MailboxId::parse("MBX:not-a-guid@x")));
    assert!(is_invalid(MailboxId::parse(&text.replacen("MBX:", "", 1))));

    // The right mailbox guid with another tenant's guid is not that mailbox.
    let wrong = MailboxId::new(m.id.mailbox_guid(), uuid::Uuid::new_v4());
    assert!(is_not_found(s.get_mailbox(&wrong).await));
    assert!(is_not_found(s.get_folder(&wrong, "inbox").await));

    assert_eq!(
        s.list_mailboxes(t.id).await.unwrap(),
        vec![m.clone(), a.clone()]
    );
    assert_eq!(s.user_mailboxes(u.id).await.unwrap(), vec![m, a]);
    assert!(
        s.list_mailboxes(uuid::Uuid::new_v4())
            .await
            .unwrap()
            .is_empty()
    );
}

// ---- folders ----------------------------------------------------------------------

pub async fn default_folder_tree(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let root = s.resolve_folder(&mbx, "root").await.unwrap();
    assert_eq!(root.parent_id, None);
    let top = s.resolve_folder(&mbx, "MsgFolderRoot").await.unwrap();
    assert_eq!(top.parent_id.as_deref(), Some(root.id.as_str()));
    assert_eq!(top.display_name, "Top of Information Store");
    assert_eq!(top.class, "IPF.Note");
    assert_eq!(top.well_known.as_deref(), Some("msgfolderroot"));
    let expected: &[(&str, &str, &str, bool, &str)] = &[
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
    for (wk, name, class, hidden, parent) in expected {
        let f = s.resolve_folder(&mbx, &wk.to_uppercase()).await.unwrap();
        assert_eq!(f.display_name, *name, "{wk}");
        assert_eq!(f.class, *class, "{wk}");
        assert_eq!(f.hidden, *hidden, "{wk}");
        assert_eq!(f.well_known.as_deref(), Some(*wk));
        assert_eq!(f.total_item_count, 0);
        assert_eq!(f.mailbox_id, mbx);
        let p = s.resolve_folder(&mbx, parent).await.unwrap();
        assert_eq!(f.parent_id.as_deref(), Some(p.id.as_str()), "{wk}");
        assert_eq!(s.get_folder(&mbx, &f.id).await.unwrap(), f);
        assert!(
            f.id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }
    assert!(is_not_found(s.resolve_folder(&mbx, "nosuchfolder").await));
    assert!(is_not_found(
        s.get_folder(&mbx, "AAMkAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await
    ));

    assert_eq!(top.child_folder_count, 14);
    let visible = s
        .list_folders(
            &mbx,
            &top.id,
            &ListQuery {
                count: true,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(visible.total, Some(13));
    assert_eq!(visible.items.len(), 13);
    assert!(visible.items.iter().all(|f| !f.hidden));
    // Default order: display name.
    let names: Vec<_> = visible
        .items
        .iter()
        .map(|f| f.display_name.clone())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, sorted);
    let all = s
        .list_folders(
            &mbx,
            "msgfolderroot",
            &ListQuery {
                include_hidden: true,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 14);
    let rec = s
        .resolve_folder(&mbx, "recoverableitemsroot")
        .await
        .unwrap();
    assert_eq!(rec.child_folder_count, 3);
    assert!(
        s.list_folders(&mbx, &rec.id, &ListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn folder_create_update_delete(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let inbox = s.resolve_folder(&mbx, "inbox").await.unwrap();
    let nf = |name: &str| NewFolder {
        display_name: name.into(),
        ..NewFolder::default()
    };
    let a = s
        .create_folder(&mbx, &inbox.id, nf("Projects"))
        .await
        .unwrap();
    assert_eq!(a.parent_id.as_deref(), Some(inbox.id.as_str()));
    assert_eq!(a.class, "IPF.Note", "class inherited from the parent");
    assert!(!a.hidden);
    assert_eq!(a.well_known, None);
    assert!(a.cn > inbox.cn);
    assert!(is_conflict(
        s.create_folder(&mbx, &inbox.id, nf("PROJECTS")).await
    ));
    assert!(is_invalid(s.create_folder(&mbx, &inbox.id, nf("  ")).await));
    assert!(is_not_found(
        s.create_folder(&mbx, "AAMkAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nf("x"))
            .await
    ));
    // The same name elsewhere is fine; a well-known name works as parent.
    let b = s
        .create_folder(&mbx, "drafts", nf("Projects"))
        .await
        .unwrap();
    assert_ne!(a.id, b.id);
    let cal = s
        .create_folder(
            &mbx,
            "calendar",
            NewFolder {
                display_name: "Team".into(),
                class: "IPF.Appointment".into(),
                ext_props: vec![ExtProp {
                    id: "String 0x3613".into(),
                    value: ExtValue::Single("IPF.Appointment".into()),
                }],
            },
        )
        .await
        .unwrap();
    assert_eq!(cal.class, "IPF.Appointment");
    assert_eq!(cal.ext_props.len(), 1);
    assert_eq!(s.get_folder(&mbx, &cal.id).await.unwrap(), cal);
    assert_eq!(
        s.resolve_folder(&mbx, "inbox")
            .await
            .unwrap()
            .child_folder_count,
        1
    );

    let renamed = s
        .update_folder(
            &mbx,
            &a.id,
            FolderPatch {
                display_name: Some("Work".into()),
                ext_props: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.display_name, "Work");
    assert_ne!(renamed.change_key, a.change_key);
    assert!(renamed.cn > cal.cn);
    assert_eq!(renamed.created, a.created);
    // Case-only rename of itself is not a conflict.
    s.update_folder(
        &mbx,
        &a.id,
        FolderPatch {
            display_name: Some("WORK".into()),
            ext_props: None,
        },
    )
    .await
    .unwrap();
    s.create_folder(&mbx, &inbox.id, nf("Other")).await.unwrap();
    assert!(is_conflict(
        s.update_folder(
            &mbx,
            &a.id,
            FolderPatch {
                display_name: Some("other".into()),
                ext_props: None
            }
        )
        .await
    ));
    assert!(is_invalid(
        s.update_folder(
            &mbx,
            "inbox",
            FolderPatch {
                display_name: Some("Mail".into()),
                ext_props: None
            }
        )
        .await
    ));
    let props = vec![ExtProp {
        id: "String {00020329-0000-0000-c000-000000000046} Name Keywords".into(),
        value: ExtValue::Multi(vec!["a".into(), "b".into()]),
    }];
    let with_props = s
        .update_folder(
            &mbx,
            "inbox",
            FolderPatch {
                display_name: None,
                ext_props: Some(props.clone()),
            },
        )
        .await
        .unwrap();
    assert_eq!(with_props.ext_props, props);
    assert_eq!(with_props.display_name, "Inbox");
    assert_ne!(with_props.change_key, inbox.change_key);

    for wk in ["inbox", "msgfolderroot", "root", "recoverableitemsroot"] {
        assert!(is_invalid(s.delete_folder(&mbx, wk).await), "{wk}");
    }
    s.delete_folder(&mbx, &b.id).await.unwrap();
    assert!(is_not_found(s.get_folder(&mbx, &b.id).await));
    assert!(is_not_found(s.delete_folder(&mbx, &b.id).await));
    assert_eq!(
        s.resolve_folder(&mbx, "drafts")
            .await
            .unwrap()
            .child_folder_count,
        0
    );
}

pub async fn folder_subtree_delete(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let nf = |name: &str| NewFolder {
        display_name: name.into(),
        ..NewFolder::default()
    };
    let top = s.create_folder(&mbx, "inbox", nf("Top")).await.unwrap();
    let mid = s.create_folder(&mbx, &top.id, nf("Mid")).await.unwrap();
    let leaf = s.create_folder(&mbx, &mid.id, nf("Leaf")).await.unwrap();
    let i1 = s.create_item(&mbx, &top.id, test_item(1)).await.unwrap();
    let i2 = s.create_item(&mbx, &leaf.id, test_item(2)).await.unwrap();
    let keep = s.create_item(&mbx, "inbox", test_item(1)).await.unwrap();
    assert_eq!(
        s.get_folder(&mbx, &top.id)
            .await
            .unwrap()
            .child_folder_count,
        1
    );
    assert_eq!(
        s.get_folder(&mbx, &leaf.id).await.unwrap().total_item_count,
        1
    );

    let before = s
        .folder_delta(&mbx, DeltaScope::AllFolders, 1, 0, 1000)
        .await
        .unwrap()
        .high_water;
    s.delete_folder(&mbx, &top.id).await.unwrap();
    for id in [&top.id, &mid.id, &leaf.id] {
        assert!(is_not_found(s.get_folder(&mbx, id).await));
    }
    assert!(is_not_found(s.get_item(&mbx, &i1.id).await));
    assert!(is_not_found(s.get_item(&mbx, &i2.id).await));
    assert_eq!(s.get_item(&mbx, &keep.id).await.unwrap(), keep);
    let inbox = s.resolve_folder(&mbx, "inbox").await.unwrap();
    assert_eq!(inbox.child_folder_count, 0);
    assert_eq!(inbox.total_item_count, 1);

    let d = s
        .folder_delta(&mbx, DeltaScope::AllFolders, before, 0, 1000)
        .await
        .unwrap();
    let mut gone = removed(&d);
    gone.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![
        (top.id.clone(), RemovedReason::Deleted),
        (mid.id.clone(), RemovedReason::Deleted),
        (leaf.id.clone(), RemovedReason::Deleted),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(gone, want);
    let d = s
        .folder_delta(
            &mbx,
            DeltaScope::ChildrenOf("inbox".into()),
            before,
            0,
            1000,
        )
        .await
        .unwrap();
    assert_eq!(removed(&d), vec![(top.id.clone(), RemovedReason::Deleted)]);
    assert!(is_not_found(
        s.folder_delta(&mbx, DeltaScope::ChildrenOf(top.id.clone()), before, 0, 10)
            .await
    ));
    assert!(is_not_found(
        s.item_delta(&mbx, &leaf.id, before, 0, 10).await
    ));
    // The blob of i1 is still held by `keep`; i2's is released.
    let unref = s.unreferenced_blobs(100).await.unwrap();
    assert_eq!(unref, vec![test_blob(2).hash]);
}

// ---- items --------------------------------------------------------------------------

pub async fn item_lifecycle(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let mut ni = test_item(1);
    ni.categories = vec!["Red".into(), "Blue".into()];
    ni.ext_props = vec![ExtProp {
        id: "String 0x37".into(),
        value: ExtValue::Single("Hello".into()),
    }];
    let it = s.create_item(&mbx, "INBOX", ni.clone()).await.unwrap();
    let inbox = s.resolve_folder(&mbx, "inbox").await.unwrap();
    assert_eq!(it.folder_id, inbox.id);
    assert_eq!(it.mailbox_id, mbx);
    assert_eq!(it.class, ni.class);
    assert_eq!(it.size, ni.size);
    assert_eq!(it.created, ni.created);
    assert_eq!(it.modified, ni.modified);
    assert_eq!(it.categories, ni.categories);
    assert_eq!(it.blob, ni.blob);
    assert_eq!(it.ext_props, ni.ext_props);
    assert!(
        it.id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert!(
        it.change_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(s.get_item(&mbx, &it.id).await.unwrap(), it);
    assert_eq!(inbox.total_item_count, 1);
    assert!(is_not_found(
        s.create_item(&mbx, "nosuchfolder", test_item(2)).await
    ));
    let mut bad = test_item(2);
    bad.blob.hash = "XYZ".into();
    assert!(is_invalid(s.create_item(&mbx, "inbox", bad).await));
    let mut bad = test_item(2);
    bad.size = -1;
    assert!(is_invalid(s.create_item(&mbx, "inbox", bad).await));
    assert_eq!(
        s.resolve_folder(&mbx, "inbox")
            .await
            .unwrap()
            .total_item_count,
        1
    );

    // Replace: a stale change key changes nothing.
    let mut repl = test_item(5);
    repl.class = "IPM.Note.Custom".into();
    assert!(is_conflict(
        s.replace_item(&mbx, &it.id, "CQAAAstale", repl.clone())
            .await
    ));
    assert_eq!(s.get_item(&mbx, &it.id).await.unwrap(), it);
    let r = s
        .replace_item(&mbx, &it.id, &it.change_key, repl.clone())
        .await
        .unwrap();
    assert_eq!(r.id, it.id);
    assert_eq!(r.folder_id, it.folder_id);
    assert_ne!(r.change_key, it.change_key);
    assert!(r.cn > it.cn);
    assert_eq!(r.class, "IPM.Note.Custom");
    assert_eq!(r.blob, repl.blob);
    assert!(r.categories.is_empty());
    assert!(is_conflict(
        s.replace_item(&mbx, &it.id, &it.change_key, test_item(6))
            .await
    ));
    assert_eq!(
        s.resolve_folder(&mbx, "inbox")
            .await
            .unwrap()
            .total_item_count,
        1
    );

    // Move keeps the id, changes folder, key and cn; counters follow.
    let m = s.move_item(&mbx, &it.id, "archive").await.unwrap();
    let archive = s.resolve_folder(&mbx, "archive").await.unwrap();
    assert_eq!(m.id, it.id);
    assert_eq!(m.folder_id, archive.id);
    assert_ne!(m.change_key, r.change_key);
    assert!(m.cn > r.cn);
    assert_eq!(archive.total_item_count, 1);
    assert_eq!(
        s.resolve_folder(&mbx, "inbox")
            .await
            .unwrap()
            .total_item_count,
        0
    );
    assert_eq!(s.move_item(&mbx, &it.id, &archive.id).await.unwrap(), m);
    assert!(is_not_found(
        s.move_item(&mbx, &it.id, "nosuchfolder").await
    ));
    assert!(
        s.list_items(&mbx, "inbox", &ListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        s.list_items(&mbx, "archive", &ListQuery::default())
            .await
            .unwrap()
            .items,
        vec![m.clone()]
    );

    s.delete_item(&mbx, &it.id).await.unwrap();
    assert!(is_not_found(s.get_item(&mbx, &it.id).await));
    assert!(is_not_found(s.delete_item(&mbx, &it.id).await));
    assert!(is_not_found(
        s.replace_item(&mbx, &it.id, &m.change_key, test_item(1))
            .await
    ));
    assert_eq!(
        s.resolve_folder(&mbx, "archive")
            .await
            .unwrap()
            .total_item_count,
        0
    );
    assert!(is_not_found(s.get_item(&mbx, "garbage id").await));
}

pub async fn cross_mailbox_ids_are_not_found(h: &mut dyn Harness) {
    let s = h.store().await;
    let a = setup(&*s).await;
    let t = s.find_tenant("contoso.com").await.unwrap();
    let u = s.create_user(t.id, "bob@contoso.com", "Bob").await.unwrap();
    let b = s
        .create_mailbox(u.id, MailboxKind::Primary)
        .await
        .unwrap()
        .id;
    let folder = s
        .create_folder(
            &a,
            "inbox",
            NewFolder {
                display_name: "Mine".into(),
                ..NewFolder::default()
            },
        )
        .await
        .unwrap();
    let item = s.create_item(&a, &folder.id, test_item(1)).await.unwrap();
    let b_inbox = s.resolve_folder(&b, "inbox").await.unwrap();
    assert_ne!(b_inbox.id, s.resolve_folder(&a, "inbox").await.unwrap().id);

    assert!(is_not_found(s.get_folder(&b, &folder.id).await));
    assert!(is_not_found(s.resolve_folder(&b, &folder.id).await));
    assert!(is_not_found(
        s.list_folders(&b, &folder.id, &ListQuery::default()).await
    ));
    assert!(is_not_found(
        s.list_items(&b, &folder.id, &ListQuery::default()).await
    ));
    assert!(is_not_found(
        s.create_item(&b, &folder.id, test_item(2)).await
    ));
    assert!(is_not_found(
        s.update_folder(
            &b,
            &folder.id,
            FolderPatch {
                display_name: Some("x".into()),
                ext_props: None
            }
        )
        .await
    ));
    assert!(is_not_found(s.delete_folder(&b, &folder.id).await));
    assert!(is_not_found(s.get_item(&b, &item.id).await));
    assert!(is_not_found(
        s.replace_item(&b, &item.id, &item.change_key, test_item(3))
            .await
    ));
    assert!(is_not_found(s.move_item(&b, &item.id, "inbox").await));
    assert!(is_not_found(s.move_item(&a, &item.id, &b_inbox.id).await));
    assert!(is_not_found(s.delete_item(&b, &item.id).await));
    assert!(is_not_found(s.item_delta(&b, &folder.id, 0, 0, 10).await));
    // Nothing moved or vanished.
    assert_eq!(s.get_item(&a, &item.id).await.unwrap(), item);
}

// ---- lists ----------------------------------------------------------------------------

pub async fn filters_on_folders(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let top = s.resolve_folder(&mbx, "msgfolderroot").await.unwrap();
    let p = top.id.as_str();
    let one = |f: Field, op: CmpOp, v: Literal| Filter::cmp(f, op, v);
    let str_ = |v: &str| Literal::String(v.into());

    assert_eq!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(Field::DisplayName, CmpOp::Eq, str_("sent ITEMS"))
        )
        .await,
        vec!["Sent Items"]
    );
    assert_eq!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(Field::WellKnownName, CmpOp::Eq, str_("INBOX"))
        )
        .await,
        vec!["Inbox"]
    );
    assert_eq!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(Field::Type, CmpOp::Eq, str_("ipf.contact"))
        )
        .await,
        vec!["Contacts"]
    );
    let n = query_folders(&*s, &mbx, p, one(Field::Type, CmpOp::Ne, str_("IPF.Note"))).await;
    assert_eq!(n, vec!["Calendar", "Contacts", "Journal", "Notes", "Tasks"]);
    assert_eq!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(Field::IsHidden, CmpOp::Eq, Literal::Bool(true))
        )
        .await,
        vec!["Recoverable Items"]
    );
    assert_eq!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(Field::ChildFolderCount, CmpOp::Gt, Literal::Int(0))
        )
        .await,
        vec!["Recoverable Items"]
    );
    assert_eq!(
        query_folders(&*s, &mbx, p, one(Field::DisplayName, CmpOp::Lt, str_("c"))).await,
        vec!["Archive"]
    );
    assert_eq!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(Field::DisplayName, CmpOp::Le, str_("CALENDAR"))
        )
        .await,
        vec!["Archive", "Calendar"]
    );
    assert_eq!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(Field::DisplayName, CmpOp::Ge, str_("sent"))
        )
        .await,
        vec!["Sent Items", "Tasks"]
    );
    let created_new = s
        .create_folder(
            &mbx,
            p,
            NewFolder {
                display_name: "Zeta".into(),
                ..NewFolder::default()
            },
        )
        .await
        .unwrap();
    s.create_item(&mbx, &created_new.id, test_item(1))
        .await
        .unwrap();
    assert_eq!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(Field::WellKnownName, CmpOp::Eq, Literal::Null)
        )
        .await,
        vec!["Zeta"]
    );
    assert_eq!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(Field::TotalItemCount, CmpOp::Ge, Literal::Int(1))
        )
        .await,
        vec!["Zeta"]
    );
    assert_eq!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(Field::Id, CmpOp::Eq, str_(&created_new.id))
        )
        .await,
        vec!["Zeta"]
    );
    assert_eq!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(Field::ChangeKey, CmpOp::Eq, str_(&created_new.change_key))
        )
        .await,
        vec!["Zeta"]
    );
    assert_eq!(
        query_folders(&*s, &mbx, p, one(Field::ParentFolderId, CmpOp::Eq, str_(p)))
            .await
            .len(),
        15
    );
    assert_eq!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(
                Field::CreatedDateTime,
                CmpOp::Gt,
                Literal::DateTime(OffsetDateTime::UNIX_EPOCH)
            )
        )
        .await
        .len(),
        15
    );
    assert!(
        query_folders(
            &*s,
            &mbx,
            p,
            one(
                Field::LastModifiedDateTime,
                CmpOp::Lt,
                Literal::DateTime(OffsetDateTime::UNIX_EPOCH)
            )
        )
        .await
        .is_empty()
    );
    // Boolean combinators; `ne` is true for a null well-known name.
    let f = one(Field::WellKnownName, CmpOp::Ne, str_("inbox"))
        .and(one(Field::DisplayName, CmpOp::Lt, str_("d")))
        .or(one(Field::DisplayName, CmpOp::Eq, str_("zeta")));
    assert_eq!(
        query_folders(&*s, &mbx, p, f).await,
        vec![
            "Archive",
            "Calendar",
            "Contacts",
            "Conversation History",
            "Zeta"
        ]
    );
    let f = one(Field::DisplayName, CmpOp::Gt, str_("c")).not();
    assert_eq!(query_folders(&*s, &mbx, p, f).await, vec!["Archive"]);

    // Fields that do not apply and mismatched literals are Invalid.
    for bad in [
        one(Field::Size, CmpOp::Eq, Literal::Int(1)),
        one(Field::IsHidden, CmpOp::Eq, str_("true")),
        one(Field::ChildFolderCount, CmpOp::Eq, str_("1")),
        one(Field::DisplayName, CmpOp::Gt, Literal::Null),
        Filter::AnyCategoryEq("x".into()),
    ] {
        let q = ListQuery {
            filter: Some(bad.clone()),
            ..ListQuery::default()
        };
        assert!(is_invalid(s.list_folders(&mbx, p, &q).await), "{bad:?}");
    }
    let q = ListQuery {
        order_by: vec![(Field::Size, false)],
        ..ListQuery::default()
    };
    assert!(is_invalid(s.list_folders(&mbx, p, &q).await));
}

pub async fn filters_on_items(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let mut made = Vec::new();
    for n in 1..=5u32 {
        let mut ni = test_item(n);
        ni.class = if n % 2 == 0 {
            "IPM.Note".into()
        } else {
            "IPM.Appointment".into()
        };
        if n <= 2 {
            ni.categories = vec![format!("Cat{n}"), "Shared".into()];
        }
        made.push(s.create_item(&mbx, "inbox", ni).await.unwrap());
    }
    let str_ = |v: &str| Literal::String(v.into());
    let at =
        |n: i64| Literal::DateTime(datetime!(2024-01-01 0:00 UTC) + time::Duration::minutes(n));
    let one = |f: Field, op: CmpOp, v: Literal| Filter::cmp(f, op, v);
    let q = |f| query_items(&*s, &mbx, "inbox", f);
    assert_eq!(
        q(one(Field::Size, CmpOp::Eq, Literal::Int(1003))).await,
        vec![1003]
    );
    assert_eq!(
        q(one(Field::Size, CmpOp::Ne, Literal::Int(1003))).await,
        vec![1001, 1002, 1004, 1005]
    );
    assert_eq!(
        q(one(Field::Size, CmpOp::Gt, Literal::Int(1003))).await,
        vec![1004, 1005]
    );
    assert_eq!(
        q(one(Field::Size, CmpOp::Ge, Literal::Int(1003))).await,
        vec![1003, 1004, 1005]
    );
    assert_eq!(
        q(one(Field::Size, CmpOp::Lt, Literal::Int(1003))).await,
        vec![1001, 1002]
    );
    assert_eq!(
        q(one(Field::Size, CmpOp::Le, Literal::Int(1003))).await,
        vec![1001, 1002, 1003]
    );
    assert_eq!(
        q(one(Field::Type, CmpOp::Eq, str_("ipm.note"))).await,
        vec![1002, 1004]
    );
    assert_eq!(
        q(one(Field::CreatedDateTime, CmpOp::Ge, at(4))).await,
        vec![1004, 1005]
    );
    assert_eq!(
        q(one(Field::LastModifiedDateTime, CmpOp::Lt, at(2))).await,
        vec![1001]
    );
    assert_eq!(
        q(one(Field::Id, CmpOp::Eq, str_(&made[2].id))).await,
        vec![1003]
    );
    assert_eq!(
        q(one(Field::ChangeKey, CmpOp::Eq, str_(&made[3].change_key))).await,
        vec![1004]
    );
    assert_eq!(
        q(one(
            Field::ParentFolderId,
            CmpOp::Eq,
            str_(&made[0].folder_id)
        ))
        .await
        .len(),
        5
    );
    assert_eq!(
        q(Filter::AnyCategoryEq("shared".into())).await,
        vec![1001, 1002]
    );
    assert_eq!(q(Filter::AnyCategoryEq("CAT2".into())).await, vec![1002]);
    assert_eq!(
        q(Filter::AnyCategoryEq("Cat2".into()).not()).await,
        vec![1001, 1003, 1004, 1005]
    );
    let f = one(Field::Type, CmpOp::Eq, str_("IPM.Appointment")).and(
        one(Field::Size, CmpOp::Gt, Literal::Int(1001)).or(Filter::AnyCategoryEq("cat1".into())),
    );
    assert_eq!(q(f).await, vec![1001, 1003, 1005]);
    for bad in [
        one(Field::DisplayName, CmpOp::Eq, str_("x")),
        one(Field::WellKnownName, CmpOp::Eq, str_("x")),
        one(Field::IsHidden, CmpOp::Eq, Literal::Bool(true)),
        one(Field::ChildFolderCount, CmpOp::Eq, Literal::Int(1)),
        one(Field::TotalItemCount, CmpOp::Eq, Literal::Int(1)),
        one(Field::Size, CmpOp::Eq, str_("1")),
        one(Field::CreatedDateTime, CmpOp::Eq, Literal::Int(1)),
    ] {
        let lq = ListQuery {
            filter: Some(bad.clone()),
            ..ListQuery::default()
        };
        let r = s.list_items(&mbx, "inbox", &lq).await;
        assert!(is_invalid(r), "{bad:?}");
    }
}

pub async fn order_skip_top_count(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    for n in [3u32, 1, 4, 5, 2] {
        s.create_item(&mbx, "inbox", test_item(n)).await.unwrap();
    }
    let sizes = |p: crate::Page<Item>| p.items.iter().map(|i| i.size).collect::<Vec<_>>();
    // Default: newest first.
    let p = s
        .list_items(&mbx, "inbox", &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(p.total, None);
    assert_eq!(sizes(p), vec![1005, 1004, 1003, 1002, 1001]);
    let q = ListQuery {
        order_by: vec![(Field::Size, false)],
        skip: 1,
        top: 2,
        count: true,
        ..ListQuery::default()
    };
    let p = s.list_items(&mbx, "inbox", &q).await.unwrap();
    assert_eq!(p.total, Some(5));
    assert_eq!(sizes(p), vec![1002, 1003]);
    let q = ListQuery {
        order_by: vec![(Field::CreatedDateTime, true)],
        skip: 3,
        top: 10,
        count: true,
        filter: Some(Filter::cmp(Field::Size, CmpOp::Ne, Literal::Int(1001))),
        ..ListQuery::default()
    };
    let p = s.list_items(&mbx, "inbox", &q).await.unwrap();
    assert_eq!(p.total, Some(4));
    assert_eq!(sizes(p), vec![1002]);
    let q = ListQuery {
        top: 0,
        count: true,
        ..ListQuery::default()
    };
    let p = s.list_items(&mbx, "inbox", &q).await.unwrap();
    assert_eq!((p.items.len(), p.total), (0, Some(5)));
    let q = ListQuery {
        skip: 100,
        ..ListQuery::default()
    };
    assert!(
        s.list_items(&mbx, "inbox", &q)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Folders: ordered by a field, descending, with paging.
    let q = ListQuery {
        order_by: vec![(Field::DisplayName, true)],
        top: 3,
        count: true,
        ..ListQuery::default()
    };
    let p = s.list_folders(&mbx, "msgfolderroot", &q).await.unwrap();
    assert_eq!(p.total, Some(13));
    let names: Vec<_> = p.items.iter().map(|f| f.display_name.as_str()).collect();
    assert_eq!(names, vec!["Tasks", "Sent Items", "Outbox"]);
    let q = ListQuery {
        order_by: vec![(Field::Type, false), (Field::DisplayName, true)],
        top: 2,
        ..ListQuery::default()
    };
    let p = s.list_folders(&mbx, "msgfolderroot", &q).await.unwrap();
    let names: Vec<_> = p.items.iter().map(|f| f.display_name.as_str()).collect();
    assert_eq!(names, vec!["Calendar", "Contacts"]);
}

// ---- delta ---------------------------------------------------------------------------

pub async fn folder_delta(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let initial = s
        .folder_delta(&mbx, DeltaScope::AllFolders, 0, 0, 1000)
        .await
        .unwrap();
    assert!(!initial.more);
    assert_eq!(
        initial.changes.len(),
        19,
        "root, msgfolderroot and 17 folders"
    );
    assert_eq!(initial.last_cn, initial.high_water);
    // Paged initial sync of msgfolderroot's children (hidden included).
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let p = s
            .folder_delta(
                &mbx,
                DeltaScope::ChildrenOf("msgfolderroot".into()),
                0,
                after,
                4,
            )
            .await
            .unwrap();
        assert!(p.changes.len() <= 4);
        seen.extend(upsert_ids(&p, folder_id));
        after = p.last_cn;
        if !p.more {
            break;
        }
    }
    assert_eq!(seen.len(), 14);
    let since = initial.high_water;
    let none = s
        .folder_delta(&mbx, DeltaScope::AllFolders, since, 0, 100)
        .await
        .unwrap();
    assert!(none.changes.is_empty());
    assert!(!none.more);
    assert_eq!(none.last_cn, since);

    let nf = |n: &str| NewFolder {
        display_name: n.into(),
        ..NewFolder::default()
    };
    let a = s.create_folder(&mbx, "inbox", nf("A")).await.unwrap();
    let b = s
        .create_folder(&mbx, "msgfolderroot", nf("B"))
        .await
        .unwrap();
    s.update_folder(
        &mbx,
        "drafts",
        FolderPatch {
            display_name: None,
            ext_props: Some(vec![]),
        },
    )
    .await
    .unwrap();
    s.delete_folder(&mbx, &a.id).await.unwrap();
    // Item changes do not change folders.
    s.create_item(&mbx, "inbox", test_item(1)).await.unwrap();
    let d = s
        .folder_delta(&mbx, DeltaScope::AllFolders, since, 0, 100)
        .await
        .unwrap();
    let drafts = s.resolve_folder(&mbx, "drafts").await.unwrap();
    assert_eq!(
        upsert_ids(&d, folder_id),
        vec![b.id.clone(), drafts.id.clone()]
    );
    assert_eq!(removed(&d), vec![(a.id.clone(), RemovedReason::Deleted)]);
    assert_eq!(
        d.high_water,
        d.last_cn + 1,
        "the item's change is not a folder entry"
    );
    let d = s
        .folder_delta(
            &mbx,
            DeltaScope::ChildrenOf("msgfolderroot".into()),
            since,
            0,
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        upsert_ids(&d, folder_id),
        vec![b.id.clone(), drafts.id.clone()]
    );
    assert!(removed(&d).is_empty());
    let d = s
        .folder_delta(&mbx, DeltaScope::ChildrenOf("inbox".into()), since, 0, 100)
        .await
        .unwrap();
    // Created then deleted: only the removal is left.
    assert!(upsert_ids(&d, folder_id).is_empty());
    assert_eq!(removed(&d), vec![(a.id, RemovedReason::Deleted)]);
    assert!(is_invalid(
        s.folder_delta(&mbx, DeltaScope::AllFolders, 0, 0, 0).await
    ));
}

pub async fn item_delta_initial_and_paging(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let mut ids = Vec::new();
    for n in 0..25 {
        ids.push(s.create_item(&mbx, "inbox", test_item(n)).await.unwrap().id);
    }
    s.create_item(&mbx, "drafts", test_item(99)).await.unwrap();
    let first = s.item_delta(&mbx, "inbox", 0, 0, 10).await.unwrap();
    assert_eq!(first.changes.len(), 10);
    assert!(first.more);
    let (all, hw) = full_item_delta(&*s, &mbx, "inbox", 0, 10).await;
    let got: Vec<String> = all
        .iter()
        .map(|c| match c {
            Change::Upsert(i) => i.id.clone(),
            Change::Removed { .. } => panic!("initial sync has no removals"),
        })
        .collect();
    assert_eq!(got, ids, "ordered by change number");
    assert_eq!(hw, first.high_water);
    // Deletions before an initial sync are omitted from it.
    s.delete_item(&mbx, &ids[0]).await.unwrap();
    let (all, _) = full_item_delta(&*s, &mbx, "inbox", 0, 7).await;
    assert_eq!(all.len(), 24);
    assert!(all.iter().all(|c| matches!(c, Change::Upsert(_))));
    // Exactly one page when the limit matches.
    let p = s.item_delta(&mbx, "inbox", 0, 0, 24).await.unwrap();
    assert_eq!((p.changes.len(), p.more), (24, false));
}

pub async fn item_delta_incremental(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let a = s.create_item(&mbx, "inbox", test_item(1)).await.unwrap();
    let b = s.create_item(&mbx, "inbox", test_item(2)).await.unwrap();
    let c = s.create_item(&mbx, "inbox", test_item(3)).await.unwrap();
    let (_, since) = full_item_delta(&*s, &mbx, "inbox", 0, 100).await;
    let (_, since_drafts) = full_item_delta(&*s, &mbx, "drafts", 0, 100).await;

    let d = s.create_item(&mbx, "inbox", test_item(4)).await.unwrap();
    let b2 = s
        .replace_item(&mbx, &b.id, &b.change_key, test_item(22))
        .await
        .unwrap();
    s.delete_item(&mbx, &a.id).await.unwrap();
    s.move_item(&mbx, &c.id, "drafts").await.unwrap();

    let (changes, hw) = full_item_delta(&*s, &mbx, "inbox", since, 2).await;
    assert!(hw > since);
    assert_eq!(
        changes,
        vec![
            Change::Upsert(d.clone()),
            Change::Upsert(b2.clone()),
            Change::Removed {
                id: a.id.clone(),
                reason: RemovedReason::Deleted
            },
            Change::Removed {
                id: c.id.clone(),
                reason: RemovedReason::MovedOut
            },
        ]
    );
    let (changes, _) = full_item_delta(&*s, &mbx, "drafts", since_drafts, 100).await;
    let moved = s.get_item(&mbx, &c.id).await.unwrap();
    assert_eq!(changes, vec![Change::Upsert(moved.clone())]);
    // Nothing new since the high-water mark.
    let (changes, hw2) = full_item_delta(&*s, &mbx, "inbox", hw, 100).await;
    assert!(changes.is_empty());
    assert_eq!(hw2, hw);
    // Moving back: the item reappears as an upsert, not as removed.
    let back = s.move_item(&mbx, &c.id, "inbox").await.unwrap();
    let (changes, _) = full_item_delta(&*s, &mbx, "inbox", since, 100).await;
    assert_eq!(changes.last(), Some(&Change::Upsert(back.clone())));
    assert!(
        !removed(&DeltaPage {
            changes,
            last_cn: 0,
            more: false,
            high_water: 0,
            horizon: 0
        })
        .iter()
        .any(|(id, _)| *id == c.id)
    );
    let (changes, _) = full_item_delta(&*s, &mbx, "drafts", hw, 100).await;
    assert_eq!(
        changes,
        vec![Change::Removed {
            id: c.id.clone(),
            reason: RemovedReason::MovedOut
        }]
    );
}

pub async fn delta_sees_changes_between_pages(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let mut items = Vec::new();
    for n in 0..6 {
        items.push(s.create_item(&mbx, "inbox", test_item(n)).await.unwrap());
    }
    let p1 = s.item_delta(&mbx, "inbox", 0, 0, 3).await.unwrap();
    assert_eq!(
        upsert_ids(&p1, item_id),
        items[..3].iter().map(|i| i.id.clone()).collect::<Vec<_>>()
    );
    assert!(p1.more);
    // Between pages: change an item already delivered and add a new one.
    let changed = s
        .replace_item(&mbx, &items[0].id, &items[0].change_key, test_item(50))
        .await
        .unwrap();
    let added = s.create_item(&mbx, "inbox", test_item(51)).await.unwrap();
    let mut after = p1.last_cn;
    let mut rest = Vec::new();
    loop {
        let p = s.item_delta(&mbx, "inbox", 0, after, 3).await.unwrap();
        rest.extend(upsert_ids(&p, item_id));
        after = p.last_cn;
        if !p.more {
            assert!(p.high_water >= added.cn);
            break;
        }
    }
    let mut want: Vec<String> = items[3..].iter().map(|i| i.id.clone()).collect();
    want.push(changed.id.clone());
    want.push(added.id.clone());
    assert_eq!(rest, want);
}

pub async fn delta_horizon_after_purge(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let a = s.create_item(&mbx, "inbox", test_item(1)).await.unwrap();
    let b = s.create_item(&mbx, "inbox", test_item(2)).await.unwrap();
    let p = s.item_delta(&mbx, "inbox", 0, 0, 100).await.unwrap();
    assert_eq!(p.horizon, 0);
    let since = p.high_water;
    s.delete_item(&mbx, &a.id).await.unwrap();
    let mid = s
        .item_delta(&mbx, "inbox", since, 0, 100)
        .await
        .unwrap()
        .high_water;
    s.delete_item(&mbx, &b.id).await.unwrap();
    // Purge the first tombstone only.
    assert_eq!(s.purge_tombstones(&mbx, mid + 1).await.unwrap(), 1);
    let p = s.item_delta(&mbx, "inbox", mid, 0, 100).await.unwrap();
    assert_eq!(p.horizon, mid + 1);
    assert_eq!(
        p.changes,
        vec![Change::Removed {
            id: b.id.clone(),
            reason: RemovedReason::Deleted
        }]
    );
    let f = s
        .folder_delta(&mbx, DeltaScope::AllFolders, mid, 0, 10)
        .await
        .unwrap();
    assert_eq!(f.horizon, mid + 1);
    // The horizon never goes back.
    assert_eq!(s.purge_tombstones(&mbx, 1).await.unwrap(), 0);
    let p = s.item_delta(&mbx, "inbox", 0, 0, 100).await.unwrap();
    assert_eq!(p.horizon, mid + 1);
    assert!(p.changes.is_empty());
}

// ---- settings and blobs -----------------------------------------------------------------

pub async fn settings_put_if_absent(h: &mut dyn Harness) {
    let s = h.store().await;
    assert_eq!(s.get_setting("signing-key").await.unwrap(), None);
    assert_eq!(
        s.put_setting_if_absent("signing-key", "first")
            .await
            .unwrap(),
        "first"
    );
    assert_eq!(
        s.put_setting_if_absent("signing-key", "second")
            .await
            .unwrap(),
        "first"
    );
    assert_eq!(
        s.get_setting("signing-key").await.unwrap().as_deref(),
        Some("first")
    );
    assert_eq!(s.put_setting_if_absent("other", "x").await.unwrap(), "x");
}

pub async fn blob_reference_counts(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let one = s.create_item(&mbx, "inbox", test_item(7)).await.unwrap();
    let two = s.create_item(&mbx, "drafts", test_item(7)).await.unwrap();
    assert_eq!(one.blob, two.blob);
    assert!(s.unreferenced_blobs(10).await.unwrap().is_empty());
    s.delete_item(&mbx, &one.id).await.unwrap();
    assert!(
        s.unreferenced_blobs(10).await.unwrap().is_empty(),
        "still referenced by two"
    );
    s.move_item(&mbx, &two.id, "inbox").await.unwrap();
    assert!(s.unreferenced_blobs(10).await.unwrap().is_empty());
    // Replacing moves the reference to the new content.
    let two = s.get_item(&mbx, &two.id).await.unwrap();
    s.replace_item(&mbx, &two.id, &two.change_key, test_item(8))
        .await
        .unwrap();
    assert_eq!(
        s.unreferenced_blobs(10).await.unwrap(),
        vec![test_blob(7).hash]
    );
    // Referenced again before collection: forget refuses.
    let three = s.create_item(&mbx, "inbox", test_item(7)).await.unwrap();
    assert!(!s.forget_blob(&test_blob(7).hash).await.unwrap());
    s.delete_item(&mbx, &three.id).await.unwrap();
    s.delete_item(&mbx, &two.id).await.unwrap();
    let mut unref = s.unreferenced_blobs(10).await.unwrap();
    unref.sort();
    let mut want = vec![test_blob(7).hash, test_blob(8).hash];
    want.sort();
    assert_eq!(unref, want);
    assert_eq!(s.unreferenced_blobs(1).await.unwrap().len(), 1);
    assert!(s.forget_blob(&test_blob(7).hash).await.unwrap());
    assert!(!s.forget_blob(&test_blob(7).hash).await.unwrap());
    assert_eq!(
        s.unreferenced_blobs(10).await.unwrap(),
        vec![test_blob(8).hash]
    );
    assert!(is_invalid(s.forget_blob("nothex").await));
    // A hash with a different size than recorded is refused.
    let mut wrong = test_item(8);
    wrong.blob.size += 1;
    assert!(is_invalid(s.create_item(&mbx, "inbox", wrong).await));
}

/// An item with test content `n` kept in the meta store.
pub fn inline_item(n: u32) -> NewItem {
    let mut item = test_item(n);
    item.inline = Some(bytes::Bytes::from(format!("content {n}")));
    item
}

pub async fn inline_content(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let (h7, h8, h9) = (test_blob(7).hash, test_blob(8).hash, test_blob(9).hash);
    assert!(s.inline_content(&[]).await.unwrap().is_empty());
    // Kept with the item; items with blob-store content have none.
    let one = s.create_item(&mbx, "inbox", inline_item(7)).await.unwrap();
    s.create_item(&mbx, "inbox", test_item(9)).await.unwrap();
    let got = s
        .inline_content(&[h7.clone(), h9.clone(), h8.clone()])
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "only content 7 is inline: {got:?}");
    assert_eq!(&got[&h7][..], b"content 7");
    // Deduplicated like any blob: a second copy adds a reference, not content.
    let two = s.create_item(&mbx, "drafts", inline_item(7)).await.unwrap();
    assert_eq!(one.blob, two.blob);
    s.delete_item(&mbx, &one.id).await.unwrap();
    assert!(s.unreferenced_blobs(10).await.unwrap().is_empty());
    assert_eq!(
        &s.inline_content(std::slice::from_ref(&h7)).await.unwrap()[&h7][..],
        b"content 7"
    );
    // Replacing with inline content moves the reference.
    let two = s.get_item(&mbx, &two.id).await.unwrap();
    let two = s
        .replace_item(&mbx, &two.id, &two.change_key, inline_item(8))
        .await
        .unwrap();
    assert_eq!(two.blob, test_blob(8));
    assert_eq!(s.unreferenced_blobs(10).await.unwrap(), vec![h7.clone()]);
    // Forgetting an unreferenced blob drops its content with it.
    assert!(s.forget_blob(&h7).await.unwrap());
    assert!(
        s.inline_content(std::slice::from_ref(&h7))
            .await
            .unwrap()
            .is_empty()
    );
    // Blob-store content referenced again with inline content: kept inline too.
    s.create_item(&mbx, "inbox", inline_item(9)).await.unwrap();
    assert_eq!(
        &s.inline_content(std::slice::from_ref(&h9)).await.unwrap()[&h9][..],
        b"content 9"
    );
    // Bulk inserts keep inline content as well.
    let bulk: Vec<NewItem> = (20..25).map(inline_item).collect();
    assert_eq!(
        s.bulk_insert_items(&mbx, "inbox", Box::new(bulk.into_iter()))
            .await
            .unwrap(),
        5
    );
    let bulk_hashes: Vec<String> = (20..25).map(|n| test_blob(n).hash).collect();
    assert_eq!(s.inline_content(&bulk_hashes).await.unwrap().len(), 5);
    // Content that does not match its reference is refused, nothing stored.
    let before = s
        .resolve_folder(&mbx, "inbox")
        .await
        .unwrap()
        .total_item_count;
    let mut wrong = inline_item(10);
    wrong.inline = Some(bytes::Bytes::from_static(b"content 11"));
    assert!(is_invalid(s.create_item(&mbx, "inbox", wrong).await));
    let mut short = inline_item(10);
    short.inline = Some(bytes::Bytes::from_static(b"content"));
    assert!(is_invalid(s.create_item(&mbx, "inbox", short).await));
    let h10 = test_blob(10).hash;
    assert!(
        s.inline_content(std::slice::from_ref(&h10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.resolve_folder(&mbx, "inbox")
            .await
            .unwrap()
            .total_item_count,
        before
    );
    assert!(is_invalid(s.inline_content(&["nothex".to_owned()]).await));
}

pub async fn bulk_insert(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let before = s
        .item_delta(&mbx, "inbox", 0, 0, 1)
        .await
        .unwrap()
        .high_water;
    let n = s
        .bulk_insert_items(
            &mbx,
            "inbox",
            Box::new((0..5000u32).map(|i| test_item(i % 100))),
        )
        .await
        .unwrap();
    assert_eq!(n, 5000);
    let inbox = s.resolve_folder(&mbx, "inbox").await.unwrap();
    assert_eq!(inbox.total_item_count, 5000);
    let (all, hw) = full_item_delta(&*s, &mbx, "inbox", 0, 1000).await;
    assert_eq!(all.len(), 5000);
    assert_eq!(hw, before + 5000);
    let mut cns: Vec<u64> = all
        .iter()
        .map(|c| match c {
            Change::Upsert(i) => i.cn,
            Change::Removed { .. } => unreachable!(),
        })
        .collect();
    cns.dedup();
    assert_eq!(cns.len(), 5000, "every item has its own change number");
    let q = ListQuery {
        count: true,
        top: 1,
        ..ListQuery::default()
    };
    assert_eq!(
        s.list_items(&mbx, "inbox", &q).await.unwrap().total,
        Some(5000)
    );
    assert!(s.unreferenced_blobs(10).await.unwrap().is_empty());
    let empty = s
        .bulk_insert_items(&mbx, "inbox", Box::new(std::iter::empty()))
        .await
        .unwrap();
    assert_eq!(empty, 0);
}

pub async fn persistence_across_reopen(h: &mut dyn Harness) {
    let s = h.store().await;
    let mbx = setup(&*s).await;
    let a = s.create_item(&mbx, "inbox", test_item(1)).await.unwrap();
    let (_, since) = full_item_delta(&*s, &mbx, "inbox", 0, 100).await;
    let b = s.create_item(&mbx, "inbox", test_item(2)).await.unwrap();
    s.put_setting_if_absent("k", "v").await.unwrap();
    drop(s);
    let Some(s) = h.reopen().await else {
        return;
    };
    assert_eq!(s.get_item(&mbx, &a.id).await.unwrap(), a);
    assert_eq!(s.get_setting("k").await.unwrap().as_deref(), Some("v"));
    s.delete_item(&mbx, &a.id).await.unwrap();
    let c = s.create_item(&mbx, "inbox", test_item(3)).await.unwrap();
    assert!(c.cn > b.cn, "change numbers continue after reopen");
    let (changes, _) = full_item_delta(&*s, &mbx, "inbox", since, 100).await;
    assert_eq!(
        changes,
        vec![
            Change::Upsert(b),
            Change::Removed {
                id: a.id,
                reason: RemovedReason::Deleted
            },
            Change::Upsert(c),
        ]
    );
    assert_eq!(
        s.resolve_folder(&mbx, "inbox")
            .await
            .unwrap()
            .total_item_count,
        2
    );
}

// ---- blob store cases ------------------------------------------------------------------

/// Identical content is stored once; `exists`, `get`, `delete` behave.
pub async fn blob_dedup(b: &BlobStore) {
    let data = Bytes::from_static(b"hello graphbox");
    let r1 = b.put(data.clone()).await.unwrap();
    let r2 = b.put(data.clone()).await.unwrap();
    assert_eq!(r1, r2);
    assert_eq!(r1.size, data.len() as u64);
    assert_eq!(r1.hash, blake3::hash(&data).to_hex().to_string());
    assert!(b.exists(&r1.hash).await.unwrap());
    assert_eq!(b.get(&r1.hash).await.unwrap(), data);
    let streamed = b
        .put_stream(futures::stream::iter(vec![
            Ok::<_, std::io::Error>(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"graphbox")),
        ]))
        .await
        .unwrap();
    assert_eq!(streamed, r1);
    let empty = b.put(Bytes::new()).await.unwrap();
    assert_eq!(empty.size, 0);
    assert_eq!(b.get(&empty.hash).await.unwrap(), Bytes::new());
    b.delete(&r1.hash).await.unwrap();
    assert!(!b.exists(&r1.hash).await.unwrap());
    b.delete(&r1.hash).await.unwrap();
}

/// A 20 MB blob streams in and out intact, in bounded chunks.
pub async fn blob_large_stream(b: &BlobStore) {
    const SIZE: usize = 20 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let byte = |i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    let mut expected = blake3::Hasher::new();
    let chunks: Vec<Bytes> = (0..SIZE / CHUNK)
        .map(|c| {
            let v: Vec<u8> = (c * CHUNK..(c + 1) * CHUNK).map(byte).collect();
            expected.update(&v);
            Bytes::from(v)
        })
        .collect();
    let expected = expected.finalize().to_hex().to_string();
    let r = b
        .put_stream(futures::stream::iter(
            chunks.into_iter().map(Ok::<_, std::io::Error>),
        ))
        .await
        .unwrap();
    assert_eq!(r.hash, expected);
    assert_eq!(r.size, SIZE as u64);
    let mut stream = b.get_stream(&r.hash).await.unwrap();
    let mut got = blake3::Hasher::new();
    let mut total = 0usize;
    let mut biggest = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        total += chunk.len();
        biggest = biggest.max(chunk.len());
        got.update(&chunk);
    }
    assert_eq!(total, SIZE);
    assert!(
        biggest <= 8 * 1024 * 1024,
        "chunks are bounded, got {biggest}"
    );
    assert_eq!(got.finalize().to_hex().to_string(), expected);
    assert_eq!(b.get(&r.hash).await.unwrap().len(), SIZE);
}

/// A missing hash is NotFound; a malformed one Invalid.
pub async fn blob_missing(b: &BlobStore) {
    let missing = blake3::hash(b"never stored").to_hex().to_string();
    assert!(!b.exists(&missing).await.unwrap());
    assert!(is_not_found(b.get(&missing).await));
    assert!(matches!(
        b.get_stream(&missing).await.map(|_| ()),
        Err(StoreError::NotFound { .. })
    ));
    assert!(is_invalid(b.get("../../etc/passwd").await));
    assert!(is_invalid(b.exists("ABC").await));
    assert!(is_invalid(b.delete("").await));
}
