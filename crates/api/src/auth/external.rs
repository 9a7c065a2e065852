//! External token issuers: a real Entra ID tenant (or any OpenID provider
//! issuing Entra-shaped tokens) whose access tokens the Graph side accepts.
//!
//! Each issuer is configured with its `iss` (exact, or with `{tenantid}`
//! standing for the token's `tid`, as in Entra's multi-tenant metadata), the
//! URL of its JWKS, the audiences accepted, and a mapping of its tenants
//! (`tid`) to graphbox tenants. Delegated tokens (`scp`) act for the graphbox
//! user found by the token's UPN (`upn`, else `preferred_username`, else
//! `unique_name`) or by its `oid`; application tokens (`roles`) act as the
//! app (`azp` / `appid`). Scope and role names pass through unchanged, or
//! through an explicit map (then only mapped names count).
//!
//! The JWKS is fetched at first use, kept, refetched when it is older than the
//! refresh period or a token names a kid it lacks (at most once per
//! `min_refetch` interval), and kept when a refetch fails. A fetch failure
//! with no keys at hand is a 401 naming the issuer and the error.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use uuid::Uuid;

/// How a delegated token's user is found in graphbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserMatch {
    /// By user principal name (`upn`, `preferred_username`, `unique_name`).
    #[default]
    Upn,
    /// By object id: the graphbox user id equals the token's `oid`.
    Oid,
}

/// One trusted external issuer.
#[derive(Clone, Debug)]
pub struct ExternalIssuer {
    /// The `iss` of its tokens; `{tenantid}` stands for the token's `tid`.
    pub issuer: String,
    /// Where its JSON Web Key Set is (http or https).
    pub jwks_url: String,
    /// The `aud` values accepted (at least one).
    pub audiences: Vec<String>,
    /// Its tenant ids (`tid`, compared case-insensitively) → graphbox tenants.
    pub tenants: HashMap<String, Uuid>,
    /// How delegated tokens find their graphbox user.
    pub user_match: UserMatch,
    /// Role name map for application tokens (`None`: names pass through).
    pub role_map: Option<HashMap<String, String>>,
    /// Scope name map for delegated tokens (`None`: names pass through).
    pub scope_map: Option<HashMap<String, String>>,
    /// Refetch the JWKS when it is older than this.
    pub refresh: Duration,
    /// Extra PEM CA certificate(s) trusted for the JWKS URL.
    pub ca_pem: Option<Vec<u8>>,
}

impl ExternalIssuer {
    /// A configuration with the defaults (UPN matching, names passed
    /// through, hourly refresh, system roots).
    pub fn new(
        issuer: impl Into<String>,
        jwks_url: impl Into<String>,
        audiences: Vec<String>,
        tenants: HashMap<String, Uuid>,
    ) -> ExternalIssuer {
        ExternalIssuer {
            issuer: issuer.into(),
            jwks_url: jwks_url.into(),
            audiences,
            tenants: tenants
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            user_match: UserMatch::Upn,
            role_map: None,
            scope_map: None,
            refresh: Duration::from_secs(3600),
            ca_pem: None,
        }
    }

    /// Checks the configuration; the message names the problem.
    pub fn check(&self) -> Result<(), String> {
        if self.issuer.trim().is_empty() {
            return Err("the issuer is empty".into());
        }
        let url = self.jwks_url.to_ascii_lowercase();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "jwks-url must be an http:// or https:// URL, not {:?}",
                self.jwks_url
            ));
        }
        if self.audiences.iter().all(|a| a.trim().is_empty()) {
            return Err("give at least one accepted audience".into());
        }
        if self.tenants.is_empty() {
            return Err("map at least one tenant (external tid -> graphbox tenant)".into());
        }
        if self.issuer.contains('{') && !self.issuer.contains("{tenantid}") {
            return Err(format!(
                "the only placeholder the issuer may hold is {{tenantid}}: {:?}",
                self.issuer
            ));
        }
        Ok(())
    }

    /// Whether `iss` is this issuer's (with `tid` for the placeholder).
    pub(crate) fn matches(&self, iss: &str, tid: Option<&str>) -> bool {
        if self.issuer.contains("{tenantid}") {
            match tid {
                Some(t) => self.issuer.replace("{tenantid}", t) == iss,
                None => false,
            }
        } else {
            self.issuer == iss
        }
    }

    /// The graphbox tenant of external tenant `tid`.
    pub(crate) fn tenant(&self, tid: &str) -> Option<Uuid> {
        self.tenants.get(&tid.to_ascii_lowercase()).copied()
    }

    /// Applies a name map: `None` keeps the names; a map keeps only the
    /// mapped names (case-insensitive keys), translated.
    pub(crate) fn map_names(
        map: Option<&HashMap<String, String>>,
        names: Vec<String>,
    ) -> Vec<String> {
        let Some(map) = map else {
            return names;
        };
        let mut out: Vec<String> = Vec::new();
        for n in names {
            let hit = map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&n))
                .map(|(_, v)| v.clone());
            if let Some(v) = hit
                && !out.contains(&v)
            {
                out.push(v);
            }
        }
        out
    }
}

