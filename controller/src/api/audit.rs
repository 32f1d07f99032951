//! Audit: the contract's shape is here; the logs themselves arrive with the
//! connection-log work. Role checks already apply, so the auditor role is
//! enforced from day one.

use super::auth::{AUDIT, authorize};
use crate::error::Error;
use crate::state::Controller;
use porta_proto::pb::{self, audit_server::Audit};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The Audit service.
pub struct AuditApi(pub(super) Controller);

const NOT_YET: &str =
    "connection and admin-action logs are not recorded by this version of Porta yet";

type Rows<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Audit for AuditApi {
    type ExportConnectionsStream = Rows<pb::ConnectionRecord>;
    type ExportAdminActionsStream = Rows<pb::AdminActionRecord>;

    async fn export_connections(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportConnectionsStream>, Status> {
        authorize(&self.0, &request, "ExportConnections", AUDIT)?;
        Err(Error::Unimplemented(NOT_YET).into())
    }

    async fn export_admin_actions(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportAdminActionsStream>, Status> {
        authorize(&self.0, &request, "ExportAdminActions", AUDIT)?;
        Err(Error::Unimplemented(NOT_YET).into())
    }

    async fn verify_log(
        &self,
        request: Request<pb::VerifyLogRequest>,
    ) -> Result<Response<pb::VerifyLogResponse>, Status> {
        authorize(&self.0, &request, "VerifyLog", AUDIT)?;
        Err(Error::Unimplemented(NOT_YET).into())
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        authorize(&self.0, &request, "ListSessions", AUDIT)?;
        Err(Error::Unimplemented(NOT_YET).into())
    }
}
