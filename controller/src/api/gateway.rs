//! Gateway: remote gateways register their key, follow the peer journal,
//! acknowledge what they applied and report connection events. Each call is answered for the
//! caller's own gateway only.

use super::auth::{GATEWAY, authorize};
use super::now;
use crate::error::Error;
use crate::logs;
use crate::state::Controller;
use porta_gateway::event::GatewayEvent;
use porta_gateway::peer::Update;
use porta_proto::PublicKey;
use porta_proto::pb::{self, gateway_server::Gateway};
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The Gateway service.
pub struct GatewayApi(pub(super) Controller);

/// Events one `ReportEvents` call may carry.
const MAX_EVENTS_PER_REPORT: usize = 1_000;

type PeerStream = Pin<Box<dyn Stream<Item = Result<pb::PeerUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl Gateway for GatewayApi {
    type WatchPeersStream = PeerStream;

    #[tracing::instrument(skip_all, fields(peer = ?request.remote_addr()))]
    async fn watch_peers(
        &self,
        request: Request<pb::WatchPeersRequest>,
    ) -> Result<Response<Self::WatchPeersStream>, Status> {
        let caller = authorize(&self.0, &request, "watch the peer set", GATEWAY)?;
        let gateway = self.0.gateway_of(&caller)?;
        if gateway.public_key.is_none() {
            return Err(Error::FailedPrecondition(
                "this gateway has not registered its key yet (call Register first)".into(),
            )
            .into());
        }
        let after = request.into_inner().after_revision;
        tracing::info!(gateway = %gateway.name, after, "gateway connected");
        self.0.fanout().applied(&gateway.name, after, now());
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(stream_peers(
            self.0.clone(),
            caller,
            gateway.name,
            after,
            tx,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn report_events(
        &self,
        request: Request<pb::ReportEventsRequest>,
    ) -> Result<Response<pb::ReportEventsResponse>, Status> {
        let caller = authorize(&self.0, &request, "report connection events", GATEWAY)?;
        let gateway = self.0.gateway_of(&caller)?;
        let events = request
            .into_inner()
            .events
            .into_iter()
            .map(|event| GatewayEvent::try_from(event).map_err(Error::from))
            .collect::<Result<Vec<_>, _>>()?;
        if events.len() > MAX_EVENTS_PER_REPORT {
            return Err(Error::invalid(format!(
                "at most {MAX_EVENTS_PER_REPORT} events per report"
            ))
            .into());
        }
        let report = logs::record_events(self.0.store(), &gateway, &events, now()).await?;
        tracing::debug!(gateway = %gateway.name, sent = events.len(), accepted = report.accepted, refused = report.refused.len(), "connection events");
        Ok(Response::new(pb::ReportEventsResponse {
            accepted: report.accepted,
            refused: report
                .refused
                .into_iter()
                .map(|(event_id, reason)| pb::RefusedEvent { event_id, reason })
                .collect(),
        }))
    }

    async fn ack_revision(
        &self,
        request: Request<pb::AckRevisionRequest>,
    ) -> Result<Response<pb::AckRevisionResponse>, Status> {
        let caller = authorize(&self.0, &request, "acknowledge peer revisions", GATEWAY)?;
        let gateway = self.0.gateway_of(&caller)?;
        let revision = request.into_inner().revision;
        tracing::debug!(gateway = %gateway.name, revision, "gateway applied");
        self.0.fanout().applied(&gateway.name, revision, now());
        Ok(Response::new(pb::AckRevisionResponse {}))
    }

    async fn register(
        &self,
        request: Request<pb::RegisterGatewayRequest>,
    ) -> Result<Response<pb::RegisterGatewayResponse>, Status> {
        let caller = authorize(&self.0, &request, "register gateways", GATEWAY)?;
        let public_key: PublicKey = request
            .into_inner()
            .public_key
            .parse()
            .map_err(|e| Error::invalid(format!("public_key: {e}")))?;
        let gateway = self.0.register_gateway(&caller, public_key, now()).await?;
        let settings = self.0.settings();
        let listen_port = gateway
            .endpoint
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(51820);
        Ok(Response::new(pb::RegisterGatewayResponse {
            name: gateway.name,
            addresses: settings
                .gateway_addresses()
                .iter()
                .map(ToString::to_string)
                .collect(),
            mtu: u32::from(settings.mtu),
            listen_port,
        }))
    }
}

/// Sends the gateway what it lacks after `after`, then each later change,
/// until it goes away or the controller shuts down.
async fn stream_peers(
    ctl: Controller,
    caller: crate::state::Caller,
    gateway: String,
    mut after: u64,
    tx: mpsc::Sender<Result<pb::PeerUpdate, Status>>,
) {
    let mut revisions = ctl.fanout().revisions();
    let mut shutdown = ctl.shutdown_signal();
    'stream: loop {
        revisions.mark_unchanged();
        // Removed (its credential revoked) since the stream began: end it.
        if let Err(error) = ctl
            .gateway_of(&caller)
            .and_then(|_| ctl.credential_live(&caller))
        {
            let _ = tx.send(Err(error.into())).await;
            break;
        }
        let updates = ctl.fanout().updates(&gateway, after);
        let target = match updates.last() {
            Some(Update::End(revision)) => *revision,
            _ => after,
        };
        for update in updates {
            if tx.send(Ok(update.to_pb(target))).await.is_err() {
                break 'stream;
            }
        }
        after = target;
        tokio::select! {
            changed = revisions.changed() => if changed.is_err() { break },
            () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                let _ = tx.send(Err(Error::ShuttingDown.into())).await;
                break;
            }
            () = tx.closed() => break,
        }
    }
    tracing::info!(gateway, "gateway disconnected");
    ctl.fanout().disconnected(&gateway, now());
}
