//! Why the controller refused a device or an invitation, as one word that
//! travels beside the human message.
//!
//! The controller marks each refusal with the gRPC metadata key
//! [`METADATA_KEY`]; the tunnel service passes the same word on to its
//! front ends over the local API. Each front end then says it in the
//! person's own language and gives the advice that fits (a paused account
//! comes back by itself, a revoked computer needs a new invitation),
//! instead of parsing English sentences or showing them inside translated
//! ones. A refusal without the mark (an older controller) is still a
//! refusal; only its kind is unknown.

use tonic::metadata::MetadataValue;

/// The metadata key carrying the refusal's word (see [`Refusal::word`]).
pub const METADATA_KEY: &str = "porta-refusal";

/// The kinds of refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// IT revoked this computer: it needs a new invitation.
    DeviceRevoked,
    /// An administrator disabled the person's account: it may be enabled
    /// again, and the computer then connects without a new invitation.
    UserDisabled,
    /// The town's directory suspended the person (left every mapped
    /// group); they come back when the directory says so.
    UserSuspended,
    /// The device's credential is unknown to the controller (deleted, or
    /// a controller restored from an older backup).
    CredentialUnknown,
    /// The invitation was redeemed already.
    InvitationUsed,
    /// The invitation expired.
    InvitationExpired,
    /// No such invitation (mistyped, or deleted by an administrator).
    InvitationUnknown,
    /// Another device already has the name the invitation gives.
    DeviceNameTaken,
    /// This WireGuard key is already used by (or was revoked on) another
    /// device.
    KeyInUse,
}

impl Refusal {
    /// Every kind, for tests and catalogues.
    pub const ALL: [Refusal; 9] = [
        Refusal::DeviceRevoked,
        Refusal::UserDisabled,
        Refusal::UserSuspended,
        Refusal::CredentialUnknown,
        Refusal::InvitationUsed,
        Refusal::InvitationExpired,
        Refusal::InvitationUnknown,
        Refusal::DeviceNameTaken,
        Refusal::KeyInUse,
    ];

    /// The word on the wire (stable: saved files and older front ends
    /// read it).
    pub fn word(self) -> &'static str {
        match self {
            Refusal::DeviceRevoked => "device-revoked",
            Refusal::UserDisabled => "user-disabled",
            Refusal::UserSuspended => "user-suspended",
            Refusal::CredentialUnknown => "credential-unknown",
            Refusal::InvitationUsed => "invitation-used",
            Refusal::InvitationExpired => "invitation-expired",
            Refusal::InvitationUnknown => "invitation-unknown",
            Refusal::DeviceNameTaken => "device-name-taken",
            Refusal::KeyInUse => "key-in-use",
        }
    }

    /// The kind a word names, if any.
    pub fn from_word(word: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.word() == word)
    }

    /// The kind `status` is marked with, if any.
    pub fn of(status: &tonic::Status) -> Option<Refusal> {
        status
            .metadata()
            .get(METADATA_KEY)
            .and_then(|value| value.to_str().ok())
            .and_then(Refusal::from_word)
    }

    /// Marks `status` as this refusal.
    pub fn mark(self, status: &mut tonic::Status) {
        status
            .metadata_mut()
            .insert(METADATA_KEY, MetadataValue::from_static(self.word()));
    }

    /// Whether the person's account is only paused: the same computer
    /// connects again, without a new invitation, once IT (or the
    /// directory) lets the person back.
    pub fn is_pause(self) -> bool {
        matches!(self, Refusal::UserDisabled | Refusal::UserSuspended)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_the_wire_and_unknown_words_are_none() {
        for refusal in Refusal::ALL {
            let mut status = tonic::Status::permission_denied("no");
            refusal.mark(&mut status);
            assert_eq!(Refusal::of(&status), Some(refusal));
        }
        assert_eq!(Refusal::from_word("device-exploded"), None);
        assert_eq!(Refusal::of(&tonic::Status::permission_denied("no")), None);
    }
}
