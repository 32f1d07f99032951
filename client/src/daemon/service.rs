//! The `porta.local.v1` Tunnel service: one tunnel, owned here, driven by
//! front ends. State lives in one shared `Inner`; every change publishes a fresh
//! [`local::Status`] on a watch channel, which `WatchStatus` streams.

use super::LocalCaller;
use super::settings::{Remembered, SavedRefusal};
use crate::connection::{Connection, Event};
use crate::enrollment::{self, Verdict};
use crate::state::StateDir;
use porta_proto::local::{self, status::Problem, status::State};
use porta_proto::refusal::Refusal;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};

/// While connected, the status (counters, handshake) is refreshed this often.
const REFRESH: Duration = Duration::from_secs(2);

/// After a refusal the controller is asked again after this long, then
/// ever less often, up to [`ASK_AGAIN_AT_MOST_EVERY`].
const ASK_AGAIN_FIRST: Duration = Duration::from_secs(10);
const ASK_AGAIN_AT_MOST_EVERY: Duration = Duration::from_secs(600);

/// How many recent errors diagnostics show.
const ERRORS_KEPT: usize = 10;

/// The service; cheap to clone.
#[derive(Clone)]
pub struct TunnelService {
    inner: Arc<Inner>,
}

struct Inner {
    dir: StateDir,
    interface: String,
    /// The tunnel while it is up. An async mutex: Up and Down wait for
    /// each other. Never held across a call to a controller: a controller
    /// that does not answer must not freeze status, Up and Down.
    live: tokio::sync::Mutex<Option<Live>>,
    /// Held by the one enrollment in progress (across its calls to the
    /// controller); another waits for nothing and is refused.
    enrolling: tokio::sync::Mutex<()>,
    /// Asks the controller again after a refusal (see
    /// [`Inner::ask_again_later`]); at most one.
    asking_again: Mutex<Option<tokio::task::JoinHandle<()>>>,
    health: Mutex<Health>,
    status: watch::Sender<local::Status>,
    /// Set when the service stops: every status stream ends then, so that
    /// no front end holds the service open.
    stopping: watch::Sender<bool>,
}

struct Live {
    connection: Connection,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// What the connection's events told about it.
/// A clock this far from the controller's is wrong (WireGuard refuses a
/// handshake stamped before one it has seen, so a laptop whose clock went
/// back cannot connect; TLS and the logs suffer too).
const CLOCK_WRONG_AFTER_SECS: u64 = 300;

fn clock_wrong(offset_secs: i64) -> bool {
    offset_secs.unsigned_abs() > CLOCK_WRONG_AFTER_SECS
}

#[derive(Default)]
struct Health {
    controller_unreachable: bool,
    gateway_unreachable: bool,
    /// While the gateway does not answer: nothing else on the internet
    /// answers either.
    offline: bool,
    no_network: bool,
    /// The controller's clock minus this computer's (seconds), as last
    /// seen.
    clock_offset_secs: i64,
    /// Recent errors, newest last, with their Unix time.
    errors: VecDeque<(u64, String)>,
}

impl Health {
    fn error(&mut self, text: String) {
        if self.errors.len() == ERRORS_KEPT {
            self.errors.pop_front();
        }
        self.errors.push_back((unix(SystemTime::now()), text));
    }
}

impl TunnelService {
    /// A service for the enrollment in `dir`, tunnel on `interface`.
    pub fn new(dir: StateDir, interface: String) -> Self {
        let (status, _) = watch::channel(local::Status::default());
        let service = Self {
            inner: Arc::new(Inner {
                dir,
                interface,
                live: tokio::sync::Mutex::new(None),
                enrolling: tokio::sync::Mutex::new(()),
                asking_again: Mutex::new(None),
                health: Mutex::new(Health::default()),
                status,
                stopping: watch::channel(false).0,
            }),
        };
        service.inner.publish(None);
        service
    }

