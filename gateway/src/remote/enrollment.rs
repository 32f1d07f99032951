//! What a remote gateway keeps in its data directory, and how it gets
//! there: its key (made here, never sent), its enrollment at the
//! controller (redeemed invitation, credential, tunnel settings) and the
//! last peer set it applied. Every file is written with the one atomic
//! owner-only writer ([`porta_proto::files`]).

use anyhow::{Context, Result, bail};
use porta_proto::connect::{Authed, Bearer, connect};
use porta_proto::files::{create_private as write_private, replace_private};
use porta_proto::pb::gateway_client::GatewayClient;
use porta_proto::{CertFingerprint, Invitation, pb};
use porta_tunnel::keys::PrivateKey;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest peer update accepted from the controller (a snapshot of a big
/// town's devices is a few megabytes).
const MAX_UPDATE_BYTES: usize = 64 * 1024 * 1024;

/// What `gateway.toml` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Enrollment {
    /// host:port of the controller API.
    pub(crate) controller: String,
    /// Pinned certificate fingerprint (hex).
    pub(crate) fingerprint: String,
    /// The gateway credential (secret).
    pub(crate) credential: String,
    /// The gateway's name at the controller.
    pub(crate) name: String,
    /// Set once the controller accepted this gateway's key.
    pub(crate) tunnel: Option<Tunnel>,
}

/// How the tunnel interface is set up, as the controller said.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Tunnel {
    pub(crate) addresses: Vec<ipnet::IpNet>,
    pub(crate) mtu: u16,
    pub(crate) listen_port: u16,
}

/// A client of the controller's Gateway service with this gateway's credential.
pub(crate) async fn gateway_client(enrollment: &Enrollment) -> Result<GatewayClient<Authed>> {
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
pub(crate) async fn redeem(data: &Path, text: &str) -> Result<Enrollment> {
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
pub(crate) async fn register(enrollment: &Enrollment, key: &PrivateKey) -> Result<Tunnel> {
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

pub(crate) fn load_or_make_key(data: &Path) -> Result<PrivateKey> {
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

pub(crate) fn load_enrollment(data: &Path) -> Result<Option<Enrollment>> {
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

pub(crate) fn save_enrollment(data: &Path, enrollment: &Enrollment) -> Result<()> {
    Ok(replace_private(
        &data.join("gateway.toml"),
        toml::to_string(enrollment)?.as_bytes(),
    )?)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}
