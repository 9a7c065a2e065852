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

pub mod admin;
pub mod catalogue;
mod oauth;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use api::Authority;
use axum::Router;
use axum::routing::{get, post};
use store::{DirectoryStore, MetaStore};

pub use admin::{Directory, DirectoryError};
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
    /// Failed client authentications per client id (for slowing them down).
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
        .with_state(state)
}
