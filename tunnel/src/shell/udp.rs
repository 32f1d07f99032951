//! The UDP side of the shell, with Linux's segmentation offloads.
//!
//! * **Receive (GRO).** With `UDP_GRO` on, one `recvmsg` returns a run of
//!   datagrams from the same sender, all of one size but the last, and a
//!   control message with that size; [`Socket::recv`] hands back the buffer
//!   and the segment size so the caller can walk the datagrams.
//! * **Send (GSO).** [`Socket::send_batch`] sends a run of datagrams to one
//!   destination, all of one size but the last, in a single `sendmsg` with
//!   `UDP_SEGMENT`; the kernel cuts them apart. A bulk TCP transfer through
//!   the tunnel turns into runs like that, so the per-packet system calls —
//!   the limit on this kind of machine — become per-run.
//!
//! Both are probed once and turned off for good if the kernel refuses
//! (then every datagram costs its own system call, as before).
//! No crate offered these two on a plain blocking socket with the control
//! messages we need, so the few calls are made here with nix.

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, sendmsg, setsockopt,
    sockopt,
};
use socket2::{Domain, Protocol, Type};
use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// UDP socket buffer size: the default 208 KiB drops datagrams under load
/// (see docs/BENCHMARKS.md and the field notes).
const SOCKET_BUFFER: usize = 4 << 20;
/// The kernel's limit on segments in one GSO send (UDP_MAX_SEGMENTS).
pub(super) const MAX_SEGMENTS: usize = 64;
/// The largest UDP payload one send may carry.
const MAX_GSO_BYTES: usize = 65_000;

/// A bound UDP socket with optional GRO/GSO.
pub(super) struct Socket {
    inner: UdpSocket,
    gso: AtomicBool,
}

/// One receive: `len` bytes from `from`, cut into datagrams of `segment`
/// bytes (the last may be shorter).
pub(super) struct Received {
    /// The sender.
    pub(super) from: SocketAddr,
    /// Bytes received.
    pub(super) len: usize,
    /// Datagram size within them.
    pub(super) segment: usize,
}

impl Socket {
    /// Binds `listen` with large buffers and GRO/GSO where the kernel
    /// offers them.
    pub(super) fn bind(listen: SocketAddr) -> std::io::Result<Self> {
        let socket = socket2::Socket::new(
            Domain::for_address(listen),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        // Best effort: the kernel caps these at net.core.[rw]mem_max.
        if socket.set_recv_buffer_size(SOCKET_BUFFER).is_err() {
            tracing::debug!("could not enlarge the UDP receive buffer");
        }
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
        socket.bind(&listen.into())?;
        let inner: UdpSocket = socket.into();
        if setsockopt(&inner, sockopt::UdpGroSegment, &true).is_err() {
            tracing::debug!("UDP GRO is not available");
        }
        Ok(Self {
            inner,
            gso: AtomicBool::new(true),
        })
    }

    /// Makes receives return `WouldBlock` instead of waiting.
    pub(super) fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
        self.inner.set_nonblocking(nonblocking)
    }

