//! Access tokens: client credentials (secret or certificate assertion) and
//! the device-code flow, cached, renewed before expiry, fetched once for
//! any number of concurrent callers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::http::Http;
use crate::profile::{Credential, DeviceCodeCallback, DeviceCodePrompt, Profile};

/// Grant type of the device-code token request (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// `client_assertion_type` of a JWT bearer client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

enum Method {
    Secret(String),
    Certificate {
        key: jsonwebtoken::EncodingKey,
        x5t_s256: String,
    },
    DeviceCode(Option<DeviceCodeCallback>),
}

struct Cached {
    access_token: String,
    renew_at: Instant,
}

#[derive(Default)]
struct State {
    token: Option<Cached>,
    refresh_token: Option<String>,
}

pub(crate) struct TokenCache {
    http: Arc<Http>,
    token_url: String,
    device_url: String,
    client_id: String,
    scope: String,
    margin: Duration,
    method: Method,
    state: tokio::sync::Mutex<State>,
    pub(crate) fetches: AtomicU64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

#[derive(Deserialize)]
struct DeviceAnswer {
    device_code: String,
    user_code: String,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
    #[serde(default)]
    message: Option<String>,
}

/// Reads the certificate (first PEM certificate) and returns `x5t#S256`.
pub fn certificate_thumbprint_s256(pem: &[u8]) -> Result<String> {
    let der = CertificateDer::from_pem_slice(pem).map_err(|e| {
        Error::Config(format!(
            "the certificate is not a PEM X.509 certificate: {e}"
        ))
    })?;
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(der.as_ref())))
}

