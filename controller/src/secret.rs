//! Secrets the controller hands out and later checks: enrollment and login
//! tokens, API, device and gateway credentials.
//!
//! A secret is `<id>.<key>`: `id` is 16 hex digits naming the record it
//! belongs to (not secret; it lets us find the record without comparing
//! against every hash), `key` is 256 random bits in unpadded base32. Only
//! SHA-256 of the key is stored. A plain hash (no salt or stretching) is
//! enough because the key is uniformly random and long: nothing can be
//! guessed from its hash. Comparison is constant-time ([`subtle`]).

use data_encoding::BASE32_NOPAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 of a secret's key part, as stored.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretHash(#[serde(with = "hex_bytes")] pub [u8; 32]);

impl SecretHash {
    /// The hash of `text` (a secret the caller chose, such as an
    /// enrollment attempt), to store instead of it.
    pub fn of(text: &str) -> Self {
        hash_key(text)
    }

    /// True if `text` hashes to this, compared in constant time.
    pub fn matches(&self, text: &str) -> bool {
        hash_key(text).0.ct_eq(&self.0).into()
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// A freshly issued secret: shown to its holder once, then only its hash is kept.
pub struct IssuedSecret {
    /// The record id (16 hex digits).
    pub id: String,
    /// The full `<id>.<key>` string to give out.
    pub text: String,
    /// What to store.
    pub hash: SecretHash,
}

/// A secret as presented by a caller, split but not yet checked.
pub struct PresentedSecret<'a> {
    /// The record id it claims.
    pub id: &'a str,
    key: &'a str,
}

/// A fresh random record id: 16 hex digits.
pub fn new_id() -> String {
    let mut id = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut id);
    hex::encode(id)
}

/// Issues a new random secret with a new id.
pub fn issue() -> IssuedSecret {
    issue_for(new_id())
}

/// Issues a new random secret for an existing record id (a pending
/// credential whose secret is made when its login invitation is redeemed).
pub fn issue_for(id: String) -> IssuedSecret {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let key = BASE32_NOPAD.encode(&key).to_ascii_lowercase();
    let hash = hash_key(&key);
    IssuedSecret {
        text: format!("{id}.{key}"),
        id,
        hash,
    }
}

/// Splits `<id>.<key>`; `None` if it does not have that shape.
pub fn parse(text: &str) -> Option<PresentedSecret<'_>> {
    let (id, key) = text.trim().split_once('.')?;
    let id_ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let key_ok = !key.is_empty() && key.len() <= 128;
    (id_ok && key_ok).then_some(PresentedSecret { id, key })
}

impl PresentedSecret<'_> {
    /// True if this secret's key hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored: &SecretHash) -> bool {
        hash_key(self.key).0.ct_eq(&stored.0).into()
    }
}

fn hash_key(key: &str) -> SecretHash {
    SecretHash(Sha256::digest(key.as_bytes()).into())
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_secrets_verify_and_others_do_not() {
        let a = issue();
        let b = issue();
        assert_ne!(a.text, b.text);
        let presented = parse(&a.text).expect("well formed");
        assert_eq!(presented.id, a.id);
        assert!(presented.matches(&a.hash));
        assert!(!presented.matches(&b.hash));
        let forged = format!("{}.{}", a.id, "x".repeat(52));
        assert!(!parse(&forged).expect("well formed").matches(&a.hash));
    }

    #[test]
    fn secrets_carry_at_least_128_bits() {
        let s = issue();
        let key = s.text.split_once('.').expect("dot").1;
        // base32: 5 bits per character.
        assert!(key.len() * 5 >= 256);
    }

    #[test]
    fn malformed_secrets_are_rejected_before_lookup() {
        for bad in [
            "",
            "nodot",
            "short.key",
            "0123456789abcdeg.key",
            "0123456789abcdef.",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
