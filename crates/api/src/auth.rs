//! Bearer tokens: minting, validation, and the operation → permission table.
//!
//! graphbox plays Entra ID for its own Graph surface, so the tokens it issues
//! look like Entra v2 access tokens for Microsoft Graph (`iss` =
//! `{issuer_base}/{tid}/v2.0`, `aud` = `https://graph.microsoft.com`, `tid`,
//! `oid`, `azp`/`appid`, `scp` or `roles`, a `kid` header) and are signed with
//! RS256. Tools that decode tokens (jwt.ms, MSAL caches, SDK diagnostics) see
//! what they expect, and a client can switch between graphbox and Exchange
//! Online without changing how it reasons about tokens.
//!
//! Signing keys are a rotating set kept in the meta store as write-once
//! settings (`signing_key_pem` for the first, `signing_key.{n}` for rotated
//! ones; see the `keys` module), so every instance of a multi-instance
//! deployment signs and verifies with the same keys, a restart does not
//! invalidate outstanding tokens, and tokens are validated by their `kid`
//! against every key that may still have signed a valid token. Tokens of
//! configured external issuers (a real Entra ID tenant) are validated against
//! their JWKS and mapped to graphbox tenants and users (`external` module).
//!
//! Authorization follows Graph's two models exactly:
//! - **delegated** tokens (`scp`, space separated) act for the signed-in user
//!   (`oid`) and reach only that user's own mailboxes (primary and archive),
//!   whatever Exchange permissions the user has elsewhere;
//! - **application** tokens (`roles`) reach every mailbox of their tenant (`tid`).
//!
//! Neither ever reaches another tenant. Which permission each operation needs
//! is the table in reference/graph-api.md §2, kept here as data
//! ([`Operation::permissions`]); the least-privileged permission and the
//! documented higher-privileged ones are accepted, nothing else.

mod external;
mod keys;

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::error::ApiError;
use external::{IssuerState, KeyLookup};
use keys::{KeyMaterial, KeySet};
use store::{Mailbox, MetaStore};

pub use external::{ExternalIssuer, UserMatch};
pub use keys::{KeyState, SIGNING_KEY_CREATED_SETTING, slot_setting};

/// The `aud` graphbox puts into the tokens it mints (Graph's resource URI).
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// Graph's application id, the other audience Entra uses for Graph tokens.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// The meta-store setting that holds the first (slot 0) PKCS#8 PEM signing
/// key; rotated keys follow in `signing_key.{n}` ([`slot_setting`]).
pub const SIGNING_KEY_SETTING: &str = "signing_key_pem";
/// Default allowed clock skew for `exp` / `nbf`, in seconds.
pub const CLOCK_SKEW_SECS: u64 = 60;
/// Largest configurable clock skew, in seconds.
pub const MAX_CLOCK_SKEW_SECS: u64 = 600;
/// Default lifetime of the access tokens the identity endpoints issue (Entra's).
pub const DEFAULT_TOKEN_LIFETIME_SECS: i64 = 3599;
/// Shortest configurable access token lifetime, in seconds (5 minutes).
pub const MIN_TOKEN_LIFETIME_SECS: i64 = 300;
/// Longest configurable access token lifetime, in seconds (24 hours); also
/// how long a retired signing key stays accepted (plus skew and refresh).
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 86_400;
/// How often servers reload the signing key set, in seconds.
pub const KEY_REFRESH_SECS: i64 = 60;
/// Least time between key reloads caused by an unknown `kid`, in seconds.
pub const UNKNOWN_KID_RELOAD_SECS: u64 = 10;

/// Why an authority could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// The store failed to read or write the key.
    #[error("storing the signing key failed: {0}")]
    Store(#[from] store::StoreError),
    /// A stored key is not a usable RSA key.
    #[error("a signing key in the store is unusable: {0}")]
    Key(String),
    /// The settings are not usable (e.g. an external issuer's configuration).
    #[error("{0}")]
    Config(String),
}

/// What a token is for: the signed-in user (delegated) or the app itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Delegated token for `user`, carrying `scopes` (`scp`).
    Delegated {
        /// The signed-in user.
        user: TokenUser,
        /// Delegated permissions, e.g. `MailboxItem.Read`.
        scopes: Vec<String>,
    },
    /// App-only token carrying application permissions (`roles`).
    Application {
        /// Application permissions, e.g. `MailboxItem.Read.All`.
        roles: Vec<String>,
    },
}

/// The user a delegated token is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUser {
    /// Directory object id (`oid`).
    pub id: Uuid,
    /// User principal name (`upn`, `preferred_username`).
    pub upn: String,
}

/// What [`Authority::mint`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The tenant (`tid`).
    pub tenant_id: Uuid,
    /// The client application (`azp`, `appid`).
    pub app_id: Uuid,
    /// Delegated or application permissions.
    pub grant: Grant,
    /// How long the token is valid.
    pub lifetime: Duration,
    /// When it was issued (`iat` and `nbf`); `None` means now. Tests use it
    /// for expired and not-yet-valid tokens.
    pub issued_at: Option<OffsetDateTime>,
}

/// The claims graphbox issues and reads. Unknown claims are ignored on input.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Claims {
    /// A string in the tokens graphbox mints; validation also reads arrays.
    aud: serde_json::Value,
    iss: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    tid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    azp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idtyp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uti: Option<String>,
}

/// Who is calling, after the token checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's tenant (`tid`).
    pub tenant_id: Uuid,
    /// Delegated or application.
    pub kind: PrincipalKind,
}

/// The two kinds of callers Graph knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// Acting for a signed-in user.
    Delegated {
        /// The user (`oid`).
        user_id: Uuid,
        /// Delegated permissions (`scp`).
        scopes: Vec<String>,
    },
    /// Acting as the application itself.
    Application {
        /// The client application (`azp` / `appid`).
        app_id: String,
        /// Application permissions (`roles`).
        roles: Vec<String>,
    },
}

