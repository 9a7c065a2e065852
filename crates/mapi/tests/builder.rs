//! Builder output: Exchange layout, decode round trip, view read-back, demo data.

use bytes::Bytes;
use fts::{MessageContent, Root};
use mapi::builder::{self, Appointment, Contact, Task, note_color, task_status};
use mapi::demo::{self, DemoKind};
use mapi::named;
use mapi::tags::{id, tag};
use mapi::view::{Importance, RecipientKind};
use mapi::{FileTime, Mailbox, MessageBuilder, MessageView};

const T: FileTime = FileTime(133_485_408_000_000_000); // 2024-01-01T00:00:00Z

fn alice() -> Mailbox {
    Mailbox::new("Alice Anderson", "alice@contoso.com")
}
fn bob() -> Mailbox {
    Mailbox::new("Bob Brown", "bob@fabrikam.com")
}

fn rich_mail() -> MessageBuilder {
    let inner2 = MessageBuilder::mail()
        .subject("Level 2")
        .from(bob())
        .to(alice())
        .text_body("deepest")
        .created(T);
    let inner1 = MessageBuilder::mail()
        .subject("FW: Level 1")
        .from(bob())
        .to(alice())
        .text_body("middle")
        .category("Inner")
        .created(T)
        .attach("inner.txt", "text/plain", b"inner file".to_vec())
        .attach_message(inner2);
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    MessageBuilder::mail()
        .subject("RE: Quarterly report")
        .from(alice())
        .to(bob())
        .to(Mailbox::new("Carol Chen", "carol@contoso.com"))
        .cc(Mailbox::new("Dave", "dave@example.org"))
        .bcc(Mailbox::new("Eve", "eve@example.org"))
        .text_body("Hello Bob,\nsee attached.")
        .html_body("<html><body><p>Hello Bob, see attached — café</p><img src=\"cid:logo@x\"></body></html>")
        .created(T)
        .modified(FileTime(T.0 + 50))
        .sent(FileTime(T.0 + 10))
        .received(FileTime(T.0 + 20))
        .importance(Importance::High)
        .read(true)
        .categories(["Red category", "Follow up"])
        .message_id("<abc@contoso.com>")
        .in_reply_to("<prev@fabrikam.com>")
        .references("<prev@fabrikam.com>")
        .header("X-Mailer", "graphbox")
        .header("Accept-Language", "en-US")
        .attach("report.pdf", "application/pdf", big)
        .attach_inline("logo.png", "image/png", b"\x89PNG....".to_vec(), "logo@x")
        .attach_message(inner1)
}

fn roundtrip(m: &MessageContent) -> MessageContent {
    let bytes = fts::encode_fts(&Root::MessageContent(m.clone()));
    match fts::decode_fts(&Bytes::from(bytes)).expect("builder output decodes") {
        Root::MessageContent(mc) => mc,
        other => panic!("unexpected root {:?}", other.kind()),
    }
}

