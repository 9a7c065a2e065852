//! Turning FTS bytes into stored items: validate with the fts crate, extract
//! the metadata the meta store indexes (message class, size, times,
//! categories, extended properties), store the content blob, then the row.

use anyhow::Context;
use bytes::Bytes;
use store::{Folder, MailboxId};

use crate::config::Stores;

pub use api::ingest::metadata;

/// The folder class a demo item kind belongs in.
fn kind_for_class(class: &str) -> mapi::demo::DemoKind {
    use mapi::demo::DemoKind;
    let c = class.to_ascii_lowercase();
    if c.starts_with("ipf.appointment") {
        DemoKind::Appointment
    } else if c.starts_with("ipf.contact") {
        DemoKind::Contact
    } else if c.starts_with("ipf.task") {
        DemoKind::Task
    } else if c.starts_with("ipf.stickynote") {
        DemoKind::Note
    } else {
        DemoKind::Mail
    }
}

/// Adds `n` generated items of the folder's kind, in batches (bounded memory).
pub async fn seed_folder(
    stores: &Stores,
    mbx: &MailboxId,
    folder: &Folder,
    n: u64,
    seed: u64,
) -> anyhow::Result<u64> {
    const BATCH: usize = 500;
    let mut items = mapi::demo::stream(
        seed,
        mapi::demo::DEFAULT_BASE,
        Some(kind_for_class(&folder.class)),
    );
    let mut done = 0u64;
    while done < n {
        let take = BATCH.min((n - done) as usize);
        let mut batch = Vec::with_capacity(take);
        for item in items.by_ref().take(take) {
            let root = fts::Root::MessageContent(item.builder.build());
            let bytes = Bytes::from(fts::write_frames(
                &fts::FrameHeader::default(),
                &fts::encode_fts(&root),
                fts::frame::DEFAULT_CHUNK,
            ));
            let blob = stores.blobs.put(bytes.clone()).await?;
            let fts::Root::MessageContent(content) = &root else {
                unreachable!("built as a messageContent root")
            };
            batch.push(metadata(content, bytes.len(), blob));
        }
        stores
            .meta
            .bulk_insert_items(mbx, &folder.id, Box::new(batch.into_iter()))
            .await
            .context("cannot store the seeded items")?;
        done += take as u64;
    }
    Ok(done)
}

/// Adds `n` item rows that all share the content of one generated item of the
/// folder's kind (stored once; its reference count becomes `n`). Each row gets
/// its own id, change key and creation time (one second apart), so listing,
/// ordering, filtering and delta behave as with distinct items.
pub async fn seed_folder_shared(
    stores: &Stores,
    mbx: &MailboxId,
    folder: &Folder,
    n: u64,
    seed: u64,
) -> anyhow::Result<u64> {
    let Some(item) = mapi::demo::stream(
        seed,
        mapi::demo::DEFAULT_BASE,
        Some(kind_for_class(&folder.class)),
    )
    .next() else {
        anyhow::bail!("the demo generator produced no item");
    };
    let root = fts::Root::MessageContent(item.builder.build());
    let bytes = Bytes::from(fts::write_frames(
        &fts::FrameHeader::default(),
        &fts::encode_fts(&root),
        fts::frame::DEFAULT_CHUNK,
    ));
    let blob = stores.blobs.put(bytes.clone()).await?;
    let fts::Root::MessageContent(content) = &root else {
        unreachable!("built as a messageContent root")
    };
    let template = metadata(content, bytes.len(), blob);
    let rows = (0..n).map(move |i| {
        let mut row = template.clone();
        row.created += time::Duration::seconds(i as i64);
        row.modified = row.created;
        row
    });
    stores
        .meta
        .bulk_insert_items(mbx, &folder.id, Box::new(rows))
        .await
        .context("cannot store the seeded items")
}
