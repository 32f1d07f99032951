//! The operator socket: `operator.sock` in the data directory, where the
//! person who runs the controller reaches it without a credential.
//!
//! `serve` listens there (gRPC over a Unix socket, the [`OperatorApi`]);
//! `porta-controller invite-admin` talks to it, and when no `serve` runs
//! opens the store itself (sled allows one process at a time, so it cannot
//! do both). Access rests on the filesystem: the data directory is 0700 and
//! the socket 0600, so only its owner and root reach it, and the service
//! checks the caller's uid again.

use crate::api::operator::{OperatorApi, invite_admin};
use crate::state::Controller;
use crate::store::Store;
use crate::tls::{Identity, TlsPaths};
use anyhow::{Context, Result, bail};
use porta_proto::pb;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::net::UnixListener;

/// The socket's path in `data`.
pub fn socket_path(data: &Path) -> PathBuf {
    data.join("operator.sock")
}

/// Serves the Operator service on `data`'s socket until `shutdown`; the
/// socket is removed when it ends.
pub fn listen(
    data: &Path,
    ctl: Controller,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(data);
    // A socket left by a serve that was killed; a running serve holds the
    // store, so none can be listening here now.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let api = OperatorApi {
        ctl,
        owner: nix::unistd::Uid::effective().as_raw(),
    };
    Ok(tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(pb::operator_server::OperatorServer::new(api))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                shutdown,
            )
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the operator socket stopped");
        }
        let _ = std::fs::remove_file(&path);
    }))
}

/// `porta-controller invite-admin`: a new admin invitation, through the
/// running `serve` or, when none runs, directly in the store.
pub async fn invite_admin_locally(
    data: &Path,
    name: &str,
    ttl_seconds: u64,
    now: u64,
) -> Result<pb::InviteAdminResponse> {
    std::fs::read_dir(data).with_context(|| {
        format!(
            "cannot read {} (run this as the user the controller runs as, e.g. \
             `sudo -u porta porta-controller invite-admin`, or as root)",
            data.display()
        )
    })?;
    if !crate::init::is_initialised(data) {
        bail!(
            "{} holds no initialised controller (run `porta-controller init --data {}` first)",
            data.display(),
            data.display()
        );
    }
    let socket = socket_path(data);
    if let Ok(channel) = connect(&socket).await {
        let response = pb::operator_client::OperatorClient::new(channel)
            .invite_admin(pb::InviteAdminRequest {
                name: name.to_owned(),
                ttl_seconds,
            })
            .await
            .context("the running controller refused")?;
        return Ok(response.into_inner());
    }
    let identity = Identity::load(&TlsPaths::in_dir(data))
        .with_context(|| format!("loading the TLS identity from {}", data.display()))?;
    let store = Store::open(&data.join("store")).with_context(|| {
        format!(
            "opening the store in {} (the operator socket {} did not answer)",
            data.display(),
            socket.display()
        )
    })?;
    let ctl = Controller::new(store.clone(), identity.fingerprint()?, now)?;
    let name = crate::validate::name("name", name)?;
    let response = invite_admin(&ctl, &name, ttl_seconds, now).await?;
    store.flush().await?;
    Ok(response)
}

async fn connect(socket: &Path) -> Result<tonic::transport::Channel> {
    // Fails at once (no listener), so the fallback to the store is quick.
    tokio::net::UnixStream::connect(socket).await?;
    let socket = socket.to_owned();
    // The URI is required by the API but unused: the connector dials the
    // socket.
    let channel = tonic::transport::Endpoint::from_static("http://operator.sock")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(channel)
}
