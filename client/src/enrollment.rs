//! Enrolling this computer: the key is made here and never leaves it; the
//! controller, reached through the invitation's pinned certificate, gets
//! the public key and returns the device's credential and configuration.
//!
//! Used by the tunnel service (`Enroll` on its local API) and by `porta
//! enroll` run as root without a service. Asking the person whether to
//! replace an enrollment is the front end's job; this module says whether
//! one may be replaced and why.

use crate::state::{DeviceState, StateDir};
use anyhow::{Context, Result, bail};
use porta_proto::connect::connect;
use porta_proto::pb;
use porta_proto::refusal::Refusal;
use porta_proto::{Invitation, pb::InvitationKind};
use porta_tunnel::keys::PrivateKey;
use std::time::Duration;

/// Decodes a pasted invitation (or `porta:` link) for a computer.
pub fn decode(text: &str) -> Result<Invitation> {
    let invitation = Invitation::decode(text)?;
    if invitation.kind != InvitationKind::Device {
        bail!(
            "this invitation is for an administrator (`portactl login`), not for enrolling a computer"
        );
    }
    Ok(invitation)
}

/// This computer holds an enrollment the controller still accepts.
#[derive(Debug, thiserror::Error)]
#[error(
    "this computer is already enrolled as {device_name} and the controller still accepts it; \
     to enroll it again, ask IT to revoke it (`portactl devices revoke {device_name}`) \
     or forget it here with `porta leave`"
)]
pub struct StillEnrolled {
    /// The device name it is enrolled as.
    pub device_name: String,
}

/// This computer holds an enrollment its controller could not be asked
/// about (unreachable, or silent).
#[derive(Debug, thiserror::Error)]
#[error(
    "this computer is already enrolled as {device_name}, and the controller could not be asked \
     whether that enrollment still holds"
)]
pub struct CannotAsk {
    /// The device name it is enrolled as.
    pub device_name: String,
    /// Why it could not be asked.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// An enrollment this computer holds that `invitation` would replace.
#[derive(Debug)]
pub struct Existing {
    /// Its device name.
    pub device_name: String,
    /// Why it may be replaced.
    pub why: &'static str,
    /// The invitation is another controller's (another certificate):
    /// enrolling moves this computer to it.
    pub moves: bool,
}

/// Whether enrolling with `invitation` replaces an enrollment: `None` when
/// this computer holds none; an error when it holds one the controller
/// still accepts (IT must revoke it first, or the person leave).
pub async fn existing(dir: &StateDir, invitation: &Invitation) -> Result<Option<Existing>> {
    if !dir.is_enrolled() {
        return Ok(None);
    }
    let previous = dir.load()?;
    let why = replaceable(&previous, invitation).await?;
    Ok(Some(Existing {
        moves: previous.fingerprint != invitation.fingerprint.to_string(),
        device_name: previous.config.device_name,
        why,
    }))
}

/// How long one exchange with a controller may take, connecting included:
/// a controller (or a `porta:` link to one) that accepts the connection and
/// never answers must not hold the caller for longer.
pub const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(15);

/// A controller that did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("the controller at {address} did not answer within {} s; nothing was changed", CONTROLLER_TIMEOUT.as_secs())]
pub struct ControllerSilent {
    /// Its address.
    pub address: String,
}

/// Runs `exchange` with the controller at `address`, at most
/// [`CONTROLLER_TIMEOUT`].
async fn within_timeout<T>(
    address: &str,
    exchange: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(CONTROLLER_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            anyhow::Error::new(ControllerSilent {
                address: address.to_owned(),
            })
        })?
}

/// An enrollment the controller granted, not yet saved on this computer.
pub struct Granted {
    key: PrivateKey,
    state: DeviceState,
}

impl Granted {
    /// The device name it is for.
    pub fn device_name(&self) -> &str {
        &self.state.config.device_name
    }

    /// Saves it in `dir` (the key, then the state), replacing what was there.
    pub fn save(self, dir: &StateDir) -> Result<DeviceState> {
        dir.prepare()?;
        dir.write_key(&self.key)?;
        dir.save(&self.state)?;
        dir.enrollment_answered();
        Ok(self.state)
    }
}

