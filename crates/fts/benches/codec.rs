//! Criterion benchmarks of the FTS codec on Exchange-shaped items.
//!
//! Every input is built deterministically here from the AST (no fixtures, no
//! third-party data) in the layout Exchange exports: `0x84B0` strings,
//! properties sorted by id with named properties last, PidTagRowid first in a
//! recipient and PidTagAttachNumber first in an attachment, both
//! MetaTagFXDelProp metas, and the FTS framed as Config / IsInterfaceOk /
//! TellPartnerVersion plus TransferBuffer records of 31,680 bytes.
//!
//! Groups (throughput in bytes of the framed item, as the server receives it):
//! - `decode/<input>`: `fts::decode` of the framed bytes;
//! - `encode/<input>`: `fts::encode` of the decoded item back to framed bytes;
//! - `memcpy/attachment_5mb`: copying the framed 5 MB item into a preallocated
//!   buffer, the baseline for the attachment-heavy figures.
//!
//! Run: `cargo bench -p fts --bench codec -- --warm-up-time 1 --measurement-time 3`
//! (figures and targets in docs/BENCHMARKS.md).

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fts::frame::{DEFAULT_CHUNK, FrameHeader, write_frames};
use fts::markers::{delprop, meta};
use fts::value::build;
use fts::{Attachment, Guid, MessageContent, NamedProp, Prop, PropName, Recipient, Root};
use std::hint::black_box;

const PSETID_COMMON: Guid = Guid::from_fields(0x0006_2008, 0, 0, [0xC0, 0, 0, 0, 0, 0, 0, 0x46]);
const PSETID_APPOINTMENT: Guid =
    Guid::from_fields(0x0006_2002, 0, 0, [0xC0, 0, 0, 0, 0, 0, 0, 0x46]);
const PSETID_MEETING: Guid = Guid::from_fields(
    0x6ED8_DA90,
    0x450B,
    0x101B,
    [0x98, 0xDA, 0x00, 0xAA, 0x00, 0x3F, 0x13, 0x05],
);
const PS_INTERNET_HEADERS: Guid =
    Guid::from_fields(0x0002_0386, 0, 0, [0xC0, 0, 0, 0, 0, 0, 0, 0x46]);

/// 2026-03-02 09:30:00 UTC as FILETIME ticks.
const T0: u64 = 134_170_974_000_000_000;
const DN_PREFIX: &str =
    "/O=EXCHANGELABS/OU=EXCHANGE ADMINISTRATIVE GROUP (FYDIBOHF23SPDLT)/CN=RECIPIENTS/CN=";

/// Deterministic filler (xorshift64*), so every run benches identical bytes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

fn delprop(list: u32) -> Prop {
    Prop::single(meta::FX_DEL_PROP, None, list.to_le_bytes().to_vec())
}

fn lid(guid: Guid, id: u32) -> Option<NamedProp> {
    Some(NamedProp {
        guid,
        name: PropName::Id(id),
    })
}

fn name(guid: Guid, n: &str) -> Option<NamedProp> {
    Some(NamedProp {
        guid,
        name: PropName::Name(n.encode_utf16().collect()),
    })
}

/// Exchange order: by property id, so named properties (>= 0x8000) come last.
fn sorted(mut props: Vec<Prop>) -> Vec<Prop> {
    props.sort_by_key(|p| p.id());
    props
}

fn content(
    props: Vec<Prop>,
    recipients: Vec<Recipient>,
    attachments: Vec<Attachment>,
) -> MessageContent {
    MessageContent {
        props: sorted(props),
        recip_delprop: Some(delprop(delprop::RECIPIENTS)),
        recipients,
        attach_delprop: Some(delprop(delprop::ATTACHMENTS)),
        attachments,
    }
}

/// Text of about `n` bytes (ASCII), made of repeated sentences.
fn text(n: usize, seed: usize) -> String {
    const WORDS: [&str; 12] = [
        "quarterly",
        "report",
        "meeting",
        "please",
        "review",
        "the",
        "attached",
        "figures",
        "before",
        "Thursday",
        "thanks",
        "regards",
    ];
    let mut s = String::with_capacity(n + 16);
    let mut i = seed;
    while s.len() < n {
        s.push_str(WORDS[i % WORDS.len()]);
        i = i.wrapping_mul(7).wrapping_add(3);
        s.push_str(if i.is_multiple_of(11) { ".\r\n" } else { " " });
    }
    s.truncate(n);
    s
}

