//! What the client keeps on disk, in its state directory (0700):
//!
//! ```text
//! private.key    the WireGuard private key, made here, never sent (0600)
//! device.toml    controller, pinned fingerprint, device credential, last config (0600)
//! porta.pid      the running `porta up`, for `porta down`
//! enrolling.toml an enrollment asked for and not yet answered: its new key
//!                and attempt id, so that asking again after a lost answer
//!                gets the same device (0600; removed once saved)
//! ```

use anyhow::{Context, Result};
use porta_proto::pb;
use porta_tunnel::keys::PrivateKey;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The device's enrollment and last known config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    /// host:port of the controller.
    pub controller: String,
    /// Pinned certificate fingerprint.
    pub fingerprint: String,
    /// Device credential (secret).
    pub credential: String,
    /// The config the controller last sent.
    pub config: SavedConfig,
}

/// A [`pb::DeviceConfig`] as saved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedConfig {
    /// Device id.
    pub device_id: String,
    /// Device name.
    pub device_name: String,
    /// Owner.
    pub user: String,
    /// Tunnel addresses (CIDR).
    pub addresses: Vec<String>,
    /// The gateway: name, endpoint, public key.
    pub gateways: Vec<SavedGateway>,
    /// Routed prefixes.
    pub routes: Vec<String>,
    /// DNS servers.
    pub dns_servers: Vec<String>,
    /// DNS search domains.
    pub search_domains: Vec<String>,
    /// Keepalive seconds.
    pub persistent_keepalive: u32,
    /// MTU.
    pub mtu: u32,
    /// The routes for people (older controllers send none).
    #[serde(default)]
    pub reach: Vec<SavedReach>,
    /// The town hall's name (may be empty).
    #[serde(default)]
    pub organization: String,
}

/// One destination as people read it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedReach {
    /// The group's description, else its name; empty for what every
    /// device reaches.
    pub name: String,
    /// "tcp 443,8080-8090"; empty for everything.
    pub ports: String,
    /// The prefix.
    pub cidr: String,
}

/// A gateway as saved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedGateway {
    /// Name.
    pub name: String,
    /// host:port (UDP).
    pub endpoint: String,
    /// WireGuard public key.
    pub public_key: String,
}

impl From<pb::DeviceConfig> for SavedConfig {
    fn from(c: pb::DeviceConfig) -> Self {
        Self {
            device_id: c.device_id,
            device_name: c.device_name,
            user: c.user,
            addresses: c.addresses,
            gateways: c
                .gateways
                .into_iter()
                .map(|g| SavedGateway {
                    name: g.name,
                    endpoint: g.endpoint,
                    public_key: g.public_key,
                })
                .collect(),
            routes: c.routes,
            dns_servers: c.dns_servers,
            search_domains: c.search_domains,
            persistent_keepalive: c.persistent_keepalive,
            mtu: c.mtu,
            reach: c
                .reach
                .into_iter()
                .map(|r| {
                    let destination = r.destination.unwrap_or_default();
                    SavedReach {
                        name: match (r.because.as_str(), r.description.is_empty()) {
                            ("everyone", _) => String::new(),
                            (group, true) => group.to_owned(),
                            (_, false) => r.description,
                        },
                        ports: destination.protocol_and_ports(),
                        cidr: destination.cidr,
                    }
                })
                .collect(),
            organization: c.organization,
        }
    }
}

/// An enrollment asked for and not answered yet (`enrolling.toml`).
#[derive(Serialize, Deserialize)]
struct PendingEnrollment {
    /// The invitation token's id (its public half).
    token_id: String,
    /// Random; sent with the request (`EnrollRequest.attempt`).
    attempt: String,
    /// The new private key, base64.
    key: String,
}

/// The state directory.
pub struct StateDir(pub PathBuf);

