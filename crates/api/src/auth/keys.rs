//! The signing key set: RSA keys persisted as write-once store settings,
//! rotated by appending a new key, published in the JWKS while tokens they
//! signed can still be valid.
//!
//! Storage (all through `MetaStore::put_setting_if_absent`, so concurrent
//! instances agree without a lock):
//! - slot 0 is the original key, `signing_key_pem` (PKCS#8 PEM), with its
//!   creation time in `signing_key_pem.created` (unix seconds; written at the
//!   first start of a version that knows it, so a deployment upgraded from a
//!   single key keeps that key and its outstanding tokens);
//! - slot n ≥ 1 is `signing_key.{n}`: JSON `{"kid","created","activates","pem"}`.
//!
//! A rotation writes the next free slot; two instances rotating at once race
//! for the same slot and both end up with the winner's key. A key becomes the
//! signing key at its `activates` time (set a little after creation, so every
//! instance has loaded and published it before anyone signs with it) and is
//! retired when the next key activates. A retired key stays published and
//! accepted for the longest token lifetime plus the clock skew and the key
//! refresh interval; after that it is dropped: no longer in the JWKS, no
//! longer accepted, its private key no longer loaded. (Its setting stays in
//! the store, since settings are write-once.)

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::MetaStore;

use super::{AuthorityError, SIGNING_KEY_SETTING};

/// The setting with the creation time (unix seconds) of the slot-0 key.
pub const SIGNING_KEY_CREATED_SETTING: &str = "signing_key_pem.created";

/// The setting of rotation slot `n` (n ≥ 1).
pub fn slot_setting(n: u32) -> String {
    format!("signing_key.{n}")
}

/// One loaded RSA key: what signing and verification need.
pub(crate) struct KeyMaterial {
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub public: RsaPublicKey,
}

impl KeyMaterial {
    /// Parses a PKCS#8 PEM RSA private key.
    pub fn from_pem(pem: &str) -> Result<KeyMaterial, AuthorityError> {
        let key = |e: &dyn std::fmt::Display| AuthorityError::Key(e.to_string());
        let private = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| key(&e))?;
        let public = RsaPublicKey::from(&private);
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| key(&e))?;
        let public_pem = public.to_pkcs1_pem(LineEnding::LF).map_err(|e| key(&e))?;
        let decoding = DecodingKey::from_rsa_pem(public_pem.as_bytes()).map_err(|e| key(&e))?;
        Ok(KeyMaterial {
            kid: thumbprint(&public),
            encoding,
            decoding,
            public,
        })
    }

    /// The key as a JWK (public part only).
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(self.public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(self.public.e().to_bytes_be()),
        })
    }
}

/// RFC 7638 thumbprint: SHA-256 over the canonical JWK members, base64url.
pub(crate) fn thumbprint(key: &RsaPublicKey) -> String {
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        URL_SAFE_NO_PAD.encode(key.n().to_bytes_be())
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Generates a PKCS#8 PEM RSA-2048 key.
pub(crate) fn generate_key_pem() -> Result<String, AuthorityError> {
    let mut rng = rand::rngs::OsRng;
    let key = RsaPrivateKey::new(&mut rng, 2048).map_err(|e| AuthorityError::Key(e.to_string()))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| AuthorityError::Key(e.to_string()))?;
    Ok(pem.to_string())
}

async fn generate_key_pem_blocking() -> Result<String, AuthorityError> {
    tokio::task::spawn_blocking(generate_key_pem)
        .await
        .map_err(|e| AuthorityError::Key(e.to_string()))?
}

/// The stored form of a rotation slot.
#[derive(Serialize, Deserialize)]
struct SlotRecord {
    kid: String,
    created: i64,
    activates: i64,
    pem: String,
}

/// Where a key is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published and accepted, not yet used for signing.
    Pending,
    /// The signing key.
    Current,
    /// Retired but still published and accepted (tokens it signed may be valid).
    Previous,
    /// No longer published or accepted.
    Dropped,
}

impl KeyState {
    /// The lowercase name used in CLI output.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Current => "current",
            KeyState::Previous => "previous",
            KeyState::Dropped => "dropped",
        }
    }
}

