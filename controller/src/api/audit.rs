//! Audit: export, verify and "who is connected now", for auditors and
//! admins. Exports stream straight from the store (a blocking reader feeds
//! a bounded channel), so memory stays flat however long the log is.

use super::auth::{AUDIT, authorize};
use super::now;
use crate::error::Error;
use crate::logs::{self, Filter};
use crate::state::Controller;
use porta_proto::audit::Log;
use porta_proto::pb::{self, audit_server::Audit};
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The Audit service.
pub struct AuditApi(pub(super) Controller);

type Rows<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Records per message. One message per record costs more than the
/// record (a channel send, a frame, a wake-up on each side); pages of this
/// size keep an export at the speed of reading the store.
const PAGE: usize = 1_024;

/// Pages in flight between the store reader and the network.
const PAGES_IN_FLIGHT: usize = 4;

fn filter_of(r: pb::ExportRequest) -> Result<Filter, Error> {
    if r.to != 0 && r.to < r.from {
        return Err(Error::invalid("`to` is before `from`"));
    }
    let optional = |s: String| Some(s).filter(|s| !s.is_empty());
    Ok(Filter {
        from: r.from,
        to: r.to,
        user: optional(r.user),
        device: optional(r.device),
    })
}

/// Streams `rows` (read on a blocking thread) as a response, [`PAGE`]
/// records per message made by `page`. A record that cannot be read ends
/// the stream with its error, after the page of records before it.
fn stream<T: Send + 'static, P: Send + 'static>(
    rows: impl Iterator<Item = crate::error::Result<T>> + Send + 'static,
    page: fn(Vec<T>) -> P,
) -> Rows<P> {
    let (tx, rx) = mpsc::channel(PAGES_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut records = Vec::with_capacity(PAGE);
        for row in rows {
            match row {
                Ok(record) => {
                    records.push(record);
                    if records.len() == PAGE {
                        let full = std::mem::replace(&mut records, Vec::with_capacity(PAGE));
                        if tx.blocking_send(Ok(page(full))).is_err() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    if !records.is_empty() && tx.blocking_send(Ok(page(records))).is_err() {
                        return;
                    }
                    let _ = tx.blocking_send(Err(Status::from(error)));
                    return;
                }
            }
        }
        if !records.is_empty() {
            let _ = tx.blocking_send(Ok(page(records)));
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

#[tonic::async_trait]
impl Audit for AuditApi {
    type ExportConnectionsStream = Rows<pb::ConnectionRecords>;
    type ExportAdminActionsStream = Rows<pb::AdminActionRecords>;

    async fn export_connections(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportConnectionsStream>, Status> {
        let caller = authorize(&self.0, &request, "export the connection log", AUDIT)?;
        let filter = filter_of(request.into_inner())?;
        tracing::info!(by = %caller.name, ?filter, "exporting connections");
        let rows = logs::connections(self.0.store(), filter).map(|e| e.map(|e| e.into_pb()));
        Ok(Response::new(stream(rows, |records| {
            pb::ConnectionRecords { records }
        })))
    }

    async fn export_admin_actions(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportAdminActionsStream>, Status> {
        let caller = authorize(&self.0, &request, "export the admin log", AUDIT)?;
        let filter = filter_of(request.into_inner())?;
        tracing::info!(by = %caller.name, ?filter, "exporting admin actions");
        let rows = logs::admin_actions(self.0.store(), filter).map(|e| e.map(|e| e.into_pb()));
        Ok(Response::new(stream(rows, |records| {
            pb::AdminActionRecords { records }
        })))
    }

    async fn verify_log(
        &self,
        request: Request<pb::VerifyLogRequest>,
    ) -> Result<Response<pb::VerifyLogResponse>, Status> {
        authorize(&self.0, &request, "verify the logs", AUDIT)?;
        let log = match pb::LogKind::try_from(request.into_inner().kind) {
            Ok(pb::LogKind::Connections) => Log::Connections,
            Ok(pb::LogKind::Admin) => Log::Admin,
            _ => return Err(Error::invalid("kind must be connections or admin").into()),
        };
        let store = self.0.store().clone();
        let verification = tokio::task::spawn_blocking(move || logs::verify(&store, log))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let (first, last) = verification.range.unwrap_or_default();
        Ok(Response::new(pb::VerifyLogResponse {
            ok: verification.problem.is_none(),
            records: verification.records,
            first_bad_sequence: verification
                .problem
                .as_ref()
                .map(|p| p.sequence())
                .unwrap_or(0),
            problem: verification
                .problem
                .map(|p| p.to_string())
                .unwrap_or_default(),
            last_hash: verification.last_hash,
            first_sequence: first,
            last_sequence: last,
        }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        authorize(&self.0, &request, "list sessions", AUDIT)?;
        let sessions = self
            .0
            .live_sessions(now())?
            .into_iter()
            .map(|s| pb::ConnectedSession {
                user: s.user,
                device: s.device,
                tunnel_address: s.tunnel_address,
                public_address: s.public_address,
                gateway: s.gateway,
                since: s.since,
            })
            .collect();
        Ok(Response::new(pb::ListSessionsResponse { sessions }))
    }

    async fn get_feed_status(
        &self,
        request: Request<pb::GetFeedStatusRequest>,
    ) -> Result<Response<pb::FeedStatus>, Status> {
        authorize(&self.0, &request, "see the SIEM feed's status", AUDIT)?;
        let status = match self.0.feed() {
            Some(feed) => feed.status(&self.0)?,
            None => pb::FeedStatus::default(),
        };
        Ok(Response::new(status))
    }
}