/// The operations of the Graph surface, each with its permission row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `GET /users/{id}/settings/exchange`.
    ReadExchangeSettings,
    /// `GET /admin/exchange/mailboxes/{id}` (undocumented; see [`Operation::permissions`]).
    ReadMailbox,
    /// List/get folders, childFolders, folders delta.
    ReadFolders,
    /// Create / update / delete folder.
    WriteFolders,
    /// List/get items, items delta.
    ReadItems,
    /// Delete item.
    DeleteItems,
    /// `exportItems`.
    ExportItems,
    /// `createImportSession`.
    CreateImportSession,
}

/// The permissions one operation accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermissionRow {
    /// Delegated scopes, least privileged first.
    pub delegated: &'static [&'static str],
    /// Application roles, least privileged first.
    pub application: &'static [&'static str],
}

impl Operation {
    /// Every operation, for tests and documentation.
    pub const ALL: [Operation; 8] = [
        Operation::ReadExchangeSettings,
        Operation::ReadMailbox,
        Operation::ReadFolders,
        Operation::WriteFolders,
        Operation::ReadItems,
        Operation::DeleteItems,
        Operation::ExportItems,
        Operation::CreateImportSession,
    ];

    /// The permission row of graph-api.md §2 (least, then higher privileged).
    ///
    /// `ReadMailbox` is not in Graph's documentation (the route exists only in
    /// SDK metadata); graphbox accepts any permission that reads part of the
    /// mailbox, since the answer (the id) is already known to such callers.
    pub fn permissions(self) -> PermissionRow {
        match self {
            Operation::ReadExchangeSettings => PermissionRow {
                delegated: &["User.Read.All", "User.ReadWrite.All"],
                application: &["User.Read.All", "User.ReadWrite.All"],
            },
            Operation::ReadMailbox => PermissionRow {
                delegated: &[
                    "MailboxFolder.Read",
                    "MailboxFolder.ReadWrite",
                    "MailboxItem.Read",
                    "MailboxItem.ReadWrite",
                    "MailboxItem.Export",
                    "MailboxItem.ImportExport",
                ],
                application: &[
                    "MailboxFolder.Read.All",
                    "MailboxFolder.ReadWrite.All",
                    "MailboxItem.Read.All",
                    "MailboxItem.ReadWrite.All",
                    "MailboxItem.Export.All",
                    "MailboxItem.ImportExport.All",
                ],
            },
            Operation::ReadFolders => PermissionRow {
                delegated: &["MailboxFolder.Read", "MailboxFolder.ReadWrite"],
                application: &["MailboxFolder.Read.All", "MailboxFolder.ReadWrite.All"],
            },
            Operation::WriteFolders => PermissionRow {
                delegated: &["MailboxFolder.ReadWrite"],
                application: &["MailboxFolder.ReadWrite.All"],
            },
            Operation::ReadItems => PermissionRow {
                delegated: &["MailboxItem.Read"],
                application: &["MailboxItem.Read.All"],
            },
            Operation::DeleteItems => PermissionRow {
                delegated: &["MailboxItem.ReadWrite"],
                application: &["MailboxItem.ReadWrite.All"],
            },
            Operation::ExportItems => PermissionRow {
                delegated: &["MailboxItem.Export", "MailboxItem.ImportExport"],
                application: &["MailboxItem.Export.All", "MailboxItem.ImportExport.All"],
            },
            Operation::CreateImportSession => PermissionRow {
                delegated: &["MailboxItem.ImportExport"],
                application: &["MailboxItem.ImportExport.All"],
            },
        }
    }

    /// Whether the operation is answered by the directory (Entra) side of
    /// Graph, which words its 403 differently from Exchange.
    fn is_directory(self) -> bool {
        matches!(self, Operation::ReadExchangeSettings)
    }
}

impl Principal {
    /// The user a delegated principal acts for.
    pub fn user_id(&self) -> Option<Uuid> {
        match &self.kind {
            PrincipalKind::Delegated { user_id, .. } => Some(*user_id),
            PrincipalKind::Application { .. } => None,
        }
    }

    /// Whether the token carries a permission that allows `op`.
    pub fn allows(&self, op: Operation) -> bool {
        let row = op.permissions();
        let (granted, accepted) = match &self.kind {
            PrincipalKind::Delegated { scopes, .. } => (scopes, row.delegated),
            PrincipalKind::Application { roles, .. } => (roles, row.application),
        };
        granted
            .iter()
            .any(|g| accepted.iter().any(|a| a.eq_ignore_ascii_case(g)))
    }

    /// 403 unless the token allows `op`.
    pub fn require(&self, op: Operation) -> Result<(), ApiError> {
        if self.allows(op) {
            return Ok(());
        }
        let row = op.permissions();
        let needed = match self.kind {
            PrincipalKind::Delegated { .. } => row.delegated,
            PrincipalKind::Application { .. } => row.application,
        };
        let kind = match self.kind {
            PrincipalKind::Delegated { .. } => "delegated",
            PrincipalKind::Application { .. } => "application",
        };
        Err(forbidden(
            op,
            format!(
                "Access is denied. The token lacks the {kind} permission this operation needs; grant one of: {}.",
                needed.join(", ")
            ),
        ))
    }

    /// 403 unless the principal may reach `mailbox`: an application token
    /// reaches its own tenant's mailboxes, a delegated token only the
    /// signed-in user's own.
    pub fn require_mailbox(&self, mailbox: &Mailbox) -> Result<(), ApiError> {
        let reachable = mailbox.tenant_id == self.tenant_id
            && match &self.kind {
                PrincipalKind::Application { .. } => true,
                PrincipalKind::Delegated { user_id, .. } => mailbox.user_id == *user_id,
            };
        if reachable {
            return Ok(());
        }
        let why = match self.kind {
            PrincipalKind::Delegated { .. } if mailbox.tenant_id == self.tenant_id => {
                "delegated tokens reach only the signed-in user's own mailboxes; use an application token for other mailboxes"
            }
            _ => "the mailbox belongs to another tenant",
        };
        Err(forbidden(
            Operation::ReadMailbox,
            format!("Access is denied. Check credentials and try again. ({why})"),
        ))
    }
}