/// One key of the set (its material is loaded unless it was dropped).
#[derive(Clone)]
pub(crate) struct KeyEntry {
    pub slot: u32,
    pub kid: String,
    pub created: i64,
    pub activates: i64,
    pub material: Option<Arc<KeyMaterial>>,
}

/// The keys of slots 0..n, in slot order.
#[derive(Clone, Default)]
pub(crate) struct KeySet {
    pub entries: Vec<KeyEntry>,
}

impl KeySet {
    /// A set of one in-memory key (no store behind it).
    pub fn single(material: KeyMaterial, created: i64) -> KeySet {
        KeySet {
            entries: vec![KeyEntry {
                slot: 0,
                kid: material.kid.clone(),
                created,
                activates: 0,
                material: Some(Arc::new(material)),
            }],
        }
    }

    /// Index of the signing key at `now`: the last one that has activated
    /// (slot 0 is active from the beginning).
    fn current_index(&self, now: i64) -> usize {
        self.entries
            .iter()
            .rposition(|e| e.activates <= now)
            .unwrap_or(0)
    }

    /// The state of entry `i` at `now`, given how long a retired key stays.
    pub fn state(&self, i: usize, now: i64, retention: i64) -> KeyState {
        let current = self.current_index(now);
        if i == current {
            return KeyState::Current;
        }
        if i > current {
            return KeyState::Pending;
        }
        // Retired when the next key activated.
        let retired = self.entries[i + 1].activates;
        if now < retired.saturating_add(retention) {
            KeyState::Previous
        } else {
            KeyState::Dropped
        }
    }

    /// When entry `i` stops being accepted, if it is retired.
    pub fn drop_after(&self, i: usize, now: i64, retention: i64) -> Option<i64> {
        match self.state(i, now, retention) {
            KeyState::Previous | KeyState::Dropped => {
                Some(self.entries[i + 1].activates.saturating_add(retention))
            }
            _ => None,
        }
    }

    /// The signing key at `now`.
    pub fn signing(&self, now: i64) -> Arc<KeyMaterial> {
        let i = self.current_index(now);
        self.entries[i]
            .material
            .clone()
            .expect("the current key is always loaded")
    }

    /// The key `kid`, if it is still accepted at `now`.
    pub fn find(&self, kid: &str, now: i64, retention: i64) -> Option<Arc<KeyMaterial>> {
        let i = self.entries.iter().position(|e| e.kid == kid)?;
        if self.state(i, now, retention) == KeyState::Dropped {
            return None;
        }
        self.entries[i].material.clone()
    }

    /// The keys published at `now` (pending, current, previous), newest first.
    pub fn published(&self, now: i64, retention: i64) -> Vec<Arc<KeyMaterial>> {
        (0..self.entries.len())
            .rev()
            .filter(|&i| self.state(i, now, retention) != KeyState::Dropped)
            .filter_map(|i| self.entries[i].material.clone())
            .collect()
    }

