//! The controller's Prometheus series (`porta_controller_…`), served by
//! `serve --metrics-listen` through the gateway crate's exporter, beside
//! the embedded gateway's `porta_gateway_…` series.
//!
//! Two kinds of series:
//! * events, counted where they happen through [`ControllerMetrics`]
//!   (held by the [`Controller`], so counting never depends on whether
//!   metrics are served): RPCs by method and status code with their
//!   latency ([`RpcMetricsLayer`], one tower layer around every service),
//!   enrollments, revocations and how long the gateways took to confirm
//!   them, refused credentials, retention runs, open config streams;
//! * state, read at scrape time ([`StateCollector`]): connected gateways
//!   and how many revisions each is behind, the store's size and the free
//!   space beside it, and how many records each log has had.
//!
//! No label names a user, a device or an address (cardinality, privacy):
//! per-device detail is the audit log's. The method label is bounded too:
//! a path no service implements counts as `unknown`.

use crate::state::Controller;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::codegen::http;

/// Labels: a fixed set of (name, value) pairs.
type Labels<const N: usize> = [(&'static str, String); N];
/// A histogram family whose buckets come from a plain constructor.
type Histograms<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

/// Latency buckets: 0.5 ms to ~16 s, doubling.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The series counted as things happen.
#[derive(Debug)]
pub struct ControllerMetrics {
    rpcs: Family<Labels<2>, Counter>,
    rpc_seconds: Histograms<1>,
    enrollments: Counter,
    revocations: Counter,
    revocation_confirm_seconds: Histogram,
    revocations_unconfirmed: Counter,
    auth_failures: Family<Labels<1>, Counter>,
    clock_corrected: Family<Labels<1>, Counter>,
    retention_runs: Family<Labels<1>, Counter>,
    config_watchers: Gauge,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        Self {
            rpcs: Family::default(),
            rpc_seconds: Family::new_with_constructor(latency_buckets),
            enrollments: Counter::default(),
            revocations: Counter::default(),
            revocation_confirm_seconds: latency_buckets(),
            revocations_unconfirmed: Counter::default(),
            auth_failures: Family::default(),
            clock_corrected: Family::default(),
            retention_runs: Family::default(),
            config_watchers: Gauge::default(),
        }
    }
}

impl ControllerMetrics {
    /// One RPC answered: its method path, its gRPC status code name.
    pub fn rpc(&self, method: &str, code: &str, took: Duration) {
        let method = method.to_owned();
        self.rpcs
            .get_or_create(&[("method", method.clone()), ("code", code.to_owned())])
            .inc();
        self.rpc_seconds
            .get_or_create(&[("method", method)])
            .observe(took.as_secs_f64());
    }

    /// A device enrolled.
    pub fn enrolled(&self) {
        self.enrollments.inc();
    }

    /// A device revoked; `confirmed_after` is how long until every gateway
    /// confirmed it, `None` if some did not within the wait.
    pub fn revoked(&self, confirmed_after: Option<Duration>) {
        self.revocations.inc();
        match confirmed_after {
            Some(took) => self.revocation_confirm_seconds.observe(took.as_secs_f64()),
            None => {
                self.revocations_unconfirmed.inc();
            }
        }
    }

    /// A credential or invitation was refused; `what` says which kind.
    pub fn auth_failed(&self, what: &'static str) {
        self.auth_failures
            .get_or_create(&[("secret", what.to_owned())])
            .inc();
    }

    /// `events` from `gateway` were recorded at the controller's time: the
    /// gateway's clock was ahead.
    pub fn clock_corrected(&self, gateway: &str, events: u32) {
        if events > 0 {
            self.clock_corrected
                .get_or_create(&[("gateway", gateway.to_owned())])
                .inc_by(u64::from(events));
        }
    }

    /// A retention run ended.
    pub fn retention_ran(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.retention_runs
            .get_or_create(&[("result", result.to_owned())])
            .inc();
    }

    /// A device's config stream opened; it counts until the guard drops.
    pub fn config_watcher(self: &Arc<Self>) -> WatcherGuard {
        self.config_watchers.inc();
        WatcherGuard(self.clone())
    }

    /// A registry with every controller series, the state read from `ctl`
    /// at each scrape. The embedded gateway registers its own next to them.
    pub fn registry(self: &Arc<Self>, ctl: &Controller) -> Registry {
        let mut registry = Registry::default();
        let r = registry.sub_registry_with_prefix("porta_controller");
        r.register(
            "rpc_requests",
            "gRPC requests answered, by method and status code (a stream counts when it opens)",
            self.rpcs.clone(),
        );
        r.register(
            "rpc_duration_seconds",
            "Time to answer a gRPC request (to a stream's opening), by method",
            self.rpc_seconds.clone(),
        );
        r.register("enrollments", "Devices enrolled", self.enrollments.clone());
        r.register(
            "revocations",
            "Devices revoked by an admin",
            self.revocations.clone(),
        );
        r.register(
            "revocation_confirm_seconds",
            "Time from a revocation to its confirmation by every running gateway",
            self.revocation_confirm_seconds.clone(),
        );
        r.register(
            "revocations_unconfirmed",
            "Revocations some gateway had not confirmed after the 10 s wait",
            self.revocations_unconfirmed.clone(),
        );
        r.register(
            "auth_failures",
            "Refused credentials and invitations, by kind of secret",
            self.auth_failures.clone(),
        );
        r.register(
            "clock_corrected_events",
            "Connection events recorded at the controller's time because the gateway's clock was ahead (its own time is kept in the record's reason)",
            self.clock_corrected.clone(),
        );
        r.register(
            "retention_runs",
            "Log retention runs, by result",
            self.retention_runs.clone(),
        );
        r.register(
            "config_watchers",
            "Devices watching their configuration now (open streams)",
            self.config_watchers.clone(),
        );
        r.register_collector(Box::new(StateCollector(ctl.clone())));
        registry
    }
}

/// Counts one open config stream until dropped.
#[derive(Debug)]
pub struct WatcherGuard(Arc<ControllerMetrics>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.config_watchers.dec();
    }
}

