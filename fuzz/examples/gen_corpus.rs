//! Writes the checked-in seed corpus under `fuzz/corpus/<target>/`.
//!
//! Every vector is built here from our own data (the reference's §6 worked
//! example, and small streams assembled with the fts AST); nothing is copied
//! from third parties. Regenerate with
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus -- fuzz/corpus
//! ```
//!
//! Each target sees the inputs in the shape its harness expects: `lex` takes an
//! 8-byte chunking seed before the FTS, `ast` a 2-byte chunk size before the
//! FTS (and framed inputs whole), `frame` and `roundtrip` the bytes as they are.

use bytes::Bytes;
use fts::frame::{FrameHeader, write_frames};
use fts::markers::{self, delprop, meta};
use fts::value::build;
use fts::{
    Attachment, Element, Guid, Message, MessageContent, NamedProp, Prop, PropData, PropName,
    Recipient, Root,
};
use std::path::Path;

const PSETID_COMMON: Guid = Guid::from_fields(0x0006_2008, 0, 0, [0xC0, 0, 0, 0, 0, 0, 0, 0x46]);
const PS_INTERNET_HEADERS: Guid =
    Guid::from_fields(0x0002_0386, 0, 0, [0xC0, 0, 0, 0, 0, 0, 0, 0x46]);

/// The reference's §6 worked example: a framed 281-byte payload.
const S6_FRAMED: &str = "
01000000 08000000 00000000 01000000
03000000 18000000 01000000 07030200 00000000 C0000000 00000046 00240080
04000000 06000000 010E A480 0000
02000000 D3000000
1F00 1A00 12000000 4900 5000 4D00 2E00 4E00 6F00 7400 6500 0000
1F00 3700 06000000 4800 6900 0000
0B00 2900 0000
1F00 0080 8603020000000000C000000000000046 01 7800 2D00 6600 6F00 6F00 0000
          08000000 6200 6100 7200 0000
0300 0180 0820060000000000C000000000000046 00 10850000 00000000
0300 1640 0D00 120E
0300 0340
  0300 0030 00000000
  0300 150C 01000000
  1F00 0130 08000000 4200 6F00 6200 0000
0300 0440
0300 1640 0D00 130E
0300 0040
  0300 210E 00000000
  0300 0537 01000000
  0201 0137 03000000 41 42 43
0300 0E40";

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn u32p(tag: u32, v: u32) -> Prop {
    Prop::single(tag, None, v.to_le_bytes().to_vec())
}

fn fixed(id: u16, ty: u16, bytes: &[u8]) -> Prop {
    Prop::single(((id as u32) << 16) | ty as u32, None, bytes.to_vec())
}

fn multi(id: u16, ty: u16, items: &[&[u8]]) -> Prop {
    Prop {
        tag: ((id as u32) << 16) | ty as u32,
        named: None,
        data: PropData::Multi(items.iter().map(|b| Bytes::copy_from_slice(b)).collect()),
    }
}

fn named_name(guid: Guid, name: &str) -> Option<NamedProp> {
    Some(NamedProp {
        guid,
        name: PropName::Name(name.encode_utf16().collect()),
    })
}

fn named_id(guid: Guid, lid: u32) -> Option<NamedProp> {
    Some(NamedProp {
        guid,
        name: PropName::Id(lid),
    })
}

fn recipient(row: i32, kind: i32, name: &str, smtp: &str) -> Recipient {
    Recipient {
        props: vec![
            build::i32(0x3000, None, row),
            build::i32(0x0C15, None, kind),
            build::string(0x3001, None, name),
            build::string(0x3002, None, "SMTP"),
            build::string(0x3003, None, smtp),
            build::string(0x39FE, None, smtp),
            build::binary(0x0FFF, None, smtp.as_bytes().to_vec()),
        ],
    }
}

fn attachment(num: i32, data: &[u8], embedded: Option<MessageContent>) -> Attachment {
    let mut props = vec![
        build::i32(0x0E21, None, num),
        build::i32(0x0E20, None, data.len() as i32 + 64),
        build::i32(0x3705, None, if embedded.is_some() { 5 } else { 1 }),
        build::string(0x3707, None, "file.bin"),
    ];
    if embedded.is_none() {
        props.push(build::binary(0x3701, None, data.to_vec()));
    }
    Attachment {
        props,
        embedded: embedded.map(Box::new),
    }
}