    /// The bound address.
    pub(super) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Receives into `buf` (size it for 64 KiB: GRO fills it).
    pub(super) fn recv(&self, buf: &mut [u8]) -> std::io::Result<Received> {
        let mut control = nix::cmsg_space!(i32);
        let mut iov = [IoSliceMut::new(buf)];
        let message = recvmsg::<SockaddrStorage>(
            self.inner.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::empty(),
        )
        .map_err(std::io::Error::from)?;
        let len = message.bytes;
        let mut segment = len;
        for cmsg in message.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::UdpGroSegments(size) = cmsg {
                segment = usize::try_from(size).unwrap_or(len).max(1);
            }
        }
        let from = message
            .address
            .and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddr::from((v4.ip(), v4.port())))
                    .or_else(|| {
                        a.as_sockaddr_in6()
                            .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
                    })
            })
            .ok_or_else(|| std::io::Error::other("a datagram without a sender address"))?;
        Ok(Received { from, len, segment })
    }

    /// Sends one datagram.
    pub(super) fn send_to(&self, datagram: &[u8], to: SocketAddr) -> std::io::Result<()> {
        self.inner.send_to(datagram, to).map(drop)
    }

    /// Sends `bytes` to `to` as datagrams of `segment` bytes (the last may
    /// be shorter): one system call with GSO, else one per datagram.
    pub(super) fn send_batch(
        &self,
        bytes: &[u8],
        segment: usize,
        to: SocketAddr,
    ) -> std::io::Result<()> {
        if bytes.len() > segment && self.gso.load(Ordering::Relaxed) {
            let size = u16::try_from(segment).unwrap_or(u16::MAX);
            let destination = SockaddrStorage::from(to);
            let sent = sendmsg(
                self.inner.as_raw_fd(),
                &[IoSlice::new(bytes)],
                &[ControlMessage::UdpGsoSegments(&size)],
                MsgFlags::empty(),
                Some(&destination),
            );
            match sent {
                Ok(_) => return Ok(()),
                // Refused by this kernel or device: never try again.
                Err(
                    nix::errno::Errno::EINVAL
                    | nix::errno::Errno::EIO
                    | nix::errno::Errno::ENOPROTOOPT,
                ) => {
                    tracing::debug!("UDP GSO refused; sending datagrams one by one");
                    self.gso.store(false, Ordering::Relaxed);
                }
                Err(error) => return Err(error.into()),
            }
        }
        for datagram in bytes.chunks(segment) {
            self.send_to(datagram, to)?;
        }
        Ok(())
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// Datagrams waiting to be sent, kept so that runs to one destination can
/// leave in one GSO send. Buffers are reused: no allocation per packet once
/// warm.
#[derive(Default)]
pub(super) struct Datagrams {
    bytes: Vec<u8>,
    /// (destination, range in `bytes`).
    items: Vec<(SocketAddr, std::ops::Range<usize>)>,
}

impl Datagrams {
    /// Queues one datagram.
    pub(super) fn push(&mut self, to: SocketAddr, datagram: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(datagram);
        self.items.push((to, start..self.bytes.len()));
    }

    /// Sends everything queued, grouping runs (see [`runs`]).
    pub(super) fn flush(&mut self, socket: &Socket) {
        for run in runs(&self.items) {
            let (to, first) = &self.items[run.start];
            let last = &self.items[run.end - 1].1;
            let segment = first.len();
            if let Err(error) = socket.send_batch(&self.bytes[first.start..last.end], segment, *to)
            {
                tracing::trace!(%error, "UDP send failed");
            }
        }
        self.items.clear();
        self.bytes.clear();
    }
}

/// Splits queued datagrams into runs one GSO send can carry: consecutive,
/// same destination, same size except a shorter last one, at most
/// [`MAX_SEGMENTS`] datagrams and [`MAX_GSO_BYTES`] bytes.
pub(super) fn runs(items: &[(SocketAddr, std::ops::Range<usize>)]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let (to, first) = &items[start];
        let size = first.len();
        let mut end = start + 1;
        let mut total = size;
        while end < items.len()
            && end - start < MAX_SEGMENTS
            && items[end].0 == *to
            && items[end].1.len() <= size
            && total + items[end].1.len() <= MAX_GSO_BYTES
        {
            total += items[end].1.len();
            end += 1;
            if items[end - 1].1.len() < size {
                break; // a shorter datagram ends the run
            }
        }
        runs.push(start..end);
        start = end;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(items: &[(u16, usize)]) -> Vec<(SocketAddr, std::ops::Range<usize>)> {
        let mut at = 0;
        items
            .iter()
            .map(|&(port, len)| {
                let range = at..at + len;
                at += len;
                (SocketAddr::from(([127, 0, 0, 1], port)), range)
            })
            .collect()
    }

    #[test]
    fn runs_group_equal_sizes_to_one_destination_and_end_at_a_short_one() {
        let items = queue(&[(1, 100), (1, 100), (1, 60), (1, 100), (2, 100), (2, 100)]);
        assert_eq!(runs(&items), vec![0..3, 3..4, 4..6]);
    }

    #[test]
    fn runs_respect_the_segment_and_byte_limits() {
        let items = queue(&vec![(1, 1000); 70]);
        assert_eq!(runs(&items), vec![0..64, 64..70]);
        let big = queue(&vec![(1, 1500); 50]);
        let lengths: Vec<usize> = runs(&big).iter().map(|r| r.len()).collect();
        assert_eq!(lengths, vec![43, 7]);
    }

    #[test]
    fn a_longer_datagram_starts_a_new_run() {
        let items = queue(&[(1, 60), (1, 100), (1, 100)]);
        assert_eq!(runs(&items), vec![0..1, 1..3]);
    }
}
