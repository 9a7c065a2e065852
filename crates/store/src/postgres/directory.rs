//! [`DirectoryStore`] on the PostgreSQL metadata database: the same pool and
//! database as [`PgMetaStore`], tables added by the `DIRECTORY_V1` migration
//! of [`super::schema`]. Behaviour matches the SQLite engine exactly (same
//! errors, same orders, `*` as the "all users" grantee).

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use std::time::Duration;

use super::ops::{Tx, exec, opt, rows};
use super::{MAX_RETRIES, PgMetaStore, is_retryable};
use crate::directory::{
    App, AppCertificate, AppSecret, AuthRecord, ConsentGrant, DirectoryStore, NewApp, Permission,
    PermissionKind, UserCredential,
};
use crate::domain::{Result, StoreError, truncate_to_tick};
use crate::sqlite::{from_ticks, ticks};

/// The directory tables (appended to `schema::MIGRATIONS`).
pub(crate) const DIRECTORY_V1: &str = r#"
CREATE TABLE dir_apps (
    client_id     TEXT COLLATE "C" PRIMARY KEY,
    tenant_id     TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    display_name  TEXT COLLATE "C" NOT NULL,
    redirect_uris TEXT NOT NULL,
    public_client BOOLEAN NOT NULL,
    created       BIGINT NOT NULL
);
CREATE INDEX dir_apps_tenant ON dir_apps(tenant_id, created);

CREATE TABLE dir_secrets (
    id        TEXT COLLATE "C" PRIMARY KEY,
    client_id TEXT COLLATE "C" NOT NULL REFERENCES dir_apps(client_id) ON DELETE CASCADE,
    hint      TEXT NOT NULL,
    hash      TEXT NOT NULL,
    expires   BIGINT NOT NULL
);
CREATE INDEX dir_secrets_app ON dir_secrets(client_id);

CREATE TABLE dir_certs (
    id         TEXT COLLATE "C" PRIMARY KEY,
    client_id  TEXT COLLATE "C" NOT NULL REFERENCES dir_apps(client_id) ON DELETE CASCADE,
    sha1       TEXT COLLATE "C" NOT NULL,
    sha256     TEXT COLLATE "C" NOT NULL,
    public_key TEXT NOT NULL,
    expires    BIGINT NOT NULL,
    UNIQUE (client_id, sha256)
);

CREATE TABLE dir_permissions (
    client_id TEXT COLLATE "C" NOT NULL REFERENCES dir_apps(client_id) ON DELETE CASCADE,
    kind      TEXT COLLATE "C" NOT NULL,
    value     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (client_id, kind, value)
);

CREATE TABLE dir_grants (
    client_id TEXT COLLATE "C" NOT NULL REFERENCES dir_apps(client_id) ON DELETE CASCADE,
    kind      TEXT COLLATE "C" NOT NULL,
    value     TEXT COLLATE "C" NOT NULL,
    user_id   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (client_id, kind, value, user_id)
);

CREATE TABLE dir_user_credentials (
    user_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES users(id),
    password_hash TEXT,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE dir_records (
    kind      TEXT COLLATE "C" NOT NULL,
    key       TEXT COLLATE "C" NOT NULL,
    client_id TEXT COLLATE "C" NOT NULL REFERENCES dir_apps(client_id) ON DELETE CASCADE,
    data      TEXT NOT NULL,
    expires   BIGINT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX dir_records_expires ON dir_records(expires);
"#;

/// `user_id` column value for "all users" (admin consent).
const ALL_USERS: &str = "*";

const APP_COLS: &str = "client_id, tenant_id, display_name, redirect_uris, public_client, created";

fn key(id: Uuid) -> String {
    id.as_hyphenated().to_string()
}

fn uuid_at(row: &Row, i: usize) -> Result<Uuid> {
    let s: String = row.try_get(i)?;
    Uuid::parse_str(&s)
        .map_err(|e| StoreError::Backend(format!("stored directory id '{s}' is corrupt: {e}")))
}

fn time_at(row: &Row, i: usize) -> Result<OffsetDateTime> {
    from_ticks(row.try_get(i)?)
}

fn kind_at(row: &Row, i: usize) -> Result<PermissionKind> {
    let s: String = row.try_get(i)?;
    PermissionKind::from_code(&s)
        .ok_or_else(|| StoreError::Backend(format!("unknown stored permission kind {s:?}")))
}

fn now_ticks() -> i64 {
    ticks(OffsetDateTime::now_utc())
}

fn row_app(row: &Row) -> Result<App> {
    let uris: String = row.try_get(3)?;
    Ok(App {
        client_id: uuid_at(row, 0)?,
        tenant_id: uuid_at(row, 1)?,
        display_name: row.try_get(2)?,
        redirect_uris: serde_json::from_str(&uris)
            .map_err(|e| StoreError::Backend(format!("stored redirect URIs are corrupt: {e}")))?,
        public_client: row.try_get(4)?,
        created: time_at(row, 5)?,
    })
}

fn row_record(row: &Row) -> Result<AuthRecord> {
    Ok(AuthRecord {
        kind: row.try_get(0)?,
        key: row.try_get(1)?,
        client_id: uuid_at(row, 2)?,
        data: row.try_get(3)?,
        expires: time_at(row, 4)?,
    })
}

async fn require_app(tx: &Tx<'_>, client_id: Uuid) -> Result<()> {
    let k = key(client_id);
    match opt(tx, "SELECT 1 FROM dir_apps WHERE client_id = $1", &[&k]).await? {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound {
            what: "application",
            id: k,
        }),
    }
}

async fn require_user(tx: &Tx<'_>, user_id: Uuid) -> Result<()> {
    let k = key(user_id);
    match opt(tx, "SELECT 1 FROM users WHERE id = $1", &[&k]).await? {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound {
            what: "user",
            id: k,
        }),
    }
}

