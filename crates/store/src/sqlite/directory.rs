//! [`DirectoryStore`] on the SQLite metadata database (same file, same
//! writer, tables added by the `DIRECTORY_V1` migration).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, Transaction, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{SqliteMetaStore, from_ticks, ticks};
use crate::directory::{
    App, AppCertificate, AppSecret, AuthRecord, ConsentGrant, DirectoryStore, NewApp, Permission,
    PermissionKind, UserCredential,
};
use crate::domain::{Result, StoreError};

/// The directory tables (a migration appended to `schema::MIGRATIONS`).
pub(crate) const DIRECTORY_V1: &str = r#"
CREATE TABLE dir_apps (
    client_id     TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    display_name  TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    public_client INTEGER NOT NULL,
    created       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX dir_apps_tenant ON dir_apps(tenant_id, created);

CREATE TABLE dir_secrets (
    id        TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES dir_apps(client_id) ON DELETE CASCADE,
    hint      TEXT NOT NULL,
    hash      TEXT NOT NULL,
    expires   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX dir_secrets_app ON dir_secrets(client_id);

CREATE TABLE dir_certs (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES dir_apps(client_id) ON DELETE CASCADE,
    sha1       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    public_key TEXT NOT NULL,
    expires    INTEGER NOT NULL,
    UNIQUE (client_id, sha256)
) WITHOUT ROWID;

CREATE TABLE dir_permissions (
    client_id TEXT NOT NULL REFERENCES dir_apps(client_id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (client_id, kind, value)
) WITHOUT ROWID;

CREATE TABLE dir_grants (
    client_id TEXT NOT NULL REFERENCES dir_apps(client_id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    value     TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    PRIMARY KEY (client_id, kind, value, user_id)
) WITHOUT ROWID;

CREATE TABLE dir_user_credentials (
    user_id       TEXT PRIMARY KEY REFERENCES users(id),
    password_hash TEXT,
    is_admin      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE dir_records (
    kind      TEXT NOT NULL,
    key       TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES dir_apps(client_id) ON DELETE CASCADE,
    data      TEXT NOT NULL,
    expires   INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX dir_records_expires ON dir_records(expires);
"#;

/// `user_id` column value for "all users" (admin consent).
const ALL_USERS: &str = "*";

fn uuid_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    let s: String = row.get(i)?;
    Uuid::parse_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn time_at(row: &Row<'_>, i: usize) -> rusqlite::Result<OffsetDateTime> {
    let t: i64 = row.get(i)?;
    from_ticks(t).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Integer, Box::new(e))
    })
}

fn kind_at(row: &Row<'_>, i: usize) -> rusqlite::Result<PermissionKind> {
    let s: String = row.get(i)?;
    PermissionKind::from_code(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown permission kind {s:?}").into(),
        )
    })
}

fn key(id: Uuid) -> String {
    id.as_hyphenated().to_string()
}

fn require_app(tx: &Transaction<'_>, client_id: Uuid) -> Result<()> {
    let found: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM dir_apps WHERE client_id = ?1",
            [key(client_id)],
            |r| r.get(0),
        )
        .optional()?;
    found.map(|_| ()).ok_or_else(|| StoreError::NotFound {
        what: "application",
        id: key(client_id),
    })
}

fn require_user(tx: &Transaction<'_>, user_id: Uuid) -> Result<()> {
    let found: Option<i64> = tx
        .query_row("SELECT 1 FROM users WHERE id = ?1", [key(user_id)], |r| {
            r.get(0)
        })
        .optional()?;
    found.map(|_| ()).ok_or_else(|| StoreError::NotFound {
        what: "user",
        id: key(user_id),
    })
}

fn row_app(row: &Row<'_>) -> rusqlite::Result<App> {
    let uris: String = row.get(3)?;
    Ok(App {
        client_id: uuid_at(row, 0)?,
        tenant_id: uuid_at(row, 1)?,
        display_name: row.get(2)?,
        redirect_uris: serde_json::from_str(&uris).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
        })?,
        public_client: row.get::<_, i64>(4)? != 0,
        created: time_at(row, 5)?,
    })
}

const APP_COLS: &str = "client_id, tenant_id, display_name, redirect_uris, public_client, created";

