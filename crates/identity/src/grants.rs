//! The user grants of the token endpoint (`authorization_code` with PKCE,
//! `refresh_token` with rotation, `device_code`), the device authorization
//! endpoint, and what they issue: Graph access tokens with the consented
//! `scp`, ID tokens, and refresh tokens.
//!
//! Every secret handed to a client (authorization code, refresh token,
//! device code, user code) is kept only as its SHA-256 in a one-time
//! [`AuthRecord`]; redeeming takes the record, so two instances cannot both
//! accept it. A redeemed code or rotated refresh token leaves a tombstone:
//! presenting it again revokes every refresh token descended from the same
//! sign-in (its "family"), as the OAuth security BCP recommends.

use std::collections::HashMap;

use api::auth::{Grant, TokenRequest, TokenUser};
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use store::Tenant;
use store::directory::{App, AuthRecord};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::IdentityState;
use crate::admin::hash_secret;
use crate::oauth::{OAuthError, authenticate_client, param, required, tenant, tenant_app};
use crate::scopes::{self, Scopes};

/// The device code grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Record kinds (the `kind` of [`AuthRecord`]).
pub(crate) mod kind {
    pub const CODE: &str = "code";
    pub const CODE_USED: &str = "code-used";
    pub const REFRESH: &str = "refresh";
    pub const REFRESH_USED: &str = "refresh-used";
    pub const FAMILY_REVOKED: &str = "family-revoked";
    pub const CONSENT_REVOKED: &str = "consent-revoked";
    pub const SESSIONS_REVOKED: &str = "sessions-revoked";
    pub const DEVICE: &str = "device";
    pub const DEVICE_POLL: &str = "device-poll";
    pub const USER_CODE: &str = "user-code";
    pub const FLOW: &str = "flow";
}

/// The longest a refresh token can live; revocation markers are kept this
/// long, so every token issued before a revocation has expired when its
/// marker goes.
pub const MAX_REFRESH_LIFETIME: Duration = Duration::days(365);

/// Lifetimes and pacing of the user-facing flows.
#[derive(Clone, Debug)]
pub struct FlowSettings {
    /// Authorization codes (Entra: about 10 minutes).
    pub code_lifetime: Duration,
    /// Device codes and their user codes (Entra: 15 minutes).
    pub device_code_lifetime: Duration,
    /// Minimum seconds between two polls of a device code.
    pub device_interval: i64,
    /// Refresh tokens (Entra: 90 days, rolling), at most [`MAX_REFRESH_LIFETIME`].
    pub refresh_lifetime: Duration,
    /// A pending sign-in / consent page.
    pub sign_in_lifetime: Duration,
    /// ID tokens.
    pub id_token_lifetime: Duration,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            code_lifetime: Duration::minutes(10),
            device_code_lifetime: Duration::minutes(15),
            device_interval: 5,
            refresh_lifetime: Duration::days(90),
            sign_in_lifetime: Duration::minutes(30),
            id_token_lifetime: Duration::hours(1),
        }
    }
}

