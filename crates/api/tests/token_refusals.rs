//! Every token the Graph side must refuse, each as a real request through the
//! router answered 401 or 403 with Graph's error envelope; tokens of a
//! configured external issuer (a local JWKS server and RSA key standing in
//! for Entra ID); and the permission matrix of graph-api.md §2 with delegated
//! (`scp`) and application (`roles`) tokens.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use api::auth::{ExternalIssuer, KeyState, UserMatch};
use api::{AuthSettings, Authority, Operation};
use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Env, ISSUER, Resp, env, pem};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;
use uuid::Uuid;

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Signs `claims` with the server's own key and `kid`.
fn sign_local(env: &Env, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(env.authority().kid());
    jsonwebtoken::encode(
        &h,
        claims,
        &EncodingKey::from_rsa_pem(pem().as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Claims of a valid application token of `env`'s tenant.
fn app_claims(env: &Env, roles: &[&str]) -> Value {
    let t = now();
    json!({
        "aud": "https://graph.microsoft.com",
        "iss": env.authority().issuer_for(env.tenant.id),
        "iat": t, "nbf": t, "exp": t + 600,
        "tid": env.tenant.id.to_string(),
        "azp": env.app_id.to_string(), "appid": env.app_id.to_string(),
        "oid": env.app_id.to_string(), "idtyp": "app",
        "roles": roles,
    })
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Asserts Graph's envelope: `{"error": {"code": …, "message": …}}`, the
/// given status, code and a message fragment.
#[track_caller]
fn assert_envelope(case: &str, r: &Resp, status: u16, code: &str, fragment: &str) {
    assert_eq!(r.status.as_u16(), status, "{case}: {}", r.text);
    let body = r.json();
    let err = &body["error"];
    assert!(err.is_object(), "{case}: no error object: {}", r.text);
    assert_eq!(err["code"], code, "{case}: {}", r.text);
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(!msg.is_empty(), "{case}: empty message");
    assert!(
        msg.to_lowercase().contains(&fragment.to_lowercase()),
        "{case}: message {msg:?} lacks {fragment:?}"
    );
    if status == 401 {
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{case}: 401 without a Bearer challenge"
        );
    }
}

/// A request with an optional JSON body and any Authorization header value.
async fn send(
    env: &Env,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> Resp {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(a) = authorization {
        b = b.header("authorization", a);
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let resp = env
        .app
        .clone()
        .oneshot(b.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// The server's public key in the encodings an attacker would try as an
/// HMAC secret.
fn public_key_encodings() -> Vec<(&'static str, Vec<u8>)> {
    let private = rsa::RsaPrivateKey::from_pkcs8_pem(pem()).unwrap();
    let public = rsa::RsaPublicKey::from(&private);
    vec![
        (
            "PKCS#1 PEM",
            public.to_pkcs1_pem(LineEnding::LF).unwrap().into_bytes(),
        ),
        (
            "SPKI PEM",
            public
                .to_public_key_pem(LineEnding::LF)
                .unwrap()
                .into_bytes(),
        ),
        (
            "PKCS#1 DER",
            public.to_pkcs1_der().unwrap().as_bytes().to_vec(),
        ),
    ]
}

/// One refused request: name, `Authorization` value, path, status, error
/// code, message fragment.
struct Case(
    String,
    Option<String>,
    String,
    u16,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn refused_tokens_get_401_or_403_with_the_graph_envelope() {
    let env = env().await;
    let folders = env.mp(&env.mbx, "/folders");
    let read = ["MailboxFolder.Read.All"];
    let skew = api::auth::CLOCK_SKEW_SECS as i64;
    let good = app_claims(&env, &read);
    let kid = env.authority().kid();
    let other_key = api::auth::generate_signing_key_pem().unwrap();

    let mut cases: Vec<Case> = Vec::new();
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let unauth = "InvalidAuthenticationToken";
    let denied = "ErrorAccessDenied";

    cases.push(Case(
        "no Authorization header".into(),
        None,
        folders.clone(),
        401,
        unauth,
        "empty",
    ));
    cases.push(Case(
        "Basic scheme".into(),
        Some("Basic dXNlcjpwYXNz".into()),
        folders.clone(),
        401,
        unauth,
        "Bearer",
    ));
    cases.push(Case(
        "empty bearer".into(),
        Some("Bearer ".into()),
        folders.clone(),
        401,
        unauth,
        "",
    ));
    for (name, t) in [
        ("not a JWT", "abc".to_owned()),
        ("three garbage segments", "a.b.c".to_owned()),
        (
            "header only",
            format!("{}..", b64(&json!({"alg": "RS256", "kid": kid}))),
        ),
        (
            "payload not JSON",
            format!(
                "{}.{}.c2ln",
                b64(&json!({"alg": "RS256", "kid": kid})),
                URL_SAFE_NO_PAD.encode("not json")
            ),
        ),
    ] {
        cases.push(Case(
            format!("malformed: {name}"),
            bearer(&t),
            folders.clone(),
            401,
            unauth,
            "",
        ));
    }

    // alg: none, with and without a signature segment.
    for sig in ["", "c2ln"] {
        let t = format!(
            "{}.{}.{sig}",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
            b64(&good)
        );
        cases.push(Case(
            format!("alg none (sig {sig:?})"),
            bearer(&t),
            folders.clone(),
            401,
            unauth,
            "alg 'none' is not accepted",
        ));
    }
    // Algorithm confusion: HS256 keyed with the server's public key.
    for (enc, secret) in public_key_encodings() {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.clone());
        let t = jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(&secret)).unwrap();
        cases.push(Case(
            format!("HS256 with the public key ({enc})"),
            bearer(&t),
            folders.clone(),
            401,
            unauth,
            "RS256",
        ));
    }
    // Other asymmetric algorithms are refused too.
    {
        let mut h = Header::new(Algorithm::PS256);
        h.kid = Some(kid.clone());
        let t = jsonwebtoken::encode(
            &h,
            &good,
            &EncodingKey::from_rsa_pem(pem().as_bytes()).unwrap(),
        )
        .unwrap();
        cases.push(Case(
            "PS256 with the right key".into(),
            bearer(&t),
            folders.clone(),
            401,
            unauth,
            "RS256",
        ));
    }
    // Unknown kid: the right key, but a kid the server never had.
    {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("not-a-graphbox-key".into());
        let t = jsonwebtoken::encode(
            &h,
            &good,
            &EncodingKey::from_rsa_pem(pem().as_bytes()).unwrap(),
        )
        .unwrap();
        cases.push(Case(
            "unknown kid".into(),
            bearer(&t),
            folders.clone(),
            401,
            unauth,
            "unknown key",
        ));
        let mut h = Header::new(Algorithm::RS256);
        h.kid = None;
        let t = jsonwebtoken::encode(
            &h,
            &good,
            &EncodingKey::from_rsa_pem(pem().as_bytes()).unwrap(),
        )
        .unwrap();
        cases.push(Case(
            "no kid".into(),
            bearer(&t),
            folders.clone(),
            401,
            unauth,
            "unknown key",
        ));
    }
    // Bad signature: another key under the server's kid; a flipped signature.
    {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(kid.clone());
        let t = jsonwebtoken::encode(
            &h,
            &good,
            &EncodingKey::from_rsa_pem(other_key.as_bytes()).unwrap(),
        )
        .unwrap();
        cases.push(Case(
            "signed by another key under our kid".into(),
            bearer(&t),
            folders.clone(),
            401,
            unauth,
            "signature",
        ));
        let valid = sign_local(&env, &good);
        let (rest, sig) = valid.rsplit_once('.').unwrap();
        let flipped = format!(
            "{rest}.{}{}",
            if sig.starts_with('A') { "B" } else { "A" },
            &sig[1..]
        );
        cases.push(Case(
            "tampered signature".into(),
            bearer(&flipped),
            folders.clone(),
            401,
            unauth,
            "signature",
        ));
        let mut escalated = good.clone();
        escalated["roles"] = json!(["MailboxItem.ImportExport.All", "MailboxFolder.Read.All"]);
        let parts: Vec<&str> = valid.split('.').collect();
        let t = format!("{}.{}.{}", parts[0], b64(&escalated), parts[2]);
        cases.push(Case(
            "payload changed after signing".into(),
            bearer(&t),
            folders.clone(),
            401,
            unauth,
            "signature",
        ));
    }
    // Wrong audience, wrong issuer.
    for aud in [
        json!("https://outlook.office.com"),
        json!("api://graphbox"),
        json!(["https://management.azure.com"]),
    ] {
        let mut c = good.clone();
        c["aud"] = aud.clone();
        cases.push(Case(
            format!("audience {aud}"),
            bearer(&sign_local(&env, &c)),
            folders.clone(),
            401,
            unauth,
            "audience",
        ));
    }
    for iss in [
        format!("https://evil.example/{}/v2.0", env.tenant.id),
        format!("{ISSUER}/{}/v2.0", env.foreign_tenant.id),
        format!("{ISSUER}/{}", env.tenant.id),
        format!("https://login.microsoftonline.com/{}/v2.0", env.tenant.id),
    ] {
        let mut c = good.clone();
        c["iss"] = json!(iss);
        cases.push(Case(
            format!("issuer {iss}"),
            bearer(&sign_local(&env, &c)),
            folders.clone(),
            401,
            unauth,
            "issuer",
        ));
    }
    // Lifetime: beyond the skew refused.
    {
        let mut c = good.clone();
        c["exp"] = json!(now() - skew - 30);
        c["iat"] = json!(now() - 3600);
        c["nbf"] = json!(now() - 3600);
        cases.push(Case(
            "expired beyond the skew".into(),
            bearer(&sign_local(&env, &c)),
            folders.clone(),
            401,
            unauth,
            "expired",
        ));
        let mut c = good.clone();
        c["nbf"] = json!(now() + skew + 60);
        cases.push(Case(
            "nbf in the future beyond the skew".into(),
            bearer(&sign_local(&env, &c)),
            folders.clone(),
            401,
            unauth,
            "not yet valid",
        ));
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove("exp");
        cases.push(Case(
            "no exp".into(),
            bearer(&sign_local(&env, &c)),
            folders.clone(),
            401,
            unauth,
            "exp",
        ));
    }
    // Reach: another tenant's token; a delegated token for another user.
    cases.push(Case(
        "app token of another tenant".into(),
        bearer(&env.app_token_for(env.foreign_tenant.id, &read)),
        folders.clone(),
        403,
        denied,
        "another tenant",
    ));
    cases.push(Case(
        "delegated token of another tenant's user".into(),
        bearer(&env.user_token(&env.foreign_user, &["MailboxFolder.Read"])),
        folders.clone(),
        403,
        denied,
        "another tenant",
    ));
    cases.push(Case(
        "delegated token for a colleague's mailbox".into(),
        bearer(&env.user_token(&env.user, &["MailboxFolder.Read"])),
        env.mp(&env.colleague_mbx, "/folders"),
        403,
        denied,
        "own mailboxes",
    ));
    // No permission: roles absent, empty, or only delegated names.
    {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove("roles");
        cases.push(Case(
            "app token without roles".into(),
            bearer(&sign_local(&env, &c)),
            folders.clone(),
            403,
            denied,
            "MailboxFolder.Read.All",
        ));
        cases.push(Case(
            "app token with empty roles".into(),
            bearer(&env.app_token(&[])),
            folders.clone(),
            403,
            denied,
            "MailboxFolder.Read.All",
        ));
        cases.push(Case(
            "app token with a delegated name".into(),
            bearer(&env.app_token(&["MailboxFolder.Read"])),
            folders.clone(),
            403,
            denied,
            "MailboxFolder.Read.All",
        ));
        cases.push(Case(
            "delegated token with an application name".into(),
            bearer(&env.user_token(&env.user, &["MailboxFolder.Read.All"])),
            folders.clone(),
            403,
            denied,
            "MailboxFolder.Read",
        ));
        let mut c = good.clone();
        c["scp"] = json!("MailboxFolder.Read");
        c.as_object_mut().unwrap().remove("oid");
        cases.push(Case(
            "delegated token without oid".into(),
            bearer(&sign_local(&env, &c)),
            folders.clone(),
            401,
            unauth,
            "oid",
        ));
    }

    assert!(cases.len() >= 30, "{} cases", cases.len());
    for Case(case, auth, path, status, code, fragment) in &cases {
        let r = send(&env, "GET", path, auth.as_deref(), None).await;
        assert_envelope(case, &r, *status, code, fragment);
    }

    // Within the skew: accepted.
    let mut c = good.clone();
    c["exp"] = json!(now() - skew / 2);
    c["iat"] = json!(now() - 3600);
    c["nbf"] = json!(now() - 3600);
    env.get(&folders, &sign_local(&env, &c)).await.ok();
    let mut c = good.clone();
    c["nbf"] = json!(now() + skew / 2);
    c["iat"] = json!(now() + skew / 2);
    env.get(&folders, &sign_local(&env, &c)).await.ok();
    // And the untouched token, for contrast.
    env.get(&folders, &sign_local(&env, &good)).await.ok();
}

#[tokio::test]
async fn a_configured_clock_skew_moves_the_lifetime_bounds() {
    let mut env = env().await;
    let settings = AuthSettings {
        clock_skew: time::Duration::seconds(300),
        ..AuthSettings::default()
    };
    env.state.authority = Arc::new(
        Authority::open(env.meta.clone(), ISSUER, settings)
            .await
            .unwrap(),
    );
    env.app = api::router(env.state.clone());
    let folders = env.mp(&env.mbx, "/folders");
    let mut c = app_claims(&env, &["MailboxFolder.Read.All"]);
    c["exp"] = json!(now() - 200);
    env.get(&folders, &sign_local(&env, &c)).await.ok();
    c["exp"] = json!(now() - 400);
    let r = env.get(&folders, &sign_local(&env, &c)).await;
    assert_envelope(
        "expired beyond 300 s",
        &r,
        401,
        "InvalidAuthenticationToken",
        "expired",
    );
    let mut c = app_claims(&env, &["MailboxFolder.Read.All"]);
    c["nbf"] = json!(now() + 200);
    env.get(&folders, &sign_local(&env, &c)).await.ok();
    c["nbf"] = json!(now() + 400);
    let r = env.get(&folders, &sign_local(&env, &c)).await;
    assert_envelope(
        "nbf beyond 300 s",
        &r,
        401,
        "InvalidAuthenticationToken",
        "not yet valid",
    );
}

// ---- external issuers --------------------------------------------------------

/// A JWKS endpoint on 127.0.0.1 whose document the test can change, counting
/// the fetches.
struct JwksServer {
    url: String,
    doc: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn jwks_server(doc: Value) -> JwksServer {
    let doc = Arc::new(Mutex::new(doc));
    let hits = Arc::new(AtomicUsize::new(0));
    let (d, h) = (doc.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/common/discovery/v2.0/keys",
        axum::routing::get(move || {
            let (d, h) = (d.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                axum::Json(d.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    JwksServer {
        url: format!("http://{addr}/common/discovery/v2.0/keys"),
        doc,
        hits,
        task,
    }
}

/// An "Entra" signing key: its PEM, its kid, its JWK.
struct EntraKey {
    pem: String,
    kid: String,
}

impl EntraKey {
    fn new(kid: &str) -> EntraKey {
        EntraKey {
            pem: api::auth::generate_signing_key_pem().unwrap(),
            kid: kid.into(),
        }
    }
    fn jwk(&self) -> Value {
        use rsa::traits::PublicKeyParts;
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(&self.pem).unwrap();
        json!({
            "kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid,
            "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
            "issuer": "https://login.microsoftonline.test/{tenantid}/v2.0",
        })
    }
    fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(self.kid.clone());
        h.typ = Some("JWT".into());
        jsonwebtoken::encode(
            &h,
            claims,
            &EncodingKey::from_rsa_pem(self.pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }
}

const ENTRA: &str = "https://login.microsoftonline.test/{tenantid}/v2.0";
const EXT_TID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
const EXT_AUD: &str = "api://graphbox-test";

fn entra_claims(tid: &str, extra: Value) -> Value {
    let t = now();
    let mut c = json!({
        "aud": EXT_AUD,
        "iss": ENTRA.replace("{tenantid}", tid),
        "iat": t - 10, "nbf": t - 10, "exp": t + 3600,
        "tid": tid, "ver": "2.0", "rh": "0.AAAA", "uti": "abc",
        "sub": "Ww2jD8wOtLRuhJE4Z3M2sDYc9y5L0y2JStVdEJpVxs0",
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn external_settings(
    env: &Env,
    jwks_url: &str,
    role_map: Option<HashMap<String, String>>,
) -> AuthSettings {
    let mut e = ExternalIssuer::new(
        ENTRA,
        jwks_url,
        vec![EXT_AUD.into(), "https://graph.microsoft.com".into()],
        HashMap::from([(EXT_TID.to_uppercase(), env.tenant.id)]),
    );
    e.role_map = role_map;
    AuthSettings {
        external: vec![e],
        unknown_kid_reload: std::time::Duration::from_secs(3600),
        ..AuthSettings::default()
    }
}

async fn with_settings(mut env: Env, settings: AuthSettings) -> Env {
    env.state.authority = Arc::new(
        Authority::open(env.meta.clone(), ISSUER, settings)
            .await
            .unwrap(),
    );
    env.app = api::router(env.state.clone());
    env
}

#[tokio::test]
async fn external_issuer_tokens_are_accepted_mapped_and_refused() {
    let k1 = EntraKey::new("entra-key-1");
    let server = jwks_server(json!({"keys": [k1.jwk()]})).await;
    let env = env().await;
    let settings = external_settings(&env, &server.url, None);
    let env = with_settings(env, settings).await;
    let folders = env.mp(&env.mbx, "/folders");
    let client = Uuid::new_v4().to_string();
    let unauth = "InvalidAuthenticationToken";

    // No fetch before the first external token.
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);

    // An application token of the mapped tenant: its roles count, and it
    // reaches this tenant's mailboxes only.
    let app = k1.sign(&entra_claims(
        EXT_TID,
        json!({"azp": client, "appid": client, "idtyp": "app", "oid": Uuid::new_v4(), "roles": ["MailboxFolder.Read.All"]}),
    ));
    env.get(&folders, &app).await.ok();
    env.get(&env.mp(&env.colleague_mbx, "/folders"), &app)
        .await
        .ok();
    let r = env.get(&env.mp(&env.foreign_mbx, "/folders"), &app).await;
    assert_envelope(
        "external app token, foreign mailbox",
        &r,
        403,
        "ErrorAccessDenied",
        "another tenant",
    );
    let r = env
        .get(&env.mp(&env.mbx, "/folders/inbox/items"), &app)
        .await;
    assert_envelope(
        "external app token lacking MailboxItem.Read.All",
        &r,
        403,
        "ErrorAccessDenied",
        "MailboxItem.Read.All",
    );
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        1,
        "the JWKS is fetched once and cached"
    );

    // A delegated token finds its graphbox user by UPN (case-insensitive),
    // and reaches only that user's mailboxes.
    let delegated = |upn: &str, scp: &str| {
        k1.sign(&entra_claims(
            EXT_TID,
            json!({"azp": client, "oid": Uuid::new_v4(), "scp": scp, "upn": upn, "name": "Megan", "idtyp": "user"}),
        ))
    };
    let megan = delegated("Megan@Contoso.com", "MailboxFolder.Read User.Read");
    env.get(&folders, &megan).await.ok();
    let r = env
        .get(&env.mp(&env.colleague_mbx, "/folders"), &megan)
        .await;
    assert_envelope(
        "external delegated token, colleague's mailbox",
        &r,
        403,
        "ErrorAccessDenied",
        "own mailboxes",
    );
    let me = env
        .get(
            "/v1.0/me/settings/exchange",
            &delegated("megan@contoso.com", "User.Read.All"),
        )
        .await
        .ok();
    assert_eq!(me.json()["primaryMailboxId"], env.mbx.id.to_string());
    // preferred_username when there is no upn.
    let pu = k1.sign(&entra_claims(
        EXT_TID,
        json!({"azp": client, "oid": Uuid::new_v4(), "scp": "MailboxFolder.Read", "preferred_username": "alex@contoso.com"}),
    ));
    env.get(&env.mp(&env.colleague_mbx, "/folders"), &pu)
        .await
        .ok();

    // Refusals, each a 401 with the envelope.
    let k2 = EntraKey::new("entra-key-2");
    let unknown_kid = k2.sign(&entra_claims(
        EXT_TID,
        json!({"azp": client, "roles": ["MailboxFolder.Read.All"]}),
    ));
    let mut wrong_aud = entra_claims(
        EXT_TID,
        json!({"azp": client, "roles": ["MailboxFolder.Read.All"]}),
    );
    wrong_aud["aud"] = json!("api://someone-else");
    let other_tid = "0b5b8a0c-0000-4000-8000-000000000001";
    let unmapped = k1.sign(&entra_claims(
        other_tid,
        json!({"azp": client, "roles": ["MailboxFolder.Read.All"]}),
    ));
    let mut iss_mismatch = entra_claims(
        EXT_TID,
        json!({"azp": client, "roles": ["MailboxFolder.Read.All"]}),
    );
    iss_mismatch["iss"] = json!(ENTRA.replace("{tenantid}", other_tid));
    let mut expired = entra_claims(
        EXT_TID,
        json!({"azp": client, "roles": ["MailboxFolder.Read.All"]}),
    );
    expired["exp"] = json!(now() - 3600);
    let mut no_tid = entra_claims(
        EXT_TID,
        json!({"azp": client, "roles": ["MailboxFolder.Read.All"]}),
    );
    no_tid.as_object_mut().unwrap().remove("tid");
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(k1.kid.clone());
    let n_bytes = k1.jwk()["n"].as_str().unwrap().as_bytes().to_vec();
    let confused = jsonwebtoken::encode(
        &hs,
        &entra_claims(
            EXT_TID,
            json!({"azp": client, "roles": ["MailboxFolder.Read.All"]}),
        ),
        &EncodingKey::from_secret(&n_bytes),
    )
    .unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("external: unknown kid", unknown_kid, "unknown key"),
        ("external: wrong audience", k1.sign(&wrong_aud), "audience"),
        ("external: unmapped tenant", unmapped, "not mapped"),
        (
            "external: iss of another tenant than tid",
            k1.sign(&iss_mismatch),
            "issuer",
        ),
        ("external: expired", k1.sign(&expired), "expired"),
        ("external: no tid", k1.sign(&no_tid), "issuer"),
        (
            "external: HS256 keyed with the JWK modulus",
            confused,
            "RS256",
        ),
        (
            "external: delegated, no such graphbox user",
            delegated("nobody@contoso.com", "MailboxFolder.Read"),
            "nobody@contoso.com",
        ),
        (
            "external: delegated, no upn",
            k1.sign(&entra_claims(
                EXT_TID,
                json!({"azp": client, "oid": Uuid::new_v4(), "scp": "MailboxFolder.Read"}),
            )),
            "upn",
        ),
        (
            "external: delegated, user of another tenant",
            delegated("pat@fabrikam.com", "MailboxFolder.Read"),
            "pat@fabrikam.com",
        ),
    ];
    for (case, token, fragment) in &cases {
        let r = env.get(&folders, token).await;
        assert_envelope(case, &r, 401, unauth, fragment);
    }
    // Every fetch counts toward the rate limit (one hour here): neither the
    // unknown kids nor anything else refetched.
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        1,
        "refetches are rate-limited"
    );
}

#[tokio::test]
async fn external_keys_are_refetched_for_a_new_kid_and_fetch_failures_are_401() {
    let k1 = EntraKey::new("k1");
    let k2 = EntraKey::new("k2");
    let server = jwks_server(json!({"keys": [k1.jwk()]})).await;
    let env = env().await;
    let mut settings = external_settings(&env, &server.url, None);
    settings.unknown_kid_reload = std::time::Duration::ZERO;
    let env = with_settings(env, settings).await;
    let folders = env.mp(&env.mbx, "/folders");
    let claims = entra_claims(
        EXT_TID,
        json!({"azp": "c", "roles": ["MailboxFolder.Read.All"]}),
    );
    env.get(&folders, &k1.sign(&claims)).await.ok();
    // Entra rolls its keys: the new kid is found by refetching.
    *server.doc.lock().unwrap() = json!({"keys": [k2.jwk(), k1.jwk()]});
    env.get(&folders, &k2.sign(&claims)).await.ok();
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    // k1 withdrawn: tokens it signed are refused once the JWKS says so,
    // even those verified before.
    *server.doc.lock().unwrap() = json!({"keys": [k2.jwk()]});
    let k3 = EntraKey::new("k3");
    let r = env.get(&folders, &k3.sign(&claims)).await;
    assert_envelope(
        "unknown kid k3",
        &r,
        401,
        "InvalidAuthenticationToken",
        "unknown key",
    );
    let r = env.get(&folders, &k1.sign(&claims)).await;
    assert_envelope(
        "withdrawn kid k1",
        &r,
        401,
        "InvalidAuthenticationToken",
        "unknown key",
    );

    // A JWKS that cannot be fetched: a clear 401, no panic.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}/keys")
    };
    let env2 = env_with_external(&dead).await;
    let r = env2
        .get(&env2.mp(&env2.mbx, "/folders"), &k1.sign(&claims))
        .await;
    assert_envelope(
        "JWKS unreachable",
        &r,
        401,
        "InvalidAuthenticationToken",
        "could not be fetched",
    );
    assert!(r.message().contains(&dead), "{}", r.message());
    // A JWKS URL that answers something else than a JWKS.
    let bad = jwks_server(json!({"hello": "world"})).await;
    let env3 = env_with_external(&bad.url).await;
    let r = env3
        .get(&env3.mp(&env3.mbx, "/folders"), &k1.sign(&claims))
        .await;
    assert_envelope(
        "JWKS not a JWKS",
        &r,
        401,
        "InvalidAuthenticationToken",
        "not a usable JWKS",
    );
}

async fn env_with_external(url: &str) -> Env {
    let env = env().await;
    let settings = external_settings(&env, url, None);
    with_settings(env, settings).await
}

#[tokio::test]
async fn external_role_and_scope_maps_and_oid_matching() {
    let k = EntraKey::new("k");
    let server = jwks_server(json!({"keys": [k.jwk()]})).await;
    let env = env().await;
    let mut settings = external_settings(
        &env,
        &server.url,
        Some(HashMap::from([
            (
                "Mailbox.Backup".to_owned(),
                "MailboxFolder.Read.All".to_owned(),
            ),
            (
                "Mailbox.Items".to_owned(),
                "MailboxItem.Read.All".to_owned(),
            ),
        ])),
    );
    settings.external[0].scope_map = Some(HashMap::from([(
        "backup".to_owned(),
        "MailboxFolder.Read".to_owned(),
    )]));
    settings.external[0].user_match = UserMatch::Oid;
    let env = with_settings(env, settings).await;
    let folders = env.mp(&env.mbx, "/folders");
    let app = |roles: Value| k.sign(&entra_claims(EXT_TID, json!({"azp": "c", "roles": roles})));
    env.get(&folders, &app(json!(["mailbox.backup"])))
        .await
        .ok();
    // Unmapped names do not count, even when they are graphbox's own names.
    let r = env
        .get(&folders, &app(json!(["MailboxFolder.Read.All"])))
        .await;
    assert_envelope(
        "unmapped role",
        &r,
        403,
        "ErrorAccessDenied",
        "MailboxFolder.Read.All",
    );
    // oid matching: the graphbox user whose id is the token's oid.
    let user = |oid: Uuid, scp: &str| {
        k.sign(&entra_claims(
            EXT_TID,
            json!({"azp": "c", "oid": oid, "scp": scp, "upn": "someone@else"}),
        ))
    };
    env.get(&folders, &user(env.user.id, "backup")).await.ok();
    let r = env
        .get(&folders, &user(env.user.id, "MailboxFolder.Read"))
        .await;
    assert_envelope(
        "unmapped scope",
        &r,
        403,
        "ErrorAccessDenied",
        "MailboxFolder.Read",
    );
    let r = env.get(&folders, &user(Uuid::new_v4(), "backup")).await;
    assert_envelope(
        "unknown oid",
        &r,
        401,
        "InvalidAuthenticationToken",
        "object id",
    );
    let r = env
        .get(&folders, &user(env.foreign_user.id, "backup"))
        .await;
    assert_envelope(
        "oid of another tenant's user",
        &r,
        401,
        "InvalidAuthenticationToken",
        "object id",
    );
}

// ---- the permission matrix -------------------------------------------------

/// graph-api.md §2, transcribed: operation → (delegated, application), least
/// privileged first. `ReadMailbox` is graphbox's documented choice for the
/// undocumented `GET /admin/exchange/mailboxes/{id}` (docs/API.md).
type Row = (Operation, &'static [&'static str], &'static [&'static str]);

fn reference_matrix() -> Vec<Row> {
    vec![
        (
            Operation::ReadExchangeSettings,
            &["User.Read.All", "User.ReadWrite.All"],
            &["User.Read.All", "User.ReadWrite.All"],
        ),
        (
            Operation::ReadMailbox,
            &[
                "MailboxFolder.Read",
                "MailboxFolder.ReadWrite",
                "MailboxItem.Read",
                "MailboxItem.ReadWrite",
                "MailboxItem.Export",
                "MailboxItem.ImportExport",
            ],
            &[
                "MailboxFolder.Read.All",
                "MailboxFolder.ReadWrite.All",
                "MailboxItem.Read.All",
                "MailboxItem.ReadWrite.All",
                "MailboxItem.Export.All",
                "MailboxItem.ImportExport.All",
            ],
        ),
        (
            Operation::ReadFolders,
            &["MailboxFolder.Read", "MailboxFolder.ReadWrite"],
            &["MailboxFolder.Read.All", "MailboxFolder.ReadWrite.All"],
        ),
        (
            Operation::WriteFolders,
            &["MailboxFolder.ReadWrite"],
            &["MailboxFolder.ReadWrite.All"],
        ),
        (
            Operation::ReadItems,
            &["MailboxItem.Read"],
            &["MailboxItem.Read.All"],
        ),
        (
            Operation::DeleteItems,
            &["MailboxItem.ReadWrite"],
            &["MailboxItem.ReadWrite.All"],
        ),
        (
            Operation::ExportItems,
            &["MailboxItem.Export", "MailboxItem.ImportExport"],
            &["MailboxItem.Export.All", "MailboxItem.ImportExport.All"],
        ),
        (
            Operation::CreateImportSession,
            &["MailboxItem.ImportExport"],
            &["MailboxItem.ImportExport.All"],
        ),
    ]
}

/// Every permission name a token might carry in these tests: all of §2 in
/// both forms, plus unrelated Graph permissions.
const UNIVERSE: &[&str] = &[
    "User.Read",
    "User.Read.All",
    "User.ReadWrite.All",
    "Mail.Read",
    "Mail.ReadWrite",
    "Mail.Read.All",
    "MailboxFolder.Read",
    "MailboxFolder.ReadWrite",
    "MailboxFolder.Read.All",
    "MailboxFolder.ReadWrite.All",
    "MailboxItem.Read",
    "MailboxItem.ReadWrite",
    "MailboxItem.Read.All",
    "MailboxItem.ReadWrite.All",
    "MailboxItem.Export",
    "MailboxItem.Export.All",
    "MailboxItem.ImportExport",
    "MailboxItem.ImportExport.All",
    "MailboxSettings.Read",
    "Directory.Read.All",
];

#[tokio::test]
async fn permission_matrix_of_reference_section_2() {
    let env = env().await;
    let matrix = reference_matrix();
    // The table in the code is exactly the reference.
    assert_eq!(matrix.len(), Operation::ALL.len());
    for (op, delegated, application) in &matrix {
        let row = op.permissions();
        assert_eq!(row.delegated, *delegated, "{op:?} delegated");
        assert_eq!(row.application, *application, "{op:?} application");
    }

    let mut n = 0;
    for (op, delegated, application) in &matrix {
        for (kind, accepted) in [("delegated", *delegated), ("application", *application)] {
            for perm in UNIVERSE {
                let token = if kind == "delegated" {
                    env.user_token(&env.user, &[perm])
                } else {
                    env.app_token(&[perm])
                };
                n += 1;
                let (method, path, body, ok) = request_for(&env, *op, n);
                let r = send(
                    &env,
                    method,
                    &path,
                    Some(&format!("Bearer {token}")),
                    body.as_ref(),
                )
                .await;
                let case = format!("{op:?} with {kind} {perm}");
                if accepted.contains(perm) {
                    assert_eq!(r.status.as_u16(), ok, "{case}: {}", r.text);
                } else {
                    let code = if *op == Operation::ReadExchangeSettings {
                        "Authorization_RequestDenied"
                    } else {
                        "ErrorAccessDenied"
                    };
                    assert_envelope(&case, &r, 403, code, accepted[0]);
                }
            }
            // Case-insensitive names (Entra's are case-preserving, graphbox
            // compares ignoring case), and several permissions at once.
            let lower = accepted[0].to_lowercase();
            let token = if kind == "delegated" {
                env.user_token(&env.user, &["User.Read", &lower])
            } else {
                env.app_token(&["Directory.Read.All", &lower])
            };
            n += 1;
            let (method, path, body, ok) = request_for(&env, *op, n);
            let r = send(
                &env,
                method,
                &path,
                Some(&format!("Bearer {token}")),
                body.as_ref(),
            )
            .await;
            assert_eq!(r.status.as_u16(), ok, "{op:?} {kind} {lower}: {}", r.text);
        }
    }
    assert!(n > 300, "{n} requests");
}

/// A request performing `op` on the signed-in user's own primary mailbox,
/// and the status it gets when permitted.
fn request_for(env: &Env, op: Operation, n: usize) -> (&'static str, String, Option<Value>, u16) {
    match op {
        Operation::ReadExchangeSettings => (
            "GET",
            format!("/v1.0/users/{}/settings/exchange", env.user.id),
            None,
            200,
        ),
        Operation::ReadMailbox => ("GET", env.mp(&env.mbx, ""), None, 200),
        Operation::ReadFolders => ("GET", env.mp(&env.mbx, "/folders"), None, 200),
        Operation::WriteFolders => (
            "POST",
            env.mp(&env.mbx, "/folders"),
            Some(json!({"displayName": format!("Matrix {n}")})),
            201,
        ),
        Operation::ReadItems => ("GET", env.mp(&env.mbx, "/folders/inbox/items"), None, 200),
        // Permitted, the unknown item is then not found.
        Operation::DeleteItems => (
            "DELETE",
            env.mp(
                &env.mbx,
                "/folders/inbox/items/AAMkAGI2THVSAAA=?disposalType=hardDelete",
            ),
            None,
            404,
        ),
        Operation::ExportItems => (
            "POST",
            env.mp(&env.mbx, "/exportItems"),
            Some(json!({"itemIds": ["AAMkAGI2THVSAAA="]})),
            200,
        ),
        Operation::CreateImportSession => {
            ("POST", env.mp(&env.mbx, "/createImportSession"), None, 200)
        }
    }
}

#[tokio::test]
async fn key_states_are_reported() {
    // The env's authority was loaded from a store seeded with one key.
    let env = env().await;
    let keys = env.authority().keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].state, KeyState::Current);
    assert_eq!(keys[0].kid, env.authority().kid());
}

#[tokio::test]
async fn external_jwks_is_refreshed_when_stale_and_kept_when_a_refresh_fails() {
    let k = EntraKey::new("k");
    let server = jwks_server(json!({"keys": [k.jwk()]})).await;
    let env = env().await;
    let mut settings = external_settings(&env, &server.url, None);
    settings.unknown_kid_reload = std::time::Duration::ZERO;
    settings.external[0].refresh = std::time::Duration::from_millis(600);
    let env = with_settings(env, settings).await;
    let folders = env.mp(&env.mbx, "/folders");
    // Distinct tokens (`uti`), so none is answered from the verified-token cache.
    let token = |n: u32| {
        k.sign(&entra_claims(
            EXT_TID,
            json!({"azp": "c", "roles": ["MailboxFolder.Read.All"], "uti": format!("t{n}")}),
        ))
    };
    env.get(&folders, &token(1)).await.ok();
    env.get(&folders, &token(2)).await.ok();
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        1,
        "fresh keys are reused"
    );
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    env.get(&folders, &token(3)).await.ok();
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        2,
        "stale keys are refetched"
    );
    // The issuer's endpoint breaks: the keys at hand keep working.
    *server.doc.lock().unwrap() = json!({"error": "down for maintenance"});
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    env.get(&folders, &token(4)).await.ok();
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
}
