//! The controller's TLS identity: a self-signed certificate made at init
//! (clients pin its fingerprint, so no CA is involved), or the town's own
//! certificate and key copied in with `--tls-cert/--tls-key`.

use anyhow::{Context, Result, bail};
use porta_proto::CertFingerprint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// Where the certificate and key live inside the data directory.
pub struct TlsPaths {
    /// PEM certificate (chain), leaf first.
    pub cert: PathBuf,
    /// PEM private key, mode 0600.
    pub key: PathBuf,
}

impl TlsPaths {
    /// The paths under `data`.
    pub fn in_dir(data: &Path) -> Self {
        Self {
            cert: data.join("tls").join("cert.pem"),
            key: data.join("tls").join("key.pem"),
        }
    }
}

/// A certificate and key in PEM.
pub struct Identity {
    /// Certificate chain, leaf first.
    pub cert_pem: String,
    /// Private key.
    pub key_pem: String,
}

impl Identity {
    /// A fresh self-signed ECDSA P-256 certificate for `names` (DNS names
    /// or IP addresses).
    pub fn self_signed(names: Vec<String>) -> Result<Self> {
        let key = rcgen::KeyPair::generate().context("generating the TLS key")?;
        let mut params = rcgen::CertificateParams::new(names).context("certificate names")?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Porta controller");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Porta");
        let cert = params
            .self_signed(&key)
            .context("signing the certificate")?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Reads and checks a PEM certificate and key given by the admin.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self> {
        let cert_pem =
            std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
        let key_pem =
            std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
        let identity = Self { cert_pem, key_pem };
        identity
            .fingerprint()
            .with_context(|| format!("{} holds no PEM certificate", cert.display()))?;
        PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("{} holds no PEM private key: {e}", key.display()))?;
        Ok(identity)
    }

    /// Reads the identity from the data directory.
    pub fn load(paths: &TlsPaths) -> Result<Self> {
        Self::from_files(&paths.cert, &paths.key)
    }

    /// Writes the identity into the data directory (key 0600).
    pub fn save(&self, paths: &TlsPaths) -> Result<()> {
        if let Some(dir) = paths.cert.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&paths.cert, &self.cert_pem)?;
        Ok(porta_proto::files::create_private(
            &paths.key,
            self.key_pem.as_bytes(),
        )?)
    }

    /// SHA-256 of the leaf certificate: what clients pin.
    pub fn fingerprint(&self) -> Result<CertFingerprint> {
        let leaf = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .next()
            .transpose()
            .map_err(|e| anyhow::anyhow!("certificate PEM: {e}"))?;
        match leaf {
            Some(der) => Ok(CertFingerprint::of_der(&der)),
            None => bail!("no certificate found in the PEM data"),
        }
    }
}
