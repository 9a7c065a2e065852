//! The OAuth 2.0 / OpenID Connect endpoints, with Entra's error shapes.

use std::collections::HashMap;

use api::auth::{Grant, TokenRequest};
use axum::Form;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::json;
use store::Tenant;
use store::directory::App;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::IdentityState;
use crate::admin::{hash_secret, hex_upper};

/// The `client_assertion_type` of a JWT bearer client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An OAuth error as Entra answers it (`error`, `error_description` with the
/// AADSTS code, `error_codes`, `timestamp`, `trace_id`, `correlation_id`).
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    /// The AADSTS number; 0 for errors Entra gives none (`slow_down`).
    pub code: u32,
    pub description: String,
    /// Entra's `suberror` (e.g. `consent_required` on an `invalid_grant`).
    pub suberror: Option<&'static str>,
}

impl OAuthError {
    pub fn new(error: &'static str, code: u32, description: impl Into<String>) -> Self {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        OAuthError {
            status,
            error,
            code,
            description: description.into(),
            suberror: None,
        }
    }

    /// The same error with Entra's `suberror`.
    pub fn with_suberror(mut self, suberror: &'static str) -> Self {
        self.suberror = Some(suberror);
        self
    }

    /// `error_description` without the trace ids: `AADSTS{code}: {text}`.
    pub fn short_description(&self) -> String {
        if self.code == 0 {
            self.description.clone()
        } else {
            format!("AADSTS{}: {}", self.code, self.description)
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let trace = Uuid::new_v4();
        let corr = Uuid::new_v4();
        let codes: Vec<u32> = if self.code == 0 {
            vec![]
        } else {
            vec![self.code]
        };
        let mut body = json!({
            "error": self.error,
            "error_description": format!(
                "{} Trace ID: {trace} Correlation ID: {corr} Timestamp: {now}",
                self.short_description()
            ),
            "error_codes": codes,
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": corr,
        });
        if let Some(sub) = self.suberror {
            body["suberror"] = json!(sub);
        }
        (
            self.status,
            [(axum::http::header::CACHE_CONTROL, "no-store")],
            Json(body),
        )
            .into_response()
    }
}

pub(crate) async fn tenant(st: &IdentityState, key: &str) -> Result<Tenant, OAuthError> {
    st.meta.find_tenant(key).await.map_err(|_| {
        OAuthError::new(
            "invalid_request",
            90002,
            format!("Tenant '{key}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        )
    })
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub(crate) async fn openid_configuration(
    State(st): State<IdentityState>,
    Path(key): Path<String>,
) -> Result<Json<serde_json::Value>, OAuthError> {
    let t = tenant(&st, &key).await?;
    let tid = t.id.as_hyphenated().to_string();
    let b = &st.base;
    Ok(Json(json!({
        "issuer": st.authority.issuer_for(t.id),
        "token_endpoint": format!("{b}/{tid}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{b}/{tid}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{b}/{tid}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{b}/{tid}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "none"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            crate::grants::DEVICE_CODE_GRANT,
        ],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "name",
            "preferred_username", "email", "oid", "tid", "ver",
        ],
        "request_uri_parameter_supported": false,
        "frontchannel_logout_supported": false,
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "tenant_region_scope": null,
        "cloud_instance_name": "graphbox",
    })))
}

/// `GET /{tenant}/discovery/v2.0/keys`.
pub(crate) async fn jwks(
    State(st): State<IdentityState>,
    Path(key): Path<String>,
) -> Result<Json<serde_json::Value>, OAuthError> {
    tenant(&st, &key).await?;
    Ok(Json(st.authority.jwks()))
}

/// `GET /common/discovery/instance?authorization_endpoint=…` (what MSAL asks
/// when given this host as its instance-discovery endpoint).
pub(crate) async fn instance_discovery(
    State(st): State<IdentityState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(ep) = q.get("authorization_endpoint") else {
        return OAuthError::new(
            "invalid_request",
            90014,
            "The request body must contain the following parameter: 'authorization_endpoint'.",
        )
        .into_response();
    };
    let prefix = format!("{}/", st.base);
    let tenant = ep
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split('/').next())
        .filter(|t| !t.is_empty());
    let Some(tenant) = tenant else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": "invalid_instance",
                "error_description": format!("AADSTS50049: Unknown or invalid instance. This server's authority is {}.", st.base),
                "error_codes": [50049],
            })),
        )
            .into_response();
    };
    let host = st.base.split("://").nth(1).unwrap_or(&st.base).to_owned();
    Json(json!({
        "tenant_discovery_endpoint": format!("{}/{tenant}/v2.0/.well-known/openid-configuration", st.base),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }))
    .into_response()
}

