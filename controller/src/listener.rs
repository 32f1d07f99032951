//! The API's TCP listener, guarded against connections that hold the
//! controller's resources without using them.
//!
//! Three limits, each aimed at a way of tying up file descriptors and
//! memory without ever authenticating:
//!
//! * **Per-source cap.** At most [`Limits::per_source`] connections from one
//!   IP address are open at once; more are closed as soon as they are
//!   accepted (logged once per source per minute). Loopback is exempt: it is
//!   the controller's own host (and the test suites' many clients).
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
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections one (non-loopback) address may hold open.
    pub per_source: usize,
    /// A connection must bring its first request within this.
    pub first_request_within: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_source: 256,
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

    /// Takes a slot for a connection from `peer`, or `None` if its address
    /// holds `limit` already.
    fn admit(&self, peer: SocketAddr, limit: usize) -> Option<Arc<AtomicBool>> {
        let mut open = self.lock();
        let count = open.by_source.entry(peer.ip()).or_default();
        if *count >= limit && !peer.ip().is_loopback() {
            let now = Instant::now();
            let logged = open
                .last_refusal_logged
                .entry(peer.ip())
                .or_insert(now - Duration::from_secs(61));
            if now.duration_since(*logged) > Duration::from_secs(60) {
                *logged = now;
                tracing::warn!(source = %peer.ip(), limit, "connection refused from {}: it holds {limit} connections already", peer.ip());
            }
            return None;
        }
        *count += 1;
        let flag = Arc::new(AtomicBool::new(false));
        open.served.insert(peer, flag.clone());
        Some(flag)
    }

    fn release(&self, peer: SocketAddr) {
        let mut open = self.lock();
        open.served.remove(&peer);
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
    futures::stream::unfold(
        (listener, registry),
        move |(listener, registry)| async move {
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
                let Some(served) = registry.admit(peer, limits.per_source) else {
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
        },
    )
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

    #[test]
    fn a_source_gets_its_cap_and_slots_come_back() {
        let registry = Registry::default();
        let source: IpAddr = "192.0.2.66".parse().expect("ip");
        let peers: Vec<SocketAddr> = (0..5)
            .map(|p| SocketAddr::new(source, 40_000 + p))
            .collect();
        for peer in &peers[..3] {
            assert!(registry.admit(*peer, 3).is_some());
        }
        assert!(registry.admit(peers[3], 3).is_none(), "over the cap");
        assert!(
            registry
                .admit("192.0.2.1:5000".parse().expect("peer"), 3)
                .is_some(),
            "another source is served"
        );
        registry.release(peers[0]);
        assert_eq!(registry.open_from(source), 2);
        assert!(registry.admit(peers[4], 3).is_some());
        let local: SocketAddr = "127.0.0.1:1".parse().expect("peer");
        for port in 0..10 {
            assert!(
                registry
                    .admit(SocketAddr::new(local.ip(), port), 3)
                    .is_some()
            );
        }
    }
}
