//! `porta-controller init`: a new data directory.
//!
//! ```text
//! DATA/            0700
//!   store/         sled: settings, users, devices, …
//!   tls/cert.pem   the certificate clients pin
//!   tls/key.pem    0600
//!   gateway.key    the embedded gateway's WireGuard private key, 0600
//! ```
//!
//! The first admin's login invitation is printed once and never stored:
//! only its hash is.

use crate::settings::{DAY, Settings};
use crate::state::Controller;
use crate::store::Store;
use crate::store::records::{GatewayRecord, Role};
use crate::tls::{Identity, TlsPaths};
use anyhow::{Context, Result, bail};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use porta_tunnel::keys::PrivateKey;
use rand::RngCore;
use serde::Serialize;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The API port used when an address is given without one.
pub const DEFAULT_API_PORT: u16 = 7443;
/// WireGuard's customary UDP port.
pub const DEFAULT_WG_PORT: u16 = 51820;
/// The default IPv4 VPN prefix.
pub const DEFAULT_VPN_PREFIX: &str = "10.77.0.0/16";

/// Everything `init` may be told.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The data directory to create.
    pub data: PathBuf,
    /// Public `host[:port]` of the WireGuard endpoint (UDP); default: this
    /// host's first non-loopback IPv4 address, port 51820.
    pub endpoint: Option<String>,
    /// Public host:port of the API written into invitations; default: the
    /// endpoint's host with port 7443.
    pub api_endpoint: Option<String>,
    /// IPv4 prefix for device addresses.
    pub vpn_prefix: Ipv4Net,
    /// IPv6 ULA prefix; `None` picks a random ULA /64 unless `no_ipv6`.
    pub vpn_prefix6: Option<Ipv6Net>,
    /// Give devices IPv4 only.
    pub no_ipv6: bool,
    /// Prefixes every device may reach.
    pub routes: Vec<IpNet>,
    /// DNS servers for devices.
    pub dns: Vec<IpAddr>,
    /// DNS search domains for devices.
    pub search_domains: Vec<String>,
    /// The town hall's name, shown in invitations.
    pub organization: String,
    /// The town's own certificate and key, instead of a self-signed one.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How long a revoked device's address is held back.
    pub address_quarantine_secs: u64,
    /// Default lifetime of invitations.
    pub token_ttl_secs: u64,
}

impl InitOptions {
    /// Defaults for `data`: what `serve --init` and a bare `init` use.
    pub fn defaults(data: PathBuf) -> Self {
        Self {
            data,
            endpoint: None,
            api_endpoint: None,
            vpn_prefix: DEFAULT_VPN_PREFIX.parse().expect("valid constant"),
            vpn_prefix6: None,
            no_ipv6: false,
            routes: Vec::new(),
            dns: Vec::new(),
            search_domains: Vec::new(),
            organization: String::new(),
            tls: None,
            address_quarantine_secs: 30 * DAY,
            token_ttl_secs: 3 * DAY,
        }
    }
}

/// What `init` made, for people (text) and scripts (`--json`).
#[derive(Debug, Serialize)]
pub struct InitReport {
    /// The data directory.
    pub data: PathBuf,
    /// Where clients reach the API.
    pub api_endpoint: String,
    /// Where WireGuard traffic goes.
    pub wg_endpoint: String,
    /// The certificate fingerprint clients pin.
    pub certificate_sha256: String,
    /// The embedded gateway's public key.
    pub gateway_public_key: String,
    /// Device address prefixes.
    pub vpn_prefixes: Vec<String>,
    /// The first admin's login invitation (shown only now).
    pub admin_invitation: String,
    /// When that invitation expires (RFC 3339).
    pub admin_invitation_expires: String,
    /// Prefixes every device reaches, whatever its groups.
    pub routes: Vec<String>,
    /// What the admin should know before enrolling anyone.
    pub warnings: Vec<String>,
}

