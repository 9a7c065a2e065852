//! Turning FTS bytes into item metadata: the message class, size, times and
//! categories the meta store keeps, extracted from the stream itself so list,
//! get and delta show an imported item at once; and the extended properties
//! `$expand` reads from an item's content. Used by the importer, the routes and
//! `graphbox admin seed`.

use store::{BlobRef, ExtProp, ExtValue, NewItem};
use time::OffsetDateTime;

/// The metadata of one item, extracted from its FTS.
pub fn metadata(content: &fts::MessageContent, fts_len: usize, blob: BlobRef) -> NewItem {
    let view = mapi::MessageView::new(content);
    let now = OffsetDateTime::now_utc();
    let created = view.creation_datetime().unwrap_or(now);
    let modified = view.last_modification_datetime().unwrap_or(created);
    NewItem {
        class: view
            .message_class()
            .unwrap_or_else(|| "IPM.Note".to_owned()),
        size: view.message_size().map(i64::from).unwrap_or(fts_len as i64),
        created,
        modified,
        categories: view.categories(),
        blob,
        inline: None,
        // Not indexed: `$expand` of extended properties reads the item's
        // content (the FTS is the source of truth, see `extended_properties`).
        // A per-row copy of every property multiplied the metadata of a
        // realistic item about fifteenfold and slowed every list and delta scan.
        ext_props: Vec::new(),
    }
}

/// Every message-level property of an item as Graph legacy extended
/// properties (what `$expand=singleValueExtendedProperties` /
/// `multiValueExtendedProperties` select from).
pub fn extended_properties(content: &fts::MessageContent) -> Vec<ExtProp> {
    let (single, multi) = mapi::extprop::extended_properties(content);
    single
        .into_iter()
        .map(|p| ExtProp {
            id: p.id,
            value: ExtValue::Single(p.value),
        })
        .chain(multi.into_iter().map(|p| ExtProp {
            id: p.id,
            value: ExtValue::Multi(p.value),
        }))
        .collect()
}
