//! `porta-gateway`: a gateway on another host (a second town
//! building, a data centre), following a controller elsewhere.
//!
//! What it keeps in its data directory (0700):
//!
//! ```text
//! gateway.key    its WireGuard private key, made here, never sent (0600)
//! gateway.toml   controller address, pinned certificate fingerprint, its
//!                gateway credential, and its tunnel settings (0600)
//! peers.pb       the last peer set it applied, with its revision and the
//!                controller's history mark for it (a `porta.v1.PeerUpdate`
//!                snapshot, replaced atomically; later revisions in peers.log)
//! events/        connection events not yet delivered (sled)
//! open-sessions.json  sessions open now, ended by the next start if this
//!                one is killed
//! live-tunnels.json   devices with a live tunnel and where they were, for
//!                the next start's handshakes
//! ```
//!
//! The first start redeems the gateway invitation (`Enrollment.Login`),
//! saves the credential at once, then announces its public key
//! (`Gateway.Register`). Every start serves the peer set from `peers.pb`
//! before it reaches the controller, so a controller outage never stops
//! staff traffic; it then follows `Gateway.WatchPeers` from the revision
//! it holds, applies each update, saves the set and acknowledges the
//! revision — which is how `portactl devices revoke` learns that this
//! gateway dropped a device. Lost connections are retried with backoff.
//!
//! Its sessions become connection events every second; they are kept on
//! disk first and delivered with `Gateway.ReportEvents`, and leave the disk
//! only once the controller has recorded them. The controller skips event
//! ids it already has, so a resend after a lost reply counts once.

mod data_writes;
mod enrollment;
mod saved_peers;

use crate::event::GatewayEvent;
use crate::installed::{InstalledPeers, OBSERVE_EVERY, SessionFile, start_shell};
use crate::live_tunnels::LiveTunnelFile;
use crate::outbox::EventOutbox;
use crate::peer::Update;
use anyhow::{Context, Result, bail};
use data_writes::DataWrites;
use enrollment::{
    Enrollment, gateway_client, load_enrollment, load_or_make_key, redeem, register,
    save_enrollment,
};
use porta_proto::clock::now as unix_now;
use porta_proto::connect::Authed;
use porta_proto::describe_chain;
use porta_proto::pb;
use porta_proto::pb::gateway_client::GatewayClient;
use porta_tunnel::shell::Shell;
use saved_peers::SavedPeers;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How `porta-gateway` was started.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// Data directory.
    pub data: PathBuf,
    /// The gateway invitation (first start only).
    pub invitation: Option<String>,
    /// TUN interface name.
    pub interface: String,
    /// A session ends after this long without traffic.
    pub session_idle: Duration,
    /// Take a peer set older than the one applied (see `GatewayArgs`).
    pub accept_controller_rollback: bool,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Runs the remote gateway until `shutdown` resolves.
