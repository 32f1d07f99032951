//! The IO shell: a TUN device and a UDP socket driving a [`Node`].
//!
//! Packet workers that each watch the TUN device and the UDP socket
//! ([`workers`]: each descriptor drained by one worker at a time), and a
//! timer tick every 100 ms. The node sits behind one mutex; a worker holds
//! it while the node handles one batch, and sends the result after
//! releasing it.
//!
//! Batches come from the kernel's offloads, so that a bulk transfer costs
//! a few system calls per 64 KiB rather than two per packet:
//! * the TUN device is opened with `IFF_VNET_HDR` and TSO/checksum
//!   offload (tun-rs `offload`): one read returns a whole TCP super-segment,
//!   which tun-rs cuts into MTU-sized packets; writes go through tun-rs's
//!   GRO table, which merges consecutive TCP segments back into one;
//! * the UDP socket uses GRO and GSO ([`udp`]).
//!
//! Where those offloads are not available, or [`Datapath::Portable`] is
//! asked for, the [`portable`] path moves one packet per system call with
//! plain reads and writes — the path other platforms use.
//!
//! Routes are set with iproute2 (`ip route replace … dev IFACE`), which a
//! Linux host running Porta has; addresses and MTU are set on the device
//! by tun-rs.

#[cfg(target_os = "linux")]
mod fast;
mod portable;
mod routes;
mod tun_access;
#[cfg(target_os = "linux")]
mod udp;
#[cfg(target_os = "linux")]
mod workers;

pub use tun_access::{TUN_DEVICE, TunProblem};

use crate::node::{Node, Sink};
use ipnet::IpNet;
use portable::Portable;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tun_rs::{DeviceBuilder, SyncDevice};

/// How often timers run.
const TICK: Duration = Duration::from_millis(100);

/// What the shell sets up.
#[derive(Clone, Debug)]
pub struct ShellConfig {
    /// TUN interface name (at most 15 bytes on Linux).
    pub interface: String,
    /// Addresses of the interface, e.g. 10.77.0.2/32.
    pub addresses: Vec<IpNet>,
    /// Interface MTU.
    pub mtu: u16,
    /// UDP address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Prefixes routed into the tunnel.
    pub routes: Vec<IpNet>,
    /// How packets move between the device, the node and the socket.
    pub datapath: Datapath,
}

/// How packets move between the TUN device, the node and the socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Datapath {
    /// Linux's offloads: TUN super-segments and GRO, UDP GSO/GRO, batches.
    #[default]
    Fast,
    /// One packet per system call, no offloads: what every platform offers.
    Portable,
}

impl Datapath {
    /// `PORTA_DATAPATH=portable` asks for the portable path (for kernels
    /// whose offloads misbehave, and to exercise that path on Linux);
    /// anything else, or nothing, the fast one.
    pub fn from_env() -> Self {
        match std::env::var("PORTA_DATAPATH").as_deref() {
            Ok("portable") => Datapath::Portable,
            _ => Datapath::Fast,
        }
    }
}

/// Why the shell could not start or change.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// Creating or configuring the TUN device failed.
    #[error("could not create the TUN device {interface}: {}", problem.describe(error))]
    Tun {
        /// The interface name.
        interface: String,
        /// The OS error (in the message only when the diagnosis adds
        /// nothing, so that it is not said twice).
        error: std::io::Error,
        /// What `/dev/net/tun` looked like, and the fix.
        problem: TunProblem,
    },
    /// Opening the UDP socket failed.
    #[error("could not listen on UDP {listen}: {source}")]
    Socket {
        /// The address.
        listen: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// `ip route` failed.
    #[error("could not route {route} into {interface}: {message}")]
    Route {
        /// The prefix.
        route: IpNet,
        /// The interface.
        interface: String,
        /// What iproute2 said.
        message: String,
    },
}

impl ShellError {
    fn tun(interface: &str, error: std::io::Error) -> Self {
        Self::Tun {
            interface: interface.to_owned(),
            problem: TunProblem::diagnose(&error),
            error,
        }
    }
}

