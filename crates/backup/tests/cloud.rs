//! The repository on object stores: the S3 emulator (moto) and Azurite.
//!
//! The emulators come from the environment `scripts/services.sh start`
//! prints: `GRAPHBOX_TEST_S3_URL` (+ `AWS_*`) and `GRAPHBOX_TEST_AZURE_URL`
//! (+ `AZURE_*`). Like the store's cloud tests, these FAIL with instructions
//! when the variables are unset, never pass silently. Each test works under
//! its own random prefix of the shared bucket / container.

mod common;

use std::time::Duration;

use backup::{Error, LockKind, Repository, RetentionPolicy};
use common::*;
use time::macros::datetime;

fn fresh_url(var: &str) -> String {
    let base = match std::env::var(var) {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "{var} is not set: the object store repository tests need the emulators. Start them \
             with `eval \"$(scripts/services.sh start)\"` (stop with `scripts/services.sh stop`), \
             or run scripts/test.sh, which does that itself."
        ),
    };
    format!("{}/repo-{}", base.trim_end_matches('/'), uuid_like())
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{t:x}{:x}", std::process::id())
}

/// Everything a backup does, against one URL.
async fn exercise(url: &str) {
    let repo = Repository::init_with(url, PASSWORD, opts()).await.unwrap();
    assert!(matches!(
        Repository::init_with(url, PASSWORD, opts()).await,
        Err(Error::AlreadyExists { .. })
    ));
    // Prefixes isolate repositories sharing a bucket / container.
    let sibling = format!("{url}-sibling");
    Repository::init_with(&sibling, PASSWORD, opts())
        .await
        .unwrap();
    assert!(
        Repository::open(&sibling, PASSWORD)
            .await
            .unwrap()
            .list_snapshots()
            .await
            .unwrap()
            .is_empty()
    );
    let small = text(1, 3000);
    let large = noise(2, 3 << 20);
    let (a, _) = repo.put_blob(small.clone()).await.unwrap();
    let (b, _) = repo.put_blob(large.clone()).await.unwrap();
    let (_, again) = repo.put_blob(small.clone()).await.unwrap();
    assert!(!again);
    let s = snapshot(
        "m1",
        datetime!(2026-06-01 00:00 UTC),
        vec![
            item("1", "inbox", "c", "Hello", "x", a),
            item("2", "inbox", "c", "Big", "x", b),
        ],
    );
    let sid = repo.save_snapshot(s.clone()).await.unwrap();
    repo.put_state("checkpoint", b"42").await.unwrap();

    let reopened = Repository::open(url, PASSWORD).await.unwrap();
    assert_eq!(reopened.get_blob(&a).await.unwrap(), small);
    assert_eq!(reopened.get_blob(&b).await.unwrap(), large);
    assert_eq!(reopened.load_snapshot(&sid.0).await.unwrap().items, s.items);
    assert_eq!(
        reopened.get_state("checkpoint").await.unwrap().unwrap(),
        b"42"
    );
    assert!(matches!(
        Repository::open(url, "wrong").await,
        Err(Error::WrongPassword { .. })
    ));

    let held = repo
        .lock(LockKind::Exclusive, "backup", Duration::ZERO)
        .await
        .unwrap();
    let err = reopened
        .lock(LockKind::Exclusive, "prune", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    held.release().await.unwrap();
    // A guard dropped instead of released: its lock file goes once the
    // removal task finished, which a program waits for before it exits.
    let dropped = repo
        .lock(LockKind::Shared, "find", Duration::ZERO)
        .await
        .unwrap();
    drop(dropped);
    assert!(backup::lock::finish_releases(Duration::from_secs(30)).await);
    assert!(reopened.list_locks().await.unwrap().is_empty());

    // A second snapshot without the large item; keep-last 1 reclaims it.
    let mut s2 = s.clone();
    s2.time = datetime!(2026-06-02 00:00 UTC);
    s2.items.truncate(1);
    reopened.save_snapshot(s2).await.unwrap();
    let report = reopened
        .prune(
            &RetentionPolicy {
                keep_last: 1,
                repack_threshold: 0.0,
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap();
    assert_eq!(report.snapshots_removed.len(), 1);
    assert!(report.bytes_freed > 3 << 20, "{report:?}");
    let v = reopened.verify(true).await.unwrap();
    assert!(v.is_ok(), "{:?}", v.problems);
    assert!(!reopened.has_blob(&b));
    assert_eq!(reopened.get_blob(&a).await.unwrap(), small);
}

mod s3 {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repository_on_s3() {
        exercise(&fresh_url("GRAPHBOX_TEST_S3_URL")).await;
    }
}

mod azure {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repository_on_azure() {
        exercise(&fresh_url("GRAPHBOX_TEST_AZURE_URL")).await;
    }
}
