//! Graph extended-property ids: rendering, parsing, matching, values.

use bytes::Bytes;
use fts::value::build;
use fts::{MessageContent, NamedProp, Prop, PropData, PropName};
use mapi::extprop::{ExtKey, ExtPropIdError, ExtValue, extended_properties, find, render_value};
use mapi::named::{self, PS_PUBLIC_STRINGS};
use mapi::tags::id;
use mapi::{ExtPropId, FileTime, GraphType};

fn p(tag: u32, bytes: &[u8]) -> Prop {
    Prop::single(tag, None, bytes.to_vec())
}

#[test]
fn renders_ids_like_exchange() {
    let cases: Vec<(Prop, &str)> = vec![
        (build::string(id::SUBJECT, None, "x"), "String 0x37"),
        (build::unicode(id::SUBJECT, None, "x"), "String 0x37"),
        (p(0x0037_001E, b"x\0"), "String 0x37"),
        (
            build::time(id::MESSAGE_DELIVERY_TIME, None, 1),
            "SystemTime 0xe06",
        ),
        (build::i32(id::MESSAGE_FLAGS, None, 1), "Integer 0xe07"),
        (
            build::bool(id::HAS_ATTACHMENTS, None, true),
            "Boolean 0xe1b",
        ),
        (build::binary(id::HTML, None, vec![1]), "Binary 0x1013"),
        (build::i64(0x0E4B, None, 5), "Long 0xe4b"),
        (build::f64(0x1234, None, 1.5), "Double 0x1234"),
        (p(0x1234_0004, &1.5f32.to_le_bytes()), "Float 0x1234"),
        (p(0x1234_0002, &7i16.to_le_bytes()), "Short 0x1234"),
        (p(0x1234_0006, &15000i64.to_le_bytes()), "Currency 0x1234"),
        (
            build::guid(0x1234, None, named::PSETID_COMMON),
            "CLSID 0x1234",
        ),
        (build::unicodes(0x1234, None, &["a"]), "StringArray 0x1234"),
        (build::strings(0x1234, None, &["a"]), "StringArray 0x1234"),
        (build::i32s(0x1234, None, &[1, 2]), "IntegerArray 0x1234"),
        (
            build::string(0x8001, Some(named::KEYWORDS.to_named_prop()), "x"),
            "String {00020329-0000-0000-c000-000000000046} Name Keywords",
        ),
        (
            build::strings(0x8001, Some(named::KEYWORDS.to_named_prop()), &["x"]),
            "StringArray {00020329-0000-0000-c000-000000000046} Name Keywords",
        ),
        (
            build::string(0x8002, Some(named::LOCATION.to_named_prop()), "x"),
            "String {00062002-0000-0000-c000-000000000046} Id 0x8208",
        ),
        (
            build::i32(0x8002, Some(named::GLOBAL_OBJECT_ID.to_named_prop()), 0),
            "Integer {6ed8da90-450b-101b-98da-00aa003f1305} Id 0x3",
        ),
    ];
    for (prop, want) in cases {
        let got = ExtPropId::for_prop(&prop).unwrap();
        assert_eq!(got.to_string(), want);
        // Every rendered id parses back to itself and matches its property.
        assert_eq!(ExtPropId::parse(want).unwrap(), got, "{want}");
        assert!(got.matches(&prop), "{want}");
    }
    // Types Graph cannot express.
    assert!(ExtPropId::for_prop(&p(0x1234_000A, &[0; 4])).is_none());
    assert!(ExtPropId::for_prop(&p(0x1234_00FB, &[1])).is_none());
    assert!(ExtPropId::for_prop(&p(0x1234_000D, &[1])).is_none());
}

