//! Session: any valid credential may ask who it is.

use super::auth::{ANY, authorize};
use crate::state::Controller;
use porta_proto::pb::{self, session_server::Session};
use tonic::{Request, Response, Status};

/// The Session service.
pub struct SessionApi(pub(super) Controller);

#[tonic::async_trait]
impl Session for SessionApi {
    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = authorize(&self.0, &request, "ask who they are", ANY)?;
        Ok(Response::new(pb::WhoAmIResponse {
            name: caller.name,
            role: pb::Role::from(caller.role) as i32,
            credential_id: caller.credential_id,
            controller: self.0.settings().api_endpoint.clone(),
        }))
    }
}
