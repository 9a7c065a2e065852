//! The user-facing flows against an in-memory directory: authorization code
//! with PKCE through the sign-in and consent pages, refresh token rotation
//! and revocation, device code, admin consent, and every refusal on the way.

use std::collections::HashMap;
use std::sync::Arc;

use api::Authority;
use api::auth::Operation;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt;
use identity::admin::hash_password;
use identity::{IdentityState, router};
use sha2::{Digest, Sha256};
use store::directory::{App, PermissionKind};
use store::{DirectoryStore, MetaStore, SqliteMetaStore};
use tower::ServiceExt;
use uuid::Uuid;

const BASE: &str = "https://127.0.0.1:8443";
const REDIRECT: &str = "http://localhost:8400/cb";
const PASSWORD: &str = "correct horse battery";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

struct World {
    router: axum::Router,
    authority: Arc<Authority>,
    state: IdentityState,
    tenant: store::Tenant,
    megan: store::User,
    admin: store::User,
    /// Public client requesting MailboxFolder.Read and MailboxItem.ImportExport.
    public: App,
    /// Confidential client with a secret.
    web: App,
    secret: String,
}

async fn world_with(tweak: impl FnOnce(&mut IdentityState)) -> World {
    let s = Arc::new(SqliteMetaStore::open_in_memory().await.unwrap());
    let tenant = s.create_tenant("contoso.test", "Contoso").await.unwrap();
    let pem = api::auth::generate_signing_key_pem().unwrap();
    let authority = Arc::new(Authority::from_pem(&pem, BASE).unwrap());
    let mut state = IdentityState::new(s.clone(), s.clone(), authority.clone(), BASE);
    tweak(&mut state);
    let hash = hash_password(PASSWORD).unwrap();
    let megan = s
        .create_user(tenant.id, "megan@contoso.test", "Megan Bowen")
        .await
        .unwrap();
    s.set_password_hash(megan.id, &hash).await.unwrap();
    let admin = s
        .create_user(tenant.id, "admin@contoso.test", "Ada Admin")
        .await
        .unwrap();
    s.set_password_hash(admin.id, &hash).await.unwrap();
    s.set_admin(admin.id, true).await.unwrap();
    let dir = &state.directory;
    let public = dir
        .create_app(tenant.id, "Mail Tool", vec![REDIRECT.into()], true)
        .await
        .unwrap();
    for p in ["MailboxFolder.Read", "MailboxItem.ImportExport"] {
        dir.add_permission(public.client_id, PermissionKind::Delegated, p)
            .await
            .unwrap();
    }
    let web = dir
        .create_app(tenant.id, "Web App", vec![REDIRECT.into()], false)
        .await
        .unwrap();
    dir.add_permission(
        web.client_id,
        PermissionKind::Delegated,
        "MailboxFolder.Read",
    )
    .await
    .unwrap();
    let secret = dir
        .add_secret(web.client_id, time::Duration::days(1))
        .await
        .unwrap()
        .value;
    World {
        router: router(state.clone()),
        authority,
        state,
        tenant,
        megan,
        admin,
        public,
        web,
        secret,
    }
}

async fn world() -> World {
    world_with(|_| {}).await
}

/// A minimal browser: keeps the cookie the server sets.
#[derive(Default)]
struct Browser {
    cookie: Option<String>,
}

#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// The value of a hidden input.
    fn field(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&needle)? + needle.len();
        let end = self.body[start..].find('"')? + start;
        Some(self.body[start..end].replace("&amp;", "&"))
    }

    /// The parameters of a redirect to the app.
    fn redirect(&self) -> HashMap<String, String> {
        assert_eq!(self.status, StatusCode::FOUND, "{}", self.body);
        let loc = self.headers[header::LOCATION].to_str().unwrap();
        let (uri, query) = loc.split_once('?').expect("query");
        assert_eq!(uri, REDIRECT);
        serde_urlencoded::from_str(query).unwrap()
    }
}

impl World {
    async fn send(&self, b: &mut Browser, req: axum::http::request::Builder, body: String) -> Resp {
        let req = match &b.cookie {
            Some(c) => req.header(header::COOKIE, c.as_str()),
            None => req,
        };
        let res = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        if let Some(c) = headers.get(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            b.cookie = Some(c.split(';').next().unwrap().to_owned());
        }
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, b: &mut Browser, path: &str, query: &[(&str, &str)]) -> Resp {
        let uri = format!("{path}?{}", serde_urlencoded::to_string(query).unwrap());
        self.send(b, Request::get(uri), String::new()).await
    }

