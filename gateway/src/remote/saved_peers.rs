//! The peer set a remote gateway serves while the controller is away, on
//! disk: a snapshot (`peers.pb`, one `PeerUpdate` holding the whole set)
//! and the changes since (`peers.log`, length-delimited `PeerUpdate`s,
//! each revision's changes followed by its end marker).
//!
//! A revision is appended and synced before it is acknowledged — so a
//! revocation the controller counts as confirmed survives a crash of the
//! gateway — at the cost of that revision's changes, not of the whole set
//! (which at 15,000 peers is megabytes per change). Once the log outgrows
//! the snapshot, the set is written as a new snapshot and the log starts
//! again. On start the snapshot is read and the log replayed up to its
//! last complete revision; a torn tail (a crash mid-append) is ignored.

use crate::peer::{GatewayPeer, PeerChange, Update};
use anyhow::{Context, Result};
use porta_proto::files::replace_private;
use porta_proto::pb;
use prost::Message;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The log is compacted once it is this much larger than the snapshot (or
/// than 1 MiB, for small sets).
const COMPACT_FACTOR: u64 = 2;
const MIN_LOG_BYTES: u64 = 1 << 20;

/// What was saved: the revision, its history mark and its peers.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) revision: u64,
    /// The controller's mark for `revision` (0 if it sent none).
    pub(crate) history: u64,
    pub(crate) peers: Vec<GatewayPeer>,
}

/// The on-disk peer set, open for appending.
#[derive(Debug)]
pub(crate) struct SavedPeers {
    snapshot_path: PathBuf,
    log_path: PathBuf,
    log: std::fs::File,
    log_bytes: u64,
    snapshot_bytes: u64,
}

impl SavedPeers {
    /// Opens what `data` holds: the revision and peers saved last (if
    /// any), and the file to append to.
    pub(crate) fn open(data: &Path, gateway: &str) -> Result<(Self, Option<Loaded>)> {
        let snapshot_path = data.join("peers.pb");
        let log_path = data.join("peers.log");
        let (mut saved, snapshot_bytes) = match std::fs::read(&snapshot_path) {
            Ok(bytes) => {
                let message = pb::PeerUpdate::decode(bytes.as_slice())
                    .with_context(|| format!("{} is damaged", snapshot_path.display()))?;
                let (revision, history) = (message.revision, message.history);
                match Update::from_pb(message, gateway) {
                    Some(Update::Snapshot(peers)) => (
                        Some((
                            revision,
                            history,
                            peers
                                .into_iter()
                                .map(|p| (p.device_id.clone(), p))
                                .collect::<BTreeMap<_, _>>(),
                        )),
                        bytes.len() as u64,
                    ),
                    _ => anyhow::bail!("{} holds no peer set", snapshot_path.display()),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0),
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", snapshot_path.display()));
            }
        };
        let log_bytes = match std::fs::read(&log_path) {
            Ok(bytes) => {
                if let Some((revision, history, peers)) = saved.as_mut() {
                    replay(&bytes, gateway, (revision, history), peers);
                }
                bytes.len() as u64
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).with_context(|| format!("reading {}", log_path.display())),
        };
        let log = open_log(&log_path)?;
        let store = Self {
            snapshot_path,
            log_path,
            log,
            log_bytes,
            snapshot_bytes,
        };
        Ok((
            store,
            saved.map(|(revision, history, peers)| Loaded {
                revision,
                history,
                peers: peers.into_values().collect(),
            }),
        ))
    }

    /// Keeps revision `revision` (with its history mark `history`):
    /// `applied` are its updates (a snapshot, changes), `current` the whole
    /// set after them. Durable on return.
    pub(crate) fn keep(
        &mut self,
        revision: u64,
        history: u64,
        applied: Vec<Update>,
        current: impl FnOnce() -> Vec<GatewayPeer>,
    ) -> Result<()> {
        let snapshot = applied.iter().any(|u| matches!(u, Update::Snapshot(_)));
        if snapshot || self.log_bytes > (self.snapshot_bytes * COMPACT_FACTOR).max(MIN_LOG_BYTES) {
            return self.compact(revision, history, current());
        }
        let mut bytes = Vec::new();
        for update in applied.into_iter().chain([Update::End(revision)]) {
            let mut message = update.to_pb(revision);
            message.history = history;
            message.encode_length_delimited(&mut bytes)?;
        }
        self.log
            .write_all(&bytes)
            .and_then(|()| self.log.sync_data())
            .with_context(|| format!("appending to {}", self.log_path.display()))?;
        self.log_bytes += bytes.len() as u64;
        Ok(())
    }

