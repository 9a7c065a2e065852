//! Repository throughput: `put_blob` of realistic 10 KB and 1 MB items
//! (demo mailbox content) against a memcpy baseline, and `get_blob`
//! (restore). Single-threaded runtime: the numbers are per core.
//! `snapshot_10k`: saving and loading the item list of a 10,000-item
//! mailbox (what every incremental backup does once) in repository formats
//! 2 (binary) and 1 (JSON), against cloning the list in memory.
//!
//! `cargo bench -p backup --bench repo`

use std::hint::black_box;
use std::time::{Duration, Instant};

use backup::{BlobId, InitOptions, ItemEntry, KdfParams, Repository, Snapshot};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn opts() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    }
}

/// Demo items' FTS bytes; `target` picks items near 10 KB, or concatenates
/// items to reach 1 MB.
fn corpus(target: usize, count: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut stream =
        mapi::demo::stream(7, mapi::demo::DEFAULT_BASE, None).map(|i| i.builder.to_fts_bytes());
    while out.len() < count {
        if target <= 64 * 1024 {
            let b = stream.next().expect("endless");
            if b.len() >= target / 2 && b.len() <= target * 2 {
                out.push(Bytes::from(b));
            }
        } else {
            let mut big = Vec::with_capacity(target + 512 * 1024);
            while big.len() < target {
                big.extend_from_slice(&stream.next().expect("endless"));
            }
            big.truncate(target);
            out.push(Bytes::from(big));
        }
    }
    out
}

/// A unique variant of `item` (so it is not deduplicated).
fn unique(item: &Bytes, n: u64) -> Bytes {
    let mut v = Vec::with_capacity(item.len() + 8);
    v.extend_from_slice(&n.to_le_bytes());
    v.extend_from_slice(item);
    Bytes::from(v)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, size, count) in [("10KB", 10 * 1024, 256), ("1MB", 1024 * 1024, 8)] {
        let items = corpus(size, count);
        let avg = items.iter().map(|b| b.len()).sum::<usize>() / items.len();
        let mut g = c.benchmark_group(format!("put_{name}"));
        g.throughput(Throughput::Bytes(avg as u64));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(5));
        g.bench_function("memcpy", |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(unique(&items[i % items.len()], i as u64))
            })
        });
        g.bench_function("put_blob", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let repo = Repository::init_with("memory://", "bench", opts())
                        .await
                        .unwrap();
                    let inputs: Vec<Bytes> = (0..iters)
                        .map(|n| unique(&items[n as usize % items.len()], n))
                        .collect();
                    let start = Instant::now();
                    for data in inputs {
                        black_box(repo.put_blob(data).await.unwrap());
                    }
                    repo.flush().await.unwrap();
                    start.elapsed()
                })
            })
        });
        // Where put_blob's time goes: hashing, compressing, encrypting.
        let key = [7u8; 32];
        g.bench_function("part_blake3_keyed", |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(blake3::keyed_hash(&key, &items[i % items.len()]))
            })
        });
        let level = backup::DEFAULT_COMPRESSION_LEVEL;
        g.bench_function("part_zstd", |b| {
            let mut c = zstd::bulk::Compressor::new(level).unwrap();
            let mut i = 0;
            b.iter(|| {
                i += 1;
                black_box(c.compress(&items[i % items.len()]).unwrap())
            })
        });
        g.bench_function("part_xchacha20poly1305", |b| {
            use chacha20poly1305::aead::{AeadInPlace, KeyInit};
            let cipher = chacha20poly1305::XChaCha20Poly1305::new(&key.into());
            let mut buf = items[0].to_vec();
            b.iter(|| {
                black_box(
                    cipher
                        .encrypt_in_place_detached(&[1u8; 24].into(), b"", &mut buf)
                        .unwrap(),
                )
            })
        });
        // Restore: read back a stored set round-robin.
        let (repo, ids) = rt.block_on(async {
            let repo = Repository::init_with("memory://", "bench", opts())
                .await
                .unwrap();
            let mut ids = Vec::new();
            for (n, item) in items.iter().enumerate() {
                ids.push(repo.put_blob(unique(item, n as u64)).await.unwrap().0);
            }
            repo.flush().await.unwrap();
            (repo, ids)
        });
        g.bench_function("get_blob", |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                rt.block_on(async { black_box(repo.get_blob(&ids[i % ids.len()]).await.unwrap()) })
            })
        });
        g.finish();
        let stored = repo.stats();
        eprintln!(
            "{name}: {} items, {} raw bytes stored in {} bytes ({:.1}%)",
            stored.blobs_stored,
            stored.raw_bytes_stored,
            stored.stored_bytes,
            100.0 * stored.stored_bytes as f64 / stored.raw_bytes_stored.max(1) as f64
        );
    }
}

/// A realistic item list entry.
fn entry(n: usize) -> ItemEntry {
    let t = time::OffsetDateTime::from_unix_timestamp(1_700_000_000 + n as i64).unwrap();
    let mut blob = [0u8; 32];
    blob[..8].copy_from_slice(&(n as u64).to_le_bytes());
    ItemEntry {
        id: format!("AAMkAGI2TG93AAA{n:0>40}AAA="),
        folder_id: "AAMkAGI2TG93AAAuAAAAAAAaDDUIO3yHSJ2BO7l5KR6TAQBSB6c4AAA=".into(),
        change_key: format!("CQAAABYAAAB{n:0>20}"),
        item_type: "IPM.Note".into(),
        size: 20_000 + n as u64,
        created: Some(t),
        modified: Some(t),
        subject: Some(format!("Quarterly planning notes, part {n}")),
        sender: Some("Megan Bowen <megan@contoso.test>".into()),
        categories: vec!["Blue category".into()],
        blob: BlobId(blob),
    }
}

fn bench_snapshot(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let items: Vec<ItemEntry> = (0..10_000).map(entry).collect();
    let mut g = c.benchmark_group("snapshot_10k");
    g.throughput(Throughput::Elements(items.len() as u64));
    g.bench_function("clone_baseline", |b| b.iter(|| black_box(items.clone())));
    // Format 2 (binary item lists) and format 1 (JSON), in the same run.
    for version in [backup::FORMAT_VERSION, 1] {
        let repo = rt.block_on(async {
            let o = InitOptions {
                format_version: version,
                ..opts()
            };
            Repository::init_with("memory://", "bench", o)
                .await
                .unwrap()
        });
        // One item differs per save (as in an incremental run), so every
        // chunk is new content.
        let mut n = 0u64;
        g.bench_function(format!("save_snapshot/format{version}"), |b| {
            b.iter(|| {
                n += 1;
                let mut snap = Snapshot::new("MBX:bench", "bench");
                snap.items = items.clone();
                snap.items[0].size = n;
                rt.block_on(async { black_box(repo.save_snapshot(snap).await.unwrap()) })
            })
        });
        let head = rt.block_on(async {
            let mut snap = Snapshot::new("MBX:bench", "bench");
            snap.items = items.clone();
            repo.save_snapshot(snap).await.unwrap();
            repo.latest_snapshot_head("MBX:bench")
                .await
                .unwrap()
                .unwrap()
        });
        g.bench_function(format!("load_snapshot_items/format{version}"), |b| {
            b.iter(|| {
                rt.block_on(async { black_box(repo.load_snapshot_items(&head).await.unwrap()) })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_snapshot);
criterion_main!(benches);
