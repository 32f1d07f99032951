//! The portable IO path: plain blocking reads and writes, one packet per
//! system call, no offloads — what every platform's TUN driver and UDP
//! stack offer (Wintun on Windows, utun on macOS, and Linux when its
//! offloads are unavailable or switched off).
//!
//! Two threads: one reads the TUN device (woken for shutdown by tun-rs's
//! interrupt event), one reads the UDP socket (waking every
//! [`super::TICK`] to notice a shutdown). Each holds the node's lock only
//! while the node handles its packet, and sends the result after
//! releasing it, as the fast path does.

use super::{lock, spawn};
use crate::node::{Node, Sink};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use tun_rs::{InterruptEvent, SyncDevice};

/// What the node produced for one packet, sent after the lock is released.
/// The buffers are reused: no allocation per packet once warm.
#[derive(Default)]
pub(super) struct PlainOutbox {
    datagrams: Vec<(SocketAddr, Vec<u8>)>,
    datagram_count: usize,
    packets: Vec<Vec<u8>>,
    packet_count: usize,
}

/// Copies `bytes` into the next reusable buffer of `pool`.
fn keep(pool: &mut Vec<Vec<u8>>, count: &mut usize, bytes: &[u8]) {
    if *count == pool.len() {
        pool.push(Vec::with_capacity(bytes.len().max(1500)));
    }
    let buffer = &mut pool[*count];
    buffer.clear();
    buffer.extend_from_slice(bytes);
    *count += 1;
}

impl Sink for PlainOutbox {
    fn send_datagram(&mut self, to: SocketAddr, datagram: &[u8]) {
        if self.datagram_count == self.datagrams.len() {
            self.datagrams.push((to, Vec::with_capacity(1500)));
        }
        let (destination, buffer) = &mut self.datagrams[self.datagram_count];
        *destination = to;
        buffer.clear();
        buffer.extend_from_slice(datagram);
        self.datagram_count += 1;
    }
    fn deliver_packet(&mut self, packet: &[u8]) {
        keep(&mut self.packets, &mut self.packet_count, packet);
    }
}

impl PlainOutbox {
    /// Sends everything collected, one system call each.
    pub(super) fn send(&mut self, socket: &UdpSocket, tun: &SyncDevice) {
        for (to, datagram) in &self.datagrams[..self.datagram_count] {
            if let Err(error) = socket.send_to(datagram, to) {
                tracing::trace!(%error, "UDP send failed");
            }
        }
        for packet in &self.packets[..self.packet_count] {
            if let Err(error) = tun.send(packet) {
                tracing::trace!(%error, "TUN write failed");
            }
        }
        self.datagram_count = 0;
        self.packet_count = 0;
    }
}

/// The portable path's resources, for the shell to stop.
pub(super) struct Portable {
    pub(super) socket: Arc<UdpSocket>,
    pub(super) tun: Arc<SyncDevice>,
    interrupt: Arc<InterruptEvent>,
}

impl Portable {
    /// Starts the TUN and UDP threads moving packets through `node` until
    /// `stop` is set (and [`Portable::wake`] called).
    pub(super) fn start(
        node: Arc<Mutex<Node>>,
        tun: Arc<SyncDevice>,
        socket: Arc<UdpSocket>,
        stop: Arc<AtomicBool>,
        threads: &mut Vec<JoinHandle<()>>,
    ) -> std::io::Result<Self> {
        let interrupt = Arc::new(InterruptEvent::new()?);
        socket.set_read_timeout(Some(super::TICK))?;
        let portable = Self {
            socket,
            tun,
            interrupt,
        };
        let (tun, socket, interrupt) = (
            portable.tun.clone(),
            portable.socket.clone(),
            portable.interrupt.clone(),
        );
        let (tun_node, tun_stop) = (node.clone(), stop.clone());
        threads.push(spawn("porta-tun", move || {
            let mut buf = vec![0u8; 65_535];
            let mut outbox = PlainOutbox::default();
            while !tun_stop.load(Ordering::Relaxed) {
                let len = match tun.recv_intr(&mut buf, &interrupt) {
                    Ok(len) => len,
                    Err(e)
                        if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) =>
                    {
                        continue;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "TUN read failed; no longer reading it");
                        return;
                    }
                };
                let _ = lock(&tun_node).handle_tun_packet(&buf[..len], &mut outbox);
                outbox.send(&socket, &tun);
            }
        }));
        let (tun, socket) = (portable.tun.clone(), portable.socket.clone());
        threads.push(spawn("porta-udp", move || {
            let mut buf = vec![0u8; 65_535];
            let mut outbox = PlainOutbox::default();
            while !stop.load(Ordering::Relaxed) {
                let (len, from) = match socket.recv_from(&mut buf) {
                    Ok(received) => received,
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) =>
                    {
                        continue;
                    }
                    Err(error) => {
                        // ICMP errors for earlier sends surface here; not fatal.
                        tracing::debug!(%error, "UDP receive failed");
                        continue;
                    }
                };
                let now = Instant::now();
                let _ = lock(&node).handle_datagram(from, &buf[..len], now, &mut outbox);
                outbox.send(&socket, &tun);
            }
        }));
        Ok(portable)
    }

    /// Wakes the TUN reader so that it sees the stop flag.
    pub(super) fn wake(&self) {
        if let Err(error) = self.interrupt.trigger() {
            tracing::debug!(%error, "could not wake the TUN reader");
        }
    }
}
