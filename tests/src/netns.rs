//! A little internet of Linux network namespaces for end-to-end tests:
//!
//! ```text
//!   home ──(veth 172.31.1.0/24)── town ──(veth 172.31.2.0/24)── lan
//!  laptop                    controller, gateway             town server
//!                                  │
//!                          (veth 172.31.3.0/24, with [`Lab::add_branch`])
//!                                  │
//!                               branch: a remote gateway, and a branch
//!                                       server on 172.31.4.1 behind it
//! ```
//!
//! `town` forwards between its links; `lan` routes the VPN prefix back to
//! `town`. Names carry the test process id so parallel runs do not collide
//! (WireGuard control sockets in /var/run/wireguard are shared by all
//! namespaces, so interface names must be unique too). Dropping the [`Lab`]
//! kills what it started and deletes what it created. Needs root.

use anyhow::{Context, Result, bail};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The namespaces and everything started in them.
pub struct Lab {
    /// Unique short prefix for names.
    pub tag: String,
    children: Vec<Child>,
    /// Where each spawned child's output goes, by handle.
    logs: Vec<std::path::PathBuf>,
    sockets: Vec<String>,
    namespaces: Vec<&'static str>,
}

/// Addresses in the lab.
pub mod addr {
    /// The laptop's address on its home network.
    pub const HOME: &str = "172.31.1.2";
    /// The town box, as seen from home (controller API and gateway).
    pub const TOWN_PUBLIC: &str = "172.31.1.1";
    /// The town box on the town LAN.
    pub const TOWN_LAN: &str = "172.31.2.1";
    /// The town server.
    pub const SERVER: &str = "172.31.2.2";
    /// The branch box, as seen from home (its gateway's endpoint).
    pub const BRANCH_PUBLIC: &str = "172.31.3.2";
    /// The server behind the branch gateway.
    pub const BRANCH_SERVER: &str = "172.31.4.1";
}