impl StateDir {
    /// The service's (`/var/lib/porta-client`, `%ProgramData%\Porta`) for
    /// an administrator, else `~/.local/share/porta-client`.
    pub fn default_path() -> PathBuf {
        if crate::platform::is_administrator() {
            crate::platform::service_state_dir()
        } else {
            dirs::data_local_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join("porta-client")
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// True once `porta enroll` has succeeded here.
    pub fn is_enrolled(&self) -> bool {
        self.file("device.toml").exists()
    }

    /// Creates the directory for a new enrollment, readable only by its
    /// owner (0700) or, on Windows, by SYSTEM and Administrators.
    pub fn prepare(&self) -> Result<()> {
        std::fs::create_dir_all(&self.0)
            .with_context(|| format!("creating {}", self.0.display()))?;
        crate::platform::restrict_to_administrators(&self.0)
            .with_context(|| format!("making {} private", self.0.display()))?;
        Ok(())
    }

    /// Writes the private key (0600, atomically; a re-enrollment replaces
    /// the old one).
    pub fn write_key(&self, key: &PrivateKey) -> Result<()> {
        self.replace_private("private.key", format!("{}\n", key.to_base64()).as_bytes())
    }

    /// Reads the private key.
    pub fn key(&self) -> Result<PrivateKey> {
        let path = self.file("private.key");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (has this device been enrolled? `porta enroll`)",
                path.display()
            )
        })?;
        Ok(PrivateKey::from_base64(&text)?)
    }

    /// Saves the device state (0600, atomically).
    pub fn save(&self, state: &DeviceState) -> Result<()> {
        self.replace_private("device.toml", toml::to_string_pretty(state)?.as_bytes())
    }

    /// Replaces `name` owner-only, atomically and durably.
    fn replace_private(&self, name: &str, bytes: &[u8]) -> Result<()> {
        Ok(porta_proto::files::replace_private(
            &self.file(name),
            bytes,
        )?)
    }

    /// The key and attempt id to enroll with the token whose id is
    /// `token_id`: those of an earlier try with the same token whose
    /// answer never came, else new ones, kept before they are used.
    pub fn enrollment_attempt(&self, token_id: &str) -> Result<(PrivateKey, String)> {
        let path = self.file("enrolling.toml");
        let earlier = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| toml::from_str::<PendingEnrollment>(&text).ok())
            .filter(|pending| pending.token_id == token_id)
            .and_then(|pending| {
                Some((PrivateKey::from_base64(&pending.key).ok()?, pending.attempt))
            });
        if let Some(earlier) = earlier {
            return Ok(earlier);
        }
        let key = PrivateKey::generate();
        let attempt = hex::encode(rand::random::<[u8; 16]>());
        let pending = PendingEnrollment {
            token_id: token_id.to_owned(),
            attempt: attempt.clone(),
            key: key.to_base64(),
        };
        self.replace_private("enrolling.toml", toml::to_string(&pending)?.as_bytes())?;
        Ok((key, attempt))
    }

    /// Forgets a pending enrollment once its answer is saved.
    pub fn enrollment_answered(&self) {
        let _ = std::fs::remove_file(self.file("enrolling.toml"));
    }

    /// Forgets this computer's enrollment: the key and the saved state.
    pub fn forget(&self) -> Result<()> {
        for name in ["device.toml", "private.key"] {
            match std::fs::remove_file(self.file(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("removing {}", self.file(name).display()));
                }
            }
        }
        Ok(())
    }

    /// The process id of a `porta up` running on this directory, if any.
    pub fn running_tunnel(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        crate::platform::process_alive(pid).then_some(pid)
    }

    /// Loads the device state.
    pub fn load(&self) -> Result<DeviceState> {
        let path = self.file("device.toml");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "this device is not enrolled yet ({} is missing): run `porta enroll <invitation>`",
                path.display()
            )
        })?;
        toml::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }

    /// Where `porta up` records its process id.
    pub fn pid_file(&self) -> PathBuf {
        self.file("porta.pid")
    }
}
