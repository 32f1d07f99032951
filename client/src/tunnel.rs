//! `porta up`, `down` and `status`.
//!
//! `up` builds the WireGuard node from the saved config, starts the IO
//! shell and the control socket, then watches the controller. The data
//! plane does not depend on the controller: when it is unreachable the
//! tunnel keeps running on the last config and the watch retries.

use crate::state::{DeviceState, SavedConfig, StateDir};
use crate::uapi;
use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use porta_proto::connect::{Bearer, connect};
use porta_proto::pb;
use porta_tunnel::keys::{PrivateKey, PublicKey};
use porta_tunnel::shell::{Shell, ShellConfig};
use porta_tunnel::{Node, PeerConfig};
use serde_json::json;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::Code;

/// A peer is reported idle after this long without traffic.
const IDLE_AFTER: Duration = Duration::from_secs(180);

/// A connection to the controller that lasted this long resets the backoff.
const LASTED: Duration = Duration::from_secs(60);

/// How often a connected client reports its status (and once at connect).
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// How often it checks whether a report is due (a first handshake makes
/// one due before REPORT_EVERY).
const REPORT_CHECK: Duration = Duration::from_secs(2);

/// `porta status` found no tunnel (exit 3, like `systemctl status` of a
/// stopped unit).
#[derive(Debug, thiserror::Error)]
#[error("not connected")]
pub struct NotConnected {
    /// The JSON answer (`"up": false`) was printed already.
    pub answered: bool,
}

/// Refuses before anything is touched: `up` needs root, and one tunnel
/// per state directory and interface.
fn check_can_connect(dir: &StateDir, interface: &str) -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!(
            "connecting needs administrator rights: run `sudo porta up` \
             (or `sudo systemctl start porta`)"
        );
    }
    if let Some(pid) = dir.running_tunnel() {
        bail!("already connected (`porta up`, pid {pid}); disconnect first with `porta down`");
    }
    if uapi::query(interface).is_ok() {
        bail!(
            "already connected: the tunnel {interface} is up (another `porta up` with another \
             --state?); disconnect it first"
        );
    }
    Ok(())
}

pub(crate) async fn up(dir: &StateDir, interface: &str) -> Result<()> {
    check_can_connect(dir, interface)?;
    let state = dir.load()?;
    let key = dir.key()?;
    let mut node = Node::new(&key, IDLE_AFTER);
    node.upsert_peer(gateway_peer(&state.config)?);
    // DNS first, so that names resolve through the town from the first
    // packet on; the guard restores it however `up` ends.
    let dns_guard = crate::dns::Guard(
        crate::dns::apply(
            interface,
            &state.config.dns_servers,
            &state.config.search_domains,
            &dir.0,
        )
        .unwrap_or_else(|error| {
            eprintln!(
                "porta: the town's DNS servers could not be set up ({}); names may not resolve",
                porta_proto::describe_chain(error.chain())
            );
            crate::dns::Applied::Nothing
        }),
    );
    let shell = Shell::start(
        node,
        ShellConfig {
            interface: interface.to_owned(),
            addresses: parse_nets(&state.config.addresses)?,
            mtu: u16::try_from(state.config.mtu)
                .ok()
                .filter(|m| *m >= 1280)
                .unwrap_or(1420),
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            routes: system_routes(&state)?,
        },
    )?;
    let port = shell.local_addr()?.port();
    let shell = Arc::new(Mutex::new(shell));
    {
        let (shell, key) = (shell.clone(), PrivateKey::from_base64(&key.to_base64())?);
        uapi::serve(interface, move || {
            let shell = shell.lock().unwrap_or_else(|p| p.into_inner());
            let node = shell.node();
            uapi::snapshot(&node, &key, port)
        })?;
    }
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
    if let Err(error) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(%error, "could not tell systemd the tunnel is up");
    }
    let stop = signal()?;
    let gateway = state
        .config
        .gateways
        .first()
        .map(|g| g.endpoint.clone())
        .unwrap_or_default();
    let keepalive = state.config.persistent_keepalive > 0;
    let outcome = tokio::select! {
        () = stop => Ok(()),
        refusal = watch(dir, state, shell.clone()) => Err(anyhow::anyhow!(refusal)),
        never = tell_reachability(&shell, &gateway, keepalive) => match never {},
    };
    let _ = std::fs::remove_file(uapi::socket_path(interface));
    drop(shell);
    drop(dns_guard);
    let _ = std::fs::remove_file(dir.pid_file());
    if outcome.is_ok() {
        println!("Disconnected.");
    }
    outcome
}

