//! Audit: export, verify and "who is connected now", for auditors and
//! admins.
//!
//! Exports stream straight from the store, a page at a time, so memory
//! stays flat however long the log is. A reader must never slow the
//! writers (an auditor's stalled export must not delay a revocation):
//! * each page is read by a short blocking task that ends with the page —
//!   no thread waits for a slow reader — and a producer task hands pages
//!   to the response through a channel of [`PAGES_IN_FLIGHT`];
//! * a reader that takes no page for [`STALL_LIMIT`] is dropped: its
//!   export ends with `DeadlineExceeded`, never as if complete;
//! * exports at once are bounded per credential ([`EXPORTS_PER_CREDENTIAL`])
//!   and in all ([`EXPORTS_AT_ONCE`]); more are refused with
//!   `ResourceExhausted` until one ends.

use super::auth::{AUDIT, authorize};
use super::now;
use crate::caller::Caller;
use crate::error::Error;
use crate::logs::{self, Filter};
use crate::state::Controller;
use porta_proto::audit::Log;
use porta_proto::pb::{self, audit_server::Audit};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The Audit service.
pub struct AuditApi(pub(super) Controller, pub(super) ExportSlots);

type Rows<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Records per message. One message per record costs more than the
/// record (a channel send, a frame, a wake-up on each side); pages of this
/// size keep an export at the speed of reading the store.
const PAGE: usize = 1_024;

/// Pages in flight between the store reader and the network.
const PAGES_IN_FLIGHT: usize = 4;

/// A reader that takes no page for this long is dropped.
pub(super) const STALL_LIMIT: Duration = Duration::from_secs(20);

/// Exports one credential may run at once.
pub(super) const EXPORTS_PER_CREDENTIAL: usize = 4;

/// Exports all callers together may run at once.
pub(super) const EXPORTS_AT_ONCE: usize = 16;

/// The exports running now, by credential.
#[derive(Clone, Default)]
pub(super) struct ExportSlots(Arc<Mutex<HashMap<String, usize>>>);

/// One running export's place; given back when dropped.
struct ExportSlot {
    slots: ExportSlots,
    credential: String,
}

impl ExportSlots {
    fn take(&self, caller: &Caller) -> Result<ExportSlot, Status> {
        let mut running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let total: usize = running.values().sum();
        let mine = running.get(&caller.credential_id).copied().unwrap_or(0);
        if mine >= EXPORTS_PER_CREDENTIAL {
            return Err(Status::resource_exhausted(format!(
                "{} already runs {EXPORTS_PER_CREDENTIAL} exports, the most one credential may \
                 run at once; try again when one has finished",
                caller.name
            )));
        }
        if total >= EXPORTS_AT_ONCE {
            return Err(Status::resource_exhausted(format!(
                "the controller already runs {EXPORTS_AT_ONCE} exports, the most it runs at \
                 once; try again in a minute"
            )));
        }
        *running.entry(caller.credential_id.clone()).or_default() += 1;
        Ok(ExportSlot {
            slots: self.clone(),
            credential: caller.credential_id.clone(),
        })
    }
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut running = self.slots.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = running.get_mut(&self.credential) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.credential);
            }
        }
    }
}

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

/// The next page of `rows` (read on a blocking thread that ends with it),
/// with `rows` back for the page after; an empty page at the end. An
/// unreadable record ends the page with its error.
async fn read_page<T, I>(mut rows: I) -> Result<(I, Vec<T>, Option<Status>), Status>
where
    T: Send + 'static,
    I: Iterator<Item = crate::error::Result<T>> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut records = Vec::with_capacity(PAGE);
        let mut failure = None;
        for row in rows.by_ref() {
            match row {
                Ok(record) => {
                    records.push(record);
                    if records.len() == PAGE {
                        break;
                    }
                }
                Err(error) => {
                    failure = Some(Status::from(error));
                    break;
                }
            }
        }
        (rows, records, failure)
    })
    .await
    .map_err(|e| Status::from(Error::Task(e.to_string())))
}

/// Streams `rows` as a response, [`PAGE`] records per message made by
/// `page`, holding `slot` until the export ends. A record that cannot be
/// read ends the stream with its error, after the page of records before
/// it; a reader that stalls ends it with `DeadlineExceeded`.
fn stream<T, P, I>(rows: I, page: fn(Vec<T>) -> P, slot: ExportSlot) -> Rows<P>
where
    T: Send + 'static,
    P: Send + 'static,
    I: Iterator<Item = crate::error::Result<T>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(PAGES_IN_FLIGHT);
    let (stalled_tx, stalled) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _slot = slot;
        let mut rows = rows;
        loop {
            let (rest, records, failure) = match read_page(rows).await {
                Ok(read) => read,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            };
            rows = rest;
            let last = records.len() < PAGE || failure.is_some();
            if !records.is_empty() {
                match tx.send_timeout(Ok(page(records)), STALL_LIMIT).await {
                    Ok(()) => {}
                    Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                        tracing::warn!(limit = ?STALL_LIMIT, "an export's reader took nothing for too long; it was ended");
                        let _ = stalled_tx.send(());
                        return;
                    }
                    Err(mpsc::error::SendTimeoutError::Closed(_)) => return,
                }
            }
            if let Some(status) = failure {
                let _ = tx.send(Err(status)).await;
                return;
            }
            if last {
                return;
            }
        }
    });
    // After the pages: an error if the export was ended for stalling, so
    // that a truncated export never looks complete.
    let ending = futures::stream::once(async move {
        stalled.await.ok().map(|()| {
            Err(Status::deadline_exceeded(format!(
                "the export was ended: its reader took no data for {} s",
                STALL_LIMIT.as_secs()
            )))
        })
    });
    use futures::StreamExt as _;
    Box::pin(ReceiverStream::new(rx).chain(ending.filter_map(|item| async move { item })))
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
        let slot = self.1.take(&caller)?;
        tracing::info!(by = %caller.name, ?filter, "exporting connections");
        let rows = logs::connections(self.0.store(), filter).map(|e| e.map(|e| e.into_pb()));
        Ok(Response::new(stream(
            rows,
            |records| pb::ConnectionRecords { records },
            slot,
        )))
    }

    async fn export_admin_actions(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportAdminActionsStream>, Status> {
        let caller = authorize(&self.0, &request, "export the admin log", AUDIT)?;
        let filter = filter_of(request.into_inner())?;
        let slot = self.1.take(&caller)?;
        tracing::info!(by = %caller.name, ?filter, "exporting admin actions");
        let rows = logs::admin_actions(self.0.store(), filter).map(|e| e.map(|e| e.into_pb()));
        Ok(Response::new(stream(
            rows,
            |records| pb::AdminActionRecords { records },
            slot,
        )))
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
        // Chains that verify prove nothing about a store that went back
        // whole: without its witness that cannot be told, and is said.
        let problem = verification
            .problem
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| self.0.store().witness_missing());
        Ok(Response::new(pb::VerifyLogResponse {
            ok: problem.is_none(),
            records: verification.records,
            first_bad_sequence: verification
                .problem
                .as_ref()
                .map(|p| p.sequence())
                .unwrap_or(0),
            problem: problem.unwrap_or_default(),
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
