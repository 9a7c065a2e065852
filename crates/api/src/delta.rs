//! Delta tokens (`$skiptoken` / `$deltatoken`): opaque, self-contained, signed.
//!
//! Graph's delta tokens are opaque strings the client hands back verbatim.
//! graphbox keeps *no* server-side sync state: everything needed to continue
//! a round is inside the token (mailbox, scope, the change number the round
//! started from, the position inside a paged round, the original `$select`,
//! the page size), and everything else is in the meta store. So a token
//! survives restarts, works on any instance of a multi-instance deployment
//! and costs nothing to keep around.
//!
//! Because the client holds the state, the server must be able to trust it:
//! the payload is MACed with HMAC-SHA256 under a server secret kept in the
//! store (`delta_mac_key`, created once through `put_setting_if_absent` so
//! every instance shares it). A token that fails the MAC, does not decode, or
//! belongs to another mailbox or scope is answered 400; a genuine token whose
//! change number predates the store's tombstone horizon (deletions since then
//! are forgotten) gets Graph's 410 `syncStateNotFound` with a `Location` to a
//! fresh initial sync.
//!
//! Wire form: `base64url(mac[32] || json payload)`, no padding, so it is safe
//! in a query string without further escaping.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::ApiError;
use axum::http::StatusCode;
use store::MetaStore;

/// The meta-store setting that holds the MAC key (standard base64).
pub const DELTA_KEY_SETTING: &str = "delta_mac_key";

/// Domain separation for the MAC, and the token format version.
const MAC_CONTEXT: &[u8] = b"graphbox delta token v1\0";

/// What a delta round covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", content = "f")]
pub enum TokenScope {
    /// `folders/delta`: every folder of the mailbox.
    Folders,
    /// `folders/{id}/childFolders/delta`: the children of one folder (its id).
    ChildFolders(String),
    /// `folders/{id}/items/delta`: the items of one folder (its id).
    Items(String),
}

/// The state carried by a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaState {
    /// The mailbox id (canonical text).
    pub mbx: String,
    /// The scope.
    pub scope: TokenScope,
    /// Changes after this change number are reported (0 = initial sync).
    pub since: u64,
    /// Position inside a paged round: entries up to this cn were sent
    /// (0 for a `$deltatoken`).
    pub after: u64,
    /// The mailbox change number when this token was issued.
    pub high_water: u64,
    /// The original `$select` (canonical property names), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Vec<String>>,
    /// Page size.
    pub page: u64,
    /// `includeHiddenFolders` of the first request.
    #[serde(default)]
    pub hidden: bool,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not base64url, too short, or not our payload.
    #[error("the token is malformed")]
    Malformed,
    /// The MAC does not verify: altered, or made under another key.
    #[error("the token's signature does not verify")]
    BadMac,
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        invalid_token(&e.to_string())
    }
}

/// 400 for a token graphbox cannot use (`ErrorInvalidSyncStateData`, the
/// Exchange code for corrupt sync state).
pub fn invalid_token(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "ErrorInvalidSyncStateData",
        format!(
            "The sync state data is corrupt or otherwise invalid ({why}). Start over with a delta request without a token."
        ),
    )
}

/// 410 `syncStateNotFound` with `Location` = a fresh delta request.
pub fn sync_state_gone(fresh_url: &str) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "syncStateNotFound",
        "The sync state is older than the mailbox's change history (tombstones were purged). Start a full resync at the URL in the Location header.",
    )
    .with_header(axum::http::header::LOCATION, fresh_url)
}

/// Signs and verifies tokens under the server's MAC key.
#[derive(Clone)]
pub struct DeltaCodec {
    key: Vec<u8>,
}

impl std::fmt::Debug for DeltaCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeltaCodec(..)")
    }
}

impl DeltaCodec {
    /// A codec with an explicit key (tests, tools).
    pub fn new(key: Vec<u8>) -> Self {
        DeltaCodec { key }
    }

