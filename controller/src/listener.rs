//! The API's TCP listener, guarded against connections that hold the
//! controller's resources without using them.
//!
//! Four limits, each aimed at a way of tying up file descriptors and
//! memory without ever authenticating:
//!
//! * **Per-source cap.** At most [`Limits::per_source`] connections from one
//!   IP address are open at once; more are closed as soon as they are
//!   accepted (logged once per source per minute).
//! * **Total cap.** At most [`Limits::total`] connections are open at once
//!   from everywhere else, so that many sources each under their cap still
//!   cannot take every descriptor the process has. `serve` sets it below
//!   the open-files limit, keeping the rest as headroom.
//! * **Trusted sources use the headroom.** Loopback, the controller's own
//!   addresses and [`Limits::admin_networks`] (the town's LAN, where IT
//!   sits) are exempt from both caps: when the Internet fills the caps, an
//!   admin still gets in to act (revoke, disable).
//! * **TLS handshake timeout.** Set on tonic's TLS acceptor by `server.rs`
//!   ([`TLS_HANDSHAKE_TIMEOUT`]): five bytes of a ClientHello no longer hold
//!   a connection for ever.
//! * **First-request deadline.** A connection on which no gRPC request
//!   arrives within [`Limits::first_request_within`] of being accepted is
//!   closed. Once a request arrived, HTTP/2 keepalive (set in `server.rs`)
//!   looks after it like any other.
//!
//! tonic has no hook between "accepted" and "served", so this is an
//! `incoming` stream of [`GuardedStream`]s (a `TcpStream` plus its slot
//! and deadline) and a registry the server's per-request hook marks
//! ([`Registry::mark_served`]); no crate provides this for tonic.

use futures::Stream;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The listener's limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections one (untrusted) address may hold open.
    pub per_source: usize,
    /// Connections all untrusted addresses together may hold open.
    pub total: usize,
    /// Networks whose connections are exempt from both caps (besides
    /// loopback and the controller's own addresses).
    pub admin_networks: Vec<ipnet::IpNet>,
    /// A connection must bring its first request within this.
    pub first_request_within: Duration,
}

/// Descriptors kept out of [`Limits::total`]: the store's files, the
/// gateway's sockets, the operator socket, the directory and mail
/// connections, and the trusted sources' connections.
pub const RESERVED_DESCRIPTORS: u64 = 512;

impl Limits {
    /// The total cap that leaves [`RESERVED_DESCRIPTORS`] of an open-files
    /// limit of `open_files` free (never below 64).
    pub fn total_for(open_files: u64) -> usize {
        usize::try_from(open_files.saturating_sub(RESERVED_DESCRIPTORS).max(64))
            .unwrap_or(usize::MAX)
    }

    /// Whether a connection from `peer`, accepted on `local`, is exempt
    /// from the caps.
    fn trusts(&self, peer: IpAddr, local: Option<IpAddr>) -> bool {
        peer.is_loopback()
            || local == Some(peer)
            || self.admin_networks.iter().any(|net| net.contains(&peer))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_source: 256,
            total: Self::total_for(1024),
            admin_networks: Vec::new(),
            first_request_within: Duration::from_secs(20),
        }
    }
}

/// Open connections: counts by source address, and each connection's
/// "a request arrived" flag by peer address.
#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<Open>>);

