//! `porta-controller serve`: the gRPC API over TLS, with health checking,
//! reflection and graceful shutdown.

use crate::api::{Apis, MAX_MESSAGE_BYTES};
use crate::listener::{Registry, TLS_HANDSHAKE_TIMEOUT, incoming};
use crate::options::ServeSettings;
use crate::state::Controller;
use crate::store::Store;
use crate::tls::{Identity, TlsPaths};
use anyhow::{Context, Result};
use porta_proto::pb;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::transport::{Server, ServerTlsConfig};

/// Requests one connection may have open at once (HTTP/2 streams): more
/// than a laptop's watch and reports or portactl's 32 CSV rows in flight.
pub const STREAMS_PER_CONNECTION: u32 = 64;

/// Bytes a client may send on one request before the controller reads
/// them: one whole message of the largest size any service takes.
const STREAM_WINDOW: u32 = 2 * MAX_MESSAGE_BYTES as u32;

/// Bytes a client may send on one connection, all its requests together,
/// before the controller reads them.
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// How long a shutdown waits for open requests and streams to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(3);

/// Opens the data directory and serves on `listen` until `shutdown`
/// resolves; then ends open streams, drains requests and flushes the store.
pub async fn serve(settings: &ServeSettings, shutdown: impl Future<Output = ()>) -> Result<()> {
    let data = settings.data.as_path();
    let identity = Identity::load(&TlsPaths::in_dir(data)).with_context(|| {
        format!(
            "loading the TLS identity from {} (was it initialised?)",
            data.display()
        )
    })?;
    let fingerprint = identity.fingerprint()?;
    // Bound first: a taken port is an error at start, not a silent gap.
    let metrics = match settings.metrics_listen {
        Some(addr) => Some(
            porta_gateway::metrics::Exporter::bind(addr)
                .await
                .with_context(|| format!("listening on {addr} for metrics"))?,
        ),
        None => None,
    };
    let store_dir = data.join("store");
    let store = if settings.accept_store_rollback {
        Store::open_accepting_rollback(&store_dir)
    } else {
        Store::open(&store_dir)
    }
    .with_context(|| format!("opening the store in {}", store_dir.display()))?;
    // The process starts now: the one clock reading behind the handle.
    let controller = Controller::new(store.clone(), fingerprint, crate::clock::now())?
        .with_session_idle(settings.session_idle);
    let controller = match settings.smtp.clone() {
        Some(smtp) => controller.with_mailer(crate::mail::Mailer::new(smtp)),
        None => controller,
    };
    let controller = match settings.feed.clone() {
        Some(feed) => {
            let monitor = crate::feed::deliver::start(feed, controller.clone());
            controller.with_feed(monitor)
        }
        None => controller,
    };
    tokio::spawn(controller.clone().run_peer_journal());
    tokio::spawn(watch_the_clock(controller.clone()));
    if let Some(retention) = settings.retention {
        tokio::spawn(enforce_retention(controller.clone(), retention));
    }
    let directory = settings
        .directory
        .clone()
        .map(|dir| crate::directory::sync::DirectorySync::new(dir, controller.clone()));
    if let Some(sync) = &directory {
        tokio::spawn(sync.clone().run_every_interval());
    }
    let mut registry = controller.metrics().registry(&controller);
    let gateway = settings
        .gateway
        .as_ref()
        .map(|options| crate::gateway::start(controller.clone(), data, options, &mut registry))
        .transpose()?;
    if let Some(exporter) = metrics {
        let mut stop = controller.shutdown_signal();
        tokio::spawn(exporter.serve(registry, async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }));
    }
    let operator = crate::operator::listen(data, controller.clone(), {
        let mut stop = controller.shutdown_signal();
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }
    })?;

    let listen = settings.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        addr = %local,
        api_endpoint = %controller.settings().api_endpoint,
        certificate_sha256 = %fingerprint,
        "listening"
    );
    for (what, endpoint) in [
        ("WireGuard", &controller.settings().wg_endpoint),
        ("API", &controller.settings().api_endpoint),
    ] {
        if let Some(warning) = crate::init::unreachable_from_home(what, endpoint) {
            tracing::warn!(endpoint = %endpoint, "{warning}");
        }
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    for name in [
        "porta.v1.Enrollment",
        "porta.v1.Device",
        "porta.v1.Admin",
        "porta.v1.Audit",
        "porta.v1.Gateway",
        "porta.v1.Directory",
    ] {
        health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let health_service = health_service.max_decoding_message_size(MAX_MESSAGE_BYTES);

    let apis = Apis::new(controller.clone(), directory);
    let tls = ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(
            &identity.cert_pem,
            &identity.key_pem,
        ))
        .timeout(TLS_HANDSHAKE_TIMEOUT);
    let connections = Registry::default();
    let drain = Arc::new(Notify::new());
    let server = Server::builder()
        // Reap connections of laptops that vanished (roamed, slept, lost
        // their network) instead of keeping them until TCP gives up.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // What one connection may make the controller hold before anyone
        // authenticated: streams at once, and bytes received but not yet
        // read (per stream and in all). With every service's messages
        // capped at MAX_MESSAGE_BYTES, a connection holds at most about
        // CONNECTION_WINDOW of requests, whatever it declares.
        .max_concurrent_streams(Some(STREAMS_PER_CONNECTION))
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .tls_config(tls)
        .context("TLS configuration")?
        // Every request counted by method and status (see `metrics`).
        .layer(crate::metrics::RpcMetricsLayer(
            controller.metrics().clone(),
        ))
        // Every request marks its connection as used (see `listener`).
        .trace_fn({
            let connections = connections.clone();
            move |request| {
                if let Some(peer) = peer_of(request) {
                    connections.mark_served(peer);
                }
                tracing::Span::none()
            }
        })
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            pb::enrollment_server::EnrollmentServer::new(apis.enrollment)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            pb::device_server::DeviceServer::new(apis.device)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            pb::admin_server::AdminServer::new(apis.admin)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            pb::audit_server::AuditServer::new(apis.audit)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            pb::gateway_server::GatewayServer::new(apis.gateway)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            pb::directory_server::DirectoryServer::new(apis.directory)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            pb::session_server::SessionServer::new(apis.session)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming(listener, settings.limits.clone(), connections), {
            let drain = drain.clone();
            async move { drain.notified().await }
        });
    // Under systemd (Type=notify): `systemctl start` returns once the API
    // answers, not merely once the process exists.
    if let Err(error) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(%error, "could not tell systemd the controller is ready");
    }
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result.context("serving")?,
        () = shutdown => {
            tracing::info!("shutting down: ending streams and draining requests");
            controller.begin_shutdown();
            drain.notify_one();
            // Connections whose clients vanished would hold a graceful
            // drain open until TCP gives up: bound it.
            match tokio::time::timeout(DRAIN_LIMIT, &mut server).await {
                Ok(result) => result.context("serving")?,
                Err(_) => tracing::warn!(limit = ?DRAIN_LIMIT, "connections still open after the drain limit; stopping anyway"),
            }
        }
    }
    if let Some(gateway) = gateway {
        let _ = gateway.await;
    }
    let _ = operator.await;
    store.flush().await?;
    tracing::info!("stopped");
    Ok(())
}

