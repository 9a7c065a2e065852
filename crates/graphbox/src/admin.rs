//! `graphbox admin`: tenants, users, mailboxes, seeding and item maintenance,
//! straight against the configured stores (the server may be running: SQLite in
//! WAL mode lets both work at once).

use anyhow::Context;
use serde_json::json;
use store::{MailboxId, MailboxKind, MetaStore};

use crate::cli::{AdminCmd, Global, ItemCmd, KeysCmd, MailboxCmd, SeedArgs, TenantCmd, UserCmd};
use crate::config::{self, Stores};

pub async fn run(global: Global, cmd: AdminCmd) -> anyhow::Result<()> {
    // Migration names its own stores: it opens nothing of the global ones.
    let cmd = match cmd {
        AdminCmd::Migrate(args) => return crate::migrate::run(args).await,
        other => other,
    };
    let stores = config::open_configured_stores(&global).await?;
    match cmd {
        AdminCmd::Tenant(c) => tenant(&stores, c).await,
        AdminCmd::User(c) => user(&global, &stores, c).await,
        AdminCmd::App(c) => crate::identity_cmd::app(&global, stores.meta.as_ref(), c).await,
        AdminCmd::Consent(c) => crate::identity_cmd::consent(&global, c).await,
        AdminCmd::Keys(c) => keys(&stores, c).await,
        AdminCmd::Mailbox(c) => mailbox(&stores, c).await,
        AdminCmd::Seed(args) => seed(&stores, args).await,
        AdminCmd::Check => crate::check::run(&stores).await,
        AdminCmd::Item(c) => item(&stores, c).await,
        AdminCmd::Migrate(_) => unreachable!("handled above"),
    }
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

async fn tenant(stores: &Stores, cmd: TenantCmd) -> anyhow::Result<()> {
    match cmd {
        TenantCmd::Create { domain, name, json } => {
            let name = name.unwrap_or_else(|| domain.clone());
            let t = stores
                .meta
                .create_tenant(&domain, &name)
                .await
                .with_context(|| format!("cannot create tenant {domain}"))?;
            print(
                json,
                tenant_json(&t),
                format!("created tenant {} ({})", t.domain, t.id),
            );
        }
        TenantCmd::List { json } => {
            let all = stores.meta.list_tenants().await?;
            let text = all
                .iter()
                .map(|t| format!("{}  {}  {}", t.id, t.domain, t.display_name))
                .collect::<Vec<_>>()
                .join("\n");
            print(
                json,
                json!(all.iter().map(tenant_json).collect::<Vec<_>>()),
                text,
            );
        }
    }
    Ok(())
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn key_json(k: &api::auth::KeyInfo) -> serde_json::Value {
    json!({
        "slot": k.slot,
        "kid": k.kid,
        "created": rfc3339(k.created),
        "activates": rfc3339(k.activates),
        "state": k.state.as_str(),
        "dropAfter": k.drop_after.map(rfc3339),
    })
}

/// `admin keys list|rotate`: the token signing keys in the store (the same
/// key set every server instance loads; running servers pick up a rotation
/// within a minute).
async fn keys(stores: &Stores, cmd: KeysCmd) -> anyhow::Result<()> {
    let issuer = stores
        .meta
        .get_setting(crate::serve::ISSUER_SETTING)
        .await?
        .unwrap_or_default();
    let authority = api::Authority::open(stores.meta.clone(), issuer, api::AuthSettings::default())
        .await
        .context("cannot load the token signing keys")?;
    match cmd {
        KeysCmd::List { json } => {
            let all = authority.keys();
            let text = all
                .iter()
                .map(|k| {
                    let until = k
                        .drop_after
                        .map(|t| format!("  accepted until {}", rfc3339(t)))
                        .unwrap_or_default();
                    format!(
                        "{}  {:<8}  {}  created {}  signs from {}{until}",
                        k.slot,
                        k.state.as_str(),
                        k.kid,
                        rfc3339(k.created),
                        rfc3339(k.activates)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(
                json,
                json!(all.iter().map(key_json).collect::<Vec<_>>()),
                text,
            );
        }
        KeysCmd::Rotate {
            activate_in_secs,
            json,
        } => {
            if !(0..=86_400).contains(&activate_in_secs) {
                anyhow::bail!(
                    "--activate-in-secs must be between 0 and 86400, not {activate_in_secs}"
                );
            }
            let k = authority
                .rotate(time::Duration::seconds(activate_in_secs))
                .await
                .context("cannot rotate the token signing key")?;
            print(
                json,
                key_json(&k),
                format!(
                    "new signing key {} (slot {}), published now, signs from {}",
                    k.kid,
                    k.slot,
                    rfc3339(k.activates)
                ),
            );
        }
    }
    Ok(())
}

fn tenant_json(t: &store::Tenant) -> serde_json::Value {
    json!({"id": t.id, "domain": t.domain, "displayName": t.display_name})
}

async fn find_tenant(meta: &dyn MetaStore, key: &str) -> anyhow::Result<store::Tenant> {
    meta.find_tenant(key)
        .await
        .with_context(|| format!("no tenant {key:?} (list them with `graphbox admin tenant list`)"))
}

pub async fn find_user(
    meta: &dyn MetaStore,
    tenant: Option<uuid::Uuid>,
    key: &str,
) -> anyhow::Result<store::User> {
    meta.find_user(tenant, key).await.with_context(|| {
        format!("no user {key:?} (list them with `graphbox admin user list --tenant …`)")
    })
}

async fn user_json(meta: &dyn MetaStore, u: &store::User) -> anyhow::Result<serde_json::Value> {
    let mailboxes = meta.user_mailboxes(u.id).await?;
    let mut v = json!({
        "id": u.id,
        "tenantId": u.tenant_id,
        "userPrincipalName": u.upn,
        "displayName": u.display_name,
    });
    for m in mailboxes {
        let key = match m.kind {
            MailboxKind::Primary => "primaryMailboxId",
            MailboxKind::Archive => "archiveMailboxId",
        };
        v[key] = json!(m.id.to_string());
    }
    Ok(v)
}

async fn user(global: &Global, stores: &Stores, cmd: UserCmd) -> anyhow::Result<()> {
    let meta = stores.meta.as_ref();
    match cmd {
        UserCmd::Create {
            tenant,
            upn,
            name,
            archive,
            password,
            json,
        } => {
            if let Some(p) = &password {
                identity::admin::hash_password(p)?;
            }
            let t = find_tenant(meta, &tenant).await?;
            let name = name.unwrap_or_else(|| upn.split('@').next().unwrap_or(&upn).to_string());
            let u = meta
                .create_user(t.id, &upn, &name)
                .await
                .with_context(|| format!("cannot create user {upn}"))?;
            meta.create_mailbox(u.id, MailboxKind::Primary).await?;
            if archive {
                meta.create_mailbox(u.id, MailboxKind::Archive).await?;
            }
            if let Some(p) = &password {
                crate::identity_cmd::set_password(global, u.id, p).await?;
            }
            let v = user_json(meta, &u).await?;
            print(
                json,
                v.clone(),
                format!("created user {} ({})", u.upn, u.id),
            );
            if !json {
                println!(
                    "primary mailbox: {}",
                    v["primaryMailboxId"].as_str().unwrap_or("")
                );
                if let Some(a) = v["archiveMailboxId"].as_str() {
                    println!("archive mailbox: {a}");
                }
            }
        }
        UserCmd::SetPassword {
            user,
            password,
            json,
        } => {
            let u = find_user(meta, None, &user).await?;
            crate::identity_cmd::set_password(global, u.id, &password).await?;
            print(
                json,
                json!({"id": u.id, "passwordSet": true}),
                format!("password set for {}", u.upn),
            );
        }
        UserCmd::RevokeSessions { user, json } => {
            let u = find_user(meta, None, &user).await?;
            let apps = crate::identity_cmd::revoke_sessions(global, u.tenant_id, u.id).await?;
            print(
                json,
                json!({"id": u.id, "sessionsRevoked": true, "apps": apps}),
                format!("revoked the sign-in sessions of {} ({apps} apps)", u.upn),
            );
        }
        UserCmd::SetAdmin { user, off, json } => {
            let u = find_user(meta, None, &user).await?;
            crate::identity_cmd::set_admin(global, u.id, !off).await?;
            print(
                json,
                json!({"id": u.id, "isAdmin": !off}),
                format!(
                    "{} is {}an administrator",
                    u.upn,
                    if off { "not " } else { "" }
                ),
            );
        }
        UserCmd::List { tenant, json } => {
            let t = find_tenant(meta, &tenant).await?;
            let users = meta.list_users(t.id).await?;
            let mut out = Vec::new();
            let mut text = Vec::new();
            for u in &users {
                text.push(format!("{}  {}  {}", u.id, u.upn, u.display_name));
                out.push(user_json(meta, u).await?);
            }
            print(json, json!(out), text.join("\n"));
        }
    }
    Ok(())
}

fn mailbox_json(m: &store::Mailbox) -> serde_json::Value {
    json!({
        "id": m.id.to_string(),
        "tenantId": m.tenant_id,
        "userId": m.user_id,
        "kind": m.kind.as_str(),
    })
}

async fn mailbox(stores: &Stores, cmd: MailboxCmd) -> anyhow::Result<()> {
    let meta = stores.meta.as_ref();
    match cmd {
        MailboxCmd::Create {
            user,
            archive,
            json,
        } => {
            let u = find_user(meta, None, &user).await?;
            let kind = if archive {
                MailboxKind::Archive
            } else {
                MailboxKind::Primary
            };
            let m = meta.create_mailbox(u.id, kind).await.with_context(|| {
                format!("cannot create a {} mailbox for {}", kind.as_str(), u.upn)
            })?;
            print(json, mailbox_json(&m), format!("created mailbox {}", m.id));
        }
        MailboxCmd::List { tenant, json } => {
            let t = find_tenant(meta, &tenant).await?;
            let all = meta.list_mailboxes(t.id).await?;
            let text = all
                .iter()
                .map(|m| format!("{}  {}  user {}", m.id, m.kind.as_str(), m.user_id))
                .collect::<Vec<_>>()
                .join("\n");
            print(
                json,
                json!(all.iter().map(mailbox_json).collect::<Vec<_>>()),
                text,
            );
        }
    }
    Ok(())
}

pub fn parse_mailbox(s: &str) -> anyhow::Result<MailboxId> {
    MailboxId::parse(s).map_err(|e| {
        anyhow::anyhow!("{e}: a mailbox id looks like MBX:<guid>@<tenant guid> (see `graphbox admin mailbox list`)")
    })
}

async fn seed(stores: &Stores, args: SeedArgs) -> anyhow::Result<()> {
    let mbx = parse_mailbox(&args.mailbox)?;
    stores
        .meta
        .get_mailbox(&mbx)
        .await
        .with_context(|| format!("no mailbox {mbx}"))?;
    let folder = stores
        .meta
        .resolve_folder(&mbx, &args.folder)
        .await
        .with_context(|| format!("no folder {:?} in {mbx}", args.folder))?;
    let started = std::time::Instant::now();
    let n = if args.shared_content {
        crate::ingest::seed_folder_shared(stores, &mbx, &folder, args.items, args.seed).await?
    } else {
        crate::ingest::seed_folder(stores, &mbx, &folder, args.items, args.seed).await?
    };
    let secs = started.elapsed().as_secs_f64();
    print(
        args.json,
        json!({"mailboxId": mbx.to_string(), "folderId": folder.id, "items": n, "seconds": secs}),
        format!("added {n} items to {} in {secs:.1} s", folder.display_name),
    );
    Ok(())
}

async fn item(stores: &Stores, cmd: ItemCmd) -> anyhow::Result<()> {
    match cmd {
        ItemCmd::Delete { mailbox, id } => {
            let mbx = parse_mailbox(&mailbox)?;
            stores
                .meta
                .delete_item(&mbx, &id)
                .await
                .with_context(|| format!("cannot delete item {id}"))?;
            println!("deleted {id}");
        }
        ItemCmd::Move { mailbox, id, to } => {
            let mbx = parse_mailbox(&mailbox)?;
            let folder = stores
                .meta
                .resolve_folder(&mbx, &to)
                .await
                .with_context(|| format!("no folder {to:?} in {mbx}"))?;
            let item = stores
                .meta
                .move_item(&mbx, &id, &folder.id)
                .await
                .with_context(|| format!("cannot move item {id}"))?;
            println!("moved {} to {}", item.id, folder.display_name);
        }
    }
    Ok(())
}
