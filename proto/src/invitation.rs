//! Invitations: one word that tells a client where the controller is, how to
//! recognise it, and what secret to redeem there.
//!
//! Format: `porta1_` + lowercase unpadded base32 (RFC 4648) of the protobuf
//! [`pb::Invitation`](crate::pb::Invitation). Base32 keeps the word
//! double-click selectable in terminals, survives mail clients and fits a QR
//! code's alphanumeric mode when upper-cased; protobuf lets later versions add
//! fields old clients ignore. Parsing is case-insensitive and ignores
//! surrounding whitespace and line breaks a mail client may have inserted.

use crate::CertFingerprint;
use crate::pb;
use data_encoding::BASE32_NOPAD;
use prost::Message;

/// The prefix of every invitation string; the digit is the format version.
pub const PREFIX: &str = "porta1_";

/// Longest invitation accepted, to bound work on hostile input.
const MAX_LEN: usize = 4096;

/// The URI scheme of invitation links (`porta:porta1_…`), registered by the
/// desktop app (`x-scheme-handler/porta`).
pub const LINK_SCHEME: &str = "porta";

/// A decoded invitation.
#[derive(Clone, PartialEq, Eq)]
pub struct Invitation {
    /// `host:port` of the controller's gRPC API.
    pub controller: String,
    /// The controller certificate's fingerprint, to pin.
    pub fingerprint: CertFingerprint,
    /// The one-time secret.
    pub token: String,
    /// What the token is for.
    pub kind: pb::InvitationKind,
    /// The town hall's name, for people (may be empty).
    pub organization: String,
}

/// Why a string is not a usable invitation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvitationError {
    /// Does not start with `porta1_`.
    #[error("this is not a Porta invitation (it should start with \"{PREFIX}\")")]
    NotAnInvitation,
    /// The body is not valid base32 or protobuf: probably cut short when copied.
    #[error("the invitation is damaged (was it copied completely?)")]
    Damaged,
    /// A required field is missing.
    #[error("the invitation lacks its {0}")]
    Missing(&'static str),
    /// Too long to be one of ours.
    #[error("the invitation is longer than {MAX_LEN} characters")]
    TooLong,
}

impl Invitation {
    /// Encodes as `porta1_…`.
    pub fn encode(&self) -> String {
        let message = pb::Invitation {
            controller: self.controller.clone(),
            certificate_sha256: self.fingerprint.0.to_vec(),
            token: self.token.clone(),
            kind: self.kind as i32,
            organization: self.organization.clone(),
        };
        let body = BASE32_NOPAD.encode(&message.encode_to_vec());
        format!("{PREFIX}{}", body.to_ascii_lowercase())
    }

    /// The invitation as a `porta:` link: clicked in an e-mail, it opens
    /// the desktop app with the invitation filled in.
    pub fn link(&self) -> String {
        format!("{LINK_SCHEME}:{}", self.encode())
    }

    /// Decodes an invitation a person pasted, or a `porta:` link to one.
    /// Spaces and line breaks (which e-mail adds) are ignored.
    pub fn decode(text: &str) -> Result<Self, InvitationError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.len() > MAX_LEN + LINK_SCHEME.len() + 4 {
            return Err(InvitationError::TooLong);
        }
        let lower = compact.to_ascii_lowercase();
        let unlinked = match lower
            .strip_prefix(LINK_SCHEME)
            .and_then(|l| l.strip_prefix(':'))
        {
            Some(link) => link.trim_start_matches('/').trim_end_matches('/'),
            None => lower.as_str(),
        };
        if unlinked.len() > MAX_LEN {
            return Err(InvitationError::TooLong);
        }
        let body = unlinked
            .strip_prefix(PREFIX)
            .ok_or(InvitationError::NotAnInvitation)?;
        let bytes = BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|_| InvitationError::Damaged)?;
        let message =
            pb::Invitation::decode(bytes.as_slice()).map_err(|_| InvitationError::Damaged)?;
        if message.controller.is_empty() {
            return Err(InvitationError::Missing("controller address"));
        }
        if message.token.is_empty() {
            return Err(InvitationError::Missing("token"));
        }
        let fingerprint = CertFingerprint::from_slice(&message.certificate_sha256)
            .ok_or(InvitationError::Missing("certificate fingerprint"))?;
        let kind =
            pb::InvitationKind::try_from(message.kind).unwrap_or(pb::InvitationKind::Unspecified);
        Ok(Self {
            controller: message.controller,
            fingerprint,
            token: message.token,
            kind,
            organization: message.organization,
        })
    }
}

impl std::fmt::Debug for Invitation {
    // The token is a secret: never print it, even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation")
            .field("controller", &self.controller)
            .field("fingerprint", &self.fingerprint)
            .field("kind", &self.kind)
            .field("organization", &self.organization)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl std::str::FromStr for Invitation {
    type Err = InvitationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::decode(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_or_an_email_wrapped_invitation_decodes() {
        let text = sample().encode();
        assert_eq!(Invitation::decode(&sample().link()), Ok(sample()));
        assert_eq!(
            Invitation::decode(&format!("porta://{text}/")),
            Ok(sample())
        );
        let wrapped = format!("  {}\r\n  {} \n", &text[..40], &text[40..]);
        assert_eq!(Invitation::decode(&wrapped), Ok(sample()));
        assert_eq!(
            Invitation::decode("porta:https://example.invalid"),
            Err(InvitationError::NotAnInvitation)
        );
    }

    fn sample() -> Invitation {
        Invitation {
            controller: "vpn.calonge.cat:7443".into(),
            fingerprint: CertFingerprint([0xAB; 32]),
            token: "0123456789abcdef.secretsecretsecret".into(),
            kind: pb::InvitationKind::Device,
            organization: "Ajuntament de Calonge i Sant Antoni".into(),
        }
    }

    #[test]
    fn round_trips_and_is_one_selectable_word() {
        let text = sample().encode();
        assert!(text.starts_with(PREFIX));
        assert!(
            text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{text}"
        );
        assert_eq!(Invitation::decode(&text), Ok(sample()));
    }

    #[test]
    fn tolerates_case_and_line_breaks_from_mail_clients() {
        let text = sample().encode().to_uppercase();
        let wrapped = format!("  {}\n{}\r\n ", &text[..40], &text[40..]);
        assert_eq!(Invitation::decode(&wrapped), Ok(sample()));
    }

    #[test]
    fn truncated_or_foreign_strings_get_clear_errors() {
        let text = sample().encode();
        assert_eq!(
            Invitation::decode("hello"),
            Err(InvitationError::NotAnInvitation)
        );
        let cut = &text[..text.len() - 9];
        assert!(matches!(
            Invitation::decode(cut),
            Err(InvitationError::Damaged | InvitationError::Missing(_))
        ));
        assert_eq!(
            Invitation::decode(&"a".repeat(5000)),
            Err(InvitationError::TooLong)
        );
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        assert!(!format!("{:?}", sample()).contains("secret"));
    }
}
