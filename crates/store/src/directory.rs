//! The identity directory: app registrations, their credentials and
//! requested permissions, consent grants, and users' sign-in credentials.
//!
//! It sits beside [`crate::MetaStore`] in the same database (so several
//! graphbox instances share one directory) behind its own trait, so the
//! identity authority (`crates/identity`) depends on nothing else. Secrets and
//! passwords are stored only as hashes made by the caller; certificates only
//! by their public key and thumbprints.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Result;

/// An app registration (and its service principal in its home tenant: this
/// directory is single-tenant per app, so the two share the client id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct App {
    /// The application (client) id.
    pub client_id: Uuid,
    /// The tenant that owns the registration.
    pub tenant_id: Uuid,
    pub display_name: String,
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// "Allow public client flows" (device code, auth code without a secret).
    pub public_client: bool,
    pub created: OffsetDateTime,
}

/// What [`DirectoryStore::create_app`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewApp {
    pub tenant_id: Uuid,
    pub display_name: String,
    pub redirect_uris: Vec<String>,
    pub public_client: bool,
}

/// A client secret: only its hash and a display hint are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppSecret {
    /// The credential's key id.
    pub id: Uuid,
    pub client_id: Uuid,
    /// The first characters of the secret (what the portal shows).
    pub hint: String,
    /// A hash of the secret (the caller chooses the scheme).
    #[serde(skip_serializing)]
    pub hash: String,
    pub expires: OffsetDateTime,
}

/// A certificate credential: its public key and thumbprints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppCertificate {
    pub id: Uuid,
    pub client_id: Uuid,
    /// SHA-1 of the DER certificate, upper-case hex (the portal's thumbprint).
    pub thumbprint_sha1: String,
    /// SHA-256 of the DER certificate, upper-case hex.
    pub thumbprint_sha256: String,
    /// The SubjectPublicKeyInfo in PEM.
    pub public_key_pem: String,
    pub expires: OffsetDateTime,
}

/// Delegated (`scp`) or application (`roles`) permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PermissionKind {
    Delegated,
    Application,
}

impl PermissionKind {
    fn as_str(self) -> &'static str {
        match self {
            PermissionKind::Delegated => "delegated",
            PermissionKind::Application => "application",
        }
    }

    pub(crate) fn code(self) -> &'static str {
        self.as_str()
    }

    pub(crate) fn from_code(s: &str) -> Option<Self> {
        match s {
            "delegated" => Some(PermissionKind::Delegated),
            "application" => Some(PermissionKind::Application),
            _ => None,
        }
    }
}

/// A permission an app requests (its "API permissions" list).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Permission {
    pub kind: PermissionKind,
    /// The permission value, e.g. `MailboxItem.ImportExport`.
    pub value: String,
}

/// A consent: an application role assignment (`kind` application), a
/// delegated grant for all users (admin consent, `user_id` None), or one
/// user's own delegated consent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ConsentGrant {
    pub client_id: Uuid,
    pub kind: PermissionKind,
    pub value: String,
    /// `None`: granted for every user of the tenant (admin consent).
    pub user_id: Option<Uuid>,
}

/// A user's sign-in credential and directory role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserCredential {
    pub user_id: Uuid,
    /// The password hash (PHC string), if a password is set.
    pub password_hash: Option<String>,
    /// Whether the user is an administrator (may grant admin consent).
    pub is_admin: bool,
}

/// A short-lived or revocable token record kept by the authority (an
/// authorization code, a device code, a refresh token), shared by every
/// instance. `key` is a hash of the secret handed to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRecord {
    pub key: String,
    /// `code`, `device` or `refresh`.
    pub kind: String,
    pub client_id: Uuid,
    /// JSON the authority interprets (user, scopes, PKCE challenge, state).
    pub data: String,
    pub expires: OffsetDateTime,
}

/// The directory's persistence.
#[async_trait]
pub trait DirectoryStore: Send + Sync + std::fmt::Debug {
    /// Registers an app with a fresh client id.
    async fn create_app(&self, app: NewApp) -> Result<App>;
    /// The app with this client id (`NotFound` otherwise).
    async fn get_app(&self, client_id: Uuid) -> Result<App>;
    /// Apps of a tenant, oldest first.
    async fn list_apps(&self, tenant_id: Uuid) -> Result<Vec<App>>;
    /// Deletes the app with its credentials, permissions, grants and records.
    async fn delete_app(&self, client_id: Uuid) -> Result<()>;

    async fn add_secret(&self, secret: AppSecret) -> Result<()>;
    /// `NotFound` when the app has no such secret.
    async fn remove_secret(&self, client_id: Uuid, id: Uuid) -> Result<()>;
    async fn list_secrets(&self, client_id: Uuid) -> Result<Vec<AppSecret>>;

    /// `Conflict` when the app already has a certificate with that thumbprint.
    async fn add_certificate(&self, cert: AppCertificate) -> Result<()>;
    async fn remove_certificate(&self, client_id: Uuid, id: Uuid) -> Result<()>;
    async fn list_certificates(&self, client_id: Uuid) -> Result<Vec<AppCertificate>>;

    /// Adds a requested permission (idempotent).
    async fn add_permission(&self, client_id: Uuid, p: Permission) -> Result<()>;
    /// Removes a requested permission and every grant of it (`NotFound` if absent).
    async fn remove_permission(&self, client_id: Uuid, p: Permission) -> Result<()>;
    async fn list_permissions(&self, client_id: Uuid) -> Result<Vec<Permission>>;

    /// Records a consent (idempotent).
    async fn grant(&self, g: ConsentGrant) -> Result<()>;
    /// Removes a consent; `false` when there was none.
    async fn revoke(&self, g: ConsentGrant) -> Result<bool>;
    async fn list_grants(&self, client_id: Uuid) -> Result<Vec<ConsentGrant>>;

    /// Sets (or replaces) a user's password hash.
    async fn set_password_hash(&self, user_id: Uuid, hash: &str) -> Result<()>;
    /// Sets whether a user is an administrator.
    async fn set_admin(&self, user_id: Uuid, admin: bool) -> Result<()>;
    /// The user's credential; `NotFound` if the user does not exist, an empty
    /// credential if the user has none yet.
    async fn user_credential(&self, user_id: Uuid) -> Result<UserCredential>;

    /// Stores a record (`Conflict` if the key exists).
    async fn put_record(&self, r: AuthRecord) -> Result<()>;
    /// Removes and returns a record (one-time use); `None` if absent or expired.
    async fn take_record(&self, kind: &str, key: &str) -> Result<Option<AuthRecord>>;
    /// Reads a record without removing it; `None` if absent or expired.
    async fn get_record(&self, kind: &str, key: &str) -> Result<Option<AuthRecord>>;
    /// Replaces a record's data (`NotFound` if absent).
    async fn update_record(&self, kind: &str, key: &str, data: &str) -> Result<()>;
}
