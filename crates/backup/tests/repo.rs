//! The repository's behaviour on a local directory and in memory.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use backup::{
    BlobId, Error, FindQuery, ItemEntry, ListChunk, ListPart, LockKind, LockRecord, Problem,
    Repository, RetentionPolicy, Snapshot, diff,
};
use bytes::Bytes;
use common::*;
use time::macros::datetime;

fn pack_path(dir: &std::path::Path, pack: &str) -> std::path::PathBuf {
    dir.join("data").join(&pack[..2]).join(pack)
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    files_under(dir)
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_round_trip_across_sizes_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init_dir(dir.path()).await;
    let sizes = [
        0usize,
        1,
        31,
        33,
        1000,
        64 * 1024,
        300 * 1024,
        1 << 20,
        20 << 20,
    ];
    let mut ids = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let data = if i % 2 == 0 {
            text(i as u64, n)
        } else {
            noise(i as u64, n)
        };
        let (id, new) = repo.put_blob(data.clone()).await.unwrap();
        assert!(new, "blob of {n} bytes is new");
        assert_eq!(id, repo.blob_id(&data));
        assert!(repo.has_blob(&id));
        // Readable before flush (from the open pack or the pack in flight).
        assert_eq!(
            repo.get_blob(&id).await.unwrap(),
            data,
            "{n} bytes before flush"
        );
        ids.push((id, data));
    }
    repo.flush().await.unwrap();
    for (id, data) in &ids {
        assert_eq!(&repo.get_blob(id).await.unwrap(), data);
    }
    let stats = repo.stats();
    assert_eq!(stats.blobs_stored, sizes.len() as u64);
    assert_eq!(stats.raw_bytes_stored, sizes.iter().sum::<usize>() as u64);
    assert!(
        stats.packs_written >= 2,
        "20 MB makes its own pack: {stats:?}"
    );
    drop(repo);

    let again = Repository::open(dir.path().to_str().unwrap(), PASSWORD)
        .await
        .unwrap();
    for (id, data) in &ids {
        assert!(again.has_blob(id));
        assert_eq!(&again.get_blob(id).await.unwrap(), data);
    }
    // Compressible text is stored compressed.
    let (_, text_id) = (0, ids[8].0);
    let (_, _, len) = again.blob_location(&text_id).unwrap();
    assert!(len < (20 << 20) / 4, "20 MB of text stored in {len} bytes");
    let report = again.verify(true).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.blobs_checked >= sizes.len());
    // Files on disk never contain the plaintext.
    let needle = &ids[8].1[..64];
    for f in files_under(dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(64).any(|w| w == needle),
            "{} holds plaintext",
            f.display()
        );
    }
}

#[tokio::test]
async fn dedup_stores_once() {
    let repo = Repository::init_with("memory://", PASSWORD, opts())
        .await
        .unwrap();
    let data = text(7, 50_000);
    let (a, new_a) = repo.put_blob(data.clone()).await.unwrap();
    let (b, new_b) = repo.put_blob(data.clone()).await.unwrap();
    assert_eq!(a, b);
    assert!(new_a);
    assert!(!new_b);
    repo.flush().await.unwrap();
    let (c, new_c) = repo.put_blob(data.clone()).await.unwrap();
    assert_eq!(c, a);
    assert!(!new_c, "deduplicated against the flushed index too");
    let s = repo.stats();
    assert_eq!(s.blobs_stored, 1);
    assert_eq!(s.blobs_deduplicated, 2);
    assert_eq!(s.raw_bytes_deduplicated, 100_000);
    assert_eq!(s.indexed_blobs, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_dedup_and_read_back() {
    let repo = Repository::init_with("memory://", PASSWORD, opts())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let mut new = 0;
            // Items 0..150 are shared by all tasks, the rest are the task's own.
            for i in 0..300u64 {
                let seed = if i < 150 { i } else { 1000 * (t + 1) + i };
                let (_, n) = repo
                    .put_blob(text(seed, 2000 + (seed as usize % 7000)))
                    .await
                    .unwrap();
                new += usize::from(n);
            }
            new
        }));
    }
    let mut total_new = 0;
    for t in tasks {
        total_new += t.await.unwrap();
    }
    assert_eq!(
        total_new,
        150 + 4 * 150,
        "each distinct blob is new exactly once"
    );
    repo.flush().await.unwrap();
    assert_eq!(repo.stats().indexed_blobs, 750);
    for i in 0..150u64 {
        let d = text(i, 2000 + (i as usize % 7000));
        assert_eq!(repo.get_blob(&repo.blob_id(&d)).await.unwrap(), d);
    }
    assert!(repo.verify(true).await.unwrap().is_ok());
}

#[tokio::test]
async fn wrong_password_and_missing_or_existing_repository() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_str().unwrap();
    match Repository::open(url, PASSWORD).await {
        Err(Error::NotARepository { .. }) => {}
        other => panic!("expected NotARepository, got {other:?}"),
    }
    init_dir(dir.path()).await;
    match Repository::init_with(url, PASSWORD, opts()).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let err = Repository::open(url, "not the password").await.unwrap_err();
    assert!(matches!(err, Error::WrongPassword { .. }), "{err:?}");
    assert!(err.to_string().contains("wrong password"), "{err}");
    assert!(Repository::open(url, PASSWORD).await.is_ok());
    let err = Repository::init_with("memory://", "", opts())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    // file:// URLs name the same directory.
    let file_url = format!("file://{url}");
    assert!(Repository::open(&file_url, PASSWORD).await.is_ok());
}

