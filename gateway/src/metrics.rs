//! Prometheus metrics: a gateway's own series, and the `/metrics`
//! endpoint that serves a registry (the remote gateway's, or the
//! controller's, which holds its embedded gateway's series too).
//!
//! The node counts in plain integers ([`porta_tunnel::node::NodeCounters`],
//! sans-IO); [`GatewayMetrics::observe`] copies them into the registry on
//! the gateway's one-second observation tick, with the peer, session and
//! outbox figures of the same moment. A scrape therefore sees values at
//! most a second old, and reading them never takes the node's lock.
//!
//! No series carries a user, a device or an address: per-device detail
//! belongs to the audit log, and a label per device would grow the
//! series with the fleet.
//!
//! The endpoint is plain HTTP (as Prometheus scrapes by default) and
//! unauthenticated, like node_exporter's: it listens only where
//! `--metrics-listen` says, off by default; the admin guide says to keep
//! it on loopback or a management network.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use porta_tunnel::node::{Drop, NodeCounters};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The content type of the OpenMetrics text format, which Prometheus
/// negotiates.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// How long a scraper may take to send its request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Scrapers served at once; more connections are closed as soon as they
/// are accepted. Prometheus keeps one per target, so this is room for a
/// few servers and a person with curl, and the endpoint cannot be used to
/// take the process's descriptors.
pub const MAX_SCRAPE_CONNECTIONS: usize = 16;

/// One label: its name and value.
type Label = [(&'static str, &'static str); 1];

/// A gateway's series, registered under `porta_gateway_`.
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    peers: Gauge,
    sessions: Gauge,
    outbox: Gauge,
    data_write_failing: Gauge,
    handshakes: Family<Label, Counter>,
    cookie_replies: Counter,
    datagrams: Family<Label, Counter>,
    bytes: Family<Label, Counter>,
    dropped: Family<Label, Counter>,
}

impl GatewayMetrics {
    /// Registers the series in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            peers: Gauge::default(),
            sessions: Gauge::default(),
            outbox: Gauge::default(),
            data_write_failing: Gauge::default(),
            handshakes: Family::default(),
            cookie_replies: Counter::default(),
            datagrams: Family::default(),
            bytes: Family::default(),
            dropped: Family::default(),
        };
        let gateway = registry.sub_registry_with_prefix("porta_gateway");
        gateway.register(
            "peers",
            "Peers (enrolled devices) installed in the gateway",
            metrics.peers.clone(),
        );
        gateway.register(
            "sessions",
            "Sessions open now (devices that sent data recently)",
            metrics.sessions.clone(),
        );
        gateway.register(
            "outbox_events",
            "Connection events waiting to be recorded by the controller",
            metrics.outbox.clone(),
        );
        gateway.register(
            "data_write_failing",
            "1 while the gateway cannot write to its data directory (a full disk): connection \
             events wait in memory and are lost if it stops",
            metrics.data_write_failing.clone(),
        );
        gateway.register(
            "handshakes",
            "WireGuard handshakes, by result (completed, failed)",
            metrics.handshakes.clone(),
        );
        gateway.register(
            "cookie_replies",
            "Cookie replies sent to initiators while under load",
            metrics.cookie_replies.clone(),
        );
        gateway.register(
            "datagrams",
            "WireGuard UDP datagrams, by direction (in, out)",
            metrics.datagrams.clone(),
        );
        gateway.register(
            "bytes",
            "Bytes of WireGuard UDP datagrams, by direction (in, out)",
            metrics.bytes.clone(),
        );
        gateway.register(
            "dropped_packets",
            "Packets and datagrams dropped, by reason (filtered: the destination is not \
             allowed; unknown_peer; throttled: handshakes over a source's allowance, under load; …)",
            metrics.dropped.clone(),
        );
        metrics
    }

    /// Copies the node's counters and the current figures in. Every
    /// series is set, zeros included, so rate() and alerts see a zero
    /// rather than no series.
    pub fn observe(&self, counters: &NodeCounters, peers: usize, sessions: usize, outbox: usize) {
        self.peers.set(saturating_i64(peers));
        self.sessions.set(saturating_i64(sessions));
        self.outbox.set(saturating_i64(outbox));
        let set = |family: &Family<Label, Counter>, label: Label, value: u64| {
            family
                .get_or_create(&label)
                .inner()
                .store(value, Ordering::Relaxed);
        };
        set(
            &self.handshakes,
            [("result", "completed")],
            counters.handshakes_completed,
        );
        set(
            &self.handshakes,
            [("result", "failed")],
            counters.handshakes_failed,
        );
        self.cookie_replies
            .inner()
            .store(counters.cookie_replies_sent, Ordering::Relaxed);
        set(
            &self.datagrams,
            [("direction", "in")],
            counters.datagrams_received,
        );
        set(
            &self.datagrams,
            [("direction", "out")],
            counters.datagrams_sent,
        );
        set(&self.bytes, [("direction", "in")], counters.bytes_received);
        set(&self.bytes, [("direction", "out")], counters.bytes_sent);
        for reason in Drop::ALL {
            set(
                &self.dropped,
                [("reason", reason.as_str())],
                counters.dropped_for(reason),
            );
        }
    }
}

