//! Linux and the other Unixes: root, modes, Unix sockets, systemd.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `porta daemon` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/porta/porta.sock";

/// The byte stream of the local API.
pub type LocalStream = tokio::net::UnixStream;

/// Whether this process may touch the service's state (root).
pub fn is_administrator() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The name of the user running this program.
pub fn user_name() -> String {
    let uid = nix::unistd::Uid::current();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// The state directory of the service (and of root's foreground tunnel).
pub fn service_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/porta-client")
}

/// Makes `dir` readable by its owner only (0700).
pub fn restrict_to_administrators(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Who can read a file [`write_private_file`] wrote.
pub const PRIVATE_FILE_READERS: &str = "its owner (mode 0600)";

/// Writes `bytes` to `path` readable by its owner only (0600), whether
/// the file is new or not.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: make it private too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Opens the local API at `path`.
pub async fn connect_local(path: &Path) -> std::io::Result<LocalStream> {
    tokio::net::UnixStream::connect(path).await
}

/// Whether the process `pid` still runs.
pub fn process_alive(pid: u32) -> bool {
    i32::try_from(pid)
        .is_ok_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
}

/// Time since boot counting a suspend, and without it: their gap grows by
/// how long the computer slept (Linux: BOOTTIME and MONOTONIC; macOS:
/// MONOTONIC, which counts sleep there, and UPTIME_RAW, which does not).
pub fn clocks() -> (Duration, Duration) {
    use nix::time::{ClockId, clock_gettime};
    let read = |id| clock_gettime(id).map(Duration::from).unwrap_or_default();
    #[cfg(target_os = "linux")]
    let (with_sleep, without) = (ClockId::CLOCK_BOOTTIME, ClockId::CLOCK_MONOTONIC);
    #[cfg(not(target_os = "linux"))]
    let (with_sleep, without) = (
        ClockId::CLOCK_MONOTONIC,
        ClockId::from_raw(nix::libc::CLOCK_UPTIME_RAW),
    );
    (read(with_sleep), read(without))
}

/// This computer's host name, as the controller lists it.
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// The operating system's name and version.
pub fn os_name() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}

/// Tells systemd (Type=notify) that `what` is ready.
pub fn notify_ready(what: &str) {
    if let Err(error) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(%error, "could not tell systemd the {what} is ready");
    }
}
