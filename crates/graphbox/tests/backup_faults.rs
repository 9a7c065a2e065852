//! The real `graphbox backup` and `graphbox restore` binaries against a real
//! `graphbox serve` whose public URL is a fault-injecting proxy
//! (`client::testing::FaultProxy`): throttling with `Retry-After`, 503s,
//! connection resets and items left out of exportItems answers. The backup
//! must still save every item, say how often it was throttled and retried,
//! and the restore through the same proxy must bring every item back.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use client::testing::{FaultPlan, FaultProxy};
use client::{Credential, GraphClient, Profile};

mod common;

use common::BIN;

const DOMAIN: &str = "contoso.test";
const PASSWORD: &str = "fault tolerant password";
const ROLES: &[&str] = &[
    "User.Read.All",
    "MailboxFolder.ReadWrite.All",
    "MailboxItem.Read.All",
    "MailboxItem.ReadWrite.All",
    "MailboxItem.ImportExport.All",
];

struct Deployment {
    // Stopped before its directory is removed (fields drop in order).
    _server: common::Server,
    dir: tempfile::TempDir,
    direct_url: String,
    app_id: String,
    secret: String,
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("GRAPHBOX_REPO")
        .env_remove("GRAPHBOX_PROFILE")
        .output()
        .expect("graphbox runs")
}

fn ok(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = run(args, envs);
    assert!(
        out.status.success(),
        "graphbox {} failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn admin_json(dir: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["admin"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", dir, "--json"]);
    serde_json::from_str(&ok(&all, &[])).expect("admin --json prints JSON")
}

/// A data directory with megan (seeded) and alex (empty), a consented app
/// with a secret, and `graphbox serve` whose public URL is `public`.
fn deploy(public: &str) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    admin_json(
        &d,
        &["tenant", "create", "--domain", DOMAIN, "--name", "Contoso"],
    );
    let megan = admin_json(
        &d,
        &[
            "user",
            "create",
            "--tenant",
            DOMAIN,
            "--upn",
            "megan@contoso.test",
            "--name",
            "Megan",
        ],
    );
    admin_json(
        &d,
        &[
            "user",
            "create",
            "--tenant",
            DOMAIN,
            "--upn",
            "alex@contoso.test",
            "--name",
            "Alex",
        ],
    );
    let mbx = megan["primaryMailboxId"].as_str().unwrap().to_owned();
    for (folder, n, seed) in [("inbox", "150", "1"), ("sentitems", "30", "2")] {
        admin_json(
            &d,
            &[
                "seed",
                "--mailbox",
                &mbx,
                "--items",
                n,
                "--folder",
                folder,
                "--seed",
                seed,
            ],
        );
    }
    let app = admin_json(
        &d,
        &["app", "create", "--tenant", DOMAIN, "--name", "Backup"],
    );
    let app_id = app["appId"].as_str().unwrap().to_owned();
    for r in ROLES {
        admin_json(
            &d,
            &[
                "app",
                "permission",
                "add",
                "--app",
                &app_id,
                "--permission",
                r,
                "--type",
                "application",
            ],
        );
    }
    let secret = admin_json(&d, &["app", "secret", "add", "--app", &app_id])["secretText"]
        .as_str()
        .unwrap()
        .to_owned();
    admin_json(&d, &["consent", "grant", "--app", &app_id]);

    // `serve` prints its public URL (the proxy's); the tests also talk to
    // the address it listens on.
    let (server, direct_url) = common::serve(&d, &["--public-url", public]);
    Deployment {
        dir,
        _server: server,
        direct_url,
        app_id,
        secret,
    }
}

/// Runs client commands (with the connection flags and secrets) off the
/// async runtime, which must keep serving the proxy meanwhile.
struct Cli {
    conn: Vec<String>,
    envs: Vec<(String, String)>,
}

impl Cli {
    fn task(&self, args: Vec<String>) -> impl FnOnce() -> Output + Send + 'static {
        let (conn, envs) = (self.conn.clone(), self.envs.clone());
        move || {
            let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
            if matches!(all[0], "backup" | "restore") {
                all.extend(conn.iter().map(String::as_str));
            }
            let e: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            run(&all, &e)
        }
    }
}

