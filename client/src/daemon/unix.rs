//! The local API on Linux (and other Unixes): a Unix socket, `root:porta`
//! 0660 in `/run/porta` (0755), and each call checked again against the
//! caller's credentials (`SO_PEERCRED`, see [`super::peer`]).

use super::peer;
use anyhow::{Context, Result, bail};
use nix::unistd::{Gid, Group};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tonic::transport::server::UdsConnectInfo;

/// The connections to the socket at `path`.
pub(super) fn listen(path: &Path) -> Result<tokio_stream::wrappers::UnixListenerStream> {
    Ok(tokio_stream::wrappers::UnixListenerStream::new(bind(path)?))
}

/// Removes the socket when the service ends.
pub(super) fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Every call: the caller must be root or in the `porta` group.
pub(super) fn authorise(request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
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
