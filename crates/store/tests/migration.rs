//! The raw dump/load API (`store::migration`) on both engines: a deployment
//! with folders, items, moves, deletes (tombstones), a deleted folder, blob
//! reference counts, settings and the identity directory is copied
//! SQLite -> SQLite, SQLite -> PostgreSQL and PostgreSQL -> SQLite, and must
//! arrive row for row identical, keep delta state working and continue its
//! key and change counters. The PostgreSQL cases need
//! `GRAPHBOX_TEST_POSTGRES_URL` and FAIL without it (like tests/postgres.rs).

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::StreamExt;
use store::directory::{AuthRecord, ConsentGrant, NewApp, Permission, PermissionKind};
use store::migration::{self, RawTables, Row, TABLES, Value};
use store::query::{Change, DeltaScope};
use store::{
    BlobStore, DirectoryStore, MailboxId, MailboxKind, MetaStore, NewFolder, SqliteMetaStore,
    StoreError,
};
use time::{Duration, OffsetDateTime};

trait Engine: MetaStore + DirectoryStore + RawTables {}
impl<T: MetaStore + DirectoryStore + RawTables> Engine for T {}

struct Seeded {
    mbx: MailboxId,
    /// An item delta high-water mark of the inbox taken before the last changes.
    inbox_cn: u64,
    /// The same for the folder hierarchy.
    folders_cn: u64,
}

/// Fills `s` with a little of everything; content goes to `blobs`.
async fn seed(s: &dyn Engine, blobs: &BlobStore) -> Seeded {
    let t = s.create_tenant("contoso.test", "Contoso").await.unwrap();
    let u = s
        .create_user(t.id, "adele@contoso.test", "Adele")
        .await
        .unwrap();
    let m = s.create_mailbox(u.id, MailboxKind::Primary).await.unwrap();
    s.create_mailbox(u.id, MailboxKind::Archive).await.unwrap();
    let mbx = m.id;
    let item = |n: u32| {
        let content = Bytes::from(format!("item content {n} {}", "x".repeat(n as usize * 10)));
        (content, n)
    };
    let mut ids = Vec::new();
    for n in 0..12 {
        let (content, n) = item(n);
        let blob = blobs.put(content).await.unwrap();
        let mut it = store::testsuite::test_item(n);
        it.blob = blob;
        it.categories = vec![format!("Cat{}", n % 3)];
        ids.push(s.create_item(&mbx, "inbox", it).await.unwrap());
    }
    // Two items share one blob (reference count 2).
    let shared = blobs
        .put(Bytes::from_static(b"shared content"))
        .await
        .unwrap();
    for n in 100..102 {
        let mut it = store::testsuite::test_item(n);
        it.blob = shared.clone();
        s.create_item(&mbx, "drafts", it).await.unwrap();
    }
    // Small items keep their content in the metadata (two share one).
    for (n, text) in [(200, "inline a"), (201, "inline b"), (202, "inline b")] {
        let (blob, data) = store::blob::inline_ref(&[Bytes::from_static(text.as_bytes())]);
        let mut it = store::testsuite::test_item(n);
        it.blob = blob;
        it.inline = Some(data);
        s.create_item(&mbx, "drafts", it).await.unwrap();
    }
    let f = s
        .create_folder(
            &mbx,
            "msgfolderroot",
            NewFolder {
                display_name: "Projects".into(),
                class: "IPF.Note".into(),
                ext_props: vec![],
            },
        )
        .await
        .unwrap();
    let gone = s
        .create_folder(
            &mbx,
            &f.id,
            NewFolder {
                display_name: "Old".into(),
                class: "IPF.Note".into(),
                ext_props: vec![],
            },
        )
        .await
        .unwrap();
    s.move_item(&mbx, &ids[0].id, &gone.id).await.unwrap();
    let inbox_cn = s
        .item_delta(&mbx, "inbox", 0, 0, 1000)
        .await
        .unwrap()
        .high_water;
    let folders_cn = s
        .folder_delta(&mbx, DeltaScope::AllFolders, 0, 0, 1000)
        .await
        .unwrap()
        .high_water;
    s.delete_item(&mbx, &ids[1].id).await.unwrap();
    s.move_item(&mbx, &ids[2].id, &f.id).await.unwrap();
    s.delete_folder(&mbx, &gone.id).await.unwrap(); // the highest folder key, deleted
    s.put_setting_if_absent("signing_key_pem", "-----BEGIN TEST-----")
        .await
        .unwrap();
    s.put_setting_if_absent("delta_mac_key", "c2VjcmV0")
        .await
        .unwrap();

    let app = s
        .create_app(NewApp {
            tenant_id: t.id,
            display_name: "Exporter".into(),
            redirect_uris: vec!["http://localhost:8400".into()],
            public_client: true,
        })
        .await
        .unwrap();
    let p = Permission {
        kind: PermissionKind::Application,
        value: "MailboxItem.ImportExport.All".into(),
    };
    s.add_permission(app.client_id, p.clone()).await.unwrap();
    s.grant(ConsentGrant {
        client_id: app.client_id,
        kind: p.kind,
        value: p.value,
        user_id: None,
    })
    .await
    .unwrap();
    s.grant(ConsentGrant {
        client_id: app.client_id,
        kind: PermissionKind::Delegated,
        value: "MailboxItem.Read".into(),
        user_id: Some(u.id),
    })
    .await
    .unwrap();
    s.set_password_hash(u.id, "$argon2id$test").await.unwrap();
    s.set_admin(u.id, true).await.unwrap();
    s.put_record(AuthRecord {
        key: "refresh-1".into(),
        kind: "refresh".into(),
        client_id: app.client_id,
        data: "{\"scope\":\"x\"}".into(),
        expires: OffsetDateTime::now_utc() + Duration::days(1),
    })
    .await
    .unwrap();
    Seeded {
        mbx,
        inbox_cn,
        folders_cn,
    }
}