fn get_app(tx: &Transaction<'_>, client_id: Uuid) -> Result<App> {
    tx.query_row(
        &format!("SELECT {APP_COLS} FROM dir_apps WHERE client_id = ?1"),
        [key(client_id)],
        row_app,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound {
        what: "application",
        id: key(client_id),
    })
}

fn now_ticks() -> i64 {
    ticks(OffsetDateTime::now_utc())
}

fn row_record(row: &Row<'_>) -> rusqlite::Result<AuthRecord> {
    Ok(AuthRecord {
        kind: row.get(0)?,
        key: row.get(1)?,
        client_id: uuid_at(row, 2)?,
        data: row.get(3)?,
        expires: time_at(row, 4)?,
    })
}

fn get_record(tx: &Transaction<'_>, kind: &str, k: &str) -> Result<Option<AuthRecord>> {
    Ok(tx
        .query_row(
            "SELECT kind, key, client_id, data, expires FROM dir_records
             WHERE kind = ?1 AND key = ?2 AND expires > ?3",
            params![kind, k, now_ticks()],
            row_record,
        )
        .optional()?)
}

#[async_trait]
impl DirectoryStore for SqliteMetaStore {
    async fn create_app(&self, app: NewApp) -> Result<App> {
        if app.display_name.trim().is_empty() {
            return Err(StoreError::Invalid(
                "an application needs a non-empty display name".into(),
            ));
        }
        self.write(move |tx| {
            let found: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM tenants WHERE id = ?1",
                    [key(app.tenant_id)],
                    |r| r.get(0),
                )
                .optional()?;
            if found.is_none() {
                return Err(StoreError::NotFound {
                    what: "tenant",
                    id: key(app.tenant_id),
                });
            }
            let client_id = Uuid::new_v4();
            let created = from_ticks(now_ticks())?;
            let uris = serde_json::to_string(&app.redirect_uris)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            tx.execute(
                "INSERT INTO dir_apps (client_id, tenant_id, display_name, redirect_uris, public_client, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    key(client_id),
                    key(app.tenant_id),
                    app.display_name,
                    uris,
                    app.public_client as i64,
                    ticks(created)
                ],
            )?;
            get_app(tx, client_id)
        })
        .await
    }

    async fn get_app(&self, client_id: Uuid) -> Result<App> {
        self.read(move |tx| get_app(tx, client_id)).await
    }

    async fn list_apps(&self, tenant_id: Uuid) -> Result<Vec<App>> {
        self.read(move |tx| {
            let mut st = tx.prepare(&format!(
                "SELECT {APP_COLS} FROM dir_apps WHERE tenant_id = ?1 ORDER BY created, client_id"
            ))?;
            let rows = st.query_map([key(tenant_id)], row_app)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_app(&self, client_id: Uuid) -> Result<()> {
        self.write(move |tx| {
            require_app(tx, client_id)?;
            tx.execute(
                "DELETE FROM dir_apps WHERE client_id = ?1",
                [key(client_id)],
            )?;
            Ok(())
        })
        .await
    }

    async fn add_secret(&self, s: AppSecret) -> Result<()> {
        self.write(move |tx| {
            require_app(tx, s.client_id)?;
            tx.execute(
                "INSERT INTO dir_secrets (id, client_id, hint, hash, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key(s.id), key(s.client_id), s.hint, s.hash, ticks(s.expires)],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove_secret(&self, client_id: Uuid, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            let n = tx.execute(
                "DELETE FROM dir_secrets WHERE client_id = ?1 AND id = ?2",
                [key(client_id), key(id)],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: "client secret",
                    id: key(id),
                });
            }
            Ok(())
        })
        .await
    }

    async fn list_secrets(&self, client_id: Uuid) -> Result<Vec<AppSecret>> {
        self.read(move |tx| {
            require_app(tx, client_id)?;
            let mut st = tx.prepare(
                "SELECT id, client_id, hint, hash, expires FROM dir_secrets WHERE client_id = ?1 ORDER BY expires, id",
            )?;
            let rows = st.query_map([key(client_id)], |r| {
                Ok(AppSecret {
                    id: uuid_at(r, 0)?,
                    client_id: uuid_at(r, 1)?,
                    hint: r.get(2)?,
                    hash: r.get(3)?,
                    expires: time_at(r, 4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn add_certificate(&self, c: AppCertificate) -> Result<()> {
        self.write(move |tx| {
            require_app(tx, c.client_id)?;
            let dup: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM dir_certs WHERE client_id = ?1 AND sha256 = ?2",
                    params![key(c.client_id), c.thumbprint_sha256],
                    |r| r.get(0),
                )
                .optional()?;
            if dup.is_some() {
                return Err(StoreError::Conflict(format!(
                    "the application already has the certificate {}",
                    c.thumbprint_sha1
                )));
            }
            tx.execute(
                "INSERT INTO dir_certs (id, client_id, sha1, sha256, public_key, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    key(c.id),
                    key(c.client_id),
                    c.thumbprint_sha1,
                    c.thumbprint_sha256,
                    c.public_key_pem,
                    ticks(c.expires)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove_certificate(&self, client_id: Uuid, id: Uuid) -> Result<()> {
        self.write(move |tx| {
            let n = tx.execute(
                "DELETE FROM dir_certs WHERE client_id = ?1 AND id = ?2",
                [key(client_id), key(id)],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: "certificate",
                    id: key(id),
                });
            }
            Ok(())
        })
        .await
    }

    async fn list_certificates(&self, client_id: Uuid) -> Result<Vec<AppCertificate>> {
        self.read(move |tx| {
            require_app(tx, client_id)?;
            let mut st = tx.prepare(
                "SELECT id, client_id, sha1, sha256, public_key, expires FROM dir_certs WHERE client_id = ?1 ORDER BY expires, id",
            )?;
            let rows = st.query_map([key(client_id)], |r| {
                Ok(AppCertificate {
                    id: uuid_at(r, 0)?,
                    client_id: uuid_at(r, 1)?,
                    thumbprint_sha1: r.get(2)?,
                    thumbprint_sha256: r.get(3)?,
                    public_key_pem: r.get(4)?,
                    expires: time_at(r, 5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn add_permission(&self, client_id: Uuid, p: Permission) -> Result<()> {
        self.write(move |tx| {
            require_app(tx, client_id)?;
            tx.execute(
                "INSERT OR IGNORE INTO dir_permissions (client_id, kind, value) VALUES (?1, ?2, ?3)",
                params![key(client_id), p.kind.code(), p.value],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove_permission(&self, client_id: Uuid, p: Permission) -> Result<()> {
        self.write(move |tx| {
            require_app(tx, client_id)?;
            let n = tx.execute(
                "DELETE FROM dir_permissions WHERE client_id = ?1 AND kind = ?2 AND value = ?3",
                params![key(client_id), p.kind.code(), p.value],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: "requested permission",
                    id: p.value,
                });
            }
            tx.execute(
                "DELETE FROM dir_grants WHERE client_id = ?1 AND kind = ?2 AND value = ?3",
                params![key(client_id), p.kind.code(), p.value],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_permissions(&self, client_id: Uuid) -> Result<Vec<Permission>> {
        self.read(move |tx| {
            require_app(tx, client_id)?;
            let mut st = tx.prepare(
                "SELECT kind, value FROM dir_permissions WHERE client_id = ?1 ORDER BY kind, value",
            )?;
            let rows = st.query_map([key(client_id)], |r| {
                Ok(Permission {
                    kind: kind_at(r, 0)?,
                    value: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn grant(&self, g: ConsentGrant) -> Result<()> {
        self.write(move |tx| {
            require_app(tx, g.client_id)?;
            if let Some(u) = g.user_id {
                require_user(tx, u)?;
            }
            let user = g.user_id.map(key).unwrap_or_else(|| ALL_USERS.to_owned());
            tx.execute(
                "INSERT OR IGNORE INTO dir_grants (client_id, kind, value, user_id) VALUES (?1, ?2, ?3, ?4)",
                params![key(g.client_id), g.kind.code(), g.value, user],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke(&self, g: ConsentGrant) -> Result<bool> {
        self.write(move |tx| {
            require_app(tx, g.client_id)?;
            let user = g.user_id.map(key).unwrap_or_else(|| ALL_USERS.to_owned());
            let n = tx.execute(
                "DELETE FROM dir_grants WHERE client_id = ?1 AND kind = ?2 AND value = ?3 AND user_id = ?4",
                params![key(g.client_id), g.kind.code(), g.value, user],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_grants(&self, client_id: Uuid) -> Result<Vec<ConsentGrant>> {
        self.read(move |tx| {
            require_app(tx, client_id)?;
            let mut st = tx.prepare(
                "SELECT client_id, kind, value, user_id FROM dir_grants WHERE client_id = ?1 ORDER BY kind, value, user_id",
            )?;
            let rows = st.query_map([key(client_id)], |r| {
                let user: String = r.get(3)?;
                let user_id = if user == ALL_USERS {
                    None
                } else {
                    Some(uuid_at(r, 3)?)
                };
                Ok(ConsentGrant {
                    client_id: uuid_at(r, 0)?,
                    kind: kind_at(r, 1)?,
                    value: r.get(2)?,
                    user_id,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn set_password_hash(&self, user_id: Uuid, hash: &str) -> Result<()> {
        let hash = hash.to_owned();
        self.write(move |tx| {
            require_user(tx, user_id)?;
            tx.execute(
                "INSERT INTO dir_user_credentials (user_id, password_hash) VALUES (?1, ?2)
                 ON CONFLICT(user_id) DO UPDATE SET password_hash = excluded.password_hash",
                params![key(user_id), hash],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_admin(&self, user_id: Uuid, admin: bool) -> Result<()> {
        self.write(move |tx| {
            require_user(tx, user_id)?;
            tx.execute(
                "INSERT INTO dir_user_credentials (user_id, is_admin) VALUES (?1, ?2)
                 ON CONFLICT(user_id) DO UPDATE SET is_admin = excluded.is_admin",
                params![key(user_id), admin as i64],
            )?;
            Ok(())
        })
        .await
    }

    async fn user_credential(&self, user_id: Uuid) -> Result<UserCredential> {
        self.read(move |tx| {
            require_user(tx, user_id)?;
            let row = tx
                .query_row(
                    "SELECT password_hash, is_admin FROM dir_user_credentials WHERE user_id = ?1",
                    [key(user_id)],
                    |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?)),
                )
                .optional()?;
            let (password_hash, admin) = row.unwrap_or((None, 0));
            Ok(UserCredential {
                user_id,
                password_hash,
                is_admin: admin != 0,
            })
        })
        .await
    }

    async fn put_record(&self, r: AuthRecord) -> Result<()> {
        self.write(move |tx| {
            require_app(tx, r.client_id)?;
            tx.execute(
                "DELETE FROM dir_records WHERE expires <= ?1",
                [now_ticks()],
            )?;
            if get_record(tx, &r.kind, &r.key)?.is_some() {
                return Err(StoreError::Conflict(format!("{} record exists", r.kind)));
            }
            tx.execute(
                "INSERT INTO dir_records (kind, key, client_id, data, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.kind, r.key, key(r.client_id), r.data, ticks(r.expires)],
            )?;
            Ok(())
        })
        .await
    }

    async fn take_record(&self, kind: &str, k: &str) -> Result<Option<AuthRecord>> {
        let (kind, k) = (kind.to_owned(), k.to_owned());
        self.write(move |tx| {
            let r = get_record(tx, &kind, &k)?;
            tx.execute(
                "DELETE FROM dir_records WHERE kind = ?1 AND key = ?2",
                params![kind, k],
            )?;
            Ok(r)
        })
        .await
    }

    async fn get_record(&self, kind: &str, k: &str) -> Result<Option<AuthRecord>> {
        let (kind, k) = (kind.to_owned(), k.to_owned());
        self.read(move |tx| get_record(tx, &kind, &k)).await
    }

    async fn update_record(&self, kind: &str, k: &str, data: &str) -> Result<()> {
        let (kind, k, data) = (kind.to_owned(), k.to_owned(), data.to_owned());
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE dir_records SET data = ?3 WHERE kind = ?1 AND key = ?2 AND expires > ?4",
                params![kind, k, data, now_ticks()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: "authorization record",
                    id: kind,
                });
            }
            Ok(())
        })
        .await
    }
}