    /// Writes the whole set as the snapshot and empties the log.
    fn compact(&mut self, revision: u64, history: u64, peers: Vec<GatewayPeer>) -> Result<()> {
        let mut message = Update::Snapshot(peers).to_pb(revision);
        message.history = history;
        let bytes = message.encode_to_vec();
        replace_private(&self.snapshot_path, &bytes)?;
        self.snapshot_bytes = bytes.len() as u64;
        self.log = std::fs::File::create(&self.log_path)
            .with_context(|| format!("emptying {}", self.log_path.display()))?;
        self.log.sync_all()?;
        self.log = open_log(&self.log_path)?;
        self.log_bytes = 0;
        Ok(())
    }
}

fn open_log(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Applies the log's complete revisions to `peers`; a torn or damaged
/// tail is where replay stops.
fn replay(
    mut bytes: &[u8],
    gateway: &str,
    (revision, history): (&mut u64, &mut u64),
    peers: &mut BTreeMap<String, GatewayPeer>,
) {
    let mut pending: Vec<PeerChange> = Vec::new();
    while !bytes.is_empty() {
        let Ok(message) = pb::PeerUpdate::decode_length_delimited(&mut bytes) else {
            break;
        };
        let mark = message.history;
        match Update::from_pb(message, gateway) {
            Some(Update::Change(change)) => pending.push(change),
            Some(Update::End(end)) => {
                for change in pending.drain(..) {
                    match change {
                        PeerChange::Upsert(peer) => {
                            peers.insert(peer.device_id.clone(), peer);
                        }
                        PeerChange::Removed { device_id, .. } => {
                            peers.remove(&device_id);
                        }
                    }
                }
                *revision = end;
                *history = mark;
            }
            _ => break,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::destination::{Destination, PortRange, Protocol};

    fn peer(n: u8) -> GatewayPeer {
        GatewayPeer {
            device_id: format!("d{n}"),
            gateway: "annex".into(),
            public_key: porta_proto::PublicKey([n; 32]),
            allowed_ips: vec![format!("10.77.0.{n}/32").parse().unwrap()],
            destinations: vec![Destination {
                cidr: "10.1.0.0/16".parse().unwrap(),
                protocol: Protocol::Tcp,
                ports: vec![PortRange {
                    first: 443,
                    last: 443,
                }],
            }],
        }
    }

    fn ids(peers: &[GatewayPeer]) -> Vec<String> {
        let mut ids: Vec<String> = peers.iter().map(|p| p.device_id.clone()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn revisions_survive_a_restart_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut saved, nothing) = SavedPeers::open(dir.path(), "annex").unwrap();
        assert!(nothing.is_none());
        saved
            .keep(
                5,
                505,
                vec![Update::Snapshot(vec![peer(1), peer(2)])],
                || vec![peer(1), peer(2)],
            )
            .unwrap();
        saved
            .keep(
                6,
                606,
                vec![Update::Change(PeerChange::Removed {
                    device_id: "d1".into(),
                    gateway: "annex".into(),
                })],
                Vec::new,
            )
            .unwrap();
        saved
            .keep(
                7,
                707,
                vec![Update::Change(PeerChange::Upsert(peer(3)))],
                Vec::new,
            )
            .unwrap();
        drop(saved);
        let (_, loaded) = SavedPeers::open(dir.path(), "annex").unwrap();
        let loaded = loaded.unwrap();
        assert_eq!(
            (loaded.revision, loaded.history, ids(&loaded.peers)),
            (7, 707, vec!["d2".into(), "d3".into()])
        );

        // A crash in the middle of appending revision 8: 7 stands.
        let mut torn = Vec::new();
        Update::Change(PeerChange::Upsert(peer(4)))
            .to_pb(8)
            .encode_length_delimited(&mut torn)
            .unwrap();
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("peers.log"))
            .unwrap();
        log.write_all(&torn[..torn.len() - 3]).unwrap();
        drop(log);
        let (_, loaded) = SavedPeers::open(dir.path(), "annex").unwrap();
        let loaded = loaded.unwrap();
        assert_eq!(
            (loaded.revision, loaded.history, ids(&loaded.peers)),
            (7, 707, vec!["d2".into(), "d3".into()])
        );
    }

    #[test]
    fn a_log_larger_than_its_snapshot_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut saved, _) = SavedPeers::open(dir.path(), "annex").unwrap();
        saved
            .keep(1, 101, vec![Update::Snapshot(vec![peer(1)])], || {
                vec![peer(1)]
            })
            .unwrap();
        saved.log_bytes = MIN_LOG_BYTES + 1;
        saved
            .keep(
                2,
                202,
                vec![Update::Change(PeerChange::Upsert(peer(2)))],
                || vec![peer(1), peer(2)],
            )
            .unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("peers.log"))
                .unwrap()
                .len(),
            0
        );
        let (_, loaded) = SavedPeers::open(dir.path(), "annex").unwrap();
        let loaded = loaded.unwrap();
        assert_eq!(
            (loaded.revision, loaded.history, ids(&loaded.peers)),
            (2, 202, vec!["d1".into(), "d2".into()])
        );
    }
}
