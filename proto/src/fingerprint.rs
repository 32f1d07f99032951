//! Certificate fingerprints: SHA-256 over the certificate's DER bytes.
//!
//! Printed like `openssl x509 -noout -fingerprint -sha256` does (upper-case
//! hex pairs joined by colons) so an admin can compare them by eye; parsed
//! with or without the colons.

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// The SHA-256 of a DER-encoded certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint(pub [u8; 32]);

/// A fingerprint string that is not 32 hex-encoded bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a certificate fingerprint is 64 hex digits (colons optional), got {0:?}")]
pub struct FingerprintError(String);

impl CertFingerprint {
    /// Fingerprint of a certificate given as DER.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// From raw bytes, as carried in an invitation.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

impl FromStr for CertFingerprint {
    type Err = FingerprintError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compact: String = s.trim().chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&compact).map_err(|_| FingerprintError(s.to_owned()))?;
        Self::from_slice(&bytes).ok_or_else(|| FingerprintError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip_with_and_without_colons() {
        let fp = CertFingerprint::of_der(b"certificate bytes");
        let shown = fp.to_string();
        assert_eq!(shown.len(), 32 * 3 - 1);
        assert_eq!(shown.parse::<CertFingerprint>(), Ok(fp));
        assert_eq!(
            shown
                .replace(':', "")
                .to_lowercase()
                .parse::<CertFingerprint>(),
            Ok(fp)
        );
    }

    #[test]
    fn rejects_wrong_lengths_and_non_hex() {
        assert!("AB:CD".parse::<CertFingerprint>().is_err());
        assert!("zz".repeat(32).parse::<CertFingerprint>().is_err());
    }
}