impl Lab {
    /// Builds the namespaces and links. Fails clearly when not root.
    pub fn new() -> Result<Self> {
        if !nix_is_root() {
            bail!(
                "network-namespace tests need root (CI runs them as root): run `sudo cargo test --workspace`"
            );
        }
        let tag = format!(
            "p{}{}",
            std::process::id() % 10_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Self {
            tag,
            children: Vec::new(),
            logs: Vec::new(),
            sockets: Vec::new(),
            namespaces: Vec::new(),
        };
        for ns in ["home", "town", "lan"] {
            lab.add_namespace(ns)?;
        }
        lab.link("home", "172.31.1.2/24", "town", "172.31.1.1/24")?;
        lab.link("lan", "172.31.2.2/24", "town", "172.31.2.1/24")?;
        lab.ip(&[
            "-n",
            &lab.ns("lan"),
            "route",
            "add",
            "10.77.0.0/16",
            "via",
            addr::TOWN_LAN,
        ])?;
        lab.exec("town", &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        Ok(lab)
    }

    fn add_namespace(&mut self, ns: &'static str) -> Result<()> {
        self.ip(&["netns", "add", &self.ns(ns)])?;
        self.namespaces.push(ns);
        self.ip(&["-n", &self.ns(ns), "link", "set", "lo", "up"])
    }

    /// Adds the fourth namespace, `branch`, linked to `town` (which
    /// forwards between home and branch), with a server address behind
    /// its gateway.
    pub fn add_branch(&mut self) -> Result<()> {
        self.add_namespace("branch")?;
        self.link("branch", "172.31.3.2/24", "town", "172.31.3.1/24")?;
        let branch = self.ns("branch");
        let home = self.ns("home");
        self.ip(&[
            "-n",
            &branch,
            "route",
            "add",
            "172.31.1.0/24",
            "via",
            "172.31.3.1",
        ])?;
        self.ip(&[
            "-n",
            &home,
            "route",
            "add",
            "172.31.3.0/24",
            "via",
            addr::TOWN_PUBLIC,
        ])?;
        // On loopback: the kernels tests run on may lack the dummy driver.
        self.ip(&["-n", &branch, "addr", "add", "172.31.4.1/32", "dev", "lo"])
    }

    /// Gives namespace `ns` its own /etc/resolv.conf with `content`: `ip
    /// netns exec` bind-mounts /etc/netns/NAME/resolv.conf over it. Returns
    /// the file's path (removed with the lab).
    pub fn resolv_conf(&self, ns: &str, content: &str) -> Result<std::path::PathBuf> {
        let dir = std::path::Path::new("/etc/netns").join(self.ns(ns));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("resolv.conf");
        std::fs::write(&path, content)?;
        Ok(path)
    }

    /// The full name of namespace `short`.
    pub fn ns(&self, short: &str) -> String {
        format!("{}-{short}", self.tag)
    }

    /// A unique interface name (≤ 15 bytes) for `what`.
    pub fn iface(&self, what: &str) -> String {
        let name = format!("{}{what}", self.tag);
        name[..name.len().min(15)].to_owned()
    }

    fn link(&self, a: &str, a_addr: &str, b: &str, b_addr: &str) -> Result<()> {
        let (a_if, b_if) = (
            self.iface(&format!("{a}{b}")),
            self.iface(&format!("{b}{a}")),
        );
        self.ip(&["link", "add", &a_if, "type", "veth", "peer", "name", &b_if])?;
        for (ns, iface, address) in [(a, &a_if, a_addr), (b, &b_if, b_addr)] {
            self.ip(&["link", "set", iface, "netns", &self.ns(ns)])?;
            self.ip(&["-n", &self.ns(ns), "addr", "add", address, "dev", iface])?;
            self.ip(&["-n", &self.ns(ns), "link", "set", iface, "up"])?;
        }
        Ok(())
    }

    fn ip(&self, args: &[&str]) -> Result<()> {
        checked(
            Command::new("ip").args(args).output()?,
            &format!("ip {}", args.join(" ")),
        )
    }

    /// Runs a command in namespace `ns` and returns its output, failing on
    /// a non-zero exit.
    pub fn exec(&self, ns: &str, command: &[&str]) -> Result<Output> {
        let output = self.run(ns, command)?;
        checked(output.clone(), &command.join(" "))?;
        Ok(output)
    }

    /// Runs a command in namespace `ns`, whatever its exit status.
    pub fn run(&self, ns: &str, command: &[&str]) -> Result<Output> {
        Ok(Command::new("ip")
            .args(["netns", "exec", &self.ns(ns)])
            .args(command)
            .output()?)
    }

    /// Starts a long-running command in `ns`, output to `log`; killed when
    /// the lab is dropped (or by [`Lab::stop`]).
    pub fn spawn(&mut self, ns: &str, command: &[&str], log: &std::path::Path) -> Result<usize> {
        let file = std::fs::File::create(log)?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns)])
            .args(command)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", command.join(" ")))?;
        self.children.push(child);
        self.logs.push(log.to_owned());
        Ok(self.children.len() - 1)
    }

    /// The process id of a spawned process (`ip netns exec` and what it
    /// runs exec in place, so it is the command's own).
    pub fn pid(&self, handle: usize) -> u32 {
        self.children[handle].id()
    }

    /// SIGKILL to a spawned process (no chance to clean up), and wait.
    pub fn kill(&mut self, handle: usize) -> Result<()> {
        let child = &mut self.children[handle];
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// SIGTERM to a spawned process and wait for it; returns its exit code.
    pub fn stop(&mut self, handle: usize) -> Result<Option<i32>> {
        let child = &mut self.children[handle];
        terminate(child);
        for _ in 0..100 {
            if let Some(status) = child.try_wait()? {
                return Ok(status.code());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.kill()?;
        Ok(child.wait()?.code())
    }

    /// Polls `ready` until it holds while the spawned process `handle`
    /// runs; panics at once with that process's own log if it exits first,
    /// and after `timeout` otherwise.
    pub fn wait_for(
        &mut self,
        handle: usize,
        what: &str,
        timeout: std::time::Duration,
        mut ready: impl FnMut(&Lab) -> bool,
    ) {
        let log = self.logs[handle].clone();
        crate::poll_process(what, &log, timeout, || {
            if ready(self) {
                return Ok(());
            }
            Err(self.children[handle].try_wait().ok().flatten())
        })
    }

    /// The exit code of a spawned process, if it has ended.
    pub fn exited(&mut self, handle: usize) -> Result<Option<i32>> {
        Ok(self.children[handle]
            .try_wait()?
            .map(|s| s.code().unwrap_or(-1)))
    }

    /// Starts wireguard-go in `ns` as interface `name` (foreground).
    pub fn wireguard_go(&mut self, ns: &str, name: &str, log: &std::path::Path) -> Result<()> {
        self.sockets.push(name.to_owned());
        self.spawn(ns, &["wireguard-go", "-f", name], log)?;
        for _ in 0..100 {
            if self
                .run(ns, &["wg", "show", name])
                .map(|o| o.status.success())
                .unwrap_or(false)
            {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        bail!("wireguard-go {name} did not come up")
    }

    /// Remembers an interface whose control socket must be removed.
    pub fn owns_socket(&mut self, name: &str) {
        self.sockets.push(name.to_owned());
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            if matches!(child.try_wait(), Ok(None)) {
                terminate(child);
            }
        }
        for child in &mut self.children {
            for _ in 0..40 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(ns)])
                .status();
            let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(self.ns(ns)));
        }
        for name in &self.sockets {
            let _ = std::fs::remove_file(format!("/var/run/wireguard/{name}.sock"));
        }
    }
}

/// SIGTERM, so programs shut down as they would under systemd.
fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
}

fn checked(output: Output, what: &str) -> Result<()> {
    if output.status.success() {
        Ok(())
    } else {
        bail!(
            "`{what}` failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        )
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