/// `n` random bytes, base64url.
pub(crate) fn random_token(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// The record key of a secret handed out: its SHA-256.
pub(crate) fn record_key(secret: &str) -> String {
    hash_secret(secret)
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A fingerprint of a user's password hash: a refresh token remembers the
/// one of its sign-in and dies when the password changes.
pub(crate) fn password_stamp(hash: Option<&str>) -> String {
    hash_secret(&format!("password-stamp:{}", hash.unwrap_or("")))
}

/// Equality that takes the same time wherever the inputs differ.
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn unavailable(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::new("temporarily_unavailable", 90033, e.to_string())
}

fn invalid_grant(code: u32, m: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_grant", code, m)
}

/// A password sign-in, carried from the browser into codes, device codes
/// and refresh tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Session {
    pub tenant: Uuid,
    pub user: Uuid,
    /// When the password was checked (ms since the epoch).
    pub auth_time: i64,
    /// [`password_stamp`] at that time.
    pub stamp: String,
    /// The refresh-token family (one per sign-in).
    pub family: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CodeData {
    session: Session,
    scopes: Scopes,
    redirect_uri: String,
    challenge: Option<String>,
    nonce: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RefreshData {
    session: Session,
    scopes: Scopes,
}

/// What a device code waits for.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum DeviceStatus {
    Pending,
    Approved { session: Session },
    Denied { consent_required: bool },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DeviceData {
    pub tenant: Uuid,
    pub scopes: Scopes,
    /// When the code stops being accepted (ms since the epoch).
    pub expires_at: i64,
    pub state: DeviceStatus,
}

/// Issues an authorization code for a completed sign-in (and consent).
pub(crate) async fn issue_code(
    st: &IdentityState,
    app: &App,
    session: Session,
    scopes: Scopes,
    redirect_uri: &str,
    challenge: Option<String>,
    nonce: Option<String>,
) -> Result<String, OAuthError> {
    let code = random_token(48);
    let data = CodeData {
        session,
        scopes,
        redirect_uri: redirect_uri.to_owned(),
        challenge,
        nonce,
    };
    st.directory
        .store
        .put_record(AuthRecord {
            key: record_key(&code),
            kind: kind::CODE.into(),
            client_id: app.client_id,
            data: serde_json::to_string(&data).map_err(unavailable)?,
            expires: OffsetDateTime::now_utc() + st.flows.code_lifetime,
        })
        .await
        .map_err(unavailable)?;
    Ok(code)
}

/// The client of a user grant: public clients only name themselves,
/// confidential ones authenticate (secret or certificate assertion).
async fn user_grant_client(
    st: &IdentityState,
    t: &Tenant,
    segment: &str,
    form: &HashMap<String, String>,
) -> Result<App, OAuthError> {
    let client_id = required(form, "client_id")?;
    let has_credential =
        param(form, "client_secret").is_some() || param(form, "client_assertion").is_some();
    let app = if has_credential {
        authenticate_client(st, t, segment, client_id, form).await?
    } else {
        tenant_app(st, t, client_id).await?
    };
    if !has_credential && !app.public_client {
        return Err(OAuthError::new(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'. (The app is not a public client: enable public client flows with `graphbox admin app create --public-client`, or authenticate the client.)",
        ));
    }
    Ok(app)
}

/// Revokes a refresh-token family (after a replayed code or refresh token).
async fn revoke_family(st: &IdentityState, client_id: Uuid, family: &str) {
    let rec = AuthRecord {
        key: family.to_owned(),
        kind: kind::FAMILY_REVOKED.into(),
        client_id,
        data: json!({"at": now_ms()}).to_string(),
        expires: OffsetDateTime::now_utc() + MAX_REFRESH_LIFETIME,
    };
    match st.directory.store.put_record(rec).await {
        Ok(()) | Err(store::StoreError::Conflict(_)) => {}
        Err(e) => tracing::warn!("cannot record a revoked token family: {e}"),
    }
}

/// Leaves a tombstone for a redeemed code or rotated refresh token.
async fn tombstone(
    st: &IdentityState,
    kind: &str,
    key: String,
    client_id: Uuid,
    family: &str,
    expires: OffsetDateTime,
) {
    let rec = AuthRecord {
        key,
        kind: kind.into(),
        client_id,
        data: json!({"family": family}).to_string(),
        expires,
    };
    if let Err(e) = st.directory.store.put_record(rec).await
        && !matches!(e, store::StoreError::Conflict(_))
    {
        tracing::warn!("cannot record a redeemed {kind}: {e}");
    }
}

/// The family named by a tombstone, if the secret was redeemed before.
async fn tombstone_family(st: &IdentityState, kind: &str, key: &str) -> Option<(Uuid, String)> {
    let rec = st.directory.store.get_record(kind, key).await.ok()??;
    let v: serde_json::Value = serde_json::from_str(&rec.data).ok()?;
    Some((rec.client_id, v.get("family")?.as_str()?.to_owned()))
}

/// A revocation marker's time (ms), if any.
async fn marker(st: &IdentityState, kind: &str, key: &str) -> Result<Option<i64>, OAuthError> {
    let rec = st
        .directory
        .store
        .get_record(kind, key)
        .await
        .map_err(unavailable)?;
    Ok(rec.and_then(|r| {
        serde_json::from_str::<serde_json::Value>(&r.data)
            .ok()?
            .get("at")?
            .as_i64()
    }))
}

/// Whether a sign-in may still yield tokens: its family not revoked, the
/// app's consent not revoked and the user's sessions not revoked since, the
/// password unchanged.
async fn check_session(st: &IdentityState, app: &App, s: &Session) -> Result<(), OAuthError> {
    let revoked = |why: &str| {
        invalid_grant(
            50173,
            format!(
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. {why}"
            ),
        )
    };
    if marker(st, kind::FAMILY_REVOKED, &s.family).await?.is_some() {
        return Err(revoked(
            "A token of this sign-in was presented twice (replayed), so every token of the sign-in was revoked.",
        ));
    }
    if let Some(at) = marker(st, kind::CONSENT_REVOKED, &app.client_id.to_string()).await?
        && at >= s.auth_time
    {
        return Err(revoked("The consent for the application was revoked."));
    }
    let key = format!("{}:{}", s.user, app.client_id);
    if let Some(at) = marker(st, kind::SESSIONS_REVOKED, &key).await?
        && at >= s.auth_time
    {
        return Err(revoked("The user's sign-in sessions were revoked."));
    }
    let cred = st
        .directory
        .store
        .user_credential(s.user)
        .await
        .map_err(|_| revoked("The user no longer exists."))?;
    if !ct_eq(&password_stamp(cred.password_hash.as_deref()), &s.stamp) {
        return Err(revoked(
            "The user might have changed or reset their password.",
        ));
    }
    Ok(())
}

/// The `consent_required` answer of the token endpoint.
pub(crate) fn consent_required(app: &App, missing: &[String]) -> OAuthError {
    invalid_grant(
        65001,
        format!(
            "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource. Missing: {}.",
            app.client_id,
            app.display_name,
            missing.join(", ")
        ),
    )
    .with_suberror("consent_required")
}

/// Signs the tokens of a user grant: the access token (with every consented
/// delegated permission in `scp`), an ID token with `openid`, a rotated
/// refresh token with `offline_access`.
async fn issue_tokens(
    st: &IdentityState,
    app: &App,
    session: &Session,
    scopes: &Scopes,
    nonce: Option<&str>,
    client_info: bool,
) -> Result<serde_json::Value, OAuthError> {
    let user =
        st.meta.get_user(session.user).await.map_err(|_| {
            invalid_grant(50034, "The user account does not exist in the directory.")
        })?;
    let grants = st
        .directory
        .store
        .list_grants(app.client_id)
        .await
        .map_err(unavailable)?;
    let held = scopes::consented(&grants, user.id);
    let missing = scopes::missing(&scopes.graph, &held);
    if !missing.is_empty() {
        return Err(consent_required(app, &missing));
    }
    let lifetime = st.token_lifetime;
    let access = st.authority.mint(&TokenRequest {
        tenant_id: session.tenant,
        app_id: app.client_id,
        grant: Grant::Delegated {
            user: TokenUser {
                id: user.id,
                upn: user.upn.clone(),
            },
            scopes: held.clone(),
        },
        lifetime,
        issued_at: None,
    });
    let mut out = json!({
        "token_type": "Bearer",
        "scope": scopes.response(&held),
        "expires_in": lifetime.whole_seconds(),
        "ext_expires_in": lifetime.whole_seconds(),
        "access_token": access,
    });
    if scopes.has("offline_access") {
        let rt = random_token(64);
        let data = RefreshData {
            session: session.clone(),
            scopes: scopes.clone(),
        };
        let lifetime = st.flows.refresh_lifetime.min(MAX_REFRESH_LIFETIME);
        st.directory
            .store
            .put_record(AuthRecord {
                key: record_key(&rt),
                kind: kind::REFRESH.into(),
                client_id: app.client_id,
                data: serde_json::to_string(&data).map_err(unavailable)?,
                expires: OffsetDateTime::now_utc() + lifetime,
            })
            .await
            .map_err(unavailable)?;
        out["refresh_token"] = json!(rt);
        out["refresh_token_expires_in"] = json!(lifetime.whole_seconds());
    }
    let oid = user.id.as_hyphenated().to_string();
    let tid = session.tenant.as_hyphenated().to_string();
    if scopes.has("openid") {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let sub = URL_SAFE_NO_PAD.encode(Sha256::digest(
            format!("{oid}:{}", app.client_id).as_bytes(),
        ));
        let mut claims = json!({
            "aud": app.client_id.as_hyphenated().to_string(),
            "iss": st.authority.issuer_for(session.tenant),
            "iat": now,
            "nbf": now,
            "exp": now + st.flows.id_token_lifetime.whole_seconds(),
            "auth_time": session.auth_time / 1000,
            "sub": sub,
            "oid": oid,
            "tid": tid,
            "ver": "2.0",
            "uti": random_token(16),
        });
        if scopes.has("profile") {
            claims["name"] = json!(user.display_name);
            claims["preferred_username"] = json!(user.upn);
        }
        if scopes.has("email") {
            claims["email"] = json!(user.upn);
        }
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        out["id_token"] = json!(st.authority.sign_json(&claims));
    }
    if client_info {
        let ci = json!({"uid": oid, "utid": tid}).to_string();
        out["client_info"] = json!(URL_SAFE_NO_PAD.encode(ci.as_bytes()));
    }
    Ok(out)
}

fn wants_client_info(form: &HashMap<String, String>) -> bool {
    param(form, "client_info") == Some("1")
}

/// Whether a PKCE verifier has RFC 7636's shape (43-128 unreserved chars).
fn verifier_well_formed(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier.
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `grant_type=authorization_code`.
pub(crate) async fn authorization_code(
    st: &IdentityState,
    t: &Tenant,
    segment: &str,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let code = required(form, "code")?;
    let redirect_uri = required(form, "redirect_uri")?;
    let app = user_grant_client(st, t, segment, form).await?;
    let key = record_key(code);
    let Some(rec) = st
        .directory
        .store
        .take_record(kind::CODE, &key)
        .await
        .map_err(unavailable)?
    else {
        if let Some((client, family)) = tombstone_family(st, kind::CODE_USED, &key).await {
            revoke_family(st, client, &family).await;
            return Err(invalid_grant(
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token. The tokens issued for the first redemption were revoked.",
            ));
        }
        return Err(invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity, or is not valid. Send a new interactive authorization request for this user and resource.",
        ));
    };
    let data: CodeData = serde_json::from_str(&rec.data).map_err(unavailable)?;
    tombstone(
        st,
        kind::CODE_USED,
        key,
        rec.client_id,
        &data.session.family,
        rec.expires,
    )
    .await;
    if rec.client_id != app.client_id || data.session.tenant != t.id {
        return Err(invalid_grant(
            70000,
            "Provided grant is invalid or malformed: the authorization code was issued to another client.",
        ));
    }
    if data.redirect_uri != redirect_uri {
        return Err(invalid_grant(
            70000,
            "Provided grant is invalid or malformed: the redirect_uri does not match the one of the authorization request.",
        ));
    }
    let verifier = param(form, "code_verifier");
    match (&data.challenge, verifier) {
        (Some(_), None) => {
            return Err(invalid_grant(
                50148,
                "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE: the request body must contain 'code_verifier'.",
            ));
        }
        (Some(ch), Some(v)) => {
            if !verifier_well_formed(v) || !ct_eq(&s256(v), ch) {
                return Err(invalid_grant(
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                ));
            }
        }
        (None, Some(_)) => {
            return Err(invalid_grant(
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request: that request had no code_challenge.",
            ));
        }
        (None, None) => {}
    }
    check_session(st, &app, &data.session).await?;
    issue_tokens(
        st,
        &app,
        &data.session,
        &data.scopes,
        data.nonce.as_deref(),
        wants_client_info(form),
    )
    .await
}

/// `grant_type=refresh_token`: rotates the token (the one presented is
/// spent), re-checks consent and revocation.
pub(crate) async fn refresh_token(
    st: &IdentityState,
    t: &Tenant,
    segment: &str,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let token = required(form, "refresh_token")?;
    let app = user_grant_client(st, t, segment, form).await?;
    let key = record_key(token);
    let store = &st.directory.store;
    let Some(rec) = store
        .get_record(kind::REFRESH, &key)
        .await
        .map_err(unavailable)?
    else {
        if let Some((client, family)) = tombstone_family(st, kind::REFRESH_USED, &key).await {
            revoke_family(st, client, &family).await;
            return Err(invalid_grant(
                70008,
                "The provided refresh token was already used: refresh tokens are rotated on every use. Every token of this sign-in has been revoked; sign in again.",
            ));
        }
        return Err(invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity, or was revoked. Send a new interactive authorization request for this user and resource.",
        ));
    };
    if rec.client_id != app.client_id {
        return Err(invalid_grant(
            70000,
            "Provided grant is invalid or malformed: the refresh token was issued to another client.",
        ));
    }
    let data: RefreshData = serde_json::from_str(&rec.data).map_err(unavailable)?;
    if data.session.tenant != t.id {
        return Err(invalid_grant(
            70000,
            "Provided grant is invalid or malformed: the refresh token belongs to another tenant.",
        ));
    }
    if let Err(e) = check_session(st, &app, &data.session).await {
        let _ = store.take_record(kind::REFRESH, &key).await;
        return Err(e);
    }
    let registered = store
        .list_permissions(app.client_id)
        .await
        .map_err(unavailable)?;
    let mut scopes = match param(form, "scope") {
        Some(s) => scopes::parse(s, &registered)?,
        None => data.scopes.clone(),
    };
    // The refresh token itself was for offline access; keep it rolling.
    if data.scopes.has("offline_access") && !scopes.has("offline_access") {
        scopes.oidc.push("offline_access".into());
        scopes.oidc.sort();
    }
    // Consent first (a consent_required answer leaves the token usable, so
    // the app can get consent and retry), then spend the token.
    let grants = store
        .list_grants(app.client_id)
        .await
        .map_err(unavailable)?;
    let missing = scopes::missing(
        &scopes.graph,
        &scopes::consented(&grants, data.session.user),
    );
    if !missing.is_empty() {
        return Err(consent_required(&app, &missing));
    }
    if store
        .take_record(kind::REFRESH, &key)
        .await
        .map_err(unavailable)?
        .is_none()
    {
        return Err(invalid_grant(
            70008,
            "The provided refresh token was already used: refresh tokens are rotated on every use.",
        ));
    }
    tombstone(
        st,
        kind::REFRESH_USED,
        key,
        app.client_id,
        &data.session.family,
        rec.expires,
    )
    .await;
    issue_tokens(
        st,
        &app,
        &data.session,
        &scopes,
        None,
        wants_client_info(form),
    )
    .await
}

/// Normalises a user code as typed (case, spaces and dashes ignored).
pub(crate) fn normalize_user_code(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Letters and digits that cannot be mistaken for one another.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ23456789";

fn new_user_code() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..9)
        .map(|_| USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())] as char)
        .collect()
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
pub(crate) async fn devicecode(
    State(st): State<IdentityState>,
    Path(segment): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    crate::oauth::no_store_json(devicecode_inner(&st, &segment, &form).await)
}