/// The keys of one issuer as last fetched.
#[derive(Default)]
struct Fetched {
    keys: HashMap<String, DecodingKey>,
    at: Option<Instant>,
}

#[derive(Default)]
struct Attempts {
    last: Option<Instant>,
    error: Option<String>,
}

/// An issuer with its HTTP client and JWKS cache.
pub(crate) struct IssuerState {
    pub cfg: ExternalIssuer,
    http: reqwest::Client,
    fetched: RwLock<Arc<Fetched>>,
    attempts: tokio::sync::Mutex<Attempts>,
}

/// What [`IssuerState::key`] found.
pub(crate) enum KeyLookup {
    Found(DecodingKey),
    /// The kid is not in the (possibly refreshed) JWKS.
    Unknown,
    /// No keys at all, because fetching failed.
    Unavailable(String),
}

impl IssuerState {
    pub fn new(cfg: ExternalIssuer) -> Result<IssuerState, String> {
        cfg.check()?;
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("graphbox/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &cfg.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the CA certificate is not PEM: {e}"))?;
            if certs.is_empty() {
                return Err("the CA certificate file holds no certificate".into());
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(IssuerState {
            cfg,
            http,
            fetched: RwLock::default(),
            attempts: tokio::sync::Mutex::default(),
        })
    }

    fn snapshot(&self) -> Arc<Fetched> {
        self.fetched
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The verification key `kid`, fetching or refetching the JWKS when it
    /// is missing, stale, or lacks the kid (refetches at most once per
    /// `min_refetch`). Returns whether a refetch removed keys (the caller
    /// then forgets tokens it verified with them).
    pub async fn key(&self, kid: &str, min_refetch: Duration) -> (KeyLookup, bool) {
        let fresh = |f: &Fetched| f.at.is_some_and(|t| t.elapsed() < self.cfg.refresh);
        let snap = self.snapshot();
        if fresh(&snap)
            && let Some(k) = snap.keys.get(kid)
        {
            return (KeyLookup::Found(k.clone()), false);
        }
        let mut attempts = self.attempts.lock().await;
        // Another request may have refetched while this one waited.
        let snap = self.snapshot();
        if fresh(&snap)
            && let Some(k) = snap.keys.get(kid)
        {
            return (KeyLookup::Found(k.clone()), false);
        }
        let mut removed = false;
        let limited = attempts.last.is_some_and(|t| t.elapsed() < min_refetch);
        if !limited {
            attempts.last = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => {
                    removed = snap.keys.keys().any(|k| !keys.contains_key(k));
                    *self.fetched.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Fetched {
                        keys,
                        at: Some(Instant::now()),
                    });
                    attempts.error = None;
                }
                Err(e) => {
                    tracing::warn!(issuer = %self.cfg.issuer, url = %self.cfg.jwks_url, error = %e, "fetching an external issuer's JWKS failed");
                    attempts.error = Some(e);
                }
            }
        }
        let snap = self.snapshot();
        let out = match snap.keys.get(kid) {
            Some(k) => KeyLookup::Found(k.clone()),
            None if snap.keys.is_empty() => KeyLookup::Unavailable(
                attempts
                    .error
                    .clone()
                    .unwrap_or_else(|| "no keys fetched yet".into()),
            ),
            None => KeyLookup::Unknown,
        };
        (out, removed)
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let resp = self
            .http
            .get(&self.cfg.jwks_url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {}", self.cfg.jwks_url, error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("{} answered HTTP {status}", self.cfg.jwks_url));
        }
        if resp.content_length().is_some_and(|n| n > JWKS_MAX_BYTES) {
            return Err(format!("{} sent a JWKS over 1 MiB", self.cfg.jwks_url));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("reading {} failed: {}", self.cfg.jwks_url, error_chain(&e)))?;
        if body.len() as u64 > JWKS_MAX_BYTES {
            return Err(format!("{} sent a JWKS over 1 MiB", self.cfg.jwks_url));
        }
        parse_jwks(&body).map_err(|e| format!("{} is not a usable JWKS: {e}", self.cfg.jwks_url))
    }
}