/// A running tunnel. Dropping it stops the UDP and timer threads; the
/// TUN device goes away with the process.
pub struct Shell {
    node: Arc<Mutex<Node>>,
    engine: Engine,
    config: ShellConfig,
    routes: Vec<IpNet>,
    stop: Arc<AtomicBool>,
    /// Set by [`Shell::initiate_handshakes`], taken by the timer thread.
    handshake_wanted: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Shell {
    /// Creates the TUN device and socket, sets routes and starts moving
    /// packets through `node`.
    pub fn start(node: Node, config: ShellConfig) -> Result<Self, ShellError> {
        // Only Linux has the offloads the fast path is built on.
        let fast = cfg!(target_os = "linux") && config.datapath == Datapath::Fast;
        let tun = Arc::new(create_tun(&config, fast)?);
        tracing::info!(interface = %config.interface, datapath = ?config.datapath, "tunnel data path");
        let node = Arc::new(Mutex::new(node));
        let stop = Arc::new(AtomicBool::new(false));
        let handshake_wanted = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        #[cfg(target_os = "linux")]
        let fast_engine = if fast {
            Some(fast::start(
                &node,
                &tun,
                &config,
                &stop,
                &handshake_wanted,
                &mut threads,
            )?)
        } else {
            None
        };
        #[cfg(not(target_os = "linux"))]
        let fast_engine: Option<std::convert::Infallible> = None;
        let engine = if let Some(socket) = fast_engine {
            Engine::Fast(socket)
        } else {
            let socket =
                std::net::UdpSocket::bind(config.listen).map_err(|source| ShellError::Socket {
                    listen: config.listen,
                    source,
                })?;
            let portable = Portable::start(
                node.clone(),
                tun.clone(),
                Arc::new(socket),
                stop.clone(),
                &mut threads,
            )
            .map_err(|source| ShellError::tun(&config.interface, source))?;
            let (socket_out, tun_out) = (portable.socket.clone(), portable.tun.clone());
            threads.push(start_timers(
                &node,
                &stop,
                &handshake_wanted,
                portable::PlainOutbox::default(),
                move |outbox: &mut portable::PlainOutbox| outbox.send(&socket_out, &tun_out),
            ));
            Engine::Portable(portable)
        };
        let mut shell = Self {
            node,
            engine,
            routes: Vec::new(),
            stop,
            handshake_wanted,
            threads,
            config,
        };
        shell.set_routes(&shell.config.routes.clone())?;
        Ok(shell)
    }

    /// The node, for live changes (peers, routes) and for reading counters
    /// and events. Hold the guard briefly: packets wait meanwhile.
    pub fn node(&self) -> MutexGuard<'_, Node> {
        lock(&self.node)
    }

    /// Starts a handshake with every peer that has an endpoint, within one
    /// timer tick: after the computer resumed or its network changed, the
    /// tunnel is back before the next packet needs it.
    pub fn initiate_handshakes(&self) {
        self.handshake_wanted.store(true, Ordering::Relaxed);
    }

    /// New sessions with every peer (see [`Node::renew_sessions`]), their
    /// handshakes started within one timer tick: after the wall clock was
    /// stepped.
    pub fn renew_sessions(&self) {
        lock(&self.node).renew_sessions();
        self.initiate_handshakes();
    }

    /// The UDP address the tunnel listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.engine {
            #[cfg(target_os = "linux")]
            Engine::Fast(socket) => socket.local_addr(),
            #[cfg(not(target_os = "linux"))]
            Engine::Fast(never) => match *never {},
            Engine::Portable(portable) => portable.socket.local_addr(),
        }
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.config.interface
    }

    /// Makes the kernel route exactly `routes` into the tunnel (adding new
    /// ones, withdrawing ones no longer wanted).
    pub fn set_routes(&mut self, routes: &[IpNet]) -> Result<(), ShellError> {
        for route in routes.iter().filter(|r| !self.routes.contains(r)) {
            routes::add(route, &self.config.interface)?;
        }
        for route in self.routes.iter().filter(|r| !routes.contains(r)) {
            // Already gone (e.g. with the interface) is fine.
            let _ = routes::remove(route, &self.config.interface);
        }
        self.routes = routes.to_vec();
        Ok(())
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Engine::Portable(portable) = &self.engine {
            portable.wake();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The IO path that runs.
enum Engine {
    /// Offloads and batches (`fast`, `workers`, `udp`).
    #[cfg(target_os = "linux")]
    Fast(Arc<udp::Socket>),
    /// Never built: there is no fast path off Linux.
    #[cfg(not(target_os = "linux"))]
    #[allow(dead_code)]
    Fast(std::convert::Infallible),
    /// One packet per system call ([`portable`]).
    Portable(Portable),
}

/// Starts the timer thread: every [`TICK`] the node's timers run (and a
/// handshake when one was asked for), and what they produced is sent with
/// `send`. Handshakes start at once.
fn start_timers<O: Sink + Send + 'static>(
    node: &Arc<Mutex<Node>>,
    stop: &Arc<AtomicBool>,
    handshake_wanted: &Arc<AtomicBool>,
    mut outbox: O,
    mut send: impl FnMut(&mut O) + Send + 'static,
) -> JoinHandle<()> {
    lock(node).initiate_handshakes(&mut outbox);
    send(&mut outbox);
    let (node, stop, handshake_wanted) = (node.clone(), stop.clone(), handshake_wanted.clone());
    spawn("porta-timers", move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(TICK);
            let mut node = lock(&node);
            if handshake_wanted.swap(false, Ordering::Relaxed) {
                node.initiate_handshakes(&mut outbox);
            }
            node.handle_timeout(Instant::now(), &mut outbox);
            drop(node);
            send(&mut outbox);
        }
    })
}

fn lock(node: &Mutex<Node>) -> MutexGuard<'_, Node> {
    // A panic while holding the lock leaves a node that is still
    // consistent per packet; keep going rather than wedge the tunnel.
    node.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .expect("spawning a tunnel thread")
}

fn create_tun(config: &ShellConfig, offload: bool) -> Result<SyncDevice, ShellError> {
    let mut builder = DeviceBuilder::new().name(&config.interface).mtu(config.mtu);
    #[cfg(target_os = "linux")]
    {
        builder = builder.offload(offload);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = offload;
    for address in &config.addresses {
        builder = match address {
            IpNet::V4(v4) => builder.ipv4(v4.addr(), v4.prefix_len(), None),
            IpNet::V6(v6) => builder.ipv6(v6.addr(), v6.prefix_len()),
        };
    }
    builder
        .build_sync()
        .map_err(|source| ShellError::tun(&config.interface, source))
}
