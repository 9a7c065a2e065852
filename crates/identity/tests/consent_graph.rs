//! A revoked consent, seen from the Graph side: tokens the identity endpoints
//! mint after the revocation lack the permission, so the very next Graph
//! request with a new token is a 403 with Graph's envelope.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use identity::IdentityState;
use store::directory::PermissionKind;
use store::{MailboxKind, MetaStore, SqliteMetaStore};
use tower::ServiceExt;

const BASE: &str = "https://127.0.0.1:8443";

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn revoked_consent_removes_the_permission_from_new_tokens() {
    let s = Arc::new(SqliteMetaStore::open_in_memory().await.unwrap());
    let tenant = s.create_tenant("contoso.test", "Contoso").await.unwrap();
    let user = s
        .create_user(tenant.id, "megan@contoso.test", "Megan")
        .await
        .unwrap();
    let mbx = s
        .create_mailbox(user.id, MailboxKind::Primary)
        .await
        .unwrap();
    let state = api::AppState::load(s.clone(), BASE, BASE).await.unwrap();
    let ist = IdentityState::new(s.clone(), s.clone(), state.authority.clone(), BASE);
    let dir = ist.directory.clone();
    let app = api::router(state).merge(identity::router(ist));

    let reg = dir
        .create_app(tenant.id, "Exporter", vec![], false)
        .await
        .unwrap();
    for p in ["MailboxFolder.Read.All", "MailboxItem.ImportExport.All"] {
        dir.add_permission(reg.client_id, PermissionKind::Application, p)
            .await
            .unwrap();
    }
    let secret = dir
        .add_secret(reg.client_id, time::Duration::days(1))
        .await
        .unwrap();
    let token = || {
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
            reg.client_id,
            percent(&secret.value)
        );
        let app = app.clone();
        async move {
            let (st, v) = call(
                &app,
                Request::post("/contoso.test/oauth2/v2.0/token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            v["access_token"].as_str().unwrap().to_owned()
        }
    };
    let graph = |path: String, token: String, post: bool| {
        let app = app.clone();
        async move {
            let b = if post {
                Request::post(path)
            } else {
                Request::get(path)
            };
            call(
                &app,
                b.header("authorization", format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
        }
    };
    let folders = format!("/v1.0/admin/exchange/mailboxes/{}/folders", mbx.id);
    let import = format!(
        "/v1.0/admin/exchange/mailboxes/{}/createImportSession",
        mbx.id
    );

    // Requested but not consented: the token has no roles → 403.
    let t0 = token().await;
    let (st, v) = graph(folders.clone(), t0, false).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "ErrorAccessDenied");

    dir.grant_admin_consent(reg.client_id).await.unwrap();
    let t1 = token().await;
    let (st, v) = graph(folders.clone(), t1.clone(), false).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = graph(import.clone(), t1.clone(), true).await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // One permission removed (and with it its consent): the next token
    // lacks it at once.
    dir.remove_permission(
        reg.client_id,
        PermissionKind::Application,
        "MailboxItem.ImportExport.All",
    )
    .await
    .unwrap();
    let t2 = token().await;
    let (st, v) = graph(import.clone(), t2.clone(), true).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "ErrorAccessDenied");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MailboxItem.ImportExport.All"),
        "{v}"
    );
    let (st, _) = graph(folders.clone(), t2, false).await;
    assert_eq!(st, StatusCode::OK);

    // The whole admin consent revoked: new tokens reach nothing.
    dir.revoke_admin_consent(reg.client_id).await.unwrap();
    let t3 = token().await;
    let (st, v) = graph(folders.clone(), t3, false).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "ErrorAccessDenied");
    assert!(v["error"]["message"].is_string(), "{v}");
    // A token minted before the revocation lives out its lifetime, as
    // Entra's access tokens do (they are not revocable).
    let (st, _) = graph(folders, t1, false).await;
    assert_eq!(st, StatusCode::OK);
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
