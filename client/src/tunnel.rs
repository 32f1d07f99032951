//! The tunnel from the command line: `porta up`, `down` and `status`.
//!
//! With the tunnel service running (the usual case), these ask it over
//! its local API and need no administrator rights. Without it, root can
//! still run the tunnel in the terminal (`porta up --foreground`, for
//! servers and tests), stop it with `porta down`, and `porta status` reads
//! the WireGuard control socket. Both paths print the same.

use crate::connection::{Connection, Event};
use crate::i18n::{Lang, Msg};
use crate::state::StateDir;
#[cfg(unix)]
use crate::uapi;
#[cfg(unix)]
use anyhow::Context;
use anyhow::{Result, bail};
use porta_proto::local::{self, status::Problem, status::State};
use porta_proto::refusal::Refusal;
#[cfg(unix)]
use porta_tunnel::keys::PublicKey;
use serde_json::json;
#[cfg(unix)]
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

/// `porta status` found no tunnel (exit 3, like `systemctl status` of a
/// stopped unit).
#[derive(Debug, thiserror::Error)]
#[error("not connected")]
pub struct NotConnected {
    /// The answer was printed already.
    pub answered: bool,
}

/// Refuses before anything is touched: the foreground tunnel needs root,
/// and one tunnel per state directory and interface.
fn check_can_connect(dir: &StateDir, interface: &str) -> Result<()> {
    if !crate::platform::is_administrator() {
        bail!(
            "running the tunnel in this terminal needs administrator rights: \
             `sudo porta up --foreground` (or let the service do it: `porta up`)"
        );
    }
    if let Some(pid) = dir.running_tunnel() {
        bail!("already connected (`porta up`, pid {pid}); disconnect first with `porta down`");
    }
    if interface_taken(interface) {
        bail!(
            "already connected: the tunnel {interface} is up (the Porta service, or another \
             `porta up` with another --state?); disconnect it first"
        );
    }
    Ok(())
}

/// Whether a tunnel answers on `interface`'s WireGuard control socket.
#[cfg(unix)]
fn interface_taken(interface: &str) -> bool {
    uapi::query(interface).is_ok()
}

/// Windows has no control socket to ask: a second tunnel on the same
/// interface fails when it creates the adapter instead.
#[cfg(not(unix))]
fn interface_taken(_interface: &str) -> bool {
    false
}

/// `porta up --foreground`: the tunnel in this process until a signal or
/// the controller's refusal.
pub(crate) async fn up_foreground(dir: &StateDir, interface: &str) -> Result<()> {
    check_can_connect(dir, interface)?;
    let state = dir.load()?;
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let connection = Connection::open(dir, interface, events)?;
    std::fs::write(dir.pid_file(), std::process::id().to_string())?;
    println!(
        "Connected {} ({}) as {} through {}; routes: {}",
        state.config.device_name,
        interface,
        state.config.addresses.join(", "),
        state
            .config
            .gateways
            .first()
            .map(|g| g.endpoint.as_str())
            .unwrap_or("-"),
        state.config.routes.join(", ")
    );
    // Ready for systemd (Type=notify): the tunnel is up.
    crate::platform::notify_ready("tunnel");
    let gateway = state
        .config
        .gateways
        .first()
        .map(|g| g.endpoint.clone())
        .unwrap_or_default();
    let stop = porta_proto::terminal::termination_signal()?;
    tokio::pin!(stop);
    let outcome = loop {
        let event = tokio::select! {
            () = &mut stop => break Ok(()),
            event = received.recv() => event,
        };
        match event {
            Some(Event::GatewayUnreachable { internet: true }) => {
                eprintln!(
                    "porta: cannot reach the gateway at {gateway} (the internet answers: the trouble is at the town hall), still trying"
                );
            }
            Some(Event::GatewayUnreachable { internet: false }) => {
                eprintln!(
                    "porta: cannot reach the gateway at {gateway}: nothing answers this computer, not even the town's server (check the internet connection), still trying"
                );
            }
            Some(Event::GatewayReached) => println!("Reached the gateway at {gateway} again."),
            Some(Event::Refused {
                kind: Some(Refusal::DeviceRevoked),
                ..
            }) => {
                break Err(anyhow::anyhow!(
                    "This device was revoked by your IT administrator. The tunnel is down."
                ));
            }
            Some(Event::Refused {
                kind: Some(Refusal::UserDisabled | Refusal::UserSuspended),
                message,
            }) => {
                break Err(anyhow::anyhow!(
                    "Your account is paused by your IT administrator ({message}). The tunnel is down; \
                     once they let you back, connect again without a new invitation."
                ));
            }
            Some(Event::Refused { message, .. }) => {
                break Err(anyhow::anyhow!(
                    "The controller refused this device: {message}. The tunnel is down."
                ));
            }
            Some(_) => {}
            None => break Ok(()),
        }
    };
    drop(connection);
    let _ = std::fs::remove_file(dir.pid_file());
    if outcome.is_ok() {
        println!("Disconnected.");
    }
    outcome
}

