//! Connection profiles: where Graph and the authority are, who we are, and
//! how hard we may push.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Graph's public base URL.
pub const DEFAULT_GRAPH_BASE: &str = "https://graph.microsoft.com";
/// The scope requested by default: Graph's resource identifier with
/// `/.default`, whatever host serves Graph (graphbox issues tokens for the
/// same audience and accepts only this scope for client credentials).
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Entra ID's authority base URL.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// The Graph API version segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ApiVersion {
    #[default]
    #[serde(rename = "v1.0")]
    V1,
    #[serde(rename = "beta")]
    Beta,
}

impl ApiVersion {
    /// The path segment (`v1.0` or `beta`).
    pub fn segment(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1.0",
            ApiVersion::Beta => "beta",
        }
    }
}

impl std::str::FromStr for ApiVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "v1.0" | "v1" => Ok(ApiVersion::V1),
            "beta" => Ok(ApiVersion::Beta),
            other => Err(Error::Config(format!(
                "unknown Graph API version {other:?}: use \"v1.0\" or \"beta\""
            ))),
        }
    }
}

/// What the device-code flow shows the user: where to go and which code to type.
#[derive(Debug, Clone)]
pub struct DeviceCodePrompt {
    pub user_code: String,
    pub verification_uri: String,
    /// The authority's own sentence ("To sign in, use a web browser…").
    pub message: Option<String>,
    pub expires_in: std::time::Duration,
}

/// Called once per device-code sign-in with what the user must do.
pub type DeviceCodeCallback = Arc<dyn Fn(&DeviceCodePrompt) + Send + Sync>;

/// How the client proves who it is.
#[derive(Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Credential {
    /// Client credentials with a client secret (application permissions).
    Secret { secret: String },
    /// Client credentials with a certificate: a `client_assertion` JWT
    /// signed PS256 with the private key, naming the certificate by
    /// `x5t#S256` (what Entra ID requires).
    Certificate {
        /// PEM file of the (RSA) private key.
        private_key_pem: PathBuf,
        /// PEM file of the certificate registered on the app.
        certificate_pem: PathBuf,
    },
    /// Delegated sign-in with the device-code flow (RFC 8628).
    DeviceCode {
        /// Shows the prompt; defaults to printing the authority's message
        /// on stderr. Not part of a config file.
        #[serde(skip)]
        prompt: Option<DeviceCodeCallback>,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Secret { .. } => f.write_str("Secret { .. }"),
            Credential::Certificate {
                private_key_pem,
                certificate_pem,
            } => f
                .debug_struct("Certificate")
                .field("private_key_pem", private_key_pem)
                .field("certificate_pem", certificate_pem)
                .finish(),
            Credential::DeviceCode { .. } => f.write_str("DeviceCode"),
        }
    }
}

fn default_graph_base() -> String {
    DEFAULT_GRAPH_BASE.to_owned()
}
fn default_authority() -> String {
    DEFAULT_AUTHORITY.to_owned()
}
fn default_concurrency() -> usize {
    4
}
fn default_attempts() -> u32 {
    8
}
fn default_renew_margin() -> u64 {
    300
}
fn default_timeout() -> u64 {
    1200
}
fn default_export_budget() -> u64 {
    64 * 1024 * 1024
}
fn default_missing() -> u32 {
    3
}
fn default_max_backoff() -> u64 {
    300
}
fn default_base_delay() -> u64 {
    1000
}

