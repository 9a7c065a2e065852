//! Golden vectors (reference §12 "Test vectors we can construct ourselves").
//! Every vector is written here as hex; no third-party binary data.

mod common;

use bytes::Bytes;
use common::*;
use fts::ast::*;
use fts::error::{ErrorKind, Limits, WarningKind};
use fts::frame::{FrameHeader, PartnerVersion};
use fts::markers;
use fts::value::Value;
use fts::{decode, decode_fts, decode_fts_as, decode_fts_with_limits, encode, encode_fts};

fn roundtrip(input: &Bytes) -> Root {
    let root = decode_fts(input).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(encode_fts(&root), input.to_vec(), "re-encode differs");
    assert_eq!(fts::encoded_len(&root), input.len());
    root
}

fn mc(root: &Root) -> &MessageContent {
    match root {
        Root::MessageContent(mc) => mc,
        other => panic!("expected messageContent, got {:?}", other.kind()),
    }
}

fn u32_of(p: &Prop) -> u32 {
    let b = p.bytes().unwrap();
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

fn within(b: &Bytes, input: &Bytes) -> bool {
    let r = input.as_ptr_range();
    b.is_empty() || (r.start <= b.as_ptr() && b.as_ptr() < r.end)
}

// ---- 1. the §6 worked example ----

#[test]
fn worked_example_unframed() {
    let input = worked_fts();
    assert_eq!(input.len(), 211);
    let root = roundtrip(&input);
    let m = mc(&root);
    assert_eq!(m.props.len(), 5);
    assert_eq!(m.props[0].tag, 0x001A_001F);
    assert_eq!(m.props[0].as_str().unwrap(), "IPM.Note");
    assert_eq!(m.props[1].tag, 0x0037_001F);
    assert_eq!(m.props[1].as_str().unwrap(), "Hi");
    assert_eq!(m.props[2].tag, 0x0029_000B);
    assert_eq!(m.props[2].as_bool(), Some(false));
    assert_eq!(m.props[2].bytes().unwrap().as_ref(), &[0, 0]);
    assert_eq!(m.props[3].tag, 0x8000_001F);
    assert_eq!(
        m.props[3].named,
        Some(named_str(PS_INTERNET_HEADERS, "x-foo"))
    );
    assert_eq!(m.props[3].as_str().unwrap(), "bar");
    assert_eq!(m.props[4].tag, 0x8001_0003);
    assert_eq!(m.props[4].named, Some(named_id(PSETID_COMMON, 0x8510)));
    assert_eq!(m.props[4].as_i32(), Some(0));

    assert_eq!(u32_of(m.recip_delprop.as_ref().unwrap()), 0x0E12_000D);
    assert_eq!(m.recipients.len(), 1);
    let r = &m.recipients[0].props;
    assert_eq!((r[0].tag, r[0].as_i32()), (0x3000_0003, Some(0)));
    assert_eq!((r[1].tag, r[1].as_i32()), (0x0C15_0003, Some(1)));
    assert_eq!(r[2].tag, 0x3001_001F);
    assert_eq!(r[2].as_str().unwrap(), "Bob");

    assert_eq!(u32_of(m.attach_delprop.as_ref().unwrap()), 0x0E13_000D);
    assert_eq!(m.attachments.len(), 1);
    let a = &m.attachments[0];
    assert!(a.embedded.is_none());
    assert_eq!(
        (a.props[0].tag, a.props[0].as_i32()),
        (0x0E21_0003, Some(0))
    );
    assert_eq!(
        (a.props[1].tag, a.props[1].as_i32()),
        (0x3705_0003, Some(1))
    );
    assert_eq!(a.props[2].tag, 0x3701_0102);
    assert_eq!(
        a.props[2].value().unwrap(),
        Value::Binary(Bytes::from_static(b"ABC"))
    );
    // Zero-copy: the value is a slice of the input.
    assert!(within(a.props[2].bytes().unwrap(), &input));
}

#[test]
fn worked_example_framed() {
    let input = worked_framed();
    assert_eq!(input.len(), 281);
    let d = decode(&input).unwrap();
    let f = d.framing.as_ref().expect("framed");
    assert_eq!(f.partner_version().unwrap().to_string(), "14.1.164.0");
    assert_eq!(f.chunk_sizes().collect::<Vec<_>>(), [211]);
    assert!(f.warnings.is_empty() && f.truncated.is_none());
    assert_eq!(d.root, decode_fts(&worked_fts()).unwrap());
    assert_eq!(encode(&d), input.to_vec());

    let header = FrameHeader {
        version: PartnerVersion::from_bytes(&[0x01, 0x0E, 0xA4, 0x80, 0, 0]).unwrap(),
        ..FrameHeader::default()
    };
    assert_eq!(
        fts::write_frames(&header, &worked_fts(), fts::frame::DEFAULT_CHUNK),
        input.to_vec()
    );
}

#[test]
fn upload_items_prefix_reports_truncation_at_242() {
    use base64::Engine;
    let b64 = "AQAAAAgAAAAAAAAAAQAAAAMAAAAYAAAAAQAAAAcDAgAAAAAAwAAAAAAAAEYAJACABAAAAAYAAAABDqSAAAACAAAAcSMAAOSECEBbAAAAL089RklSU1QgT1JHQU5JWkFUSU9OL09VPUVYQ0hBTkdFIEFETUlOSVNUUkFUSVZFIEdST1VQIChGWURJQk9IRjIzU1BETFQpL0NOPVJFQ0lQSUVOVFMvQ049AAMAFwABAAAAsIQaABIAAABJAFAATQAuAE4AbwB0AGUAAAALACMAAAADACYAAAAAAAsAKQAAAAMALgAAAAAAAwA2AAAAAACwhw4=";
    let input = Bytes::from(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    );
    assert_eq!(input.len(), 242);

    let (framing, fts_bytes) = fts::unframe(&input).unwrap();
    let ops: Vec<u32> = framing.records().map(|r| r.opcode).collect();
    assert_eq!(ops, [1, 3, 4]);
    assert_eq!(framing.partner_version().unwrap().to_string(), "14.1.164.0");
    assert_eq!(framing.truncated, Some(0x2371 - fts_bytes.len() as u64));

    // The stream starts as documented.
    let mut lx = fts::lex::Lexer::new(Limits::default());
    let mut col = fts::lex::ElementCollector::new();
    lx.feed(&fts_bytes, &mut |t| col.push(t)).unwrap();
    assert!(lx.finish().unwrap_err().is_truncation());
    let els = col.into_elements();
    let Element::Prop(dn) = &els[0] else { panic!() };
    assert_eq!(dn.tag, 0x4008_84E4);
    assert_eq!(dn.bytes().unwrap().len(), 0x5B);
    assert!(
        dn.as_str()
            .unwrap()
            .starts_with("/O=FIRST ORGANIZATION/OU=")
    );
    let Element::Prop(imp) = &els[1] else {
        panic!()
    };
    assert_eq!((imp.tag, imp.as_i32()), (0x0017_0003, Some(1)));
    let Element::Prop(class) = &els[2] else {
        panic!()
    };
    assert_eq!(class.tag, 0x001A_84B0);
    assert_eq!(class.as_str().unwrap(), "IPM.Note");

    let e = decode(&input).unwrap_err();
    assert_eq!(e.offset, 242);
    assert!(e.is_truncation(), "{e}");
    assert!(e.to_string().starts_with("at byte 242: truncated"), "{e}");
}

// ---- 2. empty message ----

#[test]
fn empty_message_with_and_without_metas() {
    let input = hex("03001640 0D00120E 03001640 0D00130E");
    let root = roundtrip(&input);
    let m = mc(&root);
    assert!(m.props.is_empty() && m.recipients.is_empty() && m.attachments.is_empty());
    assert_eq!(u32_of(m.recip_delprop.as_ref().unwrap()), 0x0E12_000D);
    assert_eq!(u32_of(m.attach_delprop.as_ref().unwrap()), 0x0E13_000D);

    let root = roundtrip(&Bytes::new());
    assert_eq!(root, Root::MessageContent(MessageContent::default()));

    // Only the attachment meta: it goes to the attachment slot.
    let root = roundtrip(&hex("03001640 0D00130E"));
    assert!(mc(&root).recip_delprop.is_none() && mc(&root).attach_delprop.is_some());
}

// ---- 3. fixed types ----

#[test]
fn fixed_types_with_edge_values() {
    let input = hex("
        02000100 FFFF
        02000200 FF7F
        03000300 FFFFFFFF
        03000400 FFFFFF7F
        04000500 0100C07F
        05000600 2301000000 00F87F
        05000700 00000000 00000080
        06000800 00000000 00000080
        07000900 00000000 0000F03F
        0A000A00 05400080
        0B000B00 0200
        0B000C00 0100
        14000D00 FFFFFFFF FFFFFF7F
        40000E00 00000000 00000000
        40000F00 FFFFFFFF FFFFFFFF
        48001000 08200600 00000000 C0000000 00000046
    ");
    let root = roundtrip(&input);
    let p = &mc(&root).props;
    assert_eq!(p[0].value().unwrap(), Value::I16(-1));
    assert_eq!(p[1].value().unwrap(), Value::I16(i16::MAX));
    assert_eq!(p[2].value().unwrap(), Value::I32(-1));
    assert_eq!(p[3].value().unwrap(), Value::I32(i32::MAX));
    let Value::F32(f) = p[4].value().unwrap() else {
        panic!()
    };
    assert!(f.is_nan() && f.to_bits() == 0x7FC0_0001);
    let Value::F64(d) = p[5].value().unwrap() else {
        panic!()
    };
    assert!(d.is_nan() && d.to_bits() == 0x7FF8_0000_0000_0123);
    let Value::F64(z) = p[6].value().unwrap() else {
        panic!()
    };
    assert!(z == 0.0 && z.is_sign_negative());
    assert_eq!(p[7].value().unwrap(), Value::Currency(i64::MIN));
    assert_eq!(p[8].value().unwrap(), Value::AppTime(1.0));
    assert_eq!(p[9].value().unwrap(), Value::ErrorCode(0x8000_4005));
    // Boolean 02 00: true, and the raw bytes survive.
    assert_eq!(p[10].as_bool(), Some(true));
    assert_eq!(p[10].bytes().unwrap().as_ref(), &[2, 0]);
    assert_eq!(p[11].as_bool(), Some(true));
    assert_eq!(p[12].value().unwrap(), Value::I64(i64::MAX));
    assert_eq!(p[13].as_filetime(), Some(0));
    assert_eq!(p[14].as_filetime(), Some(u64::MAX));
    assert_eq!(p[15].value().unwrap(), Value::Guid(PSETID_COMMON));
}

// ---- 4. variable types ----

#[test]
fn var_types() {
    let input = hex("
        1F003700 02000000 0000
        02010100 00000000
        1E000200 05000000 636166E9 00
        E4840300 05000000 636166E9 00
        B0840400 0A000000 63006100 6600E900 0000
        1F000500 04000000 48006900
        1F000600 03000000 480069
        0D000700 02000000 ABCD
        FB000800 01000000 01
    ");
    let root = roundtrip(&input);
    let p = &mc(&root).props;
    assert_eq!(p[0].as_str().unwrap(), "");
    assert_eq!(p[0].bytes().unwrap().as_ref(), &[0, 0]);
    assert_eq!(p[1].value().unwrap(), Value::Binary(Bytes::new()));
    assert_eq!(
        p[2].value_cp(Some(1252)).unwrap(),
        Value::String("café".into())
    );
    // 0x84E4: code page 1252 decoded through encoding_rs.
    assert_eq!(p[3].as_str().unwrap(), "café");
    assert_eq!(p[4].as_str().unwrap(), "café");
    // A string without its NUL is kept as is.
    assert_eq!(p[5].bytes().unwrap().as_ref(), b"H\0i\0");
    assert_eq!(p[5].as_str().unwrap(), "Hi");
    // An odd UTF-16 length is kept as is.
    assert_eq!(p[6].bytes().unwrap().len(), 3);
    assert_eq!(
        p[7].value().unwrap(),
        Value::Object(Bytes::from_static(&[0xAB, 0xCD]))
    );
    assert_eq!(
        p[8].value().unwrap(),
        Value::ServerId(Bytes::from_static(&[1]))
    );

    // A large value (1 MiB) is a zero-copy slice.
    let mut big = hex("02010137 00001000").to_vec();
    big.extend(std::iter::repeat_n(0x5A, 1 << 20));
    let big = Bytes::from(big);
    let root = roundtrip(&big);
    let b = mc(&root).props[0].bytes().unwrap();
    assert_eq!(b.len(), 1 << 20);
    assert!(within(b, &big));
}

// ---- 5. multi-valued ----

#[test]
fn multi_valued_types() {
    let input = hex("
        02100100 00000000
        02100200 01000000 0500
        03100300 03000000 01000000 02000000 FFFFFFFF
        04100400 01000000 0000803F
        05100500 02000000 00000000 0000F03F 00000000 000000C0
        06100600 01000000 01000000 00000000
        07100700 00000000
        14100800 02000000 01000000 00000000 FFFFFFFF FFFFFFFF
        1E100900 03000000 02000000 6100 01000000 00 00000000
        1F100A00 02000000 02000000 0000 04000000 62000000
        40100B00 01000000 00000000 00000001
        48100C00 01000000 86030200 00000000 C0000000 00000046
        02110D00 03000000 00000000 01000000 FF 02000000 0102
        B0940080 08200600 00000000 C0000000 00000046 01
            45006E00 74006900 74007900 4E006100 6D006500 73000000
            01000000 22000000
            44006F00 6D006100 69006E00 43006C00 61007300 73006900 66006900 65007200 0000
    ");
    let root = roundtrip(&input);
    let p = &mc(&root).props;
    assert_eq!(p.len(), 14);
    let counts: Vec<usize> = p
        .iter()
        .map(|x| match &x.data {
            PropData::Multi(v) => v.len(),
            PropData::Single(_) => usize::MAX,
        })
        .collect();
    assert_eq!(counts, [0, 1, 3, 1, 2, 1, 0, 2, 3, 2, 1, 1, 3, 1]);
    assert_eq!(
        p[2].value().unwrap(),
        Value::Multi(vec![Value::I32(1), Value::I32(2), Value::I32(-1)])
    );
    assert_eq!(
        p[8].value().unwrap(),
        Value::Multi(vec![
            Value::String("a".into()),
            Value::String("".into()),
            Value::String("".into())
        ])
    );
    assert_eq!(
        p[9].value().unwrap(),
        Value::Multi(vec![Value::String("".into()), Value::String("b".into())])
    );
    // The observed 0x94B0 shape.
    assert_eq!(p[13].tag, 0x8000_94B0);
    assert_eq!(p[13].named, Some(named_str(PSETID_COMMON, "EntityNames")));
    assert_eq!(
        p[13].value().unwrap(),
        Value::Multi(vec![Value::String("DomainClassifier".into())])
    );
}

// ---- 6. named properties ----

#[test]
fn named_properties() {
    // LID 0x8510; "Größe" (non-ASCII); "a😀" (surrogate pair); an unpaired
    // surrogate; the same definition under two local ids.
    let input = hex("
        03000080 08200600 00000000 C0000000 00000046 00 10850000 07000000
        1F000180 86030200 00000000 C0000000 00000046 01 47007200 F600DF00 65000000 02000000 0000
        1F000280 86030200 00000000 C0000000 00000046 01 61003DD8 00DE0000 02000000 0000
        03000380 86030200 00000000 C0000000 00000046 01 00D80000 01000000
        03002381 08200600 00000000 C0000000 00000046 00 10850000 08000000
    ");
    let root = roundtrip(&input);
    let p = &mc(&root).props;
    assert_eq!(p[0].named, Some(named_id(PSETID_COMMON, 0x8510)));
    assert_eq!(
        p[1].named.as_ref().unwrap().name.name_lossy().unwrap(),
        "Größe"
    );
    assert_eq!(p[2].named, Some(named_str(PS_INTERNET_HEADERS, "a😀")));
    assert_eq!(
        p[3].named.as_ref().unwrap().name,
        PropName::Name(vec![0xD800])
    );
    assert_eq!(p[0].named, p[4].named);
    assert_ne!(p[0].id(), p[4].id());
    assert_eq!((p[0].as_i32(), p[4].as_i32()), (Some(7), Some(8)));
}

#[test]
fn named_property_errors() {
    // Bad kind byte 0x02 at offset 4 + 16 = 20.
    let e = decode_fts(&hex(
        "03000080 08200600 00000000 C0000000 00000046 02 10850000 00000000",
    ))
    .unwrap_err();
    assert_eq!((e.offset, &e.kind), (20, &ErrorKind::BadNamedKind(2)));
    assert_eq!(
        e.to_string(),
        "at byte 20: bad named-property kind byte 0x02: expected 0x00 (dispid) or 0x01 (name)"
    );
    // A name that never ends.
    let e = decode_fts(&hex(
        "03000080 08200600 00000000 C0000000 00000046 01 41004200 43",
    ))
    .unwrap_err();
    assert_eq!((e.offset, &e.kind), (26, &ErrorKind::UnterminatedName));
    // A name over the limit: error at the first unit past it.
    let limits = Limits {
        max_name_len: 2,
        ..Limits::default()
    };
    let input = hex("03000080 08200600 00000000 C0000000 00000046 01 41004200 43000000 00000000");
    let e = decode_fts_with_limits(&input, &limits).unwrap_err();
    assert_eq!(
        (e.offset, &e.kind),
        (25, &ErrorKind::NameTooLong { max: 2 })
    );
    assert!(decode_fts(&input).is_ok());
}

// ---- 7. recipients ----

#[test]
fn recipients_to_cc_bcc_and_ex() {
    let mut s = String::from("03001640 0D00120E");
    for (row, ty) in [(0u32, 1u32), (1, 2), (2, 3)] {
        s += &format!(
            "03000340 03000030 {} 0300150C {} 03000440",
            hex::encode(row.to_le_bytes()),
            hex::encode(ty.to_le_bytes())
        );
    }
    // An EX recipient with its SMTP address.
    s += "03000340 03000030 03000000 0300150C 01000000
          B0840230 06000000 45005800 0000
          B0840330 0C000000 2F006F00 3D004500 58000000
          B084FE39 0C000000 61004000 62002E00 63000000
          03000440 03001640 0D00130E";
    let root = roundtrip(&hex(&s));
    let m = mc(&root);
    assert_eq!(m.recipients.len(), 4);
    let types: Vec<i32> = m
        .recipients
        .iter()
        .map(|r| r.props[1].as_i32().unwrap())
        .collect();
    assert_eq!(types, [1, 2, 3, 1]);
    let ex = &m.recipients[3].props;
    assert_eq!(ex[2].as_str().unwrap(), "EX");
    assert_eq!(ex[3].as_str().unwrap(), "/o=EX");
    assert_eq!(ex[4].tag, 0x39FE_84B0);
    assert_eq!(ex[4].as_str().unwrap(), "a@b.c");
}

// ---- 8. attachments ----

fn attach_number(n: u32) -> String {
    format!("0300210E {}", hex::encode(n.to_le_bytes()))
}

/// A messageContent nesting `depth` embedded messages, each with a recipient
/// and one attachment holding the next level.
fn nested(depth: usize) -> String {
    let mut s = String::new();
    for level in 0..depth {
        s += &format!(
            "1F003700 04000000 {}00 0000 03001640 0D00120E 03000340 0300150C 01000000 03000440
             03001640 0D00130E 03000040 {} 03000537 05000000 03000140",
            hex::encode([b'0' + (level % 10) as u8]),
            attach_number(0)
        );
    }
    s += "1F003700 04000000 78000000";
    for _ in 0..depth {
        s += " 03000240 03000E40";
    }
    s
}

#[test]
fn attachments_by_value_inline_and_5mb() {
    let mut v = hex(&format!(
        "03001640 0D00120E 03001640 0D00130E
         03000040 {} 03000537 01000000 03001437 04000000 B0841237 0A000000 69006D00 67003100 0000 03000E40
         03000040 {} 03000537 01000000 02010137 0000 5000",
        attach_number(0),
        attach_number(1)
    ))
    .to_vec();
    let data: Vec<u8> = (0..5u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
    v.extend_from_slice(&data);
    v.extend_from_slice(&hex("03000E40"));
    let input = Bytes::from(v);
    let root = roundtrip(&input);
    let m = mc(&root);
    assert_eq!(m.attachments.len(), 2);
    let inline = &m.attachments[0].props;
    assert_eq!((inline[2].tag, inline[2].as_i32()), (0x3714_0003, Some(4)));
    assert_eq!(inline[3].as_str().unwrap(), "img1");
    let big = m.attachments[1].props[2].bytes().unwrap();
    assert_eq!(big.as_ref(), &data[..]);
    assert!(within(big, &input));
}

#[test]
fn embedded_messages_three_deep() {
    let input = hex(&nested(3));
    let root = roundtrip(&input);
    let mut cur = mc(&root);
    for level in 0..3 {
        assert_eq!(cur.props[0].as_str().unwrap(), format!("{level}"));
        assert_eq!(cur.recipients.len(), 1);
        let a = &cur.attachments[0];
        assert_eq!(a.props[1].as_i32(), Some(5));
        cur = a.embedded.as_deref().expect("embedded");
    }
    assert_eq!(cur.props[0].as_str().unwrap(), "x");
    assert!(cur.attachments.is_empty());

    let mut depths = Vec::new();
    root.for_each_prop(&mut |path, p| {
        if p.tag == 0x0037_001F {
            depths.push(path.depth);
        }
    });
    assert_eq!(depths, [0, 1, 2, 3]);
}

#[test]
fn embedding_deeper_than_the_limit_is_an_error() {
    let limits = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    let input = hex(&nested(3));
    let e = decode_fts_with_limits(&input, &limits).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DepthExceeded { max: 2 });
    // The third StartEmbed: find its offset by scanning for the marker.
    let starts: Vec<usize> = input
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == [3, 0, 1, 0x40])
        .map(|(i, _)| i)
        .collect();
    assert_eq!(e.offset, starts[2] as u64);
    assert!(decode_fts_with_limits(&hex(&nested(2)), &limits).is_ok());

    // Default limit 32: 32 levels decode, 33 do not.
    assert!(decode_fts(&hex(&nested(32))).is_ok());
    let e = decode_fts(&hex(&nested(33))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DepthExceeded { max: 32 });
}

// ---- 9. grammar violations ----

#[test]
fn grammar_violations_are_errors_with_offsets() {
    // EndEmbed without StartEmbed (offset 8: after one property).
    let e = decode_fts(&hex("03000030 00000000 03000240")).unwrap_err();
    assert_eq!(e.offset, 8);
    assert!(matches!(
        e.kind,
        ErrorKind::MarkerOutOfPlace {
            marker: markers::END_EMBED,
            ..
        }
    ));
    assert!(e.to_string().contains("EndEmbed"), "{e}");

    // StartRecip inside an attachment propList.
    let e = decode_fts(&hex(
        "03000040 0300210E 00000000 03000340 03000440 03000E40",
    ))
    .unwrap_err();
    assert_eq!(e.offset, 12);
    assert!(matches!(
        e.kind,
        ErrorKind::MarkerOutOfPlace {
            marker: markers::START_RECIP,
            context: "attachment propList",
            ..
        }
    ));

    // A property after the attachments.
    let e = decode_fts(&hex(
        "03000040 0300210E 00000000 03000E40 03000030 00000000",
    ))
    .unwrap_err();
    assert_eq!(e.offset, 16);
    assert!(matches!(
        e.kind,
        ErrorKind::PropOutOfPlace {
            tag: 0x3000_0003,
            ..
        }
    ));

    // A recipient after an attachment.
    let e = decode_fts(&hex("03000040 03000E40 03000340 03000440")).unwrap_err();
    assert_eq!(e.offset, 8);

    // Missing EndAttach / EndToRecip / EndEmbed.
    for s in [
        "03000040 0300210E 00000000",
        "03000340 03000030 00000000",
        "03000040 0300210E 00000000 03000140",
    ] {
        let input = hex(s);
        let e = decode_fts(&input).unwrap_err();
        assert_eq!(e.offset, input.len() as u64, "{s}");
        assert!(matches!(e.kind, ErrorKind::UnexpectedEnd { .. }), "{e}");
    }

    // EndEmbed not followed by EndAttach.
    let e = decode_fts(&hex("03000040 03000140 03000240 03000040")).unwrap_err();
    assert_eq!(e.offset, 12);

    // A third FXDelProp.
    let e = decode_fts(&hex(
        "03001640 0D00120E 03001640 0D00130E 03001640 0D00130E",
    ))
    .unwrap_err();
    assert_eq!(e.offset, 16);

    // Unknown type word.
    let e = decode_fts(&hex("03000030 00000000 01003700")).unwrap_err();
    assert_eq!(
        (e.offset, &e.kind),
        (8, &ErrorKind::UnknownType { tag: 0x0037_0001 })
    );
    let e = decode_fts(&hex("0B103700 00000000")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnknownType { tag: 0x0037_100B });
}

#[test]
fn missing_attach_number_is_accepted_with_a_warning() {
    let input = hex("03000040 03000537 01000000 03000E40");
    let d = decode(&input).unwrap();
    assert_eq!(d.warnings.len(), 1);
    assert_eq!(d.warnings[0].offset, 0);
    assert_eq!(d.warnings[0].kind, WarningKind::MissingAttachNumber);
    assert_eq!(encode(&d), input.to_vec());
}

#[test]
fn limits_are_enforced() {
    let limits = Limits {
        max_value_len: 3,
        max_mv_count: 2,
        max_total_size: 64,
        ..Limits::default()
    };
    let e = decode_fts_with_limits(&hex("02010100 04000000 01020304"), &limits).unwrap_err();
    assert_eq!(
        (e.offset, &e.kind),
        (4, &ErrorKind::ValueTooLong { len: 4, max: 3 })
    );
    let e = decode_fts_with_limits(
        &hex("03100100 03000000 00000000 00000000 00000000"),
        &limits,
    )
    .unwrap_err();
    assert_eq!(
        (e.offset, &e.kind),
        (4, &ErrorKind::MvCountTooLarge { count: 3, max: 2 })
    );
    let e = decode_fts_with_limits(&Bytes::from(vec![0u8; 65]), &limits).unwrap_err();
    assert_eq!(
        (e.offset, &e.kind),
        (64, &ErrorKind::TotalSizeExceeded { max: 64 })
    );
    // A huge count with no data behind it: truncation, no huge allocation.
    let e = decode_fts(&hex("03100100 00000100 01000000")).unwrap_err();
    assert!(e.is_truncation());
    let e = decode_fts(&hex("02010100 FFFFFF08")).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::Truncated {
            what: "value",
            need: 0x08FF_FFFF
        }
    );
}

// ---- root selection ----

#[test]
fn root_selection() {
    // message
    let m = hex("03000C40 1F003700 02000000 0000 03001640 0D00120E 03001640 0D00130E 03000D40");
    let root = roundtrip(&m);
    let Root::Message(msg) = &root else {
        panic!("{:?}", root.kind())
    };
    assert!(!msg.fai);
    assert!(msg.content.attach_delprop.is_some());

    // FAI + normal → messageList; with an EcWarning first → messageList too.
    let list = hex("03001040 03000D40 03000C40 03000D40");
    let Root::MessageList(l) = roundtrip(&list) else {
        panic!()
    };
    assert!(l[0].1.fai && !l[1].1.fai);
    let list = hex("03000F40 05000000 03000C40 03000D40");
    let Root::MessageList(l) = roundtrip(&list) else {
        panic!()
    };
    assert_eq!(l[0].0.as_ref().unwrap().as_i32(), Some(5));

    // An ICS state stream and a folder content are flat elements.
    let ics = hex("03003A40 02019667 02000000 0102 03003B40 03001440");
    let Root::Elements(els) = roundtrip(&ics) else {
        panic!()
    };
    assert_eq!(els.len(), 4);
    let folder = hex("1F000130 04000000 41000000 03001640 0D000F36 03000C40 03000D40");
    assert_eq!(roundtrip(&folder).kind(), RootKind::Elements);
    let newfolder = hex("1F000130 04000000 41000000 02011140 00000000");
    assert_eq!(roundtrip(&newfolder).kind(), RootKind::Elements);
    // Markers typed boolean/binary are markers.
    let prog = hex("0B007440 03000030 00000000 0201 7B40");
    let Root::Elements(els) = roundtrip(&prog) else {
        panic!()
    };
    assert_eq!(els[0], Element::Marker(markers::INCR_SYNC_PROGRESS_MODE));
    assert_eq!(els[2], Element::Marker(markers::INCR_SYNC_GROUP_INFO));
    // MetaTagIdsetGiven is binary.
    let idset = hex("03003A40 03001740 03000000 010203 03003B40");
    let Root::Elements(els) = roundtrip(&idset) else {
        panic!()
    };
    let Element::Prop(p) = &els[1] else { panic!() };
    assert_eq!(p.bytes().unwrap().as_ref(), &[1, 2, 3]);
    assert_eq!(
        p.value().unwrap(),
        Value::Binary(Bytes::from_static(&[1, 2, 3]))
    );

    // Forced roots.
    let att = hex("0300210E 00000000 03000140 1F003700 02000000 0000 03000240");
    let root = decode_fts_as(&att, RootKind::AttachmentContent).unwrap();
    let Root::AttachmentContent(a) = &root else {
        panic!()
    };
    assert!(a.embedded.is_some());
    assert_eq!(encode_fts(&root), att.to_vec());
    let root = decode_fts_as(&hex("03000C40 03000D40"), RootKind::MessageList).unwrap();
    assert_eq!(root.kind(), RootKind::MessageList);
    assert!(
        decode_fts_as(
            &hex("03000C40 03000D40 03000030 00000000"),
            RootKind::Message
        )
        .is_err()
    );
    assert!(decode_fts_as(&folder, RootKind::MessageContent).is_err());
    assert_eq!(
        decode_fts_as(&m, RootKind::Elements).unwrap().kind(),
        RootKind::Elements
    );

    // A message missing EndMessage.
    let e = decode_fts(&hex("03000C40 03000030 00000000")).unwrap_err();
    assert_eq!(e.offset, 12);
    assert!(matches!(
        e.kind,
        ErrorKind::UnexpectedEnd {
            expected: "EndMessage",
            ..
        }
    ));
}

#[test]
fn validate_rejects_unencodable_props() {
    use fts::write::{InvalidProp, validate_prop};
    assert!(validate_prop(&Prop::single(markers::START_RECIP, None, vec![0; 4])).is_err());
    assert_eq!(
        validate_prop(&Prop::single(0x0037_0003, None, vec![0; 3])),
        Err(InvalidProp::Size {
            tag: 0x0037_0003,
            expected: 4,
            found: 3
        })
    );
    assert!(validate_prop(&Prop::single(0x8000_0003, None, vec![0; 4])).is_err());
    assert!(fts::validate(&decode_fts(&worked_fts()).unwrap()).is_ok());
}