    async fn post(&self, b: &mut Browser, path: &str, form: &[(&str, &str)]) -> Resp {
        let req =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        self.send(b, req, serde_urlencoded::to_string(form).unwrap())
            .await
    }

    async fn token(&self, form: &[(&str, &str)]) -> Resp {
        self.post(
            &mut Browser::default(),
            "/contoso.test/oauth2/v2.0/token",
            form,
        )
        .await
    }

    fn login_path(&self) -> String {
        format!("/{}/login", self.tenant.id)
    }

    /// Posts the sign-in form of `page`.
    async fn sign_in(&self, b: &mut Browser, page: &Resp, login: &str, password: &str) -> Resp {
        let flow = page.field("flow").expect("sign-in page");
        let csrf = page.field("csrf").unwrap();
        self.post(
            b,
            &self.login_path(),
            &[
                ("flow", &flow),
                ("csrf", &csrf),
                ("login", login),
                ("passwd", password),
            ],
        )
        .await
    }

    /// Presses a button (`accept`, `cancel`, `back`) of `page`.
    async fn press(&self, b: &mut Browser, page: &Resp, action: &str) -> Resp {
        let flow = page.field("flow").expect("a flow page");
        let csrf = page.field("csrf").unwrap();
        self.post(
            b,
            &self.login_path(),
            &[("flow", &flow), ("csrf", &csrf), ("action", action)],
        )
        .await
    }

    async fn authorize(&self, b: &mut Browser, client: Uuid, extra: &[(&str, &str)]) -> Resp {
        let cid = client.to_string();
        let mut q = vec![
            ("client_id", cid.as_str()),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("state", "st-1"),
            ("nonce", "n-1"),
        ];
        let has = |k: &str| extra.iter().any(|(n, _)| *n == k);
        if !has("scope") {
            q.push(("scope", "openid profile offline_access MailboxFolder.Read"));
        }
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
        if !has("code_challenge") && !has("no_pkce") {
            q.push(("code_challenge", challenge.as_str()));
            q.push(("code_challenge_method", "S256"));
        }
        q.extend(extra.iter().filter(|(k, _)| *k != "no_pkce"));
        self.get(b, "/contoso.test/oauth2/v2.0/authorize", &q).await
    }

    /// Authorize → sign in (as `login`) → accept consent if asked → code.
    async fn code_for(&self, client: Uuid, login: &str, extra: &[(&str, &str)]) -> String {
        let mut b = Browser::default();
        let page = self.authorize(&mut b, client, extra).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let mut r = self.sign_in(&mut b, &page, login, PASSWORD).await;
        if r.status == StatusCode::OK {
            assert!(r.body.contains("Permissions requested"), "{}", r.body);
            r = self.press(&mut b, &r, "accept").await;
        }
        let p = r.redirect();
        assert_eq!(p.get("state").map(String::as_str), Some("st-1"), "{p:?}");
        p["code"].clone()
    }

    async fn redeem(&self, client: Uuid, code: &str, verifier: Option<&str>) -> Resp {
        let cid = client.to_string();
        let mut f = vec![
            ("grant_type", "authorization_code"),
            ("client_id", cid.as_str()),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_info", "1"),
        ];
        if let Some(v) = verifier {
            f.push(("code_verifier", v));
        }
        self.token(&f).await
    }

    async fn refresh(&self, client: Uuid, rt: &str, scope: Option<&str>) -> Resp {
        let cid = client.to_string();
        let mut f = vec![
            ("grant_type", "refresh_token"),
            ("client_id", cid.as_str()),
            ("refresh_token", rt),
        ];
        if let Some(s) = scope {
            f.push(("scope", s));
        }
        self.token(&f).await
    }

    fn scp(&self, access_token: &str) -> Vec<String> {
        match self.authority.validate(access_token).unwrap().kind {
            api::auth::PrincipalKind::Delegated { scopes, user_id } => {
                assert!(user_id == self.megan.id || user_id == self.admin.id);
                scopes
            }
            other => panic!("not delegated: {other:?}"),
        }
    }
}

