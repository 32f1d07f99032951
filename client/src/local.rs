//! The front ends' side of the tunnel service's local API
//! (`porta.local.v1` over `/run/porta/porta.sock`, or the `\\.\pipe\porta`
//! named pipe on Windows): finding the service and saying plainly why it
//! cannot be used.

use crate::i18n::{Lang, Msg};
use porta_proto::local::tunnel_client::TunnelClient;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

pub use crate::platform::{DEFAULT_SOCKET, user_name};

/// A client of the tunnel service.
pub type Client = TunnelClient<Channel>;

/// Why the tunnel service cannot be used from here.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    /// No service listens on the socket.
    #[error("{} ({})", Msg::ServiceNotRunning.text(Lang::from_environment()), path.display())]
    NotRunning {
        /// The socket.
        path: PathBuf,
    },
    /// The socket's permissions keep this user out.
    #[error("{}", Msg::NotInGroup.fill(Lang::from_environment(), &[("user", user)]))]
    NotAllowed {
        /// The user's name.
        user: String,
    },
    /// Any other failure to reach the socket.
    #[error("could not reach the Porta service at {path}: {source}")]
    Other {
        /// The socket.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// How long a front end waits for the service's answer to a call before
/// saying it did not answer; an enrollment may take longer (the service
/// asks the controller, within its own timeouts).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The longest any call waits (an enrollment: the service's two calls to
/// the controller, each bounded by [`crate::enrollment::CONTROLLER_TIMEOUT`];
/// an Up after a refusal: the service asks the controller again first).
pub const ENROLLMENT_ANSWER_WITHIN: Duration = Duration::from_secs(45);

/// The service took too long to answer.
#[derive(Debug, thiserror::Error)]
#[error(
    "the Porta service did not answer within {} s; it may be stuck (restart it: \
     `sudo systemctl restart porta`, or restart the \"Porta\" service on Windows)",
    .0.as_secs()
)]
pub struct ServiceSilent(pub Duration);

/// The answer to `call`, or [`ServiceSilent`] after `within`.
pub async fn answer<T>(
    within: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(within, call).await {
        Ok(answer) => Ok(answer?.into_inner()),
        Err(_) => Err(ServiceSilent(within).into()),
    }
}

/// Connects to the service on `path`.
pub async fn connect(path: &Path) -> Result<Client, Unreachable> {
    // One probe first, to tell "not running" from "not allowed" (tonic
    // would report both as a transport error).
    match crate::platform::connect_local(path).await {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(Unreachable::NotRunning { path: path.into() });
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(Unreachable::NotAllowed { user: user_name() });
        }
        Err(source) => {
            return Err(Unreachable::Other {
                path: path.into(),
                source,
            });
        }
    }
    let socket = path.to_owned();
    let channel = Endpoint::from_static("http://porta.service.local")
        // No call waits for ever, whatever the front end (the CLI waits
        // less for quick calls: see `answer`).
        .timeout(ENROLLMENT_ANSWER_WITHIN)
        .connect_timeout(ANSWER_WITHIN)
        .connect_with_connector(tower::service_fn(move |_: tonic::codegen::http::Uri| {
            let socket = socket.clone();
            async move {
                let stream = crate::platform::connect_local(&socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| Unreachable::Other {
            path: path.into(),
            source: std::io::Error::other(e),
        })?;
    Ok(TunnelClient::new(channel))
}
