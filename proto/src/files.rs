//! The one way Porta's programs write files that hold secrets or state:
//! owner-only from the first byte, and replaced atomically and durably.
//!
//! [`replace_private`] writes a temporary file beside the target (mode 0600
//! from creation, so a secret is never briefly readable by others), syncs
//! it, renames it over the target and syncs the directory, so that a crash
//! or power cut leaves the old content or the new — never a mix, and never
//! a rename that did not reach the disk. Errors keep their `io::ErrorKind`
//! (a full disk stays recognisable) and name the file.

use std::io::{self, Write};
use std::path::Path;

fn named(error: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{what} {}: {error}", path.display()))
}

/// Writes `bytes` to a new file (it must not exist) readable by its owner
/// only, and syncs it to disk.
pub fn create_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| named(e, "creating", path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| named(e, "writing", path))
}

/// Replaces `path` with `bytes`, owner-only, atomically and durably.
pub fn replace_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    create_private(&temporary, bytes)?;
    if let Err(error) = std::fs::rename(&temporary, path) {
        let _ = std::fs::remove_file(&temporary);
        return Err(named(error, "replacing", path));
    }
    // The rename itself must reach the disk (directories cannot be opened
    // for syncing on every platform; where they cannot, the rename stands).
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| named(e, "syncing", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_is_owner_only_and_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.toml");
        replace_private(&path, b"first").expect("write");
        replace_private(&path, b"second").expect("replace");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        assert_eq!(
            create_private(&path, b"x").expect_err("exists").kind(),
            io::ErrorKind::AlreadyExists
        );
    }
}