fn forbidden(op: Operation, message: String) -> ApiError {
    let code = if op.is_directory() {
        "Authorization_RequestDenied"
    } else {
        "ErrorAccessDenied"
    };
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

/// A 401 with Graph's code and a `WWW-Authenticate: Bearer` challenge.
fn unauthenticated(issuer_base: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
    )
    .with_header(
        header::WWW_AUTHENTICATE,
        format!(
            "Bearer realm=\"\", authorization_uri=\"{issuer_base}/common/oauth2/authorize\", client_id=\"{GRAPH_APP_ID}\""
        ),
    )
}

/// Validation and key-management settings of an [`Authority`].
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Allowed clock skew for `exp` and `nbf` (default [`CLOCK_SKEW_SECS`]).
    pub clock_skew: Duration,
    /// The longest lifetime of a token this authority signs (default
    /// [`MAX_TOKEN_LIFETIME_SECS`]): a retired key stays published and
    /// accepted this long, plus the clock skew and `key_refresh`.
    pub max_token_lifetime: Duration,
    /// How often every instance reloads the key set (the server's
    /// maintenance loop). A rotation activates its key twice this long after
    /// creating it, so every instance publishes it before anyone signs with it.
    pub key_refresh: Duration,
    /// Least time between two reloads of the key set (or refetches of an
    /// external JWKS) caused by tokens with an unknown `kid`.
    pub unknown_kid_reload: std::time::Duration,
    /// Trusted external issuers.
    pub external: Vec<ExternalIssuer>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            clock_skew: Duration::seconds(CLOCK_SKEW_SECS as i64),
            max_token_lifetime: Duration::seconds(MAX_TOKEN_LIFETIME_SECS),
            key_refresh: Duration::seconds(KEY_REFRESH_SECS),
            unknown_kid_reload: std::time::Duration::from_secs(UNKNOWN_KID_RELOAD_SECS),
            external: Vec::new(),
        }
    }
}

impl AuthSettings {
    /// How long a retired key stays published and accepted, in seconds.
    fn retention(&self) -> i64 {
        (self.max_token_lifetime + self.clock_skew + self.key_refresh).whole_seconds()
    }

    fn skew_secs(&self) -> i64 {
        self.clock_skew.whole_seconds().max(0)
    }
}

/// One signing key as `graphbox admin keys list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Rotation slot (0 is the deployment's first key).
    pub slot: u32,
    /// The key id (RFC 7638 thumbprint).
    pub kid: String,
    /// When the key was created.
    pub created: OffsetDateTime,
    /// When it became (or becomes) the signing key.
    pub activates: OffsetDateTime,
    /// Pending, current, previous or dropped.
    pub state: KeyState,
    /// When a retired key stops being published and accepted.
    pub drop_after: Option<OffsetDateTime>,
}

/// The token authority: signs tokens with the current key of its key set,
/// validates its own tokens by `kid` and those of configured external
/// issuers, publishes the JWKS.
pub struct Authority {
    issuer_base: String,
    settings: AuthSettings,
    keys: std::sync::RwLock<Arc<KeySet>>,
    /// The store the keys come from; `None` for an in-memory key.
    store: Option<Arc<dyn MetaStore>>,
    /// When a token with an unknown kid last made the key set reload.
    unknown_kid: tokio::sync::Mutex<Option<std::time::Instant>>,
    external: Vec<IssuerState>,
    /// Tokens whose signature and claims already checked out, by SHA-256 of
    /// the token, with their lifetime: a client sends the same token for an
    /// hour, and an RSA verification per request cost ~5% of the server's
    /// CPU under export load. The lifetime is still checked on every use.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], VerifiedToken>>,
}

#[derive(Clone)]
struct VerifiedToken {
    principal: Principal,
    nbf: i64,
    exp: i64,
}

/// Entries of the verified-token cache before it is emptied.
const VERIFIED_TOKENS_MAX: usize = 4096;

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("issuer_base", &self.issuer_base)
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

/// What the unverified payload says about where a token comes from.
struct Peek {
    iss: String,
    tid: Option<String>,
}

enum Route {
    Local,
    External(usize),
}

/// The claims read from an external issuer's token.
#[derive(Deserialize)]
struct ExternalClaims {
    iss: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    scp: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    upn: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    unique_name: Option<String>,
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

impl Authority {
    /// Loads the key set from the store, generating and storing a first
    /// 2048-bit RSA key if there is none. Concurrent first starts agree on
    /// one key: `put_setting_if_absent` returns the value that won. The
    /// authority keeps no handle on the store (no reloads); servers use
    /// [`Authority::open`].
    ///
    /// `issuer_base` is the authority URL without the tenant, e.g.
    /// `https://127.0.0.1:8443` (tokens then carry `iss` =
    /// `https://127.0.0.1:8443/{tid}/v2.0`).
    pub async fn load_or_create(
        meta: &dyn MetaStore,
        issuer_base: impl Into<String>,
    ) -> Result<Authority, AuthorityError> {
        let settings = AuthSettings::default();
        let keys = KeySet::default()
            .reload(meta, unix_now(), settings.retention())
            .await?;
        Ok(Authority::with_keys(keys, issuer_base, None))
    }

    /// Like [`Authority::load_or_create`], keeping `meta` to reload the key
    /// set ([`Authority::refresh`], and on tokens with an unknown `kid`) and
    /// to rotate keys, with `settings` (validated: external issuers with a
    /// bad configuration are refused).
    pub async fn open(
        meta: Arc<dyn MetaStore>,
        issuer_base: impl Into<String>,
        settings: AuthSettings,
    ) -> Result<Authority, AuthorityError> {
        let keys = KeySet::default()
            .reload(meta.as_ref(), unix_now(), settings.retention())
            .await?;
        Authority::with_keys(keys, issuer_base, Some(meta)).with_settings(settings)
    }

