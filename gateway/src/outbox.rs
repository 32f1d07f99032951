//! Connection events a remote gateway has not delivered yet, on disk.
//!
//! A sled tree in the gateway's data directory, flushed on every change:
//! a gateway that loses the controller, or its own process, loses no
//! event. Events leave it only once the controller has recorded them
//! (`Gateway.ReportEvents`), oldest first; the controller skips event ids
//! it already has, so a batch resent after a lost reply counts once.

use crate::event::GatewayEvent;
use crate::sled_files;
use porta_proto::pb;
use prost::Message;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

/// Why the outbox could not be opened, read or written; each names the
/// directory.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The disk holding the outbox is full.
    #[error(
        "no space left on the disk holding {dir}: connection events wait in memory until space          is freed"
    )]
    DiskFull {
        /// The outbox's directory.
        dir: String,
    },
    /// Anything else sled reported.
    #[error("the event outbox in {dir}: {source}")]
    Store {
        /// The outbox's directory.
        dir: String,
        /// What sled said.
        source: sled::Error,
    },
}

/// The undelivered events, in the order they were kept.
///
/// sled refuses every write after its first I/O error, even once space is
/// freed, so a failed write marks the outbox and the next write reopens
/// it from disk first: what was flushed before is all there, and the
/// events of the failed write are the caller's to offer again.
pub struct EventOutbox {
    dir: PathBuf,
    db: RwLock<Option<sled::Db>>,
    failed: AtomicBool,
}

/// Where a batch sits in the outbox, to remove it once delivered.
pub type Keys = Vec<sled::IVec>;

impl EventOutbox {
    /// Opens (or creates) the outbox in `dir`.
    pub fn open(dir: &Path) -> Result<Self, OutboxError> {
        let db = sled_files::open(dir).map_err(|source| error_in(dir, source))?;
        Ok(Self {
            dir: dir.to_owned(),
            db: RwLock::new(Some(db)),
            failed: AtomicBool::new(false),
        })
    }

    /// How many events wait.
    pub fn len(&self) -> usize {
        self.read().as_ref().map_or(0, |db| db.len())
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps `events` after those already waiting, durably. On an error
    /// none of them counts as kept (some may be, and are offered again:
    /// the controller skips event ids it has).
    pub fn push(&self, events: &[GatewayEvent]) -> Result<(), OutboxError> {
        self.write(|db| {
            for event in events {
                let key = db.generate_id()?.to_be_bytes();
                db.insert(key, pb::ConnectionEvent::from(event).encode_to_vec())?;
            }
            db.flush()?;
            Ok(())
        })
    }

    /// The oldest `limit` events and where they sit. A damaged entry is
    /// logged and its key returned with the others, so that it leaves
    /// with the batch instead of blocking the outbox.
    pub fn peek(&self, limit: usize) -> Result<(Keys, Vec<pb::ConnectionEvent>), OutboxError> {
        let mut keys = Vec::new();
        let mut events = Vec::new();
        let db = self.read();
        let Some(db) = db.as_ref() else {
            return Ok((keys, events));
        };
        for item in db.iter().take(limit) {
            let (key, bytes) = item.map_err(|source| error_in(&self.dir, source))?;
            match pb::ConnectionEvent::decode(bytes.as_ref()) {
                Ok(event) => events.push(event),
                Err(error) => tracing::error!(%error, "dropping a damaged kept event"),
            }
            keys.push(key);
        }
        Ok((keys, events))
    }

    /// Removes a delivered batch, durably.
    pub fn remove(&self, keys: &[sled::IVec]) -> Result<(), OutboxError> {
        self.write(|db| {
            for key in keys {
                db.remove(key)?;
            }
            db.flush()?;
            Ok(())
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Option<sled::Db>> {
        self.db.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `change` on a store that can write: reopened first if an
    /// earlier write failed.
    fn write(&self, change: impl FnOnce(&sled::Db) -> sled::Result<()>) -> Result<(), OutboxError> {
        if self.failed.load(Ordering::Acquire) {
            self.reopen()?;
        }
        let db = self.read();
        let Some(db) = db.as_ref() else {
            return Err(OutboxError::DiskFull {
                dir: self.dir.display().to_string(),
            });
        };
        change(db).map_err(|source| {
            self.failed.store(true, Ordering::Release);
            error_in(&self.dir, source)
        })
    }

    fn reopen(&self) -> Result<(), OutboxError> {
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        // sled's file lock goes with the last handle.
        drop(db.take());
        let reopened = sled_files::open(&self.dir).map_err(|source| error_in(&self.dir, source))?;
        *db = Some(reopened);
        self.failed.store(false, Ordering::Release);
        tracing::info!(dir = %self.dir.display(), "the event outbox writes again");
        Ok(())
    }
}

fn error_in(dir: &Path, source: sled::Error) -> OutboxError {
    let dir = dir.display().to_string();
    if sled_files::is_disk_full(&source) {
        OutboxError::DiskFull { dir }
    } else {
        OutboxError::Store { dir, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn event(id: &str) -> GatewayEvent {
        GatewayEvent {
            event_id: id.into(),
            kind: EventKind::SessionStart,
            at: 1,
            device_id: "d".into(),
            public_address: "192.0.2.1:1".into(),
            previous_public_address: String::new(),
            rx_bytes: 0,
            tx_bytes: 0,
            reason: None,
            session_start: 1,
        }
    }

    #[test]
    fn events_survive_a_restart_in_order_and_leave_only_when_removed() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        {
            let outbox = EventOutbox::open(dir.path()).expect("opens");
            outbox
                .push(&[event("a"), event("b"), event("c")])
                .expect("kept");
        }
        let outbox = EventOutbox::open(dir.path()).expect("reopens");
        let (keys, events) = outbox.peek(2).expect("reads");
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        outbox.remove(&keys).expect("removed");
        let (_, rest) = outbox.peek(10).expect("reads");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].event_id, "c");
    }
}
