//! The Microsoft Graph HTTP surface of graphbox (read side).
//!
//! graphbox's promise is that the official Graph SDKs work against it by
//! changing only the base URL, so this crate's job is wire fidelity: the same
//! paths under `/v1.0` and `/beta`, the same JSON shapes, OData options,
//! paging and delta links, the same error envelope and status codes, and the
//! same authorization rules as Microsoft Graph's mailbox import/export API
//! (reference/graph-api.md). Every status and code choice is listed in
//! docs/API.md beside what Graph documents.
//!
//! Map of the crate:
//! - [`error`]: the Graph error envelope and the request-id middleware.
//! - [`auth`]: token minting/validation ([`Authority`]) and the permission table.
//! - [`body`]: JSON request bodies with case-insensitive member names.
//! - [`odata`]: query options, including the `$filter` parser.
//! - [`delta`]: the signed, self-contained delta tokens.
//! - [`path`]: OData resource-path parsing (keys, `$count`, unknown segments).
//! - [`render`]: JSON shapes.
//! - [`routes`]: the handlers.
//!
//! The crate holds no SQL and no storage state: everything persistent is in
//! the [`store::MetaStore`] (signing keys, delta MAC key, mailboxes), so any
//! number of instances can serve the same data.
//!
//! ```no_run
//! # async fn run(meta: std::sync::Arc<dyn store::MetaStore>) -> Result<(), Box<dyn std::error::Error>> {
//! let state = api::AppState::load(meta, "http://127.0.0.1:8080", "http://127.0.0.1:8080").await?;
//! let app = api::router(state);
//! // TCP_NODELAY, or a client's delayed ACK can hold an answer's tail 40 ms.
//! use axum::serve::ListenerExt;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080")
//!     .await?
//!     .tap_io(|tcp| {
//!         let _ = tcp.set_nodelay(true);
//!     });
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod auth;
pub mod body;
pub mod delta;
mod drain;
pub mod error;
pub mod exim;
pub mod ingest;
pub mod odata;
pub mod path;
pub mod render;
pub mod routes;

use std::sync::Arc;

use axum::Router;

pub use auth::{
    AuthSettings, Authority, Grant, Operation, Principal, PrincipalKind, TokenRequest, TokenUser,
};
pub use body::GraphJson;
pub use delta::DeltaCodec;
pub use error::ApiError;

/// Shared state of the HTTP surface.
#[derive(Clone)]
pub struct AppState {
    /// The metadata store.
    pub meta: Arc<dyn store::MetaStore>,
    /// The token authority (signing key, issuer).
    pub authority: Arc<Authority>,
    /// The delta-token codec (MAC key).
    pub delta: Arc<DeltaCodec>,
    /// The externally visible base URL (scheme, host, port; no trailing
    /// slash), e.g. `http://127.0.0.1:8080`: the prefix of `@odata.context`,
    /// `@odata.nextLink`, `@odata.deltaLink` and `parentMailboxUrl`.
    pub public_base_url: String,
    /// Item content, addressed by BLAKE3. [`AppState::load`] starts with an
    /// in-memory store; servers set theirs with [`AppState::with_blobs`].
    pub blobs: Arc<store::BlobStore>,
    /// Import sessions: lifetime, size limit, token key, import URL base.
    pub exim: Arc<exim::Exim>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("authority", &self.authority)
            .field("public_base_url", &self.public_base_url)
            .finish_non_exhaustive()
    }
}

/// Why [`AppState::load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The signing key could not be loaded or created.
    #[error(transparent)]
    Authority(#[from] auth::AuthorityError),
    /// The store failed.
    #[error("loading server settings from the store failed: {0}")]
    Store(#[from] store::StoreError),
}

impl AppState {
    /// Loads (or creates on first start) the signing key and the delta MAC
    /// key from `meta` and assembles the state. `issuer_base` is the token
    /// authority's URL (tokens carry `iss` = `{issuer_base}/{tenant}/v2.0`).
    pub async fn load(
        meta: Arc<dyn store::MetaStore>,
        public_base_url: impl Into<String>,
        issuer_base: impl Into<String>,
    ) -> Result<AppState, StateError> {
        let authority =
            Authority::open(meta.clone(), issuer_base, auth::AuthSettings::default()).await?;
        let delta = DeltaCodec::load_or_create(meta.as_ref()).await?;
        let public_base_url = public_base_url.into().trim_end_matches('/').to_owned();
        let exim = exim::Exim::load_or_create(
            meta.as_ref(),
            exim::ImportSettings::defaults(&public_base_url),
        )
        .await?;
        Ok(AppState {
            meta,
            authority: Arc::new(authority),
            delta: Arc::new(delta),
            public_base_url,
            blobs: Arc::new(store::BlobStore::memory()),
            exim: Arc::new(exim),
        })
    }

    /// An item's content: from the meta store when it is kept there (small
    /// imported items), else from the blob store (hash-checked).
    pub async fn content(&self, blob: &store::BlobRef) -> store::Result<bytes::Bytes> {
        let hash = [blob.hash.clone()];
        if let Some(data) = self.meta.inline_content(&hash).await?.remove(&blob.hash) {
            return Ok(data);
        }
        self.blobs.get(&blob.hash).await
    }

    /// Uses `blobs` for item content (the server's durable blob store).
    pub fn with_blobs(mut self, blobs: Arc<store::BlobStore>) -> AppState {
        self.blobs = blobs;
        self
    }

    /// Replaces the import settings (session lifetime, size limit, import
    /// URL base), keeping the token key.
    pub fn with_import_settings(mut self, settings: exim::ImportSettings) -> AppState {
        self.exim = Arc::new(self.exim.with_settings(settings));
        self
    }
}

/// The Graph router: `/v1.0/…` and `/beta/…`, every answer with
/// `request-id` / `client-request-id` headers and Graph's error envelope.
pub fn router(state: AppState) -> Router {
    Router::new()
        .fallback(routes::dispatch)
        .layer(axum::middleware::from_fn(error::request_context))
        .with_state(state)
}
