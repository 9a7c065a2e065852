//! `graphbox serve --demo`: on first start, a demo tenant with two users (one
//! with an archive mailbox) and a few hundred realistic items made with the
//! mapi builder; on every start, a ready-to-paste curl command with a token.

use std::path::Path;

use anyhow::Context;
use store::MailboxKind;

use crate::config::Stores;

const DEMO_DOMAIN: &str = "contoso.test";
/// The demo app's client id (the `graphbox token --app` default for the demo).
const DEMO_APP: uuid::Uuid = uuid::Uuid::from_u128(0xd3e0_0000_0000_4000_8000_0000_0000_0001);

/// (folder, number of items) seeded into the first user's primary mailbox.
const MEGAN: &[(&str, u64)] = &[
    ("inbox", 120),
    ("sentitems", 30),
    ("calendar", 25),
    ("contacts", 20),
    ("tasks", 10),
    ("notes", 5),
];
const MEGAN_ARCHIVE: &[(&str, u64)] = &[("inbox", 20)];
const ALEX: &[(&str, u64)] = &[("inbox", 40), ("calendar", 10)];

async fn seed(
    stores: &Stores,
    mbx: &store::MailboxId,
    plan: &[(&str, u64)],
    seed: u64,
) -> anyhow::Result<u64> {
    let mut total = 0;
    for (i, (folder, n)) in plan.iter().enumerate() {
        let f = stores.meta.resolve_folder(mbx, folder).await?;
        total += crate::ingest::seed_folder(stores, mbx, &f, *n, seed * 100 + i as u64).await?;
    }
    Ok(total)
}

pub async fn ensure(
    stores: &Stores,
    state: &api::AppState,
    base: &str,
    cert: Option<&Path>,
) -> anyhow::Result<()> {
    let meta = stores.meta.as_ref();
    let tenant = match meta.find_tenant(DEMO_DOMAIN).await {
        Ok(t) => t,
        Err(store::StoreError::NotFound { .. }) => {
            eprintln!("seeding the demo tenant {DEMO_DOMAIN} (first start)…");
            let t = meta.create_tenant(DEMO_DOMAIN, "Contoso (demo)").await?;
            let megan = meta
                .create_user(t.id, "megan@contoso.test", "Megan Bowen")
                .await?;
            let alex = meta
                .create_user(t.id, "alex@contoso.test", "Alex Wilber")
                .await?;
            let mp = meta.create_mailbox(megan.id, MailboxKind::Primary).await?;
            let ma = meta.create_mailbox(megan.id, MailboxKind::Archive).await?;
            let ap = meta.create_mailbox(alex.id, MailboxKind::Primary).await?;
            let n = seed(stores, &mp.id, MEGAN, 1).await?
                + seed(stores, &ma.id, MEGAN_ARCHIVE, 2).await?
                + seed(stores, &ap.id, ALEX, 3).await?;
            eprintln!("seeded {n} items");
            t
        }
        Err(e) => return Err(e).context("cannot look up the demo tenant"),
    };
    let users = meta.list_users(tenant.id).await?;
    let megan = users
        .iter()
        .find(|u| u.upn.eq_ignore_ascii_case("megan@contoso.test"))
        .context("the demo tenant has no megan@contoso.test")?;
    let mbx = meta
        .user_mailboxes(megan.id)
        .await?
        .into_iter()
        .find(|m| m.kind == MailboxKind::Primary)
        .context("megan has no primary mailbox")?;
    let token = state.authority.mint(&api::TokenRequest {
        tenant_id: tenant.id,
        app_id: DEMO_APP,
        grant: api::Grant::Application {
            roles: [
                "User.Read.All",
                "MailboxFolder.ReadWrite.All",
                "MailboxItem.Read.All",
                "MailboxItem.ReadWrite.All",
                "MailboxItem.ImportExport.All",
            ]
            .map(str::to_owned)
            .to_vec(),
        },
        lifetime: time::Duration::hours(24),
        issued_at: None,
    });
    let tls = cert
        .map(|c| format!("--cacert {} ", c.display()))
        .unwrap_or_default();
    println!("demo tenant {DEMO_DOMAIN}; try (token valid 24 h):");
    println!(
        "  curl {tls}-H 'Authorization: Bearer {token}' '{base}/v1.0/users/megan@contoso.test/settings/exchange'"
    );
    println!(
        "  curl {tls}-H 'Authorization: Bearer {token}' '{base}/v1.0/admin/exchange/mailboxes/{}/folders/inbox/items?$top=5'",
        mbx.id
    );
    Ok(())
}
