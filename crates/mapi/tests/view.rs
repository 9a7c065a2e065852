//! The typed view over hand-built ASTs: string forms, named lookup by
//! (GUID, name) whatever the local id, recipients, attachments, nesting.

use bytes::Bytes;
use fts::value::build;
use fts::{Attachment, MessageContent, NamedProp, Prop, PropData, PropName, Recipient};
use mapi::named::{self, PS_INTERNET_HEADERS};
use mapi::tags::{id, tag};
use mapi::view::{Importance, RecipientKind, Sensitivity};
use mapi::{FileTime, MessageView};

fn string8(pid: u16, bytes: &[u8]) -> Prop {
    let mut v = bytes.to_vec();
    v.push(0);
    Prop::single(((pid as u32) << 16) | 0x001E, None, v)
}

fn keywords(local_id: u16, items: &[&str], plain: bool) -> Prop {
    let n = Some(named::KEYWORDS.to_named_prop());
    if plain {
        build::unicodes(local_id, n, items)
    } else {
        build::strings(local_id, n, items)
    }
}

fn sample(local_base: u16) -> MessageContent {
    let t = FileTime::from_unix(1_704_067_200);
    let mut embedded = MessageContent {
        props: vec![
            build::string(id::MESSAGE_CLASS, None, "IPM.Note"),
            build::unicode(id::SUBJECT, None, "inner"),
        ],
        ..Default::default()
    };
    embedded.attachments.push(Attachment {
        props: vec![
            build::i32(id::ATTACH_NUMBER, None, 0),
            build::i32(id::ATTACH_METHOD, None, 5),
        ],
        embedded: Some(Box::new(MessageContent {
            props: vec![build::string(id::SUBJECT, None, "innermost")],
            ..Default::default()
        })),
    });
    MessageContent {
        props: vec![
            build::i32(id::IMPORTANCE, None, 2),
            build::string(id::MESSAGE_CLASS, None, "IPM.Note"),
            build::i32(id::SENSITIVITY, None, 3),
            build::unicode(id::SUBJECT, None, "Plain form"),
            build::time(id::CLIENT_SUBMIT_TIME, None, t.0),
            build::string(id::SENT_REPRESENTING_NAME, None, "Alice"),
            build::string(id::SENT_REPRESENTING_ADDRESS_TYPE, None, "EX"),
            build::string(id::SENT_REPRESENTING_EMAIL_ADDRESS, None, "/O=ORG/CN=ALICE"),
            build::string(id::SENDER_NAME, None, "Alice"),
            build::string(id::SENDER_ADDRESS_TYPE, None, "SMTP"),
            build::string(id::SENDER_EMAIL_ADDRESS, None, "alice@contoso.com"),
            build::time(id::MESSAGE_DELIVERY_TIME, None, t.0 + 10_000_000),
            build::i32(id::MESSAGE_FLAGS, None, 0x11),
            build::i32(id::MESSAGE_SIZE, None, 4242),
            build::bool(id::HAS_ATTACHMENTS, None, true),
            build::string(id::BODY, None, "Hello body"),
            build::binary(id::HTML, None, b"<p>caf\xe9</p>".to_vec()),
            build::string(id::INTERNET_MESSAGE_ID, None, "<id@x>"),
            build::time(id::CREATION_TIME, None, t.0 - 1),
            build::time(id::LAST_MODIFICATION_TIME, None, t.0 + 1),
            build::i32(id::INTERNET_CODEPAGE, None, 1252),
            build::string(
                id::SENT_REPRESENTING_SMTP_ADDRESS,
                None,
                "alice@contoso.com",
            ),
            // A named property whose local id collides with nothing in particular.
            build::string(
                local_base,
                Some(named::internet_header("x-custom")),
                "header value",
            ),
            // A decoy: a different set with the name "Keywords" must not match.
            build::strings(
                local_base + 1,
                Some(NamedProp {
                    guid: named::PSETID_COMMON,
                    name: PropName::Name("Keywords".encode_utf16().collect()),
                }),
                &["decoy"],
            ),
            keywords(local_base + 2, &["Red", "Blue"], false),
            build::time(
                local_base + 3,
                Some(named::APPOINTMENT_START_WHOLE.to_named_prop()),
                t.0,
            ),
        ],
        recip_delprop: None,
        recipients: vec![
            Recipient {
                props: vec![
                    build::i32(id::ROWID, None, 0),
                    build::i32(id::RECIPIENT_TYPE, None, 1),
                    build::string(id::DISPLAY_NAME, None, "Bob"),
                    build::string(id::ADDRESS_TYPE, None, "EX"),
                    build::string(id::EMAIL_ADDRESS, None, "/O=ORG/CN=BOB"),
                    build::string(id::SMTP_ADDRESS, None, "bob@contoso.com"),
                ],
            },
            Recipient {
                props: vec![
                    build::i32(id::RECIPIENT_TYPE, None, 2),
                    string8(id::DISPLAY_NAME, b"Ren\xe9"),
                    string8(id::ADDRESS_TYPE, b"SMTP"),
                    string8(id::EMAIL_ADDRESS, b"rene@x.org"),
                ],
            },
            Recipient {
                props: vec![
                    build::i32(id::RECIPIENT_TYPE, None, 3 | 0x1000_0000),
                    build::unicode(id::DISPLAY_NAME, None, "Hidden"),
                    build::unicode(id::ADDRESS_TYPE, None, "EX"),
                    build::unicode(id::EMAIL_ADDRESS, None, "/O=ORG/CN=HIDDEN"),
                ],
            },
        ],
        attach_delprop: None,
        attachments: vec![
            Attachment {
                props: vec![
                    build::i32(id::ATTACH_NUMBER, None, 0),
                    build::i32(id::ATTACH_SIZE, None, 99),
                    build::binary(id::ATTACH_DATA_BINARY, None, b"ABC".to_vec()),
                    build::string(id::ATTACH_EXTENSION, None, ".txt"),
                    build::string(id::ATTACH_FILENAME, None, "a.txt"),
                    build::i32(id::ATTACH_METHOD, None, 1),
                    build::string(id::ATTACH_LONG_FILENAME, None, "a long name.txt"),
                    build::string(id::ATTACH_MIME_TAG, None, "text/plain"),
                ],
                embedded: None,
            },
            Attachment {
                props: vec![
                    build::i32(id::ATTACH_NUMBER, None, 1),
                    build::string(id::ATTACH_CONTENT_ID, None, "img1"),
                    build::i32(id::ATTACH_FLAGS, None, 4),
                ],
                embedded: None,
            },
            Attachment {
                props: vec![
                    build::i32(id::ATTACH_NUMBER, None, 2),
                    build::bool(id::ATTACHMENT_HIDDEN, None, true),
                ],
                embedded: None,
            },
            Attachment {
                props: vec![
                    build::i32(id::ATTACH_NUMBER, None, 3),
                    build::i32(id::ATTACH_METHOD, None, 5),
                ],
                embedded: Some(Box::new(embedded)),
            },
        ],
    }
}

