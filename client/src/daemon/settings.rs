//! What the tunnel service remembers across restarts, in `service.toml`
//! beside the enrollment: whether to connect at start (the last Connect or
//! Disconnect decides, so a computer comes back the way it was left) and
//! whether the controller refused this device.

use crate::state::StateDir;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

const FILE: &str = "service.toml";

/// The service's remembered settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Remembered {
    /// Bring the tunnel up when the service starts.
    pub connect_at_start: bool,
    /// The controller refused this device (its words), until it is
    /// enrolled again.
    pub refused: Option<Refusal>,
}

/// Why the controller refused this device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Revoked by IT (rather than otherwise no longer accepted).
    pub revoked: bool,
    /// The controller's message.
    pub message: String,
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
            refused: Some(Refusal {
                revoked: true,
                message: "device revoked".into(),
            }),
        };
        settings.save(&dir).expect("save");
        assert_eq!(Remembered::load(&dir).expect("load"), settings);
        Remembered::forget(&dir).expect("forget");
        assert_eq!(Remembered::load(&dir).expect("gone"), Remembered::default());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_defaults() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = StateDir(temp.path().to_owned());
        std::fs::write(temp.path().join(FILE), "connect_at_start = maybe").expect("write");
        assert!(Remembered::load(&dir).is_err());
    }
}
