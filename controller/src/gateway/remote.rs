//! `porta-controller gateway`: a gateway on another host (a second town
//! building, a data centre), following a controller elsewhere.
//!
//! What it keeps in its data directory (0700):
//!
//! ```text
//! gateway.key    its WireGuard private key, made here, never sent (0600)
//! gateway.toml   controller address, pinned certificate fingerprint, its
//!                gateway credential, and its tunnel settings (0600)
//! peers.pb       the last peer set it applied, with its revision
//!                (a `porta.v1.PeerUpdate` snapshot, replaced atomically)
//! events/        connection events not yet delivered (sled)
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

use super::{InstalledPeers, OBSERVE_EVERY, SessionFile, start_shell};
use crate::peers::{Update, peer_from_pb, update_to_pb};
use anyhow::{Context, Result, bail};
use porta_proto::connect::{Authed, Bearer, connect};
use porta_proto::files::{create_private as write_private, replace_private};
use porta_proto::pb::gateway_client::GatewayClient;
use porta_proto::{CertFingerprint, Invitation, describe_chain, pb};
use porta_tunnel::keys::PrivateKey;
use porta_tunnel::shell::Shell;
use prost::Message;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Largest peer update accepted from the controller (a snapshot of a big
/// town's devices is a few megabytes).
const MAX_UPDATE_BYTES: usize = 64 * 1024 * 1024;

/// How `porta-controller gateway` was started.
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
}

/// What `gateway.toml` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Enrollment {
    /// host:port of the controller API.
    controller: String,
    /// Pinned certificate fingerprint (hex).
    fingerprint: String,
    /// The gateway credential (secret).
    credential: String,
    /// The gateway's name at the controller.
    name: String,
    /// Set once the controller accepted this gateway's key.
    tunnel: Option<Tunnel>,
}

/// How the tunnel interface is set up, as the controller said.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Tunnel {
    addresses: Vec<ipnet::IpNet>,
    mtu: u16,
    listen_port: u16,
}

