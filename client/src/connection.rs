//! One connected tunnel: the WireGuard node and its IO shell, the town's
//! DNS, the standard control socket (`wg show`), and the tasks that keep
//! it in step — the controller watch (new routes applied live, status
//! reports, revocation), the gateway's reachability, and the network
//! watch (suspend/resume, a changed network).
//!
//! [`Connection::open`] brings it up; dropping the [`Connection`] takes it
//! all down again, so the tunnel service connects and disconnects many
//! times in one process and `porta up --foreground` runs exactly one.
//! What happens meanwhile arrives as [`Event`]s on a channel: the
//! foreground command prints them, the service turns them into status.
//!
//! The data plane does not depend on the controller: when it cannot be
//! reached the tunnel keeps running on the last config and the watch
//! retries.

use crate::network::{Change, NetworkWatch};
use crate::state::{DeviceState, SavedConfig, StateDir};
#[cfg(unix)]
use crate::uapi;
use anyhow::{Context, Result};
use ipnet::IpNet;
use porta_proto::clock::ClockWatch;
use porta_proto::connect::{Bearer, connect};
use porta_proto::pb;
use porta_proto::refusal::Refusal;
use porta_tunnel::keys::PublicKey;
use porta_tunnel::shell::{Datapath, Shell, ShellConfig};
use porta_tunnel::{Node, PeerConfig};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, mpsc};
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

/// How often the network watch looks at the clocks and addresses.
const NETWORK_CHECK: Duration = Duration::from_secs(2);

/// What happens to a connected tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The gateway does not answer (no handshake gets through, or data
    /// sent to it goes unanswered); said again when what the internet
    /// answers changes.
    GatewayUnreachable {
        /// Whether the rest of the internet (the controller's host, outside
        /// the tunnel) answers this computer.
        internet: bool,
    },
    /// A handshake got through after [`Event::GatewayUnreachable`].
    GatewayReached,
    /// The controller cannot be reached (why); the tunnel keeps running.
    ControllerUnreachable(String),
    /// The controller's configuration stream is open.
    ControllerReached,
    /// The controller sent a new configuration, applied and saved.
    ConfigUpdated(Box<SavedConfig>),
    /// The controller's clock minus this computer's, in seconds, as its
    /// last configuration said.
    ClockOffset(i64),
    /// The computer has no network address outside the tunnel.
    NoNetwork,
    /// The computer woke up or changed network; the tunnel was renewed.
    NetworkChanged(String),
    /// The controller refused this device (revoked, its person paused, or
    /// no longer known): the tunnel must come down. The message is for
    /// people.
    Refused {
        /// Which refusal, when the controller named it.
        kind: Option<Refusal>,
        /// The controller's words.
        message: String,
    },
}

/// A tunnel that is up. Dropping it takes it down.
pub struct Connection {
    interface: String,
    since: SystemTime,
    shell: Arc<Mutex<Shell>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    // Dropped after the tasks are aborted: the control socket goes, then
    // the shell (TUN device, routes), then DNS is put back. (The standard
    // control socket is a Unix socket; Windows has none of its own.)
    #[cfg(unix)]
    _uapi: uapi::Server,
    _dns: crate::dns::Guard,
}

impl Drop for Connection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Counters and times of the tunnel now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// The gateway's current endpoint.
    pub endpoint: Option<SocketAddr>,
    /// Wall-clock time of the last handshake.
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from the gateway.
    pub rx_bytes: u64,
    /// Bytes sent to the gateway.
    pub tx_bytes: u64,
}