/// An Exchange-shaped messageContent: sorted props, named props last, both FXDelProp metas.
fn message(subject: &str, recips: usize, attachments: Vec<Attachment>) -> MessageContent {
    MessageContent {
        props: vec![
            build::string(0x001A, None, "IPM.Note"),
            build::i32(0x0017, None, 1),
            build::bool(0x0029, None, false),
            build::string(0x0037, None, subject),
            build::time(0x0039, None, 133_000_000_000_000_000),
            build::string(0x1000, None, "Hello,\r\nthis is the body.\r\n"),
            build::string(0x8005, named_name(PS_INTERNET_HEADERS, "x-foo"), "bar"),
            build::i32(0x8006, named_id(PSETID_COMMON, 0x8510), 0),
            build::strings(
                0x8007,
                named_name(PSETID_COMMON, "EntityNames"),
                &["DomainClassifier"],
            ),
        ],
        recip_delprop: Some(u32p(meta::FX_DEL_PROP, delprop::RECIPIENTS)),
        recipients: (0..recips)
            .map(|i| recipient(i as i32, 1 + (i % 3) as i32, "Bob", "bob@example.com"))
            .collect(),
        attach_delprop: Some(u32p(meta::FX_DEL_PROP, delprop::ATTACHMENTS)),
        attachments,
    }
}

fn fixed_types() -> MessageContent {
    let nan = f64::from_bits(0x7FF8_0000_DEAD_BEEF).to_le_bytes();
    MessageContent {
        props: vec![
            fixed(0x6000, 0x0002, &(-1i16).to_le_bytes()),
            fixed(0x6001, 0x0003, &i32::MAX.to_le_bytes()),
            fixed(0x6002, 0x0004, &f32::NAN.to_le_bytes()),
            fixed(0x6003, 0x0005, &nan),
            fixed(0x6004, 0x0006, &i64::MIN.to_le_bytes()),
            fixed(0x6005, 0x0007, &0f64.to_le_bytes()),
            fixed(0x6006, 0x000A, &0x8004_0102u32.to_le_bytes()),
            fixed(0x6007, 0x000B, &[2, 0]),
            fixed(0x6008, 0x0014, &u64::MAX.to_le_bytes()),
            fixed(0x6009, 0x0040, &0u64.to_le_bytes()),
            fixed(0x600A, 0x0048, &PSETID_COMMON.0),
        ],
        ..Default::default()
    }
}

fn var_and_mv_types() -> MessageContent {
    MessageContent {
        props: vec![
            fixed(0x6100, 0x001F, &[0, 0]),
            fixed(0x6101, 0x0102, &[]),
            fixed(0x6102, 0x001E, b"caf\xe9\0"),
            fixed(0x6103, 0x84B0, &build::utf16z("Gr\u{fc}\u{df}e \u{1F600}")),
            fixed(0x6104, 0x84E4, b"/O=FIRST ORGANIZATION\0"),
            fixed(0x6105, 0x001F, &[0x41, 0, 0x42]),
            fixed(0x6106, 0x00FB, &[1, 2, 3, 4, 5]),
            multi(0x6200, 0x1002, &[]),
            multi(0x6201, 0x1003, &[&7i32.to_le_bytes()]),
            multi(0x6202, 0x1014, &[&1u64.to_le_bytes(), &2u64.to_le_bytes()]),
            multi(0x6203, 0x1048, &[&PS_INTERNET_HEADERS.0]),
            multi(0x6204, 0x101F, &[&[0, 0], &build::utf16z("x")]),
            multi(0x6205, 0x101E, &[b"a\0", b"\0"]),
            multi(0x6206, 0x1102, &[&[], &[0xFF; 3]]),
            multi(0x6207, 0x1040, &[&0u64.to_le_bytes()]),
            build::strings(0x6208, None, &["one", ""]),
        ],
        ..Default::default()
    }
}

