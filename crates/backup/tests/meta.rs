//! Metadata extraction from FTS streams.

use backup::meta::extract;
use mapi::{Mailbox, MessageBuilder};

#[test]
fn extracts_class_subject_sender_categories_times_and_size() {
    let b = MessageBuilder::mail()
        .subject("Budget review")
        .from(Mailbox::new("Ann Lee", "ann@contoso.com"))
        .category("Red")
        .category("Finance")
        .created(mapi::FileTime(133_485_408_000_000_000))
        .modified(mapi::FileTime(133_485_408_000_000_000 + 36_000_000_000));
    let fts = b.to_fts_bytes();
    let m = extract(&fts).unwrap();
    assert_eq!(m.item_type, "IPM.Note");
    assert_eq!(m.subject.as_deref(), Some("Budget review"));
    let s = m.sender.unwrap();
    assert_eq!(s.name.as_deref(), Some("Ann Lee"));
    assert_eq!(s.address.as_deref(), Some("ann@contoso.com"));
    assert_eq!(s.display(), "Ann Lee <ann@contoso.com>");
    assert_eq!(m.categories, ["Red", "Finance"]);
    assert_eq!(
        m.created,
        Some(time::macros::datetime!(2024-01-01 00:00 UTC))
    );
    assert_eq!(
        m.modified,
        Some(time::macros::datetime!(2024-01-01 01:00 UTC))
    );
    assert!(m.size > 0);
    // Framed as exportItems returns it: same answer.
    assert_eq!(
        extract(&b.to_framed_bytes()).unwrap().subject.as_deref(),
        Some("Budget review")
    );
}

#[test]
fn extracts_every_demo_kind() {
    let mut classes = std::collections::HashSet::new();
    for item in mapi::demo::items(42, 60) {
        let fts = item.builder.to_fts_bytes();
        let m = extract(&fts).unwrap();
        assert_eq!(m.item_type, item.builder.message_class());
        classes.insert(m.item_type.clone());
    }
    assert!(classes.len() >= 3, "{classes:?}");
}

#[test]
fn rejects_what_is_not_an_item() {
    let err = extract(b"definitely not fts").unwrap_err();
    assert!(err.to_string().contains("not a valid FTS stream"), "{err}");
    assert!(extract(&[]).is_err());
}

#[test]
fn extract_of_a_shared_buffer_reads_the_same() {
    let b = MessageBuilder::mail()
        .subject("Shared")
        .from(Mailbox::new("Ann Lee", "ann@contoso.com"));
    for fts in [b.to_fts_bytes(), b.to_framed_bytes()] {
        let shared = bytes::Bytes::from(fts.clone());
        let from_slice = extract(&fts).unwrap();
        let from_bytes = backup::extract_bytes(&shared).unwrap();
        assert_eq!(from_bytes.subject.as_deref(), Some("Shared"));
        assert_eq!(from_bytes, from_slice);
    }
    assert!(backup::extract_bytes(&bytes::Bytes::new()).is_err());
}