    /// Builds an authority from one PKCS#8 PEM RSA private key, in memory.
    pub fn from_pem(
        pem: &str,
        issuer_base: impl Into<String>,
    ) -> Result<Authority, AuthorityError> {
        let material = KeyMaterial::from_pem(pem)?;
        Ok(Authority::with_keys(
            KeySet::single(material, unix_now()),
            issuer_base,
            None,
        ))
    }

    fn with_keys(
        keys: KeySet,
        issuer_base: impl Into<String>,
        store: Option<Arc<dyn MetaStore>>,
    ) -> Authority {
        Authority {
            issuer_base: issuer_base.into().trim_end_matches('/').to_owned(),
            settings: AuthSettings::default(),
            keys: std::sync::RwLock::new(Arc::new(keys)),
            store,
            unknown_kid: tokio::sync::Mutex::new(None),
            external: Vec::new(),
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Replaces the settings (clock skew, key lifetimes, external issuers).
    pub fn with_settings(mut self, settings: AuthSettings) -> Result<Authority, AuthorityError> {
        let mut external = Vec::new();
        for cfg in &settings.external {
            let issuer = cfg.issuer.clone();
            external.push(
                IssuerState::new(cfg.clone()).map_err(|e| {
                    AuthorityError::Config(format!("external issuer {issuer:?}: {e}"))
                })?,
            );
        }
        if settings.clock_skew.is_negative() || settings.max_token_lifetime.is_negative() {
            return Err(AuthorityError::Config(
                "the clock skew and token lifetime cannot be negative".into(),
            ));
        }
        self.external = external;
        self.settings = settings;
        Ok(self)
    }

    /// The settings in force.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The issuer base URL (no trailing slash).
    pub fn issuer_base(&self) -> &str {
        &self.issuer_base
    }

    /// The issuer of tokens for `tenant`: `{issuer_base}/{tenant}/v2.0`.
    pub fn issuer_for(&self, tenant: Uuid) -> String {
        format!("{}/{}/v2.0", self.issuer_base, tenant.as_hyphenated())
    }

    fn key_set(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn signing_key(&self) -> Arc<KeyMaterial> {
        self.key_set().signing(unix_now())
    }

    /// The key id (`kid`) of the current signing key: the RFC 7638 JWK
    /// thumbprint of its public key.
    pub fn kid(&self) -> String {
        self.signing_key().kid.clone()
    }

    /// The JSON Web Key Set as an OIDC `jwks_uri` serves it: every key that
    /// signs or may have signed a still-valid token (newest first), and a
    /// pending key about to sign.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .key_set()
            .published(unix_now(), self.settings.retention())
            .iter()
            .map(|k| k.jwk())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Every key of the set with its state (dropped keys included).
    pub fn keys(&self) -> Vec<KeyInfo> {
        let set = self.key_set();
        let now = unix_now();
        let retention = self.settings.retention();
        let at =
            |t: i64| OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        (0..set.entries.len())
            .map(|i| {
                let e = &set.entries[i];
                KeyInfo {
                    slot: e.slot,
                    kid: e.kid.clone(),
                    created: at(e.created),
                    // Slot 0 signs from its creation (its `activates` is 0).
                    activates: at(e.activates.max(e.created)),
                    state: set.state(i, now, retention),
                    drop_after: set.drop_after(i, now, retention).map(at),
                }
            })
            .collect()
    }

    /// Reloads the key set from the store (new rotations, dropped keys).
    /// Every instance of a deployment does this every `key_refresh`.
    pub async fn refresh(&self) -> Result<(), AuthorityError> {
        let Some(meta) = &self.store else {
            return Ok(());
        };
        let current = self.key_set();
        let next = current
            .reload(meta.as_ref(), unix_now(), self.settings.retention())
            .await?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(())
    }

    /// Adds a new signing key to the store. It is published at once and
    /// signs from `activate_in` on (never before a newer pending key); the
    /// key it replaces stays accepted until its tokens have expired.
    pub async fn rotate(&self, activate_in: Duration) -> Result<KeyInfo, AuthorityError> {
        let Some(meta) = &self.store else {
            return Err(AuthorityError::Config(
                "this authority has no store to keep a new key in".into(),
            ));
        };
        let (set, slot) = self
            .key_set()
            .rotate(
                meta.as_ref(),
                unix_now(),
                activate_in.whole_seconds(),
                self.settings.retention(),
            )
            .await?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        self.keys()
            .into_iter()
            .find(|k| k.slot == slot)
            .ok_or_else(|| AuthorityError::Key(format!("the new key of slot {slot} vanished")))
    }

    /// Rotates when the newest key is `every` old or older (activating the
    /// new key after twice `key_refresh`); `None` when no rotation was due.
    pub async fn rotate_if_due(&self, every: Duration) -> Result<Option<KeyInfo>, AuthorityError> {
        self.refresh().await?;
        let newest = self
            .key_set()
            .entries
            .last()
            .map(|e| e.created)
            .unwrap_or(0);
        if unix_now() < newest.saturating_add(every.whole_seconds()) {
            return Ok(None);
        }
        self.rotate(self.settings.key_refresh * 2).await.map(Some)
    }

    /// Signs an access token for `req` with the current key.
    pub fn mint(&self, req: &TokenRequest) -> String {
        let iat = req.issued_at.unwrap_or_else(OffsetDateTime::now_utc);
        let exp = iat + req.lifetime;
        let app = req.app_id.as_hyphenated().to_string();
        let mut claims = Claims {
            aud: GRAPH_AUDIENCE.into(),
            iss: self.issuer_for(req.tenant_id),
            iat: iat.unix_timestamp(),
            nbf: iat.unix_timestamp(),
            exp: exp.unix_timestamp(),
            tid: req.tenant_id.as_hyphenated().to_string(),
            oid: None,
            sub: None,
            azp: Some(app.clone()),
            appid: Some(app.clone()),
            scp: None,
            roles: None,
            upn: None,
            preferred_username: None,
            idtyp: None,
            ver: Some("2.0".to_owned()),
            uti: Some(URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())),
        };
        match &req.grant {
            Grant::Delegated { user, scopes } => {
                let oid = user.id.as_hyphenated().to_string();
                claims.oid = Some(oid.clone());
                claims.sub = Some(oid);
                claims.scp = Some(scopes.join(" "));
                claims.upn = Some(user.upn.clone());
                claims.preferred_username = Some(user.upn.clone());
                claims.idtyp = Some("user".to_owned());
            }
            Grant::Application { roles } => {
                claims.oid = Some(app.clone());
                claims.sub = Some(app);
                claims.roles = Some(roles.clone());
                claims.idtyp = Some("app".to_owned());
            }
        }
        let key = self.signing_key();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &claims, &key.encoding)
            .expect("RS256 signing with a valid RSA key cannot fail")
    }

    fn bearer<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthenticated(&self.issuer_base, "Access token is empty."));
        };
        let value = value.to_str().map_err(|_| {
            unauthenticated(&self.issuer_base, "Access token has an invalid encoding.")
        })?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(unauthenticated(
                    &self.issuer_base,
                    "The Authorization header must use the Bearer scheme: 'Authorization: Bearer <access token>'.",
                ));
            }
        };
        if token.is_empty() {
            return Err(unauthenticated(&self.issuer_base, "Access token is empty."));
        }
        Ok(token)
    }

    /// Validates the `Authorization: Bearer …` header into a [`Principal`]
    /// with the keys in memory (see [`Authority::validate`]); 401
    /// `InvalidAuthenticationToken` (with a `WWW-Authenticate` challenge)
    /// when it is missing, malformed, badly signed, expired, not yet valid,
    /// or meant for another audience or issuer.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        self.validate(self.bearer(headers)?)
    }

    /// [`Authority::authenticate`] for requests: also reloads the key set
    /// for an unknown `kid` and accepts tokens of external issuers.
    pub async fn authenticate_async(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        self.validate_async(self.bearer(headers)?).await
    }

    fn fail(&self, m: &str) -> ApiError {
        unauthenticated(
            &self.issuer_base,
            format!("Access token validation failure. {m}"),
        )
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Principal> {
        let v = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()?;
        let now = unix_now();
        let skew = self.settings.skew_secs();
        // Outside its lifetime: the full check gives the error.
        (now <= v.exp + skew && now + skew >= v.nbf).then_some(v.principal)
    }

    fn remember(&self, key: [u8; 32], principal: &Principal, nbf: i64, exp: i64) {
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= VERIFIED_TOKENS_MAX {
            cache.clear();
        }
        cache.insert(
            key,
            VerifiedToken {
                principal: principal.clone(),
                nbf,
                exp,
            },
        );
    }

    /// Validates a raw JWT of this authority with the keys in memory (no
    /// store reload, no external issuers: [`Authority::validate_async`]
    /// does both).
    pub fn validate(&self, token: &str) -> Result<Principal, ApiError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(p) = self.cached(&key) {
            return Ok(p);
        }
        let (header, peek) = self.inspect(token)?;
        let (principal, nbf, exp) = match self.route(&peek)? {
            Route::Local => self.validate_local(token, &header)?,
            Route::External(_) => {
                return Err(self.fail(
                    "Tokens of external issuers are validated on requests only (Authority::validate_async).",
                ));
            }
        };
        self.remember(key, &principal, nbf, exp);
        Ok(principal)
    }

    /// Validates a raw JWT of this authority (reloading the key set once
    /// for an unknown `kid`, at most every `unknown_kid_reload`) or of a
    /// configured external issuer (fetching its JWKS as needed).
    pub async fn validate_async(&self, token: &str) -> Result<Principal, ApiError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(p) = self.cached(&key) {
            return Ok(p);
        }
        let (header, peek) = self.inspect(token)?;
        let (principal, nbf, exp) = match self.route(&peek)? {
            Route::Local => {
                let kid = header.kid.as_deref().unwrap_or_default();
                let known = self
                    .key_set()
                    .find(kid, unix_now(), self.settings.retention())
                    .is_some();
                if !known {
                    self.reload_for_unknown_kid().await;
                }
                self.validate_local(token, &header)?
            }
            Route::External(i) => {
                self.validate_external(&self.external[i], token, &header)
                    .await?
            }
        };
        self.remember(key, &principal, nbf, exp);
        Ok(principal)
    }

    async fn reload_for_unknown_kid(&self) {
        if self.store.is_none() {
            return;
        }
        let mut last = self.unknown_kid.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.settings.unknown_kid_reload) {
            return;
        }
        *last = Some(std::time::Instant::now());
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "reloading the signing keys failed");
        }
    }

    /// The header (RS256 only) and the unverified issuer of a token.
    fn inspect(&self, token: &str) -> Result<(Header, Peek), ApiError> {
        let malformed = || self.fail("The token is not a well-formed JWT.");
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            // A readable header with an algorithm jsonwebtoken does not even
            // know (`none`): say so rather than "malformed".
            let alg = token
                .split('.')
                .next()
                .and_then(|h| URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')).ok())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v.get("alg").and_then(|a| a.as_str()).map(str::to_owned));
            match alg {
                Some(a) => self.fail(&format!(
                    "The token must be signed with RS256 (alg '{a}' is not accepted)."
                )),
                None => malformed(),
            }
        })?;
        if header.alg != Algorithm::RS256 {
            return Err(self.fail(&format!(
                "The token must be signed with RS256 (alg '{:?}' is not accepted).",
                header.alg
            )));
        }
        let payload = token.split('.').nth(1).ok_or_else(malformed)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| malformed())?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
        let iss = v
            .get("iss")
            .and_then(|s| s.as_str())
            .ok_or_else(|| self.fail("The 'iss' claim is missing."))?
            .to_owned();
        let tid = v.get("tid").and_then(|s| s.as_str()).map(str::to_owned);
        Ok((header, Peek { iss, tid }))
    }

    fn route(&self, peek: &Peek) -> Result<Route, ApiError> {
        if peek
            .iss
            .strip_prefix(&self.issuer_base)
            .is_some_and(|rest| rest.starts_with('/'))
        {
            return Ok(Route::Local);
        }
        self.external
            .iter()
            .position(|e| e.cfg.matches(&peek.iss, peek.tid.as_deref()))
            .map(Route::External)
            .ok_or_else(|| self.fail("Invalid issuer."))
    }

    fn jwt_error(&self, e: &jsonwebtoken::errors::Error) -> ApiError {
        match e.kind() {
            ErrorKind::ExpiredSignature => unauthenticated(
                &self.issuer_base,
                "Lifetime validation failed, the token is expired.",
            ),
            ErrorKind::ImmatureSignature => unauthenticated(
                &self.issuer_base,
                "Lifetime validation failed, the token is not yet valid (nbf).",
            ),
            ErrorKind::InvalidAudience => self.fail("Invalid audience."),
            ErrorKind::InvalidSignature => self.fail("Invalid signature."),
            ErrorKind::MissingRequiredClaim(c) => {
                self.fail(&format!("The '{c}' claim is missing."))
            }
            ErrorKind::Json(e) => self.fail(&format!("The token's claims are not valid: {e}.")),
            _ => self.fail("The token could not be decoded."),
        }
    }

    fn validation(&self, audiences: &[impl ToString]) -> Validation {
        let mut v = Validation::new(Algorithm::RS256);
        v.leeway = self.settings.skew_secs() as u64;
        v.validate_nbf = true;
        v.validate_exp = true;
        v.set_audience(audiences);
        v
    }

    fn validate_local(
        &self,
        token: &str,
        header: &Header,
    ) -> Result<(Principal, i64, i64), ApiError> {
        let fail = |m: &str| self.fail(m);
        let kid = header.kid.as_deref().unwrap_or_default();
        let key = self
            .key_set()
            .find(kid, unix_now(), self.settings.retention())
            .ok_or_else(|| fail("The token is signed with an unknown key (kid)."))?;
        let mut v =
            self.validation(&[GRAPH_AUDIENCE, "https://graph.microsoft.com/", GRAPH_APP_ID]);
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &v)
            .map_err(|e| self.jwt_error(&e))?;
        let c = data.claims;
        let tenant_id =
            Uuid::parse_str(&c.tid).map_err(|_| fail("The 'tid' claim is not a GUID."))?;
        if c.iss != self.issuer_for(tenant_id) {
            return Err(fail("Invalid issuer."));
        }
        let kind = if let Some(scp) = c.scp {
            let oid = c
                .oid
                .ok_or_else(|| fail("Delegated tokens need an 'oid' claim."))?;
            let user_id =
                Uuid::parse_str(&oid).map_err(|_| fail("The 'oid' claim is not a GUID."))?;
            PrincipalKind::Delegated {
                user_id,
                scopes: scp.split_whitespace().map(str::to_owned).collect(),
            }
        } else {
            let app_id = c
                .azp
                .or(c.appid)
                .ok_or_else(|| fail("Application tokens need an 'azp' or 'appid' claim."))?;
            PrincipalKind::Application {
                app_id,
                roles: dedup(c.roles.unwrap_or_default()),
            }
        };
        Ok((Principal { tenant_id, kind }, c.nbf, c.exp))
    }

    async fn validate_external(
        &self,
        issuer: &IssuerState,
        token: &str,
        header: &Header,
    ) -> Result<(Principal, i64, i64), ApiError> {
        let cfg = &issuer.cfg;
        let name = &cfg.issuer;
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| self.fail("The token has no key id (kid)."))?;
        let (lookup, removed) = issuer.key(kid, self.settings.unknown_kid_reload).await;
        if removed {
            // The issuer withdrew keys: forget what they verified.
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        let key = match lookup {
            KeyLookup::Found(k) => k,
            KeyLookup::Unknown => {
                return Err(self.fail(&format!(
                    "The token is signed with an unknown key (kid) of issuer '{name}'."
                )));
            }
            KeyLookup::Unavailable(e) => {
                return Err(self.fail(&format!(
                    "The signing keys of issuer '{name}' could not be fetched ({e})."
                )));
            }
        };
        let mut v = self.validation(&cfg.audiences);
        v.set_required_spec_claims(&["exp", "aud", "iss"]);
        let data = jsonwebtoken::decode::<ExternalClaims>(token, &key, &v)
            .map_err(|e| self.jwt_error(&e))?;
        let c = data.claims;
        let tid = c
            .tid
            .as_deref()
            .ok_or_else(|| self.fail("The 'tid' claim is missing."))?;
        if !cfg.matches(&c.iss, Some(tid)) {
            return Err(self.fail("Invalid issuer."));
        }
        let tenant_id = cfg.tenant(tid).ok_or_else(|| {
            self.fail(&format!(
                "The tenant '{tid}' of issuer '{name}' is not mapped to a graphbox tenant."
            ))
        })?;
        let kind = match c.scp {
            Some(scp) => {
                let user_id = self
                    .external_user(
                        cfg,
                        tenant_id,
                        c.oid,
                        c.upn.or(c.preferred_username).or(c.unique_name),
                    )
                    .await?;
                let scopes = scp.split_whitespace().map(str::to_owned).collect();
                PrincipalKind::Delegated {
                    user_id,
                    scopes: ExternalIssuer::map_names(cfg.scope_map.as_ref(), scopes),
                }
            }
            None => {
                let app_id = c.azp.or(c.appid).ok_or_else(|| {
                    self.fail("Application tokens need an 'azp' or 'appid' claim.")
                })?;
                let roles = dedup(c.roles.unwrap_or_default());
                PrincipalKind::Application {
                    app_id,
                    roles: ExternalIssuer::map_names(cfg.role_map.as_ref(), roles),
                }
            }
        };
        let nbf = c.nbf.or(c.iat).unwrap_or(i64::MIN);
        Ok((Principal { tenant_id, kind }, nbf, c.exp))
    }

    /// The graphbox user a delegated external token acts for.
    async fn external_user(
        &self,
        cfg: &ExternalIssuer,
        tenant_id: Uuid,
        oid: Option<String>,
        upn: Option<String>,
    ) -> Result<Uuid, ApiError> {
        let Some(meta) = &self.store else {
            return Err(self.fail("This server cannot map external users (no directory)."));
        };
        let (key, what) = match cfg.user_match {
            UserMatch::Upn => (
                upn.ok_or_else(|| {
                    self.fail("Delegated tokens need a 'upn' or 'preferred_username' claim.")
                })?,
                "user principal name",
            ),
            UserMatch::Oid => {
                let oid = oid.ok_or_else(|| self.fail("Delegated tokens need an 'oid' claim."))?;
                Uuid::parse_str(&oid).map_err(|_| self.fail("The 'oid' claim is not a GUID."))?;
                (oid, "object id")
            }
        };
        match meta.find_user(Some(tenant_id), &key).await {
            Ok(u) if u.tenant_id == tenant_id => Ok(u.id),
            Ok(_) | Err(store::StoreError::NotFound { .. }) => Err(self.fail(&format!(
                "No graphbox user has the {what} '{key}' in the tenant mapped from issuer '{}'.",
                cfg.issuer
            ))),
            Err(e) => {
                tracing::error!(error = %e, "looking up the user of an external token failed");
                Err(ApiError::internal("looking up the token's user failed"))
            }
        }
    }

    /// Signs arbitrary claims as an RS256 JWT with the current signing key
    /// (`kid` header), e.g. an OpenID Connect ID token.
    pub fn sign_json(&self, claims: &serde_json::Value) -> String {
        let key = self.signing_key();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .expect("RS256 signing with a valid RSA key cannot fail")
    }
}