const JWKS_MAX_BYTES: u64 = 1 << 20;

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The RS256 signing keys of a JWKS document, by kid (other keys ignored).
pub(crate) fn parse_jwks(body: &[u8]) -> Result<HashMap<String, DecodingKey>, String> {
    let doc: Jwks = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut keys = HashMap::new();
    for k in doc.keys {
        let usable = k.kty == "RSA"
            && k.use_.as_deref().is_none_or(|u| u == "sig")
            && k.alg.as_deref().is_none_or(|a| a == "RS256");
        let (Some(kid), Some(n), Some(e), true) = (k.kid, k.n, k.e, usable) else {
            continue;
        };
        if let Ok(dk) = DecodingKey::from_rsa_components(&n, &e) {
            keys.insert(kid, dk);
        }
    }
    if keys.is_empty() {
        return Err("it holds no RSA signing key with a kid".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(issuer: &str) -> ExternalIssuer {
        ExternalIssuer::new(
            issuer,
            "https://login.example/keys",
            vec!["api://graphbox".into()],
            HashMap::from([("ABC".to_owned(), Uuid::nil())]),
        )
    }

    #[test]
    fn issuer_templates_and_tenants() {
        let c = cfg("https://login.example/{tenantid}/v2.0");
        assert!(c.matches("https://login.example/abc/v2.0", Some("abc")));
        assert!(!c.matches("https://login.example/abc/v2.0", Some("def")));
        assert!(!c.matches("https://login.example/abc/v2.0", None));
        assert_eq!(c.tenant("abc"), Some(Uuid::nil()));
        assert_eq!(c.tenant("Abc"), Some(Uuid::nil()));
        assert_eq!(c.tenant("zzz"), None);
        let exact = cfg("https://sts.example/abc/");
        assert!(exact.matches("https://sts.example/abc/", Some("x")));
        assert!(!exact.matches("https://sts.example/abc", Some("x")));
    }

    #[test]
    fn configuration_errors_are_named() {
        let mut c = cfg("https://login.example/{tenant}/v2.0");
        assert!(c.check().unwrap_err().contains("{tenantid}"));
        c.issuer = "https://login.example/{tenantid}/v2.0".into();
        assert!(c.check().is_ok());
        c.jwks_url = "file:///etc/keys".into();
        assert!(c.check().unwrap_err().contains("jwks-url"));
        c.jwks_url = "https://x/keys".into();
        c.audiences = vec![" ".into()];
        assert!(c.check().unwrap_err().contains("audience"));
        c.audiences = vec!["a".into()];
        c.tenants.clear();
        assert!(c.check().unwrap_err().contains("tenant"));
    }

    #[test]
    fn name_maps_translate_or_pass_through() {
        let names = vec!["Export".to_owned(), "Other".to_owned()];
        assert_eq!(ExternalIssuer::map_names(None, names.clone()), names);
        let m = HashMap::from([("export".to_owned(), "MailboxItem.Export.All".to_owned())]);
        assert_eq!(
            ExternalIssuer::map_names(Some(&m), names),
            vec!["MailboxItem.Export.All".to_owned()]
        );
    }

    #[test]
    fn jwks_parsing_keeps_rsa_signing_keys() {
        let doc = serde_json::json!({"keys": [
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "a", "y": "b"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ok", "use": "sig", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ok"]);
        assert!(parse_jwks(br#"{"keys": []}"#).is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }
}