/// A token-endpoint style answer: the JSON with `Cache-Control: no-store`,
/// or the Entra-worded error.
pub(crate) fn no_store_json(r: Result<serde_json::Value, OAuthError>) -> Response {
    match r {
        Ok(v) => (
            StatusCode::OK,
            [(axum::http::header::CACHE_CONTROL, "no-store")],
            Json(v),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    State(st): State<IdentityState>,
    Path(key): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    no_store_json(token_inner(&st, &key, &form).await)
}

pub(crate) fn param<'a>(form: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    form.get(name).map(String::as_str).filter(|s| !s.is_empty())
}

pub(crate) fn required<'a>(
    form: &'a HashMap<String, String>,
    name: &str,
) -> Result<&'a str, OAuthError> {
    param(form, name).ok_or_else(|| {
        OAuthError::new(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    })
}

async fn token_inner(
    st: &IdentityState,
    key: &str,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let t = tenant(st, key).await?;
    let grant_type = required(form, "grant_type")?;
    match grant_type {
        "client_credentials" => client_credentials(st, &t, key, form).await,
        "authorization_code" => crate::grants::authorization_code(st, &t, key, form).await,
        "refresh_token" => crate::grants::refresh_token(st, &t, key, form).await,
        crate::grants::DEVICE_CODE_GRANT | "device_code" => {
            crate::grants::device_code(st, &t, key, form).await
        }
        other => Err(OAuthError::new(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

/// The `.default` scope of Graph, the only scope client credentials accept.
fn check_default_scope(scope: &str) -> Result<(), OAuthError> {
    let ok = scope.split_whitespace().count() == 1
        && [
            "https://graph.microsoft.com/.default",
            "https://graph.microsoft.com//.default",
            "00000003-0000-0000-c000-000000000000/.default",
        ]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scope));
    if ok {
        Ok(())
    } else {
        Err(OAuthError::new(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ))
    }
}

async fn client_credentials(
    st: &IdentityState,
    t: &Tenant,
    segment: &str,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let client_id = required(form, "client_id")?;
    check_default_scope(required(form, "scope")?)?;
    let app = authenticate_client(st, t, segment, client_id, form).await?;
    let roles = st
        .directory
        .app_roles(app.client_id)
        .await
        .map_err(|e| OAuthError::new("temporarily_unavailable", 90033, e.to_string()))?;
    let lifetime = st.token_lifetime;
    let token = st.authority.mint(&TokenRequest {
        tenant_id: t.id,
        app_id: app.client_id,
        grant: Grant::Application { roles },
        lifetime,
        issued_at: None,
    });
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.whole_seconds(),
        "ext_expires_in": lifetime.whole_seconds(),
        "access_token": token,
    }))
}