async fn get_app(tx: &Tx<'_>, client_id: Uuid) -> Result<App> {
    let k = key(client_id);
    match opt(
        tx,
        &format!("SELECT {APP_COLS} FROM dir_apps WHERE client_id = $1"),
        &[&k],
    )
    .await?
    {
        Some(r) => row_app(&r),
        None => Err(StoreError::NotFound {
            what: "application",
            id: k,
        }),
    }
}

async fn get_record(tx: &Tx<'_>, kind: &str, k: &str) -> Result<Option<AuthRecord>> {
    let now = now_ticks();
    match opt(
        tx,
        "SELECT kind, key, client_id, data, expires FROM dir_records
         WHERE kind = $1 AND key = $2 AND expires > $3",
        &[&kind, &k, &now],
    )
    .await?
    {
        Some(r) => Ok(Some(row_record(&r)?)),
        None => Ok(None),
    }
}

async fn create_app(tx: &Tx<'_>, app: &NewApp) -> Result<App> {
    let tenant = key(app.tenant_id);
    if opt(tx, "SELECT 1 FROM tenants WHERE id = $1", &[&tenant])
        .await?
        .is_none()
    {
        return Err(StoreError::NotFound {
            what: "tenant",
            id: tenant,
        });
    }
    let client_id = Uuid::new_v4();
    let created = ticks(truncate_to_tick(OffsetDateTime::now_utc()));
    let uris = serde_json::to_string(&app.redirect_uris)
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    exec(
        tx,
        "INSERT INTO dir_apps (client_id, tenant_id, display_name, redirect_uris, public_client, created)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &key(client_id),
            &tenant,
            &app.display_name,
            &uris,
            &app.public_client,
            &created,
        ],
    )
    .await?;
    get_app(tx, client_id).await
}

async fn delete_app(tx: &Tx<'_>, client_id: Uuid) -> Result<()> {
    require_app(tx, client_id).await?;
    exec(
        tx,
        "DELETE FROM dir_apps WHERE client_id = $1",
        &[&key(client_id)],
    )
    .await?;
    Ok(())
}

async fn add_secret(tx: &Tx<'_>, s: &AppSecret) -> Result<()> {
    require_app(tx, s.client_id).await?;
    exec(
        tx,
        "INSERT INTO dir_secrets (id, client_id, hint, hash, expires) VALUES ($1, $2, $3, $4, $5)",
        &[
            &key(s.id),
            &key(s.client_id),
            &s.hint,
            &s.hash,
            &ticks(s.expires),
        ],
    )
    .await?;
    Ok(())
}

async fn remove_owned(
    tx: &Tx<'_>,
    table: &str,
    what: &'static str,
    client_id: Uuid,
    id: Uuid,
) -> Result<()> {
    let n = exec(
        tx,
        &format!("DELETE FROM {table} WHERE client_id = $1 AND id = $2"),
        &[&key(client_id), &key(id)],
    )
    .await?;
    if n == 0 {
        return Err(StoreError::NotFound { what, id: key(id) });
    }
    Ok(())
}

