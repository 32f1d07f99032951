//! Where the devices with a live tunnel were, so that a restarted gateway
//! shakes hands with them at once.
//!
//! A gateway that restarts (a planned controller restart, an upgrade, a
//! crash) forgets its WireGuard sessions; each laptop keeps sending with
//! keys the gateway no longer has and only starts a new handshake when
//! it has heard nothing back for 15 s (WireGuard's keepalive plus rekey
//! timeouts). So the gateway keeps, in `live-tunnels.json` in its data
//! directory, the devices that completed a handshake in the last three
//! minutes (a WireGuard session lives at most that long) and where they
//! were; at its next start it points those peers at those addresses and
//! starts the handshakes itself, and the laptops answer within a round
//! trip. The file holds what the connection log holds anyway (device and
//! public address), readable by the gateway only.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A device with a live tunnel, and where its datagrams came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveTunnel {
    /// The device.
    pub device_id: String,
    /// Its public address.
    pub endpoint: SocketAddr,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    /// Unix seconds of the last write.
    saved_at: u64,
    tunnels: Vec<LiveTunnel>,
}

/// A tunnel is live this long after its last handshake (WireGuard's
/// REJECT_AFTER_TIME: no session outlives it).
pub const LIVE_FOR: std::time::Duration = std::time::Duration::from_secs(180);

/// An unchanged list is written again this often, so that its age says
/// whether it is still worth acting on.
const REFRESH_SECS: u64 = 60;

/// The file, and what it holds.
pub struct LiveTunnelFile {
    path: PathBuf,
    saved: Vec<LiveTunnel>,
    saved_at: u64,
}

impl LiveTunnelFile {
    /// The file in `data`, and its tunnels if it was written recently
    /// enough (at `now`, Unix seconds) for them to be worth a handshake.
    /// A missing or damaged file is no tunnels.
    pub fn open(data: &Path, now: u64) -> (Self, Vec<LiveTunnel>) {
        let path = data.join("live-tunnels.json");
        let on_disk = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<OnDisk>(&bytes).ok());
        let recent = on_disk
            .as_ref()
            .filter(|d| now.saturating_sub(d.saved_at) <= LIVE_FOR.as_secs() + REFRESH_SECS)
            .map(|d| d.tunnels.clone())
            .unwrap_or_default();
        let (saved, saved_at) = on_disk.map_or((Vec::new(), 0), |d| (d.tunnels, d.saved_at));
        (
            Self {
                path,
                saved,
                saved_at,
            },
            recent,
        )
    }

    /// Keeps `tunnels` (sorted by the caller or not; compared as given)
    /// if they changed or the file is getting old.
    pub fn save(&mut self, tunnels: Vec<LiveTunnel>, now: u64) -> anyhow::Result<()> {
        if tunnels == self.saved && now.saturating_sub(self.saved_at) < REFRESH_SECS {
            return Ok(());
        }
        let on_disk = OnDisk {
            saved_at: now,
            tunnels,
        };
        porta_proto::files::replace_private(&self.path, &serde_json::to_vec(&on_disk)?)?;
        self.saved = on_disk.tunnels;
        self.saved_at = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel(n: u8) -> LiveTunnel {
        LiveTunnel {
            device_id: format!("d{n}"),
            endpoint: SocketAddr::from(([192, 0, 2, n], 40_000)),
        }
    }

    #[test]
    fn recent_tunnels_come_back_and_old_ones_do_not() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (mut file, none) = LiveTunnelFile::open(dir.path(), 1_000);
        assert!(none.is_empty());
        file.save(vec![tunnel(1), tunnel(2)], 1_000).expect("saved");
        let (_, back) = LiveTunnelFile::open(dir.path(), 1_030);
        assert_eq!(back, vec![tunnel(1), tunnel(2)]);
        let (_, stale) = LiveTunnelFile::open(dir.path(), 1_000 + 600);
        assert!(
            stale.is_empty(),
            "a gateway down for ten minutes has no live tunnels"
        );
        // Unchanged, the list is written again once a minute.
        let (mut file, _) = LiveTunnelFile::open(dir.path(), 1_030);
        file.save(vec![tunnel(1), tunnel(2)], 1_070).expect("saved");
        let (_, back) = LiveTunnelFile::open(dir.path(), 1_070 + 200);
        assert_eq!(back.len(), 2);
    }
}