/// The peer address of a request on a TLS connection.
fn peer_of(request: &tonic::codegen::http::Request<()>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.get_ref().remote_addr())
}

/// Watches the wall clock against the monotonic one every few seconds:
/// a step is logged, and invitations made while the clock ran ahead get
/// their validity counted from now (at start, after every step, and once a
/// minute — a restart after a step is seen the same way).
async fn watch_the_clock(ctl: Controller) {
    const LOOK_EVERY: Duration = Duration::from_secs(2);
    const REBASE_EVERY: u32 = 30;
    let mut watch = crate::clock::ClockWatch::new(crate::clock::now(), std::time::Instant::now());
    let mut every = tokio::time::interval(LOOK_EVERY);
    let mut shutdown = ctl.shutdown_signal();
    let mut looks = 0u32;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = crate::clock::now();
        let stepped = watch.step(now, std::time::Instant::now());
        if let Some(step) = stepped {
            tracing::warn!(
                step_secs = step,
                "the controller's wall clock stepped; what it dated meanwhile is checked"
            );
        }
        if (stepped.is_some() || looks.is_multiple_of(REBASE_EVERY))
            && let Err(error) = ctl.rebase_invitations(now).await
        {
            tracing::warn!(%error, "could not check the invitations' validity against the clock");
        }
        looks = looks.wrapping_add(1);
    }
}

/// Prunes both logs now and every hour until shutdown.
async fn enforce_retention(ctl: Controller, retention: Duration) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    let mut shutdown = ctl.shutdown_signal();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = crate::clock::now();
        let cutoff = now.saturating_sub(retention.as_secs());
        let pruned = crate::logs::prune_before(ctl.store(), cutoff, now).await;
        ctl.metrics().retention_ran(pruned.is_ok());
        if let Err(error) = pruned {
            tracing::error!(%error, "retention run failed; the logs are unchanged");
        }
    }
}

pub use porta_proto::terminal::termination_signal;
