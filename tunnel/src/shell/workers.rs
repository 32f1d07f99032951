//! The packet workers: threads that each watch both file descriptors.
//!
//! Each descriptor (TUN, UDP) is drained by one worker at a time — its
//! buffers live behind a mutex the worker takes with `try_lock` — so packets
//! leave in the order they came in. Whichever worker is free takes whatever
//! is ready: under load in both directions each worker ends up owning one
//! descriptor, so the directions run in parallel; and a worker that has just
//! written a packet into the TUN device finds the reply (which the kernel
//! produced while handling that write) already waiting when it looks again,
//! instead of waking a second thread on another CPU.
//!
//! (Spinning for a while after each burst, instead of sleeping in `poll`,
//! was measured and rejected: on this 2-vCPU machine it took the CPU the
//! other end and iperf3 needed, and both throughput and RTT got worse.)

use super::fast::Outbox;
use super::lock;
use super::udp::Socket;
use crate::node::Node;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io::ErrorKind;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tun_rs::{IDEAL_BATCH_SIZE, SyncDevice, VIRTIO_NET_HDR_LEN};

/// How many packet workers run. One measured best on this 2-vCPU machine,
/// where the other end and iperf3 share the CPUs (3.3–3.5 Gb/s and a
/// minimum RTT level with boringtun-cli's, against 2.8–3.2 Gb/s and a
/// slightly worse RTT with two). The machinery is there for more once the
/// node's lock is split per direction.
pub(super) const WORKERS: usize = 1;
/// How long a worker waits in `poll` before checking whether to stop.
const POLL_MS: u16 = 100;
/// Batches one worker drains from a descriptor before looking again.
const DRAIN_BUDGET: usize = 64;

/// What the workers share.
pub(super) struct Shared {
    pub(super) node: Arc<Mutex<Node>>,
    pub(super) socket: Arc<Socket>,
    pub(super) tun: Arc<SyncDevice>,
    pub(super) stop: Arc<AtomicBool>,
    tun_side: Side<TunBuffers>,
    udp_side: Side<UdpBuffers>,
}

/// One descriptor's drain lock and its buffers.
struct Side<B> {
    buffers: Mutex<B>,
    /// Set while a worker drains it, so the other stops watching it.
    busy: AtomicBool,
    /// Set after an error that will not go away (the device was removed).
    dead: AtomicBool,
}

impl<B> Side<B> {
    fn new(buffers: B) -> Self {
        Self {
            buffers: Mutex::new(buffers),
            busy: AtomicBool::new(false),
            dead: AtomicBool::new(false),
        }
    }

    fn watched(&self) -> bool {
        !self.busy.load(Ordering::Acquire) && !self.dead.load(Ordering::Relaxed)
    }

    /// Runs `drain` if no other worker is draining this side.
    /// Runs `drain` if no other worker is draining this side; returns
    /// whether it handled any packet.
    fn try_drain(&self, drain: impl FnOnce(&mut B) -> Drained) -> bool {
        let Ok(mut buffers) = self.buffers.try_lock() else {
            return false;
        };
        self.busy.store(true, Ordering::Release);
        let drained = drain(&mut buffers);
        if drained == Drained::Dead {
            self.dead.store(true, Ordering::Relaxed);
        }
        self.busy.store(false, Ordering::Release);
        drained == Drained::Worked
    }
}

#[derive(PartialEq)]
enum Drained {
    /// Nothing was waiting.
    Empty,
    /// Packets were handled; the descriptor is empty now (or the budget
    /// ran out).
    Worked,
    /// The descriptor failed for good.
    Dead,
}

struct TunBuffers {
    original: Vec<u8>,
    packets: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    outbox: Outbox,
}

struct UdpBuffers {
    buf: Vec<u8>,
    outbox: Outbox,
}

impl Shared {
    /// Sets both descriptors non-blocking and allocates the buffers once.
    pub(super) fn new(
        node: Arc<Mutex<Node>>,
        socket: Arc<Socket>,
        tun: Arc<SyncDevice>,
        stop: Arc<AtomicBool>,
        mtu: u16,
    ) -> std::io::Result<Self> {
        tun.set_nonblocking(true)?;
        socket.set_nonblocking(true)?;
        let packet_room = usize::from(mtu).max(1500) + 128;
        Ok(Self {
            node,
            socket,
            tun,
            stop,
            tun_side: Side::new(TunBuffers {
                original: vec![0u8; VIRTIO_NET_HDR_LEN + 65_535],
                packets: vec![vec![0u8; packet_room]; IDEAL_BATCH_SIZE],
                sizes: vec![0usize; IDEAL_BATCH_SIZE],
                outbox: Outbox::default(),
            }),
            udp_side: Side::new(UdpBuffers {
                buf: vec![0u8; 65_536],
                outbox: Outbox::default(),
            }),
        })
    }

