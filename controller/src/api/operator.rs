//! Operator: the person running the controller, on its host, over the
//! Unix socket in the data directory ([`crate::operator`]). Authorised by
//! the caller's uid (SO_PEERCRED), not by a credential: that is how the
//! host's owner of the data directory recovers admin access.

use super::now;
use crate::error::Error;
use crate::logs::Actor;
use crate::state::Controller;
use crate::store::records::Role;
use crate::validate;
use porta_proto::pb::{self, operator_server::Operator};
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

/// The Operator service, for callers running as `owner` or root.
pub struct OperatorApi {
    pub(crate) ctl: Controller,
    /// The uid the controller runs as.
    pub(crate) owner: u32,
}

#[tonic::async_trait]
impl Operator for OperatorApi {
    async fn invite_admin(
        &self,
        request: Request<pb::InviteAdminRequest>,
    ) -> Result<Response<pb::InviteAdminResponse>, Status> {
        let uid = request
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|info| info.peer_cred)
            .map(|cred| cred.uid());
        if !matches!(uid, Some(uid) if uid == 0 || uid == self.owner) {
            return Err(Error::PermissionDenied(
                "only root or the user the controller runs as may invite an admin here".into(),
            )
            .into());
        }
        let request = request.into_inner();
        let name = validate::name("name", &request.name)?;
        Ok(Response::new(
            invite_admin(&self.ctl, &name, request.ttl_seconds, now()).await?,
        ))
    }
}

/// Creates an admin credential and its invitation on behalf of the local
/// operator (over the socket, or directly on the store when no `serve`
/// runs).
pub async fn invite_admin(
    ctl: &Controller,
    name: &str,
    ttl_seconds: u64,
    now: u64,
) -> Result<pb::InviteAdminResponse, Error> {
    let (_, invitation) = ctl
        .create_api_credential(
            &Actor::system(LOCAL_OPERATOR),
            name,
            Role::Admin,
            ttl_seconds,
            now,
        )
        .await?;
    Ok(pb::InviteAdminResponse {
        invitation,
        expires_at: ctl.invitation_expiry(now, ttl_seconds),
    })
}

/// The actor recorded in the admin log for the local operator.
pub const LOCAL_OPERATOR: &str = "local operator";
