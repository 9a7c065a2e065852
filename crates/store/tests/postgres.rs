//! The MetaStore contract suite on the PostgreSQL backend, plus checks of
//! what only a shared database has: many stores (instances) on one database.
//!
//! The server comes from `GRAPHBOX_TEST_POSTGRES_URL` (a role allowed to
//! `CREATE DATABASE`); every test creates its own fresh database. The
//! variable is required: without it these tests FAIL with a message saying
//! how to start a server (`eval "$(scripts/services.sh start)"`), they never
//! pass silently. `scripts/test.sh` and `.ci/run` start the throwaway
//! cluster themselves when the variable is unset.
#![cfg(feature = "postgres")]

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use store::testsuite::{Harness, test_item};
use store::{MailboxKind, MetaStore, PgMetaStore, StoreError};

/// The server URL; panics with instructions when it is not configured.
fn server_url() -> String {
    match std::env::var("GRAPHBOX_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "GRAPHBOX_TEST_POSTGRES_URL is not set: the PostgreSQL store tests need a server. \
             Start the throwaway one with `eval \"$(scripts/services.sh start)\"` (stop it with \
             `scripts/services.sh stop`), or run scripts/test.sh, which does that itself."
        ),
    }
}

/// Creates a fresh database on the test server; returns its URL.
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

struct PgHarness {
    url: Option<String>,
    store: Option<Arc<dyn MetaStore>>,
}

impl PgHarness {
    fn new() -> Self {
        PgHarness {
            url: None,
            store: None,
        }
    }

    async fn open(&mut self) -> Arc<dyn MetaStore> {
        if self.url.is_none() {
            self.url = Some(fresh_database().await);
        }
        let url = self.url.as_deref().expect("set above");
        Arc::new(PgMetaStore::open(url).await.expect("open"))
    }
}

#[async_trait]
impl Harness for PgHarness {
    async fn store(&mut self) -> Arc<dyn MetaStore> {
        if self.store.is_none() {
            self.store = Some(self.open().await);
        }
        self.store.clone().expect("opened")
    }

    async fn reopen(&mut self) -> Option<Arc<dyn MetaStore>> {
        self.store = None;
        let s = self.open().await;
        self.store = Some(s.clone());
        Some(s)
    }
}

store::metastore_tests!(PgHarness::new());

#[tokio::test]
async fn schema_is_versioned_and_reopen_is_idempotent() {
    let url = fresh_database().await;
    let a = PgMetaStore::open(&url).await.unwrap();
    // V1: the metadata tables; V2: the identity directory; V3: inline content.
    assert_eq!(a.schema_version().await.unwrap(), 3);
    // Several instances starting at once migrate exactly once.
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgMetaStore::open(&url).await })
        })
        .collect();
    for o in opens {
        assert_eq!(o.await.unwrap().unwrap().schema_version().await.unwrap(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_gains_the_directory() {
    use store::DirectoryStore;
    use store::directory::NewApp;
    let url = fresh_database().await;
    let a = PgMetaStore::open(&url).await.unwrap();
    let t = a.create_tenant("old.test", "Old").await.unwrap();
    drop(a);
    // Make it look like a database written before the directory existed.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "DROP TABLE dir_records, dir_user_credentials, dir_grants, dir_permissions, \
             dir_certs, dir_secrets, dir_apps, blob_content; \
             DELETE FROM schema_version WHERE version >= 2",
        )
        .await
        .unwrap();
    let b = PgMetaStore::open(&url).await.unwrap();
    assert_eq!(b.schema_version().await.unwrap(), 3);
    assert_eq!(
        b.get_tenant(t.id).await.unwrap(),
        t,
        "existing data is kept"
    );
    let app = b
        .create_app(NewApp {
            tenant_id: t.id,
            display_name: "After upgrade".into(),
            redirect_uris: vec![],
            public_client: false,
        })
        .await
        .unwrap();
    assert_eq!(b.list_apps(t.id).await.unwrap(), vec![app]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_on_a_fresh_database() {
    let url = fresh_database().await;
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgMetaStore::open(&url).await })
        })
        .collect();
    for o in opens {
        let s = o.await.unwrap().expect("every instance opens");
        assert_eq!(s.schema_version().await.unwrap(), 3);
    }
}

#[tokio::test]
async fn bad_urls_and_unreachable_servers_fail_at_open() {
    let e = PgMetaStore::open("postgres://x@host:notaport/db")
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("not a PostgreSQL connection URL")),
        "{e}"
    );
    // A port nobody listens on (bound and released right away).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = PgMetaStore::open(&format!("postgres://u:secret@127.0.0.1:{port}/db"))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("cannot connect to PostgreSQL"), "{msg}");
    assert!(!msg.contains("secret"), "the password leaks: {msg}");
    // A database that does not exist.
    let mut url = url::Url::parse(&server_url()).unwrap();
    url.set_path("/gbtest_no_such_database");
    let e = PgMetaStore::open(url.as_str()).await.unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
}

