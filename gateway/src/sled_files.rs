//! What sled leaves on disk that it cannot read back, and full disks.
//!
//! sled writes a snapshot of its page table to `snap.<lsn>.generating`,
//! syncs it and only then renames it to `snap.<lsn>`; but when it opens a
//! store it takes the newest `snap.*` file, `.generating` ones included
//! (sled 0.34). A start that ran out of space half way through leaves a
//! short or empty `.generating` file, and every later start then fails with
//! "Read corrupted data" — even once space is free — until someone deletes
//! it by hand. Such a file is never a finished snapshot (the rename is what
//! finishes one), so it is safe to delete before opening, and nothing else
//! in the directory is touched. No crate does this for us: it works around
//! sled's own file naming, so it lives next to the stores that need it.

use std::path::{Path, PathBuf};

/// Deletes the unfinished snapshots (`snap.*.generating`) in sled's
/// directory `dir`, returning what it deleted (each is also logged).
pub fn remove_unfinished_snapshots(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let unfinished = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("snap.") && name.ends_with(".generating"));
        if unfinished {
            std::fs::remove_file(&path)?;
            tracing::warn!(path = %path.display(), "removed a snapshot that an earlier start left unfinished");
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Opens the sled store in `dir` after removing what an interrupted start
/// left unfinished.
pub fn open(dir: &Path) -> sled::Result<sled::Db> {
    remove_unfinished_snapshots(dir)?;
    sled::open(dir)
}

/// True when `error` means the disk (or the user's quota) is full.
pub fn is_disk_full(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if is_io_disk_full(io))
}

/// True when `error` is "no space left on device" or "quota exceeded".
pub fn is_io_disk_full(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::StorageFull
        || matches!(error.raw_os_error(), Some(28 | 122))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_left_unfinished_no_longer_stops_the_store_from_opening() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        {
            let db = sled::open(dir.path()).expect("opens");
            db.insert(b"kept", b"yes").expect("writes");
            db.flush().expect("flushes");
        }
        // What an interrupted start leaves: an empty snapshot being written.
        let unfinished = dir.path().join("snap.00000000000FFFFF.generating");
        std::fs::write(&unfinished, b"").expect("planted");
        assert!(
            sled::open(dir.path()).is_err(),
            "sled alone takes the unfinished snapshot for the newest"
        );
        let db = open(dir.path()).expect("opens once the unfinished snapshot is gone");
        assert_eq!(
            db.get(b"kept").expect("reads").as_deref(),
            Some(&b"yes"[..])
        );
        assert!(!unfinished.exists());
    }
}
