//! Connecting to a controller: TLS that accepts exactly one certificate.
//!
//! Porta clients do not trust any certificate authority. They learn the
//! SHA-256 fingerprint of the controller's certificate from their invitation
//! and accept a TLS server only if it presents that certificate *and* proves
//! it holds the certificate's private key (the handshake signature is still
//! verified). tonic's own TLS options cannot express "trust this one
//! fingerprint", so the channel gets a small connector of ours: TCP, then
//! tokio-rustls with [`PinnedVerifier`], offered to tonic as plain HTTP/2.

use crate::CertFingerprint;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

/// Why a connection to the controller could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server presented a different certificate than the invitation named.
    #[error(
        "the controller at {address} presented a certificate with fingerprint {actual}, \
         but the invitation expects {expected}: refusing to connect (someone may be \
         intercepting the connection, or the controller's certificate was replaced)"
    )]
    FingerprintMismatch {
        /// Where we connected.
        address: String,
        /// What the invitation pinned.
        expected: CertFingerprint,
        /// What the server presented.
        actual: CertFingerprint,
    },
    /// The address is not `host:port`.
    #[error("{0:?} is not a controller address of the form host:port")]
    BadAddress(String),
    /// TCP, TLS or HTTP/2 failed for another reason.
    #[error("could not reach the controller at {address}")]
    Unreachable {
        /// Where we tried to connect.
        address: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Opens a gRPC channel to `address` (`host:port`), accepting only the
/// certificate whose SHA-256 is `pinned`. Connects eagerly, so a wrong pin
/// or an unreachable controller is reported here.
pub async fn connect(address: &str, pinned: CertFingerprint) -> Result<Channel, ConnectError> {
    let (host, _port) = address
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        .ok_or_else(|| ConnectError::BadAddress(address.to_owned()))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let server_name = ServerName::try_from(host)
        .map_err(|_| ConnectError::BadAddress(address.to_owned()))?
        .to_owned();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mismatch = Arc::new(Mutex::new(None));
    let verifier = Arc::new(PinnedVerifier {
        pinned,
        provider: provider.clone(),
        mismatch: mismatch.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));

    let target = address.to_owned();
    let connector = tower::service_fn(move |_uri: tonic::codegen::http::Uri| {
        let (tls, target, server_name) = (tls.clone(), target.clone(), server_name.clone());
        async move {
            let tcp = TcpStream::connect(&target).await?;
            tcp.set_nodelay(true)?;
            let stream = tls.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });

    // The scheme only tells tonic to speak HTTP/2; TLS is done by the connector.
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|_| ConnectError::BadAddress(address.to_owned()))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|source| match mismatch.lock().ok().and_then(|slot| *slot) {
            Some(actual) => ConnectError::FingerprintMismatch {
                address: address.to_owned(),
                expected: pinned,
                actual,
            },
            None => ConnectError::Unreachable {
                address: address.to_owned(),
                source,
            },
        })
}

/// Accepts exactly the pinned certificate; signatures are checked normally.
#[derive(Debug)]
struct PinnedVerifier {
    pinned: CertFingerprint,
    provider: Arc<CryptoProvider>,
    /// What a refused server presented, so the caller can say so plainly.
    mismatch: Arc<Mutex<Option<CertFingerprint>>>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = CertFingerprint::of_der(end_entity);
        if actual == self.pinned {
            Ok(ServerCertVerified::assertion())
        } else {
            if let Ok(mut slot) = self.mismatch.lock() {
                *slot = Some(actual);
            }
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A channel that sends a bearer credential with every call.
pub type Authed = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <credential>` to every request.
#[derive(Clone)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Bearer {
    /// A bearer for `credential`; `None` if it contains characters that
    /// cannot travel in a header (then no credential is sent at all).
    pub fn new(credential: &str) -> Self {
        Self(format!("Bearer {credential}").parse().ok())
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert(crate::AUTHORIZATION_HEADER, value.clone());
        }
        Ok(request)
    }
}

/// When to try reaching the controller again: exponential backoff with
/// full jitter (each wait is random between zero and the current ceiling,
/// which doubles up to a cap). After a controller restart, a town's
/// laptops and gateways then come back spread over the window instead of
/// all at once, and the first retry after a short outage comes within the
/// base delay. Call [`Backoff::reset`] once a connection has lasted.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: std::time::Duration,
    cap: std::time::Duration,
    attempt: u32,
}

impl Backoff {
    /// Ceilings `base`, 2·`base`, 4·`base`, … up to `cap`.
    pub fn new(base: std::time::Duration, cap: std::time::Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// How long to wait before the next attempt.
    pub fn next_delay(&mut self) -> std::time::Duration {
        self.delay_at(rand::random::<f64>())
    }

    /// The next delay for `unit` in [0, 1): the pure part.
    fn delay_at(&mut self, unit: f64) -> std::time::Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Starts again from `base` (after a connection that lasted).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::Backoff;
    use std::time::Duration;

    #[test]
    fn ceilings_double_to_the_cap_and_reset_starts_over() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let ceilings: Vec<u64> = (0..7).map(|_| backoff.delay_at(1.0).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.delay_at(1.0), Duration::from_secs(1));
    }

    #[test]
    fn each_wait_is_spread_below_its_ceiling() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(backoff.delay_at(0.0), Duration::ZERO);
        assert_eq!(backoff.delay_at(0.5), Duration::from_secs(1));
        for _ in 0..100 {
            assert!(backoff.next_delay() <= Duration::from_secs(30));
        }
    }
}