async fn list_secrets(tx: &Tx<'_>, client_id: Uuid) -> Result<Vec<AppSecret>> {
    require_app(tx, client_id).await?;
    rows(
        tx,
        "SELECT id, client_id, hint, hash, expires FROM dir_secrets WHERE client_id = $1 ORDER BY expires, id",
        &[&key(client_id)],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(AppSecret {
            id: uuid_at(r, 0)?,
            client_id: uuid_at(r, 1)?,
            hint: r.try_get(2)?,
            hash: r.try_get(3)?,
            expires: time_at(r, 4)?,
        })
    })
    .collect()
}

async fn add_certificate(tx: &Tx<'_>, c: &AppCertificate) -> Result<()> {
    require_app(tx, c.client_id).await?;
    let dup = opt(
        tx,
        "SELECT 1 FROM dir_certs WHERE client_id = $1 AND sha256 = $2",
        &[&key(c.client_id), &c.thumbprint_sha256],
    )
    .await?;
    if dup.is_some() {
        return Err(StoreError::Conflict(format!(
            "the application already has the certificate {}",
            c.thumbprint_sha1
        )));
    }
    exec(
        tx,
        "INSERT INTO dir_certs (id, client_id, sha1, sha256, public_key, expires) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &key(c.id),
            &key(c.client_id),
            &c.thumbprint_sha1,
            &c.thumbprint_sha256,
            &c.public_key_pem,
            &ticks(c.expires),
        ],
    )
    .await?;
    Ok(())
}

async fn list_certificates(tx: &Tx<'_>, client_id: Uuid) -> Result<Vec<AppCertificate>> {
    require_app(tx, client_id).await?;
    rows(
        tx,
        "SELECT id, client_id, sha1, sha256, public_key, expires FROM dir_certs WHERE client_id = $1 ORDER BY expires, id",
        &[&key(client_id)],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(AppCertificate {
            id: uuid_at(r, 0)?,
            client_id: uuid_at(r, 1)?,
            thumbprint_sha1: r.try_get(2)?,
            thumbprint_sha256: r.try_get(3)?,
            public_key_pem: r.try_get(4)?,
            expires: time_at(r, 5)?,
        })
    })
    .collect()
}

async fn add_permission(tx: &Tx<'_>, client_id: Uuid, p: &Permission) -> Result<()> {
    require_app(tx, client_id).await?;
    exec(
        tx,
        "INSERT INTO dir_permissions (client_id, kind, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[&key(client_id), &p.kind.code(), &p.value],
    )
    .await?;
    Ok(())
}

async fn remove_permission(tx: &Tx<'_>, client_id: Uuid, p: &Permission) -> Result<()> {
    require_app(tx, client_id).await?;
    let n = exec(
        tx,
        "DELETE FROM dir_permissions WHERE client_id = $1 AND kind = $2 AND value = $3",
        &[&key(client_id), &p.kind.code(), &p.value],
    )
    .await?;
    if n == 0 {
        return Err(StoreError::NotFound {
            what: "requested permission",
            id: p.value.clone(),
        });
    }
    exec(
        tx,
        "DELETE FROM dir_grants WHERE client_id = $1 AND kind = $2 AND value = $3",
        &[&key(client_id), &p.kind.code(), &p.value],
    )
    .await?;
    Ok(())
}

async fn list_permissions(tx: &Tx<'_>, client_id: Uuid) -> Result<Vec<Permission>> {
    require_app(tx, client_id).await?;
    rows(
        tx,
        "SELECT kind, value FROM dir_permissions WHERE client_id = $1 ORDER BY kind, value",
        &[&key(client_id)],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Permission {
            kind: kind_at(r, 0)?,
            value: r.try_get(1)?,
        })
    })
    .collect()
}

fn grantee(g: &ConsentGrant) -> String {
    g.user_id.map(key).unwrap_or_else(|| ALL_USERS.to_owned())
}

async fn grant(tx: &Tx<'_>, g: &ConsentGrant) -> Result<()> {
    require_app(tx, g.client_id).await?;
    if let Some(u) = g.user_id {
        require_user(tx, u).await?;
    }
    exec(
        tx,
        "INSERT INTO dir_grants (client_id, kind, value, user_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        &[&key(g.client_id), &g.kind.code(), &g.value, &grantee(g)],
    )
    .await?;
    Ok(())
}