fn roots() -> Vec<(&'static str, Root)> {
    let embed3 = {
        let inner = message("level 3", 1, vec![attachment(0, b"deepest", None)]);
        let mid = message("level 2", 1, vec![attachment(0, b"", Some(inner))]);
        let top = message("level 1", 1, vec![attachment(0, b"", Some(mid))]);
        message(
            "outer",
            2,
            vec![attachment(0, b"", Some(top)), attachment(1, b"x", None)],
        )
    };
    vec![
        (
            "empty_metas",
            Root::MessageContent(MessageContent {
                recip_delprop: Some(u32p(meta::FX_DEL_PROP, delprop::RECIPIENTS)),
                attach_delprop: Some(u32p(meta::FX_DEL_PROP, delprop::ATTACHMENTS)),
                ..Default::default()
            }),
        ),
        (
            "only_attach_meta",
            Root::MessageContent(MessageContent {
                props: vec![build::string(0x0037, None, "s")],
                attach_delprop: Some(u32p(meta::FX_DEL_PROP, delprop::ATTACHMENTS)),
                ..Default::default()
            }),
        ),
        ("fixed_types", Root::MessageContent(fixed_types())),
        ("var_mv_types", Root::MessageContent(var_and_mv_types())),
        (
            "mail_3recips",
            Root::MessageContent(message("Hi", 3, vec![])),
        ),
        (
            "mail_attach",
            Root::MessageContent(message("att", 1, vec![attachment(0, &[0xAB; 100], None)])),
        ),
        ("embedded_3deep", Root::MessageContent(embed3)),
        (
            "message_root",
            Root::Message(Message {
                fai: false,
                content: message("m", 1, vec![]),
            }),
        ),
        (
            "fai_root",
            Root::Message(Message {
                fai: true,
                content: MessageContent::default(),
            }),
        ),
        (
            "message_list",
            Root::MessageList(vec![
                (
                    None,
                    Message {
                        fai: false,
                        content: message("a", 0, vec![]),
                    },
                ),
                (
                    Some(u32p(meta::EC_WARNING, 0x0004_0380)),
                    Message {
                        fai: true,
                        content: MessageContent::default(),
                    },
                ),
            ]),
        ),
        (
            "attachment_content",
            Root::AttachmentContent(attachment(0, b"", Some(message("e", 1, vec![])))),
        ),
        (
            "ics_elements",
            Root::Elements(vec![
                Element::Marker(markers::INCR_SYNC_STATE_BEGIN),
                Element::Prop(fixed(0x6796, 0x0102, &[1, 2, 3])),
                Element::Prop(fixed(0x4017, 0x0003, &[9, 9, 9, 9, 9])),
                Element::Marker(markers::INCR_SYNC_STATE_END),
                Element::Marker(markers::INCR_SYNC_PROGRESS_MODE),
                Element::Marker(markers::INCR_SYNC_GROUP_INFO),
                Element::Marker(markers::INCR_SYNC_END),
            ]),
        ),
    ]
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("create corpus dir");
    std::fs::write(d.join(name), bytes).expect("write corpus file");
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into());
    let out = Path::new(&out);
    let s6 = hex(S6_FRAMED);
    assert_eq!(s6.len(), 281);
    let (_, s6_fts) = fts::unframe(&Bytes::from(s6.clone())).expect("§6 example unframes");

    let mut raw: Vec<(String, Vec<u8>)> = vec![("s6".into(), s6_fts.to_vec())];
    for (name, root) in roots() {
        if let Err(e) = fts::validate(&root) {
            panic!("{name}: {e:?}");
        }
        raw.push((name.into(), fts::encode_fts(&root)));
    }
    let mut framed: Vec<(String, Vec<u8>)> = vec![("s6_framed".into(), s6.clone())];
    let header = FrameHeader::default();
    for (name, fts) in &raw[1..] {
        framed.push((format!("{name}_framed"), write_frames(&header, fts, 31_680)));
    }
    // Chunks cut inside tags, lengths and UTF-16 units; an empty TransferBuffer;
    // an unknown opcode; a truncated record.
    framed.push(("s6_chunk7".into(), write_frames(&header, &s6_fts, 7)));
    let mut odd = write_frames(&header, &s6_fts, 100);
    odd.extend_from_slice(&[
        2, 0, 0, 0, 0, 0, 0, 0, 0x63, 0, 0, 0, 2, 0, 0, 0, 0xAA, 0xBB,
    ]);
    framed.push(("empty_tb_unknown_op".into(), odd));
    framed.push(("s6_truncated".into(), s6[..250].to_vec()));
    // A few rejected raw streams, to start the fuzzer near the error paths.
    let mut bad_kind = s6_fts.to_vec();
    // The kind byte of the "x-foo" named property: after 3 props (26 + 14 + 6
    // bytes), its 4-byte tag and 16-byte GUID.
    assert_eq!(bad_kind[66], 0x01);
    bad_kind[66] = 0x02;
    raw.push(("bad_named_kind".into(), bad_kind));
    raw.push(("truncated".into(), s6_fts[..s6_fts.len() - 3].to_vec()));
    raw.push((
        "end_embed_alone".into(),
        markers::END_EMBED.to_le_bytes().to_vec(),
    ));

    for (name, fts) in &raw {
        let ok = fts::decode_fts(&Bytes::from(fts.clone())).is_ok();
        println!("{name:24} {:6} bytes  decodes: {ok}", fts.len());
        let seed = [0x5A, 0x13, 0x77, 0x01, 0x00, 0x9C, 0x42, 0xE1];
        write(out, "lex", name, &[&seed[..], fts].concat());
        write(out, "ast", name, &[&[7u8, 0][..], fts].concat());
        write(out, "roundtrip", name, fts);
        write(out, "frame", name, fts);
    }
    for (name, f) in &framed {
        let ok = fts::decode(&Bytes::from(f.clone())).is_ok();
        println!("{name:24} {:6} bytes  decodes: {ok}", f.len());
        write(out, "frame", name, f);
        write(out, "ast", name, f);
        write(out, "roundtrip", name, f);
    }
}
