//! `porta daemon`: the tunnel service. It runs as root (porta.service) or
//! LocalSystem (the Windows service "Porta") and owns everything
//! privileged — the private key, the TUN device, routes, DNS, the
//! controller watch and the WireGuard control socket — while the `porta`
//! CLI and `porta-desktop` drive it, unprivileged, through the
//! `porta.local.v1` API.
//!
//! * [`service`]: the API itself, over one [`crate::connection::Connection`].
//! * [`settings`]: what it remembers across restarts.
//! * `unix` and [`peer`]: the API on a Unix socket, `root:porta` 0660 in
//!   `/run/porta`, each call checked again against the caller's
//!   credentials (root and the `porta` group, by `SO_PEERCRED`).
//! * [`windows`]: the API on the named pipe `\\.\pipe\porta`, whose
//!   security descriptor lets SYSTEM and Administrators in fully and
//!   interactive users connect (the kernel checks it at every connection),
//!   and the entry point the service control manager starts.

#[cfg(unix)]
pub mod peer;
pub mod service;
pub mod settings;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
pub mod windows;

#[cfg(unix)]
use unix as local_api;
#[cfg(windows)]
use windows as local_api;

use crate::state::StateDir;
use anyhow::{Context, Result, bail};
use porta_proto::local::tunnel_server::TunnelServer;
use std::path::PathBuf;

/// Who made a call of the local API, as its transport vouches for them:
/// the socket's peer credentials on Linux, the pipe client's process token
/// on Windows. A member of the `porta` group may connect, disconnect, read
/// the status and enroll a computer that holds no valid enrollment; what
/// takes a valid enrollment away (moving to another controller, replacing
/// one the controller still accepts, leaving) needs an administrator.
#[derive(Clone, Debug)]
pub struct LocalCaller {
    /// The caller's user id (Unix); on Windows, the calling process's id.
    pub uid: Option<u32>,
    /// Who, for the service's log.
    pub name: String,
    /// An administrator of this computer: root, or an elevated token.
    pub administrator: bool,
}

impl LocalCaller {
    /// The caller of `request` (set by the transport's check); unknown
    /// callers are no administrators.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        request
            .extensions()
            .get::<Self>()
            .cloned()
            .unwrap_or_else(|| Self {
                uid: None,
                name: "unknown".into(),
                administrator: false,
            })
    }
}

/// The metadata key marking a `PERMISSION_DENIED` as "only an
/// administrator of this computer may do this" (local.proto), so that the
/// app tells it from a controller's refusal.
pub const NEEDS_ADMINISTRATOR: &str = "porta-needs-administrator";

/// Where and on what the service runs.
pub struct Options {
    /// The local API's socket.
    pub socket: PathBuf,
    /// The enrollment's state directory.
    pub dir: StateDir,
    /// The tunnel interface.
    pub interface: String,
}

/// How long calls in progress may take to finish once the service is
/// asked to stop.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the service until SIGTERM or SIGINT (Ctrl-C, or the console
/// closing, on Windows).
pub async fn run(options: Options) -> Result<()> {
    run_until(options, porta_proto::terminal::termination_signal()?).await
}

/// Runs the service until `stop` resolves.
pub async fn run_until(options: Options, stop: impl Future<Output = ()>) -> Result<()> {
    if !crate::platform::is_administrator() {
        bail!(
            "the tunnel service must run as root or LocalSystem (it is started by porta.service, \
             or by the Windows service \"Porta\")"
        );
    }
    porta_proto::limits::raise_open_files_limit();
    let incoming = local_api::listen(&options.socket)?;
    let service = service::TunnelService::new(options.dir, options.interface);
    service.resume().await;
    tracing::info!(socket = %options.socket.display(), "tunnel service ready");
    crate::platform::notify_ready("tunnel service");
    let (stopped, mut stop_seen) = tokio::sync::watch::channel(false);
    let stop = {
        let service = service.clone();
        async move {
            stop.await;
            tracing::info!("stopping: the status streams end, calls in progress may finish");
            service.end_streams();
            stopped.send_replace(true);
        }
    };
    let serving = tonic::transport::Server::builder()
        .add_service(TunnelServer::with_interceptor(
            service.clone(),
            local_api::authorise,
        ))
        .serve_with_incoming_shutdown(incoming, stop);
    let outcome = tokio::select! {
        outcome = serving => outcome,
        // A call that does not finish (an enrollment waiting on a silent
        // controller) gets this long; systemd would wait 90 s and kill.
        () = async {
            let _ = stop_seen.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(STOP_GRACE).await;
        } => {
            tracing::warn!(grace_secs = STOP_GRACE.as_secs(), "calls still in progress at the stop; stopping anyway");
            Ok(())
        }
    };
    service.shut_down().await;
    local_api::remove(&options.socket);
    outcome.context("serving the local API")
}
