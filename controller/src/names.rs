//! Names that cannot deceive: user, group and device names are shown to
//! admins and auditors who decide by them ("revoke alice's laptop"), so two
//! names that look the same must not both exist.
//!
//! * [`check_shape`] refuses names that are not in Unicode normal form C,
//!   use characters outside the identifier profile of Unicode TR39 (e.g.
//!   fullwidth "ａｌｉｃｅ"), or mix scripts ("аlice" with a Cyrillic а).
//!   Single-script names in any script stay welcome ("núria", "Σοφία").
//! * [`skeleton_key`] is a name's TR39 skeleton (its "looks like" form),
//!   keyed by kind: the store's `Txn::claim_name` refuses, inside the
//!   creating transaction, a name whose skeleton another live name of the
//!   same kind holds ("aIice" beside "alice"). A stale entry (its name was
//!   deleted or revoked) is simply taken over, so entries are never
//!   removed.

use unicode_normalization::is_nfc;
use unicode_security::{GeneralSecurityProfile, MixedScript, skeleton};

/// What a name names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A user.
    User,
    /// A group.
    Group,
    /// A device (or the device an open enrollment token will make).
    Device,
}

impl Kind {
    fn prefix(self) -> u8 {
        match self {
            Kind::User => b'u',
            Kind::Group => b'g',
            Kind::Device => b'd',
        }
    }

    /// The kind in words, for messages.
    pub fn word(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Group => "group",
            Kind::Device => "device",
        }
    }
}

/// Why a name's characters are refused, if they are.
pub fn check_shape(value: &str) -> Result<(), String> {
    if !is_nfc(value) {
        return Err(
            "is not in Unicode normal form C (type it again, or paste it as plain text)".into(),
        );
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_alphanumeric() && !c.identifier_allowed())
    {
        return Err(format!(
            "contains {c:?} (U+{:04X}), which is not allowed in names (fullwidth, compatibility or rare characters)",
            u32::from(c)
        ));
    }
    if !value.is_single_script() {
        return Err("mixes letters of different scripts (e.g. Latin with Cyrillic)".into());
    }
    Ok(())
}

/// The key `name`'s skeleton is kept under.
pub fn skeleton_key(kind: Kind, name: &str) -> Vec<u8> {
    let mut key = vec![kind.prefix(), 0];
    key.extend(skeleton(name).collect::<String>().as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deceptive_shapes_are_refused_and_real_names_pass() {
        for fine in [
            "alice",
            "núria",
            "Σοφία",
            "joan.puig",
            "pc-0042",
            "anna@ajuntament",
        ] {
            assert_eq!(check_shape(fine), Ok(()), "{fine}");
        }
        for (bad, why) in [
            ("\u{430}lice", "mixes"),
            ("ａｌｉｃｅ", "not allowed"),
            ("nu\u{301}ria", "normal form"),
        ] {
            let error = check_shape(bad).expect_err(bad);
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn lookalikes_share_a_skeleton() {
        let alice = skeleton_key(Kind::User, "alice");
        assert_eq!(skeleton_key(Kind::User, "aIice"), alice);
        assert_eq!(
            skeleton_key(Kind::User, "\u{430}\u{406}\u{456}\u{441}\u{435}"),
            alice
        );
        assert_ne!(skeleton_key(Kind::User, "alina"), alice);
        assert_ne!(skeleton_key(Kind::Group, "alice"), alice);
        assert_eq!(
            skeleton_key(Kind::Device, "rnaria-pc"),
            skeleton_key(Kind::Device, "maria-pc")
        );
    }
}