    /// Connects if the remembered settings say so (at service start). A
    /// remembered refusal is no verdict: the controller is asked again
    /// later, and the tunnel comes up once it accepts this computer.
    pub async fn resume(&self) {
        let remembered = self.inner.remembered();
        if !self.inner.dir.is_enrolled() {
            return;
        }
        if remembered.refused.is_some() {
            self.inner.ask_again_later();
            return;
        }
        if remembered.connect_at_start {
            match self.inner.up().await {
                Ok(_) => tracing::info!("connected at start, as last left"),
                Err(status) => {
                    tracing::warn!(error = %status.message(), "could not connect at start")
                }
            }
        }
    }

    /// Ends every status stream (the service is stopping): a front end
    /// that watches (the app, all day) must not keep the service from
    /// stopping. Front ends see the stream end and look for the service
    /// again.
    pub fn end_streams(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Takes the tunnel down (the service is stopping). The remembered
    /// "connect at start" stays as it is.
    pub async fn shut_down(&self) {
        if let Some(task) = self.inner.asking().take() {
            task.abort();
        }
        drop(self.inner.live.lock().await.take());
    }
}

impl Inner {
    fn remembered(&self) -> Remembered {
        Remembered::load(&self.dir).unwrap_or_else(|error| {
            tracing::warn!(error = %porta_proto::describe_chain(error.chain()), "service settings unreadable; using defaults");
            Remembered::default()
        })
    }

    fn remember(&self, change: impl FnOnce(&mut Remembered)) -> Result<(), Status> {
        let mut remembered = self.remembered();
        change(&mut remembered);
        remembered.save(&self.dir).map_err(|e| internal(&e))
    }

    /// Publishes the status now; `live` is the tunnel if the caller holds it.
    fn publish(&self, live: Option<&Live>) {
        let status = self.compose(live);
        self.status.send_if_modified(|old| {
            let changed = *old != status;
            *old = status;
            changed
        });
    }

