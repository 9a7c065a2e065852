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
//! The signing key is generated once and kept in the meta store under
//! `signing_key_pem` through `put_setting_if_absent`, so every instance of a
//! multi-instance deployment signs and verifies with the same key, and a
//! restart does not invalidate outstanding tokens.
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

use std::collections::HashSet;

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::error::ApiError;
use store::{Mailbox, MetaStore};

/// The `aud` graphbox puts into the tokens it mints (Graph's resource URI).
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// Graph's application id, the other audience Entra uses for Graph tokens.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// The meta-store setting that holds the PKCS#8 PEM signing key.
pub const SIGNING_KEY_SETTING: &str = "signing_key_pem";
/// Allowed clock skew for `exp` / `nbf`, in seconds.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Why an authority could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// The store failed to read or write the key.
    #[error("storing the signing key failed: {0}")]
    Store(#[from] store::StoreError),
    /// The stored key is not a usable RSA key.
    #[error("the signing key in setting '{SIGNING_KEY_SETTING}' is unusable: {0}")]
    Key(String),
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
    aud: String,
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

/// The token authority: signs tokens, validates them, publishes the JWKS.
pub struct Authority {
    issuer_base: String,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public: RsaPublicKey,
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
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Loads the signing key from the store, generating and storing a new
    /// 2048-bit RSA key first if there is none. Concurrent first starts agree
    /// on one key: `put_setting_if_absent` returns the value that won.
    ///
    /// `issuer_base` is the authority URL without the tenant, e.g.
    /// `https://127.0.0.1:8443` (tokens then carry `iss` =
    /// `https://127.0.0.1:8443/{tid}/v2.0`).
    pub async fn load_or_create(
        meta: &dyn MetaStore,
        issuer_base: impl Into<String>,
    ) -> Result<Authority, AuthorityError> {
        let pem = match meta.get_setting(SIGNING_KEY_SETTING).await? {
            Some(pem) => pem,
            None => {
                let fresh = tokio::task::spawn_blocking(generate_key_pem)
                    .await
                    .map_err(|e| AuthorityError::Key(e.to_string()))??;
                meta.put_setting_if_absent(SIGNING_KEY_SETTING, &fresh)
                    .await?
            }
        };
        Authority::from_pem(&pem, issuer_base)
    }

    /// Builds an authority from a PKCS#8 PEM RSA private key.
    pub fn from_pem(
        pem: &str,
        issuer_base: impl Into<String>,
    ) -> Result<Authority, AuthorityError> {
        let private =
            RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| AuthorityError::Key(e.to_string()))?;
        let public = RsaPublicKey::from(&private);
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| AuthorityError::Key(e.to_string()))?;
        let public_pem = public
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| AuthorityError::Key(e.to_string()))?;
        let decoding = DecodingKey::from_rsa_pem(public_pem.as_bytes())
            .map_err(|e| AuthorityError::Key(e.to_string()))?;
        let kid = thumbprint(&public);
        Ok(Authority {
            issuer_base: issuer_base.into().trim_end_matches('/').to_owned(),
            kid,
            encoding,
            decoding,
            public,
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The issuer base URL (no trailing slash).
    pub fn issuer_base(&self) -> &str {
        &self.issuer_base
    }

    /// The issuer of tokens for `tenant`: `{issuer_base}/{tenant}/v2.0`.
    pub fn issuer_for(&self, tenant: Uuid) -> String {
        format!("{}/{}/v2.0", self.issuer_base, tenant.as_hyphenated())
    }

    /// The key id (`kid`): the RFC 7638 JWK thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JSON Web Key Set with the signing key, as an OIDC `jwks_uri` serves it.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": self.kid,
                "n": URL_SAFE_NO_PAD.encode(self.public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(self.public.e().to_bytes_be()),
            }]
        })
    }

    /// Signs an access token for `req`.
    pub fn mint(&self, req: &TokenRequest) -> String {
        let iat = req.issued_at.unwrap_or_else(OffsetDateTime::now_utc);
        let exp = iat + req.lifetime;
        let app = req.app_id.as_hyphenated().to_string();
        let mut claims = Claims {
            aud: GRAPH_AUDIENCE.to_owned(),
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
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .expect("RS256 signing with a valid RSA key cannot fail")
    }

    /// Validates the `Authorization: Bearer …` header into a [`Principal`];
    /// 401 `InvalidAuthenticationToken` (with a `WWW-Authenticate` challenge)
    /// when it is missing, malformed, badly signed, expired, not yet valid,
    /// or meant for another audience or issuer.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
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
        self.validate(token)
    }

    /// Validates a raw JWT (see [`Authority::authenticate`]).
    pub fn validate(&self, token: &str) -> Result<Principal, ApiError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(v) = cached {
            let skew = CLOCK_SKEW_SECS as i64;
            if now <= v.exp + skew && now + skew >= v.nbf {
                return Ok(v.principal);
            }
            // Outside its lifetime: the full check below gives the error.
        }
        let (principal, nbf, exp) = self.validate_uncached(token)?;
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
        Ok(principal)
    }

    fn validate_uncached(&self, token: &str) -> Result<(Principal, i64, i64), ApiError> {
        let fail = |m: &str| {
            unauthenticated(
                &self.issuer_base,
                format!("Access token validation failure. {m}"),
            )
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| fail("The token is not a well-formed JWT."))?;
        if header.alg != Algorithm::RS256 {
            return Err(fail("The token must be signed with RS256."));
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(fail("The token is signed with an unknown key (kid)."));
        }
        let mut v = Validation::new(Algorithm::RS256);
        v.leeway = CLOCK_SKEW_SECS;
        v.validate_nbf = true;
        v.validate_exp = true;
        v.set_audience(&[GRAPH_AUDIENCE, "https://graph.microsoft.com/", GRAPH_APP_ID]);
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => unauthenticated(
                        &self.issuer_base,
                        "Lifetime validation failed, the token is expired.",
                    ),
                    ErrorKind::ImmatureSignature => unauthenticated(
                        &self.issuer_base,
                        "Lifetime validation failed, the token is not yet valid (nbf).",
                    ),
                    ErrorKind::InvalidAudience => fail("Invalid audience."),
                    ErrorKind::InvalidSignature => fail("Invalid signature."),
                    ErrorKind::MissingRequiredClaim(c) => {
                        fail(&format!("The '{c}' claim is missing."))
                    }
                    _ => fail("The token could not be decoded."),
                }
            })?;
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
            let mut seen = HashSet::new();
            let roles = c
                .roles
                .unwrap_or_default()
                .into_iter()
                .filter(|r| seen.insert(r.clone()))
                .collect();
            PrincipalKind::Application { app_id, roles }
        };
        Ok((Principal { tenant_id, kind }, c.nbf, c.exp))
    }
}

