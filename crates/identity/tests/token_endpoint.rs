//! The token endpoint against an in-memory directory, and the Graph side's
//! refusal of tokens it must not accept.

use std::sync::Arc;

use api::Authority;
use api::auth::Operation;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt;
use identity::{IdentityState, router};
use store::directory::PermissionKind;
use store::{MetaStore, SqliteMetaStore};
use tower::ServiceExt;

const BASE: &str = "https://127.0.0.1:8443";

struct World {
    app: axum::Router,
    authority: Arc<Authority>,
    state: IdentityState,
    tenant: store::Tenant,
}

async fn world() -> World {
    let s = Arc::new(SqliteMetaStore::open_in_memory().await.unwrap());
    let tenant = s.create_tenant("contoso.test", "Contoso").await.unwrap();
    let pem = api::auth::generate_signing_key_pem().unwrap();
    let authority = Arc::new(Authority::from_pem(&pem, BASE).unwrap());
    let state = IdentityState::new(s.clone(), s.clone(), authority.clone(), BASE);
    World {
        app: router(state.clone()),
        authority,
        state,
        tenant,
    }
}

async fn post(
    app: &axum::Router,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A").replace('/', "%2F")))
        .collect::<Vec<_>>()
        .join("&");
    let res = app
        .clone()
        .oneshot(
            Request::post(path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn client_credentials_with_secret_roles_and_revocation() {
    let w = world().await;
    let dir = &w.state.directory;
    let app = dir
        .create_app(w.tenant.id, "Exporter", vec![], false)
        .await
        .unwrap();
    dir.add_permission(
        app.client_id,
        PermissionKind::Application,
        "mailboxitem.importexport.all",
    )
    .await
    .unwrap();
    let secret = dir
        .add_secret(app.client_id, time::Duration::days(1))
        .await
        .unwrap();
    let cid = app.client_id.to_string();
    let path = "/contoso.test/oauth2/v2.0/token";
    let form = |secret: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_secret", secret),
        ]
    };
    let leak: &'static str = Box::leak(secret.value.clone().into_boxed_str());
    let cid_s: &'static str = Box::leak(cid.clone().into_boxed_str());

    // Not yet consented: a token without roles, refused by every operation.
    let mut f = form(leak);
    f.push(("client_id", cid_s));
    let (st, body) = post(&w.app, path, &f).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let p = w
        .authority
        .validate(body["access_token"].as_str().unwrap())
        .unwrap();
    assert!(!p.allows(Operation::CreateImportSession));

    dir.grant_admin_consent(app.client_id).await.unwrap();
    let (_, body) = post(&w.app, path, &f).await;
    let p = w
        .authority
        .validate(body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(p.tenant_id, w.tenant.id);
    assert!(p.allows(Operation::CreateImportSession));
    assert!(p.allows(Operation::ExportItems));
    assert!(!p.allows(Operation::ReadItems));

    // Revoked: new tokens lose the role at once.
    dir.revoke_admin_consent(app.client_id).await.unwrap();
    let (_, body) = post(&w.app, path, &f).await;
    let p = w
        .authority
        .validate(body["access_token"].as_str().unwrap())
        .unwrap();
    assert!(!p.allows(Operation::CreateImportSession));

    // Wrong secret, unknown app, app of another tenant, bad scope, bad grant.
    let mut bad = form("wrong");
    bad.push(("client_id", cid_s));
    let (st, body) = post(&w.app, path, &bad).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"][0], 7000215);
    assert!(!body.to_string().contains(leak));

    let mut unknown = form(leak);
    unknown.push(("client_id", "6e3b6c4a-0000-4000-8000-000000000000"));
    let (st, body) = post(&w.app, path, &unknown).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(body["error_codes"][0], 700016);

    let other = w
        .state
        .meta
        .create_tenant("fabrikam.test", "Fabrikam")
        .await
        .unwrap();
    let _ = other;
    let (st, body) = post(&w.app, "/fabrikam.test/oauth2/v2.0/token", &f).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_codes"][0], 700016);

    let (st, body) = post(&w.app, "/nowhere.test/oauth2/v2.0/token", &f).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_codes"][0], 90002);

    let mut scope = vec![
        ("grant_type", "client_credentials"),
        ("scope", "User.Read"),
        ("client_secret", leak),
    ];
    scope.push(("client_id", cid_s));
    let (_, body) = post(&w.app, path, &scope).await;
    assert_eq!(body["error"], "invalid_scope");

    let (_, body) = post(&w.app, path, &[("grant_type", "password")]).await;
    assert_eq!(body["error"], "unsupported_grant_type");
    let (_, body) = post(&w.app, path, &[("client_id", cid_s)]).await;
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn graph_side_refuses_forged_tokens() {
    let w = world().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({
        "aud": "https://graph.microsoft.com", "iss": w.authority.issuer_for(w.tenant.id),
        "iat": now, "nbf": now, "exp": now + 600, "tid": w.tenant.id.to_string(),
        "azp": "x", "roles": ["MailboxItem.ImportExport.All"],
    });
    // alg: none, with and without the right kid.
    let header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": w.authority.kid()});
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let e = w.authority.validate(&none).unwrap_err();
    assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    assert_eq!(e.code, "InvalidAuthenticationToken");
    // Unknown kid (a key of another authority).
    let other = Authority::from_pem(&api::auth::generate_signing_key_pem().unwrap(), BASE).unwrap();
    let req = api::TokenRequest {
        tenant_id: w.tenant.id,
        app_id: uuid::Uuid::new_v4(),
        grant: api::Grant::Application {
            roles: vec!["MailboxItem.ImportExport.All".into()],
        },
        lifetime: time::Duration::hours(1),
        issued_at: None,
    };
    let e = w.authority.validate(&other.mint(&req)).unwrap_err();
    assert!(e.message.contains("kid"), "{}", e.message);
    // A token from this authority validates.
    assert!(w.authority.validate(&w.authority.mint(&req)).is_ok());
}
