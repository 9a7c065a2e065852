//! `graphbox admin keys list|rotate`, and `graphbox serve` rotating an overdue
//! signing key at start, publishing both keys and issuing tokens with the
//! configured lifetime: real processes, a real data directory.

use std::process::Command;

use serde_json::Value;
use store::MetaStore;

mod common;

use common::{BIN, serve};

fn run(dir: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("GRAPHBOX_CONFIG")
        .output()
        .expect("graphbox runs")
}

#[track_caller]
fn run_json(dir: &str, args: &[&str]) -> Value {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn admin_keys_list_and_rotate() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let keys = run_json(d, &["admin", "keys", "list", "--json"]);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys[0]["slot"], 0);
    assert_eq!(keys[0]["state"], "current");
    assert!(keys[0]["dropAfter"].is_null());
    let first = keys[0]["kid"].as_str().unwrap().to_owned();

    let k = run_json(
        d,
        &[
            "admin",
            "keys",
            "rotate",
            "--activate-in-secs",
            "0",
            "--json",
        ],
    );
    assert_eq!(k["slot"], 1);
    assert_eq!(k["state"], "current");
    assert_ne!(k["kid"], first.as_str());
    let keys = run_json(d, &["admin", "keys", "list", "--json"]);
    assert_eq!(keys[0]["state"], "previous", "{keys}");
    assert!(keys[0]["dropAfter"].is_string(), "{keys}");
    assert_eq!(keys[1]["state"], "current", "{keys}");

    // The default lead: published now, signing in two minutes.
    let k = run_json(d, &["admin", "keys", "rotate", "--json"]);
    assert_eq!(k["slot"], 2);
    assert_eq!(k["state"], "pending");

    let text = run(d, &["admin", "keys", "list"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains("pending") && text.contains("previous"),
        "{text}"
    );

    let bad = run(
        d,
        &["admin", "keys", "rotate", "--activate-in-secs", "90000"],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--activate-in-secs"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Kills the server when the test ends, however it ends.

#[tokio::test]
async fn serve_rotates_an_overdue_key_and_issues_configured_lifetimes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap().to_owned();
    // A deployment from before rotation: one key, created 31 days ago.
    {
        let meta = store::SqliteMetaStore::open(tmp.path().join("meta.sqlite"))
            .await
            .unwrap();
        let pem = api::auth::generate_signing_key_pem().unwrap();
        meta.put_setting_if_absent(api::auth::SIGNING_KEY_SETTING, &pem)
            .await
            .unwrap();
        let old = time::OffsetDateTime::now_utc() - time::Duration::days(31);
        meta.put_setting_if_absent(
            api::auth::SIGNING_KEY_CREATED_SETTING,
            &old.unix_timestamp().to_string(),
        )
        .await
        .unwrap();
    }
    let cli = |args: &[&str]| {
        let d = d.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                run_json(&d, &a)
            })
            .await
            .unwrap()
        }
    };
    cli(&[
        "admin",
        "tenant",
        "create",
        "--domain",
        "contoso.test",
        "--json",
    ])
    .await;
    let user = cli(&[
        "admin",
        "user",
        "create",
        "--tenant",
        "contoso.test",
        "--upn",
        "megan@contoso.test",
        "--json",
    ])
    .await;
    let mbx = user["primaryMailboxId"].as_str().unwrap().to_owned();
    let app = cli(&[
        "admin",
        "app",
        "create",
        "--tenant",
        "contoso.test",
        "--name",
        "Keys",
        "--json",
    ])
    .await;
    let app_id = app["appId"].as_str().unwrap().to_owned();
    cli(&[
        "admin",
        "app",
        "permission",
        "add",
        "--app",
        &app_id,
        "--permission",
        "MailboxFolder.Read.All",
        "--json",
    ])
    .await;
    let secret = cli(&["admin", "app", "secret", "add", "--app", &app_id, "--json"]).await;
    let secret = secret["secretText"].as_str().unwrap().to_owned();
    cli(&["admin", "consent", "grant", "--app", &app_id, "--json"]).await;

    // Out-of-range settings stop the server before it listens.
    let bad = tokio::task::spawn_blocking({
        let d = d.clone();
        move || {
            run(
                &d,
                &[
                    "serve",
                    "--listen",
                    "127.0.0.1:0",
                    "--access-token-lifetime-secs",
                    "10",
                ],
            )
        }
    })
    .await
    .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("access-token-lifetime-secs"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let (server, base) = serve(
        &d,
        &[
            "--access-token-lifetime-secs",
            "600",
            "--key-rotation-days",
            "30",
        ],
    );
    let keys = cli(&["admin", "keys", "list", "--json"]).await;
    let keys = keys.as_array().unwrap().clone();
    assert_eq!(keys.len(), 2, "rotated at start: {keys:?}");
    assert_eq!(keys[0]["state"], "current");
    assert_eq!(keys[1]["state"], "pending");

    let http = reqwest::Client::new();
    let jwks: Value = http
        .get(format!("{base}/contoso.test/discovery/v2.0/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [
            keys[1]["kid"].as_str().unwrap(),
            keys[0]["kid"].as_str().unwrap()
        ]
    );

    let tok: Value = http
        .post(format!("{base}/contoso.test/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &app_id),
            ("client_secret", &secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tok["expires_in"], 600, "{tok}");
    let token = tok["access_token"].as_str().unwrap();
    // Signed by the still-current key (the new one is pending), accepted.
    let header = token.split('.').next().unwrap();
    assert!(
        String::from_utf8(base64_url(header))
            .unwrap()
            .contains(keys[0]["kid"].as_str().unwrap()),
        "token header {header}"
    );
    let r = http
        .get(format!(
            "{base}/v1.0/admin/exchange/mailboxes/{mbx}/folders"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    drop(server);

    // A restart within the rotation period rotates nothing more.
    let (server, _) = serve(&d, &["--key-rotation-days", "30"]);
    let keys = cli(&["admin", "keys", "list", "--json"]).await;
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    drop(server);
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}