/// Authenticates a confidential client by secret or certificate assertion.
/// Failures are slowed down per client id (doubling delay, capped).
pub(crate) async fn authenticate_client(
    st: &IdentityState,
    t: &Tenant,
    segment: &str,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<App, OAuthError> {
    let delay = st
        .failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(client_id)
        .copied()
        .unwrap_or(0);
    if delay > 0 {
        let ms = (100u64 << delay.min(5)).min(3000);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let out = authenticate_client_inner(st, t, segment, client_id, form).await;
    let mut f = st.failures.lock().unwrap_or_else(|p| p.into_inner());
    match &out {
        Err(e) if e.error == "invalid_client" => {
            if f.len() > 10_000 {
                f.clear();
            }
            *f.entry(client_id.to_owned()).or_insert(0) += 1;
        }
        _ => {
            f.remove(client_id);
        }
    }
    out
}

/// The app registration `client_id` of tenant `t` (AADSTS700016 otherwise).
pub(crate) async fn tenant_app(
    st: &IdentityState,
    t: &Tenant,
    client_id: &str,
) -> Result<App, OAuthError> {
    let id = Uuid::parse_str(client_id).map_err(|_| app_not_found(client_id, t))?;
    match st.directory.store.get_app(id).await {
        Ok(app) if app.tenant_id == t.id => Ok(app),
        _ => Err(app_not_found(client_id, t)),
    }
}

pub(crate) fn app_not_found(client_id: &str, t: &Tenant) -> OAuthError {
    OAuthError::new(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant.",
            t.domain
        ),
    )
}

async fn authenticate_client_inner(
    st: &IdentityState,
    t: &Tenant,
    segment: &str,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<App, OAuthError> {
    let app = tenant_app(st, t, client_id).await?;
    let id = app.client_id;
    let now = OffsetDateTime::now_utc();
    if let Some(secret) = param(form, "client_secret") {
        let hash = hash_secret(secret);
        let secrets = st
            .directory
            .store
            .list_secrets(id)
            .await
            .map_err(|e| OAuthError::new("temporarily_unavailable", 90033, e.to_string()))?;
        return match secrets.iter().find(|s| s.hash == hash) {
            Some(s) if s.expires > now => Ok(app),
            Some(s) => Err(OAuthError::new(
                "invalid_client",
                7000222,
                format!("The provided client secret keys for app '{client_id}' are expired (key id {}). Create a new secret with `graphbox admin app secret add`.", s.id),
            )),
            None => Err(OAuthError::new(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '".to_owned() + client_id + "'.",
            )),
        };
    }
    if let Some(assertion) = param(form, "client_assertion") {
        if param(form, "client_assertion_type") != Some(JWT_BEARER) {
            return Err(OAuthError::new(
                "invalid_request",
                50027,
                format!("client_assertion_type must be '{JWT_BEARER}'."),
            ));
        }
        verify_assertion(st, t, segment, id, client_id, assertion).await?;
        return Ok(app);
    }
    Err(OAuthError::new(
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ))
}

async fn verify_assertion(
    st: &IdentityState,
    t: &Tenant,
    segment: &str,
    id: Uuid,
    client_id: &str,
    assertion: &str,
) -> Result<Uuid, OAuthError> {
    let bad = |code: u32, m: &str| OAuthError::new("invalid_client", code, m.to_owned());
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| bad(50012, "The client assertion is not a well-formed JWT."))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(bad(
            5002738,
            "The client assertion must be signed with RS256 or PS256.",
        ));
    }
    let (thumb, sha256) = match (&header.x5t_s256, &header.x5t) {
        (Some(s), _) => (s.clone(), true),
        (None, Some(s)) => (s.clone(), false),
        _ => {
            return Err(bad(
                700027,
                "The client assertion has no x5t or x5t#S256 header naming the certificate.",
            ));
        }
    };
    let thumb = URL_SAFE_NO_PAD
        .decode(thumb.trim_end_matches('='))
        .map(|b| hex_upper(&b))
        .map_err(|_| {
            bad(
                700027,
                "The certificate thumbprint in the header is not base64url.",
            )
        })?;
    let certs = st
        .directory
        .store
        .list_certificates(id)
        .await
        .map_err(|e| OAuthError::new("temporarily_unavailable", 90033, e.to_string()))?;
    let cert = certs
        .iter()
        .find(|c| {
            if sha256 {
                c.thumbprint_sha256 == thumb
            } else {
                c.thumbprint_sha1 == thumb
            }
        })
        .ok_or_else(|| {
            bad(
                700027,
                &format!("Client assertion contains an invalid signature. The key was not found: thumbprint {thumb} is not registered for app '{client_id}'."),
            )
        })?;
    if cert.expires <= OffsetDateTime::now_utc() {
        return Err(bad(
            700024,
            "The certificate of the client assertion has expired.",
        ));
    }
    let key = DecodingKey::from_rsa_pem(cert.public_key_pem.as_bytes())
        .map_err(|_| bad(700027, "The registered certificate's key is unusable."))?;
    let mut v = Validation::new(header.alg);
    v.leeway = api::auth::CLOCK_SKEW_SECS;
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let b = &st.base;
    let tid = t.id.as_hyphenated().to_string();
    let auds = [
        format!("{b}/{tid}/oauth2/v2.0/token"),
        format!("{b}/{segment}/oauth2/v2.0/token"),
        format!("{b}/{}/oauth2/v2.0/token", t.domain),
        st.authority.issuer_for(t.id),
    ];
    v.set_audience(&auds);
    v.set_issuer(&[client_id]);
    let data = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::ExpiredSignature => bad(
                700024,
                "Client assertion is not within its valid time range.",
            ),
            K::InvalidAudience => bad(
                700021,
                "Client assertion audience claim does not match the token endpoint.",
            ),
            K::InvalidIssuer => bad(700021, "Client assertion issuer must be the client id."),
            K::InvalidSignature => bad(700027, "Client assertion contains an invalid signature."),
            _ => bad(50012, &format!("The client assertion is invalid: {e}.")),
        }
    })?;
    if data.claims.get("sub").and_then(|s| s.as_str()) != Some(client_id) {
        return Err(bad(
            700021,
            "Client assertion subject must be the client id.",
        ));
    }
    // One-time use: the jti (or the whole assertion's hash) is remembered
    // until the assertion expires.
    let exp = data.claims.get("exp").and_then(|e| e.as_i64()).unwrap_or(0);
    let jti = data
        .claims
        .get("jti")
        .and_then(|j| j.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| hash_secret(assertion));
    let expires = OffsetDateTime::from_unix_timestamp(exp + api::auth::CLOCK_SKEW_SECS as i64)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let rec = store::directory::AuthRecord {
        key: hash_secret(&format!("{client_id}:{jti}")),
        kind: "jti".into(),
        client_id: id,
        data: "{}".into(),
        expires,
    };
    match st.directory.store.put_record(rec).await {
        Ok(()) => Ok(id),
        Err(store::StoreError::Conflict(_)) => Err(bad(
            700025,
            "The client assertion was already used (replayed jti). Create a new assertion for every request.",
        )),
        Err(e) => Err(OAuthError::new(
            "temporarily_unavailable",
            90033,
            e.to_string(),
        )),
    }
}