#[derive(Default)]
struct Open {
    by_source: HashMap<IpAddr, usize>,
    /// Untrusted connections open now.
    untrusted: usize,
    /// Peers whose connection counts in `untrusted`.
    counted: std::collections::HashSet<SocketAddr>,
    served: HashMap<SocketAddr, Arc<AtomicBool>>,
    last_refusal_logged: HashMap<IpAddr, Instant>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called for every request: its connection has been used.
    pub fn mark_served(&self, peer: SocketAddr) {
        if let Some(flag) = self.lock().served.get(&peer) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Connections open now from `source`.
    pub fn open_from(&self, source: IpAddr) -> usize {
        self.lock().by_source.get(&source).copied().unwrap_or(0)
    }

    /// Takes a slot for a connection from `peer` (accepted on `local`), or
    /// `None` if its address holds [`Limits::per_source`] already or the
    /// untrusted connections reached [`Limits::total`].
    fn admit(
        &self,
        peer: SocketAddr,
        local: Option<IpAddr>,
        limits: &Limits,
    ) -> Option<Arc<AtomicBool>> {
        let mut open = self.lock();
        let trusted = limits.trusts(peer.ip(), local);
        let held = open.by_source.get(&peer.ip()).copied().unwrap_or(0);
        let refusal = if trusted {
            None
        } else if held >= limits.per_source {
            Some(format!(
                "it holds {} connections already",
                limits.per_source
            ))
        } else if open.untrusted >= limits.total {
            Some(format!(
                "the controller holds {} connections, its total cap (admin networks are exempt)",
                limits.total
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            let now = Instant::now();
            let logged = open
                .last_refusal_logged
                .entry(peer.ip())
                .or_insert(now - Duration::from_secs(61));
            if now.duration_since(*logged) > Duration::from_secs(60) {
                *logged = now;
                tracing::warn!(source = %peer.ip(), "connection refused from {}: {why}", peer.ip());
            }
            return None;
        }
        *open.by_source.entry(peer.ip()).or_default() += 1;
        if !trusted {
            open.untrusted += 1;
            open.counted.insert(peer);
        }
        let flag = Arc::new(AtomicBool::new(false));
        open.served.insert(peer, flag.clone());
        Some(flag)
    }

    fn release(&self, peer: SocketAddr) {
        let mut open = self.lock();
        open.served.remove(&peer);
        if open.counted.remove(&peer) {
            open.untrusted -= 1;
        }
        if let Some(count) = open.by_source.get_mut(&peer.ip()) {
            *count -= 1;
            if *count == 0 {
                open.by_source.remove(&peer.ip());
                open.last_refusal_logged.remove(&peer.ip());
            }
        }
    }
}

/// Accepted connections within `limits`, for `Server::serve_with_incoming*`.
pub fn incoming(
    listener: TcpListener,
    limits: Limits,
    registry: Registry,
) -> impl Stream<Item = io::Result<GuardedStream>> {
    let limits = Arc::new(limits);
    futures::stream::unfold((listener, registry), move |(listener, registry)| {
        let limits = limits.clone();
        async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    // Out of descriptors, or a connection reset before it was
                    // accepted: keep listening (a short pause lets descriptors
                    // free up) rather than end the server.
                    Err(error) => {
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let local = stream.local_addr().ok().map(|a| a.ip());
                let Some(served) = registry.admit(peer, local, &limits) else {
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let guarded = GuardedStream {
                    stream,
                    peer,
                    registry: registry.clone(),
                    served,
                    deadline: Some(Box::pin(tokio::time::sleep(limits.first_request_within))),
                };
                return Some((Ok(guarded), (listener, registry)));
            }
        }
    })
}

/// An accepted connection holding its source's slot until it closes, and
/// closed if no request arrives in time.
pub struct GuardedStream {
    stream: TcpStream,
    peer: SocketAddr,
    registry: Registry,
    served: Arc<AtomicBool>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl GuardedStream {
    /// Fails once the first-request deadline passed without a request.
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some(deadline) = self.deadline.as_mut() else {
            return Ok(());
        };
        if self.served.load(Ordering::Relaxed) {
            self.deadline = None;
            return Ok(());
        }
        if deadline.as_mut().poll(cx).is_ready() {
            tracing::debug!(peer = %self.peer, "closing a connection that sent no request in time");
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request arrived in time",
            ));
        }
        Ok(())
    }
}

impl Drop for GuardedStream {
    fn drop(&mut self) {
        self.registry.release(self.peer);
    }
}

impl Connected for GuardedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(error) = self.check_deadline(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_source: usize, total: usize) -> Limits {
        Limits {
            per_source,
            total,
            admin_networks: vec!["10.1.0.0/16".parse().expect("net")],
            ..Limits::default()
        }
    }

    #[test]
    fn a_source_gets_its_cap_and_slots_come_back() {
        let registry = Registry::default();
        let limits = limits(3, 100);
        let source: IpAddr = "192.0.2.66".parse().expect("ip");
        let peers: Vec<SocketAddr> = (0..5)
            .map(|p| SocketAddr::new(source, 40_000 + p))
            .collect();
        for peer in &peers[..3] {
            assert!(registry.admit(*peer, None, &limits).is_some());
        }
        assert!(
            registry.admit(peers[3], None, &limits).is_none(),
            "over the cap"
        );
        assert!(
            registry
                .admit("192.0.2.1:5000".parse().expect("peer"), None, &limits)
                .is_some(),
            "another source is served"
        );
        registry.release(peers[0]);
        assert_eq!(registry.open_from(source), 2);
        assert!(registry.admit(peers[4], None, &limits).is_some());
        let local: SocketAddr = "127.0.0.1:1".parse().expect("peer");
        for port in 0..10 {
            assert!(
                registry
                    .admit(SocketAddr::new(local.ip(), port), None, &limits)
                    .is_some()
            );
        }
    }

    #[test]
    fn many_sources_share_the_total_and_admins_keep_the_headroom() {
        let registry = Registry::default();
        let limits = limits(3, 5);
        let peer = |a: u8, port: u16| SocketAddr::new(IpAddr::from([192, 0, 2, a]), port);
        let mut admitted = 0;
        for source in 1..=4 {
            for port in 0..3 {
                admitted +=
                    usize::from(registry.admit(peer(source, port), None, &limits).is_some());
            }
        }
        assert_eq!(
            admitted, 5,
            "the total caps sources each under their own cap"
        );
        let admin: SocketAddr = "10.1.2.3:5000".parse().expect("peer");
        let own: SocketAddr = "203.0.113.1:5000".parse().expect("peer");
        assert!(
            registry.admit(admin, None, &limits).is_some(),
            "an admin network"
        );
        let here = Some(own.ip());
        assert!(registry.admit(own, here, &limits).is_some(), "this host");
        registry.release(admin);
        registry.release(own);
        assert!(
            registry.admit(peer(9, 1), None, &limits).is_none(),
            "still full"
        );
        registry.release(peer(1, 0));
        assert!(
            registry.admit(peer(9, 1), None, &limits).is_some(),
            "a slot came back"
        );
    }
}
