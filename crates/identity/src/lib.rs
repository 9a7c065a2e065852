//! graphbox's identity authority: the directory (app registrations, client
//! secrets and certificates, requested permissions, consent grants, user
//! passwords and the administrator role) and the Entra-shaped OAuth 2.0 /
//! OpenID Connect endpoints that MSAL and azure-identity talk to, served under
//! `/{tenant id or domain}/` on the same server as the Graph API.
//!
//! Issuer coherence: tokens carry `iss` = `{issuer_base}/{tenant id}/v2.0`
//! (the `issuer_base` store setting, fixed at the first server start), the
//! discovery document publishes exactly that `issuer`, and its endpoints sit
//! under the server's public base URL with the tenant id, so an MSAL
//! authority `https://host:port/{tenant id or domain}` resolves to the
//! token endpoint `https://host:port/{tenant id}/oauth2/v2.0/token`.
//!
//! The user-facing flows (authorization code with PKCE, refresh tokens,
//! device code, admin consent) sign users in on server-rendered pages
//! (`interactive`), keep every code and token they hand out as a hashed
//! one-time record of the [`DirectoryStore`] (`grants`), and issue Graph
//! access tokens whose `scp` is what the user holds by consent (`scopes`).

pub mod admin;
pub mod catalogue;
mod grants;
mod html;
mod interactive;
mod oauth;
mod scopes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use api::Authority;
use axum::Router;
use axum::routing::{get, post};
use store::{DirectoryStore, MetaStore};

pub use admin::{Directory, DirectoryError};
pub use grants::{DEVICE_CODE_GRANT, FlowSettings, MAX_REFRESH_LIFETIME};
pub use interactive::{BROWSER_COOKIE, sign_in_failures};
pub use oauth::OAuthError;

/// Shared state of the identity endpoints.
#[derive(Clone)]
pub struct IdentityState {
    pub meta: Arc<dyn MetaStore>,
    pub directory: Directory,
    pub authority: Arc<Authority>,
    /// Public base URL of this server (no trailing slash), for endpoint URLs.
    pub base: String,
    /// Access token lifetime.
    pub token_lifetime: time::Duration,
    /// Lifetimes and pacing of the user-facing flows (codes, device codes,
    /// refresh tokens, sign-in pages).
    pub flows: FlowSettings,
    /// Failed client authentications per client id, failed sign-ins per
    /// user name and failed user-code entries per browser (for slowing
    /// them down).
    failures: Arc<Mutex<HashMap<String, u32>>>,
}

impl std::fmt::Debug for IdentityState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityState")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl IdentityState {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        directory: Arc<dyn DirectoryStore>,
        authority: Arc<Authority>,
        base: impl Into<String>,
    ) -> Self {
        IdentityState {
            meta,
            directory: Directory::new(directory),
            authority,
            base: base.into().trim_end_matches('/').to_owned(),
            token_lifetime: time::Duration::seconds(3599),
            flows: FlowSettings::default(),
            failures: Arc::default(),
        }
    }
}

/// The identity endpoints, to merge next to `api::router`.
pub fn router(state: IdentityState) -> Router {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(oauth::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(oauth::jwks))
        .route("/common/discovery/instance", get(oauth::instance_discovery))
        .route("/{tenant}/oauth2/v2.0/token", post(oauth::token))
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(interactive::authorize_get).post(interactive::authorize_post),
        )
        .route("/{tenant}/login", post(interactive::login_post))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(grants::devicecode))
        .route(
            "/{tenant}/oauth2/deviceauth",
            get(interactive::deviceauth_get).post(interactive::deviceauth_post),
        )
        .route("/{tenant}/adminconsent", get(interactive::adminconsent_v1))
        .route(
            "/{tenant}/v2.0/adminconsent",
            get(interactive::adminconsent_v2),
        )
        .with_state(state)
}
