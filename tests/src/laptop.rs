//! A staff laptop in the `home` namespace with the tunnel service running,
//! as `porta.service` runs it: `porta daemon` with its socket in a
//! directory every user can reach (as /run/porta is).

use crate::binary;
use crate::netns::{Lab, addr};
use crate::town::{Town, path};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The running tunnel service.
pub struct TunnelService {
    /// Its local API's socket.
    pub socket: PathBuf,
    /// Its state directory (key, enrollment, service.toml).
    pub state: PathBuf,
    /// Its log (every start).
    pub log: PathBuf,
    /// The lab's handle of the process.
    pub handle: usize,
    /// The command that starts it.
    pub command: Vec<String>,
    _run_dir: tempfile::TempDir,
}

impl TunnelService {
    /// Starts `porta daemon` in `home` for the town's laptop, tunnel on
    /// the lab's interface `tunnel`.
    pub fn start(lab: &mut Lab, town: &Town, tunnel: &str) -> Self {
        Self::start_under(lab, town, tunnel, &[])
    }

    /// Like [`TunnelService::start`], the command run by `wrapper` (e.g.
    /// `env LD_PRELOAD=…` for a clock of its own).
    pub fn start_under(lab: &mut Lab, town: &Town, tunnel: &str, wrapper: &[&str]) -> Self {
        let run_dir = tempfile::Builder::new()
            .prefix("porta-run")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(run_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = run_dir.path().join("porta").join("porta.sock");
        let state = town.dir.path().join("service-state");
        let log = town.dir.path().join("daemon.log");
        lab.owns_socket(tunnel);
        let command: Vec<String> = wrapper
            .iter()
            .copied()
            .chain([
                path(&binary("porta")),
                "--socket",
                path(&socket),
                "--state",
                path(&state),
                "--interface",
                tunnel,
                "-v",
                "daemon",
            ])
            .map(str::to_owned)
            .collect();
        let mut service = Self {
            socket,
            state,
            log,
            handle: 0,
            command,
            _run_dir: run_dir,
        };
        service.start_again(lab);
        service
    }

    /// Starts the service again (after [`Lab::stop`] of its handle).
    pub fn start_again(&mut self, lab: &mut Lab) {
        let _ = std::fs::remove_file(&self.socket);
        let command: Vec<&str> = self.command.iter().map(String::as_str).collect();
        let log = self.log.with_extension(format!("log.{}", self.handle));
        self.handle = lab.spawn("home", &command, &log).unwrap();
        self.log = log;
        let socket = self.socket.clone();
        lab.wait_for(
            self.handle,
            "the tunnel service",
            Duration::from_secs(10),
            |_| socket.exists(),
        );
    }

    /// What the service logged since its last start.
    pub fn log(&self) -> String {
        crate::read_log(&self.log)
    }

    /// `porta` (as root, in English) against this service, in `home`.
    pub fn porta(&self, lab: &Lab, args: &[&str]) -> std::process::Output {
        let porta = binary("porta");
        let mut all = vec![
            "env",
            "LANG=C",
            path(&porta),
            "--socket",
            path(&self.socket),
        ];
        all.extend_from_slice(args);
        lab.run("home", &all).unwrap()
    }

    /// Enrolls this computer with `invitation` and connects, as a person
    /// would (`porta enroll --yes`, `porta up`), until the town server
    /// answers through the tunnel.
    pub fn enroll_and_connect(&self, lab: &Lab, invitation: &str) {
        let enrolled = self.porta(lab, &["enroll", "--yes", invitation]);
        assert!(enrolled.status.success(), "{enrolled:?}");
        let up = self.porta(lab, &["up"]);
        assert!(up.status.success(), "{up:?}");
        crate::town::wait_until("the town server", Duration::from_secs(30), || {
            town_server_reachable(lab)
        });
    }
}

/// Whether the town's server answers a ping from home.
pub fn town_server_reachable(lab: &Lab) -> bool {
    lab.run("home", &["ping", "-c", "1", "-W", "1", addr::SERVER])
        .unwrap()
        .status
        .success()
}

/// Starts `porta up --foreground` in `home` on the state directory
/// `state` as interface `tunnel` (which the lab removes at the end), its
/// output in `log`; returns the lab's handle.
pub fn up_in_foreground(lab: &mut Lab, state: &Path, tunnel: &str, log: &Path) -> usize {
    lab.owns_socket(tunnel);
    lab.spawn(
        "home",
        &[
            path(&binary("porta")),
            "--state",
            path(state),
            "--interface",
            tunnel,
            "up",
            "--foreground",
        ],
        log,
    )
    .unwrap()
}