async fn devicecode_inner(
    st: &IdentityState,
    segment: &str,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let t = tenant(st, segment).await?;
    let client_id = required(form, "client_id")?;
    let app = tenant_app(st, &t, client_id).await?;
    let id = app.client_id;
    let registered = st
        .directory
        .store
        .list_permissions(id)
        .await
        .map_err(unavailable)?;
    let scopes = scopes::parse(required(form, "scope")?, &registered)?;
    let lifetime = st.flows.device_code_lifetime;
    let now = OffsetDateTime::now_utc();
    let device_code = random_token(48);
    let device_key = record_key(&device_code);
    let data = DeviceData {
        tenant: t.id,
        scopes,
        expires_at: now_ms() + lifetime.whole_milliseconds() as i64,
        state: DeviceStatus::Pending,
    };
    // The record outlives the code, so a late poll hears `expired_token`.
    st.directory
        .store
        .put_record(AuthRecord {
            key: device_key.clone(),
            kind: kind::DEVICE.into(),
            client_id: id,
            data: serde_json::to_string(&data).map_err(unavailable)?,
            expires: now + lifetime + lifetime,
        })
        .await
        .map_err(unavailable)?;
    let mut user_code = String::new();
    for _ in 0..5 {
        let candidate = new_user_code();
        let rec = AuthRecord {
            key: record_key(&candidate),
            kind: kind::USER_CODE.into(),
            client_id: id,
            data: json!({"device": device_key}).to_string(),
            expires: now + lifetime,
        };
        match st.directory.store.put_record(rec).await {
            Ok(()) => {
                user_code = candidate;
                break;
            }
            Err(store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err(unavailable(e)),
        }
    }
    if user_code.is_empty() {
        return Err(unavailable("no free user code; retry"));
    }
    let uri = format!("{}/{}/oauth2/deviceauth", st.base, t.id.as_hyphenated());
    Ok(json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": uri,
        "expires_in": lifetime.whole_seconds(),
        "interval": st.flows.device_interval,
        "message": format!(
            "To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."
        ),
    }))
}