impl Connection {
    /// Brings the tunnel up from `dir`'s enrollment on `interface`; events
    /// go to `events` until the connection is dropped.
    pub fn open(
        dir: &StateDir,
        interface: &str,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<Self> {
        let state = dir.load()?;
        let key = dir.key()?;
        let mut node = Node::new(&key, IDLE_AFTER);
        node.upsert_peer(gateway_peer(&state.config)?);
        // DNS first, so that names resolve through the town from the first
        // packet on; the guard restores it however the connection ends.
        let dns = crate::dns::Guard(
            crate::dns::apply(
                interface,
                &state.config.dns_servers,
                &state.config.search_domains,
                &dir.0,
            )
            .unwrap_or_else(|error| {
                tracing::warn!(
                    error = %porta_proto::describe_chain(error.chain()),
                    "the town's DNS servers could not be set up; names may not resolve"
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
                datapath: Datapath::from_env(),
            },
        )?;
        #[cfg(unix)]
        let port = shell.local_addr()?.port();
        let shell = Arc::new(Mutex::new(shell));
        #[cfg(unix)]
        let uapi = {
            let shell = shell.clone();
            uapi::serve(interface, move || {
                let shell = lock(&shell);
                let node = shell.node();
                uapi::snapshot(&node, &key, port)
            })?
        };
        let renew = Arc::new(Notify::new());
        let keepalive = state.config.persistent_keepalive > 0;
        let tunnel_addresses = parse_nets(&state.config.addresses)?
            .iter()
            .map(IpNet::addr)
            .collect();
        let controller = state.controller.clone();
        let tasks = vec![
            tokio::spawn(watch_controller(
                StateDir(dir.0.clone()),
                state,
                shell.clone(),
                events.clone(),
                renew.clone(),
            )),
            tokio::spawn(watch_gateway(
                shell.clone(),
                keepalive,
                controller,
                events.clone(),
            )),
            tokio::spawn(watch_network(
                shell.clone(),
                tunnel_addresses,
                renew,
                events,
            )),
        ];
        Ok(Self {
            interface: interface.to_owned(),
            since: SystemTime::now(),
            shell,
            tasks,
            #[cfg(unix)]
            _uapi: uapi,
            _dns: dns,
        })
    }

    /// When the tunnel came up.
    pub fn since(&self) -> SystemTime {
        self.since
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The gateway's counters now.
    pub fn counters(&self) -> Counters {
        let shell = lock(&self.shell);
        let node = shell.node();
        let (now, wall) = (Instant::now(), SystemTime::now());
        node.peer_ids()
            .filter_map(|id| node.stats(id))
            .map(|stats| Counters {
                endpoint: stats.endpoint,
                last_handshake: stats.last_handshake.map(|at| wall - now.duration_since(at)),
                rx_bytes: stats.rx_bytes,
                tx_bytes: stats.tx_bytes,
            })
            .next()
            .unwrap_or_default()
    }
}

fn lock(shell: &Mutex<Shell>) -> std::sync::MutexGuard<'_, Shell> {
    shell.lock().unwrap_or_else(|p| p.into_inner())
}

/// Tells when the gateway stops or starts answering (see
/// [`crate::reachability`]), and — while it does not — whether the rest of
/// the internet answers this computer, asking the controller's address
/// (outside the tunnel) every [`ASK_INTERNET_EVERY`].
async fn watch_gateway(
    shell: Arc<Mutex<Shell>>,
    keepalive: bool,
    controller: String,
    events: mpsc::UnboundedSender<Event>,
) {
    use crate::reachability::{GatewayWatch, Notice};
    let mut watch = GatewayWatch::new(Instant::now(), keepalive);
    let mut every = tokio::time::interval(Duration::from_secs(1));
    // While unreachable: what the internet said, and when it was asked.
    let mut unreachable: Option<(bool, Instant)> = None;
    loop {
        every.tick().await;
        let (handshake, unanswered) = gateway_silence(&shell);
        let event = match watch.observe(Instant::now(), handshake, unanswered) {
            Some(Notice::Unreachable) => {
                let internet = internet_answers(&controller).await;
                unreachable = Some((internet, Instant::now()));
                Event::GatewayUnreachable { internet }
            }
            Some(Notice::Reached) => {
                unreachable = None;
                Event::GatewayReached
            }
            None => match unreachable {
                Some((said, asked)) if asked.elapsed() >= ASK_INTERNET_EVERY => {
                    let internet = internet_answers(&controller).await;
                    unreachable = Some((internet, Instant::now()));
                    if internet == said {
                        continue;
                    }
                    Event::GatewayUnreachable { internet }
                }
                _ => continue,
            },
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// How often, while the gateway does not answer, the internet is asked
/// again.
const ASK_INTERNET_EVERY: Duration = Duration::from_secs(10);

/// Whether the internet answers this computer: the controller's host
/// (outside the tunnel) accepts or refuses a TCP connection within 3 s. A
/// refusal is an answer too — the town's host is reachable, only Porta is
/// not running there — so "nothing answers" means this computer's
/// internet (or the town's) is down.
async fn internet_answers(controller: &str) -> bool {
    let attempt = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(controller),
    )
    .await;
    match attempt {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => error.kind() == std::io::ErrorKind::ConnectionRefused,
        Err(_) => false,
    }
}

/// Renews the tunnel (a handshake now, a new controller connection) when
/// the computer wakes up or changes network (see [`crate::network`]), and
/// its sessions when the wall clock was stepped (see
/// [`porta_tunnel::shell::Shell::renew_sessions`]: a laptop whose clock
/// was behind gets through once it is set right).
async fn watch_network(
    shell: Arc<Mutex<Shell>>,
    tunnel_addresses: Vec<IpAddr>,
    renew: Arc<Notify>,
    events: mpsc::UnboundedSender<Event>,
) {
    let addresses = || {
        if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| !tunnel_addresses.contains(ip))
            .collect::<Vec<_>>()
    };
    let clocks = crate::platform::clocks;
    let (boot, mono) = clocks();
    let mut watch = NetworkWatch::new(boot, mono, addresses());
    let mut clock = ClockWatch::new(porta_proto::clock::now(), std::time::Instant::now());
    let mut every = tokio::time::interval(NETWORK_CHECK);
    loop {
        every.tick().await;
        if let Some(step) = clock.step(porta_proto::clock::now(), std::time::Instant::now()) {
            tracing::warn!(
                step_secs = step,
                "this computer's clock was stepped; renewing the tunnel's sessions"
            );
            lock(&shell).renew_sessions();
            renew.notify_one();
        }
        let (boot, mono) = clocks();
        let changes = watch.observe(boot, mono, addresses());
        if changes.is_empty() {
            continue;
        }
        let what = changes
            .iter()
            .map(|change| match change {
                Change::Resumed(slept) => format!("woke up after {} s", slept.as_secs()),
                Change::Addresses(now) if now.is_empty() => "lost its network".to_owned(),
                Change::Addresses(now) => format!(
                    "network changed (addresses now {})",
                    now.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
            .collect::<Vec<_>>()
            .join("; ");
        tracing::info!(change = %what, "renewing the tunnel");
        lock(&shell).initiate_handshakes();
        renew.notify_one();
        let event = if watch.offline() {
            Event::NoNetwork
        } else {
            Event::NetworkChanged(what)
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// Follows the controller: applies every new config; ends with
/// [`Event::Refused`] when the device is refused. Reconnects with backoff
/// on any other failure, at once when `renew` is notified.
async fn watch_controller(
    dir: StateDir,
    mut state: DeviceState,
    shell: Arc<Mutex<Shell>>,
    events: mpsc::UnboundedSender<Event>,
    renew: Arc<Notify>,
) {
    let mut backoff =
        porta_proto::connect::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            outcome = watch_once(&dir, &mut state, &shell, &events) => outcome,
            () = renew.notified() => {
                backoff.reset();
                continue;
            }
        };
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
                let _ = events.send(Event::Refused {
                    kind: Refusal::of(&status),
                    message: status.message().to_owned(),
                });
                return;
            }
            Err(status) => {
                tracing::info!(error = %status.message(), "controller unreachable; keeping the tunnel, retrying");
                let _ = events.send(Event::ControllerUnreachable(status.message().to_owned()));
            }
            Ok(()) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = renew.notified() => backoff.reset(),
        }
    }
}

async fn watch_once(
    dir: &StateDir,
    state: &mut DeviceState,
    shell: &Mutex<Shell>,
    events: &mpsc::UnboundedSender<Event>,
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
    let _ = events.send(Event::ControllerReached);
    // Tell the controller who is connected: at once, when the first
    // handshake completes, and every REPORT_EVERY (devices list/show read
    // it; a report changes nothing else, so the rate only bounds its cost).
    let mut checks = tokio::time::interval(REPORT_CHECK);
    let mut reported: Option<(Instant, bool)> = None;
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
                        Ok(_) => reported = Some((Instant::now(), handshake)),
                        Err(status) => {
                            tracing::info!(error = %status.message(), "could not report status")
                        }
                    }
                }
                continue;
            }
        };
        if config.controller_time != 0 {
            let offset = i64::try_from(config.controller_time).unwrap_or(i64::MAX)
                - i64::try_from(porta_proto::clock::now()).unwrap_or(i64::MAX);
            let _ = events.send(Event::ClockOffset(offset));
        }
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
            let _ = events.send(Event::ConfigUpdated(Box::new(state.config.clone())));
        }
    }
    Err(tonic::Status::unavailable(
        "the controller closed the configuration stream",
    ))
}

