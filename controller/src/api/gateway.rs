//! Gateway: the contract's shape is here; remote gateways arrive with the
//! data-plane work. Role checks already apply.

use super::auth::{GATEWAY, authorize};
use crate::error::Error;
use crate::state::Controller;
use porta_proto::pb::{self, gateway_server::Gateway};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The Gateway service.
pub struct GatewayApi(pub(super) Controller);

const NOT_YET: &str = "remote gateways are not supported by this version of Porta yet";

#[tonic::async_trait]
impl Gateway for GatewayApi {
    type WatchPeersStream = Pin<Box<dyn Stream<Item = Result<pb::PeerUpdate, Status>> + Send>>;

    async fn watch_peers(
        &self,
        request: Request<pb::WatchPeersRequest>,
    ) -> Result<Response<Self::WatchPeersStream>, Status> {
        authorize(&self.0, &request, "WatchPeers", GATEWAY)?;
        Err(Error::Unimplemented(NOT_YET).into())
    }

    async fn report_events(
        &self,
        request: Request<pb::ReportEventsRequest>,
    ) -> Result<Response<pb::ReportEventsResponse>, Status> {
        authorize(&self.0, &request, "ReportEvents", GATEWAY)?;
        Err(Error::Unimplemented(NOT_YET).into())
    }

    async fn ack_revision(
        &self,
        request: Request<pb::AckRevisionRequest>,
    ) -> Result<Response<pb::AckRevisionResponse>, Status> {
        authorize(&self.0, &request, "AckRevision", GATEWAY)?;
        Err(Error::Unimplemented(NOT_YET).into())
    }
}
