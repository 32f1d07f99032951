//! Device: an enrolled device watches its own config.

use super::auth::{DEVICE, authorize};
use super::now;
use crate::error::Error;
use crate::state::Controller;
use crate::validate;
use porta_proto::pb::{self, device_server::Device};
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The Device service.
pub struct DeviceApi(pub(super) Controller);

type ConfigStream = Pin<Box<dyn Stream<Item = Result<pb::DeviceConfig, Status>> + Send>>;

#[tonic::async_trait]
impl Device for DeviceApi {
    type WatchConfigStream = ConfigStream;

    #[tracing::instrument(skip_all, fields(peer = ?request.remote_addr()))]
    async fn watch_config(
        &self,
        request: Request<pb::WatchConfigRequest>,
    ) -> Result<Response<Self::WatchConfigStream>, Status> {
        let caller = authorize(&self.0, &request, "watch a device's configuration", DEVICE)?;
        let device_id = caller
            .device_id
            .ok_or_else(|| Error::PermissionDenied("not a device credential".into()))?;
        // Listening before reading, so that no change falls in between.
        let changes = self.0.config_changes();
        // Fail now (not inside the stream) if there is no config to send.
        let first = self.0.device_config(&device_id)?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(stream_config(self.0.clone(), device_id, first, changes, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[tracing::instrument(skip_all, fields(peer = ?request.remote_addr()))]
    async fn report_status(
        &self,
        request: Request<pb::DeviceStatusReport>,
    ) -> Result<Response<pb::ReportStatusResponse>, Status> {
        let caller = authorize(&self.0, &request, "report a device's status", DEVICE)?;
        let device_id = caller
            .device_id
            .ok_or_else(|| Error::PermissionDenied("not a device credential".into()))?;
        let mut report = request.into_inner();
        report.hostname = validate::hostname(&report.hostname)?;
        report.os = validate::text("os", &report.os)?;
        report.client_version = validate::text("client_version", &report.client_version)?;
        self.0.report_status(&device_id, &report, now()).await?;
        Ok(Response::new(pb::ReportStatusResponse {}))
    }
}

/// Sends `first`, then a new config whenever a change alters it, until the
/// device may no longer run one (the stream ends with that status), the
/// client goes away, or the controller shuts down. A change that touched
/// neither this device nor its user (nor anything every config depends
/// on) is not even read: with thousands watching, each change wakes only
/// those it concerns.
async fn stream_config(
    ctl: Controller,
    device_id: String,
    first: pb::DeviceConfig,
    mut changes: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::store::Touched>>,
    tx: mpsc::Sender<Result<pb::DeviceConfig, Status>>,
) {
    let _watching = ctl.metrics().config_watcher();
    let mut shutdown = ctl.shutdown_signal();
    let user = first.user.clone();
    let mut last = without_revision(&first);
    if tx.send(Ok(first)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            changed = changes.recv() => match changed {
                Ok(touched) if !touched.concerns(&device_id, &user) => continue,
                Ok(_) => {}
                // Fell behind: read the config, whatever changed.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                let _ = tx.send(Err(Error::ShuttingDown.into())).await;
                return;
            }
            () = tx.closed() => return,
        }
        match ctl.device_config(&device_id) {
            Ok(config) => {
                let comparable = without_revision(&config);
                if comparable != last {
                    last = comparable;
                    if tx.send(Ok(config)).await.is_err() {
                        return;
                    }
                }
            }
            Err(error) => {
                tracing::info!(device_id, %error, "ending config stream");
                let _ = tx.send(Err(error.into())).await;
                return;
            }
        }
    }
}

fn without_revision(config: &pb::DeviceConfig) -> pb::DeviceConfig {
    pb::DeviceConfig {
        revision: 0,
        ..config.clone()
    }
}
