//! The tunnel service on Windows: the local API on a named pipe, and the
//! entry point the service control manager starts.
//!
//! **Who may call.** The pipe's security descriptor
//! ([`crate::platform::PIPE_SDDL`]) gives SYSTEM and Administrators full
//! access and lets interactive users — whoever is logged in at this
//! computer — read and write, that is, call the API; remote clients are
//! rejected. Windows checks it at every connection, so the calls need no
//! check of their own (Linux's per-call `SO_PEERCRED` check exists because
//! a socket's mode is easily loosened by hand; a pipe's descriptor is set
//! here, by the service, at every start).
//!
//! **The service.** The MSI installs the service "Porta" (LocalSystem,
//! automatic start) running `porta.exe daemon --windows-service`;
//! [`run_as_service`] hands the process to the service control manager,
//! which calls back on its own thread: the API runs there on a runtime of
//! its own until the manager asks it to stop (stop, or shutdown).

use super::Options;
use crate::platform::{PIPE_SDDL, SecurityDescriptor, create_pipe_instance};
use anyhow::{Context, Result};
use std::path::Path;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::windows::named_pipe::NamedPipeServer;
use tokio_stream::wrappers::ReceiverStream;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};

/// The service's name, as the MSI installs it and `sc query` shows it.
pub const SERVICE_NAME: &str = "Porta";

/// One client's connection to the pipe.
pub struct PipeConnection(NamedPipeServer);

/// Who is at the other end of a pipe connection: the client process and
/// whether its token is elevated (an administrator's full token, or
/// LocalSystem), read when the connection is handed to the server.
#[derive(Clone, Debug)]
pub struct PipeClient {
    /// The client's process id, if Windows could tell.
    pub pid: Option<u32>,
    /// Whether that process runs elevated.
    pub elevated: bool,
}

impl tonic::transport::server::Connected for PipeConnection {
    type ConnectInfo = PipeClient;
    fn connect_info(&self) -> PipeClient {
        use std::os::windows::io::AsRawHandle;
        let pid = crate::platform::pipe_client_pid(self.0.as_raw_handle());
        PipeClient {
            pid,
            elevated: pid.is_some_and(crate::platform::process_is_elevated),
        }
    }
}

impl AsyncRead for PipeConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PipeConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// The connections to the pipe at `path`. The first instance is created
/// here, so a second service fails at once; each connected instance is
/// replaced by a fresh one before it is handed over, so a client never
/// finds the pipe missing.
pub(super) fn listen(path: &Path) -> Result<ReceiverStream<std::io::Result<PipeConnection>>> {
    let descriptor = SecurityDescriptor::from_sddl(PIPE_SDDL).context("the pipe's security")?;
    let first = create_pipe_instance(path, &descriptor, true).with_context(|| {
        format!(
            "creating the pipe {} (is another porta daemon running?)",
            path.display()
        )
    })?;
    let (connections, incoming) = tokio::sync::mpsc::channel(16);
    let path = path.to_owned();
    tokio::spawn(async move {
        let mut waiting = first;
        loop {
            if let Err(error) = waiting.connect().await {
                tracing::warn!(%error, "a client's connection to the pipe failed");
                continue;
            }
            let next = match create_pipe_instance(&path, &descriptor, false) {
                Ok(next) => next,
                Err(error) => {
                    let _ = connections.send(Err(error)).await;
                    return;
                }
            };
            let connected = std::mem::replace(&mut waiting, next);
            if connections
                .send(Ok(PipeConnection(connected)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(ReceiverStream::new(incoming))
}

/// Every call: let through (the pipe's security descriptor decided who
/// could connect, see the module's documentation), marked with who called
/// and whether they are an administrator.
pub(super) fn authorise(
    mut request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    let client = request.extensions().get::<PipeClient>().cloned();
    let caller = super::LocalCaller {
        uid: client.as_ref().and_then(|c| c.pid),
        name: client.as_ref().and_then(|c| c.pid).map_or_else(
            || "an unknown process".into(),
            |pid| format!("process {pid}"),
        ),
        administrator: client.is_some_and(|c| c.elevated),
    };
    request.extensions_mut().insert(caller);
    Ok(request)
}

/// Nothing to remove: the pipe goes with its last handle.
pub(super) fn remove(_path: &Path) {}

/// What `service_main` runs with; set once before the dispatcher starts.
static OPTIONS: Mutex<Option<Options>> = Mutex::new(None);

/// Runs the service under the service control manager until it is told
/// to stop. Only the manager can start it this way: from a console,
/// `porta daemon` (without `--windows-service`) runs it in the foreground.
pub fn run_as_service(options: Options) -> Result<()> {
    *OPTIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(options);
    entry::start().context(
        "starting as a Windows service (only the service control manager can: \
         from a console, run `porta daemon` without --windows-service)",
    )
}

#[allow(unsafe_code)] // The macro's generated entry point reads the raw arguments.
mod entry {
    windows_service::define_windows_service!(ffi_service_main, service_main);

    pub(super) fn start() -> windows_service::Result<()> {
        windows_service::service_dispatcher::start(super::SERVICE_NAME, ffi_service_main)
    }

    fn service_main(_arguments: Vec<std::ffi::OsString>) {
        super::service_main();
    }
}

fn service_main() {
    let Some(options) = OPTIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    else {
        return;
    };
    if let Err(error) = serve(options) {
        tracing::error!(error = %porta_proto::describe_chain(error.chain()), "the service failed");
    }
}

fn serve(options: Options) -> Result<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stop = Mutex::new(Some(stop));
    let status = service_control_handler::register(SERVICE_NAME, move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            if let Some(stop) = stop
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
            {
                let _ = stop.send(());
            }
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })
    .context("registering with the service control manager")?;
    let report = |state, accepted, code| {
        status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accepted,
            exit_code: ServiceExitCode::Win32(code),
            checkpoint: 0,
            wait_hint: Duration::ZERO,
            process_id: None,
        })
    };
    report(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        0,
    )?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let outcome = runtime.block_on(super::run_until(options, async {
        let _ = stopped.await;
    }));
    report(
        ServiceState::Stopped,
        ServiceControlAccept::empty(),
        u32::from(outcome.is_err()),
    )?;
    outcome
}
