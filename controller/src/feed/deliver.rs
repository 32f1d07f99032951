//! The feed's IO shell: one connection at a time to the collector,
//! records sent after what it has, its acknowledgements taken (RELP),
//! the position saved, and on any failure a pause (1 s, doubling to 30 s)
//! and a new connection that resumes after the last record delivered.

use super::cursor::{self, Outgoing, Position};
use super::relp::Session;
use super::{Feed, Framing};
use crate::state::Controller;
use porta_proto::audit::Log;
use porta_proto::pb;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Plain syslog or JSON lines cannot tell what a broken connection lost:
/// after a break, what was written this long before it is sent again.
pub const RESEND_WINDOW: Duration = Duration::from_secs(30);
/// Records read from the store at a time.
const BATCH: usize = 500;
/// RELP messages sent and not yet acknowledged, at most.
const RELP_WINDOW: usize = 1_024;
/// How often the logs are checked for new records while idle.
const POLL: Duration = Duration::from_millis(250);
/// Connecting (TCP, TLS, RELP open) gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A RELP collector that acknowledges nothing for this long is dropped.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest pause between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The feed's state since the controller started.
#[derive(Clone, Debug, Default)]
struct State {
    connected: bool,
    delivered: Position,
    last_error: String,
    last_error_at: u64,
    last_delivery_at: u64,
    delivered_since_start: u64,
}

/// What `portactl logs feed status` asks about.
#[derive(Clone, Debug)]
pub struct FeedMonitor {
    target: String,
    acknowledged: bool,
    state: Arc<Mutex<State>>,
}

impl FeedMonitor {
    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The status, with each log's newest record from `ctl`'s store.
    pub fn status(&self, ctl: &Controller) -> crate::error::Result<pb::FeedStatus> {
        let usage = ctl.store().usage()?;
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(pb::FeedStatus {
            configured: true,
            target: self.target.clone(),
            acknowledged: self.acknowledged,
            connected: state.connected,
            connection_delivered: state.delivered.connection,
            connection_head: usage.connection_records,
            admin_delivered: state.delivered.admin,
            admin_head: usage.admin_records,
            last_error: state.last_error,
            last_error_at: state.last_error_at,
            last_delivery_at: state.last_delivery_at,
            delivered_since_start: state.delivered_since_start,
        })
    }
}

/// Starts the feed; it runs until the controller shuts down.
pub fn start(feed: Feed, ctl: Controller) -> FeedMonitor {
    let monitor = FeedMonitor {
        target: feed.target.clone(),
        acknowledged: feed.framing == Framing::Relp,
        state: Arc::default(),
    };
    tokio::spawn(run(feed, ctl, monitor.clone()));
    monitor
}

/// Resolves once the controller is shutting down.
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A connection's two directions, TLS or not.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// What goes on across connections.
struct Delivery {
    feed: Feed,
    ctl: Controller,
    monitor: FeedMonitor,
    hostname: String,
    /// What the collector has.
    position: Position,
    /// Plain transports: what was written when, for [`RESEND_WINDOW`].
    written: VecDeque<(Instant, Log, u64)>,
}