/// Says once when the gateway cannot be reached and once when it can
/// again (see [`crate::reachability`]); runs until `up` ends.
async fn tell_reachability(
    shell: &Mutex<Shell>,
    gateway: &str,
    keepalive: bool,
) -> std::convert::Infallible {
    use crate::reachability::{GatewayWatch, Notice};
    let mut watch = GatewayWatch::new(std::time::Instant::now(), keepalive);
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        match watch.observe(std::time::Instant::now(), last_handshake(shell)) {
            Some(Notice::Unreachable) => {
                eprintln!("porta: cannot reach the gateway at {gateway}, still trying");
            }
            Some(Notice::Reached) => println!("Reached the gateway at {gateway} again."),
            None => {}
        }
    }
}

/// Follows the controller: applies every new config; ends, with a message
/// for the person, when the device is refused. Reconnects with backoff on
/// any other failure.
async fn watch(dir: &StateDir, mut state: DeviceState, shell: Arc<Mutex<Shell>>) -> String {
    let mut backoff =
        porta_proto::connect::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        let started = std::time::Instant::now();
        let outcome = watch_once(dir, &mut state, &shell).await;
        if started.elapsed() >= LASTED {
            backoff.reset();
        }
        match outcome {
            Err(status)
                if matches!(
                    status.code(),
                    Code::PermissionDenied | Code::Unauthenticated
                ) =>
            {
                let message = if status.message().contains("revoked") {
                    "This device was revoked by your IT administrator. The tunnel is down."
                        .to_owned()
                } else {
                    format!(
                        "The controller refused this device: {}. The tunnel is down.",
                        status.message()
                    )
                };
                return message;
            }
            Err(status) => {
                tracing::info!(error = %status.message(), "controller unreachable; keeping the tunnel, retrying")
            }
            Ok(()) => {}
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn watch_once(
    dir: &StateDir,
    state: &mut DeviceState,
    shell: &Mutex<Shell>,
) -> Result<(), tonic::Status> {
    let pinned = state
        .fingerprint
        .parse()
        .map_err(|_| tonic::Status::internal("damaged fingerprint"))?;
    let channel = connect(&state.controller, pinned)
        .await
        .map_err(|e| tonic::Status::unavailable(porta_proto::describe_error(&e)))?;
    let mut client =
        pb::device_client::DeviceClient::with_interceptor(channel, Bearer::new(&state.credential));
    let mut stream = client
        .watch_config(pb::WatchConfigRequest {})
        .await?
        .into_inner();
    // Tell the controller who is connected: at once, when the first
    // handshake completes, and every REPORT_EVERY (devices list/show read
    // it; a report changes nothing else, so the rate only bounds its cost).
    let mut checks = tokio::time::interval(REPORT_CHECK);
    let mut reported: Option<(std::time::Instant, bool)> = None;
    loop {
        let config = tokio::select! {
            message = stream.message() => match message? {
                Some(config) => config,
                None => break,
            },
            _ = checks.tick() => {
                let report = status_report(shell);
                let handshake = report.last_handshake_at != 0;
                let due = match reported {
                    None => true,
                    Some((at, had_handshake)) => {
                        at.elapsed() >= REPORT_EVERY || handshake != had_handshake
                    }
                };
                if due {
                    match client.report_status(report).await {
                        Ok(_) => reported = Some((std::time::Instant::now(), handshake)),
                        Err(status) => {
                            tracing::info!(error = %status.message(), "could not report status")
                        }
                    }
                }
                continue;
            }
        };
        let config = SavedConfig::from(config);
        if config != state.config {
            if let Err(error) = apply(shell, state, &config) {
                tracing::warn!(error = %porta_proto::describe_chain(error.chain()), "could not apply the new configuration");
                continue;
            }
            state.config = config;
            if let Err(error) = dir.save(state) {
                tracing::warn!(error = %porta_proto::describe_chain(error.chain()), "could not save the new configuration");
            }
            tracing::info!(routes = ?state.config.routes, "configuration updated");
        }
    }
    Err(tonic::Status::unavailable(
        "the controller closed the configuration stream",
    ))
}

/// When the tunnel last completed a handshake with the gateway.
fn last_handshake(shell: &Mutex<Shell>) -> Option<std::time::Instant> {
    let shell = shell.lock().unwrap_or_else(|p| p.into_inner());
    let node = shell.node();
    node.peer_ids()
        .filter_map(|id| node.stats(id)?.last_handshake)
        .max()
}

/// What `porta up` tells the controller about this computer and its tunnel.
fn status_report(shell: &Mutex<Shell>) -> pb::DeviceStatusReport {
    let last_handshake = last_handshake(shell);
    let last_handshake_at = last_handshake
        .and_then(|at| {
            let age = std::time::Instant::now().saturating_duration_since(at);
            std::time::SystemTime::now().checked_sub(age)
        })
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    pb::DeviceStatusReport {
        client_version: env!("CARGO_PKG_VERSION").into(),
        hostname: crate::hostname(),
        os: crate::os_name(),
        tunnel_up: true,
        last_handshake_at,
    }
}

fn apply(shell: &Mutex<Shell>, state: &DeviceState, config: &SavedConfig) -> Result<()> {
    let mut shell = shell.lock().unwrap_or_else(|p| p.into_inner());
    let peer = gateway_peer(config)?;
    shell.set_routes(&crate::routes::system_routes(
        &peer.allowed_ips,
        &outside_the_tunnel(&state.controller, config),
    ))?;
    shell.node().upsert_peer(peer);
    Ok(())
}

/// The system routes for `state`'s configuration: its routes without the
/// addresses that must stay outside the tunnel.
fn system_routes(state: &DeviceState) -> Result<Vec<IpNet>> {
    Ok(crate::routes::system_routes(
        &parse_nets(&state.config.routes)?,
        &outside_the_tunnel(&state.controller, &state.config),
    ))
}

/// Addresses that must never be routed into the tunnel: the gateways'
/// endpoints and the controller's API (see [`crate::routes`]). Names that
/// do not resolve now contribute nothing.
fn outside_the_tunnel(controller: &str, config: &SavedConfig) -> Vec<std::net::IpAddr> {
    let mut addresses: Vec<std::net::IpAddr> = config
        .gateways
        .iter()
        .map(|g| g.endpoint.as_str())
        .chain([controller])
        .filter_map(|endpoint| endpoint.to_socket_addrs().ok())
        .flatten()
        .map(|a| a.ip())
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// The gateway as this device's one peer: everything routed goes to it.
fn gateway_peer(config: &SavedConfig) -> Result<PeerConfig> {
    let gateway = config
        .gateways
        .first()
        .context("the configuration names no gateway")?;
    let public_key: PublicKey = gateway
        .public_key
        .parse()
        .context("the gateway's public key")?;
    let endpoint = gateway
        .endpoint
        .to_socket_addrs()
        .with_context(|| format!("resolving the gateway {}", gateway.endpoint))?
        .next();
    Ok(PeerConfig {
        public_key,
        allowed_ips: parse_nets(&config.routes)?,
        endpoint,
        persistent_keepalive: u16::try_from(config.persistent_keepalive)
            .ok()
            .filter(|k| *k > 0),
        filter: None,
    })
}

fn parse_nets(texts: &[String]) -> Result<Vec<IpNet>> {
    texts
        .iter()
        .map(|t| {
            t.parse::<IpNet>()
                .with_context(|| format!("{t:?} is not a prefix"))
        })
        .collect()
}

fn signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

pub(crate) fn down(dir: &StateDir, interface: &str) -> Result<()> {
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

pub(crate) fn status(dir: &StateDir, interface: &str, json: bool) -> Result<()> {
    let state = dir.load().ok();
    let Ok(pairs) = uapi::query(interface) else {
        if json {
            println!("{}", json!({"up": false, "interface": interface}));
        }
        return Err(NotConnected { answered: json }.into());
    };
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let number = |key: &str| get(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let handshake = number("last_handshake_time_sec");
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(handshake))
        .unwrap_or(0);
    let config = state.map(|s| s.config).unwrap_or_default();
    let gateway_key = get("public_key")
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    let value = json!({
        "up": true,
        "interface": interface,
        "device": config.device_name,
        "user": config.user,
        "addresses": config.addresses,
        "gateway_endpoint": get("endpoint"),
        "gateway_public_key": gateway_key.map(|k| PublicKey(k).to_base64()),
        "last_handshake": if handshake == 0 { None } else { Some(handshake) },
        "rx_bytes": number("rx_bytes"),
        "tx_bytes": number("tx_bytes"),
        "routes": pairs.iter().filter(|(k, _)| k == "allowed_ip").map(|(_, v)| v.clone()).collect::<Vec<_>>(),
    });
    if json {
        println!("{value}");
        return Ok(());
    }
    println!("interface: {interface} (up)");
    println!(
        "  device: {} ({}), address {}",
        config.device_name,
        config.user,
        config.addresses.join(", ")
    );
    println!(
        "  gateway: {}",
        get("endpoint").unwrap_or("(not yet heard from)")
    );
    if handshake == 0 {
        println!("  latest handshake: never (is the gateway reachable?)");
    } else {
        println!("  latest handshake: {since} seconds ago");
    }
    println!(
        "  transfer: {} B received, {} B sent",
        number("rx_bytes"),
        number("tx_bytes")
    );
    println!(
        "  routes: {}",
        value["routes"].as_array().map(|r| r.len()).unwrap_or(0)
    );
    Ok(())
}
