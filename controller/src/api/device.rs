//! Device: an enrolled device watches its own config.

use super::auth::{DEVICE, authorize};
use super::now;
use crate::error::Error;
use crate::state::Controller;
use crate::validate;
use porta_proto::pb::{self, device_server::Device};
use std::pin::Pin;
use tokio_stream::Stream;
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
        Ok(Response::new(Box::pin(config_stream(
            self.0.clone(),
            device_id,
            first,
            changes,
        ))))
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
        report.os = validate::device_text("os", &report.os)?;
        report.client_version = validate::device_text("client_version", &report.client_version)?;
        self.0.report_status(&device_id, &report, now()).await?;
        Ok(Response::new(pb::ReportStatusResponse {}))
    }
}

/// What a config stream remembers between configs it sends.
struct Watch {
    ctl: Controller,
    device_id: String,
    user: String,
    /// The config to send first, until it is sent.
    first: Option<pb::DeviceConfig>,
    /// The last config sent, its revision cleared.
    last: pb::DeviceConfig,
    changes: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::store::Touched>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// Set once the stream has sent its final status.
    ended: bool,
    _watching: crate::metrics::WatcherGuard,
}

/// Sends `first`, then a new config whenever a change alters it, until the
/// device may no longer run one (the stream ends with that status), the
/// client goes away (tonic drops the stream), or the controller shuts
/// down. A change that touched neither this device nor its user (nor
/// anything every config depends on) is not even read: with thousands
/// watching, each change wakes only those it concerns.
///
/// The stream is the response body itself, polled by the connection: no
/// task or channel per watcher (a city has thousands watching, and a
/// channel's first block alone is 32 configs).
fn config_stream(
    ctl: Controller,
    device_id: String,
    first: pb::DeviceConfig,
    changes: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::store::Touched>>,
) -> impl Stream<Item = Result<pb::DeviceConfig, Status>> + Send + use<> {
    let watch = Watch {
        _watching: ctl.metrics().config_watcher(),
        shutdown: ctl.shutdown_signal(),
        user: first.user.clone(),
        last: without_revision(&first),
        first: Some(first),
        ctl,
        device_id,
        changes,
        ended: false,
    };
    futures::stream::unfold(watch, |mut watch| async move {
        if watch.ended {
            return None;
        }
        if let Some(first) = watch.first.take() {
            return Some((Ok(stamped(first)), watch));
        }
        let item = watch.next_change().await?.map(stamped);
        watch.ended = item.is_err();
        Some((item, watch))
    })
}

impl Watch {
    /// The next config that differs from the last one sent, or the status
    /// that ends the stream; `None` when the controller's changes end.
    async fn next_change(&mut self) -> Option<Result<pb::DeviceConfig, Status>> {
        loop {
            tokio::select! {
                changed = self.changes.recv() => match changed {
                    Ok(touched) if !touched.concerns(&self.device_id, &self.user) => continue,
                    Ok(_) => {}
                    // Fell behind: read the config, whatever changed.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
                () = async { let _ = self.shutdown.wait_for(|stop| *stop).await; } => {
                    return Some(Err(Error::ShuttingDown.into()));
                }
            }
            match self.ctl.device_config(&self.device_id) {
                Ok(config) => {
                    let comparable = without_revision(&config);
                    if comparable != self.last {
                        self.last = comparable;
                        return Some(Ok(config));
                    }
                }
                Err(error) => {
                    tracing::info!(device_id = self.device_id, %error, "ending config stream");
                    return Some(Err(error.into()));
                }
            }
        }
    }
}

fn without_revision(config: &pb::DeviceConfig) -> pb::DeviceConfig {
    pb::DeviceConfig {
        revision: 0,
        controller_time: 0,
        ..config.clone()
    }
}

/// `config` with the controller's clock as it is sent.
fn stamped(config: pb::DeviceConfig) -> pb::DeviceConfig {
    pb::DeviceConfig {
        controller_time: now(),
        ..config
    }
}
