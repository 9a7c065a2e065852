//! Turning FTS bytes into stored items: validate with the fts crate, extract
//! the metadata the meta store indexes (message class, size, times,
//! categories, extended properties), store the content blob, then the row.

use anyhow::Context;
use bytes::Bytes;
use store::{BlobRef, ExtProp, ExtValue, Folder, MailboxId, NewItem};
use time::OffsetDateTime;

use crate::config::Stores;

/// Extended-property values longer than this are not indexed for `$expand`
/// (bodies and attachment data are what exportItems is for).
pub const MAX_INDEXED_VALUE: usize = 16 * 1024;

/// The metadata of one item, extracted from its FTS.
pub fn metadata(content: &fts::MessageContent, fts_len: usize, blob: BlobRef) -> NewItem {
    let view = mapi::MessageView::new(content);
    let now = OffsetDateTime::now_utc();
    let created = view.creation_datetime().unwrap_or(now);
    let modified = view.last_modification_datetime().unwrap_or(created);
    let (single, multi) = mapi::extprop::extended_properties(content);
    let mut ext_props: Vec<ExtProp> = single
        .into_iter()
        .filter(|p| p.value.len() <= MAX_INDEXED_VALUE)
        .map(|p| ExtProp {
            id: p.id,
            value: ExtValue::Single(p.value),
        })
        .collect();
    ext_props.extend(
        multi
            .into_iter()
            .filter(|p| p.value.iter().map(String::len).sum::<usize>() <= MAX_INDEXED_VALUE)
            .map(|p| ExtProp {
                id: p.id,
                value: ExtValue::Multi(p.value),
            }),
    );
    NewItem {
        class: view.message_class().unwrap_or_else(|| "IPM.Note".to_owned()),
        size: view
            .message_size()
            .map(i64::from)
            .unwrap_or(fts_len as i64),
        created,
        modified,
        categories: view.categories(),
        blob,
        ext_props,
    }
}

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