fn dedup(names: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    names
        .into_iter()
        .filter(|r| seen.insert(r.clone()))
        .collect()
}

/// Generates a fresh PKCS#8 PEM RSA-2048 signing key (what
/// [`Authority::load_or_create`] stores on first start).
pub fn generate_signing_key_pem() -> Result<String, AuthorityError> {
    keys::generate_key_pem()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, EncodingKey};
    use keys::generate_key_pem;
    use std::sync::OnceLock;

    fn pem() -> &'static str {
        static PEM: OnceLock<String> = OnceLock::new();
        PEM.get_or_init(|| generate_key_pem().unwrap())
    }

    fn authority() -> Authority {
        Authority::from_pem(pem(), "https://login.example/").unwrap()
    }

    fn app_req(roles: &[&str]) -> TokenRequest {
        TokenRequest {
            tenant_id: Uuid::new_v4(),
            app_id: Uuid::new_v4(),
            grant: Grant::Application {
                roles: roles.iter().map(|s| s.to_string()).collect(),
            },
            lifetime: Duration::hours(1),
            issued_at: None,
        }
    }

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
        h
    }

    /// A validated token is remembered, but only that exact token: a copy
    /// with another signature or payload is checked in full and refused.
    #[test]
    fn verified_tokens_are_cached_per_exact_token() {
        let a = authority();
        let t = a.mint(&app_req(&["MailboxItem.Read.All"]));
        let first = a.validate(&t).unwrap();
        assert_eq!(a.validate(&t).unwrap(), first);
        assert_eq!(a.verified.lock().unwrap().len(), 1);
        let (rest, sig) = t.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        let forged = format!("{rest}.{flipped}{}", &sig[1..]);
        assert!(a.validate(&forged).is_err());
        let mut parts: Vec<&str> = t.split('.').collect();
        let other = a.mint(&app_req(&["MailboxItem.ImportExport.All"]));
        let other_payload = other.split('.').nth(1).unwrap().to_string();
        parts[1] = &other_payload;
        assert!(a.validate(&parts.join(".")).is_err());
        // An expired token is refused even though its key is known.
        let mut expired = app_req(&["MailboxItem.Read.All"]);
        expired.lifetime = Duration::seconds(-3600);
        let e = a.mint(&expired);
        assert!(a.validate(&e).is_err());
        assert!(a.validate(&e).is_err());
    }

    #[test]
    fn mint_then_validate_application() {
        let a = authority();
        let req = app_req(&["MailboxItem.Read.All"]);
        let p = a.authenticate(&bearer(&a.mint(&req))).unwrap();
        assert_eq!(p.tenant_id, req.tenant_id);
        assert!(p.allows(Operation::ReadItems));
        assert!(!p.allows(Operation::ReadFolders));
        assert!(!p.allows(Operation::ExportItems));
    }

    #[test]
    fn mint_then_validate_delegated() {
        let a = authority();
        let user = TokenUser {
            id: Uuid::new_v4(),
            upn: "megan@contoso.com".into(),
        };
        let req = TokenRequest {
            grant: Grant::Delegated {
                user: user.clone(),
                scopes: vec!["MailboxFolder.ReadWrite".into(), "User.Read".into()],
            },
            ..app_req(&[])
        };
        let p = a.validate(&a.mint(&req)).unwrap();
        assert_eq!(p.user_id(), Some(user.id));
        assert!(p.allows(Operation::ReadFolders));
        assert!(p.allows(Operation::WriteFolders));
        assert!(!p.allows(Operation::ReadItems));
        // Application forms don't count for delegated tokens.
        let req = TokenRequest {
            grant: Grant::Delegated {
                user,
                scopes: vec!["MailboxItem.Read.All".into()],
            },
            ..req
        };
        assert!(
            !a.validate(&a.mint(&req))
                .unwrap()
                .allows(Operation::ReadItems)
        );
    }

    #[test]
    fn token_looks_like_entra_v2() {
        let a = authority();
        let req = app_req(&["MailboxItem.Read.All"]);
        let t = a.mint(&req);
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(h.kid, Some(a.kid()));
        let payload = t.split('.').nth(1).unwrap();
        let c: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(c["aud"], GRAPH_AUDIENCE);
        assert_eq!(
            c["iss"],
            format!("https://login.example/{}/v2.0", req.tenant_id)
        );
        assert_eq!(c["roles"][0], "MailboxItem.Read.All");
        assert_eq!(c["azp"], req.app_id.to_string());
        let jwks = a.jwks();
        assert_eq!(jwks["keys"][0]["kid"], a.kid());
        // The JWKS key verifies the token.
        let k = &jwks["keys"][0];
        let dk =
            DecodingKey::from_rsa_components(k["n"].as_str().unwrap(), k["e"].as_str().unwrap())
                .unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[GRAPH_AUDIENCE]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&t, &dk, &v).is_ok());
    }

    #[test]
    fn rejects_missing_malformed_expired_and_foreign_tokens() {
        let a = authority();
        let e = a.authenticate(&HeaderMap::new()).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(e.code, "InvalidAuthenticationToken");
        assert!(
            e.headers
                .iter()
                .any(|(k, v)| k == header::WWW_AUTHENTICATE && v.starts_with("Bearer"))
        );

        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(
            a.authenticate(&h).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            a.authenticate(&bearer("not.a.jwt")).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );

        let expired = TokenRequest {
            issued_at: Some(OffsetDateTime::now_utc() - Duration::hours(2)),
            ..app_req(&["MailboxItem.Read.All"])
        };
        let e = a.validate(&a.mint(&expired)).unwrap_err();
        assert!(e.message.contains("expired"), "{}", e.message);

        // Within the clock skew still fine.
        let skewed = TokenRequest {
            issued_at: Some(OffsetDateTime::now_utc() + Duration::seconds(30)),
            ..app_req(&["MailboxItem.Read.All"])
        };
        assert!(a.validate(&a.mint(&skewed)).is_ok());
        let future = TokenRequest {
            issued_at: Some(OffsetDateTime::now_utc() + Duration::hours(1)),
            ..app_req(&["MailboxItem.Read.All"])
        };
        let e = a.validate(&a.mint(&future)).unwrap_err();
        assert!(e.message.contains("not yet valid"), "{}", e.message);

        // Signed by another key.
        let other =
            Authority::from_pem(&generate_key_pem().unwrap(), "https://login.example").unwrap();
        let e = a.validate(&other.mint(&app_req(&[]))).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);

        // Same key, other issuer base.
        let same_key_other_iss = Authority::from_pem(pem(), "https://evil.example").unwrap();
        let e = a
            .validate(&same_key_other_iss.mint(&app_req(&[])))
            .unwrap_err();
        assert!(e.message.contains("issuer"), "{}", e.message);
    }

    #[test]
    fn rejects_wrong_audience_and_tampering() {
        let a = authority();
        let req = app_req(&["MailboxItem.Read.All"]);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({
            "aud": "api://someone-else", "iss": a.issuer_for(req.tenant_id),
            "iat": now, "nbf": now, "exp": now + 600,
            "tid": req.tenant_id.to_string(), "azp": "x", "roles": ["MailboxItem.Read.All"],
        });
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(a.kid().to_owned());
        let t = jsonwebtoken::encode(&h, &claims, &a.signing_key().encoding).unwrap();
        let e = a.validate(&t).unwrap_err();
        assert!(e.message.contains("audience"), "{}", e.message);

        // The Graph app id audience is accepted.
        let mut ok = claims.clone();
        ok["aud"] = GRAPH_APP_ID.into();
        assert!(
            a.validate(&jsonwebtoken::encode(&h, &ok, &a.signing_key().encoding).unwrap())
                .is_ok()
        );

        // Flip the roles in the payload without re-signing.
        let good = a.mint(&req);
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut c: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        c["roles"] = serde_json::json!(["MailboxItem.ImportExport.All"]);
        parts[1] = URL_SAFE_NO_PAD.encode(c.to_string());
        let e = a.validate(&parts.join(".")).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);

        // HS256 with the public key as secret (algorithm confusion) is refused.
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(a.kid().to_owned());
        let t = jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(b"k")).unwrap();
        assert_eq!(a.validate(&t).unwrap_err().status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn permission_table_is_exact() {
        let p = |roles: &[&str]| Principal {
            tenant_id: Uuid::nil(),
            kind: PrincipalKind::Application {
                app_id: "a".into(),
                roles: roles.iter().map(|s| s.to_string()).collect(),
            },
        };
        assert!(p(&["MailboxItem.Export.All"]).allows(Operation::ExportItems));
        assert!(p(&["MailboxItem.ImportExport.All"]).allows(Operation::ExportItems));
        assert!(!p(&["MailboxItem.Export.All"]).allows(Operation::CreateImportSession));
        assert!(!p(&["MailboxItem.ImportExport.All"]).allows(Operation::ReadItems));
        assert!(!p(&["MailboxFolder.ReadWrite.All"]).allows(Operation::ReadItems));
        assert!(p(&["MailboxFolder.ReadWrite.All"]).allows(Operation::ReadFolders));
        assert!(p(&["User.ReadWrite.All"]).allows(Operation::ReadExchangeSettings));
        assert!(!p(&["User.Read"]).allows(Operation::ReadExchangeSettings));
        let e = p(&[]).require(Operation::ReadExchangeSettings).unwrap_err();
        assert_eq!(e.code, "Authorization_RequestDenied");
        let e = p(&[]).require(Operation::ReadItems).unwrap_err();
        assert_eq!(e.code, "ErrorAccessDenied");
        assert!(e.message.contains("MailboxItem.Read.All"));
        for op in Operation::ALL {
            let row = op.permissions();
            assert!(
                row.application.iter().all(|r| r.ends_with(".All")),
                "{op:?}"
            );
            assert!(
                row.delegated
                    .iter()
                    .all(|r| !r.ends_with(".All") || r.starts_with("User.")),
                "{op:?}"
            );
        }
    }
}
