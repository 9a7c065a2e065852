//! Lossless round trip. For any input the decoder accepts:
//! - `encode(decode(x)) == x` (framed or raw), and `encoded_len` is exact;
//! - `decode(encode(decode(x))) == decode(x)`;
//! - the decoded tree passes `validate`;
//! - the same holds for every root `decode_fts_as` accepts the input as.
#![no_main]

use bytes::Bytes;
use fts::RootKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);
    if let Ok(d) = fts::decode(&input) {
        if let Err(e) = fts::validate(&d.root) {
            panic!("decoded tree fails validate: {e:?}");
        }
        let enc = fts::encode(&d);
        assert!(enc == data, "encode(decode(x)) != x");
        if d.framing.is_none() {
            assert_eq!(fts::encoded_len(&d.root), data.len());
        }
        let again = fts::decode(&Bytes::from(enc)).expect("re-encoded stream does not decode");
        assert_eq!(again, d, "decode(encode(decode(x))) != decode(x)");
    }
    for kind in [
        RootKind::MessageContent,
        RootKind::Message,
        RootKind::AttachmentContent,
        RootKind::MessageList,
        RootKind::Elements,
    ] {
        if let Ok(root) = fts::decode_fts_as(&input, kind) {
            let enc = fts::encode_fts(&root);
            assert!(enc == data, "encode_fts(decode_fts_as(x, {kind:?})) != x");
            assert_eq!(fts::encoded_len(&root), data.len());
            let again = fts::decode_fts_as(&Bytes::from(enc), kind)
                .expect("re-encoded stream does not decode as the same root");
            assert_eq!(again, root, "{kind:?}: decode(encode(root)) != root");
        }
    }
});
