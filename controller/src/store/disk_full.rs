//! A full disk: how the store reports it and recovers once space is freed.
//!
//! sled refuses every write after its first I/O error, even once space is
//! freed. So a write that finds the disk full marks the store
//! ([`Store::failed`]), and the next write (at most once a second) closes
//! sled and opens it again from what is on disk ([`Store::recover`]) —
//! exactly what was acknowledged, since the writes that failed were
//! reported as failed.

use super::{Opened, Store};
use crate::error::{Error, Result};
use porta_gateway::sled_files::is_disk_full;
use std::path::Path;
use std::sync::Arc;

/// `error` as the controller reports it: a full disk names the data
/// directory holding the store.
pub(super) fn storage_error(dir: &Path, error: sled::Error) -> Error {
    if is_disk_full(&error) {
        Error::DiskFull {
            dir: dir.parent().unwrap_or(dir).display().to_string(),
        }
    } else {
        Error::Store(error)
    }
}

/// Free space a store whose disk filled waits for before it reopens.
const REOPEN_NEEDS_BYTES: u64 = 4 * 1024 * 1024;

/// How often a store whose disk filled tries to reopen.
const REOPEN_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Store {
    /// `error`, noting a full disk for the next write to recover from.
    pub(super) fn failed(&self, error: sled::Error) -> Error {
        let error = storage_error(&self.dir, error);
        if matches!(error, Error::DiskFull { .. }) {
            let mut full = self.disk_full.lock().unwrap_or_else(|p| p.into_inner());
            if full.is_none() {
                tracing::error!(%error, "the store cannot write: its disk is full");
                *full = Some(std::time::Instant::now() - REOPEN_EVERY);
            }
        }
        error
    }

    /// After the disk filled: closes sled and opens it again (at most once
    /// a second), so that writes work again once space was freed. Until
    /// then writes fail with [`Error::DiskFull`].
    pub(super) fn recover(&self) -> Result<()> {
        let mut full = self.disk_full.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tried) = *full else {
            return Ok(());
        };
        let still_full = || Error::DiskFull {
            dir: self.dir.parent().unwrap_or(&self.dir).display().to_string(),
        };
        if tried.elapsed() < REOPEN_EVERY {
            return Err(still_full());
        }
        *full = Some(std::time::Instant::now());
        // Reopening needs room of its own: wait until there is some.
        let available = nix::sys::statvfs::statvfs(self.dir.as_path())
            .map(|s| s.blocks_available() * s.fragment_size())
            .unwrap_or(0);
        if available < REOPEN_NEEDS_BYTES {
            return Err(still_full());
        }
        let mut opened = self.opened.write().unwrap_or_else(|p| p.into_inner());
        let current = opened.take().expect("the store is open");
        // Only a handle nobody else holds can be closed.
        let current = match Arc::try_unwrap(current) {
            Ok(current) => current,
            Err(shared) => {
                *opened = Some(shared);
                return Err(still_full());
            }
        };
        drop(current);
        // Readers that still hold one of the old trees keep sled's lock a
        // moment longer.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let reopened = loop {
            match Opened::open(&self.dir) {
                Ok(reopened) => break reopened,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                // Nothing safe is left to serve from: stop, and let the
                // service manager start the controller again.
                Err(error) => {
                    tracing::error!(%error, dir = %self.dir.display(), "the store could not be opened again after its disk filled; stopping");
                    std::process::exit(75);
                }
            }
        };
        *opened = Some(Arc::new(reopened));
        *full = None;
        tracing::info!(dir = %self.dir.display(), "the store writes again: space was freed on its disk");
        Ok(())
    }
}
