//! The fast path (Linux): packet workers over a TUN device with offloads
//! and a UDP socket with GSO/GRO ([`super::workers`], [`super::udp`]).

use super::udp::{Datagrams, Socket};
use super::{ShellConfig, ShellError, spawn, start_timers, workers};
use crate::node::{Node, Sink};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tun_rs::{GROTable, SyncDevice, VIRTIO_NET_HDR_LEN};

/// Starts the packet workers and the timers on `tun`; returns the socket.
pub(super) fn start(
    node: &Arc<Mutex<Node>>,
    tun: &Arc<SyncDevice>,
    config: &ShellConfig,
    stop: &Arc<AtomicBool>,
    handshake_wanted: &Arc<AtomicBool>,
    threads: &mut Vec<JoinHandle<()>>,
) -> Result<Arc<Socket>, ShellError> {
    let listen = config.listen;
    let socket =
        Arc::new(Socket::bind(listen).map_err(|source| ShellError::Socket { listen, source })?);
    let shared = Arc::new(
        workers::Shared::new(
            node.clone(),
            socket.clone(),
            tun.clone(),
            stop.clone(),
            config.mtu,
        )
        .map_err(|source| ShellError::tun(&config.interface, source))?,
    );
    for _ in 0..workers::WORKERS {
        let shared = shared.clone();
        threads.push(spawn("porta-packets", move || shared.run_worker()));
    }
    let (socket_out, tun_out) = (socket.clone(), tun.clone());
    threads.push(start_timers(
        node,
        stop,
        handshake_wanted,
        Outbox::default(),
        move |outbox: &mut Outbox| outbox.send(&socket_out, &tun_out),
    ));
    Ok(socket)
}

/// What the node produced for one batch, copied out so that the system
/// calls that send it happen after the node's lock is released (the two
/// directions then overlap instead of queueing on each other's I/O). The
/// buffers are reused: no allocation per packet once warm.
#[derive(Default)]
pub(super) struct Outbox {
    datagrams: Datagrams,
    /// Packets for the TUN device, each after room for the virtio header.
    packets: Vec<Vec<u8>>,
    packet_count: usize,
    gro: GROTable,
}

impl Sink for Outbox {
    fn send_datagram(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.datagrams.push(to, datagram);
    }
    fn deliver_packet(&mut self, packet: &[u8]) {
        if self.packet_count == self.packets.len() {
            self.packets
                .push(Vec::with_capacity(VIRTIO_NET_HDR_LEN + 65_535));
        }
        let buffer = &mut self.packets[self.packet_count];
        buffer.clear();
        buffer.resize(VIRTIO_NET_HDR_LEN, 0);
        buffer.extend_from_slice(packet);
        self.packet_count += 1;
    }
}

impl Outbox {
    /// Sends everything collected: datagrams on the socket (runs to one
    /// peer in one GSO send), packets to the TUN device (TCP segments
    /// merged by GRO).
    pub(super) fn send(&mut self, socket: &Socket, tun: &SyncDevice) {
        self.datagrams.flush(socket);
        if self.packet_count > 0 {
            let packets = &mut self.packets[..self.packet_count];
            if let Err(error) = tun.send_multiple(&mut self.gro, packets, VIRTIO_NET_HDR_LEN) {
                tracing::trace!(%error, "TUN write failed");
            }
            self.packet_count = 0;
        }
    }
}
