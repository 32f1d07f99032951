//! Gateway: remote gateways register their key, follow the peer journal,
//! acknowledge what they applied and report connection events. Each call is answered for the
//! caller's own gateway only.
//!
//! A gateway's claim ("I applied revision R, marked M") is judged against
//! the store's own marks ([`history::judge`]): a claim of another history
//! (the store was restored after the gateway applied later changes) is
//! neither taken as a confirmation nor answered with changes on top of
//! the wrong set. The stream is refused, the gateway recorded as not
//! following, until an admin resyncs it; then it gets a snapshot that
//! replaces its set.

use super::auth::{GATEWAY, authorize};
use super::now;
use crate::error::Error;
use crate::fanout::history::{self, Claim};
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
        let claim = request.into_inner();
        let after = claim.after_revision;
        let mark = self.0.store().revision_mark(after)?;
        let judged = history::judge(after, claim.after_history, self.0.revision(), mark);
        tracing::info!(gateway = %gateway.name, after, claim = ?judged, "gateway connected");
        // Connected, confirming only what its claim proves (0: nothing).
        let (from, replaces_history) = match judged {
            Claim::New => (0, false),
            Claim::Same | Claim::Unmarked => {
                self.0.gateway_follows(&gateway, now()).await?;
                (after, false)
            }
            // The admin decided: a snapshot that replaces what it holds.
            Claim::Diverged if gateway.resync => (0, true),
            Claim::Diverged => {
                let divergence = self.0.gateway_diverged(&gateway, after, now()).await?;
                return Err(Error::FailedPrecondition(format!(
                    "this gateway is not following the controller: {}",
                    divergence.describe()
                ))
                .into());
            }
        };
        self.0.fanout().applied(&gateway.name, from, now());
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(stream_peers(
            self.0.clone(),
            caller,
            gateway.name,
            (from, replaces_history),
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
        self.0
            .metrics()
            .clock_corrected(&gateway.name, report.clock_corrected);
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
        let pb::AckRevisionRequest { revision, history } = request.into_inner();
        let mark = self.0.store().revision_mark(revision)?;
        if history::judge(revision, history, self.0.revision(), mark) == Claim::Diverged {
            tracing::warn!(gateway = %gateway.name, revision, "a gateway acknowledged a revision of another history; not counted");
            return Err(Error::FailedPrecondition(
                "this revision is not one of this controller's history".into(),
            )
            .into());
        }
        tracing::debug!(gateway = %gateway.name, revision, "gateway applied");
        self.0.gateway_follows(&gateway, now()).await?;
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

/// Sends the gateway what it lacks after `after` (a snapshot from 0, one
/// that replaces its own history if `replaces_history`), then each later
/// change, every message with its revision's history mark, until it goes
/// away or the controller shuts down.
async fn stream_peers(
    ctl: Controller,
    caller: crate::state::Caller,
    gateway: String,
    (mut after, mut replaces_history): (u64, bool),
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
        let mark = match ctl.store().revision_mark(target) {
            Ok(mark) => mark.unwrap_or(0),
            Err(error) => {
                let _ = tx.send(Err(error.into())).await;
                break;
            }
        };
        for update in updates {
            let mut message = update.to_pb(target);
            message.history = mark;
            message.replaces_history = replaces_history;
            if tx.send(Ok(message)).await.is_err() {
                break 'stream;
            }
        }
        replaces_history = false;
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
