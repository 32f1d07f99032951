//! WireGuard public keys as they appear in messages and `wg` output:
//! 32 bytes in standard base64 (44 characters with padding).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use std::str::FromStr;

/// A WireGuard (Curve25519) public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

/// Why a string is not a usable WireGuard public key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not base64 of exactly 32 bytes.
    #[error("a WireGuard key is 44 characters of base64 encoding 32 bytes (as `wg pubkey` prints)")]
    Malformed,
    /// All zeros (or another low-order point): no peer could ever use it.
    #[error("this WireGuard key is a degenerate (all-zero) key")]
    Degenerate,
}

impl PublicKey {
    /// The key's base64 form, as `wg` prints it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 44 {
            return Err(KeyError::Malformed);
        }
        let bytes = STANDARD.decode(s).map_err(|_| KeyError::Malformed)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed)?;
        if key == [0u8; 32] {
            return Err(KeyError::Degenerate);
        }
        Ok(Self(key))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wg_style_keys_and_rejects_others() {
        let key = PublicKey([7u8; 32]);
        assert_eq!(key.to_base64().parse::<PublicKey>(), Ok(key));
        assert_eq!("not a key".parse::<PublicKey>(), Err(KeyError::Malformed));
        assert_eq!(
            STANDARD.encode([1u8; 31]).parse::<PublicKey>(),
            Err(KeyError::Malformed)
        );
        assert_eq!(
            STANDARD.encode([0u8; 32]).parse::<PublicKey>(),
            Err(KeyError::Degenerate)
        );
    }
}