/// Two "instances" (separate stores with their own pools) writing to one
/// mailbox at the same time: every change number and id is unique, the
/// counters match the rows, and a delta from either sees everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_never_share_a_change_number_or_id() {
    let url = fresh_database().await;
    let a: Arc<dyn MetaStore> = Arc::new(PgMetaStore::open(&url).await.unwrap());
    let b: Arc<dyn MetaStore> = Arc::new(PgMetaStore::open(&url).await.unwrap());
    let t = a.create_tenant("scale.example", "Scale").await.unwrap();
    let u = a
        .create_user(t.id, "pat@scale.example", "Pat")
        .await
        .unwrap();
    let mbx = b.create_mailbox(u.id, MailboxKind::Primary).await.unwrap();
    const PER_TASK: u32 = 40;
    let mut tasks = Vec::new();
    for (n, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let id = mbx.id;
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..PER_TASK {
                let item = store
                    .create_item(&id, "inbox", test_item(n as u32 * 1000 + i))
                    .await
                    .unwrap();
                out.push((item.id, item.cn));
            }
            // And bulk batches interleaved with single writes.
            let k = store
                .bulk_insert_items(
                    &id,
                    "archive",
                    Box::new((0..25).map(move |i| test_item(n as u32 * 1000 + 500 + i))),
                )
                .await
                .unwrap();
            assert_eq!(k, 25);
            out
        }));
    }
    let mut ids = HashSet::new();
    let mut cns = HashSet::new();
    for t in tasks {
        for (id, cn) in t.await.unwrap() {
            assert!(ids.insert(id), "duplicate item id");
            assert!(cns.insert(cn), "duplicate change number {cn}");
        }
    }
    assert_eq!(ids.len(), 4 * PER_TASK as usize);
    for store in [&a, &b] {
        let inbox = store.resolve_folder(&mbx.id, "inbox").await.unwrap();
        assert_eq!(inbox.total_item_count, i64::from(4 * PER_TASK));
        let archive = store.resolve_folder(&mbx.id, "archive").await.unwrap();
        assert_eq!(archive.total_item_count, 100);
        let page = store
            .item_delta(&mbx.id, "inbox", 0, 0, 10_000)
            .await
            .unwrap();
        assert_eq!(page.changes.len(), 4 * PER_TASK as usize);
        assert!(!page.more);
        let page = store
            .item_delta(&mbx.id, "archive", 0, 0, 10_000)
            .await
            .unwrap();
        assert_eq!(page.changes.len(), 100);
    }
    // The bulk items got change numbers distinct from the single writes.
    let bulk = a
        .item_delta(&mbx.id, "archive", 0, 0, 10_000)
        .await
        .unwrap();
    for c in bulk.changes {
        if let store::Change::Upsert(i) = c {
            assert!(cns.insert(i.cn), "bulk cn {} reused", i.cn);
            assert!(ids.insert(i.id), "bulk id reused");
        }
    }
    // Concurrent stale replaces: exactly one wins.
    let first = a
        .list_items(&mbx.id, "inbox", &store::ListQuery::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let (ra, rb) = tokio::join!(
        a.replace_item(&mbx.id, &first.id, &first.change_key, test_item(9001)),
        b.replace_item(&mbx.id, &first.id, &first.change_key, test_item(9002)),
    );
    assert!(
        ra.is_ok() != rb.is_ok(),
        "exactly one replace with the same change key wins: {ra:?} / {rb:?}"
    );
    let loser = if ra.is_ok() { rb } else { ra };
    assert!(matches!(loser, Err(StoreError::Conflict(_))), "{loser:?}");
}

/// Two instances creating the same tenant / user / mailbox at once: one
/// wins, the other gets `Conflict` (never a backend error, never two rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_unique_creates_are_conflicts() {
    let url = fresh_database().await;
    let a = PgMetaStore::open(&url).await.unwrap();
    let b = PgMetaStore::open(&url).await.unwrap();
    for round in 0..5 {
        let domain = format!("race{round}.example");
        let upper = domain.to_uppercase();
        let (x, y) = tokio::join!(a.create_tenant(&domain, "A"), b.create_tenant(&upper, "B"));
        assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
        let loser = if x.is_ok() { y } else { x };
        assert!(matches!(loser, Err(StoreError::Conflict(_))), "{loser:?}");
    }
    assert_eq!(a.list_tenants().await.unwrap().len(), 5);
}
