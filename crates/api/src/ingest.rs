//! Turning FTS bytes into item metadata: the message class, size, times,
//! categories and extended-property index the meta store keeps, extracted
//! from the stream itself so list, get, `$expand` and delta show an imported
//! item at once. Used by the importer and by `graphbox admin seed`.

use store::{BlobRef, ExtProp, ExtValue, NewItem};
use time::OffsetDateTime;

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
        class: view
            .message_class()
            .unwrap_or_else(|| "IPM.Note".to_owned()),
        size: view.message_size().map(i64::from).unwrap_or(fts_len as i64),
        created,
        modified,
        categories: view.categories(),
        blob,
        ext_props,
    }
}
