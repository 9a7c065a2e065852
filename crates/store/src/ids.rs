//! Generation of opaque folder/item ids and change keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A new folder or item id: `AAMk` + URL-safe base64 (30 characters) of a
/// 48-bit millisecond timestamp followed by 128 random bits. The random part
/// makes ids unguessable and never reused; the time prefix makes new ids sort
/// after old ones, so the unique id index grows at its end instead of taking
/// random page writes (this is what keeps bulk imports fast at millions of items).
pub(crate) fn new_object_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut bytes = [0u8; 22];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    let r: [u8; 16] = rand::random();
    bytes[6..].copy_from_slice(&r);
    let mut s = String::with_capacity(34);
    s.push_str("AAMk");
    URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
    s
}

/// A change key for an object whose last change has number `cn`: unique per
/// mailbox because cn is, and unpredictable because of the random suffix.
pub(crate) fn new_change_key(cn: u64) -> String {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&cn.to_be_bytes());
    let r: [u8; 4] = rand::random();
    bytes[8..].copy_from_slice(&r);
    let mut s = String::with_capacity(21);
    s.push_str("CQAAA");
    URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
    s
}

/// Whether `s` could be an id we generated (cheap pre-check before lookups).
pub(crate) fn looks_like_object_id(s: &str) -> bool {
    s.len() == 34
        && s.starts_with("AAMk")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_safe_and_distinct() {
        let a = new_object_id();
        let b = new_object_id();
        assert_ne!(a, b);
        assert!(looks_like_object_id(&a), "{a}");
        let k = new_change_key(7);
        assert!(
            k.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(new_change_key(7), k);
    }
}