/// Every row of every table, as a set per table (tombstones have no order).
async fn dump(s: &dyn RawTables) -> Vec<(&'static str, BTreeSet<String>)> {
    let mut out = Vec::new();
    for t in TABLES {
        let mut set = BTreeSet::new();
        let mut rows = s.export_rows(t, 3);
        while let Some(b) = rows.next().await {
            let b: Vec<Row> = b.unwrap();
            assert!(b.len() <= 3, "batches are bounded");
            for r in b {
                set.insert(format!("{r:?}"));
            }
        }
        out.push((t.name, set));
    }
    out
}

/// Copies `from` into `to` and checks everything a migration must keep.
async fn check_copy(from: &dyn Engine, to: &dyn Engine, seeded: &Seeded) {
    let mut seen = Vec::new();
    let counts = migration::copy_tables(from, to, 4, &mut |t, n| seen.push((t.to_owned(), n)))
        .await
        .unwrap();
    assert!(seen.iter().any(|(t, n)| t == "items" && *n >= 4));
    let by = |n: &str| counts.iter().find(|c| c.table == n).unwrap().target;
    assert_eq!(
        by("items"),
        15,
        "17 created, one deleted, one deleted with its folder"
    );
    assert_eq!(by("blob_content"), 2, "two inline contents");
    assert!(by("tombstones") >= 3);
    assert_eq!(by("dir_grants"), 2);
    assert_eq!(by("settings"), 2);
    assert_eq!(
        dump(from).await,
        dump(to).await,
        "every row arrives unchanged"
    );

    // Delta state carries over: the same answers from the same sync state.
    let mbx = &seeded.mbx;
    let a = from
        .item_delta(mbx, "inbox", seeded.inbox_cn, 0, 100)
        .await
        .unwrap();
    let b = to
        .item_delta(mbx, "inbox", seeded.inbox_cn, 0, 100)
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.changes.len(), 2, "one delete and one move out");
    let a = from
        .folder_delta(mbx, DeltaScope::AllFolders, seeded.folders_cn, 0, 100)
        .await
        .unwrap();
    let b = to
        .folder_delta(mbx, DeltaScope::AllFolders, seeded.folders_cn, 0, 100)
        .await
        .unwrap();
    assert_eq!(a, b);
    assert!(
        b.changes
            .iter()
            .any(|c| matches!(c, Change::Removed { .. })),
        "the deleted folder's tombstone is there"
    );

    // The target continues the counters: a new folder does not reuse the
    // deleted folder's key (its tombstone would otherwise show up under the
    // new folder), and new change numbers follow the old ones.
    let hw = b.high_water;
    let nf = to
        .create_folder(
            mbx,
            "msgfolderroot",
            NewFolder {
                display_name: "After migration".into(),
                class: "IPF.Note".into(),
                ext_props: vec![],
            },
        )
        .await
        .unwrap();
    let d = to.item_delta(mbx, &nf.id, 0, 0, 100).await.unwrap();
    assert!(
        d.changes.is_empty(),
        "a new folder starts empty: {:?}",
        d.changes
    );
    let after = to
        .folder_delta(mbx, DeltaScope::AllFolders, hw, 0, 100)
        .await
        .unwrap();
    assert_eq!(after.changes.len(), 1);
    assert!(matches!(&after.changes[0], Change::Upsert(f) if f.id == nf.id));
    let fk = |rows: &BTreeSet<String>| rows.len();
    let before = dump(from).await;
    let now = dump(to).await;
    assert_eq!(fk(&now[4].1), fk(&before[4].1) + 1);
    let src_counter = from.key_counters().await.unwrap();
    let dst_counter = to.key_counters().await.unwrap();
    let get = |v: &[(String, i64)], t: &str| v.iter().find(|(n, _)| n == t).unwrap().1;
    assert_eq!(
        get(&dst_counter, "folders"),
        get(&src_counter, "folders") + 1
    );

    // The directory works on the target.
    let t = to.find_tenant("contoso.test").await.unwrap();
    let apps = to.list_apps(t.id).await.unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(to.list_grants(apps[0].client_id).await.unwrap().len(), 2);
    assert!(
        to.take_record("refresh", "refresh-1")
            .await
            .unwrap()
            .is_some()
    );

    // A second copy into the now non-empty target is refused, changing nothing.
    let before = dump(to).await;
    let err = migration::copy_tables(from, to, 4, &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("not empty") && m.contains("items")),
        "{err}"
    );
    assert_eq!(before, dump(to).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_sqlite_is_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::memory();
    let from = SqliteMetaStore::open(dir.path().join("a.sqlite"))
        .await
        .unwrap();
    let seeded = seed(&from, &blobs).await;
    let to = SqliteMetaStore::open(dir.path().join("b.sqlite"))
        .await
        .unwrap();
    check_copy(&from, &to, &seeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_copied_and_verified_by_hash() {
    let dir = tempfile::tempdir().unwrap();
    let src_blobs = BlobStore::local(dir.path().join("src")).unwrap();
    let dst_blobs = BlobStore::local(dir.path().join("dst")).unwrap();
    let from = SqliteMetaStore::open(dir.path().join("a.sqlite"))
        .await
        .unwrap();
    seed(&from, &src_blobs).await;
    let to = SqliteMetaStore::open(dir.path().join("b.sqlite"))
        .await
        .unwrap();
    migration::copy_tables(&from, &to, 100, &mut |_, _| {})
        .await
        .unwrap();

    // Before the copy the target blob store lacks referenced content.
    let err = migration::verify_blobs(&to, &dst_blobs, 2)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing from the target"), "{err}");

    let mut ticks = 0;
    let c = migration::copy_blobs(&from, &src_blobs, &dst_blobs, 3, &mut |_| ticks += 1)
        .await
        .unwrap();
    assert_eq!(
        c.blobs, 15,
        "12 distinct items + one shared blob + two inline contents"
    );
    assert_eq!((c.copied, c.inline), (13, 2));
    assert!(ticks >= 1);
    let v = migration::verify_blobs(&to, &dst_blobs, 2).await.unwrap();
    assert_eq!((v.blobs, v.copied, v.inline, v.bytes), (15, 13, 2, c.bytes));
    let b = store::blob::inline_ref(&[Bytes::from_static(b"inline b")]).0;
    assert_eq!(
        &to.inline_content(std::slice::from_ref(&b.hash))
            .await
            .unwrap()[&b.hash][..],
        b"inline b",
        "inline content travels with the tables"
    );
    assert!(
        !dst_blobs.exists(&b.hash).await.unwrap(),
        "inline content is not copied to the blob store"
    );

    // Running again finds everything present (and re-checks it).
    let again = migration::copy_blobs(&from, &src_blobs, &dst_blobs, 3, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((again.copied, again.present, again.inline), (0, 13, 2));

    // Tampered inline content in the target is detected by hash.
    {
        let conn = rusqlite::Connection::open(dir.path().join("b.sqlite")).unwrap();
        let key = blake3::Hash::from_hex(&b.hash).unwrap();
        conn.execute(
            "UPDATE blob_content SET data = ?2 WHERE hash = ?1",
            rusqlite::params![&key.as_bytes()[..], &b"inline c"[..]],
        )
        .unwrap();
        let err = migration::verify_blobs(&to, &dst_blobs, 2)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&b.hash), "{err}");
        conn.execute(
            "UPDATE blob_content SET data = ?2 WHERE hash = ?1",
            rusqlite::params![&key.as_bytes()[..], &b"inline b"[..]],
        )
        .unwrap();
        migration::verify_blobs(&to, &dst_blobs, 2).await.unwrap();
    }

    // Corrupt content in the target is detected by hash.
    let mut rows = to.export_rows(migration::table("blobs").unwrap(), 100);
    let mut path = None;
    let mut hash = String::new();
    for row in rows.next().await.unwrap().unwrap() {
        let Value::Bytes(h) = &row[0] else { panic!() };
        hash = blake3::Hash::from_bytes(h.as_slice().try_into().unwrap())
            .to_hex()
            .to_string();
        let p = dir
            .path()
            .join("dst/blobs")
            .join(&hash[0..2])
            .join(&hash[2..4])
            .join(&hash);
        if p.exists() {
            path = Some(p);
            break;
        }
    }
    drop(rows);
    let path = path.expect("some blob is in the blob store");
    std::fs::write(&path, b"tampered").unwrap();
    let err = migration::verify_blobs(&to, &dst_blobs, 2)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&hash), "{err}");

    // A referenced blob missing from the source is an error naming it.
    let empty = BlobStore::local(dir.path().join("empty")).unwrap();
    let other = BlobStore::local(dir.path().join("other")).unwrap();
    let err = migration::copy_blobs(&from, &empty, &other, 2, &mut |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing from the source"), "{err}");
}