    fn compose(&self, live: Option<&Live>) -> local::Status {
        let mut status = local::Status {
            interface: self.interface.clone(),
            client_version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        let health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        status.last_error = health
            .errors
            .back()
            .map(|(_, e)| e.clone())
            .unwrap_or_default();
        let Ok(state) = self.dir.load() else {
            status.state = State::NotEnrolled.into();
            return status;
        };
        let config = state.config;
        status.device_name = config.device_name;
        status.user = config.user;
        status.addresses = config.addresses;
        status.controller = state.controller;
        if let Some(gateway) = config.gateways.first() {
            status.gateway_name = gateway.name.clone();
            status.gateway_endpoint = gateway.endpoint.clone();
            status.gateway_public_key = gateway.public_key.clone();
        }
        status.routes = config.routes;
        status.reach = config
            .reach
            .into_iter()
            .map(|r| local::Reach {
                name: r.name,
                ports: r.ports,
                cidr: r.cidr,
            })
            .collect();
        status.organization = config.organization;
        status.dns_servers = config.dns_servers;
        status.search_domains = config.search_domains;
        let Some(live) = live else {
            let refused = self.remembered().refused;
            status.state = match &refused {
                Some(refusal) if refusal.is_pause() => State::Paused,
                Some(_) => State::Revoked,
                None => State::Disconnected,
            }
            .into();
            status.refusal = refused
                .and_then(|r| r.kind())
                .map(|k| k.word().to_owned())
                .unwrap_or_default();
            return status;
        };
        let counters = live.connection.counters();
        status.connected_since = unix(live.connection.since());
        status.last_handshake = counters.last_handshake.map_or(0, unix);
        status.rx_bytes = counters.rx_bytes;
        status.tx_bytes = counters.tx_bytes;
        if let Some(endpoint) = counters.endpoint {
            status.gateway_endpoint = endpoint.to_string();
        }
        let mut problems = Vec::new();
        if health.no_network {
            problems.push(Problem::NoNetwork);
        }
        if health.gateway_unreachable {
            problems.push(if clock_wrong(health.clock_offset_secs) {
                Problem::ClockWrong
            } else if health.offline {
                Problem::Offline
            } else {
                Problem::GatewayUnreachable
            });
        }
        status.clock_offset_secs = health.clock_offset_secs;
        // "The server cannot be reached, the tunnel works" is only true
        // while the gateway answers.
        if health.controller_unreachable && !health.gateway_unreachable {
            problems.push(Problem::ControllerUnreachable);
        }
        status.problems = problems.into_iter().map(Into::into).collect();
        let through = counters.last_handshake.is_some() && !health.gateway_unreachable;
        status.state = if through {
            State::Connected
        } else {
            State::Connecting
        }
        .into();
        status
    }

    async fn up(self: &Arc<Self>) -> Result<local::Status, Status> {
        // A refusal is asked about again now (without holding the tunnel:
        // a silent controller must not freeze the others).
        if self.remembered().refused.is_some() && self.live.lock().await.is_none() {
            match self.ask_again().await {
                Verdict::Accepted => {}
                Verdict::Refused { .. } => {
                    let refusal = self.remembered().refused;
                    return Err(refusal.as_ref().map_or_else(
                        || Status::aborted("the enrollment changed meanwhile; try again"),
                        refused_status,
                    ));
                }
                Verdict::Unknown(error) => {
                    let refused = self.remembered().refused;
                    let Some(refusal) = refused else {
                        return Err(Status::aborted(
                            "the enrollment changed meanwhile; try again",
                        ));
                    };
                    let said = refused_status(&refusal);
                    let mut status = Status::failed_precondition(format!(
                        "{} (the controller could not be asked again: {})",
                        said.message(),
                        porta_proto::describe_chain(error.chain())
                    ));
                    if let Some(kind) = refusal.kind() {
                        kind.mark(&mut status);
                    }
                    return Err(status);
                }
            }
        }
        let mut live = self.live.lock().await;
        if live.is_none() {
            if !self.dir.is_enrolled() {
                return Err(Status::failed_precondition(
                    "this computer is not enrolled yet: enroll it with the invitation your IT unit sent you",
                ));
            }
            if let Some(refusal) = self.remembered().refused {
                return Err(refused_status(&refusal));
            }
            {
                // A new tunnel starts healthy; the error history stays.
                let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
                let errors = std::mem::take(&mut health.errors);
                *health = Health {
                    errors,
                    ..Health::default()
                };
            }
            let (events, received) = mpsc::unbounded_channel();
            let connection =
                Connection::open(&self.dir, &self.interface, events).map_err(|error| {
                    let text = porta_proto::describe_chain(error.chain());
                    self.note_error(format!("could not connect: {text}"));
                    Status::internal(format!("could not connect: {text}"))
                })?;
            tracing::info!(interface = %self.interface, "tunnel up");
            let follower = tokio::spawn(self.clone().follow(received));
            *live = Some(Live {
                connection,
                follower,
            });
            self.remember(|r| r.connect_at_start = true)?;
        }
        self.publish(live.as_ref());
        Ok(self.compose(live.as_ref()))
    }

    async fn down(&self) -> Result<local::Status, Status> {
        let mut live = self.live.lock().await;
        if live.take().is_some() {
            tracing::info!(interface = %self.interface, "tunnel down");
        }
        self.remember(|r| r.connect_at_start = false)?;
        self.publish(None);
        Ok(self.compose(None))
    }

    /// Fails unless the tunnel is down (checked, not held).
    async fn ensure_down(&self) -> Result<(), Status> {
        if self.live.lock().await.is_some() {
            return Err(Status::failed_precondition(
                "the tunnel is connected; disconnect first",
            ));
        }
        Ok(())
    }

    fn note_error(&self, text: String) {
        tracing::warn!(error = %text, "tunnel problem");
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .error(text);
    }

    /// Turns the connection's events into status, until it is refused.
    async fn follow(self: Arc<Self>, mut events: mpsc::UnboundedReceiver<Event>) {
        let mut refresh = tokio::time::interval(REFRESH);
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = refresh.tick() => {
                    self.publish_current().await;
                    continue;
                }
            };
            let Some(event) = event else { return };
            {
                let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
                match &event {
                    Event::GatewayUnreachable { internet } => {
                        health.gateway_unreachable = true;
                        health.offline = !internet;
                        health.error(if *internet {
                            "the gateway does not answer (the internet does)".into()
                        } else {
                            "nothing answers this computer, not even the controller's host".into()
                        });
                    }
                    Event::GatewayReached => {
                        health.gateway_unreachable = false;
                        health.offline = false;
                    }
                    Event::ClockOffset(offset) => {
                        if clock_wrong(*offset) && !clock_wrong(health.clock_offset_secs) {
                            tracing::warn!(
                                offset_secs = offset,
                                "this computer's clock differs from the controller's"
                            );
                        }
                        health.clock_offset_secs = *offset;
                    }
                    Event::ControllerUnreachable(why) => {
                        if !health.controller_unreachable {
                            health.error(format!("cannot reach the controller: {why}"));
                        }
                        health.controller_unreachable = true;
                    }
                    Event::ControllerReached => health.controller_unreachable = false,
                    Event::NoNetwork => health.no_network = true,
                    Event::NetworkChanged(_) => health.no_network = false,
                    Event::ConfigUpdated(_) => {}
                    Event::Refused { message, .. } => {
                        health.error(format!("the controller refused this device: {message}"))
                    }
                }
            }
            if let Event::Refused { kind, message } = event {
                // Dropping the tunnel aborts this task: do it from another.
                let inner = self.clone();
                tokio::spawn(async move { inner.refused(SavedRefusal::new(kind, message)).await });
                return;
            }
            self.publish_current().await;
        }
    }