/// A warning when staff at home cannot reach `endpoint` (`what`): its host
/// is a private, shared, loopback or link-local address. Invitations and
/// device configurations carry it.
pub fn unreachable_from_home(what: &str, endpoint: &str) -> Option<String> {
    let host = split_host(endpoint)
        .0
        .trim_start_matches('[')
        .trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    let inside = match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                // Shared address space (carrier-grade NAT), RFC 6598.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    inside.then(|| {
        format!(
            "the {what} endpoint {endpoint} is a private or local address: staff at home \
             cannot reach it, and every invitation and device configuration carries it. \
             Before enrolling anyone, give the town's public name: stop the controller, move \
             the data directory aside and run `porta-controller init --endpoint <public \
             name>` again (a test on this network may ignore this)"
        )
    })
}

/// Creates and fills a new data directory. Refuses to touch one that
/// exists and is not empty.
pub async fn init(options: InitOptions, now: u64) -> Result<InitReport> {
    // Checked before anything is written.
    let organization = crate::validate::text("--organization", &options.organization)?;
    let data = &options.data;
    prepare_empty_dir(data)?;

    let (wg_endpoint, api_endpoint) = endpoints(&options)?;
    let identity = match &options.tls {
        Some((cert, key)) => Identity::from_files(cert, key)?,
        None => Identity::self_signed(certificate_names(&api_endpoint))?,
    };
    identity.save(&TlsPaths::in_dir(data))?;
    let fingerprint = identity.fingerprint()?;

    let gateway_key = PrivateKey::generate();
    porta_proto::files::create_private(
        &data.join("gateway.key"),
        format!("{}\n", gateway_key.to_base64()).as_bytes(),
    )?;
    let gateway_public_key = gateway_key.public_key().to_base64();

    let vpn_prefix6 = match (options.vpn_prefix6, options.no_ipv6) {
        (_, true) => None,
        (Some(p), false) => Some(p.trunc()),
        (None, false) => Some(random_ula()),
    };
    let settings = Settings {
        organization,
        gateway_name: "embedded".into(),
        vpn_prefix_v4: options.vpn_prefix.trunc(),
        vpn_prefix_v6: vpn_prefix6,
        wg_endpoint: wg_endpoint.clone(),
        api_endpoint: api_endpoint.clone(),
        routes: options.routes.iter().map(IpNet::trunc).collect(),
        dns: options.dns.clone(),
        search_domains: options.search_domains.clone(),
        keepalive_secs: 25,
        mtu: 1420,
        address_quarantine_secs: options.address_quarantine_secs,
        token_ttl_secs: options.token_ttl_secs,
    };
    if crate::ipam::capacity(settings.vpn_prefix_v4) == 0 {
        bail!(
            "--vpn-prefix {} is too small: it must leave room for the gateway and at least one device (at most /30)",
            settings.vpn_prefix_v4
        );
    }

    let store = Store::open(&data.join("store")).context("creating the store")?;
    let gateway = GatewayRecord {
        public_key: Some(gateway_key.public_key()),
        ..GatewayRecord::new(&settings.gateway_name, &wg_endpoint, true, None)
    };
    store
        .write(|t| {
            t.put_settings(&settings)?;
            t.put_gateway(&gateway)
        })
        .await?;
    let controller = Controller::new(store, fingerprint, now)?;
    let admin_ttl = 7 * DAY;
    let (_, admin_invitation) = controller
        .create_api_credential(
            &crate::logs::Actor::system("porta-controller init"),
            "admin",
            Role::Admin,
            admin_ttl,
            now,
        )
        .await?;

    let mut warnings: Vec<String> = [("WireGuard", &wg_endpoint), ("API", &api_endpoint)]
        .into_iter()
        .filter_map(|(what, endpoint)| unreachable_from_home(what, endpoint))
        .collect();
    if !settings.routes.is_empty() {
        warnings.push(format!(
            "--route {} is reached by every device, whatever its groups; for who may reach \
             what, allow destinations per group instead (`portactl groups allow`)",
            settings
                .routes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut vpn_prefixes = vec![settings.vpn_prefix_v4.to_string()];
    vpn_prefixes.extend(settings.vpn_prefix_v6.map(|p| p.to_string()));
    Ok(InitReport {
        data: data.clone(),
        api_endpoint,
        wg_endpoint,
        certificate_sha256: fingerprint.to_string(),
        gateway_public_key,
        vpn_prefixes,
        admin_invitation,
        routes: settings.routes.iter().map(ToString::to_string).collect(),
        warnings,
        admin_invitation_expires: humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(now + admin_ttl),
        )
        .to_string(),
    })
}

/// True if `data` holds an initialised controller.
pub fn is_initialised(data: &Path) -> bool {
    data.join("store").exists()
}

fn prepare_empty_dir(data: &Path) -> Result<()> {
    if data.exists() {
        let mut entries =
            std::fs::read_dir(data).with_context(|| format!("reading {}", data.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty; Porta will not overwrite it (it may hold an initialised controller: \
                 use `porta-controller serve --data {}`, or choose another --data)",
                data.display(),
                data.display()
            );
        }
    }
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

fn endpoints(options: &InitOptions) -> Result<(String, String)> {
    let wg = match &options.endpoint {
        Some(e) => with_default_port(e, DEFAULT_WG_PORT)?,
        None => format!("{}:{DEFAULT_WG_PORT}", bracket(&default_host())),
    };
    let api = match &options.api_endpoint {
        Some(a) => with_default_port(a, DEFAULT_API_PORT)?,
        None => format!("{}:{DEFAULT_API_PORT}", split_host(&wg).0),
    };
    Ok((wg, api))
}

/// `host` → `host:port`; `host:port` and `[v6]:port` kept as they are.
fn with_default_port(address: &str, port: u16) -> Result<String> {
    let address = address.trim();
    if address.is_empty() || address.contains(char::is_whitespace) {
        bail!("{address:?} is not a host or host:port");
    }
    if address.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(address.to_owned());
    }
    if let Ok(ip) = address
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(format!("{}:{port}", bracket(&ip.to_string())));
    }
    match address.rsplit_once(':') {
        Some((host, p)) if !host.is_empty() && p.parse::<u16>().is_ok() => Ok(address.to_owned()),
        Some(_) => bail!("{address:?} is not a host or host:port"),
        None => Ok(format!("{address}:{port}")),
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn split_host(address: &str) -> (&str, &str) {
    address.rsplit_once(':').unwrap_or((address, ""))
}

/// This host's first non-loopback IPv4 address, or 127.0.0.1.
fn default_host() -> String {
    if_addrs::get_if_addrs()
        .ok()
        .and_then(|ifs| {
            ifs.into_iter()
                .find(|i| !i.is_loopback() && i.ip().is_ipv4())
                .map(|i| i.ip().to_string())
        })
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// Names the self-signed certificate carries: the API host, this host's
/// name, and loopback, so `grpcurl` and browsers show something sensible
/// (Porta's own clients pin the fingerprint and ignore names).
fn certificate_names(api_endpoint: &str) -> Vec<String> {
    let host = split_host(api_endpoint)
        .0
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let mut names = vec![host, "localhost".into(), "127.0.0.1".into()];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        names.push(h.trim().to_owned());
    }
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
    names
}

/// A random RFC 4193 unique local /64: fd00::/8 + 40 random bits + subnet 0.
fn random_ula() -> Ipv6Net {
    let mut global_id = [0u8; 5];
    rand::rngs::OsRng.fill_bytes(&mut global_id);
    let mut octets = [0u8; 16];
    octets[0] = 0xfd;
    octets[1..6].copy_from_slice(&global_id);
    Ipv6Net::new(std::net::Ipv6Addr::from(octets), 64).expect("64 is a valid prefix length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_added_only_when_missing() {
        assert_eq!(
            with_default_port("vpn.valls.cat", 51820).expect("ok"),
            "vpn.valls.cat:51820"
        );
        assert_eq!(
            with_default_port("vpn.valls.cat:443", 51820).expect("ok"),
            "vpn.valls.cat:443"
        );
        assert_eq!(
            with_default_port("2001:db8::1", 7443).expect("ok"),
            "[2001:db8::1]:7443"
        );
        assert_eq!(
            with_default_port("[2001:db8::1]:9", 7443).expect("ok"),
            "[2001:db8::1]:9"
        );
        assert!(with_default_port("bad host", 1).is_err());
        assert!(with_default_port("host:notaport", 1).is_err());
    }

    #[test]
    fn random_ula_is_a_unique_local_64() {
        let ula = random_ula();
        assert_eq!(ula.prefix_len(), 64);
        assert_eq!(ula.addr().octets()[0], 0xfd);
        assert_ne!(random_ula(), ula);
    }
}