fn as_secs(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl TokenCache {
    pub(crate) fn new(profile: &Profile, http: Arc<Http>) -> Result<TokenCache> {
        let method = match &profile.credential {
            Credential::Secret { secret } => Method::Secret(secret.clone()),
            Credential::Certificate {
                private_key_pem,
                certificate_pem,
            } => {
                let key_pem = std::fs::read(private_key_pem).map_err(|e| {
                    Error::Config(format!(
                        "cannot read the private key {}: {e}",
                        private_key_pem.display()
                    ))
                })?;
                let cert_pem = std::fs::read(certificate_pem).map_err(|e| {
                    Error::Config(format!(
                        "cannot read the certificate {}: {e}",
                        certificate_pem.display()
                    ))
                })?;
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(&key_pem).map_err(|e| {
                    Error::Config(format!(
                        "{} is not a PEM RSA private key (PKCS#1 or PKCS#8): {e}",
                        private_key_pem.display()
                    ))
                })?;
                // Parsing is lenient (a certificate PEM passes): prove the
                // key signs now rather than at the first token request.
                jsonwebtoken::encode(
                    &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256),
                    &serde_json::json!({}),
                    &key,
                )
                .map_err(|e| {
                    Error::Config(format!(
                        "{} is not a usable RSA private key for PS256 signing: {e}",
                        private_key_pem.display()
                    ))
                })?;
                Method::Certificate {
                    key,
                    x5t_s256: certificate_thumbprint_s256(&cert_pem)?,
                }
            }
            Credential::DeviceCode { prompt } => Method::DeviceCode(prompt.clone()),
        };
        let base = format!(
            "{}/{}/oauth2/v2.0",
            profile.authority.trim_end_matches('/'),
            profile.tenant
        );
        Ok(TokenCache {
            http,
            token_url: format!("{base}/token"),
            device_url: format!("{base}/devicecode"),
            client_id: profile.client_id.clone(),
            scope: profile.effective_scope(),
            margin: Duration::from_secs(profile.token_renew_margin_secs),
            method,
            state: tokio::sync::Mutex::new(State::default()),
            fetches: AtomicU64::new(0),
        })
    }

    /// A valid access token, fetching one if none is cached or the cached
    /// one is about to expire. Concurrent callers wait for one fetch.
    pub(crate) async fn token(&self) -> Result<String> {
        let mut st = self.state.lock().await;
        if let Some(t) = &st.token
            && Instant::now() < t.renew_at
        {
            return Ok(t.access_token.clone());
        }
        st.token = None;
        let answer = match (&self.method, st.refresh_token.clone()) {
            (Method::DeviceCode(_), Some(rt)) => match self.refresh(&rt).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::info!(error = %e, "refresh token refused; signing in again");
                    st.refresh_token = None;
                    self.fetch().await?
                }
            },
            _ => self.fetch().await?,
        };
        let lifetime = answer
            .expires_in
            .as_ref()
            .and_then(as_secs)
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(3599));
        // Renew `margin` early, but never later than half-way through a
        // short-lived token's life (so tiny lifetimes don't refetch always).
        let margin = self.margin.min(lifetime / 2);
        if answer.refresh_token.is_some() {
            st.refresh_token = answer.refresh_token.clone();
        }
        st.token = Some(Cached {
            access_token: answer.access_token.clone(),
            renew_at: Instant::now() + lifetime - margin,
        });
        Ok(answer.access_token)
    }

    /// Forgets `used` if it is still the cached token (Graph refused it).
    pub(crate) async fn invalidate(&self, used: &str) {
        let mut st = self.state.lock().await;
        if st.token.as_ref().is_some_and(|t| t.access_token == used) {
            st.token = None;
        }
    }

    /// Forgets the cached token, whatever it is (the next request fetches one).
    pub(crate) async fn clear(&self) {
        self.state.lock().await.token = None;
    }

    async fn fetch(&self) -> Result<TokenAnswer> {
        match &self.method {
            Method::Secret(secret) => {
                self.post_token(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &self.client_id),
                    ("client_secret", secret),
                    ("scope", &self.scope),
                ])
                .await
            }
            Method::Certificate { key, x5t_s256 } => {
                let assertion = self.assertion(key, x5t_s256)?;
                self.post_token(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &self.client_id),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &assertion),
                    ("scope", &self.scope),
                ])
                .await
            }
            Method::DeviceCode(prompt) => self.device_code(prompt.as_ref()).await,
        }
    }

    fn assertion(&self, key: &jsonwebtoken::EncodingKey, x5t_s256: &str) -> Result<String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        header.x5t_s256 = Some(x5t_s256.to_owned());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({
            "aud": self.token_url,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        });
        jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| Error::Config(format!("cannot sign the client assertion: {e}")))
    }

    async fn refresh(&self, refresh_token: &str) -> Result<TokenAnswer> {
        self.post_token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &self.client_id),
            ("refresh_token", refresh_token),
            ("scope", &self.scope),
        ])
        .await
    }

    /// One token request, retried on transport failures, 429 and 5xx.
    async fn post_token(&self, form: &[(&str, &str)]) -> Result<TokenAnswer> {
        match self.post_form(&self.token_url, form).await? {
            Ok(v) => serde_json::from_value(v).map_err(|e| Error::Decode {
                what: format!("the token endpoint {}", self.token_url),
                message: e.to_string(),
            }),
            Err((status, err)) => Err(auth_error(status, err)),
        }
    }

    /// POSTs a form; `Ok(Ok(json))` on 2xx, `Ok(Err(..))` on an OAuth error.
    async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<Result<serde_json::Value, (u16, OAuthError)>> {
        const ATTEMPTS: u32 = 4;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.fetches.fetch_add(1, Ordering::Relaxed);
            let sent = self
                .http
                .request(reqwest::Method::POST, url)
                .await?
                .form(form)
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, url, "token request failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    continue;
                }
                Err(e) => {
                    return Err(Error::Network {
                        method: "POST".into(),
                        url: url.to_owned(),
                        attempts: attempt,
                        message: crate::transport::error_chain(&e),
                    });
                }
            };
            let status = resp.status().as_u16();
            if (status == 429 || status >= 500) && attempt < ATTEMPTS {
                let wait = crate::transport::retry_after(resp.headers())
                    .unwrap_or(Duration::from_millis(200 << attempt))
                    .min(Duration::from_secs(60));
                tokio::time::sleep(wait).await;
                continue;
            }
            let bytes = resp.bytes().await.map_err(|e| Error::Network {
                method: "POST".into(),
                url: url.to_owned(),
                attempts: attempt,
                message: crate::transport::error_chain(&e),
            })?;
            if (200..300).contains(&status) {
                return serde_json::from_slice(&bytes)
                    .map(Ok)
                    .map_err(|e| Error::Decode {
                        what: format!("the answer of {url}"),
                        message: e.to_string(),
                    });
            }
            let err = serde_json::from_slice::<OAuthError>(&bytes).unwrap_or_else(|_| OAuthError {
                error: format!("http_{status}"),
                error_description: format!(
                    "{url} answered HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                ),
                error_codes: vec![],
            });
            return Ok(Err((status, err)));
        }
    }

    async fn device_code(&self, prompt: Option<&DeviceCodeCallback>) -> Result<TokenAnswer> {
        let start = match self
            .post_form(
                &self.device_url,
                &[("client_id", &self.client_id), ("scope", &self.scope)],
            )
            .await?
        {
            Ok(v) => serde_json::from_value::<DeviceAnswer>(v).map_err(|e| Error::Decode {
                what: format!("the device code endpoint {}", self.device_url),
                message: e.to_string(),
            })?,
            Err((status, err)) => return Err(auth_error(status, err)),
        };
        let shown = DeviceCodePrompt {
            user_code: start.user_code.clone(),
            verification_uri: start.verification_uri.clone(),
            message: start.message.clone(),
            expires_in: Duration::from_secs(start.expires_in),
        };
        match prompt {
            Some(p) => p(&shown),
            None => eprintln!(
                "{}",
                shown.message.clone().unwrap_or_else(|| format!(
                    "To sign in, open {} and enter the code {}",
                    shown.verification_uri, shown.user_code
                ))
            ),
        }
        let deadline = Instant::now() + Duration::from_secs(start.expires_in);
        let mut interval = Duration::from_secs(start.interval.unwrap_or(5));
        loop {
            tokio::time::sleep(interval).await;
            if Instant::now() >= deadline {
                return Err(Error::DeviceCode(
                    "the code expired before sign-in completed: run the command again".into(),
                ));
            }
            match self
                .post_form(
                    &self.token_url,
                    &[
                        ("grant_type", DEVICE_CODE_GRANT),
                        ("client_id", &self.client_id),
                        ("device_code", &start.device_code),
                    ],
                )
                .await?
            {
                Ok(v) => {
                    return serde_json::from_value(v).map_err(|e| Error::Decode {
                        what: format!("the token endpoint {}", self.token_url),
                        message: e.to_string(),
                    });
                }
                Err((status, err)) => match err.error.as_str() {
                    "authorization_pending" => {}
                    "slow_down" => interval += Duration::from_secs(5),
                    "expired_token" => {
                        return Err(Error::DeviceCode(
                            "the code expired before sign-in completed (expired_token): run the command again".into(),
                        ));
                    }
                    "access_denied" | "authorization_declined" => {
                        return Err(Error::DeviceCode(format!(
                            "the user declined the sign-in ({}): {}",
                            err.error, err.error_description
                        )));
                    }
                    _ => return Err(auth_error(status, err)),
                },
            }
        }
    }
}

