//! Who is calling, and may they? Every handler's first line.

use crate::error::{Error, Result};
use crate::state::{Caller, Controller};
use crate::store::records::Role;
use porta_proto::AUTHORIZATION_HEADER;
use tonic::Request;

/// Roles that may call an RPC.
pub(crate) const ADMIN: &[Role] = &[Role::Admin];
/// Reads: auditors and admins (the logs, and devices to look them up).
pub(crate) const AUDIT: &[Role] = &[Role::Admin, Role::Auditor];
/// Enrolled devices.
pub(crate) const DEVICE: &[Role] = &[Role::Device];
/// Gateways.
pub(crate) const GATEWAY: &[Role] = &[Role::Gateway];
/// Any valid credential.
pub(crate) const ANY: &[Role] = &[Role::Admin, Role::Auditor, Role::Device, Role::Gateway];

/// The caller's ip:port, for the admin log ("" if unknown).
pub(crate) fn address_of<M>(request: &Request<M>) -> String {
    request
        .remote_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// Authenticates the request's bearer credential and checks that its role
/// is one of `allowed` for `action` (what the call does, in words for the
/// refusal: "revoke devices").
pub(crate) fn authorize<M>(
    ctl: &Controller,
    request: &Request<M>,
    action: &str,
    allowed: &[Role],
) -> Result<Caller> {
    let header = request
        .metadata()
        .get(AUTHORIZATION_HEADER)
        .ok_or_else(|| {
            Error::Unauthenticated("no credential was sent; log in first (`portactl login`)".into())
        })?;
    let value = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Error::Unauthenticated("the authorization header must be `Bearer <credential>`".into())
        })?;
    let mut caller = ctl.authenticate(value)?;
    caller.address = address_of(request);
    if !allowed.contains(&caller.role) {
        tracing::warn!(caller = %caller.name, role = caller.role.as_str(), action, "permission denied");
        return Err(Error::PermissionDenied(format!(
            "{}s cannot {action}",
            caller.role.as_str()
        )));
    }
    Ok(caller)
}