/// When the tunnel last completed a handshake with the gateway.
/// The gateway's last handshake, and since when data sent to it has gone
/// unanswered.
fn gateway_silence(shell: &Mutex<Shell>) -> (Option<Instant>, Option<Instant>) {
    let shell = lock(shell);
    let node = shell.node();
    let stats: Vec<_> = node.peer_ids().filter_map(|id| node.stats(id)).collect();
    (
        stats.iter().filter_map(|s| s.last_handshake).max(),
        stats.iter().filter_map(|s| s.unanswered_since).min(),
    )
}

fn last_handshake(shell: &Mutex<Shell>) -> Option<Instant> {
    let shell = lock(shell);
    let node = shell.node();
    node.peer_ids()
        .filter_map(|id| node.stats(id)?.last_handshake)
        .max()
}

/// What the client tells the controller about this computer and its tunnel.
fn status_report(shell: &Mutex<Shell>) -> pb::DeviceStatusReport {
    let last_handshake_at = last_handshake(shell)
        .and_then(|at| {
            let age = Instant::now().saturating_duration_since(at);
            SystemTime::now().checked_sub(age)
        })
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    pb::DeviceStatusReport {
        client_version: env!("CARGO_PKG_VERSION").into(),
        hostname: crate::enrollment::hostname(),
        os: crate::enrollment::os_name(),
        tunnel_up: true,
        last_handshake_at,
    }
}

fn apply(shell: &Mutex<Shell>, state: &DeviceState, config: &SavedConfig) -> Result<()> {
    let mut shell = lock(shell);
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
fn outside_the_tunnel(controller: &str, config: &SavedConfig) -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = config
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