#[tokio::test]
async fn import_rejects_rows_that_do_not_fit() {
    let s = SqliteMetaStore::open_in_memory().await.unwrap();
    let t = migration::table("tenants").unwrap();
    let err = s
        .import_rows(t, vec![vec![Value::Text("only one".into())]])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let err = s
        .import_rows(
            t,
            vec![vec![
                Value::Int(1),
                Value::Text("d".into()),
                Value::Text("d".into()),
                Value::Text("n".into()),
            ]],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tenants.id"), "{err}");
    assert_eq!(s.count_rows(t).await.unwrap(), 0, "nothing was written");
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use store::PgMetaStore;

    fn server_url() -> String {
        match std::env::var("GRAPHBOX_TEST_POSTGRES_URL") {
            Ok(u) if !u.trim().is_empty() => u,
            _ => panic!(
                "GRAPHBOX_TEST_POSTGRES_URL is not set: the PostgreSQL migration tests need a \
                 server. Start the throwaway one with `eval \"$(scripts/services.sh start)\"` \
                 (stop it with `scripts/services.sh stop`), or run scripts/test.sh."
            ),
        }
    }

    async fn fresh_database() -> String {
        let admin = server_url();
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to GRAPHBOX_TEST_POSTGRES_URL: {e}"));
        tokio::spawn(conn);
        let name = format!("gbtest_{}", uuid::Uuid::new_v4().simple());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let mut url = url::Url::parse(&admin).expect("GRAPHBOX_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        url.to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_to_postgres_is_lossless() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::memory();
        let from = SqliteMetaStore::open(dir.path().join("a.sqlite"))
            .await
            .unwrap();
        let seeded = seed(&from, &blobs).await;
        let to = PgMetaStore::open(&fresh_database().await).await.unwrap();
        check_copy(&from, &to, &seeded).await;
        // Category filters use PostgreSQL's derived column, rebuilt on load.
        let q = store::ListQuery {
            filter: Some(store::Filter::AnyCategoryEq("cat1".into())),
            ..Default::default()
        };
        let want = from.list_items(&seeded.mbx, "inbox", &q).await.unwrap();
        let got = to.list_items(&seeded.mbx, "inbox", &q).await.unwrap();
        assert_eq!(got.items.len(), 3, "items 4, 7 and 10 carry Cat1");
        assert_eq!(got, want);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_to_sqlite_is_lossless() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::memory();
        let from = PgMetaStore::open(&fresh_database().await).await.unwrap();
        let seeded = seed(&from, &blobs).await;
        let to = SqliteMetaStore::open(dir.path().join("b.sqlite"))
            .await
            .unwrap();
        check_copy(&from, &to, &seeded).await;
    }
}