fn assert_error(r: &Resp, error: &str, code: u32) {
    let v = r.json();
    assert_eq!(v["error"], error, "{v}");
    assert_eq!(v["error_codes"][0], code, "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with(&format!("AADSTS{code}:")),
        "{v}"
    );
}

#[tokio::test]
async fn auth_code_with_pkce_issues_access_id_and_refresh_tokens() {
    let w = world().await;
    let mut b = Browser::default();
    let page = w.authorize(&mut b, w.public.client_id, &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Sign in") && page.body.contains("Mail Tool"));
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(b.cookie.is_some(), "the flow is bound to a browser cookie");
    let consent = w
        .sign_in(&mut b, &page, "Megan@Contoso.test", PASSWORD)
        .await;
    assert_eq!(consent.status, StatusCode::OK);
    assert!(
        consent
            .body
            .contains("data-permission=\"MailboxFolder.Read\"")
    );
    let p = w.press(&mut b, &consent, "accept").await.redirect();
    assert_eq!(p["state"], "st-1");
    // The user's own consent was recorded.
    let grants = w
        .state
        .directory
        .store
        .list_grants(w.public.client_id)
        .await
        .unwrap();
    assert!(
        grants
            .iter()
            .any(|g| g.user_id == Some(w.megan.id) && g.value == "MailboxFolder.Read")
    );

    let r = w
        .redeem(w.public.client_id, &p["code"], Some(VERIFIER))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(
        v["scope"],
        "MailboxFolder.Read offline_access openid profile"
    );
    assert_eq!(
        w.scp(v["access_token"].as_str().unwrap()),
        vec!["MailboxFolder.Read"]
    );
    let p = w
        .authority
        .validate(v["access_token"].as_str().unwrap())
        .unwrap();
    assert!(p.allows(Operation::ReadFolders));
    assert!(!p.allows(Operation::ExportItems));
    // client_info as Entra sends it when asked.
    let ci: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(v["client_info"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ci["uid"], w.megan.id.to_string());
    assert_eq!(ci["utid"], w.tenant.id.to_string());

    // The ID token verifies with the published key.
    let id = v["id_token"].as_str().unwrap();
    let jwk = &w.authority.jwks()["keys"][0];
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut val = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    val.set_audience(&[w.public.client_id.to_string()]);
    val.set_issuer(&[w.authority.issuer_for(w.tenant.id)]);
    let c = jsonwebtoken::decode::<serde_json::Value>(id, &key, &val)
        .unwrap()
        .claims;
    assert_eq!(c["nonce"], "n-1");
    assert_eq!(c["oid"], w.megan.id.to_string());
    assert_eq!(c["tid"], w.tenant.id.to_string());
    assert_eq!(c["preferred_username"], "megan@contoso.test");
    assert_eq!(c["name"], "Megan Bowen");
    assert_ne!(c["sub"], c["oid"], "sub is pairwise per app");
    assert!(c["iat"].is_i64() && c["nbf"].is_i64() && c["exp"].as_i64() > c["iat"].as_i64());

    // Refresh: rotated on every use, the old one refused, and the replay
    // revokes the whole sign-in (the rotated token dies too).
    let rt1 = v["refresh_token"].as_str().unwrap().to_owned();
    let r = w
        .refresh(
            w.public.client_id,
            &rt1,
            Some("MailboxFolder.Read openid offline_access"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rt2 = r.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    assert!(r.json()["id_token"].is_string());
    let r = w.refresh(w.public.client_id, &rt2, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rt3 = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let r = w.refresh(w.public.client_id, &rt2, None).await;
    assert_error(&r, "invalid_grant", 70008);
    let r = w.refresh(w.public.client_id, &rt3, None).await;
    assert_error(&r, "invalid_grant", 50173);
    // Refresh tokens are stored hashed only.
    let key = identity::admin::hash_secret(&rt3);
    assert!(
        w.state
            .directory
            .store
            .get_record("refresh", &rt3)
            .await
            .unwrap()
            .is_none()
    );
    let _ = key;
}

#[tokio::test]
async fn code_redemption_refusals() {
    let w = world().await;
    let cid = w.public.client_id;
    // Wrong verifier, missing verifier, verifier of the wrong shape.
    let code = w.code_for(cid, "megan@contoso.test", &[]).await;
    let r = w.redeem(cid, &code, Some(&"x".repeat(43))).await;
    assert_error(&r, "invalid_grant", 501481);
    let code = w.code_for(cid, "megan@contoso.test", &[]).await;
    let r = w.redeem(cid, &code, None).await;
    assert_error(&r, "invalid_grant", 50148);
    let code = w.code_for(cid, "megan@contoso.test", &[]).await;
    let r = w.redeem(cid, &code, Some("short")).await;
    assert_error(&r, "invalid_grant", 501481);

    // Replayed code: refused, and the tokens of the first redemption die.
    let code = w.code_for(cid, "megan@contoso.test", &[]).await;
    let r = w.redeem(cid, &code, Some(VERIFIER)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rt = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let r = w.redeem(cid, &code, Some(VERIFIER)).await;
    assert_error(&r, "invalid_grant", 54005);
    let r = w.refresh(cid, &rt, None).await;
    assert_error(&r, "invalid_grant", 50173);

    // A code of another client.
    let code = w.code_for(cid, "megan@contoso.test", &[]).await;
    let r = w
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &w.web.client_id.to_string()),
            ("client_secret", &w.secret),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_error(&r, "invalid_grant", 70000);
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("another client")
    );

    // Redirect URI differing from the authorization request.
    let code = w.code_for(cid, "megan@contoso.test", &[]).await;
    let r = w
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &cid.to_string()),
            ("code", &code),
            ("redirect_uri", "http://localhost:8400/other"),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_error(&r, "invalid_grant", 70000);
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("redirect_uri")
    );

    // An unknown code; a confidential client without its secret.
    let r = w.redeem(cid, "not-a-code", Some(VERIFIER)).await;
    assert_error(&r, "invalid_grant", 70008);
    let code = w
        .code_for(w.web.client_id, "megan@contoso.test", &[("no_pkce", "")])
        .await;
    let r = w.redeem(w.web.client_id, &code, None).await;
    assert_error(&r, "invalid_client", 7000218);
    // The confidential client with its secret (and without PKCE) succeeds.
    let code = w
        .code_for(w.web.client_id, "megan@contoso.test", &[("no_pkce", "")])
        .await;
    let r = w
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &w.web.client_id.to_string()),
            ("client_secret", &w.secret),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

type Case = (
    Vec<(&'static str, &'static str)>,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn authorize_refusals() {
    let w = world().await;
    let mut b = Browser::default();
    let cid = w.public.client_id;
    // Unknown client, unregistered redirect URI, missing redirect URI: an
    // error page, never a redirect.
    let r = w.authorize(&mut b, Uuid::new_v4(), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("AADSTS700016") && !r.headers.contains_key(header::LOCATION));
    let r = w
        .get(
            &mut b,
            "/contoso.test/oauth2/v2.0/authorize",
            &[
                ("client_id", &cid.to_string()),
                ("response_type", "code"),
                ("redirect_uri", "http://localhost:8400/cb/"),
                ("scope", "openid"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("AADSTS50011"), "{}", r.body);
    assert!(!r.headers.contains_key(header::LOCATION));
    let r = w
        .get(
            &mut b,
            "/contoso.test/oauth2/v2.0/authorize",
            &[("client_id", &cid.to_string()), ("response_type", "code")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("AADSTS900971"));

    // Errors after the redirect URI checked out go to the app with state.
    // (extra authorize parameters, expected error, expected AADSTS prefix)
    let cases: Vec<Case> = vec![
        (
            vec![
                ("code_challenge_method", "plain"),
                ("code_challenge", VERIFIER),
            ],
            "invalid_request",
            "AADSTS50149",
        ),
        (
            vec![("code_challenge", "abc"), ("code_challenge_method", "S256")],
            "invalid_request",
            "AADSTS501491",
        ),
        (vec![("no_pkce", "")], "invalid_request", "AADSTS9002325"),
        (vec![("prompt", "none")], "login_required", "AADSTS50058"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
            "AADSTS700051",
        ),
        (
            vec![("scope", "MailboxItem.Read.All")],
            "invalid_scope",
            "AADSTS70011",
        ),
    ];
    for (extra, error, code) in cases {
        let r = w.authorize(&mut b, cid, &extra).await;
        let p = r.redirect();
        assert_eq!(p["error"], error, "{extra:?} {p:?}");
        assert!(p["error_description"].starts_with(code), "{extra:?} {p:?}");
        assert_eq!(p["state"], "st-1");
        assert!(!p.contains_key("code"));
    }

    // response_mode=form_post: an auto-submitting form to the redirect URI.
    let page = w
        .authorize(&mut b, cid, &[("response_mode", "form_post")])
        .await;
    let r = w
        .sign_in(&mut b, &page, "megan@contoso.test", PASSWORD)
        .await;
    let r = w.press(&mut b, &r, "accept").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains(&format!("action=\"{REDIRECT}\"")),
        "{}",
        r.body
    );
    assert!(r.field("code").is_some() && r.field("state").as_deref() == Some("st-1"));
    let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self' http://localhost:8400"),
        "{csp}"
    );

    // Cancel on the consent page: access_denied with error_subcode=cancel.
    let page = w.authorize(&mut b, cid, &[("prompt", "consent")]).await;
    let r = w
        .sign_in(&mut b, &page, "megan@contoso.test", PASSWORD)
        .await;
    let p = w.press(&mut b, &r, "cancel").await.redirect();
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["error_subcode"], "cancel");
    assert!(p["error_description"].starts_with("AADSTS65004"));
}

#[tokio::test]
async fn sign_in_forms_need_the_csrf_token_cookie_and_password() {
    let w = world().await;
    let mut b = Browser::default();
    let page = w.authorize(&mut b, w.public.client_id, &[]).await;
    let flow = page.field("flow").unwrap();
    let csrf = page.field("csrf").unwrap();
    let login = w.login_path();
    let creds = [("login", "megan@contoso.test"), ("passwd", PASSWORD)];
    // No token, a wrong token: refused.
    let r = w
        .post(&mut b, &login, &[("flow", &flow), creds[0], creds[1]])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("anti-forgery"));
    let r = w
        .post(
            &mut b,
            &login,
            &[("flow", &flow), ("csrf", "forged"), creds[0], creds[1]],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The right token from another browser (no cookie, or another cookie).
    let r = w
        .post(
            &mut Browser::default(),
            &login,
            &[("flow", &flow), ("csrf", &csrf), creds[0], creds[1]],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mut other = Browser {
        cookie: Some(format!("{}=someone-else", identity::BROWSER_COOKIE)),
    };
    let r = w
        .post(
            &mut other,
            &login,
            &[("flow", &flow), ("csrf", &csrf), creds[0], creds[1]],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // An unknown flow.
    let r = w
        .post(
            &mut b,
            &login,
            &[("flow", "nope"), ("csrf", &csrf), creds[0], creds[1]],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("AADSTS50089"));

    // Wrong passwords: the page again with AADSTS50126, a fresh token (the
    // old one is spent), and growing delays.
    let mut page = page;
    let mut slowest = std::time::Duration::ZERO;
    for (i, login) in [
        "megan@contoso.test",
        "megan@contoso.test",
        "MEGAN@contoso.test",
    ]
    .iter()
    .enumerate()
    {
        let t0 = std::time::Instant::now();
        let r = w.sign_in(&mut b, &page, login, "wrong password").await;
        slowest = slowest.max(t0.elapsed());
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.contains("AADSTS50126"), "{}", r.body);
        assert_ne!(r.field("csrf"), page.field("csrf"));
        assert_eq!(
            identity::sign_in_failures(&w.state, w.tenant.id, "megan@contoso.test"),
            i as u32 + 1
        );
        page = r;
    }
    assert!(
        slowest >= std::time::Duration::from_millis(400),
        "{slowest:?}"
    );
    // An unknown user reads the same.
    let r = w
        .sign_in(&mut b, &page, "nobody@contoso.test", PASSWORD)
        .await;
    assert!(r.body.contains("AADSTS50126"));
    // A stale page's token no longer works.
    let r = w
        .sign_in(&mut b, &page, "megan@contoso.test", PASSWORD)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let page = Resp {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: r.body,
    };
    let _ = page;
    // The right password with the current page's token.
    let mut b = Browser::default();
    let page = w.authorize(&mut b, w.public.client_id, &[]).await;
    let r = w
        .sign_in(&mut b, &page, "megan@contoso.test", PASSWORD)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Permissions requested"));
    assert_eq!(
        identity::sign_in_failures(&w.state, w.tenant.id, "megan@contoso.test"),
        0
    );
}

#[tokio::test]
async fn consent_required_until_an_admin_consents() {
    let w = world().await;
    let cid = w.public.client_id;
    let scope = "openid profile offline_access MailboxItem.ImportExport";
    // A user cannot consent to MailboxItem.ImportExport: the admin-approval
    // page, then consent_required back at the app.
    let mut b = Browser::default();
    let page = w.authorize(&mut b, cid, &[("scope", scope)]).await;
    let r = w
        .sign_in(&mut b, &page, "megan@contoso.test", PASSWORD)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Need admin approval") && r.body.contains("AADSTS90094"));
    let p = w.press(&mut b, &r, "back").await.redirect();
    assert_eq!(p["error"], "consent_required");
    assert!(p["error_description"].starts_with("AADSTS65001"), "{p:?}");

    // A refresh token for a user-consentable scope cannot be turned into one
    // for the admin-only scope: consent_required, and the refresh token
    // stays usable.
    let code = w.code_for(cid, "megan@contoso.test", &[]).await;
    let rt = w.redeem(cid, &code, Some(VERIFIER)).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = w
        .refresh(cid, &rt, Some("MailboxItem.ImportExport offline_access"))
        .await;
    assert_error(&r, "invalid_grant", 65001);
    assert_eq!(r.json()["suberror"], "consent_required");

    // A non-admin at the admin-consent URL: an error back at the app, no grant.
    let acq = [
        ("client_id", cid.to_string()),
        ("redirect_uri", REDIRECT.to_owned()),
        ("state", "st-1".to_owned()),
    ];
    let acq: Vec<(&str, &str)> = acq.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut b = Browser::default();
    let page = w.get(&mut b, "/contoso.test/adminconsent", &acq).await;
    assert_eq!(page.status, StatusCode::OK);
    let p = w
        .sign_in(&mut b, &page, "megan@contoso.test", PASSWORD)
        .await
        .redirect();
    assert_eq!(p["error"], "access_denied");
    assert!(p["error_description"].starts_with("AADSTS90094"));
    assert_eq!(p["state"], "st-1");
    let grants = w.state.directory.store.list_grants(cid).await.unwrap();
    assert!(grants.iter().all(|g| g.user_id.is_some()), "{grants:?}");

    // An admin grants it (v2 endpoint, .default).
    let mut v2 = acq.clone();
    v2.push(("scope", "https://graph.microsoft.com/.default"));
    let mut b = Browser::default();
    let page = w.get(&mut b, "/contoso.test/v2.0/adminconsent", &v2).await;
    let consent = w
        .sign_in(&mut b, &page, "admin@contoso.test", PASSWORD)
        .await;
    assert!(
        consent.body.contains("MailboxItem.ImportExport"),
        "{}",
        consent.body
    );
    let p = w.press(&mut b, &consent, "accept").await.redirect();
    assert_eq!(p["admin_consent"], "True");
    assert_eq!(p["tenant"], w.tenant.id.to_string());
    assert_eq!(p["state"], "st-1");
    assert_eq!(p["scope"], "https://graph.microsoft.com/.default");

    // Now the same refresh token yields MailboxItem.ImportExport.
    let r = w
        .refresh(cid, &rt, Some("MailboxItem.ImportExport offline_access"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let scp = w.scp(r.json()["access_token"].as_str().unwrap());
    assert!(
        scp.contains(&"MailboxItem.ImportExport".to_owned()),
        "{scp:?}"
    );
    let p = w
        .authority
        .validate(r.json()["access_token"].as_str().unwrap())
        .unwrap();
    assert!(p.allows(Operation::ExportItems) && p.allows(Operation::CreateImportSession));
    // And the authorize flow needs no consent page.
    let code = w
        .code_for(cid, "megan@contoso.test", &[("scope", scope)])
        .await;
    let r = w.redeem(cid, &code, Some(VERIFIER)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // An unknown v2 scope is refused before any sign-in.
    let mut bad = acq.clone();
    bad.push(("scope", "MailboxItem.Read"));
    let p = w
        .get(
            &mut Browser::default(),
            "/contoso.test/v2.0/adminconsent",
            &bad,
        )
        .await
        .redirect();
    assert_eq!(p["error"], "invalid_scope");
}

#[tokio::test]
async fn revocations_kill_refresh_tokens() {
    let w = world().await;
    let cid = w.public.client_id;
    let dir = &w.state.directory;
    let fresh = || async {
        let code = w.code_for(cid, "megan@contoso.test", &[]).await;
        let r = w.redeem(cid, &code, Some(VERIFIER)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.json()["refresh_token"].as_str().unwrap().to_owned()
    };
    // Revoked (admin) consent for the app.
    dir.grant_admin_consent(cid).await.unwrap();
    let rt = fresh().await;
    dir.revoke_admin_consent(cid).await.unwrap();
    assert_error(&w.refresh(cid, &rt, None).await, "invalid_grant", 50173);
    // A password change.
    let rt = fresh().await;
    w.state
        .directory
        .store
        .set_password_hash(w.megan.id, &hash_password(PASSWORD).unwrap())
        .await
        .unwrap();
    let r = w.refresh(cid, &rt, None).await;
    assert_error(&r, "invalid_grant", 50173);
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("password")
    );
    // Revoked sign-in sessions (graphbox admin user revoke-sessions).
    let rt = fresh().await;
    dir.revoke_user_sessions(w.tenant.id, w.megan.id)
        .await
        .unwrap();
    assert_error(&w.refresh(cid, &rt, None).await, "invalid_grant", 50173);
    // The user's own consent revoked.
    let rt = fresh().await;
    assert!(
        !dir.revoke_user_consent(cid, w.megan.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_error(&w.refresh(cid, &rt, None).await, "invalid_grant", 50173);
    // A refresh token of another client.
    let rt = fresh().await;
    let r = w
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &w.web.client_id.to_string()),
            ("client_secret", &w.secret),
            ("refresh_token", &rt),
        ])
        .await;
    assert_error(&r, "invalid_grant", 70000);
    // After all that, a new sign-in works again.
    let rt = fresh().await;
    assert_eq!(w.refresh(cid, &rt, None).await.status, StatusCode::OK);
}

async fn device_start(w: &World, client: Uuid, scope: &str) -> serde_json::Value {
    let r = w
        .post(
            &mut Browser::default(),
            "/contoso.test/oauth2/v2.0/devicecode",
            &[("client_id", &client.to_string()), ("scope", scope)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

async fn device_poll(w: &World, client: Uuid, device_code: &str) -> Resp {
    w.token(&[
        ("grant_type", identity::DEVICE_CODE_GRANT),
        ("client_id", &client.to_string()),
        ("device_code", device_code),
    ])
    .await
}

/// Opens the verification page and enters the user code.
async fn device_enter(w: &World, b: &mut Browser, user_code: &str) -> Resp {
    let path = format!("/{}/oauth2/deviceauth", w.tenant.id);
    let entry = w.get(b, &path, &[]).await;
    assert_eq!(entry.status, StatusCode::OK);
    let csrf = entry.field("csrf").unwrap();
    w.post(b, &path, &[("csrf", &csrf), ("otc", user_code)])
        .await
}

#[tokio::test]
async fn device_code_flow_with_its_refusals() {
    let w = world().await;
    let cid = w.public.client_id;
    let d = device_start(&w, cid, "openid profile offline_access MailboxFolder.Read").await;
    let uri = d["verification_uri"].as_str().unwrap();
    assert_eq!(uri, format!("{BASE}/{}/oauth2/deviceauth", w.tenant.id));
    assert_eq!(d["interval"], 5);
    assert_eq!(d["expires_in"], 900);
    let user_code = d["user_code"].as_str().unwrap();
    assert!(d["message"].as_str().unwrap().contains(user_code));
    let dc = d["device_code"].as_str().unwrap();

    // Pending, then polled too fast.
    assert_error(
        &device_poll(&w, cid, dc).await,
        "authorization_pending",
        70016,
    );
    let r = device_poll(&w, cid, dc).await;
    assert_eq!(r.json()["error"], "slow_down");

    // The entry form needs its token.
    let mut b = Browser::default();
    let path = format!("/{}/oauth2/deviceauth", w.tenant.id);
    w.get(&mut b, &path, &[]).await;
    let r = w
        .post(&mut b, &path, &[("csrf", "forged"), ("otc", user_code)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = device_enter(&w, &mut b, "BCDFGHJKL").await;
    assert!(r.body.contains("Check the code and try again"));
    // Typed in lower case with a dash: fine.
    let typed = format!("{}-{}", &user_code[..4], &user_code[4..]).to_lowercase();
    let page = device_enter(&w, &mut b, &typed).await;
    assert!(page.body.contains("on another device"), "{}", page.body);
    let consent = w
        .sign_in(&mut b, &page, "megan@contoso.test", PASSWORD)
        .await;
    assert!(consent.body.contains("Permissions requested"));
    let done = w.press(&mut b, &consent, "accept").await;
    assert!(
        done.body
            .contains("You have signed in to the Mail Tool application"),
        "{}",
        done.body
    );
    // The user code was single-use.
    let r = device_enter(&w, &mut Browser::default(), user_code).await;
    assert!(r.body.contains("Check the code and try again"));

    // Another client cannot redeem it.
    let r = w
        .token(&[
            ("grant_type", identity::DEVICE_CODE_GRANT),
            ("client_id", &w.web.client_id.to_string()),
            ("client_secret", &w.secret),
            ("device_code", dc),
        ])
        .await;
    assert_error(&r, "invalid_grant", 70000);
    let r = device_poll(&w, cid, dc).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.json();
    assert_eq!(
        w.scp(v["access_token"].as_str().unwrap()),
        vec!["MailboxFolder.Read"]
    );
    assert!(v["id_token"].is_string() && v["refresh_token"].is_string());
    // Used.
    assert_error(&device_poll(&w, cid, dc).await, "invalid_grant", 70000);
    // A non-public client without a secret.
    let r = w
        .token(&[
            ("grant_type", identity::DEVICE_CODE_GRANT),
            ("client_id", &w.web.client_id.to_string()),
            ("device_code", dc),
        ])
        .await;
    assert_error(&r, "invalid_client", 7000218);

    // Declined on the consent page.
    let d = device_start(&w, cid, "MailboxFolder.Read").await;
    let mut b = Browser::default();
    let page = device_enter(&w, &mut b, d["user_code"].as_str().unwrap()).await;
    let consent = w
        .sign_in(&mut b, &page, "admin@contoso.test", PASSWORD)
        .await;
    let r = w.press(&mut b, &consent, "cancel").await;
    assert!(r.body.contains("declined"));
    assert_error(
        &device_poll(&w, cid, d["device_code"].as_str().unwrap()).await,
        "access_denied",
        65004,
    );
    // Needs admin approval.
    let d = device_start(&w, cid, "MailboxItem.ImportExport").await;
    let mut b = Browser::default();
    let page = device_enter(&w, &mut b, d["user_code"].as_str().unwrap()).await;
    let r = w
        .sign_in(&mut b, &page, "megan@contoso.test", PASSWORD)
        .await;
    assert!(r.body.contains("AADSTS90094"));
    w.press(&mut b, &r, "back").await;
    let r = device_poll(&w, cid, d["device_code"].as_str().unwrap()).await;
    assert_error(&r, "invalid_grant", 65001);
    assert_eq!(r.json()["suberror"], "consent_required");
}

#[tokio::test]
async fn device_code_expires() {
    let w = world_with(|s| s.flows.device_code_lifetime = time::Duration::seconds(1)).await;
    let cid = w.public.client_id;
    let d = device_start(&w, cid, "MailboxFolder.Read").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = device_poll(&w, cid, d["device_code"].as_str().unwrap()).await;
    assert_error(&r, "expired_token", 70020);
    // The user code is gone too.
    let r = device_enter(
        &w,
        &mut Browser::default(),
        d["user_code"].as_str().unwrap(),
    )
    .await;
    assert!(r.body.contains("Check the code and try again"));
    // An unknown device code.
    assert_error(&device_poll(&w, cid, "nope").await, "invalid_grant", 70000);
}

#[tokio::test]
async fn discovery_lists_the_user_flows() {
    let w = world().await;
    let r = w
        .get(
            &mut Browser::default(),
            "/contoso.test/v2.0/.well-known/openid-configuration",
            &[],
        )
        .await;
    let v = r.json();
    let tid = w.tenant.id;
    assert_eq!(
        v["authorization_endpoint"],
        format!("{BASE}/{tid}/oauth2/v2.0/authorize")
    );
    assert_eq!(
        v["device_authorization_endpoint"],
        format!("{BASE}/{tid}/oauth2/v2.0/devicecode")
    );
    for g in [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        identity::DEVICE_CODE_GRANT,
    ] {
        assert!(
            v["grant_types_supported"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == g),
            "{g}"
        );
    }
    assert_eq!(
        v["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(
        v["response_modes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "form_post")
    );
}
