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
    /// A low-order point (all zeros, one, and the other points of order
    /// 1, 2, 4 or 8): every shared secret with it is predictable.
    #[error(
        "this WireGuard key is a degenerate (low-order) point that no real key pair produces; \
         make a new key (`porta enroll` does, or `wg genkey | wg pubkey`)"
    )]
    Degenerate,
    /// Not the canonical encoding of a field element (its value is p =
    /// 2^255 − 19 or more, or its top bit is set): another string for a key
    /// that may already exist.
    #[error(
        "this WireGuard key is not a canonical Curve25519 encoding (its value is 2^255 − 19 or \
         more); make a new key"
    )]
    NonCanonical,
}

/// Little-endian encodings of the low-order points below p (the points of
/// order 1, 2, 4 and 8 of Curve25519 and its twist, as listed by RFC 7748's
/// authors and libsodium); their non-canonical twins (+p) are caught by the
/// canonical check.
const LOW_ORDER: [[u8; 32]; 5] = [
    [0; 32],
    {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    },
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    // p − 1
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// True if the little-endian `key` is at least p = 2^255 − 19 (top bit
/// included).
fn at_least_p(key: &[u8; 32]) -> bool {
    // p = 0x7fff…ffed: compare from the most significant byte down.
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    for i in (0..32).rev() {
        if key[i] != p[i] {
            return key[i] > p[i];
        }
    }
    true
}

/// Checks that `key` is a point a real key pair can have.
pub fn check_point(key: &[u8; 32]) -> Result<(), KeyError> {
    if at_least_p(key) {
        return Err(KeyError::NonCanonical);
    }
    if LOW_ORDER.contains(key) {
        return Err(KeyError::Degenerate);
    }
    Ok(())
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
        check_point(&key)?;
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

    fn hex_key(text: &str) -> [u8; 32] {
        let bytes: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect();
        bytes.try_into().expect("32 bytes")
    }

    #[test]
    fn weak_and_non_canonical_points_are_refused() {
        for (name, hex, expected) in [
            (
                "one",
                "0100000000000000000000000000000000000000000000000000000000000000",
                KeyError::Degenerate,
            ),
            (
                "order 8",
                "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
                KeyError::Degenerate,
            ),
            (
                "order 8 (twist)",
                "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
                KeyError::Degenerate,
            ),
            (
                "p - 1",
                "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
                KeyError::Degenerate,
            ),
            (
                "p",
                "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
                KeyError::NonCanonical,
            ),
            (
                "p + 1",
                "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
                KeyError::NonCanonical,
            ),
            (
                "all ones",
                "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                KeyError::NonCanonical,
            ),
            (
                "top bit",
                "0900000000000000000000000000000000000000000000000000000000000080",
                KeyError::NonCanonical,
            ),
        ] {
            let text = STANDARD.encode(hex_key(hex));
            assert_eq!(text.parse::<PublicKey>(), Err(expected), "{name}");
        }
        // p − 2 is an ordinary field element.
        let p_minus_2 = hex_key("ebffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        assert_eq!(check_point(&p_minus_2), Ok(()));
    }

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
