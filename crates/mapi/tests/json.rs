//! The JSON dump round-trips exactly, through text, for builder output and odd streams.

use bytes::Bytes;
use fts::value::build;
use fts::{
    Attachment, Decoded, Element, Message, MessageContent, NamedProp, Prop, PropData, PropName,
    Recipient, Root,
};
use mapi::named;
use mapi::tags::id;
use mapi::{FileTime, Mailbox, MessageBuilder, from_json, to_json};

/// decode → to_json → text → from_json → encode reproduces the input.
fn check_bytes(input: Vec<u8>) -> serde_json::Value {
    let d = fts::decode(&Bytes::from(input.clone())).expect("decodes");
    check_decoded(&d);
    assert_eq!(fts::encode(&d), input);
    to_json(&d)
}

fn check_decoded(d: &Decoded) -> serde_json::Value {
    let j = to_json(d);
    let text = serde_json::to_string_pretty(&j).unwrap();
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    let d2 = from_json(&back).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&d2, d);
    assert_eq!(fts::encode(&d2), fts::encode(d));
    j
}

fn raw(root: Root) -> Vec<u8> {
    fts::encode_fts(&root)
}

#[test]
fn builder_output_round_trips_raw_and_framed() {
    let b = MessageBuilder::mail()
        .subject("JSON café ✓")
        .from(Mailbox::new("A", "a@x.org"))
        .to(Mailbox::new("B", "b@x.org"))
        .html_body("<p>hi</p>")
        .category("Red")
        .header("X-Test", "1")
        .created(FileTime::from_unix(1_700_000_000))
        .attach("big.bin", "application/octet-stream", vec![7u8; 100_000])
        .attach_message(MessageBuilder::mail().subject("inner").text_body("x"));
    check_bytes(b.to_fts_bytes());
    let j = check_bytes(b.to_framed_bytes());
    // Shape spot checks.
    let frames = j["framing"]["frames"].as_array().unwrap();
    assert_eq!(frames[0]["name"], "Config");
    assert_eq!(frames[0]["payload"], "0000000001000000");
    assert_eq!(frames[2]["name"], "TellPartnerVersion");
    assert!(frames[2]["version"].as_str().unwrap().starts_with("15."));
    assert_eq!(frames[3]["name"], "TransferBuffer");
    assert_eq!(frames[3]["size"], 31680);
    let root = &j["root"];
    assert_eq!(root["kind"], "messageContent");
    let props = root["content"]["props"].as_array().unwrap();
    let subject = props.iter().find(|p| p["name"] == "PidTagSubject").unwrap();
    assert_eq!(subject["tag"], "0x003784B0");
    assert_eq!(subject["type"], "0x84B0");
    assert_eq!(subject["value"], "JSON café ✓");
    let kw = props
        .iter()
        .find(|p| p["name"] == "PidNameKeywords")
        .unwrap();
    assert_eq!(kw["type"], "0x94B0");
    assert_eq!(kw["named"]["set"], "PS_PUBLIC_STRINGS");
    assert_eq!(kw["named"]["kind"], "name");
    assert_eq!(kw["named"]["name"], "Keywords");
    assert_eq!(kw["value"], serde_json::json!(["Red"]));
    let created = props
        .iter()
        .find(|p| p["name"] == "PidTagCreationTime")
        .unwrap();
    assert_eq!(created["value"], "2023-11-14T22:13:20Z");
    assert_eq!(
        root["content"]["recip_delprop"]["value"],
        "0x0E12000D PidTagMessageRecipients"
    );
    let att = &root["content"]["attachments"][0]["props"];
    let data = att
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "PidTagAttachDataBinary")
        .unwrap();
    assert!(data.get("raw").is_none() && data["raw_base64"].is_string());
    assert_eq!(data["value"], "<100000 bytes>");
    assert_eq!(
        root["content"]["attachments"][1]["embedded"]["props"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "PidTagSubject")
            .unwrap()["value"],
        "inner"
    );
}