#[tokio::test]
async fn flipped_byte_names_the_blob_and_pack_and_others_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init_dir(dir.path()).await;
    let a = noise(1, 20_000);
    let b = noise(2, 20_000);
    let (ida, _) = repo.put_blob(a.clone()).await.unwrap();
    let (idb, _) = repo.put_blob(b.clone()).await.unwrap();
    repo.flush().await.unwrap();
    let (pack_a, off_a, _) = repo.blob_location(&ida).unwrap();
    let (pack_b, _, _) = repo.blob_location(&idb).unwrap();
    assert_eq!(pack_a, pack_b, "both blobs share one pack");
    let path = pack_path(dir.path(), &pack_a);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[off_a as usize + 100] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();

    let repo = Repository::open(dir.path().to_str().unwrap(), PASSWORD)
        .await
        .unwrap();
    let err = repo.get_blob(&ida).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(
        msg.contains(&ida.to_hex()) && msg.contains(&pack_a),
        "{msg}"
    );
    assert_eq!(repo.get_blob(&idb).await.unwrap(), b);

    let quick = repo.verify(false).await.unwrap();
    assert!(quick.is_ok(), "structure is intact: {:?}", quick.problems);
    let full = repo.verify(true).await.unwrap();
    assert!(
        full.problems.contains(&Problem::PackHash {
            pack: pack_a.clone(),
            actual: blake3::hash(&std::fs::read(&path).unwrap())
                .to_hex()
                .to_string()
        })
    );
    let corrupt: Vec<_> = full
        .problems
        .iter()
        .filter_map(|p| match p {
            Problem::CorruptBlob { blob, pack, .. } => Some((*blob, pack.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(corrupt, vec![(ida, pack_a.clone())], "{:?}", full.problems);
    assert!(
        full.problems
            .iter()
            .any(|p| p.to_string().contains(&ida.to_hex()))
    );
}

#[tokio::test]
async fn truncated_and_missing_packs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init_dir(dir.path()).await;
    let (ida, _) = repo.put_blob(noise(1, 200_000)).await.unwrap();
    repo.flush().await.unwrap();
    let (idb, _) = repo.put_blob(noise(2, 200_000)).await.unwrap();
    repo.flush().await.unwrap();
    let (pa, _, _) = repo.blob_location(&ida).unwrap();
    let (pb, _, _) = repo.blob_location(&idb).unwrap();
    assert_ne!(pa, pb);
    let path_a = pack_path(dir.path(), &pa);
    let len = std::fs::metadata(&path_a).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path_a)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    std::fs::remove_file(pack_path(dir.path(), &pb)).unwrap();

    let repo = Repository::open(dir.path().to_str().unwrap(), PASSWORD)
        .await
        .unwrap();
    let report = repo.verify(false).await.unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::TruncatedPack { pack, .. } if *pack == pa)),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems.contains(&Problem::MissingPack {
            pack: pb.clone(),
            blobs: 1
        }),
        "{:?}",
        report.problems
    );
    let err = repo.get_blob(&idb).await.unwrap_err().to_string();
    assert!(err.contains(&pb) && err.contains("missing"), "{err}");
    let err = repo.get_blob(&ida).await.unwrap_err().to_string();
    assert!(err.contains(&pa), "{err}");
}

#[tokio::test]
async fn crash_without_flush_leaves_a_valid_repository() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_str().unwrap().to_string();
    let repo = init_dir(dir.path()).await;
    let kept = text(1, 10_000);
    let (kept_id, _) = repo.put_blob(kept.clone()).await.unwrap();
    repo.flush().await.unwrap();
    let sid = repo
        .save_snapshot(snapshot(
            "m1",
            datetime!(2026-02-01 00:00 UTC),
            vec![item("i1", "inbox", "ck1", "s", "x", kept_id)],
        ))
        .await
        .unwrap();
    // Enough unflushed data to fill (and upload) packs that no index names.
    let mut lost = Vec::new();
    for i in 0..40 {
        let (id, _) = repo.put_blob(noise(100 + i, 30_000)).await.unwrap();
        lost.push(id);
    }
    repo.put_state("checkpoint", b"resume here").await.unwrap();
    drop(repo); // simulated kill: no flush

    let repo = Repository::open(&url, PASSWORD).await.unwrap();
    assert_eq!(repo.get_blob(&kept_id).await.unwrap(), kept);
    assert_eq!(
        repo.get_state("checkpoint").await.unwrap().unwrap(),
        b"resume here"
    );
    let report = repo.verify(true).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(
        !report.unindexed_packs.is_empty(),
        "uploaded packs without index are left over"
    );
    for id in &lost {
        assert!(!repo.has_blob(id), "unindexed blobs are not visible");
    }
    assert_eq!(repo.load_snapshot(&sid.0).await.unwrap().items.len(), 1);
    // Storing the lost blobs again works, and prune reclaims the leftovers.
    for i in 0..40 {
        let (_, new) = repo.put_blob(noise(100 + i, 30_000)).await.unwrap();
        assert!(new);
    }
    repo.flush().await.unwrap();
    let r = repo
        .prune(&RetentionPolicy::keep_last(10), false)
        .await
        .unwrap();
    assert_eq!(r.unindexed_packs_deleted, report.unindexed_packs.len());
    let after = repo.verify(true).await.unwrap();
    assert!(
        after.is_ok() && after.unindexed_packs.is_empty(),
        "{after:?}"
    );
}