fn auth_error(status: u16, err: OAuthError) -> Error {
    let aadsts = err.error_codes.first().copied().or_else(|| {
        // "AADSTS7000215: Invalid client secret provided…"
        let d = err.error_description.strip_prefix("AADSTS")?;
        d[..d.find(|c: char| !c.is_ascii_digit())?].parse().ok()
    });
    Error::Auth {
        error: err.error,
        description: err.error_description,
        aadsts,
        status: Some(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_code_from_codes_or_description() {
        let e = auth_error(
            401,
            OAuthError {
                error: "invalid_client".into(),
                error_description: "AADSTS7000215: Invalid client secret provided.".into(),
                error_codes: vec![7000215],
            },
        );
        assert!(matches!(
            &e,
            Error::Auth {
                aadsts: Some(7000215),
                ..
            }
        ));
        assert!(e.to_string().contains("AADSTS7000215"), "{e}");
        let e = auth_error(
            400,
            OAuthError {
                error: "invalid_request".into(),
                error_description: "AADSTS90002: Tenant 'x' not found.".into(),
                error_codes: vec![],
            },
        );
        assert!(matches!(
            e,
            Error::Auth {
                aadsts: Some(90002),
                status: Some(400),
                ..
            }
        ));
        let e = auth_error(500, OAuthError::default());
        assert!(matches!(e, Error::Auth { aadsts: None, .. }));
    }

    #[test]
    fn thumbprint_needs_a_certificate() {
        assert!(matches!(
            certificate_thumbprint_s256(b"junk"),
            Err(Error::Config(_))
        ));
        let c = rcgen::generate_simple_self_signed(vec!["backup".to_owned()]).unwrap();
        let t = certificate_thumbprint_s256(c.cert.pem().as_bytes()).unwrap();
        assert_eq!(t, URL_SAFE_NO_PAD.encode(Sha256::digest(c.cert.der())));
        assert_eq!(t.len(), 43);
    }
}
