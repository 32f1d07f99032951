//! The local API on Linux (and other Unixes): a Unix socket, `root:porta`
//! 0660 in `/run/porta` (0755), and each call checked again against the
//! caller's credentials (`SO_PEERCRED`, see [`super::peer`]).

use super::peer;
use anyhow::{Context, Result, bail};
use nix::unistd::{Gid, Group};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, UdsConnectInfo};

/// Connections one user other than root may hold open to the socket: a
/// CLI call, the app's status watch and a few more, with room to spare.
pub(super) const CONNECTIONS_PER_USER: usize = 16;

/// Connections all users other than root may hold open together; root's
/// are not counted (the service's open-files limit is raised well above).
pub(super) const CONNECTIONS_IN_ALL: usize = 128;

/// The connections to the socket at `path`, within the caps: a member
/// opening a thousand connections gets [`CONNECTIONS_PER_USER`], and
/// other front ends and the service's own controller watch keep working.
pub(super) fn listen(path: &Path) -> Result<ReceiverStream<std::io::Result<CountedStream>>> {
    let listener = bind(path)?;
    let (connections, incoming) = tokio::sync::mpsc::channel(16);
    let open = OpenByUser::default();
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors and the like: pause, keep serving.
                    tracing::warn!(%error, "accepting a local connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let uid = stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX);
            let Some(slot) = open.admit(uid) else {
                continue;
            };
            if connections
                .send(Ok(CountedStream {
                    stream,
                    _slot: slot,
                }))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(ReceiverStream::new(incoming))
}

/// Open connections by user id (root's not counted).
#[derive(Clone, Default)]
struct OpenByUser(Arc<Mutex<HashMap<u32, usize>>>);

/// A counted connection's place; given back when it closes.
struct Slot {
    open: OpenByUser,
    uid: u32,
}

impl OpenByUser {
    fn admit(&self, uid: u32) -> Option<Option<Slot>> {
        if uid == 0 {
            return Some(None);
        }
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let all: usize = open.values().sum();
        let mine = open.get(&uid).copied().unwrap_or(0);
        if mine >= CONNECTIONS_PER_USER || all >= CONNECTIONS_IN_ALL {
            tracing::warn!(
                uid,
                mine,
                all,
                "refused a local connection over the cap ({CONNECTIONS_PER_USER} per user, {CONNECTIONS_IN_ALL} in all)"
            );
            return None;
        }
        *open.entry(uid).or_default() += 1;
        Some(Some(Slot {
            open: self.clone(),
            uid,
        }))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.uid);
            }
        }
    }
}

/// A connection to the socket, holding its place under the caps.
pub(super) struct CountedStream {
    stream: tokio::net::UnixStream,
    _slot: Option<Slot>,
}

impl Connected for CountedStream {
    type ConnectInfo = UdsConnectInfo;

    fn connect_info(&self) -> UdsConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
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
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(caller.uid))
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {}", caller.uid), |user| user.name);
    let mut request = request;
    request.extensions_mut().insert(super::LocalCaller {
        uid: Some(caller.uid),
        name,
        administrator: caller.uid == 0,
    });
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