    async fn publish_current(&self) {
        let live = self.live.lock().await;
        self.publish(live.as_ref());
    }

    async fn refused(self: &Arc<Self>, refusal: SavedRefusal) {
        let mut live = self.live.lock().await;
        tracing::warn!(refusal = refusal.kind.as_deref().unwrap_or("unnamed"), message = %refusal.message, "the controller refused this device; the tunnel is down");
        drop(live.take());
        if let Err(status) = self.remember(|r| r.refused = Some(refusal)) {
            tracing::warn!(error = %status.message(), "could not remember the refusal");
        }
        self.publish(None);
        drop(live);
        self.ask_again_later();
    }

    fn asking(&self) -> std::sync::MutexGuard<'_, Option<tokio::task::JoinHandle<()>>> {
        self.asking_again.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the controller whether it accepts this computer again, and
    /// keeps what it says: accepted forgets the refusal, refused keeps its
    /// newest kind (a paused person's computer may be revoked since).
    async fn ask_again(&self) -> Verdict {
        let Ok(state) = self.dir.load() else {
            return Verdict::Unknown(anyhow::anyhow!("this computer is not enrolled"));
        };
        let verdict = enrollment::ask(&state).await;
        let kept = match &verdict {
            Verdict::Accepted => {
                tracing::info!(device = %state.config.device_name, "the controller accepts this computer again");
                self.remember(|r| r.refused = None)
            }
            Verdict::Refused { kind, message } => {
                tracing::info!(
                    refusal = kind.map_or("unnamed", Refusal::word),
                    "the controller still refuses this computer"
                );
                let refusal = SavedRefusal::new(*kind, message.clone());
                self.remember(|r| {
                    if r.refused.is_some() {
                        r.refused = Some(refusal);
                    }
                })
            }
            Verdict::Unknown(error) => {
                tracing::info!(error = %porta_proto::describe_chain(error.chain()), "could not ask the controller again");
                Ok(())
            }
        };
        if let Err(status) = kept {
            tracing::warn!(error = %status.message(), "could not save what the controller said");
        }
        self.publish_current().await;
        verdict
    }