/// `grant_type=urn:ietf:params:oauth:grant-type:device_code`.
pub(crate) async fn device_code(
    st: &IdentityState,
    t: &Tenant,
    segment: &str,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let code = required(form, "device_code")?;
    let app = user_grant_client(st, t, segment, form).await?;
    let key = record_key(code);
    let store = &st.directory.store;
    let invalid = || {
        invalid_grant(
            70000,
            "Provided grant is invalid or malformed: the device_code is not valid or was already redeemed.",
        )
    };
    let Some(rec) = store
        .get_record(kind::DEVICE, &key)
        .await
        .map_err(unavailable)?
    else {
        return Err(invalid());
    };
    if rec.client_id != app.client_id {
        return Err(invalid_grant(
            70000,
            "Provided grant is invalid or malformed: the device_code was issued to another client.",
        ));
    }
    let data: DeviceData = serde_json::from_str(&rec.data).map_err(unavailable)?;
    if data.tenant != t.id {
        return Err(invalid());
    }
    let now = now_ms();
    if now >= data.expires_at {
        return Err(OAuthError::new(
            "expired_token",
            70020,
            "The provided device_code has expired: the user did not complete the sign-in in time. Start a new device code flow.",
        ));
    }
    match data.state {
        DeviceStatus::Pending => {
            let interval_ms = st.flows.device_interval * 1000;
            let last = store
                .get_record(kind::DEVICE_POLL, &key)
                .await
                .map_err(unavailable)?;
            let poll = json!({"last": now}).to_string();
            let too_fast = match &last {
                Some(r) => {
                    let prev = serde_json::from_str::<serde_json::Value>(&r.data)
                        .ok()
                        .and_then(|v| v.get("last")?.as_i64())
                        .unwrap_or(0);
                    let _ = store.update_record(kind::DEVICE_POLL, &key, &poll).await;
                    now - prev < interval_ms - 200
                }
                None => {
                    let _ = store
                        .put_record(AuthRecord {
                            key: key.clone(),
                            kind: kind::DEVICE_POLL.into(),
                            client_id: app.client_id,
                            data: poll,
                            expires: rec.expires,
                        })
                        .await;
                    false
                }
            };
            if too_fast {
                return Err(OAuthError::new(
                    "slow_down",
                    0,
                    format!(
                        "The client polled faster than the interval of {} seconds. Wait at least the interval between polls.",
                        st.flows.device_interval
                    ),
                ));
            }
            Err(OAuthError::new(
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            ))
        }
        DeviceStatus::Denied { consent_required } => {
            let _ = store.take_record(kind::DEVICE, &key).await;
            if consent_required {
                Err(crate::grants::consent_required(
                    &app,
                    &missing_for_denied(st, &app, &data).await,
                ))
            } else {
                Err(OAuthError::new(
                    "access_denied",
                    65004,
                    "User declined to consent to access the app.",
                ))
            }
        }
        DeviceStatus::Approved { session } => {
            if store
                .take_record(kind::DEVICE, &key)
                .await
                .map_err(unavailable)?
                .is_none()
            {
                return Err(invalid());
            }
            check_session(st, &app, &session).await?;
            issue_tokens(
                st,
                &app,
                &session,
                &data.scopes,
                None,
                wants_client_info(form),
            )
            .await
        }
    }
}

async fn missing_for_denied(st: &IdentityState, app: &App, data: &DeviceData) -> Vec<String> {
    let grants = st
        .directory
        .store
        .list_grants(app.client_id)
        .await
        .unwrap_or_default();
    let admin: Vec<String> = grants
        .iter()
        .filter(|g| g.user_id.is_none())
        .map(|g| g.value.clone())
        .collect();
    scopes::missing(&data.scopes.graph, &admin)
        .into_iter()
        .filter(|s| scopes::needs_admin(s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_and_codes() {
        // RFC 7636 appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(verifier_well_formed(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!verifier_well_formed("short"));
        assert!(!verifier_well_formed(&"a+".repeat(30)));
        let c = new_user_code();
        assert_eq!(c.len(), 9);
        assert_eq!(normalize_user_code(&c.to_lowercase()), c);
        assert_eq!(normalize_user_code("abc-def 12"), "ABCDEF12");
        assert!(ct_eq("abc", "abc") && !ct_eq("abc", "abd") && !ct_eq("abc", "ab"));
    }
}
