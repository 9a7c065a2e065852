//! Property tests: arbitrary trees round-trip; the lexer agrees with the decoder
//! under any chunking; truncated or mutated input never panics, and whatever the
//! decoder accepts re-encodes byte for byte.

use bytes::Bytes;
use fts::ast::*;
use fts::error::Limits;
use fts::lex::{Shape, lex_elements, value_shape};
use fts::markers;
use fts::{decode, decode_fts, decode_fts_as, encode, encode_fts, encoded_len};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

const TYPES: &[u16] = &[
    0x0002, 0x0003, 0x0004, 0x0005, 0x0006, 0x0007, 0x000A, 0x000B, 0x0014, 0x0040, 0x0048, 0x001E,
    0x001F, 0x0102, 0x000D, 0x00FB, 0x84B0, 0x84E4, 0x1002, 0x1003, 0x1004, 0x1005, 0x1006, 0x1007,
    0x1014, 0x1040, 0x1048, 0x101E, 0x101F, 0x1102, 0x94B0,
];

fn bytes(n: impl Into<proptest::collection::SizeRange>) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), n).prop_map(Bytes::from)
}

fn data_for(tag: u32) -> BoxedStrategy<PropData> {
    match value_shape(tag).expect("valid type") {
        Shape::Fixed(n) => bytes(n).prop_map(PropData::Single).boxed(),
        Shape::Var => bytes(0..12).prop_map(PropData::Single).boxed(),
        Shape::MultiFixed(n) => vec(bytes(n), 0..4).prop_map(PropData::Multi).boxed(),
        Shape::MultiVar => vec(bytes(0..8), 0..4).prop_map(PropData::Multi).boxed(),
    }
}

fn named() -> impl Strategy<Value = NamedProp> {
    let name = prop_oneof![
        any::<u32>().prop_map(PropName::Id),
        vec(1u16..=0xFFFF, 0..6).prop_map(PropName::Name),
    ];
    (any::<[u8; 16]>(), name).prop_map(|(g, name)| NamedProp {
        guid: Guid(g),
        name,
    })
}

/// A property with an id from `ids` (never a marker value).
fn prop_in(ids: impl Strategy<Value = u16>) -> impl Strategy<Value = Prop> {
    (ids, select(TYPES), named())
        .prop_filter("not a marker", |(id, ty, _)| {
            !markers::is_marker(((*id as u32) << 16) | *ty as u32)
        })
        .prop_flat_map(|(id, ty, n)| {
            let tag = ((id as u32) << 16) | ty as u32;
            let named = (id >= 0x8000).then_some(n);
            data_for(tag).prop_map(move |data| Prop {
                tag,
                named: named.clone(),
                data,
            })
        })
}

/// Ordinary message properties: no meta-property ids.
fn prop() -> impl Strategy<Value = Prop> {
    prop_in(prop_oneof![0x0001u16..0x4000, 0x8000u16..=0xFFFF])
}

fn delprop(value: u32) -> Prop {
    Prop::single(
        markers::meta::FX_DEL_PROP,
        None,
        value.to_le_bytes().to_vec(),
    )
}

fn content(depth: u32) -> BoxedStrategy<MessageContent> {
    let attachment = attachment(depth);
    (
        vec(prop(), 0..4),
        any::<bool>(),
        vec(
            vec(prop(), 0..3).prop_map(|props| Recipient { props }),
            0..3,
        ),
        any::<bool>(),
        vec(attachment, 0..3),
    )
        .prop_map(|(props, rd, recipients, ad, attachments)| MessageContent {
            props,
            recip_delprop: rd.then(|| delprop(markers::delprop::RECIPIENTS)),
            recipients,
            attach_delprop: ad.then(|| delprop(markers::delprop::ATTACHMENTS)),
            attachments,
        })
        .boxed()
}

fn attachment(depth: u32) -> BoxedStrategy<Attachment> {
    let embedded = if depth == 0 {
        Just(None).boxed()
    } else {
        proptest::option::weighted(0.3, content(depth - 1).prop_map(Box::new)).boxed()
    };
    (vec(prop(), 0..3), embedded)
        .prop_map(|(props, embedded)| Attachment { props, embedded })
        .boxed()
}

fn message() -> impl Strategy<Value = Message> {
    (any::<bool>(), content(2)).prop_map(|(fai, content)| Message { fai, content })
}

fn element() -> impl Strategy<Value = Element> {
    prop_oneof![
        select(markers::ALL.map(|(w, _)| w).to_vec()).prop_map(Element::Marker),
        prop_in(any::<u16>()).prop_map(Element::Prop),
    ]
}

fn root() -> impl Strategy<Value = Root> {
    let warning = proptest::option::of(
        any::<u32>()
            .prop_map(|v| Prop::single(markers::meta::EC_WARNING, None, v.to_le_bytes().to_vec())),
    );
    prop_oneof![
        content(2).prop_map(Root::MessageContent),
        message().prop_map(Root::Message),
        attachment(2).prop_map(Root::AttachmentContent),
        vec((warning, message()), 0..3).prop_map(Root::MessageList),
        vec(element(), 0..10).prop_map(Root::Elements),
    ]
}