#[tokio::test]
async fn state_area_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init_dir(dir.path()).await;
    assert_eq!(repo.get_state("restore-journal/x").await.unwrap(), None);
    repo.put_state("restore-journal/x", b"one").await.unwrap();
    repo.put_state("restore-journal/x", b"two").await.unwrap();
    repo.put_state("other", &[]).await.unwrap();
    let repo = Repository::open(dir.path().to_str().unwrap(), PASSWORD)
        .await
        .unwrap();
    assert_eq!(
        repo.get_state("restore-journal/x").await.unwrap().unwrap(),
        b"two"
    );
    assert_eq!(repo.get_state("other").await.unwrap().unwrap(), b"");
    repo.delete_state("restore-journal/x").await.unwrap();
    repo.delete_state("never-there").await.unwrap();
    assert_eq!(repo.get_state("restore-journal/x").await.unwrap(), None);
    // State names do not appear in file names.
    for f in files_under(dir.path()) {
        assert!(!f.to_string_lossy().contains("journal"));
    }
}

#[tokio::test]
async fn locks_conflict_wait_fail_and_stale_ones_are_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_str().unwrap().to_string();
    let first = init_dir(dir.path()).await;
    let second = Repository::open(&url, PASSWORD).await.unwrap();

    let held = first
        .lock(LockKind::Exclusive, "backup", Duration::ZERO)
        .await
        .unwrap();
    let start = Instant::now();
    let err = second
        .lock(LockKind::Exclusive, "prune", Duration::from_millis(700))
        .await
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(700), "it waited");
    match &err {
        Error::Locked { holder } => {
            assert!(holder.contains("'backup'"), "{holder}");
            assert!(holder.contains(&std::process::id().to_string()), "{holder}");
            assert!(holder.contains("exclusive"), "{holder}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        second
            .lock(LockKind::Shared, "find", Duration::ZERO)
            .await
            .is_err()
    );
    // The same Repository value can lock again (prune inside a locked run).
    let again = first
        .lock(LockKind::Exclusive, "prune", Duration::ZERO)
        .await
        .unwrap();
    drop(again);

    // Released while the other waits: the waiter gets it.
    let waiter = {
        let second = second.clone();
        tokio::spawn(async move {
            second
                .lock(LockKind::Exclusive, "prune", Duration::from_secs(10))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.release().await.unwrap();
    let got = waiter.await.unwrap().unwrap();
    drop(got);

    // Shared locks coexist.
    let s1 = first
        .lock(LockKind::Shared, "restore", Duration::ZERO)
        .await
        .unwrap();
    let s2 = second
        .lock(LockKind::Shared, "verify", Duration::ZERO)
        .await
        .unwrap();
    drop((s1, s2));
    assert!(
        first.list_locks().await.unwrap().is_empty(),
        "guards remove their files on drop"
    );

    // Stale by age.
    let mut old = LockRecord::new(LockKind::Exclusive, "backup", "someone-else");
    old.hostname = "elsewhere".into();
    old.refreshed -= time::Duration::minutes(31);
    first.plant_lock(&old).await.unwrap();
    // Stale because its process on this host is gone.
    let mut dead = LockRecord::new(LockKind::Exclusive, "backup", "another");
    dead.pid = 0x3fff_fff0;
    first.plant_lock(&dead).await.unwrap();
    // Fresh on another host: respected.
    let mut live = LockRecord::new(LockKind::Exclusive, "backup", "third");
    live.hostname = "elsewhere".into();
    let live_name = first.plant_lock(&live).await.unwrap();
    let err = second
        .lock(LockKind::Exclusive, "prune", Duration::ZERO)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("elsewhere"), "{err}");
    std::fs::remove_file(dir.path().join("locks").join(&live_name)).unwrap();
    let g = second
        .lock(LockKind::Exclusive, "prune", Duration::ZERO)
        .await
        .unwrap();
    let locks = second.list_locks().await.unwrap();
    assert_eq!(locks.len(), 1, "stale locks were removed: {locks:?}");
    assert_eq!(locks[0].1.as_ref().unwrap().purpose, "prune");
    drop(g);
}

#[tokio::test]
async fn snapshots_save_list_load_latest_and_chunked_items() {
    snapshots_in_format(backup::FORMAT_VERSION).await;
}

#[tokio::test]
async fn snapshots_in_format_1() {
    snapshots_in_format(1).await;
}

async fn snapshots_in_format(version: u32) {
    let repo = Repository::init_with("memory://", PASSWORD, opts_v(version))
        .await
        .unwrap();
    let (blob, _) = repo.put_blob(text(1, 5000)).await.unwrap();
    let many: Vec<_> = (0..10_000)
        .map(|i| {
            item(
                &format!("item-{i}"),
                "inbox",
                &format!("ck{i}"),
                &format!("Subject {i}"),
                "Ann <ann@contoso.com>",
                blob,
            )
        })
        .collect();
    let mut s1 = snapshot("mbx-1", datetime!(2026-03-01 08:00 UTC), many.clone());
    s1.folder_delta_link = Some("https://graph/delta?token=1".into());
    s1.item_delta_links
        .insert("inbox".into(), "https://graph/inbox/delta?t=1".into());
    s1.errors.push(backup::ItemError {
        item_id: Some("bad".into()),
        folder_id: Some("inbox".into()),
        code: "ErrorCorruptData".into(),
        message: "export failed".into(),
    });
    s1.tags = vec!["nightly".into()];
    let id1 = repo.save_snapshot(s1.clone()).await.unwrap();
    let mut s2 = snapshot("mbx-1", datetime!(2026-03-02 08:00 UTC), many[..5].to_vec());
    s2.parent = Some(id1.clone());
    let id2 = repo.save_snapshot(s2).await.unwrap();
    let id3 = repo
        .save_snapshot(snapshot("mbx-2", datetime!(2026-03-03 08:00 UTC), vec![]))
        .await
        .unwrap();

    let list = repo.list_snapshots().await.unwrap();
    assert_eq!(
        list.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![id1.clone(), id2.clone(), id3.clone()]
    );
    assert_eq!(list[0].item_count, 10_000);
    assert_eq!(list[0].total_size, 1_000_000);
    assert_eq!(list[0].error_count, 1);
    assert_eq!(list[1].parent, Some(id1.clone()));

    let loaded = repo.load_snapshot(&id1.0[..10]).await.unwrap();
    assert_eq!(loaded.id, Some(id1.clone()));
    let mut expect = s1.clone();
    expect.id = Some(id1.clone());
    assert_eq!(loaded, expect);
    assert_eq!(
        loaded.folder_path("proj"),
        "/Top of Information Store/Inbox/Projects"
    );

    let latest = repo.latest_snapshot("mbx-1").await.unwrap().unwrap();
    assert_eq!(latest.id, Some(id2.clone()));
    assert!(repo.latest_snapshot("nobody").await.unwrap().is_none());
    // The head alone: no items until they are asked for; they come back in
    // their order (10,000 items are three chunks, read concurrently).
    let head = repo.latest_snapshot_head("mbx-1").await.unwrap().unwrap();
    assert_eq!(head.snapshot().id, Some(id2.clone()));
    assert!(head.snapshot().items.is_empty());
    assert_eq!(head.item_count(), latest.items.len() as u64);
    assert_eq!(repo.load_snapshot_items(&head).await.unwrap(), latest.items);
    assert!(repo.latest_snapshot_head("nobody").await.unwrap().is_none());
    // All mailboxes' newest heads at once: the same answers.
    let heads = repo.latest_snapshot_heads().await.unwrap();
    let mut mailboxes: Vec<&String> = heads.keys().collect();
    mailboxes.sort();
    assert_eq!(mailboxes, ["mbx-1", "mbx-2"]);
    assert_eq!(heads["mbx-1"].snapshot().id, Some(id2.clone()));
    assert_eq!(heads["mbx-2"].snapshot().id, Some(id3.clone()));
    assert_eq!(heads["mbx-2"].item_count(), 0);

    assert!(matches!(
        repo.load_snapshot("zzzz").await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        repo.load_snapshot("0000000000").await,
        Err(Error::NotFound { .. })
    ));
    repo.forget_snapshot(&id3).await.unwrap();
    assert!(matches!(
        repo.forget_snapshot(&id3).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(repo.list_snapshots().await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_chunk_index_finds_items_and_unchanged_chunks_are_reused() {
    for version in [1, backup::FORMAT_VERSION] {
        chunk_index_in_format(version).await;
    }
}

async fn chunk_index_in_format(version: u32) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init_with(dir.path().to_str().unwrap(), PASSWORD, opts_v(version))
        .await
        .unwrap();
    let (blob, _) = repo.put_blob(text(1, 500)).await.unwrap();
    // 24,000 items in two folders, in item order.
    let mut all: Vec<ItemEntry> = (0..24_000)
        .map(|i| {
            let folder = if i < 10_000 { "a" } else { "b" };
            item(
                &format!("id-{i:05}"),
                folder,
                "ck1",
                &format!("S {i}"),
                "Ann",
                blob,
            )
        })
        .collect();
    all.sort_by(backup::chunks::item_order);
    let t = |d: u8| datetime!(2026-03-01 08:00 UTC) + time::Duration::days(d.into());
    repo.save_snapshot(snapshot("mbx", t(0), all.clone()))
        .await
        .unwrap();
    let head = repo.latest_snapshot_head("mbx").await.unwrap().unwrap();
    let index = head
        .chunk_index()
        .expect("a list in item order has a chunk index");
    // About 24,000 / 2048 chunks, none above the maximum.
    assert!((6..=30).contains(&index.len()), "{} chunks", index.len());
    let infos = index.chunks().iter().map(|c| &c.info);
    assert!(
        infos
            .clone()
            .all(|i| i.count as usize <= backup::ITEMS_PER_CHUNK)
    );
    assert_eq!(infos.clone().map(|i| i.count).sum::<u64>(), 24_000);
    assert_eq!(infos.map(|i| i.size).sum::<u64>(), 2_400_000);
    // Every item is in the chunk that covers its key.
    let every: Vec<&ListChunk> = index.chunks().iter().collect();
    let parts = repo.load_list_chunks(&head, &every).await.unwrap();
    for (k, part) in parts.iter().enumerate() {
        for e in part {
            assert_eq!(index.locate(&e.folder_id, &e.id), Some(k));
        }
    }
    assert_eq!(parts.concat(), all);

    // One item changes: its chunk is written again, the others are reused.
    let k = index.locate("b", "id-14000").unwrap();
    let mut list = Vec::new();
    let mut expect = Vec::new();
    for (j, c) in index.chunks().iter().enumerate() {
        if j == k {
            let mut mine = parts[j].clone();
            mine.iter_mut()
                .filter(|e| e.id == "id-14000")
                .for_each(|e| e.change_key = "ck2".into());
            expect.extend(mine.clone());
            list.push(ListPart::Items(mine));
        } else {
            expect.extend(parts[j].clone());
            list.push(ListPart::Chunk(c.clone()));
        }
    }
    let id2 = repo
        .save_snapshot_parts(snapshot("mbx", t(1), vec![]), list)
        .await
        .unwrap();
    assert_eq!(repo.load_snapshot(&id2.0).await.unwrap().items, expect);
    let head2 = repo.latest_snapshot_head("mbx").await.unwrap().unwrap();
    let blobs = |h: &backup::SnapshotHead| -> Vec<BlobId> {
        h.chunk_index()
            .unwrap()
            .chunks()
            .iter()
            .map(|c| c.blob)
            .collect()
    };
    let (old, new) = (blobs(&head), blobs(&head2));
    assert_eq!(new.len(), old.len());
    let differ: Vec<usize> = (0..old.len()).filter(|&j| old[j] != new[j]).collect();
    assert_eq!(differ, [k]);
    // Saved from its items alone, the same list makes the same chunks.
    repo.save_snapshot(snapshot("mbx", t(2), expect.clone()))
        .await
        .unwrap();
    let head3 = repo.latest_snapshot_head("mbx").await.unwrap().unwrap();
    assert_eq!(blobs(&head3), new);
    assert!(repo.verify(false).await.unwrap().problems.is_empty());

    // Refused: a chunk the repository does not have (nothing is saved) ...
    let mut ghost = index.chunks()[0].clone();
    ghost.blob = BlobId([0xab; 32]);
    let err = repo
        .save_snapshot_parts(snapshot("mbx", t(3), vec![]), vec![ListPart::Chunk(ghost)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(repo.list_snapshots().await.unwrap().len(), 3);
    // ... and chunks that do not hold what the index says, when loaded.
    let mut lying = index.chunks()[1].clone();
    lying.info.count += 1;
    let err = repo.load_list_chunks(&head, &[&lying]).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("chunk index"), "{err}");
    // A list saved out of order gets no index (and still loads as saved).
    let mut shuffled = all.clone();
    shuffled.swap(0, 20_000);
    let id4 = repo
        .save_snapshot(snapshot("other", t(4), shuffled.clone()))
        .await
        .unwrap();
    let head4 = repo.latest_snapshot_head("other").await.unwrap().unwrap();
    assert!(head4.chunk_index().is_none());
    assert_eq!(repo.load_snapshot(&id4.0).await.unwrap().items, shuffled);
    // A snapshot whose index lies is named by verify.
    let lie = repo
        .save_snapshot_parts(snapshot("liar", t(5), vec![]), vec![ListPart::Chunk(lying)])
        .await
        .unwrap();
    let problems = repo.verify(false).await.unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        matches!(&problems[0], Problem::UnreadableSnapshot { snapshot, detail }
            if *snapshot == lie && detail.contains("does not match its chunk index")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn prune_keep_last_frees_exactly_the_unreferenced_data() {
    prune_in_format(backup::FORMAT_VERSION).await;
}

#[tokio::test]
async fn prune_in_format_1() {
    prune_in_format(1).await;
}

async fn prune_in_format(version: u32) {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_str().unwrap().to_string();
    let repo = Repository::init_with(&url, PASSWORD, opts_v(version))
        .await
        .unwrap();
    let shared = noise(999, 40_000);
    let (shared_id, _) = repo.put_blob(shared.clone()).await.unwrap();
    let mut uniques = Vec::new();
    let mut ids = Vec::new();
    for day in 1..=4u8 {
        let data = noise(u64::from(day), 60_000);
        let (u, _) = repo.put_blob(data.clone()).await.unwrap();
        uniques.push((u, data));
        let t = datetime!(2026-04-01 12:00 UTC) + time::Duration::days(i64::from(day));
        let s = snapshot(
            "m1",
            t,
            vec![
                item("shared", "inbox", "ck", "Shared", "x", shared_id),
                item(&format!("u{day}"), "inbox", "ck", "Unique", "x", u),
            ],
        );
        ids.push(repo.save_snapshot(s).await.unwrap());
    }
    // Another mailbox is pruned separately: its only snapshot stays.
    let (other, _) = repo.put_blob(noise(5000, 10_000)).await.unwrap();
    let other_sid = repo
        .save_snapshot(snapshot(
            "m2",
            datetime!(2026-01-01 00:00 UTC),
            vec![item("o", "inbox", "ck", "O", "x", other)],
        ))
        .await
        .unwrap();

    let policy = RetentionPolicy {
        keep_last: 2,
        repack_threshold: 0.0,
        ..Default::default()
    };
    let before = dir_bytes(&dir.path().join("data"));
    let dry = repo.prune(&policy, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.snapshots_removed.len(), 2);
    assert_eq!(
        dir_bytes(&dir.path().join("data")),
        before,
        "dry run changes nothing"
    );
    assert_eq!(repo.list_snapshots().await.unwrap().len(), 5);

    let report = repo.prune(&policy, false).await.unwrap();
    let removed: HashSet<_> = report
        .snapshots_removed
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(removed, HashSet::from([ids[0].clone(), ids[1].clone()]));
    let kept: HashSet<_> = report.snapshots_kept.iter().cloned().collect();
    assert_eq!(
        kept,
        HashSet::from([ids[2].clone(), ids[3].clone(), other_sid.clone()])
    );
    assert_eq!(
        report.blobs_removed,
        2 + 2,
        "two unique data blobs and two item-list chunks"
    );
    let after = dir_bytes(&dir.path().join("data"));
    assert_eq!(before - after, report.bytes_freed);
    assert!(report.bytes_freed > 120_000, "{report:?}");

    let repo = Repository::open(&url, PASSWORD).await.unwrap();
    assert!(!repo.has_blob(&uniques[0].0));
    assert!(!repo.has_blob(&uniques[1].0));
    for (id, data) in &uniques[2..] {
        assert_eq!(&repo.get_blob(id).await.unwrap(), data);
    }
    assert_eq!(repo.get_blob(&shared_id).await.unwrap(), shared);
    for s in repo.list_snapshots().await.unwrap() {
        let snap = repo.load_snapshot(&s.id.0).await.unwrap();
        for i in &snap.items {
            repo.get_blob(&i.blob).await.unwrap();
        }
    }
    let v = repo.verify(true).await.unwrap();
    assert!(v.is_ok(), "{:?}", v.problems);
    // Every stored blob is referenced: total stored plaintext equals the kept data.
    assert_eq!(
        repo.stats().indexed_blobs,
        2 + 1 + 1 + 3,
        "2 unique + shared + other + 3 chunks"
    );

    assert!(matches!(
        repo.prune(&RetentionPolicy::default(), false).await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(repo.format_version(), version);
}

#[test]
fn retention_policy_follows_restic() {
    use backup::retention::apply;
    let mk = |id: &str, t: time::OffsetDateTime| backup::SnapshotSummary {
        id: backup::SnapshotId(id.into()),
        time: t,
        hostname: "h".into(),
        tags: vec![],
        mailbox_id: "m".into(),
        label: "m".into(),
        parent: None,
        item_count: 0,
        total_size: 0,
        error_count: 0,
        complete: true,
    };
    let snaps = vec![
        mk("a", datetime!(2026-01-05 10:00 UTC)),
        mk("b", datetime!(2026-01-05 18:00 UTC)), // same day as a, newer
        mk("c", datetime!(2026-01-06 09:00 UTC)),
        mk("d", datetime!(2026-01-20 09:00 UTC)),
        mk("e", datetime!(2026-02-03 09:00 UTC)),
    ];
    let kept = |p: RetentionPolicy| -> Vec<String> {
        let mut v: Vec<String> = apply(&p, &snaps)
            .into_iter()
            .filter(|d| !d.reasons.is_empty())
            .map(|d| d.id.0)
            .collect();
        v.sort();
        v
    };
    assert_eq!(kept(RetentionPolicy::keep_last(2)), ["d", "e"]);
    let daily = RetentionPolicy {
        keep_daily: 3,
        ..Default::default()
    };
    assert_eq!(kept(daily), ["c", "d", "e"]);
    let daily4 = RetentionPolicy {
        keep_daily: 4,
        ..Default::default()
    };
    assert_eq!(
        kept(daily4),
        ["b", "c", "d", "e"],
        "the newest of a day is kept"
    );
    let monthly = RetentionPolicy {
        keep_monthly: 2,
        ..Default::default()
    };
    assert_eq!(kept(monthly), ["d", "e"]);
    let weekly = RetentionPolicy {
        keep_weekly: 3,
        ..Default::default()
    };
    assert_eq!(
        kept(weekly),
        ["c", "d", "e"],
        "2026-01-05 and -06 share an ISO week"
    );
}

#[tokio::test]
async fn find_across_snapshots_and_diff() {
    find_in_format(backup::FORMAT_VERSION).await;
}

#[tokio::test]
async fn find_in_format_1() {
    find_in_format(1).await;
}

async fn find_in_format(version: u32) {
    let repo = Repository::init_with("memory://", PASSWORD, opts_v(version))
        .await
        .unwrap();
    let (b1, _) = repo.put_blob(text(1, 100)).await.unwrap();
    let (b2, _) = repo.put_blob(text(2, 100)).await.unwrap();
    let (b3, _) = repo.put_blob(text(3, 100)).await.unwrap();
    let mut a = snapshot(
        "m1",
        datetime!(2026-05-01 00:00 UTC),
        vec![
            item(
                "1",
                "inbox",
                "ck1",
                "Quarterly Report",
                "Ann Lee <ann@contoso.com>",
                b1,
            ),
            item("2", "proj", "ck2", "Lunch", "Bob <bob@fabrikam.com>", b2),
            item(
                "3",
                "inbox",
                "ck3",
                "Gone soon",
                "Bob <bob@fabrikam.com>",
                b3,
            ),
        ],
    );
    a.items[1].item_type = "IPM.Appointment".into();
    let ida = repo.save_snapshot(a.clone()).await.unwrap();
    let mut b = a.clone();
    b.time = datetime!(2026-05-02 00:00 UTC);
    b.items.remove(2); // 3 deleted
    b.items[0].change_key = "ck1b".into(); // 1 updated
    b.items[1].folder_id = "inbox".into(); // 2 moved
    b.items.push(item(
        "4",
        "proj",
        "ck4",
        "New REPORT draft",
        "Cy <cy@contoso.com>",
        b3,
    ));
    b.folders[2].display_name = "Projects 2026".into();
    b.folders
        .push(common::folder("new", Some("root"), "Archive"));
    b.folders.remove(0);
    let idb = repo.save_snapshot(b.clone()).await.unwrap();
    repo.save_snapshot(snapshot(
        "m2",
        datetime!(2026-05-03 00:00 UTC),
        vec![item("9", "inbox", "c", "report for m2", "z", b1)],
    ))
    .await
    .unwrap();

    let q = |f: fn(&mut FindQuery)| {
        let mut q = FindQuery::default();
        f(&mut q);
        q
    };
    let hits = repo
        .find(&q(|q| q.text = Some("report".into())))
        .await
        .unwrap();
    let got: Vec<_> = hits
        .iter()
        .map(|h| (h.snapshot.id.clone(), h.item.id.clone()))
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.contains(&(ida.clone(), "1".into())));
    assert!(got.contains(&(idb.clone(), "4".into())));
    let hits = repo
        .find(&q(|q| {
            q.text = Some("report".into());
            q.mailbox = Some("M1@contoso.com".into());
            q.latest_only = true;
        }))
        .await
        .unwrap();
    let ids: Vec<_> = hits.iter().map(|h| h.item.id.as_str()).collect();
    assert_eq!(ids, ["1", "4"]);
    assert_eq!(hits[1].folder_path, "/Inbox/Projects 2026");
    let hits = repo
        .find(&q(|q| q.sender = Some("FABRIKAM".into())))
        .await
        .unwrap();
    assert_eq!(hits.len(), 3);
    let hits = repo
        .find(&q(|q| q.item_type = Some("ipm.appointment".into())))
        .await
        .unwrap();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|h| h.item.id == "2"));
    let hits = repo
        .find(&q(|q| q.item_type = Some("IPM".into())))
        .await
        .unwrap();
    assert_eq!(hits.len(), 7, "a class prefix matches every IPM.* item");
    let hits = repo
        .find(&q(|q| {
            q.folder = Some("projects".into());
            q.snapshot = None;
        }))
        .await
        .unwrap();
    assert_eq!(
        hits.iter().map(|h| h.item.id.as_str()).collect::<Vec<_>>(),
        ["2"]
    );
    let none = repo
        .find(&q(|q| q.after = Some(datetime!(2026-01-12 00:00 UTC))))
        .await
        .unwrap();
    assert!(none.is_empty());
    let all = repo
        .find(&q(|q| {
            q.after = Some(datetime!(2026-01-11 00:00 UTC));
            q.before = Some(datetime!(2026-01-12 00:00 UTC));
        }))
        .await
        .unwrap();
    assert_eq!(all.len(), 7);

    let d = diff(&a, &b);
    assert_eq!(
        d.items_added
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        ["4"]
    );
    assert_eq!(
        d.items_removed
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        ["3"]
    );
    assert_eq!(d.items_changed.len(), 2);
    let c1 = d.items_changed.iter().find(|c| c.new.id == "1").unwrap();
    assert!(c1.change_key_changed && !c1.content_changed && !c1.moved);
    let c2 = d.items_changed.iter().find(|c| c.new.id == "2").unwrap();
    assert!(c2.moved && !c2.change_key_changed);
    assert_eq!(
        d.folders_added
            .iter()
            .map(|f| f.id.as_str())
            .collect::<Vec<_>>(),
        ["new"]
    );
    assert_eq!(
        d.folders_removed
            .iter()
            .map(|f| f.id.as_str())
            .collect::<Vec<_>>(),
        ["root"]
    );
    assert_eq!(d.folders_renamed.len(), 1);
    assert_eq!(d.folders_renamed[0].1.display_name, "Projects 2026");
    assert!(diff(&a, &a).is_empty());
    let mut content = a.clone();
    content.items[0].blob = b2;
    let d = diff(&a, &content);
    assert!(d.items_changed[0].content_changed);
}

#[tokio::test]
async fn reopening_an_object_store_repository() {
    let store: std::sync::Arc<dyn object_store::ObjectStore> =
        std::sync::Arc::new(object_store::memory::InMemory::new());
    let repo = Repository::init_object_store(store.clone(), PASSWORD, opts())
        .await
        .unwrap();
    let (id, _) = repo.put_blob(Bytes::from_static(b"hello")).await.unwrap();
    repo.flush().await.unwrap();
    let again = Repository::open_object_store(store.clone(), PASSWORD)
        .await
        .unwrap();
    assert_eq!(
        again.get_blob(&id).await.unwrap(),
        Bytes::from_static(b"hello")
    );
    assert!(matches!(
        Repository::open_object_store(store, "nope").await,
        Err(Error::WrongPassword { .. })
    ));
}

#[test]
fn snapshot_new_fills_host_and_time() {
    let s = Snapshot::new("m", "m@x");
    assert!(!s.hostname.is_empty());
    assert!(s.complete);
}

#[tokio::test]
async fn options_are_validated_and_compression_is_configurable() {
    let mut o = opts();
    o.pack_size = 1000;
    assert!(matches!(
        Repository::init_with("memory://", PASSWORD, o).await,
        Err(Error::Invalid {
            what: "pack size",
            ..
        })
    ));
    let mut o = opts();
    o.compression_level = 99;
    assert!(
        Repository::init_with("memory://", PASSWORD, o)
            .await
            .is_err()
    );

    let repo = Repository::init_with("memory://", PASSWORD, opts())
        .await
        .unwrap();
    assert!(repo.set_compression_level(23).is_err());
    let data = text(5, 100_000);
    let (a, _) = repo.put_blob(data.clone()).await.unwrap();
    repo.set_compression_level(0).unwrap();
    let other = text(6, 100_000);
    let (b, _) = repo.put_blob(other.clone()).await.unwrap();
    repo.flush().await.unwrap();
    let (_, _, len_a) = repo.blob_location(&a).unwrap();
    let (_, _, len_b) = repo.blob_location(&b).unwrap();
    assert!(len_a < 50_000, "level 3 compresses text: {len_a}");
    assert_eq!(
        len_b,
        100_000 + 41,
        "level 0 stores as is: nonce, flag, data, tag"
    );
    assert_eq!(repo.get_blob(&b).await.unwrap(), other);
    assert_eq!(repo.get_blob(&a).await.unwrap(), data);
}

#[tokio::test]
async fn a_damaged_index_file_is_named_and_blocks_prune() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init_dir(dir.path()).await;
    let (a, _) = repo.put_blob(text(1, 5000)).await.unwrap();
    repo.flush().await.unwrap();
    let (b, _) = repo.put_blob(text(2, 5000)).await.unwrap();
    repo.flush().await.unwrap();
    repo.save_snapshot(snapshot(
        "m",
        datetime!(2026-01-01 00:00 UTC),
        vec![item("1", "inbox", "c", "s", "x", a)],
    ))
    .await
    .unwrap();
    // Find the index file that lists only b (the second flush's).
    let index_dir = dir.path().join("index");
    let files = files_under(&index_dir);
    assert_eq!(files.len(), 3, "one index file per flush");
    let mut damaged = None;
    for f in files {
        let saved = std::fs::read(&f).unwrap();
        let mut bad = saved.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        std::fs::write(&f, &bad).unwrap();
        let r = Repository::open(dir.path().to_str().unwrap(), PASSWORD)
            .await
            .unwrap();
        if !r.has_blob(&b) && r.has_blob(&a) {
            damaged = Some(f.file_name().unwrap().to_string_lossy().into_owned());
            break;
        }
        std::fs::write(&f, &saved).unwrap();
    }
    let damaged = damaged.expect("an index file lists b alone");
    let repo = Repository::open(dir.path().to_str().unwrap(), PASSWORD)
        .await
        .unwrap();
    let report = repo.verify(false).await.unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::UnreadableIndex { file, .. } if *file == damaged)),
        "{:?}",
        report.problems
    );
    let err = repo
        .prune(&RetentionPolicy::keep_last(1), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&damaged), "{err}");
    assert_eq!(
        files_under(&dir.path().join("data")).len(),
        3,
        "nothing was deleted"
    );
}

/// A repository opened before another process pruned it (while this one
/// waited for the lock) must not trust the index it read: the packs it
/// names may be gone. Taking the lock reloads a changed index.
#[tokio::test]
async fn taking_the_lock_reloads_an_index_a_prune_changed() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_str().unwrap().to_string();
    let repo = init_dir(dir.path()).await;
    let old = save_one_item(
        &repo,
        "m",
        datetime!(2026-01-01 00:00 UTC),
        "1",
        noise(1, 50_000),
    )
    .await;
    let new = save_one_item(
        &repo,
        "m",
        datetime!(2026-01-02 00:00 UTC),
        "2",
        noise(2, 50_000),
    )
    .await;

    // Opened (index read) before the prune; locks after it.
    let waiting = Repository::open(&url, PASSWORD).await.unwrap();
    assert!(waiting.has_blob(&old) && waiting.has_blob(&new));
    let report = repo
        .prune(&RetentionPolicy::keep_last(1), false)
        .await
        .unwrap();
    assert_eq!(report.snapshots_removed.len(), 1, "{report:?}");
    assert!(!repo.has_blob(&old));

    let _lock = waiting
        .lock(LockKind::Exclusive, "test", std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(
        !waiting.has_blob(&old),
        "the pruned blob must not look stored to a run that locked after the prune"
    );
    assert!(waiting.has_blob(&new));
    assert_eq!(waiting.get_blob(&new).await.unwrap(), noise(2, 50_000));
    // Its snapshot files were read at open too: the pruned one is not
    // listed any more, and one it forgets itself is gone for it as well.
    let listed = waiting.list_snapshots().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].mailbox_id, "m");
    let head = waiting.latest_snapshot_head("m").await.unwrap().unwrap();
    assert_eq!(head.item_count(), 1);
    waiting.forget_snapshot(&listed[0].id).await.unwrap();
    assert!(matches!(
        waiting.load_snapshot(&listed[0].id.0).await,
        Err(Error::NotFound { .. })
    ));
    assert!(waiting.list_snapshots().await.unwrap().is_empty());
}
