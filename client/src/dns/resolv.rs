//! Linux (and other Unixes): the town's DNS through systemd-resolved, or
//! by rewriting `/etc/resolv.conf`.
//!
//! Two ways, chosen at `porta up`:
//! * **systemd-resolved** (when it runs): the servers and domains are set
//!   on the tunnel interface with `resolvectl`, so only the town's names go
//!   to the town's servers when the search domains say so; resolved forgets
//!   them by itself when the interface goes away.
//! * **`/etc/resolv.conf`** otherwise: the file's content is saved in the
//!   state directory (one file per tunnel interface) and rewritten in place (not replaced: it may be a
//!   bind mount, as under `ip netns exec`) with the town's servers first.
//!   `porta down`, the end of `porta up`, and the next `porta up` after a
//!   crash put the saved content back.
//!
//! [`resolv_conf`] is the pure part: what the file says with the tunnel up.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const RESOLV_CONF: &str = "/etc/resolv.conf";
const RESOLVED_SOCKET: &str = "/run/systemd/resolve/io.systemd.Resolve";

/// What was changed, so it can be undone.
#[derive(Debug)]
pub enum Applied {
    /// No DNS in the config: nothing changed.
    Nothing,
    /// Set on the interface in systemd-resolved.
    Resolved {
        /// The tunnel interface.
        interface: String,
    },
    /// `/etc/resolv.conf` rewritten; its old content saved at `backup`.
    File {
        /// Where the original content is kept.
        backup: PathBuf,
    },
}

/// The resolv.conf content with the tunnel up: the town's servers (at most
/// three, the resolver's limit) and search domains, then the original's
/// options; the original's own servers and search lines are left out, so
/// that town names never leak to the home network's resolver.
pub fn resolv_conf(servers: &[String], search: &[String], original: &str) -> String {
    let mut out =
        String::from("# Written by porta while the tunnel is up; restored by `porta down`.\n");
    for server in servers.iter().take(3) {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for line in original.lines() {
        let keyword = line.split_whitespace().next().unwrap_or("");
        if keyword == "options" || keyword == "sortlist" {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Applies `servers` and `search` for `interface`; `state_dir` holds the
/// backup of `/etc/resolv.conf` when that is the way.
pub fn apply(
    interface: &str,
    servers: &[String],
    search: &[String],
    state_dir: &Path,
) -> Result<Applied> {
    restore_leftover(state_dir, interface)?;
    if servers.is_empty() {
        return Ok(Applied::Nothing);
    }
    if Path::new(RESOLVED_SOCKET).exists() {
        let mut dns = Command::new("resolvectl");
        dns.args(["dns", interface]).args(servers);
        run(dns)?;
        let mut domains = Command::new("resolvectl");
        domains.args(["domain", interface]).args(search);
        run(domains)?;
        return Ok(Applied::Resolved {
            interface: interface.to_owned(),
        });
    }
    let original = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
    let backup = backup_path(state_dir, interface);
    std::fs::write(&backup, &original)
        .with_context(|| format!("saving {RESOLV_CONF} to {}", backup.display()))?;
    rewrite_in_place(&resolv_conf(servers, search, &original))?;
    Ok(Applied::File { backup })
}

/// Undoes [`apply`].
pub fn undo(applied: &Applied) -> Result<()> {
    match applied {
        Applied::Nothing => Ok(()),
        Applied::Resolved { interface } => {
            let mut revert = Command::new("resolvectl");
            revert.args(["revert", interface]);
            // The interface may be gone already, and resolved with it.
            let _ = run(revert);
            Ok(())
        }
        Applied::File { backup } => restore(backup),
    }
}

/// Puts back a resolv.conf a crashed `porta up` on `interface` left
/// rewritten.
pub fn restore_leftover(state_dir: &Path, interface: &str) -> Result<()> {
    let backup = backup_path(state_dir, interface);
    if backup.exists() {
        restore(&backup)?;
    }
    Ok(())
}

fn restore(backup: &Path) -> Result<()> {
    let original = std::fs::read_to_string(backup)
        .with_context(|| format!("reading the saved {}", backup.display()))?;
    rewrite_in_place(&original)?;
    std::fs::remove_file(backup)?;
    Ok(())
}

/// One backup per tunnel interface: a second tunnel never takes another
/// one's saved file for its own.
fn backup_path(state_dir: &Path, interface: &str) -> PathBuf {
    state_dir.join(format!("resolv.conf.before-{interface}"))
}

fn rewrite_in_place(content: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(RESOLV_CONF)
        .with_context(|| format!("opening {RESOLV_CONF}"))?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn run(mut command: Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        anyhow::bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_town_servers_replace_the_home_ones_and_options_stay() {
        let original =
            "# home router\nnameserver 192.168.1.1\nsearch lan\noptions edns0 trust-ad\n";
        let written = resolv_conf(
            &["10.1.0.53".into(), "10.1.0.54".into()],
            &["ajuntament.local".into(), "gis.local".into()],
            original,
        );
        assert!(written.contains("nameserver 10.1.0.53\nnameserver 10.1.0.54\n"));
        assert!(written.contains("search ajuntament.local gis.local\n"));
        assert!(written.contains("options edns0 trust-ad\n"));
        assert!(!written.contains("192.168.1.1"), "{written}");
        assert!(!written.contains("search lan"), "{written}");
    }

    #[test]
    fn at_most_three_servers_are_written() {
        let servers: Vec<String> = (1..=5).map(|i| format!("10.1.0.{i}")).collect();
        let written = resolv_conf(&servers, &[], "");
        assert_eq!(written.matches("nameserver").count(), 3);
        assert!(!written.contains("search"));
    }
}
