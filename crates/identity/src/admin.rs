//! Directory administration: what `graphbox admin app|consent|user` and the
//! admin-consent page do, on top of [`DirectoryStore`].

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use store::directory::{
    App, AppCertificate, AppSecret, AuthRecord, ConsentGrant, NewApp, Permission, PermissionKind,
};
use store::{DirectoryStore, StoreError};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::catalogue;

/// Why a directory operation failed (with a message that says what to do).
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
}

/// A newly created secret: the only time its value is available.
#[derive(Clone, Debug)]
pub struct CreatedSecret {
    pub secret: AppSecret,
    pub value: String,
}

/// Hashes a client secret for storage: secrets are 256-bit random values, so
/// an unsalted SHA-256 is as strong as the secret itself and cheap to check.
pub fn hash_secret(value: &str) -> String {
    format!("sha256:{}", hex_upper(&Sha256::digest(value.as_bytes())))
}

/// Upper-case hex.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// argon2id PHC hash of a password.
pub fn hash_password(password: &str) -> Result<String, DirectoryError> {
    if password.chars().count() < 8 {
        return Err(DirectoryError::Invalid(
            "a password needs at least 8 characters".into(),
        ));
    }
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| DirectoryError::Invalid(format!("cannot salt the password: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DirectoryError::Invalid(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches a stored argon2 hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The directory: app registrations, credentials, permissions and consent.
#[derive(Clone, Debug)]
pub struct Directory {
    pub store: Arc<dyn DirectoryStore>,
}

/// Parses a permission kind given on the command line or in a form.
pub fn parse_kind(s: &str) -> Result<PermissionKind, DirectoryError> {
    match s.to_ascii_lowercase().as_str() {
        "delegated" | "scope" => Ok(PermissionKind::Delegated),
        "application" | "role" => Ok(PermissionKind::Application),
        _ => Err(DirectoryError::Invalid(format!(
            "permission type must be 'delegated' or 'application', not {s:?}"
        ))),
    }
}

impl Directory {
    pub fn new(store: Arc<dyn DirectoryStore>) -> Self {
        Directory { store }
    }

    /// Registers an app. Redirect URIs must be absolute https URLs, or http
    /// on localhost / 127.0.0.1 (Entra's rule).
    pub async fn create_app(
        &self,
        tenant_id: Uuid,
        display_name: &str,
        redirect_uris: Vec<String>,
        public_client: bool,
    ) -> Result<App, DirectoryError> {
        for u in &redirect_uris {
            check_redirect_uri(u)?;
        }
        Ok(self
            .store
            .create_app(NewApp {
                tenant_id,
                display_name: display_name.to_owned(),
                redirect_uris,
                public_client,
            })
            .await?)
    }

    /// Adds a client secret valid for `lifetime`; returns its value once.
    pub async fn add_secret(
        &self,
        client_id: Uuid,
        lifetime: Duration,
    ) -> Result<CreatedSecret, DirectoryError> {
        if lifetime <= Duration::ZERO || lifetime > Duration::days(730) {
            return Err(DirectoryError::Invalid(
                "a secret's lifetime must be between 1 day and 730 days (Entra's limit)".into(),
            ));
        }
        let mut raw = [0u8; 30];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        // Entra-like: 40 characters from the URL-safe alphabet with '~' and '.'.
        let value: String = URL_SAFE_NO_PAD
            .encode(raw)
            .replace('-', "~")
            .replace('_', ".");
        let secret = AppSecret {
            id: Uuid::new_v4(),
            client_id,
            hint: value.chars().take(3).collect(),
            hash: hash_secret(&value),
            expires: OffsetDateTime::now_utc() + lifetime,
        };
        self.store.add_secret(secret.clone()).await?;
        Ok(CreatedSecret { secret, value })
    }

    /// Adds a certificate credential from a PEM X.509 certificate (RSA key).
    pub async fn add_certificate(
        &self,
        client_id: Uuid,
        pem: &str,
    ) -> Result<AppCertificate, DirectoryError> {
        let cert = parse_certificate(client_id, pem)?;
        self.store.add_certificate(cert.clone()).await?;
        Ok(cert)
    }

    /// Adds a requested permission after checking it against the catalogue.
    pub async fn add_permission(
        &self,
        client_id: Uuid,
        kind: PermissionKind,
        value: &str,
    ) -> Result<Permission, DirectoryError> {
        let entry = catalogue::find(kind, value).ok_or_else(|| {
            let known: Vec<&str> = catalogue::CATALOGUE
                .iter()
                .filter(|e| e.kind == kind)
                .map(|e| e.value)
                .collect();
            DirectoryError::Invalid(format!(
                "{value:?} is not a {} permission of this API; known: {}",
                kind_name(kind),
                known.join(", ")
            ))
        })?;
        let p = Permission {
            kind,
            value: entry.value.to_owned(),
        };
        self.store.add_permission(client_id, p.clone()).await?;
        Ok(p)
    }

    /// Removes a requested permission (and its grants: the permission is
    /// gone from new tokens at once).
    pub async fn remove_permission(
        &self,
        client_id: Uuid,
        kind: PermissionKind,
        value: &str,
    ) -> Result<(), DirectoryError> {
        let value = catalogue::find(kind, value)
            .map(|e| e.value.to_owned())
            .unwrap_or_else(|| value.to_owned());
        self.store
            .remove_permission(client_id, Permission { kind, value })
            .await?;
        self.mark_revoked(
            crate::grants::kind::CONSENT_REVOKED,
            client_id.to_string(),
            client_id,
        )
        .await?;
        Ok(())
    }

    /// Records that everything issued for `key` before now is revoked (the
    /// refresh-token checks compare it with the sign-in time). Kept as long
    /// as a refresh token can live.
    async fn mark_revoked(
        &self,
        kind: &str,
        key: String,
        client_id: Uuid,
    ) -> Result<(), DirectoryError> {
        let rec = || AuthRecord {
            key: key.clone(),
            kind: kind.to_owned(),
            client_id,
            data: serde_json::json!({ "at": crate::grants::now_ms() }).to_string(),
            expires: OffsetDateTime::now_utc() + crate::grants::MAX_REFRESH_LIFETIME,
        };
        self.store.take_record(kind, &key).await?;
        match self.store.put_record(rec()).await {
            // A concurrent revocation wrote its (as recent) marker first.
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes a user's sign-in sessions: every refresh token the user holds
    /// for any app of `tenant_id` stops working (`AADSTS50173`), as Entra's
    /// revokeSignInSessions. Returns how many apps the marker covers.
    pub async fn revoke_user_sessions(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<usize, DirectoryError> {
        let apps = self.store.list_apps(tenant_id).await?;
        for a in &apps {
            self.mark_revoked(
                crate::grants::kind::SESSIONS_REVOKED,
                format!("{user_id}:{}", a.client_id),
                a.client_id,
            )
            .await?;
        }
        Ok(apps.len())
    }

    /// Revokes a user's own (per-user) consents for an app; refresh tokens
    /// of the app stop working for everyone who signed in before.
    pub async fn revoke_user_consent(
        &self,
        client_id: Uuid,
        user_id: Uuid,
    ) -> Result<Vec<ConsentGrant>, DirectoryError> {
        let mut out = Vec::new();
        for g in self.store.list_grants(client_id).await? {
            if g.user_id == Some(user_id) && self.store.revoke(g.clone()).await? {
                out.push(g);
            }
        }
        if !out.is_empty() {
            self.mark_revoked(
                crate::grants::kind::SESSIONS_REVOKED,
                format!("{user_id}:{client_id}"),
                client_id,
            )
            .await?;
        }
        Ok(out)
    }

    /// "Grant admin consent": every requested permission, for all users
    /// (delegated) and as role assignments (application).
    pub async fn grant_admin_consent(
        &self,
        client_id: Uuid,
    ) -> Result<Vec<ConsentGrant>, DirectoryError> {
        let perms = self.store.list_permissions(client_id).await?;
        if perms.is_empty() {
            return Err(DirectoryError::Invalid(
                "the app requests no permissions: add some with `graphbox admin app permission add` first".into(),
            ));
        }
        let mut out = Vec::new();
        for p in perms {
            let g = ConsentGrant {
                client_id,
                kind: p.kind,
                value: p.value,
                user_id: None,
            };
            self.store.grant(g.clone()).await?;
            out.push(g);
        }
        Ok(out)
    }

    /// Revokes the admin consent (all tenant-wide grants and role
    /// assignments); returns what was revoked.
    pub async fn revoke_admin_consent(
        &self,
        client_id: Uuid,
    ) -> Result<Vec<ConsentGrant>, DirectoryError> {
        let mut out = Vec::new();
        for g in self.store.list_grants(client_id).await? {
            if g.user_id.is_none() && self.store.revoke(g.clone()).await? {
                out.push(g);
            }
        }
        // Refresh tokens issued before the revocation stop working.
        self.mark_revoked(
            crate::grants::kind::CONSENT_REVOKED,
            client_id.to_string(),
            client_id,
        )
        .await?;
        Ok(out)
    }

    /// The application roles currently assigned to the app.
    pub async fn app_roles(&self, client_id: Uuid) -> Result<Vec<String>, DirectoryError> {
        Ok(self
            .store
            .list_grants(client_id)
            .await?
            .into_iter()
            .filter(|g| g.kind == PermissionKind::Application)
            .map(|g| g.value)
            .collect())
    }
}

pub(crate) fn kind_name(kind: PermissionKind) -> &'static str {
    match kind {
        PermissionKind::Delegated => "delegated",
        PermissionKind::Application => "application",
    }
}

/// Entra's redirect URI rule: https, or http on a loopback host.
pub fn check_redirect_uri(u: &str) -> Result<(), DirectoryError> {
    let ok = if let Some(rest) = u.strip_prefix("https://") {
        !rest.is_empty()
    } else if let Some(rest) = u.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        matches!(host, "localhost" | "127.0.0.1" | "[::1]")
    } else {
        false
    };
    if ok && !u.contains('#') {
        Ok(())
    } else {
        Err(DirectoryError::Invalid(format!(
            "redirect URI {u:?} must be an absolute https:// URL (or http://localhost) without a fragment"
        )))
    }
}

fn parse_certificate(client_id: Uuid, pem: &str) -> Result<AppCertificate, DirectoryError> {
    let bad = |m: String| DirectoryError::Invalid(format!("not a usable certificate: {m}"));
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| bad(format!("no PEM CERTIFICATE block ({e})")))?;
    if pem.label != "CERTIFICATE" {
        return Err(bad(format!(
            "the PEM block is a {:?}; give the public certificate, never the private key",
            pem.label
        )));
    }
    let cert = pem
        .parse_x509()
        .map_err(|e| bad(format!("cannot parse the X.509 certificate ({e})")))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err(bad("only RSA certificates are supported (as Entra)".into()));
    }
    let expires = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        .map_err(|e| bad(e.to_string()))?;
    if expires <= OffsetDateTime::now_utc() {
        return Err(bad("the certificate has expired".into()));
    }
    let b64 = STANDARD.encode(spki.raw);
    let mut public_key_pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        public_key_pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        public_key_pem.push('\n');
    }
    public_key_pem.push_str("-----END PUBLIC KEY-----\n");
    jsonwebtoken::DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
        .map_err(|e| bad(format!("unusable RSA public key ({e})")))?;
    Ok(AppCertificate {
        id: Uuid::new_v4(),
        client_id,
        thumbprint_sha1: hex_upper(&Sha1::digest(&pem.contents)),
        thumbprint_sha256: hex_upper(&Sha256::digest(&pem.contents)),
        public_key_pem,
        expires,
    })
}