fn assert_layout(m: &MessageContent, top: bool) {
    // Tagged ids ascending, then named (>= 0x8000) ascending.
    let ids: Vec<u16> = m.props.iter().map(|p| p.id()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "props sorted by id");
    let first_named = m
        .props
        .iter()
        .position(|p| p.named.is_some())
        .unwrap_or(m.props.len());
    assert!(
        m.props[first_named..]
            .iter()
            .all(|p| p.named.is_some() && p.id() >= 0x8000)
    );
    assert!(
        m.props[..first_named]
            .iter()
            .all(|p| p.named.is_none() && p.id() < 0x8000)
    );
    // Strings in code-page form, booleans 2 bytes.
    for p in &m.props {
        let t = p.type_word();
        assert!(
            t != 0x001F && t != 0x001E && t != 0x101F,
            "plain string type in {:08X}",
            p.tag
        );
        if t == 0x000B {
            assert_eq!(p.bytes().unwrap().len(), 2);
        }
    }
    assert_eq!(
        m.recip_delprop.as_ref().map(|p| p.tag),
        Some(mapi::tags::meta::FX_DEL_PROP)
    );
    assert_eq!(
        m.recip_delprop.as_ref().unwrap().bytes().unwrap()[..],
        tag::MESSAGE_RECIPIENTS.to_le_bytes()
    );
    if top || !m.attachments.is_empty() {
        assert_eq!(
            m.attach_delprop.as_ref().unwrap().bytes().unwrap()[..],
            tag::MESSAGE_ATTACHMENTS.to_le_bytes()
        );
    }
    for r in &m.recipients {
        assert_eq!(r.props[0].tag, tag::ROWID);
        let rest: Vec<u16> = r.props[1..].iter().map(|p| p.id()).collect();
        assert!(rest.windows(2).all(|w| w[0] < w[1]));
    }
    for (i, a) in m.attachments.iter().enumerate() {
        assert_eq!(a.props[0].tag, tag::ATTACH_NUMBER);
        assert_eq!(a.props[0].as_i32(), Some(i as i32));
        assert_eq!(a.props[1].tag, tag::ATTACH_SIZE);
        let rest: Vec<u16> = a.props[2..].iter().map(|p| p.id()).collect();
        assert!(rest.windows(2).all(|w| w[0] < w[1]));
        if let Some(e) = &a.embedded {
            assert_layout(e, false);
        }
    }
}

#[test]
fn layout_follows_exchange() {
    let m = rich_mail().build();
    assert_layout(&m, true);
    // Empty lists still get both FXDelProps at the top level.
    let empty = MessageBuilder::mail().subject("x").build();
    assert!(empty.recipients.is_empty() && empty.attachments.is_empty());
    assert!(empty.recip_delprop.is_some() && empty.attach_delprop.is_some());
    let bytes = fts::encode_fts(&Root::MessageContent(empty));
    assert!(bytes.ends_with(&[0x03, 0x00, 0x16, 0x40, 0x0D, 0x00, 0x13, 0x0E]));
    // Named ids are local, dense from 0x8000 and shared with embedded messages.
    let named_ids: Vec<u16> = m
        .props
        .iter()
        .filter(|p| p.named.is_some())
        .map(|p| p.id())
        .collect();
    assert_eq!(
        named_ids,
        (0x8000..0x8000 + named_ids.len() as u16).collect::<Vec<_>>()
    );
    let inner = m.attachments[2].embedded.as_ref().unwrap();
    let inner_kw = inner
        .props
        .iter()
        .find(|p| named::KEYWORDS.matches_prop(p))
        .unwrap();
    let outer_kw = m
        .props
        .iter()
        .find(|p| named::KEYWORDS.matches_prop(p))
        .unwrap();
    assert_eq!(inner_kw.id(), outer_kw.id());
}