    /// Loads the MAC key from the store, creating a random 256-bit one on
    /// first start (the value that wins a concurrent first start is used).
    pub async fn load_or_create(meta: &dyn MetaStore) -> store::Result<DeltaCodec> {
        let stored = match meta.get_setting(DELTA_KEY_SETTING).await? {
            Some(v) => v,
            None => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                meta.put_setting_if_absent(DELTA_KEY_SETTING, &STANDARD.encode(key))
                    .await?
            }
        };
        let key = STANDARD.decode(stored.trim()).map_err(|_| {
            store::StoreError::Invalid(format!(
                "setting '{DELTA_KEY_SETTING}' is not base64; delete it to generate a new key (outstanding delta tokens then become invalid)"
            ))
        })?;
        Ok(DeltaCodec { key })
    }

    fn mac(&self) -> Hmac<Sha256> {
        let mut m =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        m.update(MAC_CONTEXT);
        m
    }

    /// Encodes a state into a token.
    pub fn encode(&self, state: &DeltaState) -> String {
        let payload = serde_json::to_vec(state).expect("DeltaState serializes");
        let mut m = self.mac();
        m.update(&payload);
        let tag = m.finalize().into_bytes();
        let mut bytes = Vec::with_capacity(tag.len() + payload.len());
        bytes.extend_from_slice(&tag);
        bytes.extend_from_slice(&payload);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes and verifies a token.
    pub fn decode(&self, token: &str) -> Result<DeltaState, TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim().trim_end_matches('='))
            .map_err(|_| TokenError::Malformed)?;
        if bytes.len() <= 32 {
            return Err(TokenError::Malformed);
        }
        let (tag, payload) = bytes.split_at(32);
        let mut m = self.mac();
        m.update(payload);
        m.verify_slice(tag).map_err(|_| TokenError::BadMac)?;
        serde_json::from_slice(payload).map_err(|_| TokenError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> DeltaState {
        DeltaState {
            mbx: "MBX:a@b".into(),
            scope: TokenScope::Items("AAMkX".into()),
            since: 7,
            after: 3,
            high_water: 9,
            select: Some(vec!["size".into()]),
            page: 10,
            hidden: false,
        }
    }

    #[test]
    fn round_trip_and_url_safe() {
        let c = DeltaCodec::new(b"k".to_vec());
        let t = c.encode(&state());
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{t}"
        );
        assert_eq!(c.decode(&t).unwrap(), state());
    }

    #[test]
    fn tampering_is_detected() {
        let c = DeltaCodec::new(b"k".to_vec());
        let t = c.encode(&state());
        // Another key.
        assert_eq!(
            DeltaCodec::new(b"other".to_vec()).decode(&t),
            Err(TokenError::BadMac)
        );
        // Every single-character change is caught.
        let chars: Vec<char> = t.chars().collect();
        for i in 0..chars.len() {
            let mut m = chars.clone();
            m[i] = if m[i] == 'A' { 'B' } else { 'A' };
            let s: String = m.into_iter().collect();
            assert!(c.decode(&s).is_err(), "position {i}");
        }
        // A payload re-encoded with a different since and the old MAC.
        let mut bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        let mut forged = state();
        forged.since = 0;
        bytes.truncate(32);
        bytes.extend(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            c.decode(&URL_SAFE_NO_PAD.encode(bytes)),
            Err(TokenError::BadMac)
        );
        assert_eq!(c.decode("!!!"), Err(TokenError::Malformed));
        assert_eq!(c.decode(""), Err(TokenError::Malformed));
        assert_eq!(c.decode("AAAA"), Err(TokenError::Malformed));
        let e: ApiError = TokenError::BadMac.into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn decode_never_panics(s in "[A-Za-z0-9_=-]{0,200}") {
                let c = DeltaCodec::new(b"k".to_vec());
                prop_assert!(c.decode(&s).is_err());
            }
        }
    }
}
