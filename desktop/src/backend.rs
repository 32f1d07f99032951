//! The IO shell between the app and the tunnel service: a thread with a
//! small tokio runtime that follows the service's status stream (finding
//! the service again whenever it goes away) and runs the person's
//! requests. Results come back as [`Event`]s on a channel, and `wake` is
//! called after each so the window redraws — the app never polls.

use crate::model::{Event, Failure, Request, ServiceProblem};
use porta_client::local::{self, Unreachable};
use porta_proto::local as api;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// How often the app looks for a service it cannot reach.
const LOOK_AGAIN: Duration = Duration::from_secs(2);

/// The running shell.
pub struct Backend {
    requests: tokio::sync::mpsc::UnboundedSender<Request>,
    events: mpsc::Receiver<Event>,
}

impl Backend {
    /// Starts following the service on `socket`.
    pub fn start(socket: PathBuf, wake: impl Fn() + Send + Sync + 'static) -> Self {
        let (requests, mut requested) = tokio::sync::mpsc::unbounded_channel();
        let (events, received) = mpsc::channel();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(wake);
        std::thread::Builder::new()
            .name("porta-service".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = events.send(Event::Service(Err(ServiceProblem::Other(
                            error.to_string(),
                        ))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let look_again = Arc::new(tokio::sync::Notify::new());
                    let tell = {
                        let wake = wake.clone();
                        move |event: Event| {
                            let delivered = events.send(event).is_ok();
                            wake();
                            delivered
                        }
                    };
                    let follower =
                        tokio::spawn(follow(socket.clone(), tell.clone(), look_again.clone()));
                    while let Some(request) = requested.recv().await {
                        if request == Request::Reconnect {
                            look_again.notify_one();
                            continue;
                        }
                        let (socket, tell) = (socket.clone(), tell.clone());
                        tokio::spawn(async move {
                            if let Some(event) = answer(&socket, request).await {
                                tell(event);
                            }
                        });
                    }
                    follower.abort();
                });
            })
            .expect("starting the service thread");
        Self {
            requests,
            events: received,
        }
    }

    /// Sends a request; its answer comes as an event.
    pub fn send(&self, request: Request) {
        let _ = self.requests.send(request);
    }

    /// The events that arrived since the last call.
    pub fn poll(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }
}

fn problem(unreachable: Unreachable) -> ServiceProblem {
    match unreachable {
        Unreachable::NotRunning { .. } => ServiceProblem::NotRunning,
        Unreachable::NotAllowed { user } => ServiceProblem::NotAllowed { user },
        Unreachable::Other { source, .. } => ServiceProblem::Other(source.to_string()),
    }
}

/// Follows the status stream; reports a problem and looks again every
/// [`LOOK_AGAIN`] (or when asked) while the service cannot be reached.
async fn follow(
    socket: PathBuf,
    tell: impl Fn(Event) -> bool,
    look_again: Arc<tokio::sync::Notify>,
) {
    // The same problem again is no news: the window is not woken for it.
    let mut last_problem: Option<ServiceProblem> = None;
    loop {
        let outcome = async {
            let mut client = local::connect(&socket).await.map_err(problem)?;
            let mut stream = client
                .watch_status(api::StatusRequest {})
                .await
                .map_err(status_problem)?
                .into_inner();
            while let Some(status) = stream.message().await.map_err(status_problem)? {
                last_problem = None;
                if !tell(Event::Service(Ok(status))) {
                    return Ok(());
                }
            }
            // The service ends the stream when it stops.
            Err(ServiceProblem::Stopped)
        }
        .await;
        match outcome {
            Ok(()) => return,
            Err(problem) if last_problem.as_ref() == Some(&problem) => {}
            // Stopped, and not back yet: still what is true.
            Err(ServiceProblem::NotRunning)
                if last_problem.as_ref() == Some(&ServiceProblem::Stopped) => {}
            Err(problem) => {
                last_problem = Some(problem.clone());
                if !tell(Event::Service(Err(problem))) {
                    return;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(LOOK_AGAIN) => {}
            () = look_again.notified() => {}
        }
    }
}

fn status_problem(status: tonic::Status) -> ServiceProblem {
    match status.code() {
        tonic::Code::Unauthenticated => ServiceProblem::NotAllowed {
            user: local::user_name(),
        },
        tonic::Code::Unavailable => ServiceProblem::NotRunning,
        _ => ServiceProblem::Other(status.message().to_owned()),
    }
}

/// Runs one request.
async fn answer(socket: &std::path::Path, request: Request) -> Option<Event> {
    let mut client = match local::connect(socket).await {
        Ok(client) => client,
        // Diagnostics without the service: what this computer shows, and
        // why the service could not be asked (the help desk needs that
        // most when the service is the problem).
        Err(unreachable) if request == Request::Diagnostics => {
            use porta_client::diagnostics::{ServiceSeen, report};
            let seen = match unreachable {
                Unreachable::NotRunning { .. } => ServiceSeen::NotRunning,
                Unreachable::NotAllowed { user } => ServiceSeen::NotAllowed { user },
                other => ServiceSeen::Unreachable(other.to_string()),
            };
            return Some(Event::Diagnostics(Ok(report(None, &seen, &[]).await)));
        }
        Err(unreachable) => {
            let failure = Failure::new(
                match unreachable {
                    Unreachable::NotAllowed { .. } => tonic::Code::Unauthenticated,
                    _ => tonic::Code::Unavailable,
                },
                unreachable.to_string(),
            );
            return failed(&request, failure);
        }
    };
    fn inner<T>(answer: Result<tonic::Response<T>, tonic::Status>) -> Result<T, Failure> {
        answer
            .map(tonic::Response::into_inner)
            .map_err(Failure::from)
    }
    Some(match request {
        Request::Preview(invitation) => Event::Previewed(inner(
            client.preview(api::PreviewRequest { invitation }).await,
        )),
        Request::Enroll {
            invitation,
            replace,
        } => Event::Enrolled(inner(
            client
                .enroll(api::EnrollRequest {
                    invitation,
                    replace,
                })
                .await,
        )),
        Request::Up => Event::Switched(inner(client.up(api::UpRequest {}).await)),
        Request::Down => Event::Switched(inner(client.down(api::DownRequest {}).await)),
        Request::Diagnostics => Event::Diagnostics(
            inner(client.diagnostics(api::DiagnosticsRequest {}).await).map(|d| d.text),
        ),
        Request::Reconnect => return None,
    })
}

/// The answer to `request` when the service could not be reached.
fn failed(request: &Request, failure: Failure) -> Option<Event> {
    Some(match request {
        Request::Preview(_) => Event::Previewed(Err(failure)),
        Request::Enroll { .. } => Event::Enrolled(Err(failure)),
        Request::Up | Request::Down => Event::Switched(Err(failure)),
        Request::Diagnostics => Event::Diagnostics(Err(failure)),
        Request::Reconnect => return None,
    })
}