#[test]
fn decodes_back_to_an_equal_ast_and_the_view_reads_every_field() {
    let m = rich_mail().build();
    assert_eq!(roundtrip(&m), m);
    // Framed output decodes to the same AST too.
    let framed = rich_mail().to_framed_bytes();
    let d = fts::decode(&Bytes::from(framed.clone())).unwrap();
    assert!(d.framing.is_some());
    assert_eq!(d.root, Root::MessageContent(m.clone()));
    assert_eq!(fts::encode(&d), framed);
    assert!(
        d.framing
            .unwrap()
            .chunk_sizes()
            .all(|n| n as usize <= fts::frame::DEFAULT_CHUNK)
    );

    let v = MessageView::new(&m);
    assert_eq!(v.message_class().as_deref(), Some("IPM.Note"));
    assert_eq!(v.subject().as_deref(), Some("RE: Quarterly report"));
    assert_eq!(v.subject_prefix().as_deref(), Some("RE: "));
    assert_eq!(v.normalized_subject().as_deref(), Some("Quarterly report"));
    assert_eq!(v.conversation_topic().as_deref(), Some("Quarterly report"));
    assert_eq!(v.conversation_index().map(|b| b.len()), Some(22));
    assert_eq!(v.body_text().as_deref(), Some("Hello Bob,\nsee attached."));
    assert!(v.html().unwrap().contains("café"));
    assert_eq!(v.native_body(), Some(3));
    assert_eq!(v.preview().as_deref(), Some("Hello Bob, see attached."));
    assert_eq!(v.creation_time(), Some(T));
    assert_eq!(v.last_modification_time(), Some(FileTime(T.0 + 50)));
    assert_eq!(v.client_submit_time(), Some(FileTime(T.0 + 10)));
    assert_eq!(v.delivery_time(), Some(FileTime(T.0 + 20)));
    assert_eq!(v.importance(), Some(Importance::High));
    assert!(v.is_read());
    assert!(v.has_attachments());
    assert_eq!(v.categories(), vec!["Red category", "Follow up"]);
    assert_eq!(
        v.internet_message_id().as_deref(),
        Some("<abc@contoso.com>")
    );
    assert_eq!(v.in_reply_to().as_deref(), Some("<prev@fabrikam.com>"));
    assert_eq!(v.references().as_deref(), Some("<prev@fabrikam.com>"));
    assert_eq!(v.internet_header("x-mailer").as_deref(), Some("graphbox"));
    assert_eq!(
        v.internet_header("Accept-Language").as_deref(),
        Some("en-US")
    );
    assert_eq!(v.internet_codepage(), Some(65001));
    assert_eq!(v.message_codepage(), Some(1252));
    let from = v.sent_representing().unwrap();
    assert_eq!(from.name.as_deref(), Some("Alice Anderson"));
    assert_eq!(from.address_type.as_deref(), Some("SMTP"));
    assert_eq!(from.smtp(), Some("alice@contoso.com"));
    assert_eq!(
        v.sender().unwrap().smtp_address.as_deref(),
        Some("alice@contoso.com")
    );
    assert_eq!(v.display_to().as_deref(), Some("Bob Brown; Carol Chen"));
    assert_eq!(v.display_cc().as_deref(), Some("Dave"));
    assert_eq!(v.display_bcc().as_deref(), Some("Eve"));
    let r = v.recipients();
    assert_eq!(r.len(), 4);
    let kinds: Vec<_> = r.iter().map(|r| r.kind().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            RecipientKind::To,
            RecipientKind::To,
            RecipientKind::Cc,
            RecipientKind::Bcc
        ]
    );
    assert_eq!(r[1].display_name().as_deref(), Some("Carol Chen"));
    assert_eq!(r[1].smtp_address().as_deref(), Some("carol@contoso.com"));
    assert_eq!(r[3].row_id(), Some(3));

    // Sizes are the encoded sizes.
    let size = v.message_size().unwrap() as usize;
    assert_eq!(size, fts::encoded_len(&Root::MessageContent(m.clone())));
    let a = v.attachments();
    assert_eq!(a.len(), 3);
    assert_eq!(a[0].long_filename().as_deref(), Some("report.pdf"));
    assert_eq!(a[0].filename().as_deref(), Some("report.pdf"));
    assert_eq!(a[0].extension().as_deref(), Some(".pdf"));
    assert_eq!(a[0].mime_tag().as_deref(), Some("application/pdf"));
    assert_eq!(a[0].data().unwrap().len(), 200_000);
    assert_eq!(a[0].method(), Some(1));
    assert!(!a[0].is_inline());
    assert_eq!(
        a[0].size().unwrap() as usize,
        8 + fts::encoded_len(&Root::AttachmentContent(m.attachments[0].clone()))
    );
    assert!(a[1].is_inline());
    assert_eq!(a[1].content_id().as_deref(), Some("logo@x"));
    assert_eq!(a[2].method(), Some(5));
    assert_eq!(a[2].display_name().as_deref(), Some("FW: Level 1"));
    let l1 = a[2].embedded().unwrap();
    assert_eq!(l1.subject().as_deref(), Some("FW: Level 1"));
    assert_eq!(l1.categories(), vec!["Inner"]);
    let l1a = l1.attachments();
    assert_eq!(l1a[0].data().map(|b| &b[..]), Some(&b"inner file"[..]));
    let l2 = l1a[1].embedded().unwrap();
    assert_eq!(l2.body_text().as_deref(), Some("deepest"));
    // The innermost message has no attachments: no attachments FXDelProp.
    assert!(l2.content().attach_delprop.is_none());
    assert!(l2.content().recip_delprop.is_some());
}