pub async fn run(options: RemoteOptions, shutdown: impl Future<Output = ()>) -> Result<()> {
    let data = options.data.as_path();
    // Bound first: a taken port is an error at start, not a silent gap.
    let metrics = match options.metrics_listen {
        Some(addr) => Some(
            crate::metrics::Exporter::bind(addr)
                .await
                .with_context(|| format!("listening on {addr} for metrics"))?,
        ),
        None => None,
    };
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))?;
    let key = load_or_make_key(data)?;
    let mut enrollment = match load_enrollment(data)? {
        Some(saved) => {
            if options.invitation.is_some() {
                tracing::info!(
                    "this gateway is enrolled already ({}); the invitation is not needed",
                    data.join("gateway.toml").display()
                );
            }
            saved
        }
        None => {
            let text = options.invitation.as_deref().context(
                "this gateway is not enrolled yet: pass --controller <invitation> \
                 (from `portactl gateways add`)",
            )?;
            redeem(data, text).await?
        }
    };
    let tunnel = match enrollment.tunnel.clone() {
        Some(tunnel) => tunnel,
        None => {
            let tunnel = register(&enrollment, &key).await?;
            enrollment.tunnel = Some(tunnel.clone());
            save_enrollment(data, &enrollment)?;
            tunnel
        }
    };

    let shell = start_shell(
        &key,
        &options.interface,
        tunnel.addresses.clone(),
        tunnel.mtu,
        tunnel.listen_port,
        options.session_idle,
    )
    .context("starting the gateway's tunnel (run as root, or with CAP_NET_ADMIN)")?;
    let mut installed = InstalledPeers::default();
    let (saved, loaded) = SavedPeers::open(data, &enrollment.name)?;
    let (revision, history) = match loaded {
        Some(loaded) => {
            installed.apply(
                &mut shell.node(),
                Update::Snapshot(loaded.peers),
                unix_now(),
            );
            (loaded.revision, loaded.history)
        }
        None => (0, 0),
    };
    // The devices whose tunnel was live when it stopped: handshakes now,
    // rather than 15 s from now when each laptop gives up on its session.
    let (tunnels, live) = LiveTunnelFile::open(data, unix_now());
    let reached = installed.reach(&mut shell.node(), &live);
    if reached > 0 {
        tracing::info!(
            devices = reached,
            "starting handshakes with the devices that had a live tunnel"
        );
        shell.initiate_handshakes();
    }
    let outbox = EventOutbox::open(&data.join("events"))
        .context("the gateway cannot start until it can open its event outbox")?;
    let (sessions, left_open) = SessionFile::open(data)?;
    tracing::info!(
        gateway = %enrollment.name,
        interface = %options.interface,
        port = tunnel.listen_port,
        peers = installed.len(),
        revision,
        undelivered_events = outbox.len(),
        "gateway up, serving its last known peers"
    );
    let mut registry = prometheus_client::registry::Registry::default();
    let gateway_metrics = crate::metrics::GatewayMetrics::register(&mut registry);
    if let Some(exporter) = metrics {
        tokio::spawn(exporter.serve(registry, std::future::pending()));
    }
    let gateway = Arc::new(Gateway {
        metrics: gateway_metrics,
        accept_controller_rollback: options.accept_controller_rollback,
        data: data.to_owned(),
        enrollment,
        shell,
        state: Mutex::new(State {
            installed,
            revision,
            history,
            sessions,
            tunnels,
            saved,
            unsaved: Vec::new(),
        }),
        outbox,
        unkept: Mutex::new(left_open),
        data_writes: DataWrites::default(),
        events_ready: Notify::new(),
    });
    gateway.keep_events();
    // Ready for systemd (Type=notify): serving its last known peers.
    if let Err(error) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(%error, "could not tell systemd the gateway is ready");
    }
    let outcome = tokio::select! {
        retired = gateway.clone().follow_forever() => Err(retired.into()),
        () = gateway.clone().observe_forever() => Ok(()),
        () = gateway.clone().report_forever() => Ok(()),
        () = shutdown => {
            tracing::info!("gateway stopping");
            Ok(())
        }
    };
    gateway.stop().await;
    outcome
}

/// The controller no longer accepts this gateway's credential (it was
/// removed with `portactl gateways remove`, or the controller was set up
/// anew): retrying cannot help, so the gateway stops (exit status 4, which
/// the packaged unit does not restart).
#[derive(Debug, thiserror::Error)]
#[error(
    "the controller no longer accepts this gateway ({message}); it was removed \
     (`portactl gateways remove`) or the controller was set up anew. To serve again, \
     add it with `portactl gateways add` and start it with the new invitation \
     after emptying {data}"
)]
pub struct GatewayRetired {
    /// What the controller said.
    pub message: String,
    /// The gateway's data directory.
    pub data: String,
}

/// How a remote gateway retries the controller: jittered, at most 10 s
/// apart (it holds sessions, so it comes back sooner than laptops).
fn retry_backoff() -> porta_proto::connect::Backoff {
    porta_proto::connect::Backoff::new(Duration::from_secs(1), Duration::from_secs(10))
}

/// The controller's message when `error` is its refusal of the credential.
fn refused_credential(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        let status = cause.downcast_ref::<tonic::Status>()?;
        matches!(
            status.code(),
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
        )
        .then(|| status.message().to_owned())
    })
}

/// The controller offered a peer set older than the one applied: its
/// store lost changes (revocations among them), so its word is not taken.
#[derive(Debug, thiserror::Error)]
#[error(
    "the controller offered peer revision {offered}, older than revision {held} that this gateway \
     applied: its store went back and may have lost revocations. Serving the peers of revision \
     {held} until it catches up; if the controller was restored from an older backup on purpose, \
     restart this gateway with --accept-controller-rollback"
)]
struct ControllerWentBack {
    held: u64,
    offered: u64,
}

/// The controller refused the peer stream because this gateway holds a
/// peer set of another history of its store (its message says what to do).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotFollowing(String);