/// Offsets where an element starts or the stream ends.
fn boundaries(fts: &Bytes) -> Vec<usize> {
    let els = fts::decode::read_elements(fts, &Limits::default()).unwrap();
    let mut out = vec![0];
    for e in els {
        let n = encoded_len(&Root::Elements(vec![e]));
        out.push(out.last().unwrap() + n);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn tree_roundtrips(root in root()) {
        fts::validate(&root).unwrap();
        let enc = Bytes::from(encode_fts(&root));
        prop_assert_eq!(enc.len(), encoded_len(&root));
        let back = decode_fts_as(&enc, root.kind()).unwrap();
        prop_assert_eq!(&back, &root);
        // Roots the automatic selection cannot confuse decode to themselves.
        if matches!(root.kind(), RootKind::MessageContent | RootKind::Message) {
            prop_assert_eq!(&decode_fts(&enc).unwrap(), &root);
        }
        // Whatever the automatic selection accepts re-encodes byte for byte; it
        // accepts every message-shaped root (an AttachmentContent with an
        // embedded message, or Elements that start like a message, may be
        // rejected by the strict message grammar).
        match decode_fts(&enc) {
            Ok(auto) => prop_assert_eq!(encode_fts(&auto), enc.to_vec()),
            Err(e) => prop_assert!(
                matches!(root.kind(), RootKind::AttachmentContent | RootKind::Elements),
                "{:?} rejected: {}", root.kind(), e
            ),
        }
        let mut w = Vec::new();
        fts::encode_fts_into(&root, &mut w).unwrap();
        prop_assert_eq!(w, enc.to_vec());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_gives_the_same_result(
        root in root(),
        cuts in vec(any::<prop::sample::Index>(), 0..6),
        chunk in 1usize..40,
    ) {
        let enc = Bytes::from(encode_fts(&root));
        let whole = fts::decode::read_elements(&enc, &Limits::default()).unwrap();
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(enc.len() + 1)).collect();
        cuts.sort();
        let mut chunks = Vec::new();
        let mut last = 0;
        for c in cuts {
            chunks.push(&enc[last..c]);
            last = c;
        }
        chunks.push(&enc[last..]);
        prop_assert_eq!(lex_elements(chunks, &Limits::default()).unwrap(), whole);

        // Through framing with small TransferBuffers.
        let framed = Bytes::from(fts::write_frames(&fts::FrameHeader::default(), &enc, chunk));
        match decode_fts(&enc) {
            Ok(raw) => {
                let d = decode(&framed).unwrap();
                prop_assert_eq!(&d.root, &raw);
                prop_assert_eq!(encode(&d), framed.to_vec());
            }
            Err(e) => {
                let f = decode(&framed).unwrap_err();
                prop_assert_eq!(&f.kind, &e.kind);
            }
        }
    }

    #[test]
    fn truncation_never_panics(root in root()) {
        let enc = Bytes::from(encode_fts(&root));
        let bounds = boundaries(&enc);
        for n in 0..enc.len() {
            let cut = enc.slice(..n);
            let r = decode_fts_as(&cut, root.kind());
            if !bounds.contains(&n) || root.kind() == RootKind::Message {
                prop_assert!(r.is_err(), "prefix {} of {} accepted", n, enc.len());
            }
            if let Ok(d) = decode_fts(&cut) {
                prop_assert_eq!(encode_fts(&d), cut.to_vec());
            }
            let lexed = lex_elements([&cut[..n / 2], &cut[n / 2..]], &Limits::default());
            prop_assert_eq!(lexed, fts::decode::read_elements(&cut, &Limits::default()));
        }
        let framed = Bytes::from(fts::write_frames(&fts::FrameHeader::default(), &enc, 16));
        for n in 1..framed.len() {
            let cut = framed.slice(..n);
            if let Ok(d) = decode(&cut) {
                prop_assert_eq!(encode(&d), cut.to_vec());
            }
        }
    }

    #[test]
    fn mutated_input_never_panics(
        root in root(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut enc = encode_fts(&root);
        if enc.is_empty() {
            return Ok(());
        }
        for (i, v) in edits {
            let i = i.index(enc.len());
            enc[i] = v;
        }
        let enc = Bytes::from(enc);
        if let Ok(d) = decode(&enc) {
            prop_assert_eq!(encode(&d), enc.to_vec());
        }
        for kind in [RootKind::MessageContent, RootKind::Message, RootKind::MessageList,
                     RootKind::AttachmentContent, RootKind::Elements] {
            if let Ok(r) = decode_fts_as(&enc, kind) {
                prop_assert_eq!(encode_fts(&r), enc.to_vec());
            }
        }
        let lexed = lex_elements([&enc[..enc.len() / 3], &enc[enc.len() / 3..]], &Limits::default());
        prop_assert_eq!(lexed, fts::decode::read_elements(&enc, &Limits::default()));
    }
}
