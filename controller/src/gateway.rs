//! The gateway embedded in `porta-controller serve`: `porta_gateway`'s
//! parts, fed in-process.
//!
//! It uses the controller's gateway key (`gateway.key` in the data
//! directory), follows the peer journal in-process, confirms each revision
//! it applied so that `RevokeDevice` can report it, and records its
//! connection events in the controller's log directly. Like a remote
//! gateway, it starts the handshakes with the devices that had a live
//! tunnel when it stopped ([`porta_gateway::live_tunnels`]), so a planned
//! restart of the controller costs staff a round trip, not 15 s.

use crate::clock::now;
use crate::logs;
use crate::state::Controller;
use crate::store::records::GatewayRecord;
use anyhow::{Context, Result};
use porta_gateway::event::GatewayEvent;
use porta_gateway::installed::{InstalledPeers, OBSERVE_EVERY, SessionFile, start_shell};
use porta_gateway::live_tunnels::LiveTunnelFile;
use porta_tunnel::keys::PrivateKey;
use std::path::Path;

pub use porta_gateway::DEFAULT_SESSION_IDLE;

/// How the embedded gateway is set up.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// TUN interface name.
    pub interface: String,
    /// A session ends after this long without traffic.
    pub session_idle: std::time::Duration,
}

/// Starts the gateway and a task that keeps its peers in step with the
/// journal until the controller shuts down.
pub fn start(
    ctl: Controller,
    data: &Path,
    options: &GatewayOptions,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<tokio::task::JoinHandle<()>> {
    let key_path = data.join("gateway.key");
    let key_text = std::fs::read_to_string(&key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    let key = PrivateKey::from_base64(&key_text)
        .with_context(|| format!("{} is damaged", key_path.display()))?;
    let settings = ctl.settings().clone();
    let port = settings
        .wg_endpoint
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .context("the WireGuard endpoint in the settings has no port")?;
    let shell = start_shell(
        &key,
        &options.interface,
        settings.gateway_addresses(),
        settings.mtu,
        port,
        options.session_idle,
    )
    .context(
        "starting the embedded gateway (run as root, or pass --no-gateway to serve the API only)",
    )?;
    tracing::info!(interface = %options.interface, port, "embedded gateway up");

    let name = settings.gateway_name.clone();
    let this_gateway = ctl
        .list_gateways()?
        .into_iter()
        .find(|g| g.embedded)
        .context("the store has no record of the embedded gateway")?;
    let mut revisions = ctl.fanout().revisions();
    let mut shutdown = ctl.shutdown_signal();
    let (mut session_file, left_open) = SessionFile::open(data)?;
    let (mut tunnel_file, mut to_reach) = LiveTunnelFile::open(data, now());
    let metrics = porta_gateway::metrics::GatewayMetrics::register(registry);
    Ok(tokio::spawn(async move {
        // Sessions a killed run left open end first.
        let mut pending = Pending::default();
        pending.push(left_open);
        pending.deliver(&ctl, &this_gateway).await;
        let mut installed = InstalledPeers::default();
        let mut applied = 0;
        let mut observe = tokio::time::interval(OBSERVE_EVERY);
        loop {
            revisions.mark_unchanged();
            let updates = ctl.fanout().updates(&name, applied);
            {
                let mut node = shell.node();
                installed.observe(&mut node, now());
                for update in updates {
                    if let Some(end) = installed.apply(&mut node, update, now()) {
                        applied = end;
                        ctl.fanout().applied(&name, applied, now());
                    }
                }
                // Once its peers are in: the devices whose tunnel was live.
                if applied > 0 && !to_reach.is_empty() {
                    let reached = installed.reach(&mut node, &std::mem::take(&mut to_reach));
                    tracing::info!(
                        devices = reached,
                        "starting handshakes with the devices that had a live tunnel"
                    );
                    drop(node);
                    shell.initiate_handshakes();
                    node = shell.node();
                }
                metrics.observe(
                    node.counters(),
                    installed.len(),
                    installed.sessions_open(),
                    pending.events.len(),
                );
            }
            record(&ctl, &this_gateway, &mut installed, &mut pending).await;
            if let Err(error) = session_file.save(installed.open_sessions(&shell.node())) {
                tracing::error!(error = %format!("{error:#}"), "could not save the open sessions");
            }
            if let Err(error) = tunnel_file.save(installed.live_tunnels(&shell.node()), now()) {
                tracing::debug!(error = %format!("{error:#}"), "could not save the live tunnels");
            }
            tokio::select! {
                changed = revisions.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => break,
                _ = observe.tick() => {}
            }
        }
        installed.shutdown(&mut shell.node(), now());
        record(&ctl, &this_gateway, &mut installed, &mut pending).await;
        if let Err(error) = session_file.save(Vec::new()) {
            tracing::error!(error = %format!("{error:#}"), "could not save the open sessions");
        }
        drop(shell);
        tracing::info!("embedded gateway stopped");
    }))
}

/// Records the connection events `installed` produced.
async fn record(
    ctl: &Controller,
    gateway: &GatewayRecord,
    installed: &mut InstalledPeers,
    pending: &mut Pending,
) {
    pending.push(installed.take_events());
    pending.deliver(ctl, gateway).await;
}

/// Connection events the log has not taken yet (its disk is full, say):
/// they wait, oldest first, and are recorded once it takes them again.
/// At most [`Pending::MAX`] wait; older ones are dropped beyond that,
/// counted and logged.
#[derive(Default)]
struct Pending {
    events: std::collections::VecDeque<GatewayEvent>,
    dropped: u64,
    failing: bool,
}

impl Pending {
    /// Events kept at most while the log cannot take them.
    const MAX: usize = 100_000;
    /// Events recorded in one transaction.
    const BATCH: usize = 1_000;

    fn push(&mut self, events: Vec<GatewayEvent>) {
        self.events.extend(events);
        let excess = self.events.len().saturating_sub(Self::MAX);
        if excess > 0 {
            self.events.drain(..excess);
            self.dropped += excess as u64;
            tracing::error!(
                dropped = excess,
                dropped_in_total = self.dropped,
                waiting = self.events.len(),
                "connection events dropped: the log has not taken any for too long"
            );
        }
    }

    async fn deliver(&mut self, ctl: &Controller, gateway: &GatewayRecord) {
        while !self.events.is_empty() {
            let batch: Vec<GatewayEvent> = self.events.iter().take(Self::BATCH).cloned().collect();
            match logs::record_events(ctl.store(), gateway, &batch, now()).await {
                Ok(_) => {
                    self.events.drain(..batch.len());
                    if std::mem::take(&mut self.failing) {
                        tracing::info!("connection events are recorded again");
                    }
                }
                Err(error) => {
                    if !std::mem::replace(&mut self.failing, true) {
                        tracing::error!(%error, waiting = self.events.len(), "connection events wait: the log cannot take them now");
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> GatewayEvent {
        GatewayEvent {
            event_id: format!("e{i}"),
            kind: porta_gateway::event::EventKind::SessionStart,
            at: 1,
            device_id: "d".into(),
            public_address: "192.0.2.1:1".into(),
            previous_public_address: String::new(),
            rx_bytes: 0,
            tx_bytes: 0,
            reason: None,
            session_start: 1,
        }
    }

    #[test]
    fn waiting_events_are_bounded_and_the_oldest_are_dropped_and_counted() {
        let mut pending = Pending::default();
        pending.push((0..Pending::MAX).map(event).collect());
        assert_eq!((pending.events.len(), pending.dropped), (Pending::MAX, 0));
        pending.push((Pending::MAX..Pending::MAX + 5).map(event).collect());
        assert_eq!((pending.events.len(), pending.dropped), (Pending::MAX, 5));
        assert_eq!(
            pending.events.front().map(|e| e.event_id.as_str()),
            Some("e5")
        );
    }
}
