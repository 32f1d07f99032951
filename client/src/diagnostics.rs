//! "Copy diagnostics for IT" and `porta diagnostics`: what a help desk
//! needs to see, as text a person pastes into a support request — and
//! nothing secret. The report is built from the service's status (which
//! holds no key or credential), plus a few probes of this computer: the
//! controller's reachability, the routes and DNS in use.

use porta_proto::local::{self, status::Problem, status::State};
use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the controller probe waits.
const PROBE: Duration = Duration::from_secs(3);

/// What the front end saw of the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceSeen {
    /// It answered (the report is its own).
    Running,
    /// Nothing listens on its socket.
    NotRunning,
    /// It runs, but this user may not ask it (not in group `porta`).
    NotAllowed {
        /// The user.
        user: String,
    },
    /// It could not be reached, for this reason.
    Unreachable(String),
}

impl ServiceSeen {
    fn line(&self) -> String {
        match self {
            ServiceSeen::Running => "running".into(),
            ServiceSeen::NotRunning => {
                "not running (start it: sudo systemctl enable --now porta; on Windows, the \"Porta\" service)".into()
            }
            ServiceSeen::NotAllowed { user } => format!(
                "running, but {user} may not ask it: not in group porta (IT adds them: \
                 sudo adduser {user} porta; then log out and in)"
            ),
            ServiceSeen::Unreachable(why) => format!("could not be reached: {why}"),
        }
    }
}

/// The report. `status` is the service's, or what this process could
/// read itself without it (`None` when it could read nothing: the
/// enrollment is the service's, readable by root only); `errors` are the
/// service's recent errors, with their Unix times.
pub async fn report(
    status: Option<&local::Status>,
    service: &ServiceSeen,
    errors: &[(u64, String)],
) -> String {
    let mut out = String::new();
    let now = unix_now();
    let _ = writeln!(out, "Porta diagnostics ({})", when(now));
    let _ = writeln!(out, "client: porta {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(
        out,
        "system: {} ({})",
        crate::enrollment::os_name(),
        std::env::consts::ARCH
    );
    let _ = writeln!(out, "kernel: {}", kernel());
    let _ = writeln!(out, "service: {}", service.line());
    let Some(status) = status else {
        let _ = writeln!(
            out,
            "state: unknown (only the service, or root, can read this computer's enrollment)"
        );
        return out;
    };
    let state = State::try_from(status.state).unwrap_or(State::NotEnrolled);
    let _ = writeln!(out, "state: {}", state_word(state));
    if state != State::NotEnrolled {
        let _ = writeln!(out, "device: {} ({})", status.device_name, status.user);
        let _ = writeln!(out, "tunnel addresses: {}", status.addresses.join(", "));
        let _ = writeln!(
            out,
            "controller: {} ({})",
            status.controller,
            probe(&status.controller).await
        );
        let _ = writeln!(
            out,
            "gateway: {} {}",
            status.gateway_name, status.gateway_endpoint
        );
    }
    if status.connected_since != 0 {
        let _ = writeln!(out, "connected since: {}", when(status.connected_since));
        let _ = writeln!(
            out,
            "last handshake: {}",
            if status.last_handshake == 0 {
                "never (the gateway has not answered)".to_owned()
            } else {
                format!("{} s ago", now.saturating_sub(status.last_handshake))
            }
        );
        let _ = writeln!(
            out,
            "traffic: {} B received, {} B sent",
            status.rx_bytes, status.tx_bytes
        );
    }
    for problem in status
        .problems
        .iter()
        .filter_map(|p| Problem::try_from(*p).ok())
    {
        let _ = writeln!(
            out,
            "problem: {}",
            problem.as_str_name().to_ascii_lowercase().replace('_', " ")
        );
    }
    if !status.routes.is_empty() {
        let _ = writeln!(out, "town routes: {}", status.routes.join(", "));
    }
    if !status.dns_servers.is_empty() {
        let _ = writeln!(
            out,
            "town DNS: {} (search {})",
            status.dns_servers.join(", "),
            status.search_domains.join(", ")
        );
    }
    let _ = writeln!(out, "routes through {}:", status.interface);
    for line in command(&["ip", "route", "show", "dev", &status.interface]).lines() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "resolver in use:");
    for line in resolvers().lines() {
        let _ = writeln!(out, "  {line}");
    }
    if *service != ServiceSeen::Running {
        let _ = writeln!(out, "recent errors: known only to the service");
    } else if errors.is_empty() {
        let _ = writeln!(out, "recent errors: none");
    } else {
        let _ = writeln!(out, "recent errors:");
        for (at, text) in errors {
            let _ = writeln!(out, "  {} {text}", when(*at));
        }
    }
    out
}

fn state_word(state: State) -> &'static str {
    match state {
        State::NotEnrolled => "not enrolled",
        State::Disconnected => "disconnected",
        State::Connecting => "connecting",
        State::Connected => "connected",
        State::Revoked => "revoked by IT",
        State::Paused => "paused: the person's account is disabled or suspended",
    }
}

/// Whether a TCP connection to the controller opens.
async fn probe(address: &str) -> String {
    match tokio::time::timeout(PROBE, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => "reachable".into(),
        Ok(Err(error)) => format!("unreachable: {error}"),
        Err(_) => format!("unreachable: no answer within {} s", PROBE.as_secs()),
    }
}

/// The resolver's servers and search domains (no other lines: comments
/// can hold anything).
fn resolvers() -> String {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("nameserver") || l.starts_with("search"))
        .collect();
    if lines.is_empty() {
        "(none in /etc/resolv.conf)".into()
    } else {
        lines.join("\n")
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|t| t.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn command(args: &[&str]) -> String {
    match std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
    {
        Ok(output) if output.status.success() && !output.stdout.is_empty() => {
            String::from_utf8_lossy(&output.stdout)
                .trim_end()
                .to_owned()
        }
        Ok(_) => "(none)".into(),
        Err(error) => format!("({} failed: {error})", args[0]),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds as UTC `YYYY-MM-DD HH:MM:SS`.
fn when(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix))
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}