#[test]
fn item_types() {
    let appt = builder::calendar_item(&Appointment {
        subject: "Planning".into(),
        start: FileTime(T.0 + 36_000_000_000),
        end: FileTime(T.0 + 54_000_000_000),
        location: Some("Room 1".into()),
        organizer: alice(),
        required: vec![bob()],
        optional: vec![Mailbox::new("Carol", "carol@x.org")],
        body: Some("Agenda".into()),
        created: T,
        all_day: false,
    })
    .build();
    assert_layout(&appt, true);
    assert_eq!(roundtrip(&appt), appt);
    let v = MessageView::new(&appt);
    assert_eq!(v.message_class().as_deref(), Some("IPM.Appointment"));
    assert_eq!(v.appointment_start(), Some(FileTime(T.0 + 36_000_000_000)));
    assert_eq!(v.appointment_end(), Some(FileTime(T.0 + 54_000_000_000)));
    assert_eq!(v.location().as_deref(), Some("Room 1"));
    assert_eq!(v.props().named_i32(&named::APPOINTMENT_DURATION), Some(30));
    let r = v.recipients();
    assert_eq!(r.len(), 3);
    assert!(r[0].is_organizer());
    assert_eq!(r[0].smtp_address().as_deref(), Some("alice@contoso.com"));
    assert_eq!(r[1].kind(), Some(RecipientKind::To));
    assert_eq!(r[2].kind(), Some(RecipientKind::Cc));
    assert_eq!(
        v.sent_representing().unwrap().smtp(),
        Some("alice@contoso.com")
    );

    let c = builder::contact(&Contact {
        given_name: "Zoë".into(),
        surname: "Müller".into(),
        email: "zoe@example.org".into(),
        company: Some("Contoso".into()),
        job_title: None,
        business_phone: Some("+1 425 555 0100".into()),
        mobile_phone: None,
        home_phone: None,
        created: T,
    })
    .build();
    assert_layout(&c, true);
    assert_eq!(roundtrip(&c), c);
    let v = MessageView::new(&c);
    assert_eq!(v.message_class().as_deref(), Some("IPM.Contact"));
    assert_eq!(v.display_name().as_deref(), Some("Zoë Müller"));
    assert_eq!(v.props().string(id::GIVEN_NAME).as_deref(), Some("Zoë"));
    assert_eq!(v.props().string(id::SURNAME).as_deref(), Some("Müller"));
    assert_eq!(
        v.props().string(id::COMPANY_NAME).as_deref(),
        Some("Contoso")
    );
    assert_eq!(
        v.props().string(id::BUSINESS_TELEPHONE_NUMBER).as_deref(),
        Some("+1 425 555 0100")
    );
    assert_eq!(v.email1_address().as_deref(), Some("zoe@example.org"));
    assert_eq!(
        v.email1_display_name().as_deref(),
        Some("Zoë Müller (zoe@example.org)")
    );
    assert_eq!(v.file_under().as_deref(), Some("Müller, Zoë"));

    let t = builder::task(&Task {
        subject: "Ship it".into(),
        start: Some(T),
        due: Some(FileTime(T.0 + 864_000_000_000)),
        status: task_status::IN_PROGRESS,
        percent_complete: 0.5,
        body: None,
        owner: Some("Alice".into()),
        created: T,
    })
    .build();
    assert_layout(&t, true);
    assert_eq!(roundtrip(&t), t);
    let v = MessageView::new(&t);
    assert_eq!(v.message_class().as_deref(), Some("IPM.Task"));
    assert_eq!(v.task_due_date(), Some(FileTime(T.0 + 864_000_000_000)));
    assert_eq!(v.task_status(), Some(task_status::IN_PROGRESS));
    assert_eq!(v.props().named_f64(&named::PERCENT_COMPLETE), Some(0.5));

    let n = builder::note("Buy milk\nand eggs", note_color::YELLOW, T).build();
    assert_layout(&n, true);
    let v = MessageView::new(&n);
    assert_eq!(v.message_class().as_deref(), Some("IPM.StickyNote"));
    assert_eq!(v.subject().as_deref(), Some("Buy milk"));
    assert_eq!(v.body_text().as_deref(), Some("Buy milk\nand eggs"));
    assert_eq!(v.props().named_i32(&named::NOTE_COLOR), Some(3));
}