    /// Starts (or restarts) asking the controller again, ever less often,
    /// while a refusal is remembered. Once it accepts this computer the
    /// refusal is forgotten and, if the person last left the tunnel
    /// connected, it comes up: a paused person is back without a new
    /// invitation and without touching the computer.
    fn ask_again_later(self: &Arc<Self>) {
        let inner = self.clone();
        let task = tokio::spawn(async move {
            let mut backoff =
                porta_proto::connect::Backoff::new(ASK_AGAIN_FIRST, ASK_AGAIN_AT_MOST_EVERY);
            loop {
                tokio::time::sleep(backoff.next_delay()).await;
                if inner.remembered().refused.is_none() {
                    return;
                }
                if let Verdict::Accepted = inner.ask_again().await {
                    if inner.remembered().connect_at_start {
                        match inner.up().await {
                            Ok(_) => tracing::info!("connected again, as last left"),
                            Err(status) => {
                                tracing::warn!(error = %status.message(), "could not connect again")
                            }
                        }
                    }
                    return;
                }
            }
        });
        if let Some(previous) = self.asking().replace(task) {
            previous.abort();
        }
    }
}

/// What a refusal says a member of the `porta` group lacks.
pub const ADMINISTRATOR_NEEDED: &str = "needs an administrator of this computer: run it as \
     root (sudo porta …), or from an administrator's prompt on Windows";

/// The refusal of `what` to a caller who is no administrator: a
/// `PERMISSION_DENIED` marked with [`super::NEEDS_ADMINISTRATOR`].
fn administrator_needed(what: String) -> Status {
    let mut status = Status::permission_denied(format!("{what} {ADMINISTRATOR_NEEDED}"));
    status.metadata_mut().insert(
        super::NEEDS_ADMINISTRATOR,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    status
}

/// Whether `error` says the enrollment held here may still be valid (the
/// controller accepts it, or could not be asked).
fn held_valid(error: &anyhow::Error) -> bool {
    error.is::<enrollment::StillEnrolled>() || error.is::<enrollment::CannotAsk>()
}

/// The refusal of Up, in the words front ends show when they have no
/// catalogue, marked with its kind for those that do.
fn refused_status(refusal: &SavedRefusal) -> Status {
    use crate::i18n::{Lang, Msg};
    let words = match refusal.kind() {
        Some(Refusal::DeviceRevoked) => Msg::Revoked.text(Lang::En).to_owned(),
        Some(kind) if kind.is_pause() => Msg::Paused.text(Lang::En).to_owned(),
        _ => format!(
            "the controller no longer accepts this computer: {}",
            refusal.message
        ),
    };
    let mut status = Status::failed_precondition(words);
    if let Some(kind) = refusal.kind() {
        kind.mark(&mut status);
    }
    status
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn internal(error: &anyhow::Error) -> Status {
    Status::internal(porta_proto::describe_chain(error.chain()))
}

/// The one mapping from an enrollment failure to the local API's codes
/// (see local.proto).
fn enroll_status(error: &anyhow::Error) -> Status {
    let text = porta_proto::describe_chain(error.chain());
    if error
        .downcast_ref::<porta_proto::InvitationError>()
        .is_some()
    {
        return Status::invalid_argument(text);
    }
    if error.downcast_ref::<enrollment::StillEnrolled>().is_some() {
        return Status::failed_precondition(text);
    }
    if error.downcast_ref::<enrollment::CannotAsk>().is_some() {
        return Status::unavailable(text);
    }
    if error
        .downcast_ref::<porta_proto::connect::ConnectError>()
        .is_some()
        || error
            .downcast_ref::<enrollment::ControllerSilent>()
            .is_some()
    {
        return Status::unavailable(text);
    }
    let answered = error
        .chain()
        .find_map(|c| c.downcast_ref::<tonic::Status>());
    // Every refusal the controller names is the invitation's refusal.
    if let Some(kind) = answered.and_then(Refusal::of) {
        let mut status = Status::permission_denied(text);
        kind.mark(&mut status);
        return status;
    }
    match answered.map(Status::code) {
        Some(
            tonic::Code::PermissionDenied | tonic::Code::Unauthenticated | tonic::Code::NotFound,
        ) => Status::permission_denied(text),
        Some(tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) => Status::unavailable(text),
        Some(
            tonic::Code::InvalidArgument
            | tonic::Code::AlreadyExists
            | tonic::Code::FailedPrecondition,
        ) => Status::failed_precondition(text),
        _ => Status::internal(text),
    }
}

type StatusStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<local::Status, Status>> + Send>>;

#[tonic::async_trait]
impl local::tunnel_server::Tunnel for TunnelService {
    async fn preview(
        &self,
        request: Request<local::PreviewRequest>,
    ) -> Result<Response<local::PreviewResponse>, Status> {
        let invitation = enrollment::decode(&request.into_inner().invitation)
            .map_err(|e| Status::invalid_argument(porta_proto::describe_chain(e.chain())))?;
        let enrolled_as = self
            .inner
            .dir
            .load()
            .map(|s| s.config.device_name)
            .unwrap_or_default();
        // Asked without any lock: a silent controller holds only this call.
        let mut preview = local::PreviewResponse::default();
        match enrollment::preview(&invitation).await {
            Ok(answer) => {
                preview.user = answer.user;
                preview.display_name = answer.display_name;
                preview.device_name = answer.device_name;
                preview.expires_at = answer.expires_at;
            }
            Err(error) => {
                let older = error
                    .chain()
                    .filter_map(|c| c.downcast_ref::<Status>())
                    .any(|s| s.code() == tonic::Code::Unimplemented);
                let status = enroll_status(&error);
                if status.code() != tonic::Code::Unavailable && !older {
                    return Err(status);
                }
                preview.unconfirmed = status.message().to_owned();
            }
        }
        Ok(Response::new(local::PreviewResponse {
            controller: invitation.controller,
            fingerprint: invitation.fingerprint.to_string(),
            organization: invitation.organization,
            enrolled_as,
            ..preview
        }))
    }

    async fn enroll(
        &self,
        request: Request<local::EnrollRequest>,
    ) -> Result<Response<local::EnrollResponse>, Status> {
        let caller = LocalCaller::of(&request);
        let request = request.into_inner();
        let inner = &self.inner;
        let Ok(_enrolling) = inner.enrolling.try_lock() else {
            return Err(Status::aborted(
                "another enrollment is in progress on this computer; try again when it has finished",
            ));
        };
        inner.ensure_down().await?;
        let invitation = enrollment::decode(&request.invitation).map_err(|e| enroll_status(&e))?;
        // What this computer holds now, and whether the controller still
        // accepts it: asked without holding the tunnel's lock.
        let before = inner.dir.load().ok().map(|s| s.credential);
        let existing = match enrollment::existing(&inner.dir, &invitation).await {
            Ok(existing) => existing,
            // Still accepted, or the controller could not say: only an
            // administrator may replace it, and only once asked.
            Err(error) if held_valid(&error) => {
                let why = porta_proto::describe_chain(error.chain());
                if !caller.administrator {
                    tracing::warn!(uid = ?caller.uid, user = %caller.name, "refused: replacing a valid enrollment needs an administrator");
                    return Err(match error.is::<enrollment::StillEnrolled>() {
                        true => administrator_needed(format!("{why}. Replacing it")),
                        false => enroll_status(&error),
                    });
                }
                if !request.replace {
                    return Err(Status::already_exists(format!(
                        "{why}. Replace it with a new key?"
                    )));
                }
                tracing::warn!(uid = ?caller.uid, user = %caller.name, reason = %why, "an administrator replaces an enrollment");
                None
            }
            Err(error) => return Err(enroll_status(&error)),
        };
        if let Some(existing) = &existing {
            if existing.moves && !caller.administrator {
                tracing::warn!(uid = ?caller.uid, user = %caller.name, controller = %invitation.controller, "refused: moving this computer to another controller needs an administrator");
                return Err(administrator_needed(format!(
                    "This computer is enrolled as {} with another controller; moving it to {}",
                    existing.device_name, invitation.controller
                )));
            }
            if !request.replace {
                return Err(Status::already_exists(format!(
                    "This computer is enrolled as {} ({}). Enroll it again with a new key?",
                    existing.device_name, existing.why
                )));
            }
        }
        tracing::info!(uid = ?caller.uid, user = %caller.name, controller = %invitation.controller, "enrolling this computer");
        let granted = enrollment::request(&inner.dir, invitation)
            .await
            .map_err(|error| {
                let status = enroll_status(&error);
                inner.note_error(format!("enrollment failed: {}", status.message()));
                status
            })?;
        // Saved under the tunnel's lock, and only if nothing changed
        // while the controller was asked.
        let live = inner.live.lock().await;
        if live.is_some() || inner.dir.load().ok().map(|s| s.credential) != before {
            return Err(Status::aborted(
                "the tunnel was connected or the enrollment changed meanwhile; nothing was saved: \
                 disconnect and try again",
            ));
        }
        let state = granted.save(&inner.dir).map_err(|e| internal(&e))?;
        inner.remember(|r| r.refused = None)?;
        tracing::info!(uid = ?caller.uid, user = %caller.name, device = %state.config.device_name, "enrolled");
        inner.publish(None);
        Ok(Response::new(local::EnrollResponse {
            device_name: state.config.device_name,
            user: state.config.user,
            addresses: state.config.addresses,
        }))
    }

    async fn up(
        &self,
        request: Request<local::UpRequest>,
    ) -> Result<Response<local::Status>, Status> {
        let caller = LocalCaller::of(&request);
        tracing::info!(uid = ?caller.uid, user = %caller.name, "asked to connect");
        self.inner.up().await.map(Response::new)
    }

    async fn down(
        &self,
        request: Request<local::DownRequest>,
    ) -> Result<Response<local::Status>, Status> {
        let caller = LocalCaller::of(&request);
        tracing::info!(uid = ?caller.uid, user = %caller.name, "asked to disconnect");
        self.inner.down().await.map(Response::new)
    }

    async fn get_status(
        &self,
        _: Request<local::StatusRequest>,
    ) -> Result<Response<local::Status>, Status> {
        let live = self.inner.live.lock().await;
        Ok(Response::new(self.inner.compose(live.as_ref())))
    }

    type WatchStatusStream = StatusStream;

    async fn watch_status(
        &self,
        _: Request<local::StatusRequest>,
    ) -> Result<Response<StatusStream>, Status> {
        self.inner.publish_current().await;
        let stream = tokio_stream::wrappers::WatchStream::new(self.inner.status.subscribe());
        let mut stopping = self.inner.stopping.subscribe();
        let stopped = async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        };
        Ok(Response::new(Box::pin(futures::StreamExt::take_until(
            tokio_stream::StreamExt::map(stream, Ok),
            Box::pin(stopped),
        ))))
    }

    async fn get_settings(
        &self,
        _: Request<local::SettingsRequest>,
    ) -> Result<Response<local::Settings>, Status> {
        Ok(Response::new(local::Settings {
            connect_at_start: self.inner.remembered().connect_at_start,
        }))
    }

    async fn update_settings(
        &self,
        request: Request<local::Settings>,
    ) -> Result<Response<local::Settings>, Status> {
        let caller = LocalCaller::of(&request);
        let wanted = request.into_inner();
        tracing::info!(uid = ?caller.uid, user = %caller.name, connect_at_start = wanted.connect_at_start, "settings changed");
        self.inner
            .remember(|r| r.connect_at_start = wanted.connect_at_start)?;
        Ok(Response::new(wanted))
    }

    async fn leave(
        &self,
        request: Request<local::LeaveRequest>,
    ) -> Result<Response<local::LeaveResponse>, Status> {
        let caller = LocalCaller::of(&request);
        if !caller.administrator {
            tracing::warn!(uid = ?caller.uid, user = %caller.name, "refused: leaving needs an administrator");
            return Err(administrator_needed(
                "Forgetting this computer's enrollment".into(),
            ));
        }
        let inner = &self.inner;
        let _enrolling = inner.enrolling.lock().await;
        let live = inner.live.lock().await;
        if live.is_some() {
            return Err(Status::failed_precondition(
                "the tunnel is connected; disconnect first",
            ));
        }
        let state = inner
            .dir
            .load()
            .map_err(|_| Status::failed_precondition("this computer is not enrolled"))?;
        inner.dir.forget().map_err(|e| internal(&e))?;
        Remembered::forget(&inner.dir).map_err(|e| internal(&e))?;
        tracing::info!(uid = ?caller.uid, user = %caller.name, device = %state.config.device_name, "enrollment forgotten");
        inner.publish(None);
        Ok(Response::new(local::LeaveResponse {
            device_name: state.config.device_name,
        }))
    }

    async fn diagnostics(
        &self,
        _: Request<local::DiagnosticsRequest>,
    ) -> Result<Response<local::DiagnosticsResponse>, Status> {
        let live = self.inner.live.lock().await;
        let status = self.inner.compose(live.as_ref());
        drop(live);
        let errors = self
            .inner
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .errors
            .clone();
        let text = crate::diagnostics::report(
            Some(&status),
            &crate::diagnostics::ServiceSeen::Running,
            &errors.into_iter().collect::<Vec<_>>(),
        )
        .await;
        Ok(Response::new(local::DiagnosticsResponse { text }))
    }
}
