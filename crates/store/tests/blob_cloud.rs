//! The blob store cases on object stores: an S3 emulator (feature `s3`) and
//! the Azurite Azure Blob emulator (feature `azure`).
//!
//! The emulators come from the environment `scripts/services.sh start`
//! prints: `GRAPHBOX_TEST_S3_URL` (+ `AWS_*`) and `GRAPHBOX_TEST_AZURE_URL`
//! (+ `AZURE_*`, `AZURITE_BLOB_STORAGE_URL`). Like the PostgreSQL tests, these
//! FAIL with instructions when the variables are unset, never pass silently;
//! `scripts/test.sh` and `.ci/run` start the emulators when they are unset.
//! Each test works under its own random prefix of the shared bucket.

use store::BlobStore;
use store::testsuite::{blob_dedup, blob_large_stream, blob_missing};

#[allow(dead_code)]
fn base_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "{var} is not set: the object store blob tests need the emulators. Start them with \
             `eval \"$(scripts/services.sh start)\"` (stop with `scripts/services.sh stop`), or \
             run scripts/test.sh, which does that itself."
        ),
    }
}

/// `<base>/<random prefix>`.
#[allow(dead_code)]
fn fresh_url(var: &str) -> String {
    let base = base_url(var);
    format!(
        "{}/t{}",
        base.trim_end_matches('/'),
        uuid::Uuid::new_v4().simple()
    )
}

/// The same URL with another bucket/container name.
#[allow(dead_code)]
fn missing_container_url(var: &str) -> String {
    let mut u = url::Url::parse(&base_url(var)).unwrap();
    u.set_host(Some(&format!(
        "graphbox-missing-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )))
    .unwrap();
    u.to_string()
}

#[cfg(feature = "s3")]
mod s3 {
    use super::*;

    const VAR: &str = "GRAPHBOX_TEST_S3_URL";

    #[tokio::test]
    async fn dedup() {
        blob_dedup(&BlobStore::connect(&fresh_url(VAR)).await.unwrap()).await;
    }

    #[tokio::test]
    async fn large_stream_uses_multipart() {
        blob_large_stream(&BlobStore::connect(&fresh_url(VAR)).await.unwrap()).await;
    }

    #[tokio::test]
    async fn large_put_round_trips() {
        let b = BlobStore::connect(&fresh_url(VAR)).await.unwrap();
        // Larger than one upload part: goes up as a multipart upload.
        let data: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let r = b.put(bytes::Bytes::from(data.clone())).await.unwrap();
        assert_eq!(r.size, data.len() as u64);
        assert_eq!(b.get(&r.hash).await.unwrap().as_ref(), &data[..]);
    }

    #[tokio::test]
    async fn missing() {
        blob_missing(&BlobStore::connect(&fresh_url(VAR)).await.unwrap()).await;
    }

    #[tokio::test]
    async fn missing_bucket_fails_at_connect() {
        let url = missing_container_url(VAR);
        let e = BlobStore::connect(&url).await.unwrap_err();
        assert!(e.to_string().contains("not usable"), "{e}");
    }
}

#[cfg(feature = "azure")]
mod azure {
    use super::*;

    const VAR: &str = "GRAPHBOX_TEST_AZURE_URL";

    #[tokio::test]
    async fn dedup() {
        blob_dedup(&BlobStore::connect(&fresh_url(VAR)).await.unwrap()).await;
    }

    #[tokio::test]
    async fn large_stream_uses_multipart() {
        blob_large_stream(&BlobStore::connect(&fresh_url(VAR)).await.unwrap()).await;
    }

    #[tokio::test]
    async fn missing() {
        blob_missing(&BlobStore::connect(&fresh_url(VAR)).await.unwrap()).await;
    }

    #[tokio::test]
    async fn missing_container_fails_at_connect() {
        let url = missing_container_url(VAR);
        let e = BlobStore::connect(&url).await.unwrap_err();
        assert!(e.to_string().contains("not usable"), "{e}");
    }
}

#[tokio::test]
async fn unknown_scheme_and_unwritable_directory_fail_at_connect() {
    let e = BlobStore::connect("gopher://x/y").await.unwrap_err();
    assert!(e.to_string().contains("not usable"), "{e}");
    let e = BlobStore::connect("file://relative").await.unwrap_err();
    assert!(matches!(e, store::StoreError::Invalid(_)), "{e}");
}
