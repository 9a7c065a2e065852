//! Helpers shared by the integration tests.
#![allow(dead_code)]

use backup::{FolderEntry, InitOptions, ItemEntry, KdfParams, Repository, Snapshot};
use bytes::Bytes;

pub const PASSWORD: &str = "correct horse battery staple";

/// Fast key derivation and small packs, so tests make many packs quickly.
pub fn opts() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        pack_size: 256 * 1024,
        compression_level: 3,
        format_version: backup::FORMAT_VERSION,
    }
}

/// [`opts`] for a repository in format version `v`.
pub fn opts_v(v: u32) -> InitOptions {
    InitOptions {
        format_version: v,
        ..opts()
    }
}

pub async fn init_dir(dir: &std::path::Path) -> Repository {
    Repository::init_with(dir.to_str().unwrap(), PASSWORD, opts())
        .await
        .unwrap()
}

/// Deterministic pseudo-random bytes (incompressible).
pub fn noise(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// Compressible text-like bytes.
pub fn text(seed: u64, len: usize) -> Bytes {
    let words = [
        "mailbox ",
        "export ",
        "graph ",
        "item ",
        "folder ",
        "subject: ",
        "Hello ",
        "\r\n",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut x = seed | 1;
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(words[(x >> 60) as usize % words.len()].as_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

pub fn folder(id: &str, parent: Option<&str>, name: &str) -> FolderEntry {
    FolderEntry {
        id: id.into(),
        parent_id: parent.map(Into::into),
        display_name: name.into(),
        folder_type: "IPF.Note".into(),
    }
}

pub fn item(
    id: &str,
    folder: &str,
    ck: &str,
    subject: &str,
    sender: &str,
    blob: backup::BlobId,
) -> ItemEntry {
    ItemEntry {
        id: id.into(),
        folder_id: folder.into(),
        change_key: ck.into(),
        item_type: "IPM.Note".into(),
        size: 100,
        created: Some(time::macros::datetime!(2026-01-10 10:00 UTC)),
        modified: Some(time::macros::datetime!(2026-01-11 10:00 UTC)),
        subject: Some(subject.into()),
        sender: Some(sender.into()),
        categories: vec![],
        blob,
    }
}

/// A snapshot of `mailbox` at `time` holding the given items in one folder tree.
pub fn snapshot(mailbox: &str, time: time::OffsetDateTime, items: Vec<ItemEntry>) -> Snapshot {
    let mut s = Snapshot::new(mailbox, format!("{mailbox}@contoso.com"));
    s.time = time;
    s.folders = vec![
        folder("root", None, "Top of Information Store"),
        folder("inbox", Some("root"), "Inbox"),
        folder("proj", Some("inbox"), "Projects"),
    ];
    s.items = items;
    s
}

/// Stores `data` (flushed: a pack and index file of its own) and saves a
/// snapshot of `mailbox` at `time` whose only item `id` refers to it.
pub async fn save_one_item(
    repo: &Repository,
    mailbox: &str,
    time: time::OffsetDateTime,
    id: &str,
    data: Bytes,
) -> backup::BlobId {
    let (blob, _) = repo.put_blob(data).await.unwrap();
    repo.flush().await.unwrap();
    repo.save_snapshot(snapshot(
        mailbox,
        time,
        vec![item(id, "inbox", "c", id, "x", blob)],
    ))
    .await
    .unwrap();
    blob
}
