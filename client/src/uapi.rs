//! The standard WireGuard control socket (the cross-platform "UAPI"), so
//! `wg show` works against a running `porta up`, and `porta status` reads
//! the same socket.
//!
//! Only `get=1` is served. `set=1` is refused with EPERM: this tunnel's
//! configuration comes from the controller, not from local edits.
//! Keys are hex, handshake times are wall-clock Unix time, as `wg` expects.

use anyhow::{Context, Result};
use porta_tunnel::Node;
use porta_tunnel::keys::PrivateKey;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where wg looks for an interface's socket.
pub fn socket_path(interface: &str) -> PathBuf {
    PathBuf::from("/var/run/wireguard").join(format!("{interface}.sock"))
}

/// What a `get` reports, gathered under the node lock.
pub struct Snapshot {
    /// Hex private key.
    pub private_key: String,
    /// UDP port.
    pub listen_port: u16,
    /// One entry per peer.
    pub peers: Vec<PeerSnapshot>,
}

/// One peer in a [`Snapshot`].
pub struct PeerSnapshot {
    /// Hex public key.
    pub public_key: String,
    /// Current endpoint.
    pub endpoint: Option<std::net::SocketAddr>,
    /// Allowed IPs.
    pub allowed_ips: Vec<String>,
    /// Keepalive seconds.
    pub keepalive: u16,
    /// Wall-clock time of the last handshake.
    pub last_handshake: Option<SystemTime>,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// Reads the node into a snapshot.
pub fn snapshot(node: &Node, key: &PrivateKey, listen_port: u16) -> Snapshot {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let peers = node
        .peer_ids()
        .filter_map(|id| Some((node.peer_config(id)?, node.stats(id)?)))
        .map(|(config, stats)| PeerSnapshot {
            public_key: hex::encode(config.public_key.0),
            endpoint: stats.endpoint,
            allowed_ips: config.allowed_ips.iter().map(ToString::to_string).collect(),
            keepalive: config.persistent_keepalive.unwrap_or(0),
            last_handshake: stats.last_handshake.map(|at| wall - now.duration_since(at)),
            rx_bytes: stats.rx_bytes,
            tx_bytes: stats.tx_bytes,
        })
        .collect();
    Snapshot {
        private_key: hex::encode(key.to_bytes()),
        listen_port,
        peers,
    }
}

impl Snapshot {
    /// The `get` response body, in the UAPI's key=value lines.
    pub fn render(&self) -> String {
        let mut out = format!(
            "private_key={}\nlisten_port={}\n",
            self.private_key, self.listen_port
        );
        for peer in &self.peers {
            out += &format!("public_key={}\n", peer.public_key);
            if let Some(endpoint) = peer.endpoint {
                out += &format!("endpoint={endpoint}\n");
            }
            out += &format!("persistent_keepalive_interval={}\n", peer.keepalive);
            for ip in &peer.allowed_ips {
                out += &format!("allowed_ip={ip}\n");
            }
            let since = peer
                .last_handshake
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .unwrap_or_default();
            out += &format!(
                "last_handshake_time_sec={}\nlast_handshake_time_nsec={}\nrx_bytes={}\ntx_bytes={}\nprotocol_version=1\n",
                since.as_secs(),
                since.subsec_nanos(),
                peer.rx_bytes,
                peer.tx_bytes
            );
        }
        out + "errno=0\n\n"
    }
}

/// The served control socket. Dropping it removes the socket and ends its
/// thread (with the thread goes `snapshot`, and whatever it holds: the
/// tunnel service takes tunnels down and up without exiting).
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept so the thread sees the flag.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves the socket for `interface` on a thread; `snapshot` is called for
/// every `get`.
pub fn serve(
    interface: &str,
    snapshot: impl Fn() -> Snapshot + Send + Sync + 'static,
) -> Result<Server> {
    let path = socket_path(interface);
    let dir = path.parent().context("socket directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("porta-uapi".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let _ = answer(stream, &snapshot);
            }
        })?;
    Ok(Server { path, stop })
}

fn answer(stream: UnixStream, snapshot: &dyn Fn() -> Snapshot) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    // Read the rest of the request up to its blank line.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 && line != "\n" {
        line.clear();
    }
    let mut stream = stream;
    match first.trim() {
        "get=1" => stream.write_all(snapshot().render().as_bytes()),
        _ => stream.write_all(b"errno=1\n\n"),
    }
}

/// Asks a running tunnel for its state (what `wg show` would print), as
/// key/value pairs in order.
pub fn query(interface: &str) -> Result<Vec<(String, String)>> {
    let path = socket_path(interface);
    let mut stream = UnixStream::connect(&path).with_context(|| {
        format!(
            "the tunnel {interface} is not up (no control socket at {})",
            path.display()
        )
    })?;
    stream.write_all(b"get=1\n\n")?;
    let mut pairs = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once('=') {
            pairs.push((k.to_owned(), v.to_owned()));
        }
    }
    Ok(pairs)
}
