//! `graphbox admin app …`, `admin consent …` and the identity parts of
//! `admin user …`: the directory of the identity authority.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use identity::Directory;
use identity::admin::parse_kind;
use serde_json::json;
use store::directory::{App, PermissionKind};
use store::{DirectoryStore, MetaStore};
use uuid::Uuid;

use crate::cli::Global;
use crate::config;

#[derive(Subcommand, Debug)]
pub enum AppCmd {
    /// Register an application (client).
    Create {
        /// Tenant id or domain.
        #[arg(long)]
        tenant: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Redirect URI (repeatable), matched exactly.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Allow public client flows (device code, auth code + PKCE without a secret).
        #[arg(long)]
        public_client: bool,
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's applications.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Show an application with its credentials (never their values), permissions and grants.
    Show {
        /// Client id.
        #[arg(long)]
        app: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an application with its credentials and grants.
    Delete {
        #[arg(long)]
        app: String,
        #[arg(long)]
        json: bool,
    },
    /// Client secrets.
    #[command(subcommand)]
    Secret(SecretCmd),
    /// Certificate credentials.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Requested API permissions.
    #[command(subcommand)]
    Permission(PermissionCmd),
}

#[derive(Subcommand, Debug)]
pub enum SecretCmd {
    /// Add a client secret; its value is printed once and never again.
    Add {
        #[arg(long)]
        app: String,
        /// Lifetime in days (1-730).
        #[arg(long, default_value_t = 180)]
        days: i64,
        #[arg(long)]
        json: bool,
    },
    /// Remove a client secret by its key id.
    Remove {
        #[arg(long)]
        app: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertCmd {
    /// Add a certificate credential from a PEM X.509 certificate file (public part only).
    Add {
        #[arg(long)]
        app: String,
        /// PEM file with the certificate.
        #[arg(long)]
        cert: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PermissionCmd {
    /// Request a Microsoft Graph permission.
    Add {
        #[arg(long)]
        app: String,
        /// e.g. MailboxItem.ImportExport.All
        #[arg(long)]
        permission: String,
        /// delegated or application (default: application for *.All, else delegated).
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a requested permission (and its consent, at once).
    Remove {
        #[arg(long)]
        app: String,
        #[arg(long)]
        permission: String,
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConsentCmd {
    /// Grant admin consent for every permission the app requests (the
    /// portal's "Grant admin consent" button).
    Grant {
        #[arg(long)]
        app: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke the admin consent (new tokens lose the permissions at once).
    Revoke {
        #[arg(long)]
        app: String,
        /// Revoke this user's own consents instead (user id or
        /// userPrincipalName); their refresh tokens for the app stop working.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The directory store: the metadata database of the deployment (SQLite or
/// PostgreSQL), selected by `--meta` like every other command.
pub async fn open_directory(global: &Global) -> anyhow::Result<Arc<dyn DirectoryStore>> {
    let meta = global.meta.clone().or(config::load_file(global)?.meta);
    open_directory_at(meta.as_deref(), &config::data_dir(global)?).await
}

/// [`open_directory`] for a resolved data directory and `--meta` URL.
pub async fn open_directory_at(
    meta: Option<&str>,
    data_dir: &std::path::Path,
) -> anyhow::Result<Arc<dyn DirectoryStore>> {
    let url = meta.map(config::parse_meta_url).transpose()?;
    let (_, directory) = config::open_meta(data_dir, url)
        .await
        .context("cannot open the identity directory")?;
    Ok(directory)
}

fn print(json: bool, value: serde_json::Value, text: String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialize")
        );
    } else {
        println!("{text}");
    }
}

fn client_id(s: &str) -> anyhow::Result<Uuid> {
    Uuid::parse_str(s).with_context(|| {
        format!("--app must be a client id (a GUID, see `graphbox admin app list`), not {s:?}")
    })
}

fn default_kind(permission: &str, kind: Option<&str>) -> anyhow::Result<PermissionKind> {
    match kind {
        Some(k) => Ok(parse_kind(k)?),
        None if permission.ends_with(".All") && !permission.starts_with("User.") => {
            Ok(PermissionKind::Application)
        }
        None if permission.starts_with("User.") && permission.ends_with(".All") => bail!(
            "{permission} exists as both a delegated and an application permission: say --type delegated or --type application"
        ),
        None => Ok(PermissionKind::Delegated),
    }
}

fn app_json(a: &App) -> serde_json::Value {
    json!({
        "appId": a.client_id,
        "tenantId": a.tenant_id,
        "displayName": a.display_name,
        "redirectUris": a.redirect_uris,
        "isFallbackPublicClient": a.public_client,
    })
}

async fn get_app(dir: &Directory, id: &str) -> anyhow::Result<App> {
    let id = client_id(id)?;
    dir.store.get_app(id).await.with_context(|| {
        format!("no application {id} (list them with `graphbox admin app list --tenant …`)")
    })
}

async fn show_json(dir: &Directory, a: &App) -> anyhow::Result<serde_json::Value> {
    let mut v = app_json(a);
    let secrets = dir.store.list_secrets(a.client_id).await?;
    let certs = dir.store.list_certificates(a.client_id).await?;
    let perms = dir.store.list_permissions(a.client_id).await?;
    let grants = dir.store.list_grants(a.client_id).await?;
    v["passwordCredentials"] = json!(
        secrets
            .iter()
            .map(|s| json!({
                "keyId": s.id, "hint": s.hint, "endDateTime": s.expires.unix_timestamp(),
            }))
            .collect::<Vec<_>>()
    );
    v["keyCredentials"] = json!(certs.iter().map(|c| json!({
        "keyId": c.id, "thumbprint": c.thumbprint_sha1, "thumbprintSha256": c.thumbprint_sha256,
        "endDateTime": c.expires.unix_timestamp(),
    })).collect::<Vec<_>>());
    v["requiredPermissions"] = json!(perms);
    v["grants"] = json!(grants);
    Ok(v)
}

pub async fn app(global: &Global, meta: &dyn MetaStore, cmd: AppCmd) -> anyhow::Result<()> {
    let dir = Directory::new(open_directory(global).await?);
    match cmd {
        AppCmd::Create {
            tenant,
            name,
            redirect_uris,
            public_client,
            json,
        } => {
            let t = meta.find_tenant(&tenant).await.with_context(|| {
                format!("no tenant {tenant:?} (list them with `graphbox admin tenant list`)")
            })?;
            let a = dir
                .create_app(t.id, &name, redirect_uris, public_client)
                .await?;
            print(
                json,
                app_json(&a),
                format!("created app {} ({})", a.display_name, a.client_id),
            );
        }
        AppCmd::List { tenant, json } => {
            let t = meta.find_tenant(&tenant).await.with_context(|| {
                format!("no tenant {tenant:?} (list them with `graphbox admin tenant list`)")
            })?;
            let all = dir.store.list_apps(t.id).await?;
            let text = all
                .iter()
                .map(|a| format!("{}  {}", a.client_id, a.display_name))
                .collect::<Vec<_>>()
                .join("\n");
            print(
                json,
                json!(all.iter().map(app_json).collect::<Vec<_>>()),
                text,
            );
        }
        AppCmd::Show { app, json } => {
            let a = get_app(&dir, &app).await?;
            let v = show_json(&dir, &a).await?;
            let text = serde_json::to_string_pretty(&v)?;
            print(json, v, text);
        }
        AppCmd::Delete { app, json } => {
            let a = get_app(&dir, &app).await?;
            dir.store.delete_app(a.client_id).await?;
            print(
                json,
                json!({"deleted": a.client_id}),
                format!("deleted app {}", a.client_id),
            );
        }
        AppCmd::Secret(SecretCmd::Add { app, days, json }) => {
            let a = get_app(&dir, &app).await?;
            let s = dir
                .add_secret(a.client_id, time::Duration::days(days))
                .await?;
            print(
                json,
                json!({"keyId": s.secret.id, "secretText": s.value, "hint": s.secret.hint,
                       "endDateTime": s.secret.expires.unix_timestamp()}),
                format!(
                    "secret {} (key id {}); copy it now, it is not shown again",
                    s.value, s.secret.id
                ),
            );
        }
        AppCmd::Secret(SecretCmd::Remove { app, id, json }) => {
            let a = get_app(&dir, &app).await?;
            let id = Uuid::parse_str(&id)
                .with_context(|| format!("--id must be a secret's key id (a GUID), not {id:?}"))?;
            dir.store
                .remove_secret(a.client_id, id)
                .await
                .with_context(|| format!("app {} has no secret {id}", a.client_id))?;
            print(json, json!({"removed": id}), format!("removed secret {id}"));
        }
        AppCmd::Cert(CertCmd::Add { app, cert, json }) => {
            let a = get_app(&dir, &app).await?;
            let pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("cannot read {}", cert.display()))?;
            let c = dir.add_certificate(a.client_id, &pem).await?;
            print(
                json,
                json!({"keyId": c.id, "thumbprint": c.thumbprint_sha1, "thumbprintSha256": c.thumbprint_sha256,
                       "endDateTime": c.expires.unix_timestamp()}),
                format!("added certificate {} (key id {})", c.thumbprint_sha1, c.id),
            );
        }
        AppCmd::Permission(PermissionCmd::Add {
            app,
            permission,
            kind,
            json,
        }) => {
            let a = get_app(&dir, &app).await?;
            let k = default_kind(&permission, kind.as_deref())?;
            let p = dir.add_permission(a.client_id, k, &permission).await?;
            print(
                json,
                json!(p),
                format!("app {} requests {} ({:?})", a.client_id, p.value, p.kind),
            );
        }
        AppCmd::Permission(PermissionCmd::Remove {
            app,
            permission,
            kind,
            json,
        }) => {
            let a = get_app(&dir, &app).await?;
            let k = default_kind(&permission, kind.as_deref())?;
            dir.remove_permission(a.client_id, k, &permission)
                .await
                .with_context(|| format!("app {} does not request {permission}", a.client_id))?;
            print(
                json,
                json!({"removed": permission}),
                format!("removed {permission}"),
            );
        }
    }
    Ok(())
}

pub async fn consent(global: &Global, cmd: ConsentCmd) -> anyhow::Result<()> {
    let dir = Directory::new(open_directory(global).await?);
    match cmd {
        ConsentCmd::Grant { app, json } => {
            let a = get_app(&dir, &app).await?;
            let g = dir.grant_admin_consent(a.client_id).await?;
            let names: Vec<_> = g.iter().map(|g| g.value.clone()).collect();
            print(
                json,
                json!({"appId": a.client_id, "granted": g}),
                format!("granted admin consent: {}", names.join(", ")),
            );
        }
        ConsentCmd::Revoke {
            app,
            user: Some(user),
            json,
        } => {
            let a = get_app(&dir, &app).await?;
            let meta = global.meta.clone().or(config::load_file(global)?.meta);
            let url = meta.as_deref().map(config::parse_meta_url).transpose()?;
            let (meta, _) = config::open_meta(&config::data_dir(global)?, url).await?;
            let u = meta
                .find_user(Some(a.tenant_id), &user)
                .await
                .with_context(|| format!("no user {user:?} in the app's tenant"))?;
            let g = dir.revoke_user_consent(a.client_id, u.id).await?;
            let names: Vec<_> = g.iter().map(|g| g.value.clone()).collect();
            print(
                json,
                json!({"appId": a.client_id, "userId": u.id, "revoked": g}),
                format!("revoked {}'s consent: {}", u.upn, names.join(", ")),
            );
        }
        ConsentCmd::Revoke {
            app,
            user: None,
            json,
        } => {
            let a = get_app(&dir, &app).await?;
            let g = dir.revoke_admin_consent(a.client_id).await?;
            let names: Vec<_> = g.iter().map(|g| g.value.clone()).collect();
            print(
                json,
                json!({"appId": a.client_id, "revoked": g}),
                format!("revoked admin consent: {}", names.join(", ")),
            );
        }
    }
    Ok(())
}

/// `admin user set-password` / `create --password`.
pub async fn set_password(global: &Global, user: Uuid, password: &str) -> anyhow::Result<()> {
    let dir = open_directory(global).await?;
    let hash = identity::admin::hash_password(password)?;
    dir.set_password_hash(user, &hash).await?;
    Ok(())
}

/// `admin user set-admin`.
pub async fn set_admin(global: &Global, user: Uuid, admin: bool) -> anyhow::Result<()> {
    open_directory(global).await?.set_admin(user, admin).await?;
    Ok(())
}

/// `admin user revoke-sessions`: the user's refresh tokens stop working.
pub async fn revoke_sessions(global: &Global, tenant: Uuid, user: Uuid) -> anyhow::Result<usize> {
    let dir = Directory::new(open_directory(global).await?);
    Ok(dir.revoke_user_sessions(tenant, user).await?)
}