/// Reads the controller's state at each scrape.
struct StateCollector(Controller);

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateCollector")
    }
}

impl prometheus_client::collector::Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let fanout = self.0.fanout();
        let latest = *fanout.revisions().borrow();
        let acks = fanout.acks();
        let connected = acks.values().filter(|ack| ack.connected).count();
        gauge(
            &mut encoder,
            "gateways_connected",
            "Gateways following the controller now (the embedded one included).",
            connected as i64,
        )?;
        let mut up = encoder.encode_descriptor(
            "gateway_connected",
            "Whether the gateway follows the controller now (1) or has gone (0), for each gateway seen since the controller started.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (name, ack) in &acks {
            ConstGauge::new(i64::from(ack.connected))
                .encode(up.encode_family(&[("gateway", name.as_str())])?)?;
        }
        let mut lag = encoder.encode_descriptor(
            "gateway_revision_lag",
            "Revisions the gateway has not acknowledged yet (0: in step).",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (name, ack) in &acks {
            let behind = latest.saturating_sub(ack.revision);
            ConstGauge::new(i64::try_from(behind).unwrap_or(i64::MAX))
                .encode(lag.encode_family(&[("gateway", name.as_str())])?)?;
        }
        // Every remote gateway, 1 when it holds a peer set of another
        // history of the store (it confirms nothing; see `gateways list`).
        if let Ok(gateways) = self.0.store().gateways() {
            let mut diverged = encoder.encode_descriptor(
                "gateway_not_following",
                "1 when the gateway holds a peer set of another history of the store (changes a restore undid): it may serve revoked devices until an admin runs `portactl gateways resync`.",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for gateway in gateways.iter().filter(|g| !g.embedded) {
                ConstGauge::new(i64::from(gateway.diverged.is_some()))
                    .encode(diverged.encode_family(&[("gateway", gateway.name.as_str())])?)?;
            }
        }
        gauge(
            &mut encoder,
            "store_witness_missing",
            "1 when the store's witness was missing at start: a store that went back would not be noticed (admin guide, \"Backups and restore\").",
            i64::from(self.0.store().witness_missing().is_some()),
        )?;
        // A store that cannot be read now shows no store series: the
        // scrape still succeeds, and `absent()` alerts can see it.
        if let Ok(usage) = self.0.store().usage() {
            gauge(
                &mut encoder,
                "store_bytes",
                "Size of the store's files on disk.",
                usage.bytes_on_disk as i64,
            )?;
            gauge(
                &mut encoder,
                "data_free_bytes",
                "Free space on the file system of the controller's store.",
                usage.free_bytes as i64,
            )?;
            let mut logs = encoder.encode_descriptor(
                "log_records",
                "Records appended to each log since it began (the newest sequence number).",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (log, records) in [
                ("connection", usage.connection_records),
                ("admin", usage.admin_records),
            ] {
                ConstCounter::new(records).encode(logs.encode_family(&[("log", log)])?)?;
            }
        }
        Ok(())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// Counts every request through the services it wraps (see
/// [`ControllerMetrics::rpc`]).
#[derive(Clone, Debug)]
pub struct RpcMetricsLayer(pub Arc<ControllerMetrics>);

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service [`RpcMetricsLayer`] makes.
#[derive(Clone, Debug)]
pub struct RpcMetrics<S> {
    inner: S,
    metrics: Arc<ControllerMetrics>,
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let answer = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let response = answer.await;
            let code = match &response {
                Ok(response) => status_code(response.headers()),
                Err(_) => tonic::Code::Unknown,
            };
            // Unimplemented is what tonic answers for a path no service
            // has: counting such paths by name would let any caller
            // create series.
            let method = if code == tonic::Code::Unimplemented {
                "unknown"
            } else {
                &method
            };
            metrics.rpc(method, &format!("{code:?}"), started.elapsed());
            response
        })
    }
}

/// The status a response's headers carry; none there means the handler
/// succeeded (a unary answer's OK, or a stream's, comes in the trailers).
fn status_code(headers: &http::HeaderMap) -> tonic::Code {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}