#[test]
fn parses_every_form() {
    let subject = ExtPropId {
        ty: GraphType::String,
        key: ExtKey::Tag(0x37),
    };
    for s in [
        "String 0x37",
        "String 0x0037",
        "string 0X0037",
        "STRING 0x037",
        "  String   0x37  ",
    ] {
        assert_eq!(ExtPropId::parse(s).unwrap(), subject, "{s}");
    }
    assert_eq!(
        ExtPropId::parse("SystemTime 0x0E06").unwrap(),
        ExtPropId::parse("systemtime 0xe06").unwrap()
    );
    let kw = ExtPropId {
        ty: GraphType::StringArray,
        key: ExtKey::Name {
            guid: PS_PUBLIC_STRINGS,
            name: "Keywords".into(),
        },
    };
    for s in [
        "StringArray {00020329-0000-0000-C000-000000000046} Name Keywords",
        "stringarray 00020329-0000-0000-c000-000000000046 name Keywords",
        "StringArray {00020329-0000-0000-c000-000000000046} NAME Keywords",
    ] {
        assert_eq!(ExtPropId::parse(s).unwrap(), kw, "{s}");
    }
    // Names keep their case and inner spaces.
    let spaced =
        ExtPropId::parse("String {66f5a359-4659-4830-9070-00047ec6ac6e} Name My Prop").unwrap();
    assert_eq!(
        spaced.key,
        ExtKey::Name {
            guid: fts::Guid::parse("66f5a359-4659-4830-9070-00047ec6ac6e").unwrap(),
            name: "My Prop".into()
        }
    );
    let lid = ExtPropId::parse("Integer {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Id 0x8012").unwrap();
    assert_eq!(
        lid,
        ExtPropId::parse("integer 8eccc264-6880-4ebe-992f-8888d2eeaa1d id 0x00008012").unwrap()
    );
    assert_eq!(
        lid,
        ExtPropId::parse("Integer {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Id 32786").unwrap()
    );
    assert_eq!(
        lid.to_string(),
        "Integer {8eccc264-6880-4ebe-992f-8888d2eeaa1d} Id 0x8012"
    );
    assert_eq!(
        ExtPropId::parse("CLSIDArray 0x1").unwrap().ty,
        GraphType::ClsidArray
    );
    assert_eq!(
        "Binary 0xff9".parse::<ExtPropId>().unwrap().to_string(),
        "Binary 0xff9"
    );
}

#[test]
fn rejects_bad_ids_with_clear_errors() {
    use ExtPropIdError as E;
    let err = |s: &str| ExtPropId::parse(s).unwrap_err();
    assert_eq!(err(""), E::Empty);
    assert_eq!(err("Str 0x37"), E::UnknownType("Str".into()));
    assert_eq!(err("String"), E::Incomplete("String".into()));
    assert_eq!(err("String 0x"), E::BadTag("0x".into()));
    assert_eq!(err("String 0xZZ"), E::BadTag("0xZZ".into()));
    assert_eq!(err("String 55"), E::BadTag("55".into()));
    assert_eq!(err("String 0x4001001E"), E::TagOutOfRange(0x4001_001E));
    assert_eq!(err("String 0x8001"), E::TagOutOfRange(0x8001));
    assert_eq!(err("String 0x37 extra"), E::Trailing("extra".into()));
    assert_eq!(err("String {nope} Name x"), E::BadGuid("{nope}".into()));
    assert_eq!(
        err("String {00020329-0000-0000-C000-000000000046} Tag x"),
        E::BadKind("Tag".into())
    );
    assert_eq!(
        err("String {00020329-0000-0000-C000-000000000046} Name"),
        E::EmptyName
    );
    assert_eq!(
        err("String {00020329-0000-0000-C000-000000000046} Id 0xG1"),
        E::BadDispid("0xG1".into())
    );
    assert_eq!(
        err("String {00020329-0000-0000-C000-000000000046}"),
        E::BadKind("".into())
    );
    // Messages say what to do.
    let msg = err("String 0x8001").to_string();
    assert!(msg.contains("Id 0x"), "{msg}");
    let msg = err("Strin 0x37").to_string();
    assert!(msg.contains("expected one of"), "{msg}");
}