#[test]
fn reads_every_field() {
    let m = sample(0x8000);
    let v = MessageView::new(&m);
    let t = FileTime::from_unix(1_704_067_200);
    assert_eq!(v.message_class().as_deref(), Some("IPM.Note"));
    assert_eq!(v.subject().as_deref(), Some("Plain form"));
    assert_eq!(v.body_text().as_deref(), Some("Hello body"));
    // PidTagHtml decoded with PidTagInternetCodepage 1252.
    assert_eq!(v.html().as_deref(), Some("<p>café</p>"));
    assert_eq!(v.importance(), Some(Importance::High));
    assert_eq!(v.sensitivity(), Some(Sensitivity::Confidential));
    assert_eq!(v.client_submit_time(), Some(t));
    assert_eq!(
        v.client_submit_datetime().unwrap().unix_timestamp(),
        1_704_067_200
    );
    assert_eq!(v.delivery_time(), Some(FileTime(t.0 + 10_000_000)));
    assert_eq!(v.creation_time(), Some(FileTime(t.0 - 1)));
    assert_eq!(v.last_modification_time(), Some(FileTime(t.0 + 1)));
    assert_eq!(v.message_size(), Some(4242));
    assert_eq!(v.message_flags(), Some(0x11));
    assert!(v.is_read());
    assert!(v.has_attachments());
    assert_eq!(v.internet_message_id().as_deref(), Some("<id@x>"));
    assert_eq!(v.categories(), vec!["Red".to_string(), "Blue".to_string()]);
    assert_eq!(v.appointment_start(), Some(t));
    assert_eq!(
        v.internet_header("X-Custom").as_deref(),
        Some("header value")
    );

    let from = v.sent_representing().unwrap();
    assert_eq!(from.name.as_deref(), Some("Alice"));
    assert_eq!(from.address_type.as_deref(), Some("EX"));
    assert_eq!(from.smtp(), Some("alice@contoso.com"));
    let sender = v.sender().unwrap();
    assert_eq!(sender.smtp_address, None);
    assert_eq!(sender.smtp(), Some("alice@contoso.com"));

    let r = v.recipients();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].kind(), Some(RecipientKind::To));
    assert_eq!(r[0].row_id(), Some(0));
    assert_eq!(r[0].display_name().as_deref(), Some("Bob"));
    assert_eq!(r[0].email_address().as_deref(), Some("/O=ORG/CN=BOB"));
    // EX recipient: the SMTP address comes from PidTagSmtpAddress.
    assert_eq!(r[0].smtp_address().as_deref(), Some("bob@contoso.com"));
    assert_eq!(r[1].kind(), Some(RecipientKind::Cc));
    // PtypString8 decoded in the message code page (1252 here).
    assert_eq!(r[1].display_name().as_deref(), Some("René"));
    assert_eq!(r[1].smtp_address().as_deref(), Some("rene@x.org"));
    assert_eq!(r[2].kind(), Some(RecipientKind::Bcc));
    // EX without PidTagSmtpAddress has no SMTP address.
    assert_eq!(r[2].smtp_address(), None);
    assert_eq!(v.recipients_of(RecipientKind::Cc).len(), 1);

    let a = v.attachments();
    assert_eq!(a.len(), 4);
    assert_eq!(a[0].number(), Some(0));
    assert_eq!(a[0].method(), Some(1));
    assert_eq!(a[0].size(), Some(99));
    assert_eq!(a[0].data().map(|b| &b[..]), Some(&b"ABC"[..]));
    assert_eq!(a[0].filename().as_deref(), Some("a.txt"));
    assert_eq!(a[0].long_filename().as_deref(), Some("a long name.txt"));
    assert_eq!(a[0].best_name().as_deref(), Some("a long name.txt"));
    assert_eq!(a[0].extension().as_deref(), Some(".txt"));
    assert_eq!(a[0].mime_tag().as_deref(), Some("text/plain"));
    assert!(!a[0].is_inline());
    assert!(a[0].embedded().is_none());
    assert!(a[1].is_inline());
    assert_eq!(a[1].content_id().as_deref(), Some("img1"));
    assert!(a[2].is_inline());
    let inner = a[3].embedded().unwrap();
    assert_eq!(inner.subject().as_deref(), Some("inner"));
    let innermost = inner.attachments()[0].embedded().unwrap();
    assert_eq!(innermost.subject().as_deref(), Some("innermost"));
}

