//! The blob store cases on the local-file and in-memory backends.

use store::BlobStore;
use store::testsuite::{blob_dedup, blob_large_stream, blob_missing};

fn file_store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = BlobStore::open(&url).unwrap();
    (dir, store)
}

#[tokio::test]
async fn file_dedup() {
    let (dir, b) = file_store();
    blob_dedup(&b).await;
    // Layout: blobs/ab/cd/<hash>, and no temporary files left behind.
    let r = b.put(bytes::Bytes::from_static(b"layout")).await.unwrap();
    let path = dir
        .path()
        .join("blobs")
        .join(&r.hash[0..2])
        .join(&r.hash[2..4])
        .join(&r.hash);
    assert_eq!(std::fs::read(path).unwrap(), b"layout");
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn file_large_stream() {
    let (dir, b) = file_store();
    blob_large_stream(&b).await;
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn file_missing() {
    let (_dir, b) = file_store();
    blob_missing(&b).await;
}

#[tokio::test]
async fn file_corruption_is_detected() {
    let (dir, b) = file_store();
    let r = b.put(bytes::Bytes::from_static(b"precious")).await.unwrap();
    let path = dir
        .path()
        .join("blobs")
        .join(&r.hash[0..2])
        .join(&r.hash[2..4])
        .join(&r.hash);
    std::fs::write(&path, b"tampered").unwrap();
    assert!(matches!(
        b.get(&r.hash).await,
        Err(store::StoreError::Backend(_))
    ));
    use futures::StreamExt;
    let items: Vec<_> = b.get_stream(&r.hash).await.unwrap().collect().await;
    assert!(
        items.last().unwrap().is_err(),
        "stream ends with the mismatch"
    );
}

#[tokio::test]
async fn file_stream_input_error_leaves_nothing() {
    let (dir, b) = file_store();
    let input = futures::stream::iter(vec![
        Ok(bytes::Bytes::from_static(b"part")),
        Err(std::io::Error::other("client went away")),
    ]);
    assert!(b.put_stream(input).await.is_err());
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn memory_dedup() {
    blob_dedup(&BlobStore::open("memory://").unwrap()).await;
}

#[tokio::test]
async fn memory_large_stream() {
    blob_large_stream(&BlobStore::memory()).await;
}

#[tokio::test]
async fn memory_missing() {
    blob_missing(&BlobStore::memory()).await;
}

#[test]
fn bad_urls_are_invalid() {
    for url in ["not a url", "file://relative-host/x", "ftp://example.com/x"] {
        assert!(
            matches!(BlobStore::open(url), Err(store::StoreError::Invalid(_))),
            "{url}"
        );
    }
}