fn generate_key_pem() -> Result<String, AuthorityError> {
    let mut rng = rand::rngs::OsRng;
    let key = RsaPrivateKey::new(&mut rng, 2048).map_err(|e| AuthorityError::Key(e.to_string()))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| AuthorityError::Key(e.to_string()))?;
    Ok(pem.to_string())
}

/// Generates a fresh PKCS#8 PEM RSA-2048 signing key (what
/// [`Authority::load_or_create`] stores on first start).
pub fn generate_signing_key_pem() -> Result<String, AuthorityError> {
    generate_key_pem()
}

/// RFC 7638 thumbprint: SHA-256 over the canonical JWK members, base64url.
fn thumbprint(key: &RsaPublicKey) -> String {
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        URL_SAFE_NO_PAD.encode(key.n().to_bytes_be())
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(h.kid.as_deref(), Some(a.kid()));
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
        let t = jsonwebtoken::encode(&h, &claims, &a.encoding).unwrap();
        let e = a.validate(&t).unwrap_err();
        assert!(e.message.contains("audience"), "{}", e.message);

        // The Graph app id audience is accepted.
        let mut ok = claims.clone();
        ok["aud"] = GRAPH_APP_ID.into();
        assert!(
            a.validate(&jsonwebtoken::encode(&h, &ok, &a.encoding).unwrap())
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