#[test]
fn named_lookup_ignores_the_local_id() {
    for base in [0x8000u16, 0x8123, 0xF000] {
        let m = sample(base);
        let v = MessageView::new(&m);
        assert_eq!(v.categories(), vec!["Red", "Blue"], "local base {base:#x}");
        assert!(v.appointment_start().is_some());
    }
    // A named property never answers a tagged lookup, even at a low id.
    let m = MessageContent {
        props: vec![build::string(
            id::SUBJECT,
            Some(named::LOCATION.to_named_prop()),
            "not a subject",
        )],
        ..Default::default()
    };
    let v = MessageView::new(&m);
    assert_eq!(v.subject(), None);
    assert_eq!(v.location().as_deref(), Some("not a subject"));
}

#[test]
fn all_string_forms_read_the_same() {
    for (ty, bytes) in [
        (0x001Fu16, build::utf16z("Grüße")),
        (0x84B0, build::utf16z("Grüße")),
        (0x001E, b"Gr\xfc\xdfe\0".to_vec()),
    ] {
        let m = MessageContent {
            props: vec![Prop::single(
                ((id::SUBJECT as u32) << 16) | ty as u32,
                None,
                bytes,
            )],
            ..Default::default()
        };
        assert_eq!(
            MessageView::new(&m).subject().as_deref(),
            Some("Grüße"),
            "type {ty:#06x}"
        );
    }
    // Keywords in 0x101F and 0x94B0.
    for plain in [true, false] {
        let m = MessageContent {
            props: vec![keywords(0x8040, &["A", "B"], plain)],
            ..Default::default()
        };
        assert_eq!(MessageView::new(&m).categories(), vec!["A", "B"]);
    }
    // A body in PidTagBodyHtml string form.
    let m = MessageContent {
        props: vec![build::string(id::HTML, None, "<b>x</b>")],
        ..Default::default()
    };
    assert_eq!(MessageView::new(&m).html().as_deref(), Some("<b>x</b>"));
    // HTML without a code page defaults to UTF-8.
    let m = MessageContent {
        props: vec![build::binary(
            id::HTML,
            None,
            "<b>é</b>".as_bytes().to_vec(),
        )],
        ..Default::default()
    };
    assert_eq!(MessageView::new(&m).html().as_deref(), Some("<b>é</b>"));
    assert_eq!(tag::HTML, 0x1013_0102);
}

#[test]
fn tolerates_missing_and_odd_values() {
    let m = MessageContent {
        props: vec![
            // Wrong size for PtypInteger32.
            Prop::single(tag::IMPORTANCE, None, Bytes::from_static(b"\x01")),
            // A string without its terminator.
            Prop::single(
                ((id::SUBJECT as u32) << 16) | 0x84B0,
                None,
                Bytes::from_static(b"H\0i\0"),
            ),
            // MV data on a single-valued tag.
            Prop {
                tag: tag::MESSAGE_FLAGS,
                named: None,
                data: PropData::Multi(vec![]),
            },
        ],
        ..Default::default()
    };
    let v = MessageView::new(&m);
    assert_eq!(v.importance(), None);
    assert_eq!(v.subject().as_deref(), Some("Hi"));
    assert_eq!(v.message_flags(), None);
    assert!(!v.is_read());
    assert!(!v.has_attachments());
    assert!(v.categories().is_empty());
    assert!(v.sender().is_none());
    assert!(v.recipients().is_empty());
    let _ = PS_INTERNET_HEADERS;
}