fn odd_props() -> Vec<Prop> {
    let mut wide_no_nul = build::utf16z("abc");
    wide_no_nul.truncate(wide_no_nul.len() - 2);
    let mut odd_len = build::utf16z("ab");
    odd_len.push(0x41);
    vec![
        build::unicode(id::SUBJECT, None, "plain 001F"),
        build::string(id::BODY, None, "code page 84B0"),
        // Malformed strings: no terminator; odd byte length; String8 without NUL.
        Prop::single(
            ((id::NORMALIZED_SUBJECT as u32) << 16) | 0x84B0,
            None,
            wide_no_nul,
        ),
        Prop::single(
            ((id::CONVERSATION_TOPIC as u32) << 16) | 0x001F,
            None,
            odd_len,
        ),
        Prop::single(
            ((id::DISPLAY_TO as u32) << 16) | 0x001E,
            None,
            b"no nul".to_vec(),
        ),
        // cp 1252 string.
        Prop::single(
            ((id::DISPLAY_CC as u32) << 16) | 0x84E4,
            None,
            b"caf\xe9\0".to_vec(),
        ),
        build::strings(0x8000, Some(named::KEYWORDS.to_named_prop()), &["a", "b"]),
        build::unicodes(
            0x8001,
            Some(NamedProp {
                guid: named::PSETID_COMMON,
                name: PropName::Name("EntityNames".encode_utf16().collect()),
            }),
            &["x"],
        ),
        // A name with an unpaired surrogate.
        build::i32(
            0x8002,
            Some(NamedProp {
                guid: named::PS_PUBLIC_STRINGS,
                name: PropName::Name(vec![0x0061, 0xD800, 0x0062]),
            }),
            5,
        ),
        build::i32(0x8003, Some(named::TASK_STATUS.to_named_prop()), 2),
        // Unknown-set named prop, unknown tagged prop, odd fixed types.
        build::binary(
            0x8004,
            Some(NamedProp {
                guid: fts::Guid::parse("0b63e350-9ccc-11d0-bcdb-00805fccce04").unwrap(),
                name: PropName::Name("DetectedLanguage".encode_utf16().collect()),
            }),
            vec![],
        ),
        Prop::single(0x0E4B_0014, None, 1u64.to_le_bytes().to_vec()),
        Prop::single(0x1234_0005, None, f64::NAN.to_le_bytes().to_vec()),
        Prop::single(0x1235_000A, None, 0x8004_010Fu32.to_le_bytes().to_vec()),
        Prop::single(0x1236_0048, None, named::PSETID_NOTE.0.to_vec()),
        Prop::single(0x1237_0007, None, 45000.5f64.to_le_bytes().to_vec()),
        Prop::single(0x1238_00FB, None, vec![1, 2, 3]),
        Prop::single(0x1239_000B, None, vec![0x02, 0x01]),
        Prop {
            tag: 0x123A_1102,
            named: None,
            data: PropData::Multi(vec![Bytes::new(), Bytes::from_static(b"\x00\x01")]),
        },
        Prop {
            tag: 0x123B_1040,
            named: None,
            data: PropData::Multi(vec![]),
        },
    ]
}

#[test]
fn odd_message_content_round_trips() {
    let mc = MessageContent {
        props: odd_props(),
        recip_delprop: Some(Prop::single(
            0x4016_0003,
            None,
            0x0E12_000Du32.to_le_bytes().to_vec(),
        )),
        recipients: vec![Recipient {
            props: vec![build::unicode(id::DISPLAY_NAME, None, "R")],
        }],
        attach_delprop: None,
        attachments: vec![Attachment {
            // No PidTagAttachNumber first: accepted with a warning.
            props: vec![build::string(id::DISPLAY_NAME, None, "no number")],
            embedded: Some(Box::new(MessageContent {
                props: odd_props(),
                ..Default::default()
            })),
        }],
    };
    let j = check_bytes(raw(Root::MessageContent(mc)));
    assert_eq!(j["warnings"][0]["kind"], "MissingAttachNumber");
    let props = j["root"]["content"]["props"].as_array().unwrap();
    let named = props
        .iter()
        .find(|p| p["named"]["name_utf16_hex"].is_string())
        .unwrap();
    assert_eq!(named["named"]["name_utf16_hex"], "610000d86200");
    let to = props
        .iter()
        .find(|p| p["name"] == "PidTagDisplayTo")
        .unwrap();
    assert_eq!(to["type"], "0x001E");
    assert_eq!(to["raw"], hex::encode(b"no nul"));
    let cc = props
        .iter()
        .find(|p| p["name"] == "PidTagDisplayCc")
        .unwrap();
    assert_eq!(cc["value"], "café");
    let nan = props.iter().find(|p| p["tag"] == "0x12340005").unwrap();
    assert_eq!(nan["value"], "NaN");
    let err = props.iter().find(|p| p["tag"] == "0x1235000A").unwrap();
    assert_eq!(err["value"], "0x8004010F");
    let ts = props
        .iter()
        .find(|p| p["name"] == "PidLidTaskStatus")
        .unwrap();
    assert_eq!(ts["named"]["id"], "0x8101");
    assert_eq!(ts["named"]["set"], "PSETID_Task");
}