/// A connection profile. Deserializable from TOML / JSON, e.g.
///
/// ```toml
/// graph_base = "https://localhost:8443"
/// authority = "https://localhost:8443"
/// tenant = "contoso.test"
/// client_id = "d3e00000-0000-4000-8000-000000000001"
/// credential = { kind = "secret", secret = "…" }
/// ca_certificate = "/var/lib/graphbox/tls/cert.pem"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Graph base URL (scheme, host, port; no version).
    #[serde(default = "default_graph_base")]
    pub graph_base: String,
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Authority base URL; for graphbox, the server's own base URL.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// Tenant id or domain.
    pub tenant: String,
    pub client_id: String,
    pub credential: Credential,
    /// Scope requested; default [`GRAPH_DEFAULT_SCOPE`] (plus
    /// `offline_access` for the device-code flow).
    #[serde(default)]
    pub scope: Option<String>,
    /// Extra trusted CA certificate (PEM), e.g. a graphbox server's self-signed one.
    #[serde(default)]
    pub ca_certificate: Option<PathBuf>,
    /// Concurrent requests per mailbox (Outlook allows 4).
    #[serde(default = "default_concurrency")]
    pub max_concurrency_per_mailbox: usize,
    /// Attempts per request (first try included) for throttling and transient failures.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Longest wait between two attempts, seconds (also caps `Retry-After`).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u64,
    /// First backoff step, milliseconds, when no `Retry-After` is given; it
    /// doubles per attempt (with jitter) up to `max_backoff_secs`.
    #[serde(default = "default_base_delay")]
    pub retry_base_delay_ms: u64,
    /// Renew tokens this many seconds before they expire.
    #[serde(default = "default_renew_margin")]
    pub token_renew_margin_secs: u64,
    /// Per-request timeout, seconds (20 minutes: items may be 150 MB).
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// Expected data per exportItems request (item sizes as given).
    #[serde(default = "default_export_budget")]
    pub export_batch_bytes: u64,
    /// An id missing this many times in a row from exportItems answers
    /// becomes a failed outcome.
    #[serde(default = "default_missing")]
    pub export_missing_attempts: u32,
}

impl Profile {
    /// A profile with every default and the given identity.
    pub fn new(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credential: Credential,
    ) -> Profile {
        Profile {
            graph_base: default_graph_base(),
            api_version: ApiVersion::V1,
            authority: default_authority(),
            tenant: tenant.into(),
            client_id: client_id.into(),
            credential,
            scope: None,
            ca_certificate: None,
            max_concurrency_per_mailbox: default_concurrency(),
            max_attempts: default_attempts(),
            max_backoff_secs: default_max_backoff(),
            retry_base_delay_ms: default_base_delay(),
            token_renew_margin_secs: default_renew_margin(),
            request_timeout_secs: default_timeout(),
            export_batch_bytes: default_export_budget(),
            export_missing_attempts: default_missing(),
        }
    }

    /// The scope to request.
    pub fn effective_scope(&self) -> String {
        match &self.scope {
            Some(s) => s.clone(),
            None => {
                let base = GRAPH_DEFAULT_SCOPE.to_owned();
                if matches!(self.credential, Credential::DeviceCode { .. }) {
                    format!("{base} offline_access")
                } else {
                    base
                }
            }
        }
    }

    /// Checks every field, with a message saying what to fix.
    pub fn validate(&self) -> Result<()> {
        check_base("graph_base", &self.graph_base)?;
        check_base("authority", &self.authority)?;
        if self.tenant.trim().is_empty() || self.tenant.contains('/') {
            return Err(Error::Config(format!(
                "tenant {:?} must be a tenant id or domain (e.g. contoso.onmicrosoft.com)",
                self.tenant
            )));
        }
        if self.client_id.trim().is_empty() {
            return Err(Error::Config(
                "client_id is empty: give the app's client (application) id".into(),
            ));
        }
        if self.max_concurrency_per_mailbox == 0 {
            return Err(Error::Config(
                "max_concurrency_per_mailbox must be at least 1".into(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(Error::Config("max_attempts must be at least 1".into()));
        }
        if self.export_missing_attempts == 0 {
            return Err(Error::Config(
                "export_missing_attempts must be at least 1".into(),
            ));
        }
        if let Credential::Secret { secret } = &self.credential
            && secret.is_empty()
        {
            return Err(Error::Config("the client secret is empty".into()));
        }
        Ok(())
    }
}

fn check_base(field: &str, value: &str) -> Result<url::Url> {
    let u = url::Url::parse(value).map_err(|e| {
        Error::Config(format!(
            "{field} {value:?} is not a URL ({e}): give scheme and host, e.g. https://graph.microsoft.com"
        ))
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!(
            "{field} {value:?} must be an http:// or https:// URL with a host"
        )));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(Error::Config(format!(
            "{field} {value:?} must not carry a query or fragment"
        )));
    }
    Ok(u)
}
