//! What the tunnel service remembers across restarts, in `service.toml`
//! beside the enrollment: whether to connect at start (the last Connect or
//! Disconnect decides, so a computer comes back the way it was left) and
//! whether the controller refused this device.

use crate::state::StateDir;
use anyhow::{Context, Result};
use porta_proto::refusal::Refusal;
use serde::{Deserialize, Serialize};

const FILE: &str = "service.toml";

/// The service's remembered settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Remembered {
    /// Bring the tunnel up when the service starts.
    pub connect_at_start: bool,
    /// The controller's last refusal of this device, until it accepts it
    /// again (the service asks again now and then) or the computer is
    /// enrolled again.
    pub refused: Option<SavedRefusal>,
}

/// Why the controller refused this device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRefusal {
    /// Revoked by IT (also read from files written before `kind`).
    #[serde(default)]
    pub revoked: bool,
    /// The controller's message.
    pub message: String,
    /// The controller's word for it (`porta_proto::refusal`), if it named
    /// one.
    #[serde(default)]
    pub kind: Option<String>,
}

impl SavedRefusal {
    /// A refusal of `kind` (if the controller named one) in `message`.
    pub fn new(kind: Option<Refusal>, message: String) -> Self {
        Self {
            revoked: kind == Some(Refusal::DeviceRevoked),
            message,
            kind: kind.map(|k| k.word().to_owned()),
        }
    }

    /// Which refusal, as far as known.
    pub fn kind(&self) -> Option<Refusal> {
        self.kind
            .as_deref()
            .and_then(Refusal::from_word)
            .or(self.revoked.then_some(Refusal::DeviceRevoked))
    }

    /// Whether the person is only paused (see [`Refusal::is_pause`]).
    pub fn is_pause(&self) -> bool {
        self.kind().is_some_and(Refusal::is_pause)
    }
}

impl Remembered {
    /// Reads the settings; none saved yet is the defaults.
    pub fn load(dir: &StateDir) -> Result<Self> {
        let path = dir.0.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Saves the settings (owner-only, atomically).
    pub fn save(&self, dir: &StateDir) -> Result<()> {
        dir.prepare()?;
        Ok(porta_proto::files::replace_private(
            &dir.0.join(FILE),
            toml::to_string_pretty(self)?.as_bytes(),
        )?)
    }

    /// Removes the settings (when the computer leaves).
    pub fn forget(dir: &StateDir) -> Result<()> {
        match std::fs::remove_file(dir.0.join(FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_a_restart_and_start_empty() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = StateDir(temp.path().join("state"));
        assert_eq!(
            Remembered::load(&dir).expect("defaults"),
            Remembered::default()
        );
        let settings = Remembered {
            connect_at_start: true,
            refused: Some(SavedRefusal::new(
                Some(Refusal::UserDisabled),
                "the user \"anna\" is disabled".into(),
            )),
        };
        settings.save(&dir).expect("save");
        assert_eq!(Remembered::load(&dir).expect("load"), settings);
        Remembered::forget(&dir).expect("forget");
        assert_eq!(Remembered::load(&dir).expect("gone"), Remembered::default());
    }

    #[test]
    fn a_refusal_saved_before_kinds_were_named_still_reads() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = StateDir(temp.path().to_owned());
        std::fs::write(
            temp.path().join(FILE),
            "connect_at_start = true\n[refused]\nrevoked = true\nmessage = \"this device was revoked\"\n",
        )
        .expect("write");
        let refused = Remembered::load(&dir)
            .expect("load")
            .refused
            .expect("refused");
        assert_eq!(refused.kind(), Some(Refusal::DeviceRevoked));
        assert!(!refused.is_pause());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_defaults() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = StateDir(temp.path().to_owned());
        std::fs::write(temp.path().join(FILE), "connect_at_start = maybe").expect("write");
        assert!(Remembered::load(&dir).is_err());
    }
}