    /// A worker's loop: wait for whichever watched descriptor is ready,
    /// drain it, repeat until told to stop.
    pub(super) fn run_worker(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            let (watch_tun, watch_udp) = (self.tun_side.watched(), self.udp_side.watched());
            let (tun_ready, udp_ready) = match wait(
                self.tun.as_fd(),
                watch_tun,
                self.socket.as_fd(),
                watch_udp,
                PollTimeout::from(POLL_MS),
            ) {
                Ok(ready) => ready,
                Err(error) => {
                    tracing::debug!(%error, "poll failed");
                    continue;
                }
            };
            if tun_ready {
                self.tun_side.try_drain(|b| self.drain_tun(b));
            }
            if udp_ready {
                self.udp_side.try_drain(|b| self.drain_udp(b));
            }
        }
    }

    fn drain_tun(&self, b: &mut TunBuffers) -> Drained {
        for round in 0..DRAIN_BUDGET {
            let count =
                match self
                    .tun
                    .recv_multiple(&mut b.original, &mut b.packets, &mut b.sizes, 0)
                {
                    Ok(count) => count,
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) =>
                    {
                        return if round == 0 {
                            Drained::Empty
                        } else {
                            Drained::Worked
                        };
                    }
                    Err(error) => {
                        tracing::debug!(%error, "TUN read failed; no longer reading it");
                        return Drained::Dead;
                    }
                };
            let mut node = lock(&self.node);
            for (packet, size) in b.packets.iter().zip(&b.sizes).take(count) {
                let _ = node.handle_tun_packet(&packet[..*size], &mut b.outbox);
            }
            drop(node);
            b.outbox.send(&self.socket, &self.tun);
        }
        Drained::Worked
    }

    fn drain_udp(&self, b: &mut UdpBuffers) -> Drained {
        for round in 0..DRAIN_BUDGET {
            let received = match self.socket.recv(&mut b.buf) {
                Ok(received) => received,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    return if round == 0 {
                        Drained::Empty
                    } else {
                        Drained::Worked
                    };
                }
                Err(error) => {
                    // ICMP errors for earlier sends surface here; not fatal.
                    tracing::debug!(%error, "UDP receive failed");
                    return Drained::Empty;
                }
            };
            let now = Instant::now();
            let mut node = lock(&self.node);
            for datagram in b.buf[..received.len].chunks(received.segment) {
                let _ = node.handle_datagram(received.from, datagram, now, &mut b.outbox);
            }
            drop(node);
            b.outbox.send(&self.socket, &self.tun);
        }
        Drained::Worked
    }
}

/// Waits until a watched descriptor is readable (or the poll interval
/// passes); returns which are.
fn wait(
    tun: BorrowedFd<'_>,
    watch_tun: bool,
    udp: BorrowedFd<'_>,
    watch_udp: bool,
    timeout: PollTimeout,
) -> nix::Result<(bool, bool)> {
    let mut fds = Vec::with_capacity(2);
    if watch_tun {
        fds.push(PollFd::new(tun, PollFlags::POLLIN));
    }
    if watch_udp {
        fds.push(PollFd::new(udp, PollFlags::POLLIN));
    }
    if fds.is_empty() {
        // The other worker is draining the one live descriptor.
        std::thread::sleep(std::time::Duration::from_micros(50));
        return Ok((false, false));
    }
    poll(&mut fds, timeout)?;
    let ready = |fd: &PollFd| {
        fd.revents().is_some_and(|r| {
            r.intersects(PollFlags::POLLIN | PollFlags::POLLERR | PollFlags::POLLHUP)
        })
    };
    let mut results = fds.iter().map(ready);
    let tun_ready = watch_tun && results.next().unwrap_or(false);
    let udp_ready = watch_udp && results.next().unwrap_or(false);
    Ok((tun_ready, udp_ready))
}