#[test]
fn matching_is_by_type_and_guid_name() {
    let kw = build::strings(0x8123, Some(named::KEYWORDS.to_named_prop()), &["a"]);
    let id = ExtPropId::parse("StringArray {00020329-0000-0000-C000-000000000046} Name Keywords")
        .unwrap();
    assert!(id.matches(&kw));
    // Same name, other set; other name case; other type; tagged id equal to the local id.
    let other_set = build::strings(
        0x8123,
        Some(NamedProp {
            guid: named::PSETID_COMMON,
            name: PropName::Name("Keywords".encode_utf16().collect()),
        }),
        &["a"],
    );
    assert!(!id.matches(&other_set));
    let lower = build::strings(
        0x8123,
        Some(NamedProp {
            guid: PS_PUBLIC_STRINGS,
            name: PropName::Name("keywords".encode_utf16().collect()),
        }),
        &["a"],
    );
    assert!(!id.matches(&lower));
    assert!(
        !ExtPropId::parse("String {00020329-0000-0000-C000-000000000046} Name Keywords")
            .unwrap()
            .matches(&kw)
    );
    let subject = build::string(id::SUBJECT, None, "s");
    assert!(ExtPropId::parse("String 0x0037").unwrap().matches(&subject));
    assert!(
        !ExtPropId::parse("Integer 0x0037")
            .unwrap()
            .matches(&subject)
    );
    assert!(!ExtPropId::parse("String 0x0038").unwrap().matches(&subject));
    let named_at_37 = build::string(0x8037, Some(named::LOCATION.to_named_prop()), "s");
    assert!(
        !ExtPropId::parse("String 0x37")
            .unwrap()
            .matches(&named_at_37)
    );
    let loc = ExtPropId::parse("String {00062002-0000-0000-C000-000000000046} Id 0x8208").unwrap();
    assert!(loc.matches(&named_at_37));
}

#[test]
fn renders_values_like_graph() {
    let v = |p: &Prop| render_value(p, None).unwrap();
    let s = |x: &str| ExtValue::Single(x.to_string());
    assert_eq!(v(&build::string(1, None, "héllo")), s("héllo"));
    assert_eq!(v(&build::i32(1, None, -5)), s("-5"));
    assert_eq!(v(&build::bool(1, None, true)), s("true"));
    assert_eq!(v(&build::bool(1, None, false)), s("false"));
    assert_eq!(v(&build::i64(1, None, 1 << 40)), s("1099511627776"));
    assert_eq!(v(&build::f64(1, None, 2.0)), s("2"));
    assert_eq!(v(&build::f64(1, None, 0.25)), s("0.25"));
    assert_eq!(
        v(&build::time(1, None, FileTime::from_unix(1_704_067_200).0)),
        s("2024-01-01T00:00:00Z")
    );
    assert_eq!(v(&build::binary(1, None, b"hello".to_vec())), s("aGVsbG8="));
    assert_eq!(
        v(&build::guid(1, None, named::PSETID_COMMON)),
        s("00062008-0000-0000-c000-000000000046")
    );
    assert_eq!(
        v(&build::strings(1, None, &["a", "b"])),
        ExtValue::Multi(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        v(&build::i32s(1, None, &[1, 2])),
        ExtValue::Multi(vec!["1".into(), "2".into()])
    );
    // Undecodable bytes render as nothing rather than garbage.
    assert_eq!(render_value(&p(0x0001_0003, &[1]), None), None);
    assert_eq!(
        render_value(
            &Prop {
                tag: 0x0001_0003,
                named: None,
                data: PropData::Multi(vec![Bytes::from_static(&[0; 4])])
            },
            None
        ),
        None
    );
}

#[test]
fn lists_message_properties() {
    let m = MessageContent {
        props: vec![
            build::string(id::SUBJECT, None, "Hi"),
            build::time(id::MESSAGE_DELIVERY_TIME, None, FileTime::from_unix(0).0),
            p(0x0E4C_000A, &[0; 4]),
            build::strings(0x8001, Some(named::KEYWORDS.to_named_prop()), &["Red"]),
        ],
        ..Default::default()
    };
    let (single, multi) = extended_properties(&m);
    assert_eq!(single.len(), 2);
    assert_eq!(single[0].id, "String 0x37");
    assert_eq!(single[0].value, "Hi");
    assert_eq!(single[1].id, "SystemTime 0xe06");
    assert_eq!(single[1].value, "1970-01-01T00:00:00Z");
    assert_eq!(multi.len(), 1);
    assert_eq!(
        multi[0].id,
        "StringArray {00020329-0000-0000-c000-000000000046} Name Keywords"
    );
    assert_eq!(multi[0].value, vec!["Red"]);
    let json = serde_json::to_value(&single[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"id": "String 0x37", "value": "Hi"})
    );
    let q = ExtPropId::parse("SystemTime 0x0E06").unwrap();
    assert_eq!(find(&m, &q).map(|p| p.id()), Some(0x0E06));
}