async fn run(feed: Feed, ctl: Controller, monitor: FeedMonitor) {
    let mut shutdown = ctl.shutdown_signal();
    let position = loop {
        match cursor::load(ctl.store(), &feed.target) {
            Ok(position) => break position,
            Err(error) => {
                tracing::error!(%error, "feed: cannot read where it stopped; retrying");
                tokio::select! {
                    () = tokio::time::sleep(MAX_BACKOFF) => {}
                    () = stopped(&mut shutdown) => return,
                }
            }
        }
    };
    monitor.update(|s| s.delivered = position);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    tracing::info!(target = %feed.target, connection = position.connection, admin = position.admin, "feed: starting after these records");
    let mut delivery = Delivery {
        feed,
        ctl,
        monitor,
        hostname,
        position,
        written: VecDeque::new(),
    };
    let mut backoff = Duration::from_secs(1);
    let mut last_logged = String::new();
    loop {
        let before = delivery.position;
        let outcome = delivery.connect_and_send(&mut shutdown).await;
        delivery.monitor.update(|s| s.connected = false);
        let error = match outcome {
            Ok(()) => return,
            Err(error) => error,
        };
        delivery.resend_what_may_be_lost().await;
        let message = format!("{error:#}");
        // The same failure every few seconds is logged once, until it changes.
        if message != last_logged {
            tracing::warn!(target = %delivery.feed.target, error = %message, "feed: the collector is unreachable or failed; retrying");
            last_logged = message.clone();
        }
        delivery.monitor.update(|s| {
            s.last_error = message;
            s.last_error_at = crate::clock::now();
        });
        if delivery.position != before {
            backoff = Duration::from_secs(1);
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stopped(&mut shutdown) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

impl Delivery {
    async fn connect(&self) -> anyhow::Result<Box<dyn Connection>> {
        let feed = &self.feed;
        let tcp = TcpStream::connect((feed.host.as_str(), feed.port)).await?;
        tcp.set_nodelay(true)?;
        Ok(match &feed.tls {
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(feed.host.clone())?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        })
    }

    /// One connection: sends until it fails (an error) or the controller
    /// stops (`Ok`).
    async fn connect_and_send(
        &mut self,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|_| anyhow::anyhow!("connecting took longer than {CONNECT_TIMEOUT:?}"))??;
        let (mut reader, mut writer) = tokio::io::split(connection);
        let mut buffer = vec![0u8; 16 * 1024];
        let mut relp = None;
        if self.feed.framing == Framing::Relp {
            let software = format!("porta-controller,{}", env!("CARGO_PKG_VERSION"));
            let (mut session, open) = Session::<(Log, u64)>::open(&software);
            writer.write_all(&open).await?;
            writer.flush().await?;
            tokio::time::timeout(CONNECT_TIMEOUT, async {
                while !session.is_open() {
                    let n = reader.read(&mut buffer).await?;
                    anyhow::ensure!(
                        n > 0,
                        "the collector closed the connection during the RELP open"
                    );
                    session.receive(&buffer[..n])?;
                }
                Ok(())
            })
            .await
            .map_err(|_| anyhow::anyhow!("the collector did not answer the RELP open"))??;
            relp = Some(session);
        }
        self.monitor.update(|s| s.connected = true);
        tracing::info!(target = %self.feed.target, "feed: connected");
        let mut sent = self.position;
        let mut last_answer = Instant::now();
        loop {
            let room = relp
                .as_ref()
                .map_or(BATCH, |s| RELP_WINDOW.saturating_sub(s.unanswered()));
            let batch = if room > 0 {
                cursor::next_batch(self.ctl.store(), sent, room.min(BATCH))?
            } else {
                Vec::new()
            };
            if !batch.is_empty() {
                let mut bytes = Vec::new();
                for record in &batch {
                    self.frame(record, relp.as_mut(), &mut bytes);
                    sent.advance(record.log, record.sequence);
                }
                writer.write_all(&bytes).await?;
                writer.flush().await?;
                if relp.is_none() {
                    // No acknowledgements: written is delivered.
                    let now = Instant::now();
                    self.written
                        .extend(batch.iter().map(|r| (now, r.log, r.sequence)));
                    while self
                        .written
                        .front()
                        .is_some_and(|(at, ..)| at.elapsed() > RESEND_WINDOW)
                    {
                        self.written.pop_front();
                    }
                    self.delivered(batch.iter().map(|r| (r.log, r.sequence)).collect())
                        .await?;
                } else if relp.as_ref().is_some_and(|s| s.unanswered() == batch.len()) {
                    last_answer = Instant::now();
                }
                continue;
            }
            tokio::select! {
                read = reader.read(&mut buffer) => {
                    let n = read?;
                    anyhow::ensure!(n > 0, "the collector closed the connection");
                    if let Some(session) = relp.as_mut() {
                        let acknowledged = session.receive(&buffer[..n])?;
                        if !acknowledged.is_empty() {
                            last_answer = Instant::now();
                            self.delivered(acknowledged).await?;
                        }
                    }
                }
                () = tokio::time::sleep(POLL) => {
                    if relp.as_ref().is_some_and(|s| s.unanswered() > 0)
                        && last_answer.elapsed() > ANSWER_TIMEOUT
                    {
                        anyhow::bail!("the collector acknowledged nothing for {ANSWER_TIMEOUT:?}");
                    }
                }
                () = stopped(shutdown) => {
                    self.close(relp.as_mut(), &mut reader, &mut writer, &mut buffer).await;
                    return Ok(());
                }
            }
        }
    }

    /// Appends `record` as the framing wants it.
    fn frame(&self, record: &Outgoing, relp: Option<&mut Session<(Log, u64)>>, out: &mut Vec<u8>) {
        match self.feed.framing {
            Framing::JsonLines => {
                out.extend_from_slice(record.json.as_bytes());
                out.push(b'\n');
            }
            Framing::Syslog | Framing::Relp => {
                let message =
                    porta_proto::feed::syslog_message(&self.hostname, &record.at, &record.json);
                match relp {
                    Some(session) => {
                        out.extend(session.send((record.log, record.sequence), message.as_bytes()))
                    }
                    // RFC 6587 octet counting, as RFC 5425 frames over TLS.
                    None => {
                        out.extend_from_slice(format!("{} ", message.len()).as_bytes());
                        out.extend_from_slice(message.as_bytes());
                    }
                }
            }
        }
    }

    /// The collector has these records: the position moves and is saved.
    async fn delivered(&mut self, records: Vec<(Log, u64)>) -> anyhow::Result<()> {
        for (log, sequence) in &records {
            self.position.advance(*log, *sequence);
        }
        cursor::save(self.ctl.store(), &self.feed.target, self.position).await?;
        let position = self.position;
        self.monitor.update(|s| {
            s.delivered = position;
            s.last_delivery_at = crate::clock::now();
            s.delivered_since_start += records.len() as u64;
        });
        Ok(())
    }

    /// After a broken plain connection: what was written within
    /// [`RESEND_WINDOW`] before the break goes again.
    async fn resend_what_may_be_lost(&mut self) {
        let Some(..) = self.written.front() else {
            return;
        };
        for (at, log, sequence) in std::mem::take(&mut self.written) {
            if at.elapsed() <= RESEND_WINDOW {
                self.position.rewind(log, sequence - 1);
            }
        }
        if let Err(error) = cursor::save(self.ctl.store(), &self.feed.target, self.position).await {
            tracing::error!(%error, "feed: cannot save its position");
        }
        let position = self.position;
        self.monitor.update(|s| s.delivered = position);
    }

    /// Ends a session politely: RELP waits (briefly) for the answers to
    /// what was sent, then closes.
    async fn close(
        &mut self,
        relp: Option<&mut Session<(Log, u64)>>,
        reader: &mut (impl AsyncRead + Unpin),
        writer: &mut (impl AsyncWrite + Unpin),
        buffer: &mut [u8],
    ) {
        if let Some(session) = relp {
            let deadline = Instant::now() + Duration::from_secs(2);
            while session.unanswered() > 0 && Instant::now() < deadline {
                let Ok(Ok(n)) = tokio::time::timeout_at(deadline.into(), reader.read(buffer)).await
                else {
                    break;
                };
                match session.receive(&buffer[..n]) {
                    Ok(acknowledged) if n > 0 => {
                        let _ = self.delivered(acknowledged).await;
                    }
                    _ => break,
                }
            }
            let _ = writer.write_all(&session.close()).await;
        }
        let _ = writer.flush().await;
        let _ = writer.shutdown().await;
    }
}
