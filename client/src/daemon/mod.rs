//! `porta daemon`: the tunnel service. It runs as root (porta.service) and
//! owns everything privileged — the private key, the TUN device, routes,
//! DNS, the controller watch and the WireGuard control socket — while the
//! `porta` CLI and `porta-desktop` drive it, unprivileged, through the
//! `porta.local.v1` API on a Unix socket.
//!
//! * [`peer`]: who may call (root and the `porta` group, by `SO_PEERCRED`).
//! * [`settings`]: what it remembers across restarts.
//! * [`service`]: the API itself, over one [`crate::connection::Connection`].
//!
//! The socket is `root:porta`, mode 0660, in `/run/porta` (0755); each call
//! is checked again against the caller's credentials.

pub mod peer;
pub mod service;
pub mod settings;

use crate::state::StateDir;
use anyhow::{Context, Result, bail};
use nix::unistd::{Gid, Group};
use porta_proto::local::tunnel_server::TunnelServer;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tonic::transport::server::UdsConnectInfo;

/// Where and on what the service runs.
pub struct Options {
    /// The local API's socket.
    pub socket: PathBuf,
    /// The enrollment's state directory.
    pub dir: StateDir,
    /// The tunnel interface.
    pub interface: String,
}

/// Runs the service until SIGTERM or SIGINT.
pub async fn run(options: Options) -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("the tunnel service must run as root (it is started by porta.service)");
    }
    let listener = bind(&options.socket)?;
    let service = service::TunnelService::new(options.dir, options.interface);
    service.resume().await;
    tracing::info!(socket = %options.socket.display(), "tunnel service ready");
    if let Err(error) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(%error, "could not tell systemd the service is ready");
    }
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let outcome = tonic::transport::Server::builder()
        .add_service(TunnelServer::with_interceptor(service.clone(), authorise))
        .serve_with_incoming_shutdown(incoming, crate::tunnel::stop_signal()?)
        .await;
    service.shut_down().await;
    let _ = std::fs::remove_file(&options.socket);
    outcome.context("serving the local API")
}

/// Every call: the caller must be root or in the `porta` group.
fn authorise(request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let credentials = request
        .extensions()
        .get::<UdsConnectInfo>()
        .and_then(|info| info.peer_cred)
        .ok_or_else(|| tonic::Status::unauthenticated("the caller's credentials are unknown"))?;
    let caller = peer::Caller {
        uid: credentials.uid(),
        gid: credentials.gid(),
    };
    peer::authorise_here(caller).map_err(|refusal| {
        tracing::warn!(uid = caller.uid, "refused a caller outside the porta group");
        tonic::Status::unauthenticated(refusal)
    })?;
    Ok(request)
}

/// Binds the socket: `root:porta` 0660 (root only, 0600, when the group
/// is missing). A socket nobody answers on is stale and replaced; one
/// that answers belongs to another running service.
fn bind(path: &Path) -> Result<tokio::net::UnixListener> {
    let dir = path.parent().context("the socket's directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        bail!(
            "another porta daemon is running (it answers on {})",
            path.display()
        );
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing the stale {}", path.display()));
        }
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("listening on {}", path.display()))?;
    let mode = match Group::from_name(peer::GROUP).ok().flatten() {
        Some(group) => {
            nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), Some(group.gid))
                .with_context(|| format!("giving {} to the porta group", path.display()))?;
            0o660
        }
        None => {
            tracing::warn!(
                "there is no `porta` group: only root can use the service \
                 (create it with `sudo addgroup --system porta`)"
            );
            let _ = nix::unistd::chown(path, None, Some(Gid::from_raw(0)));
            0o600
        }
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}