/// A running remote gateway: its tunnel, its peers and sessions, and the
/// events not yet delivered.
struct Gateway {
    accept_controller_rollback: bool,
    data: PathBuf,
    enrollment: Enrollment,
    shell: Shell,
    metrics: crate::metrics::GatewayMetrics,
    state: Mutex<State>,
    outbox: EventOutbox,
    /// Events not in the outbox yet because writing it failed (a full
    /// disk): kept in memory and offered again every second.
    unkept: Mutex<Vec<GatewayEvent>>,
    data_writes: DataWrites,
    events_ready: Notify,
}

struct State {
    installed: InstalledPeers,
    revision: u64,
    /// The controller's history mark for `revision`.
    history: u64,
    sessions: SessionFile,
    tunnels: LiveTunnelFile,
    /// The peer set on disk.
    saved: SavedPeers,
    /// Updates applied since the last completed revision.
    unsaved: Vec<Update>,
}

/// Events in one `ReportEvents` call (well under the controller's message
/// size limit).
const REPORT_BATCH: usize = 200;

impl Gateway {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows the controller, reconnecting with backoff, until it refuses
    /// this gateway's credential. The backoff starts again only after a
    /// stream that worked — it applied a revision, or stayed open a while —
    /// so a gateway that cannot keep what it is sent (its disk is full or
    /// read-only) does not reconnect twice a second.
    async fn follow_forever(self: Arc<Self>) -> GatewayRetired {
        const HELD_OPEN: Duration = Duration::from_secs(30);
        let mut backoff = retry_backoff();
        loop {
            let mut streamed = false;
            let started = std::time::Instant::now();
            match self.follow(&mut streamed).await {
                Ok(()) => tracing::warn!("the controller ended the peer stream; reconnecting"),
                Err(error) if refused_credential(&error).is_some() => {
                    return GatewayRetired {
                        message: refused_credential(&error).unwrap_or_default(),
                        data: self.data.display().to_string(),
                    };
                }
                Err(error) if error.is::<NotFollowing>() => tracing::error!(
                    error = %describe_chain(error.chain()),
                    "NOT following the controller: serving the peer set held, revocations since \
                     the controller's restore included, until its admin decides"
                ),
                Err(error) => tracing::warn!(
                    error = %describe_chain(error.chain()),
                    "lost the controller; serving the last known peers"
                ),
            }
            if streamed || started.elapsed() > HELD_OPEN {
                backoff.reset();
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// One connection: catch up from the revision held, then apply each
    /// update as it comes; keep and acknowledge every completed revision
    /// (`streamed` once one was).
    async fn follow(&self, streamed: &mut bool) -> Result<()> {
        let mut client = gateway_client(&self.enrollment).await?;
        let (after, after_history) = {
            let state = self.lock();
            (state.revision, state.history)
        };
        let mut stream = client
            .watch_peers(pb::WatchPeersRequest {
                after_revision: after,
                after_history,
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::FailedPrecondition => {
                    anyhow::Error::new(NotFollowing(status.message().to_owned()))
                }
                _ => anyhow::Error::new(status).context("the controller refused the peer stream"),
            })?
            .into_inner();
        tracing::info!(after, "following the controller");
        while let Some(message) = stream.message().await? {
            let held = self.lock().revision;
            if message.replaces_history {
                tracing::warn!(
                    held,
                    offered = message.revision,
                    "an admin of the controller chose to replace this gateway's peer set \
                     (it held changes a restore of the controller undid): taking the controller's"
                );
            } else if message.revision < held {
                if !self.accept_controller_rollback {
                    bail!(ControllerWentBack {
                        held,
                        offered: message.revision
                    });
                }
                tracing::warn!(
                    held,
                    offered = message.revision,
                    "taking an older peer set, as asked (--accept-controller-rollback)"
                );
            }
            let history = message.history;
            let Some(update) = Update::from_pb(message, &self.enrollment.name) else {
                continue;
            };
            let applied = {
                let state = &mut *self.lock();
                if !matches!(update, Update::End(_)) {
                    state.unsaved.push(update.clone());
                }
                let end = state
                    .installed
                    .apply(&mut self.shell.node(), update, unix_now());
                if let Some(revision) = end {
                    let installed = &state.installed;
                    state.saved.keep(
                        revision,
                        history,
                        std::mem::take(&mut state.unsaved),
                        || installed.peers().cloned().collect(),
                    )?;
                    state.revision = revision;
                    state.history = history;
                }
                end
            };
            self.keep_events();
            if let Some(revision) = applied {
                client
                    .ack_revision(pb::AckRevisionRequest { revision, history })
                    .await
                    .context("acknowledging a revision")?;
                *streamed = true;
                tracing::debug!(revision, "peer set applied");
            }
        }
        Ok(())
    }

    /// Every second, turns what the node saw into events and keeps them.
    async fn observe_forever(self: Arc<Self>) {
        let mut every = tokio::time::interval(OBSERVE_EVERY);
        loop {
            every.tick().await;
            {
                let state = &mut *self.lock();
                let node = &mut *self.shell.node();
                state.installed.observe(node, unix_now());
            }
            self.keep_events();
            let failing = self.save_sessions();
            let waiting = self.outbox.len() + self.unkept_len();
            let state = self.lock();
            self.metrics.observe(
                self.shell.node().counters(),
                state.installed.len(),
                state.installed.sessions_open(),
                waiting,
            );
            drop(state);
            self.metrics.set_data_write_failing(failing);
        }
    }

    /// Saves the open sessions (after their events are kept); true while
    /// any write to the data directory fails.
    fn save_sessions(&self) -> bool {
        let (saved, tunnels) = {
            let mut state = self.lock();
            let node = self.shell.node();
            let open = state.installed.open_sessions(&node);
            let live = state.installed.live_tunnels(&node);
            drop(node);
            (
                state.sessions.save(open),
                state.tunnels.save(live, unix_now()),
            )
        };
        self.data_writes
            .note("live tunnels", tunnels.map_err(|e| format!("{e:#}")));
        self.data_writes
            .note("open sessions", saved.map_err(|e| format!("{e:#}")))
    }

    fn unkept_len(&self) -> usize {
        self.unkept.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Moves new events to the on-disk outbox and wakes the reporter.
    /// Events the outbox could not take stay in memory, in order, and are
    /// offered again at the next call: none is dropped.
    fn keep_events(&self) {
        let new = self.lock().installed.take_events();
        let mut unkept = self.unkept.lock().unwrap_or_else(|p| p.into_inner());
        unkept.extend(new);
        if unkept.is_empty() {
            return;
        }
        let kept = self.outbox.push(&unkept);
        if kept.is_ok() {
            unkept.clear();
            self.events_ready.notify_one();
        }
        drop(unkept);
        self.data_writes.note("connection events", kept);
    }

    /// Delivers kept events, oldest first, until the outbox is empty; then
    /// waits for more. Each batch leaves the outbox only once the
    /// controller has recorded it (it skips event ids it has already).
    async fn report_forever(self: Arc<Self>) {
        let mut client = None;
        let mut backoff = retry_backoff();
        loop {
            if self.outbox.is_empty() {
                let _ = tokio::time::timeout(Duration::from_secs(5), self.events_ready.notified())
                    .await;
                continue;
            }
            match self.report_batch(&mut client).await {
                Ok(()) => backoff.reset(),
                Err(error) => {
                    client = None;
                    tracing::debug!(error = %describe_chain(error.chain()), "events not delivered yet");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    async fn report_batch(&self, client: &mut Option<GatewayClient<Authed>>) -> Result<()> {
        let (keys, events) = self.outbox.peek(REPORT_BATCH)?;
        if keys.is_empty() {
            return Ok(());
        }
        if client.is_none() {
            *client = Some(gateway_client(&self.enrollment).await?);
        }
        let Some(connected) = client.as_mut() else {
            return Ok(());
        };
        let report = connected
            .report_events(pb::ReportEventsRequest { events })
            .await
            .context("the controller did not take the events")?
            .into_inner();
        // Refused events will never be taken: they leave the outbox too.
        for refused in &report.refused {
            tracing::warn!(event_id = %refused.event_id, reason = %refused.reason, "the controller refused a connection event");
        }
        self.outbox.remove(&keys)?;
        Ok(())
    }

    /// Ends every session, keeps the events, and tries once (briefly) to
    /// deliver them; whatever is left goes at the next start.
    async fn stop(&self) {
        {
            let mut state = self.lock();
            state.installed.shutdown(&mut self.shell.node(), unix_now());
        }
        self.keep_events();
        self.save_sessions();
        let mut client = None;
        let deliver = async {
            while !self.outbox.is_empty() {
                self.report_batch(&mut client).await?;
            }
            anyhow::Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(2), deliver).await {
            Ok(Ok(())) => {}
            _ => tracing::info!(
                undelivered = self.outbox.len(),
                "events kept on disk for the next start"
            ),
        }
        let unkept = self.unkept_len();
        if unkept > 0 {
            tracing::error!(
                unkept,
                dir = %self.data.display(),
                "connection events could not be written to the full disk and are lost with this stop"
            );
        }
    }
}