/// Asks the controller of `invitation` to enroll a new key (made here; it
/// never leaves this computer). The key and a random attempt id are kept
/// in `dir` first, so that if the answer is lost, asking again with the
/// same invitation gets the same device; nothing else is saved: see
/// [`Granted::save`].
pub async fn request(dir: &StateDir, invitation: Invitation) -> Result<Granted> {
    dir.prepare()?;
    let token_id = invitation.token.split_once('.').map_or("", |(id, _)| id);
    let (key, attempt) = dir.enrollment_attempt(token_id)?;
    let address = invitation.controller.clone();
    let response = within_timeout(&address, async {
        let channel = connect(&invitation.controller, invitation.fingerprint).await?;
        Ok(pb::enrollment_client::EnrollmentClient::new(channel)
            .enroll(pb::EnrollRequest {
                token: invitation.token.clone(),
                public_key: key.public_key().to_base64(),
                hostname: hostname(),
                os: os_name(),
                attempt: attempt.clone(),
            })
            .await
            .context("the controller refused the enrollment")?
            .into_inner())
    })
    .await?;
    let config = response
        .config
        .context("the controller sent no configuration")?;
    Ok(Granted {
        key,
        state: DeviceState {
            controller: invitation.controller,
            fingerprint: invitation.fingerprint.to_string(),
            credential: response.credential,
            config: config.into(),
        },
    })
}

/// What the controller says `invitation` is for (the person, the device,
/// the expiry), without redeeming it; a refusal (used, expired, unknown,
/// paused) is an error carrying the controller's kind.
pub async fn preview(invitation: &Invitation) -> Result<pb::PreviewInvitationResponse> {
    within_timeout(&invitation.controller, async {
        let channel = connect(&invitation.controller, invitation.fingerprint).await?;
        Ok(pb::enrollment_client::EnrollmentClient::new(channel)
            .preview_invitation(pb::PreviewInvitationRequest {
                token: invitation.token.clone(),
            })
            .await?
            .into_inner())
    })
    .await
}

/// Enrolls with `invitation`: a new key, the controller's answer saved.
pub async fn enroll(dir: &StateDir, invitation: Invitation) -> Result<DeviceState> {
    request(dir, invitation).await?.save(dir)
}

/// Why the saved enrollment `previous` may be replaced by `invitation`'s,
/// or an error when it is still in use with the same controller.
async fn replaceable(previous: &DeviceState, invitation: &Invitation) -> Result<&'static str> {
    if previous.fingerprint != invitation.fingerprint.to_string() {
        return Ok("with another controller");
    }
    match ask(previous).await {
        Verdict::Accepted => Err(StillEnrolled {
            device_name: previous.config.device_name.clone(),
        }
        .into()),
        Verdict::Refused { .. } => Ok("revoked or no longer accepted by the controller"),
        Verdict::Unknown(error) => Err(CannotAsk {
            device_name: previous.config.device_name.clone(),
            source: error.into(),
        }
        .into()),
    }
}

/// What the controller says of the enrollment this computer holds.
#[derive(Debug)]
pub enum Verdict {
    /// It accepts it: the computer may connect.
    Accepted,
    /// It refuses it (the kind, when the controller names it; its words).
    Refused {
        /// Which refusal, if named.
        kind: Option<Refusal>,
        /// The controller's words.
        message: String,
    },
    /// It could not be asked (unreachable, silent, or another failure).
    Unknown(anyhow::Error),
}

/// Asks the controller, with this computer's credential and at most
/// [`CONTROLLER_TIMEOUT`], whether it still accepts this computer.
pub async fn ask(state: &DeviceState) -> Verdict {
    let answer = within_timeout(&state.controller, async {
        let pinned = state
            .fingerprint
            .parse()
            .context("the saved certificate fingerprint is damaged")?;
        let channel = connect(&state.controller, pinned).await?;
        pb::session_client::SessionClient::with_interceptor(
            channel,
            porta_proto::connect::Bearer::new(&state.credential),
        )
        .who_am_i(pb::WhoAmIRequest {})
        .await?;
        anyhow::Ok(())
    })
    .await;
    match answer {
        Ok(()) => Verdict::Accepted,
        Err(error) => match error.downcast_ref::<tonic::Status>() {
            Some(status)
                if matches!(
                    status.code(),
                    tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
                ) =>
            {
                Verdict::Refused {
                    kind: Refusal::of(status),
                    message: status.message().to_owned(),
                }
            }
            _ => Verdict::Unknown(error),
        },
    }
}

pub use crate::platform::{hostname, os_name};
