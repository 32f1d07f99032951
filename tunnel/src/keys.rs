//! WireGuard static key pairs.
//!
//! The private half is generated where it is used and written only to that
//! machine's disk (by the caller, mode 0600); only [`PublicKey`]s travel.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use boringtun::x25519;
pub use porta_proto::PublicKey;

/// A WireGuard private key. Its `Debug` output never shows the key.
pub struct PrivateKey(x25519::StaticSecret);

/// Why a private key could not be read.
#[derive(Debug, PartialEq, Eq)]
pub struct MalformedPrivateKey;

impl std::fmt::Display for MalformedPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a WireGuard private key is 44 characters of base64 (as `wg genkey` prints)")
    }
}

impl std::error::Error for MalformedPrivateKey {}

impl PrivateKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self(x25519::StaticSecret::random_from_rng(rand_core::OsRng))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519::PublicKey::from(&self.0).to_bytes())
    }

    /// The raw 32 bytes (for the WireGuard control socket, which speaks hex).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key in `wg genkey` form, for a 0600 key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    /// Reads a key in `wg genkey` form (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, MalformedPrivateKey> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| MalformedPrivateKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| MalformedPrivateKey)?;
        Ok(Self(x25519::StaticSecret::from(bytes)))
    }

    /// The boringtun secret, for building tunnels.
    pub fn as_x25519(&self) -> &x25519::StaticSecret {
        &self.0
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey(<redacted>, public {})", self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_match_wg_pubkey_derivation() {
        let key = PrivateKey::generate();
        let again = PrivateKey::from_base64(&key.to_base64()).expect("round trip");
        assert_eq!(key.public_key(), again.public_key());
        // RFC 7748 §6.1 test vector: Alice's private key and public key.
        let alice = PrivateKey(x25519::StaticSecret::from(
            <[u8; 32]>::try_from(hex_bytes(
                "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
            ))
            .expect("32 bytes"),
        ));
        assert_eq!(
            alice.public_key().0.to_vec(),
            hex_bytes("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = PrivateKey::generate();
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }
}
