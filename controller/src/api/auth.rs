//! Who is calling, and may they? Every handler's first line.

use crate::error::{Error, Result};
use crate::guard::{Failure, Ledger, Verdict};
use crate::state::{Caller, Controller};
use crate::store::records::Role;
use porta_proto::AUTHORIZATION_HEADER;
use std::net::SocketAddr;
use std::time::Instant;
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

/// Refuses a call from a throttled source before anything it sent is
/// looked at (see [`crate::guard`]).
pub(crate) fn admit(ctl: &Controller, source: Option<SocketAddr>) -> Result<()> {
    let Some(source) = source else {
        return Ok(());
    };
    match ctl.auth_failures().check(source.ip(), Instant::now()) {
        Verdict::Allowed => Ok(()),
        Verdict::Throttled { retry_after } => Err(Error::Throttled {
            source_address: source.ip(),
            retry_after,
        }),
    }
}

/// Passes `outcome` through; a refused secret (wrong, unknown, revoked)
/// counts as a failure of `source`, logged in one stable line that names
/// the source and the secret's id (never the secret):
/// `authentication failed from <ip>`. `what` says which kind of secret.
pub(crate) fn note_outcome<T>(
    ctl: &Controller,
    source: Option<SocketAddr>,
    presented: &str,
    what: &'static str,
    outcome: Result<T>,
) -> Result<T> {
    if let (Some(reason), Some(source)) = (
        outcome.as_ref().err().and_then(Error::refused_secret),
        source,
    ) {
        let ip = source.ip();
        let id = crate::secret::parse(presented).map(|s| s.id).unwrap_or("-");
        let failure = ctl.auth_failures().fail(ip, Instant::now());
        ctl.metrics().auth_failed(what);
        tracing::warn!(source = %ip, id, what, %reason, "authentication failed from {ip}");
        if failure == Failure::Throttle {
            tracing::warn!(
                source = %ip,
                seconds = Ledger::BLOCK.as_secs(),
                "authentication failed from {ip} more than {} times in {} s; refusing it for {} s",
                Ledger::LIMIT,
                Ledger::WINDOW.as_secs(),
                Ledger::BLOCK.as_secs()
            );
        }
    }
    outcome
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
    let source = request.remote_addr();
    admit(ctl, source)?;
    let mut caller = note_outcome(ctl, source, value, "credential", ctl.authenticate(value))?;
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