/// Runs the remote gateway until `shutdown` resolves.
pub async fn run(options: RemoteOptions, shutdown: impl Future<Output = ()>) -> Result<()> {
    let data = options.data.as_path();
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
    let revision = match load_peers(data, &enrollment.name)? {
        Some((revision, peers)) => {
            installed.apply(&mut shell.node(), Update::Snapshot(peers), unix_now());
            revision
        }
        None => 0,
    };
    let outbox = EventOutbox::open(&data.join("events"))?;
    let (sessions, left_open) = SessionFile::open(data)?;
    outbox.push(&left_open)?;
    tracing::info!(
        gateway = %enrollment.name,
        interface = %options.interface,
        port = tunnel.listen_port,
        peers = installed.len(),
        revision,
        undelivered_events = outbox.len(),
        "gateway up, serving its last known peers"
    );
    let gateway = Arc::new(Gateway {
        accept_controller_rollback: options.accept_controller_rollback,
        data: data.to_owned(),
        enrollment,
        shell,
        state: Mutex::new(State {
            installed,
            revision,
            sessions,
        }),
        outbox,
        events_ready: Notify::new(),
    });
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

/// A running remote gateway: its tunnel, its peers and sessions, and the
/// events not yet delivered.
struct Gateway {
    accept_controller_rollback: bool,
    data: PathBuf,
    enrollment: Enrollment,
    shell: Shell,
    state: Mutex<State>,
    outbox: EventOutbox,
    events_ready: Notify,
}

struct State {
    installed: InstalledPeers,
    revision: u64,
    sessions: SessionFile,
}

/// Events in one `ReportEvents` call (well under the controller's message
/// size limit).
const REPORT_BATCH: usize = 200;

impl Gateway {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows the controller, reconnecting with backoff (reset after
    /// every stream that got going), until it refuses this gateway's
    /// credential.
    async fn follow_forever(self: Arc<Self>) -> GatewayRetired {
        let mut backoff = retry_backoff();
        loop {
            let mut streamed = false;
            match self.follow(&mut streamed).await {
                Ok(()) => tracing::warn!("the controller ended the peer stream; reconnecting"),
                Err(error) if refused_credential(&error).is_some() => {
                    return GatewayRetired {
                        message: refused_credential(&error).unwrap_or_default(),
                        data: self.data.display().to_string(),
                    };
                }
                Err(error) => tracing::warn!(
                    error = %describe_chain(error.chain()),
                    "lost the controller; serving the last known peers"
                ),
            }
            if streamed {
                backoff.reset();
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// One connection: catch up from the revision held, then apply each
    /// update as it comes; keep and acknowledge every completed revision.
    async fn follow(&self, streamed: &mut bool) -> Result<()> {
        let mut client = gateway_client(&self.enrollment).await?;
        let after = self.lock().revision;
        let mut stream = client
            .watch_peers(pb::WatchPeersRequest {
                after_revision: after,
            })
            .await
            .context("the controller refused the peer stream")?
            .into_inner();
        *streamed = true;
        tracing::info!(after, "following the controller");
        while let Some(message) = stream.message().await? {
            let held = self.lock().revision;
            if message.revision < held {
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
            let Some(update) = update_from_pb(message, &self.enrollment.name) else {
                continue;
            };
            let applied = {
                let mut state = self.lock();
                let end = state
                    .installed
                    .apply(&mut self.shell.node(), update, unix_now());
                if let Some(revision) = end {
                    save_peers(&self.data, revision, &state.installed)?;
                    state.revision = revision;
                }
                end
            };
            self.keep_events()?;
            if let Some(revision) = applied {
                client
                    .ack_revision(pb::AckRevisionRequest { revision })
                    .await
                    .context("acknowledging a revision")?;
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
            self.lock()
                .installed
                .observe(&mut self.shell.node(), unix_now());
            if let Err(error) = self.keep_events() {
                tracing::error!(error = %format!("{error:#}"), "could not keep connection events on disk");
            }
            self.save_sessions();
        }
    }

    /// Saves the open sessions (after their events are kept).
    fn save_sessions(&self) {
        let mut state = self.lock();
        let open = state.installed.open_sessions(&self.shell.node());
        if let Err(error) = state.sessions.save(open) {
            tracing::error!(error = %format!("{error:#}"), "could not save the open sessions");
        }
    }

    /// Moves new events to the on-disk outbox and wakes the reporter.
    fn keep_events(&self) -> Result<()> {
        let events = self.lock().installed.take_events();
        if !events.is_empty() {
            self.outbox.push(&events)?;
            self.events_ready.notify_one();
        }
        Ok(())
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
        if let Err(error) = self.keep_events() {
            tracing::error!(error = %format!("{error:#}"), "could not keep the last connection events");
        }
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
    }
}

/// Connection events not yet delivered, kept in a sled tree in the data
/// directory (flushed on every change): a gateway that loses the
/// controller, or its own process, loses no event.
struct EventOutbox {
    db: sled::Db,
}

impl EventOutbox {
    fn open(dir: &Path) -> Result<Self> {
        let db = sled::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        Ok(Self { db })
    }

    fn len(&self) -> usize {
        self.db.len()
    }

    fn is_empty(&self) -> bool {
        self.db.is_empty()
    }

    fn push(&self, events: &[crate::event::GatewayEvent]) -> Result<()> {
        for event in events {
            let key = self.db.generate_id()?.to_be_bytes();
            self.db
                .insert(key, pb::ConnectionEvent::from(event).encode_to_vec())?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn peek(&self, limit: usize) -> Result<(Vec<sled::IVec>, Vec<pb::ConnectionEvent>)> {
        let mut keys = Vec::new();
        let mut events = Vec::new();
        for item in self.db.iter().take(limit) {
            let (key, bytes) = item?;
            match pb::ConnectionEvent::decode(bytes.as_ref()) {
                Ok(event) => events.push(event),
                Err(error) => tracing::error!(%error, "dropping a damaged kept event"),
            }
            keys.push(key);
        }
        Ok((keys, events))
    }

    fn remove(&self, keys: &[sled::IVec]) -> Result<()> {
        for key in keys {
            self.db.remove(key)?;
        }
        self.db.flush()?;
        Ok(())
    }
}

fn unix_now() -> u64 {
    crate::clock::now()
}

/// An update from the controller; peers that fail to parse are left out
/// (and logged) rather than stopping the gateway.
fn update_from_pb(message: pb::PeerUpdate, gateway: &str) -> Option<Update> {
    use pb::peer_update::Update as U;
    let parse = |peer| {
        peer_from_pb(peer, gateway)
            .inspect_err(|error| tracing::error!(%error, "ignoring a peer the controller sent"))
            .ok()
    };
    Some(match message.update? {
        U::Snapshot(snapshot) => {
            Update::Snapshot(snapshot.peers.into_iter().filter_map(parse).collect())
        }
        U::Upsert(peer) => Update::Change(crate::peers::PeerChange::Upsert(parse(peer)?)),
        U::Removed(removed) => Update::Change(crate::peers::PeerChange::Removed {
            device_id: removed.device_id,
            gateway: gateway.to_owned(),
        }),
        U::End(_) => Update::End(message.revision),
    })
}

async fn gateway_client(enrollment: &Enrollment) -> Result<GatewayClient<Authed>> {
    let fingerprint: CertFingerprint = enrollment
        .fingerprint
        .parse()
        .context("gateway.toml: the certificate fingerprint is damaged")?;
    let channel = connect(&enrollment.controller, fingerprint).await?;
    Ok(
        GatewayClient::with_interceptor(channel, Bearer::new(&enrollment.credential))
            .max_decoding_message_size(MAX_UPDATE_BYTES),
    )
}

/// Redeems the gateway invitation and saves the credential before anything
/// else can fail (the invitation works once).
async fn redeem(data: &Path, text: &str) -> Result<Enrollment> {
    let invitation = Invitation::decode(text.trim())?;
    if invitation.kind != pb::InvitationKind::Gateway {
        bail!(
            "this is not a gateway invitation; create one with `portactl gateways add NAME --endpoint HOST:PORT`"
        );
    }
    let channel = connect(&invitation.controller, invitation.fingerprint).await?;
    let response = pb::enrollment_client::EnrollmentClient::new(channel)
        .login(pb::LoginRequest {
            token: invitation.token,
            client_name: host_name(),
        })
        .await
        .context("the controller refused the invitation")?
        .into_inner();
    if response.role != pb::Role::Gateway as i32 {
        bail!("the controller did not issue a gateway credential");
    }
    let enrollment = Enrollment {
        controller: invitation.controller,
        fingerprint: invitation.fingerprint.to_string(),
        credential: response.credential,
        name: response.name,
        tunnel: None,
    };
    save_enrollment(data, &enrollment)?;
    tracing::info!(gateway = %enrollment.name, "gateway invitation redeemed");
    Ok(enrollment)
}

/// Announces this gateway's public key; learns its tunnel settings.
async fn register(enrollment: &Enrollment, key: &PrivateKey) -> Result<Tunnel> {
    let response = gateway_client(enrollment)
        .await?
        .register(pb::RegisterGatewayRequest {
            public_key: key.public_key().to_base64(),
        })
        .await
        .context("the controller refused this gateway's key")?
        .into_inner();
    let addresses = response
        .addresses
        .iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("the controller sent a bad address {a:?}"))
        })
        .collect::<Result<_>>()?;
    Ok(Tunnel {
        addresses,
        mtu: u16::try_from(response.mtu).context("the controller sent a bad MTU")?,
        listen_port: u16::try_from(response.listen_port)
            .context("the controller sent a bad port")?,
    })
}

fn load_or_make_key(data: &Path) -> Result<PrivateKey> {
    let path = data.join("gateway.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            PrivateKey::from_base64(&text).with_context(|| format!("{} is damaged", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKey::generate();
            write_private(&path, format!("{}\n", key.to_base64()).as_bytes())?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn load_enrollment(data: &Path) -> Result<Option<Enrollment>> {
    let path = data.join("gateway.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Ok(Some(toml::from_str(&text).with_context(|| {
                format!("{} is damaged", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save_enrollment(data: &Path, enrollment: &Enrollment) -> Result<()> {
    Ok(replace_private(
        &data.join("gateway.toml"),
        toml::to_string(enrollment)?.as_bytes(),
    )?)
}

fn load_peers(data: &Path, gateway: &str) -> Result<Option<(u64, Vec<crate::state::GatewayPeer>)>> {
    let path = data.join("peers.pb");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let message = pb::PeerUpdate::decode(bytes.as_slice())
        .with_context(|| format!("{} is damaged", path.display()))?;
    let revision = message.revision;
    match update_from_pb(message, gateway) {
        Some(Update::Snapshot(peers)) => Ok(Some((revision, peers))),
        _ => bail!("{} holds no peer set", path.display()),
    }
}

fn save_peers(data: &Path, revision: u64, installed: &InstalledPeers) -> Result<()> {
    let snapshot = Update::Snapshot(installed.peers().cloned().collect());
    Ok(replace_private(
        &data.join("peers.pb"),
        &update_to_pb(snapshot, revision).encode_to_vec(),
    )?)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}