/// The envelope properties every exported mail carries.
fn mail_props(class: &str, subject: &str, body: &str, rng: &mut Rng) -> Vec<Prop> {
    let from = "Alice Example";
    let smtp = "alice@contoso.example";
    vec![
        build::string(0x001A, None, class),
        build::i32(0x0017, None, 1),
        build::i32(0x0026, None, 0),
        build::i32(0x0036, None, 0),
        build::string(0x0037, None, subject),
        build::time(0x0039, None, T0),
        build::string(0x003D, None, ""),
        build::string(0x0042, None, from),
        build::string(0x0064, None, "SMTP"),
        build::string(0x0065, None, smtp),
        build::string(0x0070, None, subject),
        build::binary(0x0071, None, rng.bytes(22)),
        build::string(0x0C1A, None, from),
        build::string(0x0C1E, None, "SMTP"),
        build::string(0x0C1F, None, smtp),
        build::time(0x0E06, None, T0 + 40_000_000),
        build::i32(0x0E07, None, 0x0000_0001),
        build::bool(0x0E1F, None, false),
        build::string(0x1000, None, body),
        build::string(
            0x1035,
            None,
            "<AM0PR01MB1234.eurprd01.prod.example@contoso.example>",
        ),
        build::time(0x3007, None, T0 + 50_000_000),
        build::time(0x3008, None, T0 + 60_000_000),
        build::binary(0x300B, None, rng.bytes(16)),
        build::i32(0x3FDE, None, 65001),
        build::i32(0x3FF1, None, 1033),
        build::string(0x5D01, None, smtp),
    ]
}

/// An SMTP recipient as Exchange exports it.
fn smtp_recipient(row: i32, kind: i32, display: &str, smtp: &str) -> Recipient {
    Recipient {
        props: vec![
            build::i32(0x3000, None, row),
            build::i32(0x0C15, None, kind),
            build::i32(0x0FFE, None, 6),
            build::string(0x3001, None, display),
            build::string(0x3002, None, "SMTP"),
            build::string(0x3003, None, smtp),
            build::i32(0x3900, None, 0),
            build::string(0x39FE, None, smtp),
            build::i32(0x5FFD, None, 1),
        ],
    }
}

/// An Exchange ("EX") recipient with the dozen properties a real export carries.
fn ex_recipient(row: i32, rng: &mut Rng) -> Recipient {
    let user = format!(
        "{:08x}{:08x}-user{row:03}",
        rng.next() as u32,
        rng.next() as u32
    );
    let dn = format!("{DN_PREFIX}{user}");
    let display = format!("Attendee {row:03} (Contoso Sales)");
    let smtp = format!("attendee{row:03}@contoso.example");
    // Address-book EntryID: flags, provider UID, version, type, DN (NUL-terminated).
    let mut entry_id = vec![0u8; 4];
    entry_id.extend_from_slice(&[
        0xDC, 0xA7, 0x40, 0xC8, 0xC0, 0x42, 0x10, 0x1A, 0xB4, 0xB9, 0x08, 0x00, 0x2B, 0x2F, 0xE1,
        0x82,
    ]);
    entry_id.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    entry_id.extend_from_slice(dn.as_bytes());
    entry_id.push(0);
    let mut search_key = format!("EX:{}", dn.to_uppercase()).into_bytes();
    search_key.push(0);
    Recipient {
        props: vec![
            build::i32(0x3000, None, row),
            build::i32(0x0C15, None, if row % 5 == 4 { 2 } else { 1 }),
            build::binary(0x0FFF, None, entry_id.clone()),
            build::i32(0x0FFE, None, 6),
            build::string(0x3001, None, &display),
            build::string(0x3002, None, "EX"),
            build::string(0x3003, None, &dn),
            build::binary(0x300B, None, search_key),
            build::i32(0x3900, None, 0),
            build::string(0x39FE, None, &smtp),
            build::string(0x3A20, None, &display),
            build::i32(0x5FFD, None, 0x0000_0001 | if row == 0 { 2 } else { 0 }),
            build::binary(0x5FF7, None, entry_id),
            build::i32(0x5FFF, None, 0),
        ],
    }
}

/// A ~2 KB plain-text mail with one recipient.
fn plain_2k() -> Root {
    let mut rng = Rng(0x2C0F_FEE5);
    let props = mail_props("IPM.Note", "Lunch on Friday?", &text(560, 1), &mut rng);
    Root::MessageContent(content(
        props,
        vec![smtp_recipient(0, 1, "Bob Example", "bob@contoso.example")],
        vec![],
    ))
}

