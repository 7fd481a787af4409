//! TLS for the API listener: rustls with mandatory client certificates.
//!
//! A client must present a certificate that chains to the configured client CA bundle, is within its
//! validity, and is not on the configured CRL; rustls (webpki) checks all three. TLS 1.2 and 1.3 only;
//! rustls has no renegotiation at all. ALPN offers h2 and http/1.1. The server certificate, CA bundle
//! and CRL are files, re-read on SIGHUP into a new config; connections already open keep theirs.
//!
//! What it deliberately does not do: map certificates to accounts (that is `authz`).

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `[server]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfigFile {
    /// Address to listen on, e.g. `127.0.0.1:8443`.
    pub listen: String,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA bundle that client certificates must chain to (PEM).
    pub client_ca: PathBuf,
    /// Certificate revocation lists for client certificates (PEM or DER), re-read on SIGHUP.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// Largest request body accepted, bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest message the server hashes for `input: "message"`, bytes.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// How long in-flight requests may take to finish on shutdown, seconds.
    #[serde(default = "default_grace")]
    pub shutdown_grace_s: u64,
    /// A client must finish the TLS handshake within this many seconds.
    #[serde(default = "default_handshake")]
    pub handshake_timeout_s: u64,
    /// ... and send a request's headers within this many seconds (slow clients are cut off).
    #[serde(default = "default_header")]
    pub header_timeout_s: u64,
    /// Connections served at once; further clients wait in the listen backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_handshake() -> u64 {
    10
}
fn default_header() -> u64 {
    10
}
fn default_max_connections() -> usize {
    1024
}

fn default_max_body() -> usize {
    4 << 20
}
fn default_max_message() -> usize {
    1 << 20
}
fn default_grace() -> u64 {
    10
}

/// TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read { path: path.display().to_string(), message: e.to_string() })
}

/// Every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = read(path)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut data.as_slice()).collect();
    let certs = certs.map_err(|e| TlsError::Read { path: path.display().to_string(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Read { path: path.display().to_string(), message: "no certificate in the file".into() });
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = read(path)?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| TlsError::Read { path: path.display().to_string(), message: e.to_string() })?
        .ok_or_else(|| TlsError::Read {
            path: path.display().to_string(),
            message: "no private key in the file".into(),
        })
}

fn load_crl(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let data = read(path)?;
    if data.starts_with(b"-----") {
        let crls: Result<Vec<_>, _> = rustls_pemfile::crls(&mut data.as_slice()).collect();
        crls.map_err(|e| TlsError::Read { path: path.display().to_string(), message: e.to_string() })
    } else {
        Ok(vec![CertificateRevocationListDer::from(data)])
    }
}

/// A root store from every certificate in a PEM file; `what` names it in errors.
fn roots(path: &Path, what: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots.add(c).map_err(|e| TlsError::Config(format!("{what} {}: {e}", path.display())))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server config from the files named in `[server]`.
pub fn server_config(cfg: &ServerConfigFile) -> Result<Arc<ServerConfig>, TlsError> {
    let roots = roots(&cfg.client_ca, "client CA")?;
    let mut crls = Vec::new();
    for p in &cfg.crl {
        crls.extend(load_crl(p)?);
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(crls)
        .build()
        .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&cfg.cert)?, load_key(&cfg.key)?)
        .map_err(|e| TlsError::Config(format!("server certificate {}: {e}", cfg.cert.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client config presenting `cert`/`key` and trusting `ca` (for `seald dev`, sealctl and tests).
pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots = roots(ca, "CA")?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| TlsError::Config(format!("client certificate {}: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration from a PKCS#12 file (an account's certificate and key in one file).
pub fn client_config_p12(ca: &Path, p12: &Path, password: &str) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let bytes = std::fs::read(p12).map_err(|e| TlsError::Config(format!("{}: {e}", p12.display())))?;
    let id =
        crate::formats::p12::read(&bytes, password).map_err(|e| TlsError::Config(format!("{}: {e}", p12.display())))?;
    let certs = id.certs.into_iter().map(CertificateDer::from).collect();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(id.key.to_vec()));
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca, "CA")?)
        .with_client_auth_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("client certificate {}: {e}", p12.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// SHA-256 of a certificate's DER, lowercase hex: how accounts name client certificates.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(crate::crypto::sha256(cert.as_ref()))
}

/// The subject DN of a certificate, RFC 4514 style, for logs and audit records.
pub fn subject(cert: &CertificateDer<'_>) -> String {
    use der::Decode;
    x509_cert::Certificate::from_der(cert.as_ref())
        .map(|c| c.tbs_certificate.subject.to_string())
        .unwrap_or_else(|_| "<unparsable subject>".into())
}
