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

use super::{InstalledPeers, start_shell};
use crate::files::{replace_private, write_private};
use crate::peers::{Update, peer_from_pb, update_to_pb};
use anyhow::{Context, Result, bail};
use porta_proto::connect::{Authed, Bearer, connect};
use porta_proto::pb::gateway_client::GatewayClient;
use porta_proto::{CertFingerprint, Invitation, describe_chain, pb};
use porta_tunnel::keys::PrivateKey;
use porta_tunnel::shell::Shell;
use prost::Message;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    )
    .context("starting the gateway's tunnel (run as root, or with CAP_NET_ADMIN)")?;
    let mut installed = InstalledPeers::default();
    let revision = match load_peers(data, &enrollment.name)? {
        Some((revision, peers)) => {
            installed.apply(&mut shell.node(), Update::Snapshot(peers));
            revision
        }
        None => 0,
    };
    tracing::info!(
        gateway = %enrollment.name,
        interface = %options.interface,
        port = tunnel.listen_port,
        peers = installed.len(),
        revision,
        "gateway up, serving its last known peers"
    );
    let follower = Follower {
        data: data.to_owned(),
        enrollment,
        shell,
        installed,
        revision,
    };
    tokio::select! {
        () = follower.run() => {}
        () = shutdown => tracing::info!("gateway stopping"),
    }
    Ok(())
}

/// Keeps the node's peers in step with the controller.
struct Follower {
    data: PathBuf,
    enrollment: Enrollment,
    shell: Shell,
    installed: InstalledPeers,
    revision: u64,
}

impl Follower {
    /// Follows the controller forever, reconnecting with backoff (reset
    /// after every stream that got going).
    async fn run(mut self) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let mut streamed = false;
            match self.follow(&mut streamed).await {
                Ok(()) => tracing::warn!("the controller ended the peer stream; reconnecting"),
                Err(error) => tracing::warn!(
                    error = %describe_chain(error.chain()),
                    retry_in = ?backoff,
                    "lost the controller; serving the last known peers"
                ),
            }
            if streamed {
                backoff = Duration::from_secs(1);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// One connection: catch up from the revision held, then apply each
    /// update as it comes; keep and acknowledge every completed revision.
    async fn follow(&mut self, streamed: &mut bool) -> Result<()> {
        let mut client = gateway_client(&self.enrollment).await?;
        let mut stream = client
            .watch_peers(pb::WatchPeersRequest {
                after_revision: self.revision,
            })
            .await
            .context("the controller refused the peer stream")?
            .into_inner();
        *streamed = true;
        tracing::info!(after = self.revision, "following the controller");
        while let Some(message) = stream.message().await? {
            let Some(update) = update_from_pb(message, &self.enrollment.name) else {
                continue;
            };
            let end = self.installed.apply(&mut self.shell.node(), update);
            if let Some(revision) = end {
                save_peers(&self.data, revision, &self.installed)?;
                self.revision = revision;
                client
                    .ack_revision(pb::AckRevisionRequest { revision })
                    .await
                    .context("acknowledging a revision")?;
                tracing::debug!(revision, peers = self.installed.len(), "peer set applied");
            }
        }
        Ok(())
    }
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
    replace_private(
        &data.join("gateway.toml"),
        toml::to_string(enrollment)?.as_bytes(),
    )
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
    replace_private(
        &data.join("peers.pb"),
        &update_to_pb(snapshot, revision).encode_to_vec(),
    )
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}