/// A ~60 KB HTML mail with 40 named properties and three recipients.
fn html_60k() -> Root {
    let mut rng = Rng(0x47A1_0001);
    let mut props = mail_props("IPM.Note", "Quarterly figures", &text(6_000, 2), &mut rng);
    let mut html = String::from("<html><head><meta charset=\"utf-8\"></head><body>");
    let mut i = 0;
    while html.len() < 48_000 {
        html.push_str(&format!(
            "<p style=\"margin:0;font-family:Calibri\">{}</p>\r\n",
            text(120, i)
        ));
        i += 1;
    }
    html.push_str("</body></html>");
    props.push(build::binary(0x1013, None, html.into_bytes()));
    // 20 PSETID_Common dispid properties of assorted types.
    let common: [(u32, u8); 20] = [
        (0x8501, b'i'),
        (0x8502, b't'),
        (0x8503, b'b'),
        (0x8506, b'b'),
        (0x8510, b'i'),
        (0x8514, b'b'),
        (0x8516, b't'),
        (0x8517, b't'),
        (0x851C, b'b'),
        (0x8530, b's'),
        (0x8535, b's'),
        (0x8539, b's'),
        (0x8552, b'i'),
        (0x8554, b's'),
        (0x8560, b't'),
        (0x8580, b's'),
        (0x8581, b's'),
        (0x85A0, b't'),
        (0x85A1, b's'),
        (0x85B5, b'b'),
    ];
    for (k, (l, ty)) in common.into_iter().enumerate() {
        let id = 0x8000 + k as u16;
        let np = lid(PSETID_COMMON, l);
        props.push(match ty {
            b'i' => build::i32(id, np, k as i32 * 15),
            b't' => build::time(id, np, T0 + k as u64 * 600_000_000),
            b'b' => build::bool(id, np, k.is_multiple_of(2)),
            _ => build::string(id, np, &text(24 + k * 3, k)),
        });
    }
    // 20 PS_INTERNET_HEADERS string-named properties (the x- headers Exchange keeps).
    let headers = [
        "x-ms-exchange-organization-authas",
        "x-ms-exchange-organization-authsource",
        "x-ms-exchange-organization-authmechanism",
        "x-ms-exchange-organization-network-message-id",
        "x-ms-exchange-organization-scl",
        "x-ms-exchange-organization-messagedirectionality",
        "x-ms-exchange-crosstenant-id",
        "x-ms-exchange-crosstenant-originalarrivaltime",
        "x-ms-exchange-crosstenant-fromentityheader",
        "x-ms-exchange-transport-crosstenantheadersstamped",
        "x-ms-publictraffictype",
        "x-ms-traffictypediagnostic",
        "x-ms-office365-filtering-correlation-id",
        "x-microsoft-antispam",
        "x-microsoft-antispam-message-info",
        "x-forefront-antispam-report",
        "x-ms-has-attach",
        "x-ms-tnef-correlator",
        "x-originating-ip",
        "received-spf",
    ];
    for (k, h) in headers.into_iter().enumerate() {
        let id = 0x8014 + k as u16;
        props.push(build::string(
            id,
            name(PS_INTERNET_HEADERS, h),
            &text(40 + (k * 37) % 160, k),
        ));
    }
    let recips = (0..3)
        .map(|r| {
            smtp_recipient(
                r,
                1 + r % 2,
                &format!("Colleague {r}"),
                &format!("colleague{r}@contoso.example"),
            )
        })
        .collect();
    Root::MessageContent(content(props, recips, vec![]))
}

/// A meeting request with 200 Exchange recipients.
fn meeting_200() -> Root {
    let mut rng = Rng(0x3EE7_1A95);
    let mut props = mail_props(
        "IPM.Schedule.Meeting.Request",
        "All-hands planning",
        &text(1_500, 3),
        &mut rng,
    );
    let goid = rng.bytes(56);
    let named = vec![
        build::i32(0x8000, lid(PSETID_APPOINTMENT, 0x8205), 1),
        build::string(
            0x8001,
            lid(PSETID_APPOINTMENT, 0x8208),
            "Building 4, Room 1.21",
        ),
        build::time(0x8002, lid(PSETID_APPOINTMENT, 0x820D), T0 + 36_000_000_000),
        build::time(0x8003, lid(PSETID_APPOINTMENT, 0x820E), T0 + 72_000_000_000),
        build::i32(0x8004, lid(PSETID_APPOINTMENT, 0x8213), 60),
        build::bool(0x8005, lid(PSETID_APPOINTMENT, 0x8215), false),
        build::i32(0x8006, lid(PSETID_APPOINTMENT, 0x8217), 3),
        build::i32(0x8007, lid(PSETID_APPOINTMENT, 0x8218), 5),
        build::bool(0x8008, lid(PSETID_APPOINTMENT, 0x8223), false),
        build::binary(0x8009, lid(PSETID_MEETING, 0x0003), goid.clone()),
        build::binary(0x800A, lid(PSETID_MEETING, 0x0023), goid),
        build::time(0x800B, lid(PSETID_MEETING, 0x001A), T0),
        build::i32(0x800C, lid(PSETID_COMMON, 0x8501), 15),
        build::bool(0x800D, lid(PSETID_COMMON, 0x8503), true),
    ];
    props.extend(named);
    let recips = (0..200).map(|r| ex_recipient(r, &mut rng)).collect();
    Root::MessageContent(content(props, recips, vec![]))
}