#[test]
fn overrides_and_determinism() {
    let b = MessageBuilder::mail()
        .subject("x")
        .prop(fts::value::build::i32(id::IMPORTANCE, None, 0))
        .named_string(&named::LOCATION, "first")
        .named_string(&named::LOCATION, "second");
    let m = b.build();
    assert_eq!(MessageView::new(&m).importance(), Some(Importance::Low));
    assert_eq!(MessageView::new(&m).location().as_deref(), Some("second"));
    assert_eq!(
        m.props
            .iter()
            .filter(|p| named::LOCATION.matches_prop(p))
            .count(),
        1
    );
    assert_eq!(rich_mail().to_fts_bytes(), rich_mail().to_fts_bytes());
    assert_eq!(b.build(), b.build());
}

#[test]
fn demo_items_are_varied_deterministic_and_valid() {
    let items = demo::items(42, 120);
    assert_eq!(items.len(), 120);
    let again = demo::items(42, 120);
    for (a, b) in items.iter().zip(&again) {
        assert_eq!(a.builder.to_fts_bytes(), b.builder.to_fts_bytes());
    }
    assert_ne!(
        demo::items(1, 5)[0].builder.to_fts_bytes(),
        demo::items(2, 5)[0].builder.to_fts_bytes()
    );
    let mut kinds = std::collections::HashSet::new();
    let mut subjects = std::collections::HashSet::new();
    let (mut with_att, mut with_embedded, mut sizes) = (0, 0, Vec::new());
    for it in &items {
        kinds.insert(it.kind);
        let m = it.builder.build();
        assert_layout(&m, true);
        assert_eq!(roundtrip(&m), m);
        let v = MessageView::new(&m);
        subjects.insert(v.subject().unwrap());
        sizes.push(v.message_size().unwrap());
        if !m.attachments.is_empty() {
            with_att += 1;
        }
        if m.attachments.iter().any(|a| a.embedded.is_some()) {
            with_embedded += 1;
        }
        let class = v.message_class().unwrap();
        match it.kind {
            DemoKind::Mail => {
                assert_eq!(class, "IPM.Note");
                assert!(it.folder == "inbox" || it.folder == "sentitems");
                assert!(v.sent_representing().is_some());
                assert!(!v.recipients().is_empty());
            }
            DemoKind::Appointment => {
                assert_eq!(class, "IPM.Appointment");
                assert!(v.appointment_start() < v.appointment_end());
            }
            DemoKind::Contact => assert_eq!(class, "IPM.Contact"),
            DemoKind::Task => assert_eq!(class, "IPM.Task"),
            DemoKind::Note => assert_eq!(class, "IPM.StickyNote"),
        }
        assert_eq!(
            it.folder == "sentitems",
            it.kind == DemoKind::Mail && it.folder != "inbox"
        );
    }
    assert_eq!(kinds.len(), 5, "all kinds present: {kinds:?}");
    assert!(subjects.len() > 30);
    assert!(
        with_att > 10 && with_embedded > 0,
        "{with_att} {with_embedded}"
    );
    let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(*max > 20 * *min, "sizes vary: {min}..{max}");
}
