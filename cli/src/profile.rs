//! Saved logins ("profiles"): where a controller is, its pinned certificate
//! fingerprint, and the credential, in one TOML file readable by its owner
//! only (mode 0600, written atomically).

use anyhow::{Context, Result, bail};
use porta_proto::CertFingerprint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One saved login.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Profile {
    /// host:port of the controller's API.
    pub controller: String,
    /// The pinned certificate fingerprint.
    pub fingerprint: String,
    /// The bearer credential. Secret.
    pub credential: String,
    /// "admin" or "auditor".
    pub role: String,
    /// The credential's name on the controller.
    pub name: String,
    /// The head of each log as `logs verify` last found it, by log name:
    /// a later verification that finds the log shorter, or its head
    /// replaced, reports it (the controller's store went back).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub verified: BTreeMap<String, VerifiedHead>,
}

/// A log's head as verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedHead {
    /// Sequence of its newest record.
    pub sequence: u64,
    /// That record's hash.
    pub hash: String,
    /// When it was verified (RFC 3339).
    pub at: String,
}

impl VerifiedHead {
    /// Why a log now ending at `sequence` with `hash` cannot be the one
    /// verified before, if it cannot.
    pub fn went_back(&self, sequence: u64, hash: &str) -> Option<String> {
        if sequence < self.sequence {
            Some(format!(
                "it went backwards: it ends at record {sequence}, but record {} (hash {}) was \
                 verified at {}",
                self.sequence, self.hash, self.at
            ))
        } else if sequence == self.sequence && hash != self.hash {
            Some(format!(
                "its record {sequence} is not the one verified at {} (hash {} then, {hash} now)",
                self.at, self.hash
            ))
        } else {
            None
        }
    }
}

impl Profile {
    /// The pinned fingerprint, parsed.
    pub fn pinned(&self) -> Result<CertFingerprint> {
        self.fingerprint
            .parse()
            .context("the saved fingerprint is damaged; log in again")
    }
}

/// The whole credentials file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProfileFile {
    /// Used when no --profile is given.
    #[serde(default)]
    pub current: Option<String>,
    /// Saved logins by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// Where the file lives unless --config says otherwise.
pub fn default_path() -> PathBuf {
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("porta")
        .join("portactl.toml")
}

impl ProfileFile {
    /// Reads the file; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file owner-only (0600), atomically and durably.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        porta_proto::files::replace_private(path, toml::to_string_pretty(self)?.as_bytes())?;
        Ok(())
    }

    /// The profile `wanted` names, or the current one.
    pub fn select(&self, wanted: Option<&str>) -> Result<(String, &Profile)> {
        let name = match wanted.or(self.current.as_deref()) {
            Some(name) => name.to_owned(),
            None => bail!(crate::error::NotLoggedIn(
                "no login saved; run `portactl login <invitation>` first".into()
            )),
        };
        match self.profiles.get(&name) {
            Some(profile) => Ok((name, profile)),
            None => bail!(crate::error::NotLoggedIn(format!(
                "no login saved as {name:?}; saved: {}",
                if self.profiles.is_empty() {
                    "none".into()
                } else {
                    self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            ))),
        }
    }
}