/// Every item (folder name, id) of a mailbox, asked of the server directly.
async fn items_of(d: &Deployment, upn: &str) -> BTreeMap<String, String> {
    let mut p = Profile::new(
        DOMAIN,
        d.app_id.clone(),
        Credential::Secret {
            secret: d.secret.clone(),
        },
    );
    p.graph_base = d.direct_url.clone();
    p.authority = d.direct_url.clone();
    let c = GraphClient::new(p).unwrap();
    let m = c.mailbox_for_user(upn).await.unwrap();
    let mut out = BTreeMap::new();
    for f in c.list_folders(&m.id).await.unwrap() {
        for i in c.list_items(&m.id, &f.id).await.unwrap() {
            out.insert(i.id, f.display_name.clone());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_and_restore_through_faults() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let d = tokio::task::spawn_blocking({
        let public = public.clone();
        move || deploy(&public)
    })
    .await
    .unwrap();
    let proxy = FaultProxy::serve(
        listener,
        &d.direct_url,
        FaultPlan {
            throttle_every: 5,
            retry_after: Some("1".into()),
            unavailable_every: 11,
            reset_every: 13,
            drop_export_every: 4,
            ..FaultPlan::default()
        },
    );
    assert_eq!(proxy.url(), public);
    let source = items_of(&d, "megan@contoso.test").await;
    assert_eq!(source.len(), 180);

    let repo = d.dir.path().join("repo").to_str().unwrap().to_owned();
    let cli = Cli {
        conn: [
            "--graph",
            public.as_str(),
            "--tenant",
            DOMAIN,
            "--client-id",
            d.app_id.as_str(),
        ]
        .map(String::from)
        .to_vec(),
        envs: vec![
            ("GRAPHBOX_REPO_PASSWORD".into(), PASSWORD.into()),
            ("GRAPHBOX_CLIENT_SECRET".into(), d.secret.clone()),
        ],
    };
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let blocking = |args: Vec<String>| cli.task(args);

    let init = tokio::task::spawn_blocking(blocking(owned(&["init", "--repo", &repo])))
        .await
        .unwrap();
    assert!(init.status.success(), "{init:?}");

    // The backup, through the faults.
    let out = tokio::task::spawn_blocking(blocking(owned(&[
        "backup",
        "--repo",
        &repo,
        "--mailbox",
        "megan@contoso.test",
        "--json",
        // A first backup: no hint to use, and none left in ~/.cache.
        "--no-cache",
    ])))
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "backup failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &summary["mailboxes"][0];
    assert_eq!(summary["ok"], true, "{summary:#}");
    assert_eq!(m["items"], 180, "{summary:#}");
    assert_eq!(m["exported"], 180, "{summary:#}");
    assert_eq!(m["errors"].as_array().unwrap().len(), 0, "{summary:#}");
    assert!(summary["throttled"].as_u64().unwrap() > 0, "{summary:#}");
    assert!(
        summary["retries"].as_u64().unwrap() >= summary["throttled"].as_u64().unwrap(),
        "{summary:#}"
    );
    let stats = proxy.stats();
    assert!(stats.throttled > 0 && stats.unavailable > 0, "{stats:?}");
    assert!(stats.dropped_items > 0, "{stats:?}");
    assert!(stats.resets > 0, "{stats:?}");
    assert_eq!(
        summary["throttled"].as_u64().unwrap(),
        stats.throttled + stats.unavailable,
        "every 429 and 503 the proxy sent is counted: {summary:#} {stats:?}"
    );

    // The snapshot has every item the server has, and reads back clean.
    let snap = m["snapshot"].as_str().unwrap().to_owned();
    let show: serde_json::Value = serde_json::from_slice(
        &tokio::task::spawn_blocking(blocking(owned(&[
            "snapshots",
            "--repo",
            &repo,
            "show",
            &snap,
            "--items",
            "--json",
        ])))
        .await
        .unwrap()
        .stdout,
    )
    .unwrap();
    let mut ids: Vec<String> = show["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, source.keys().cloned().collect::<Vec<_>>());
    let verify = tokio::task::spawn_blocking(blocking(owned(&[
        "verify",
        "--repo",
        &repo,
        "--read-data",
        "--json",
    ])))
    .await
    .unwrap();
    assert!(verify.status.success(), "{verify:?}");

    // A restore into alex through the same faults.
    proxy.reset_stats();
    let out = tokio::task::spawn_blocking(blocking(owned(&[
        "restore",
        &snap,
        "--repo",
        &repo,
        "--to",
        "alex@contoso.test",
        "--json",
    ])))
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "restore failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["imported"], 180, "{r:#}");
    assert_eq!(r["failed"].as_array().unwrap().len(), 0, "{r:#}");
    let stats = proxy.stats();
    assert!(stats.throttled > 0, "{stats:?}");
    let restored = items_of(&d, "alex@contoso.test").await;
    assert_eq!(restored.len(), 180);
    let mut per_folder = BTreeMap::<String, usize>::new();
    for f in restored.values() {
        *per_folder.entry(f.clone()).or_default() += 1;
    }
    let mut want = BTreeMap::<String, usize>::new();
    for f in source.values() {
        *want.entry(f.clone()).or_default() += 1;
    }
    assert_eq!(per_folder, want);

    // A wrong repository password fails clearly, not with a panic.
    let bad = run(
        &["snapshots", "--repo", &repo],
        &[("GRAPHBOX_REPO_PASSWORD", "wrong")],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("wrong password"), "{err}");
}
