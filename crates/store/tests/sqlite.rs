//! The MetaStore contract suite on the SQLite backend (a file in a fresh
//! temporary directory per test), plus SQLite-specific checks.

use std::sync::Arc;

use async_trait::async_trait;
use store::testsuite::Harness;
use store::{MetaStore, SqliteMetaStore};

struct SqliteHarness {
    dir: tempfile::TempDir,
    store: Option<Arc<dyn MetaStore>>,
}

impl SqliteHarness {
    fn new() -> Self {
        SqliteHarness {
            dir: tempfile::tempdir().expect("tempdir"),
            store: None,
        }
    }

    async fn open(&self) -> Arc<dyn MetaStore> {
        Arc::new(
            SqliteMetaStore::open(self.dir.path().join("meta.db"))
                .await
                .expect("open"),
        )
    }
}

#[async_trait]
impl Harness for SqliteHarness {
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

store::metastore_tests!(SqliteHarness::new());

/// The same suite on the in-memory database (no reopen).
mod in_memory {
    use super::*;

    struct MemoryHarness(Option<Arc<dyn MetaStore>>);

    #[async_trait]
    impl Harness for MemoryHarness {
        async fn store(&mut self) -> Arc<dyn MetaStore> {
            if self.0.is_none() {
                self.0 = Some(Arc::new(
                    SqliteMetaStore::open_in_memory().await.expect("open"),
                ));
            }
            self.0.clone().expect("opened")
        }

        async fn reopen(&mut self) -> Option<Arc<dyn MetaStore>> {
            None
        }
    }

    store::metastore_tests!(MemoryHarness(None));
}

#[tokio::test]
async fn schema_is_versioned_and_reopen_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("meta.db");
    let s = SqliteMetaStore::open(&path).await.unwrap();
    s.put_setting_if_absent("a", "b").await.unwrap();
    drop(s);
    let s = SqliteMetaStore::open(&path).await.unwrap();
    assert_eq!(s.get_setting("a").await.unwrap().as_deref(), Some("b"));
    assert_eq!(s.path(), Some(path.as_path()));
    drop(s);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_version ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        versions,
        vec![1, 2, 3],
        "each migration (base schema, identity directory, inline content) ran once"
    );
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    drop(SqliteMetaStore::open(&path).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_version (version, applied) VALUES (99, 0)",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteMetaStore::open(&path).await.unwrap_err();
    assert!(
        matches!(err, store::StoreError::Backend(ref m) if m.contains("99")),
        "{err}"
    );
}