async fn revoke(tx: &Tx<'_>, g: &ConsentGrant) -> Result<bool> {
    require_app(tx, g.client_id).await?;
    let n = exec(
        tx,
        "DELETE FROM dir_grants WHERE client_id = $1 AND kind = $2 AND value = $3 AND user_id = $4",
        &[&key(g.client_id), &g.kind.code(), &g.value, &grantee(g)],
    )
    .await?;
    Ok(n > 0)
}

async fn list_grants(tx: &Tx<'_>, client_id: Uuid) -> Result<Vec<ConsentGrant>> {
    require_app(tx, client_id).await?;
    rows(
        tx,
        "SELECT client_id, kind, value, user_id FROM dir_grants WHERE client_id = $1 ORDER BY kind, value, user_id",
        &[&key(client_id)],
    )
    .await?
    .iter()
    .map(|r| {
        let user: String = r.try_get(3)?;
        let user_id = if user == ALL_USERS {
            None
        } else {
            Some(uuid_at(r, 3)?)
        };
        Ok(ConsentGrant {
            client_id: uuid_at(r, 0)?,
            kind: kind_at(r, 1)?,
            value: r.try_get(2)?,
            user_id,
        })
    })
    .collect()
}

async fn set_password_hash(tx: &Tx<'_>, user_id: Uuid, hash: &str) -> Result<()> {
    require_user(tx, user_id).await?;
    exec(
        tx,
        "INSERT INTO dir_user_credentials (user_id, password_hash) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash",
        &[&key(user_id), &hash],
    )
    .await?;
    Ok(())
}

async fn set_admin(tx: &Tx<'_>, user_id: Uuid, admin: bool) -> Result<()> {
    require_user(tx, user_id).await?;
    exec(
        tx,
        "INSERT INTO dir_user_credentials (user_id, is_admin) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET is_admin = excluded.is_admin",
        &[&key(user_id), &admin],
    )
    .await?;
    Ok(())
}

async fn user_credential(tx: &Tx<'_>, user_id: Uuid) -> Result<UserCredential> {
    require_user(tx, user_id).await?;
    let row = opt(
        tx,
        "SELECT password_hash, is_admin FROM dir_user_credentials WHERE user_id = $1",
        &[&key(user_id)],
    )
    .await?;
    let (password_hash, is_admin) = match row {
        Some(r) => (r.try_get::<_, Option<String>>(0)?, r.try_get::<_, bool>(1)?),
        None => (None, false),
    };
    Ok(UserCredential {
        user_id,
        password_hash,
        is_admin,
    })
}

async fn put_record(tx: &Tx<'_>, r: &AuthRecord) -> Result<()> {
    require_app(tx, r.client_id).await?;
    exec(
        tx,
        "DELETE FROM dir_records WHERE expires <= $1",
        &[&now_ticks()],
    )
    .await?;
    if get_record(tx, &r.kind, &r.key).await?.is_some() {
        return Err(StoreError::Conflict(format!("{} record exists", r.kind)));
    }
    exec(
        tx,
        "INSERT INTO dir_records (kind, key, client_id, data, expires) VALUES ($1, $2, $3, $4, $5)",
        &[
            &r.kind,
            &r.key,
            &key(r.client_id),
            &r.data,
            &ticks(r.expires),
        ],
    )
    .await?;
    Ok(())
}

async fn take_record(tx: &Tx<'_>, kind: &str, k: &str) -> Result<Option<AuthRecord>> {
    // Deleting with RETURNING makes the take atomic across instances: of two
    // concurrent takes of one record, exactly one gets it.
    let now = now_ticks();
    let taken = opt(
        tx,
        "DELETE FROM dir_records WHERE kind = $1 AND key = $2
         RETURNING kind, key, client_id, data, expires",
        &[&kind, &k],
    )
    .await?;
    match taken {
        Some(r) => {
            let rec = row_record(&r)?;
            Ok((ticks(rec.expires) > now).then_some(rec))
        }
        None => Ok(None),
    }
}

async fn update_record(tx: &Tx<'_>, kind: &str, k: &str, data: &str) -> Result<()> {
    let n = exec(
        tx,
        "UPDATE dir_records SET data = $3 WHERE kind = $1 AND key = $2 AND expires > $4",
        &[&kind, &k, &data, &now_ticks()],
    )
    .await?;
    if n == 0 {
        return Err(StoreError::NotFound {
            what: "authorization record",
            id: kind.to_owned(),
        });
    }
    Ok(())
}

async fn list_apps(tx: &Tx<'_>, tenant_id: Uuid) -> Result<Vec<App>> {
    rows(
        tx,
        &format!(
            "SELECT {APP_COLS} FROM dir_apps WHERE tenant_id = $1 ORDER BY created, client_id"
        ),
        &[&key(tenant_id)],
    )
    .await?
    .iter()
    .map(row_app)
    .collect()
}