    /// Loads the set from the store, continuing from `self` (slots are
    /// write-once, so only new slots are read). Creates the slot-0 key on a
    /// fresh store. Keys that are dropped at `now` are not parsed.
    pub async fn reload(
        &self,
        meta: &dyn MetaStore,
        now: i64,
        retention: i64,
    ) -> Result<KeySet, AuthorityError> {
        let mut entries = self.entries.clone();
        if entries.is_empty() {
            let pem = match meta.get_setting(SIGNING_KEY_SETTING).await? {
                Some(pem) => pem,
                None => {
                    let fresh = generate_key_pem_blocking().await?;
                    meta.put_setting_if_absent(SIGNING_KEY_SETTING, &fresh)
                        .await?
                }
            };
            let created = match meta.get_setting(SIGNING_KEY_CREATED_SETTING).await? {
                Some(v) => v,
                None => {
                    meta.put_setting_if_absent(SIGNING_KEY_CREATED_SETTING, &now.to_string())
                        .await?
                }
            };
            let created = created.trim().parse::<i64>().map_err(|_| {
                AuthorityError::Key(format!(
                    "the setting '{SIGNING_KEY_CREATED_SETTING}' is not a unix time: {created:?}"
                ))
            })?;
            let material = KeyMaterial::from_pem(&pem)?;
            entries.push(KeyEntry {
                slot: 0,
                kid: material.kid.clone(),
                created,
                activates: 0,
                material: Some(Arc::new(material)),
            });
        }
        let mut pems: Vec<(usize, String)> = Vec::new();
        loop {
            let slot = entries.len() as u32;
            let Some(raw) = meta.get_setting(&slot_setting(slot)).await? else {
                break;
            };
            let rec: SlotRecord = serde_json::from_str(&raw).map_err(|e| {
                AuthorityError::Key(format!(
                    "the setting '{}' is not a key record: {e}",
                    slot_setting(slot)
                ))
            })?;
            pems.push((entries.len(), rec.pem));
            entries.push(KeyEntry {
                slot,
                kid: rec.kid,
                created: rec.created,
                activates: rec.activates,
                material: None,
            });
        }
        let mut set = KeySet { entries };
        for i in 0..set.entries.len() {
            if set.state(i, now, retention) == KeyState::Dropped {
                set.entries[i].material = None;
            } else if set.entries[i].material.is_none() {
                let Some((_, pem)) = pems.iter().find(|(j, _)| *j == i) else {
                    // Loaded earlier, then dropped: cannot come back.
                    continue;
                };
                let m = KeyMaterial::from_pem(pem)?;
                if m.kid != set.entries[i].kid {
                    return Err(AuthorityError::Key(format!(
                        "the key in setting '{}' does not match its kid {}",
                        slot_setting(set.entries[i].slot),
                        set.entries[i].kid
                    )));
                }
                set.entries[i].material = Some(Arc::new(m));
            }
        }
        Ok(set)
    }

    /// Appends a new key that activates `lead` seconds from `now` (never
    /// before the newest key), and returns the reloaded set with the slot it
    /// went to. If another instance wrote that slot first, its key is the
    /// one kept.
    pub async fn rotate(
        &self,
        meta: &dyn MetaStore,
        now: i64,
        lead: i64,
        retention: i64,
    ) -> Result<(KeySet, u32), AuthorityError> {
        let set = self.reload(meta, now, retention).await?;
        let newest = set.entries.last().map(|e| e.activates).unwrap_or(0);
        let slot = set.entries.len() as u32;
        let pem = generate_key_pem_blocking().await?;
        let material = KeyMaterial::from_pem(&pem)?;
        let rec = SlotRecord {
            kid: material.kid.clone(),
            created: now,
            activates: now.saturating_add(lead.max(0)).max(newest),
            pem,
        };
        let text = serde_json::to_string(&rec).expect("key records serialize");
        meta.put_setting_if_absent(&slot_setting(slot), &text)
            .await?;
        let set = set.reload(meta, now, retention).await?;
        Ok((set, slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(slot: u32, activates: i64) -> KeyEntry {
        KeyEntry {
            slot,
            kid: format!("k{slot}"),
            created: activates,
            activates,
            material: None,
        }
    }

    /// Key lifecycle by time alone: pending until it activates, current
    /// until the next activates, previous for `retention`, then dropped.
    #[test]
    fn states_follow_activation_and_retention() {
        let set = KeySet {
            entries: vec![entry(0, 0), entry(1, 1000), entry(2, 5000)],
        };
        let r = 100;
        let s = |now| {
            (0..3)
                .map(|i| set.state(i, now, r).as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(s(10), ["current", "pending", "pending"]);
        assert_eq!(s(1000), ["previous", "current", "pending"]);
        assert_eq!(s(1099), ["previous", "current", "pending"]);
        assert_eq!(s(1100), ["dropped", "current", "pending"]);
        assert_eq!(s(5050), ["dropped", "previous", "current"]);
        assert_eq!(s(5100), ["dropped", "dropped", "current"]);
        assert_eq!(set.drop_after(0, 1050, r), Some(1100));
        assert_eq!(set.drop_after(1, 1050, r), None);
        assert_eq!(set.drop_after(2, 1050, r), None);
        // A clock behind slot 0's creation still has a signing key.
        assert_eq!(set.current_index(-5), 0);
    }
}