impl GatewayMetrics {
    /// Whether writes to the data directory are failing now.
    pub fn set_data_write_failing(&self, failing: bool) {
        self.data_write_failing.set(i64::from(failing));
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The `/metrics` endpoint's listening socket.
#[derive(Debug)]
pub struct Exporter {
    listener: TcpListener,
}

impl Exporter {
    /// Listens on `addr` (bound at once, so a taken port fails the start).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "serving metrics at /metrics");
        Ok(Self { listener })
    }

    /// Serves `registry` as `GET /metrics` until `shutdown`.
    pub async fn serve(self, registry: Registry, shutdown: impl Future<Output = ()>) {
        let registry = Arc::new(registry);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPE_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of descriptors and the like: pause rather than spin.
                        tracing::warn!(%error, "metrics: accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => return,
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::debug!(
                    limit = MAX_SCRAPE_CONNECTIONS,
                    "metrics: too many connections; closed a new one"
                );
                continue;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                serve_connection(stream, registry).await;
                drop(slot);
            });
        }
    }
}

/// Answers one scraper's requests (HTTP/1.1, kept alive).
async fn serve_connection(stream: TcpStream, registry: Arc<Registry>) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let response = respond(&registry, &request);
        async move { Ok::<_, Infallible>(response) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%error, "metrics: a scrape connection ended with an error");
    }
}

/// The answer to one request: the registry's text at `/metrics`.
fn respond<B>(registry: &Registry, request: &Request<B>) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "Porta serves its metrics at /metrics\n",
        );
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode the metrics\n",
        );
    }
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(OPENMETRICS),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_under_their_names_without_any_device() {
        let mut registry = Registry::default();
        let metrics = GatewayMetrics::register(&mut registry);
        let mut counters = NodeCounters {
            handshakes_completed: 3,
            handshakes_failed: 1,
            bytes_received: 4096,
            ..NodeCounters::default()
        };
        counters.dropped[Drop::Filtered as usize] = 7;
        metrics.observe(&counters, 12, 2, 0);
        let request = Request::get("/metrics").body(()).unwrap_or_default();
        let response = respond(&registry, &request);
        assert_eq!(response.status(), StatusCode::OK);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap_or_default();
        for line in [
            "porta_gateway_peers 12",
            "porta_gateway_sessions 2",
            "porta_gateway_handshakes_total{result=\"completed\"} 3",
            "porta_gateway_handshakes_total{result=\"failed\"} 1",
            "porta_gateway_bytes_total{direction=\"in\"} 4096",
            "porta_gateway_dropped_packets_total{reason=\"filtered\"} 7",
            "porta_gateway_dropped_packets_total{reason=\"throttled\"} 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        let other = Request::get("/").body(()).unwrap_or_default();
        assert_eq!(respond(&registry, &other).status(), StatusCode::NOT_FOUND);
    }
}