#[async_trait]
impl DirectoryStore for PgMetaStore {
    async fn create_app(&self, app: NewApp) -> Result<App> {
        if app.display_name.trim().is_empty() {
            return Err(StoreError::Invalid(
                "an application needs a non-empty display name".into(),
            ));
        }
        write_tx!(self, |tx| create_app(&tx, &app).await)
    }

    async fn get_app(&self, client_id: Uuid) -> Result<App> {
        read_tx!(self, |tx| get_app(&tx, client_id).await)
    }

    async fn list_apps(&self, tenant_id: Uuid) -> Result<Vec<App>> {
        read_tx!(self, |tx| list_apps(&tx, tenant_id).await)
    }

    async fn delete_app(&self, client_id: Uuid) -> Result<()> {
        write_tx!(self, |tx| delete_app(&tx, client_id).await)
    }

    async fn add_secret(&self, secret: AppSecret) -> Result<()> {
        write_tx!(self, |tx| add_secret(&tx, &secret).await)
    }

    async fn remove_secret(&self, client_id: Uuid, id: Uuid) -> Result<()> {
        write_tx!(self, |tx| remove_owned(
            &tx,
            "dir_secrets",
            "client secret",
            client_id,
            id
        )
        .await)
    }

    async fn list_secrets(&self, client_id: Uuid) -> Result<Vec<AppSecret>> {
        read_tx!(self, |tx| list_secrets(&tx, client_id).await)
    }

    async fn add_certificate(&self, cert: AppCertificate) -> Result<()> {
        write_tx!(self, |tx| add_certificate(&tx, &cert).await)
    }

    async fn remove_certificate(&self, client_id: Uuid, id: Uuid) -> Result<()> {
        write_tx!(self, |tx| remove_owned(
            &tx,
            "dir_certs",
            "certificate",
            client_id,
            id
        )
        .await)
    }

    async fn list_certificates(&self, client_id: Uuid) -> Result<Vec<AppCertificate>> {
        read_tx!(self, |tx| list_certificates(&tx, client_id).await)
    }

    async fn add_permission(&self, client_id: Uuid, p: Permission) -> Result<()> {
        write_tx!(self, |tx| add_permission(&tx, client_id, &p).await)
    }

    async fn remove_permission(&self, client_id: Uuid, p: Permission) -> Result<()> {
        write_tx!(self, |tx| remove_permission(&tx, client_id, &p).await)
    }

    async fn list_permissions(&self, client_id: Uuid) -> Result<Vec<Permission>> {
        read_tx!(self, |tx| list_permissions(&tx, client_id).await)
    }

    async fn grant(&self, g: ConsentGrant) -> Result<()> {
        write_tx!(self, |tx| grant(&tx, &g).await)
    }

    async fn revoke(&self, g: ConsentGrant) -> Result<bool> {
        write_tx!(self, |tx| revoke(&tx, &g).await)
    }

    async fn list_grants(&self, client_id: Uuid) -> Result<Vec<ConsentGrant>> {
        read_tx!(self, |tx| list_grants(&tx, client_id).await)
    }

    async fn set_password_hash(&self, user_id: Uuid, hash: &str) -> Result<()> {
        write_tx!(self, |tx| set_password_hash(&tx, user_id, hash).await)
    }

    async fn set_admin(&self, user_id: Uuid, admin: bool) -> Result<()> {
        write_tx!(self, |tx| set_admin(&tx, user_id, admin).await)
    }

    async fn user_credential(&self, user_id: Uuid) -> Result<UserCredential> {
        read_tx!(self, |tx| user_credential(&tx, user_id).await)
    }

    async fn put_record(&self, r: AuthRecord) -> Result<()> {
        write_tx!(self, |tx| put_record(&tx, &r).await)
    }

    async fn take_record(&self, kind: &str, k: &str) -> Result<Option<AuthRecord>> {
        write_tx!(self, |tx| take_record(&tx, kind, k).await)
    }

    async fn get_record(&self, kind: &str, k: &str) -> Result<Option<AuthRecord>> {
        read_tx!(self, |tx| get_record(&tx, kind, k).await)
    }

    async fn update_record(&self, kind: &str, k: &str, data: &str) -> Result<()> {
        write_tx!(self, |tx| update_record(&tx, kind, k, data).await)
    }
}
