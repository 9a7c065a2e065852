//! The backup client's commands leave no lock file behind in an object-store
//! repository, whether they succeed or fail.
//!
//! On an object store the lock file of a dropped lock guard is removed by a
//! task on the runtime; a command that returned before that task ran used
//! to exit with the lock file still there, and a command from another host
//! then waited for it to go stale (30 minutes). Needs the emulators
//! (`GRAPHBOX_TEST_S3_URL`, `GRAPHBOX_TEST_AZURE_URL` from
//! `scripts/services.sh start`); FAILS with instructions when they are unset.

use std::process::Output;

use backup::Repository;

const BIN: &str = env!("CARGO_BIN_EXE_graphbox");

const PASSWORD: &str = "lock test password";

fn fresh_url(var: &str) -> String {
    let base = match std::env::var(var) {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "{var} is not set: these tests need the object store emulators. Start them with \
             `eval \"$(scripts/services.sh start)\"` (stop with `scripts/services.sh stop`), or \
             run scripts/test.sh, which does that itself."
        ),
    };
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}/locks-cli-{t:x}{:x}",
        base.trim_end_matches('/'),
        std::process::id()
    )
}

fn graphbox(args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(args)
        .env("GRAPHBOX_REPO_PASSWORD", PASSWORD)
        .env_remove("GRAPHBOX_CONFIG")
        .output()
        .expect("graphbox runs")
}

async fn locks(url: &str) -> Vec<String> {
    let repo = Repository::open(url, PASSWORD).await.unwrap();
    repo.list_locks()
        .await
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

async fn no_lock_left_behind(var: &str) {
    let url = fresh_url(var);
    let init = graphbox(&["init", "--repo", &url]);
    assert!(init.status.success(), "{init:?}");
    let out = tempfile::tempdir().unwrap();
    let out = out.path().to_str().unwrap();
    let commands: [(&[&str], bool); 5] = [
        (&["snapshots", "--repo", &url], true),
        (&["verify", "--repo", &url], true),
        (&["find", "--repo", &url, "--subject", "anything"], true),
        (&["prune", "--repo", &url, "--keep-last", "1"], true),
        // Fails after taking its lock: no such snapshot.
        (
            &["restore", "ffffffff", "--repo", &url, "--to-file", out],
            false,
        ),
    ];
    for (args, succeeds) in commands {
        let run = graphbox(args);
        assert_eq!(run.status.success(), succeeds, "{args:?}: {run:?}");
        let left = locks(&url).await;
        assert!(left.is_empty(), "{args:?} left lock files {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_leave_no_lock_on_s3() {
    no_lock_left_behind("GRAPHBOX_TEST_S3_URL").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_leave_no_lock_on_azure() {
    no_lock_left_behind("GRAPHBOX_TEST_AZURE_URL").await;
}