/// `porta down` without the service: stops a foreground `porta up`.
#[cfg(unix)]
pub(crate) fn down_foreground(dir: &StateDir, interface: &str) -> Result<()> {
    let pid_file = dir.pid_file();
    let Ok(text) = std::fs::read_to_string(&pid_file) else {
        if !nix::unistd::Uid::effective().is_root() {
            bail!("disconnecting needs administrator rights: run `sudo porta down`");
        }
        crate::dns::restore_leftover(&dir.0, interface)?;
        bail!("the tunnel is not up (no `porta up` is running)");
    };
    let pid: i32 = text.trim().parse().context("damaged pid file")?;
    let pid = nix::unistd::Pid::from_raw(pid);
    match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) => {
            bail!("disconnecting needs administrator rights: run `sudo porta down`")
        }
        Err(_) => {
            let _ = std::fs::remove_file(&pid_file);
            crate::dns::restore_leftover(&dir.0, interface)?;
            bail!("the tunnel is not up (its process is gone)");
        }
    }
    // `porta up` removes its pid file when it has taken the tunnel down.
    // (Probing the pid alone is not enough: an exited process whose parent
    // has not reaped it yet still answers.)
    for _ in 0..50 {
        if !pid_file.exists() || nix::sys::signal::kill(pid, None).is_err() {
            println!("Disconnected.");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("`porta up` (pid {pid}) did not stop within 5 s")
}

/// `porta down` without the service: a foreground `porta up` on Windows
/// is stopped where it runs (there are no signals to send it).
#[cfg(windows)]
pub(crate) fn down_foreground(dir: &StateDir, _interface: &str) -> Result<()> {
    match dir.running_tunnel() {
        Some(pid) => bail!(
            "`porta up --foreground` (pid {pid}) runs in another window: stop it there with Ctrl-C"
        ),
        None => bail!("the tunnel is not up (and the Porta service is not running)"),
    }
}

/// The status of a foreground tunnel, from its control socket and the
/// saved enrollment, in the service's form.
pub(crate) fn status_without_service(dir: &StateDir, interface: &str) -> local::Status {
    let config = dir.load().map(|s| s.config).ok();
    let mut status = local::Status {
        interface: interface.to_owned(),
        client_version: env!("CARGO_PKG_VERSION").into(),
        state: if config.is_some() {
            State::Disconnected
        } else {
            State::NotEnrolled
        }
        .into(),
        ..Default::default()
    };
    if let Some(config) = config {
        status.device_name = config.device_name;
        status.user = config.user;
        status.addresses = config.addresses;
        status.routes = config.routes;
        status.dns_servers = config.dns_servers;
        status.search_domains = config.search_domains;
    }
    live_counters(status, interface)
}

/// The foreground tunnel's handshake and counters, from its WireGuard
/// control socket. (On Windows there is none: the service reports them.)
#[cfg(not(unix))]
fn live_counters(status: local::Status, _interface: &str) -> local::Status {
    status
}

/// The foreground tunnel's handshake and counters, from its WireGuard
/// control socket.
#[cfg(unix)]
fn live_counters(mut status: local::Status, interface: &str) -> local::Status {
    let Ok(pairs) = uapi::query(interface) else {
        return status;
    };
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let number = |key: &str| get(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    status.state = if number("last_handshake_time_sec") == 0 {
        State::Connecting
    } else {
        State::Connected
    }
    .into();
    status.last_handshake = number("last_handshake_time_sec");
    status.rx_bytes = number("rx_bytes");
    status.tx_bytes = number("tx_bytes");
    status.gateway_endpoint = get("endpoint").unwrap_or_default().to_owned();
    status.gateway_public_key = get("public_key")
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(|k| PublicKey(k).to_base64())
        .unwrap_or_default();
    status.routes = pairs
        .iter()
        .filter(|(k, _)| k == "allowed_ip")
        .map(|(_, v)| v.clone())
        .collect();
    status
}

/// Prints a status as `porta status` does; [`NotConnected`] when the
/// tunnel is not up.
pub(crate) fn print_status(status: &local::Status, json: bool) -> Result<()> {
    let state = State::try_from(status.state).unwrap_or(State::NotEnrolled);
    let up = matches!(state, State::Connected | State::Connecting);
    if !up {
        if json {
            // The enrollment's configuration too, as the controller last
            // sent it: what connecting will set up.
            println!(
                "{}",
                json!({
                    "up": false,
                    "interface": status.interface,
                    "state": state_name(state),
                    "device": status.device_name,
                    "user": status.user,
                    "addresses": status.addresses,
                    "routes": status.routes,
                    "dns_servers": status.dns_servers,
                    "search_domains": status.search_domains,
                    "last_error": status.last_error,
                    "refusal": status.refusal,
                })
            );
        } else {
            let lang = Lang::from_environment();
            println!("{}", Msg::NotConnected.text(lang));
            match state {
                State::Revoked => println!("  {}", Msg::Revoked.text(lang)),
                State::Paused => println!("  {}", Msg::Paused.text(lang)),
                State::NotEnrolled => {
                    println!("  This computer is not enrolled: porta enroll <invitation>")
                }
                _ => {}
            }
        }
        return Err(NotConnected { answered: true }.into());
    }
    let handshake = status.last_handshake;
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(handshake))
        .unwrap_or(0);
    let known_problems: Vec<Problem> = status
        .problems
        .iter()
        .filter_map(|p| Problem::try_from(*p).ok())
        .collect();
    let problems: Vec<String> = known_problems
        .iter()
        .map(|p| p.as_str_name().to_ascii_lowercase())
        .collect();
    if json {
        let value = json!({
            "up": true,
            "state": state_name(state),
            "interface": status.interface,
            "device": status.device_name,
            "user": status.user,
            "addresses": status.addresses,
            "gateway_endpoint": (!status.gateway_endpoint.is_empty()).then_some(&status.gateway_endpoint),
            "gateway_public_key": (!status.gateway_public_key.is_empty()).then_some(&status.gateway_public_key),
            "connected_since": (status.connected_since != 0).then_some(status.connected_since),
            "last_handshake": (handshake != 0).then_some(handshake),
            "rx_bytes": status.rx_bytes,
            "tx_bytes": status.tx_bytes,
            "routes": status.routes,
            "dns_servers": status.dns_servers,
            "problems": problems,
            "clock_offset_secs": status.clock_offset_secs,
        });
        println!("{value}");
        return Ok(());
    }
    println!("interface: {} (up)", status.interface);
    println!(
        "  device: {} ({}), address {}",
        status.device_name,
        status.user,
        status.addresses.join(", ")
    );
    println!(
        "  gateway: {}",
        if status.gateway_endpoint.is_empty() {
            "(not yet heard from)"
        } else {
            &status.gateway_endpoint
        }
    );
    if handshake == 0 {
        println!("  latest handshake: never (is the gateway reachable?)");
    } else {
        println!("  latest handshake: {since} seconds ago");
    }
    println!(
        "  transfer: {} B received, {} B sent",
        status.rx_bytes, status.tx_bytes
    );
    println!("  routes: {}", status.routes.len());
    let lang = Lang::from_environment();
    for problem in known_problems {
        if let Some(msg) = crate::i18n::problem_words(problem) {
            println!("  problem: {}", msg.text(lang));
        }
    }
    if status.clock_offset_secs.unsigned_abs() > 300 {
        let offset = status.clock_offset_secs;
        println!(
            "  clock: this computer's is {} {} the town hall's; set the date and time automatically",
            porta_proto::terminal::duration(std::time::Duration::from_secs(offset.unsigned_abs())),
            if offset > 0 { "behind" } else { "ahead of" }
        );
    }
    Ok(())
}

/// The state's name in JSON output.
fn state_name(state: State) -> &'static str {
    match state {
        State::NotEnrolled => "not_enrolled",
        State::Disconnected => "disconnected",
        State::Connecting => "connecting",
        State::Connected => "connected",
        State::Revoked => "revoked",
        State::Paused => "paused",
    }
}
