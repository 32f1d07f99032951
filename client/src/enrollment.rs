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
use porta_proto::{Invitation, pb::InvitationKind};
use porta_tunnel::keys::PrivateKey;

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

/// An enrollment this computer holds that `invitation` would replace.
#[derive(Debug)]
pub struct Existing {
    /// Its device name.
    pub device_name: String,
    /// Why it may be replaced.
    pub why: &'static str,
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
        device_name: previous.config.device_name,
        why,
    }))
}

/// Enrolls with `invitation`: a new key, the controller's answer saved.
pub async fn enroll(dir: &StateDir, invitation: Invitation) -> Result<DeviceState> {
    dir.prepare()?;
    // The private key is made here and never leaves this computer.
    let key = PrivateKey::generate();
    let channel = connect(&invitation.controller, invitation.fingerprint).await?;
    let response = pb::enrollment_client::EnrollmentClient::new(channel)
        .enroll(pb::EnrollRequest {
            token: invitation.token,
            public_key: key.public_key().to_base64(),
            hostname: hostname(),
            os: os_name(),
        })
        .await
        .context("the controller refused the enrollment")?
        .into_inner();
    let config = response
        .config
        .context("the controller sent no configuration")?;
    dir.write_key(&key)?;
    let state = DeviceState {
        controller: invitation.controller,
        fingerprint: invitation.fingerprint.to_string(),
        credential: response.credential,
        config: config.into(),
    };
    dir.save(&state)?;
    Ok(state)
}

/// Why the saved enrollment `previous` may be replaced by `invitation`'s,
/// or an error when it is still in use with the same controller.
async fn replaceable(previous: &DeviceState, invitation: &Invitation) -> Result<&'static str> {
    if previous.fingerprint != invitation.fingerprint.to_string() {
        return Ok("with another controller");
    }
    let still_valid = async {
        let channel = connect(&previous.controller, invitation.fingerprint).await?;
        pb::session_client::SessionClient::with_interceptor(
            channel,
            porta_proto::connect::Bearer::new(&previous.credential),
        )
        .who_am_i(pb::WhoAmIRequest {})
        .await?;
        anyhow::Ok(())
    };
    match still_valid.await {
        Ok(()) => Err(StillEnrolled {
            device_name: previous.config.device_name.clone(),
        }
        .into()),
        Err(error) => match error
            .downcast_ref::<tonic::Status>()
            .map(tonic::Status::code)
        {
            Some(tonic::Code::PermissionDenied | tonic::Code::Unauthenticated) => {
                Ok("revoked or no longer accepted by the controller")
            }
            _ => Err(error.context(format!(
                "this computer is already enrolled as {}, and the controller could not be asked \
                 whether that enrollment still holds",
                previous.config.device_name
            ))),
        },
    }
}

pub use crate::platform::{hostname, os_name};
