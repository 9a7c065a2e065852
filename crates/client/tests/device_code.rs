//! The device-code flow (RFC 8628) and refresh tokens against a scripted
//! Entra-shaped authority (graphbox has no device-code endpoint yet).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use client::{Credential, DeviceCodePrompt, Error, GraphClient, Profile};

#[derive(Default)]
struct Script {
    /// Answers of the token endpoint to device_code polls, in order
    /// (`"pending"`, `"slow_down"`, `"expired"`, `"ok"`).
    polls: Vec<&'static str>,
    /// Forms received by the token endpoint.
    seen: Vec<HashMap<String, String>>,
    device_requests: u32,
}

type Shared = Arc<Mutex<Script>>;

fn oauth_error(error: &str, code: u64) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {error}"),
            "error_codes": [code],
        })),
    )
        .into_response()
}

async fn devicecode(State(s): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    s.lock().unwrap().device_requests += 1;
    assert_eq!(f.get("client_id").map(String::as_str), Some("public-app"));
    assert!(f["scope"].contains("offline_access"));
    Json(serde_json::json!({
        "device_code": "DEV-123",
        "user_code": "ABCD-EFGH",
        "verification_uri": "https://microsoft.com/devicelogin",
        "expires_in": 900,
        "interval": 0,
        "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate.",
    }))
    .into_response()
}

async fn token(State(s): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let mut st = s.lock().unwrap();
    st.seen.push(f.clone());
    match f.get("grant_type").map(String::as_str) {
        Some(client::DEVICE_CODE_GRANT) => {
            assert_eq!(f.get("device_code").map(String::as_str), Some("DEV-123"));
            let next = if st.polls.is_empty() {
                "ok"
            } else {
                st.polls.remove(0)
            };
            match next {
                "pending" => oauth_error("authorization_pending", 70016),
                "slow_down" => oauth_error("slow_down", 70016),
                "expired" => oauth_error("expired_token", 70019),
                "declined" => oauth_error("access_denied", 70011),
                _ => Json(serde_json::json!({
                    "token_type": "Bearer", "access_token": "AT-1", "expires_in": 4,
                    "refresh_token": "RT-1", "scope": "x",
                }))
                .into_response(),
            }
        }
        Some("refresh_token") => {
            if f.get("refresh_token").map(String::as_str) == Some("RT-1") {
                Json(serde_json::json!({
                    "token_type": "Bearer", "access_token": "AT-2", "expires_in": "3600",
                    "refresh_token": "RT-2",
                }))
                .into_response()
            } else {
                oauth_error("invalid_grant", 70000)
            }
        }
        _ => oauth_error("unsupported_grant_type", 70003),
    }
}

async fn authority(polls: Vec<&'static str>) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(Script {
        polls,
        ..Script::default()
    }));
    let app = Router::new()
        .route("/{tenant}/oauth2/v2.0/devicecode", post(devicecode))
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .with_state(shared.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, shared)
}

fn profile(url: &str, shown: Arc<Mutex<Vec<DeviceCodePrompt>>>) -> Profile {
    let mut p = Profile::new(
        "contoso.test",
        "public-app",
        Credential::DeviceCode {
            prompt: Some(Arc::new(move |p: &DeviceCodePrompt| {
                shown.lock().unwrap().push(p.clone())
            })),
        },
    );
    p.authority = url.to_owned();
    p
}

#[tokio::test]
async fn device_code_polls_then_refreshes() {
    let (url, script) = authority(vec!["pending", "pending", "slow_down", "pending"]).await;
    let shown = Arc::new(Mutex::new(Vec::new()));
    let c = GraphClient::new(profile(&url, shown.clone())).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(c.access_token().await.unwrap(), "AT-1");
    // slow_down adds 5 s to the interval (RFC 8628 §3.5).
    assert!(started.elapsed() >= std::time::Duration::from_secs(5));
    {
        let shown = shown.lock().unwrap();
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].user_code, "ABCD-EFGH");
        assert_eq!(
            shown[0].verification_uri,
            "https://microsoft.com/devicelogin"
        );
    }
    // Cached while valid (4 s token: renewed after 2 s).
    assert_eq!(c.access_token().await.unwrap(), "AT-1");
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    // Renewed with the refresh token, not a new sign-in.
    assert_eq!(c.access_token().await.unwrap(), "AT-2");
    let st = script.lock().unwrap();
    assert_eq!(st.device_requests, 1);
    let grants: Vec<_> = st.seen.iter().map(|f| f["grant_type"].clone()).collect();
    assert_eq!(
        grants
            .iter()
            .filter(|g| *g == client::DEVICE_CODE_GRANT)
            .count(),
        5
    );
    assert_eq!(grants.last().map(String::as_str), Some("refresh_token"));
}

#[tokio::test]
async fn device_code_expired_and_declined() {
    let (url, _) = authority(vec!["pending", "expired"]).await;
    let shown = Arc::new(Mutex::new(Vec::new()));
    let e = GraphClient::new(profile(&url, shown.clone()))
        .unwrap()
        .access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::DeviceCode(m) if m.contains("expired")),
        "{e:?}"
    );

    let (url, _) = authority(vec!["declined"]).await;
    let e = GraphClient::new(profile(&url, shown))
        .unwrap()
        .access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::DeviceCode(m) if m.contains("declined")),
        "{e:?}"
    );
}