#[test]
fn other_roots_round_trip() {
    let content = MessageContent {
        props: vec![build::string(id::SUBJECT, None, "m")],
        recip_delprop: Some(Prop::single(
            0x4016_0003,
            None,
            0x0E12_000Du32.to_le_bytes().to_vec(),
        )),
        recipients: vec![],
        attach_delprop: Some(Prop::single(
            0x4016_0003,
            None,
            0x0E13_000Du32.to_le_bytes().to_vec(),
        )),
        attachments: vec![],
    };
    // message (FAI) root.
    check_bytes(raw(Root::Message(Message {
        fai: true,
        content: content.clone(),
    })));
    // messageList with a MetaTagEcWarning.
    let j = check_bytes(raw(Root::MessageList(vec![
        (
            Some(Prop::single(0x400F_0003, None, 7u32.to_le_bytes().to_vec())),
            Message {
                fai: false,
                content: content.clone(),
            },
        ),
        (
            None,
            Message {
                fai: true,
                content: content.clone(),
            },
        ),
    ])));
    assert_eq!(j["root"]["kind"], "messageList");
    assert_eq!(
        j["root"]["messages"][0]["warning"]["name"],
        "MetaTagEcWarning"
    );
    // A folder-ish stream decodes as elements: markers and props in order.
    let els = Root::Elements(vec![
        Element::Marker(0x4009_0003),
        Element::Prop(build::string(0x3001, None, "Inbox")),
        Element::Prop(Prop::single(
            0x4016_0003,
            None,
            0x360F_000Du32.to_le_bytes().to_vec(),
        )),
        Element::Marker(0x400B_0003),
    ]);
    let j = check_bytes(raw(els));
    assert_eq!(j["root"]["kind"], "elements");
    assert_eq!(j["root"]["elements"][0]["name"], "StartTopFld");
    assert_eq!(j["root"]["elements"][0]["marker"], "0x40090003");
    // attachmentContent and a framing with odd records / truncation flag, in memory.
    let d = Decoded {
        framing: Some(fts::Framing {
            frames: vec![
                fts::frame::Frame::Record(fts::frame::Record {
                    opcode: 1,
                    payload: Bytes::from_static(&[0; 8]),
                }),
                fts::frame::Frame::Record(fts::frame::Record {
                    opcode: 99,
                    payload: Bytes::from_static(b"??"),
                }),
                fts::frame::Frame::Chunk(0),
                fts::frame::Frame::Chunk(3),
            ],
            warnings: vec![fts::Warning {
                offset: 26,
                kind: fts::WarningKind::EmptyTransferBuffer,
            }],
            truncated: Some(5),
        }),
        root: Root::AttachmentContent(Attachment {
            props: vec![build::i32(id::ATTACH_NUMBER, None, 0)],
            embedded: Some(Box::new(content)),
        }),
        warnings: vec![],
    };
    let j = check_decoded(&d);
    assert_eq!(j["framing"]["frames"][1]["name"], "Unknown");
    assert_eq!(j["framing"]["truncated"], 5);
}

#[test]
fn bad_json_says_where() {
    let good = to_json(
        &fts::decode(&Bytes::from(
            MessageBuilder::mail().subject("s").to_fts_bytes(),
        ))
        .unwrap(),
    );
    let mut bad = good.clone();
    bad["root"]["content"]["props"][2]["tag"] = serde_json::json!("37");
    let e = from_json(&bad).unwrap_err();
    assert_eq!(e.path, "$.root.content.props[2].tag");
    assert!(
        e.to_string()
            .starts_with("at $.root.content.props[2].tag: expected hex"),
        "{e}"
    );
    let mut bad = good.clone();
    bad["root"]["content"]["recipients"] = serde_json::json!({});
    assert_eq!(
        from_json(&bad).unwrap_err().path,
        "$.root.content.recipients"
    );
    let mut bad = good;
    bad["warnings"] = serde_json::json!([{"offset": 1, "kind": "Nope"}]);
    let e = from_json(&bad).unwrap_err();
    assert_eq!(e.path, "$.warnings[0].kind");
}