/// A mail with one 5 MB attachment of random bytes.
fn attachment_5mb() -> Root {
    let mut rng = Rng(0x5A77_AC4D);
    let data = rng.bytes(5 << 20);
    let props = mail_props("IPM.Note", "The dataset", &text(400, 4), &mut rng);
    let attachment = Attachment {
        props: vec![
            build::i32(0x0E21, None, 0),
            build::i32(0x0E20, None, data.len() as i32 + 420),
            build::time(0x3007, None, T0),
            build::time(0x3008, None, T0),
            build::binary(0x3701, None, data),
            build::string(0x3703, None, ".bin"),
            build::string(0x3704, None, "DATASE~1.BIN"),
            build::i32(0x3705, None, 1),
            build::string(0x3707, None, "dataset-2026-03.bin"),
            build::i32(0x370B, None, -1),
            build::string(0x370E, None, "application/octet-stream"),
            build::i32(0x3714, None, 0),
            build::bool(0x7FFE, None, false),
        ],
        embedded: None,
    };
    Root::MessageContent(content(
        props,
        vec![smtp_recipient(0, 1, "Bob Example", "bob@contoso.example")],
        vec![attachment],
    ))
}

/// A mail whose attachment embeds a mail, three levels deep (the innermost
/// carries a small file attachment).
fn embedded_3deep() -> Root {
    let mut rng = Rng(0xE3BE_DDED);
    let file = Attachment {
        props: vec![
            build::i32(0x0E21, None, 0),
            build::i32(0x0E20, None, 2_400),
            build::binary(0x3701, None, rng.bytes(2_048)),
            build::i32(0x3705, None, 1),
            build::string(0x3707, None, "notes.txt"),
        ],
        embedded: None,
    };
    let mut inner = content(
        mail_props("IPM.Note", "level 3", &text(1_000, 30), &mut rng),
        vec![smtp_recipient(0, 1, "Carol", "carol@contoso.example")],
        vec![file],
    );
    for level in (0..3).rev() {
        let wrapper = Attachment {
            props: vec![
                build::i32(0x0E21, None, 0),
                build::i32(0x0E20, None, 8_000),
                build::i32(0x3705, None, 5),
                build::string(0x3001, None, &format!("FW: level {}", level + 1)),
            ],
            embedded: Some(Box::new(inner)),
        };
        inner = content(
            mail_props(
                "IPM.Note",
                &format!("level {level}"),
                &text(1_000, level),
                &mut rng,
            ),
            vec![
                smtp_recipient(0, 1, "Dave", "dave@contoso.example"),
                smtp_recipient(1, 2, "Erin", "erin@contoso.example"),
            ],
            vec![wrapper],
        );
    }
    Root::MessageContent(inner)
}

/// Frames an item as Exchange exports it and checks that it decodes back to the
/// same tree and re-encodes to the same bytes, so the benchmarks measure
/// correct work.
fn framed(root: &Root) -> Bytes {
    fts::validate(root).expect("bench input is a valid tree");
    let bytes = Bytes::from(write_frames(
        &FrameHeader::default(),
        &fts::encode_fts(root),
        DEFAULT_CHUNK,
    ));
    let decoded = fts::decode(&bytes).expect("bench input decodes");
    assert_eq!(&decoded.root, root, "bench input decodes to its tree");
    assert!(fts::encode(&decoded) == bytes, "bench input round-trips");
    bytes
}

fn inputs() -> Vec<(&'static str, Bytes)> {
    vec![
        ("plain_2k", framed(&plain_2k())),
        ("html_60k_40named", framed(&html_60k())),
        ("meeting_200recips", framed(&meeting_200())),
        ("attachment_5mb", framed(&attachment_5mb())),
        ("embedded_3deep", framed(&embedded_3deep())),
    ]
}

fn codec(c: &mut Criterion) {
    let inputs = inputs();
    for (name, bytes) in &inputs {
        eprintln!("input {name}: {} bytes framed", bytes.len());
    }

    let mut g = c.benchmark_group("decode");
    for (name, bytes) in &inputs {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| fts::decode(black_box(bytes)).expect("decodes"))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("encode");
    for (name, bytes) in &inputs {
        let decoded = fts::decode(bytes).expect("decodes");
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(*name, |b| b.iter(|| fts::encode(black_box(&decoded))));
    }
    g.finish();

    // Baseline: the same framed 5 MB item copied into a preallocated buffer.
    let (_, big) = inputs
        .iter()
        .find(|(n, _)| *n == "attachment_5mb")
        .expect("5 MB input");
    let src: Vec<u8> = big.to_vec();
    let mut dst = vec![0u8; src.len()];
    let mut g = c.benchmark_group("memcpy");
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.bench_function("attachment_5mb", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
