//! DirectoryStore contract tests, run on the SQLite engine (in memory and on
//! a file shared by two store handles, as two instances share it) and on the
//! PostgreSQL engine (a fresh database per test, shared by two store handles).
//!
//! The PostgreSQL tests need `GRAPHBOX_TEST_POSTGRES_URL` (a role allowed to
//! `CREATE DATABASE`) and FAIL without it, like `tests/postgres.rs`.

use std::sync::Arc;

use store::directory::{
    AppCertificate, AppSecret, AuthRecord, ConsentGrant, NewApp, Permission, PermissionKind,
};
use store::{DirectoryStore, MetaStore, SqliteMetaStore, StoreError};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

async fn contract(meta: &dyn MetaStore, dir: &dyn DirectoryStore, other: &dyn DirectoryStore) {
    let t = meta.create_tenant("contoso.test", "Contoso").await.unwrap();
    let u = meta
        .create_user(t.id, "megan@contoso.test", "Megan")
        .await
        .unwrap();

    // Apps.
    let bad = dir
        .create_app(NewApp {
            tenant_id: Uuid::new_v4(),
            display_name: "x".into(),
            redirect_uris: vec![],
            public_client: false,
        })
        .await;
    assert!(matches!(
        bad,
        Err(StoreError::NotFound { what: "tenant", .. })
    ));
    let empty = dir
        .create_app(NewApp {
            tenant_id: t.id,
            display_name: " ".into(),
            redirect_uris: vec![],
            public_client: false,
        })
        .await;
    assert!(matches!(empty, Err(StoreError::Invalid(_))));
    let a = dir
        .create_app(NewApp {
            tenant_id: t.id,
            display_name: "Exporter".into(),
            redirect_uris: vec!["http://localhost:8400".into()],
            public_client: true,
        })
        .await
        .unwrap();
    assert_eq!(other.get_app(a.client_id).await.unwrap(), a);
    assert_eq!(dir.list_apps(t.id).await.unwrap(), vec![a.clone()]);
    assert!(matches!(
        dir.get_app(Uuid::new_v4()).await,
        Err(StoreError::NotFound { .. })
    ));

    // Secrets.
    let s = AppSecret {
        id: Uuid::new_v4(),
        client_id: a.client_id,
        hint: "abc".into(),
        hash: "sha256:00".into(),
        expires: OffsetDateTime::now_utc() + Duration::days(1),
    };
    dir.add_secret(s.clone()).await.unwrap();
    let listed = other.list_secrets(a.client_id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].hash, s.hash);
    assert!(matches!(
        dir.remove_secret(a.client_id, Uuid::new_v4()).await,
        Err(StoreError::NotFound { .. })
    ));
    dir.remove_secret(a.client_id, s.id).await.unwrap();
    assert!(dir.list_secrets(a.client_id).await.unwrap().is_empty());

    // Certificates: one per thumbprint.
    let c = AppCertificate {
        id: Uuid::new_v4(),
        client_id: a.client_id,
        thumbprint_sha1: "AA".into(),
        thumbprint_sha256: "BB".into(),
        public_key_pem: "pem".into(),
        expires: OffsetDateTime::now_utc() + Duration::days(1),
    };
    dir.add_certificate(c.clone()).await.unwrap();
    let dup = AppCertificate {
        id: Uuid::new_v4(),
        ..c.clone()
    };
    assert!(matches!(
        dir.add_certificate(dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(other.list_certificates(a.client_id).await.unwrap().len(), 1);

    // Permissions and grants; removing a permission removes its grants.
    let p = Permission {
        kind: PermissionKind::Application,
        value: "MailboxItem.Read.All".into(),
    };
    dir.add_permission(a.client_id, p.clone()).await.unwrap();
    dir.add_permission(a.client_id, p.clone()).await.unwrap();
    assert_eq!(
        dir.list_permissions(a.client_id).await.unwrap(),
        vec![p.clone()]
    );
    let g = ConsentGrant {
        client_id: a.client_id,
        kind: p.kind,
        value: p.value.clone(),
        user_id: None,
    };
    dir.grant(g.clone()).await.unwrap();
    let ug = ConsentGrant {
        kind: PermissionKind::Delegated,
        value: "MailboxItem.Read".into(),
        user_id: Some(u.id),
        ..g.clone()
    };
    dir.grant(ug.clone()).await.unwrap();
    let bad_user = ConsentGrant {
        user_id: Some(Uuid::new_v4()),
        ..ug.clone()
    };
    assert!(matches!(
        dir.grant(bad_user).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(other.list_grants(a.client_id).await.unwrap().len(), 2);
    assert!(dir.revoke(ug.clone()).await.unwrap());
    assert!(!dir.revoke(ug).await.unwrap());
    dir.remove_permission(a.client_id, p.clone()).await.unwrap();
    assert!(other.list_grants(a.client_id).await.unwrap().is_empty());
    assert!(matches!(
        dir.remove_permission(a.client_id, p).await,
        Err(StoreError::NotFound { .. })
    ));

    // User credentials.
    let none = dir.user_credential(u.id).await.unwrap();
    assert_eq!((none.password_hash, none.is_admin), (None, false));
    dir.set_admin(u.id, true).await.unwrap();
    dir.set_password_hash(u.id, "$argon2id$x").await.unwrap();
    let cred = other.user_credential(u.id).await.unwrap();
    assert_eq!(cred.password_hash.as_deref(), Some("$argon2id$x"));
    assert!(cred.is_admin);
    assert!(matches!(
        dir.set_admin(Uuid::new_v4(), true).await,
        Err(StoreError::NotFound { .. })
    ));

    // Records: one-time take, expiry, conflict.
    let r = AuthRecord {
        key: "k1".into(),
        kind: "code".into(),
        client_id: a.client_id,
        data: "{}".into(),
        expires: OffsetDateTime::now_utc() + Duration::minutes(5),
    };
    dir.put_record(r.clone()).await.unwrap();
    assert!(matches!(
        dir.put_record(r.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    other
        .update_record("code", "k1", "{\"a\":1}")
        .await
        .unwrap();
    assert_eq!(
        dir.get_record("code", "k1").await.unwrap().unwrap().data,
        "{\"a\":1}"
    );
    assert!(other.take_record("code", "k1").await.unwrap().is_some());
    assert!(dir.take_record("code", "k1").await.unwrap().is_none());
    let expired = AuthRecord {
        key: "k2".into(),
        expires: OffsetDateTime::now_utc() - Duration::seconds(1),
        ..r
    };
    dir.put_record(expired).await.unwrap();
    assert!(dir.get_record("code", "k2").await.unwrap().is_none());

    // Deleting the app deletes everything it owns.
    dir.delete_app(a.client_id).await.unwrap();
    assert!(matches!(
        other.list_certificates(a.client_id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        dir.delete_app(a.client_id).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn sqlite_in_memory_directory_contract() {
    let s = SqliteMetaStore::open_in_memory().await.unwrap();
    contract(&s, &s, &s).await;
}

#[tokio::test]
async fn sqlite_file_directory_contract_shared_by_two_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.sqlite");
    let a = Arc::new(SqliteMetaStore::open(&path).await.unwrap());
    let b = SqliteMetaStore::open(&path).await.unwrap();
    contract(a.as_ref(), a.as_ref(), &b).await;
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use store::PgMetaStore;

    fn server_url() -> String {
        match std::env::var("GRAPHBOX_TEST_POSTGRES_URL") {
            Ok(u) if !u.trim().is_empty() => u,
            _ => panic!(
                "GRAPHBOX_TEST_POSTGRES_URL is not set: the PostgreSQL directory tests need a \
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
    async fn postgres_directory_contract_shared_by_two_handles() {
        let url = fresh_database().await;
        let a = PgMetaStore::open(&url).await.unwrap();
        let b = PgMetaStore::open(&url).await.unwrap();
        contract(&a, &a, &b).await;
        // The directory tables came with a versioned migration.
        assert!(a.schema_version().await.unwrap() >= 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_take_record_is_one_time_across_instances() {
        let url = fresh_database().await;
        let a = Arc::new(PgMetaStore::open(&url).await.unwrap());
        let b = Arc::new(PgMetaStore::open(&url).await.unwrap());
        let t = a.create_tenant("fabrikam.test", "Fabrikam").await.unwrap();
        let app = a
            .create_app(NewApp {
                tenant_id: t.id,
                display_name: "Sync".into(),
                redirect_uris: vec![],
                public_client: true,
            })
            .await
            .unwrap();
        for i in 0..20 {
            let r = AuthRecord {
                key: format!("code-{i}"),
                kind: "code".into(),
                client_id: app.client_id,
                data: "{}".into(),
                expires: OffsetDateTime::now_utc() + Duration::minutes(5),
            };
            a.put_record(r).await.unwrap();
            let k = format!("code-{i}");
            let (x, y) = tokio::join!(a.take_record("code", &k), b.take_record("code", &k));
            let got = [x.unwrap(), y.unwrap()];
            assert_eq!(
                got.iter().filter(|r| r.is_some()).count(),
                1,
                "exactly one instance redeems record {i}"
            );
        }
    }
}
