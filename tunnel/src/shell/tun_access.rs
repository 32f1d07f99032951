//! Why a TUN device could not be created, in words an admin can act on.
//!
//! Creating a TUN device takes two things: opening the clone device
//! `/dev/net/tun` for reading and writing (its file mode decides), and the
//! `TUNSETIFF` ioctl (CAP_NET_ADMIN decides). The kernel's answer for
//! both is a bare "permission denied", so the shell looks at the node
//! itself and says which of the two failed, for which user, and what fixes
//! it. The wording lives in a pure function ([`TunProblem::explain`]) so
//! that every case is tested without changing the host's device node.

use std::io;
#[cfg(target_os = "linux")]
use std::path::Path;

/// The clone device every TUN interface is created through.
pub const TUN_DEVICE: &str = "/dev/net/tun";

/// What was found when the TUN device could not be created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunProblem {
    /// `/dev/net/tun` does not exist (a container without it, or the
    /// `tun` module not loaded).
    Missing,
    /// The node exists but this user may not open it for reading and
    /// writing (fresh container images ship it 0600, root only).
    NotPermitted {
        /// The user the process runs as.
        user: String,
        /// The node's permission bits, e.g. 0o600.
        mode: u32,
    },
    /// The node opens, but creating an interface was refused: the process
    /// lacks CAP_NET_ADMIN.
    NoCapability {
        /// The user the process runs as.
        user: String,
    },
    /// Something else; the OS error says what.
    Other,
}

impl TunProblem {
    /// Looks at `/dev/net/tun` after creating an interface failed with
    /// `error`.
    pub fn diagnose(error: &io::Error) -> Self {
        #[cfg(target_os = "linux")]
        return Self::diagnose_node(Path::new(TUN_DEVICE), error, &current_user());
        // Elsewhere the driver (Wintun, utun) says what it says.
        #[cfg(not(target_os = "linux"))]
        {
            let _ = error;
            Self::Other
        }
    }

    #[cfg(target_os = "linux")]
    fn diagnose_node(node: &Path, error: &io::Error, user: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let metadata = match std::fs::metadata(node) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Self::Missing,
            Err(_) => return Self::Other,
        };
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(node);
        match opened {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Self::NotPermitted {
                user: user.to_owned(),
                mode: metadata.permissions().mode() & 0o7777,
            },
            Ok(_) if error.kind() == io::ErrorKind::PermissionDenied => Self::NoCapability {
                user: user.to_owned(),
            },
            _ => Self::Other,
        }
    }

    /// What happened and how to fix it, or `None` when there is nothing
    /// more to say than the OS error.
    pub fn explain(&self) -> Option<String> {
        match self {
            Self::Missing => Some(format!(
                "{TUN_DEVICE} is missing; load the tun module (`modprobe tun`) or, in a container, \
                 create the node: `mkdir -p /dev/net && mknod {TUN_DEVICE} c 10 200 && chmod 0666 {TUN_DEVICE}`"
            )),
            Self::NotPermitted { user, mode } => Some(format!(
                "permission denied opening {TUN_DEVICE} for user {user} (its mode is {mode:04o}); \
                 a standard host has 0666: run `chmod 0666 {TUN_DEVICE}` as root"
            )),
            Self::NoCapability { user } => Some(format!(
                "{TUN_DEVICE} opens, but user {user} may not create interfaces: \
                 run as root or grant CAP_NET_ADMIN (the packaged systemd unit does)"
            )),
            Self::Other => None,
        }
    }
}

impl TunProblem {
    /// The diagnosis, or `error` with the general requirement when there
    /// is none.
    pub fn describe(&self, error: &io::Error) -> String {
        self.explain().unwrap_or_else(|| {
            if cfg!(target_os = "linux") {
                format!(
                    "{error} (this needs root or CAP_NET_ADMIN, and {TUN_DEVICE} readable and writable)"
                )
            } else if cfg!(windows) {
                format!("{error} (this needs the Porta service's rights and wintun.dll beside it)")
            } else {
                format!("{error} (this needs root)")
            }
        })
    }
}

/// The name of the user this process runs as (the uid when it has none).
#[cfg(target_os = "linux")]
fn current_user() -> String {
    let uid = nix::unistd::Uid::effective();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn denied() -> io::Error {
        io::Error::from(io::ErrorKind::PermissionDenied)
    }

    #[test]
    fn a_missing_node_is_named_with_the_commands_that_create_it() {
        let dir = tempfile::tempdir().unwrap();
        let problem = TunProblem::diagnose_node(&dir.path().join("tun"), &denied(), "porta");
        assert_eq!(problem, TunProblem::Missing);
        let text = problem.explain().unwrap();
        assert!(text.contains("/dev/net/tun is missing"), "{text}");
        assert!(text.contains("mknod /dev/net/tun c 10 200"), "{text}");
    }

    #[test]
    fn a_node_the_user_may_open_but_a_refused_interface_means_no_capability() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("tun");
        std::fs::write(&node, b"").unwrap();
        let problem = TunProblem::diagnose_node(&node, &denied(), "porta");
        assert_eq!(
            problem,
            TunProblem::NoCapability {
                user: "porta".into()
            }
        );
        assert!(problem.explain().unwrap().contains("CAP_NET_ADMIN"));
    }

    #[test]
    fn a_node_the_user_may_not_open_names_the_user_the_mode_and_the_fix() {
        let problem = TunProblem::NotPermitted {
            user: "porta".into(),
            mode: 0o600,
        };
        let text = problem.explain().unwrap();
        assert!(
            text.contains("permission denied opening /dev/net/tun for user porta"),
            "{text}"
        );
        assert!(text.contains("0600"), "{text}");
        assert!(text.contains("chmod 0666 /dev/net/tun"), "{text}");
    }
}
