//! `graphbox token`: mints an access token signed by the server's own key (the
//! key lives in the metadata store, so the running server accepts it).

use std::time::Duration as StdDuration;

use anyhow::Context;
use api::auth::{Grant, TokenRequest, TokenUser};

use crate::cli::{Global, TokenArgs};
use crate::config;

/// The client id `graphbox token` puts in tokens when no --app is given.
const CLI_CLIENT_ID: uuid::Uuid = uuid::Uuid::from_u128(0x6a7c_1e1b_0b1d_4c57_9a0f_6772_6170_6862);

/// Splits a permission list given with spaces and/or commas.
fn split_list(s: &str) -> Vec<String> {
    s.split([' ', ','])
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

pub async fn run(global: Global, args: TokenArgs) -> anyhow::Result<()> {
    let stores = config::open_configured_stores(&global).await?;
    let meta = stores.meta.as_ref();
    let issuer = crate::serve::issuer_base(meta, None).await?;
    let authority = api::auth::Authority::load_or_create(meta, issuer)
        .await
        .context("cannot load the server's signing key")?;
    let tenant = meta.find_tenant(&args.tenant).await.with_context(|| {
        format!(
            "no tenant {:?} (list them with `graphbox admin tenant list`)",
            args.tenant
        )
    })?;
    let grant = match (&args.user, &args.app) {
        (Some(user), _) => {
            let u = crate::admin::find_user(meta, Some(tenant.id), user).await?;
            Grant::Delegated {
                user: TokenUser {
                    id: u.id,
                    upn: u.upn,
                },
                scopes: split_list(&args.scopes),
            }
        }
        (None, _) => Grant::Application {
            roles: split_list(&args.roles),
        },
    };
    let app_id = match &args.app {
        Some(a) => uuid::Uuid::parse_str(a)
            .with_context(|| format!("--app must be a client id (a GUID), not {a:?}"))?,
        None => CLI_CLIENT_ID,
    };
    // A negative lifetime mints a token that expired that many seconds ago
    // (for tests of the 401 path): issued 2x|lifetime| ago, valid for |lifetime|.
    let span = args.lifetime.unsigned_abs();
    let issued_at = (args.lifetime < 0)
        .then(|| time::OffsetDateTime::now_utc() - StdDuration::from_secs(span * 2));
    let lifetime = time::Duration::seconds(span as i64);
    let token = authority.mint(&TokenRequest {
        tenant_id: tenant.id,
        app_id,
        grant,
        lifetime,
        issued_at,
    });
    if args.json {
        let expires = issued_at.unwrap_or_else(time::OffsetDateTime::now_utc) + lifetime;
        println!(
            "{}",
            serde_json::json!({
                "token": token,
                "tenantId": tenant.id,
                "expiresOn": expires.unix_timestamp(),
            })
        );
    } else {
        println!("{token}");
    }
    Ok(())
}
