//! TLS for the API listener: rustls with mandatory client certificates.
//!
//! A client must present a certificate that chains to the configured client CA bundle, is within its
//! validity, and is not on the configured CRL; rustls (webpki) checks all three. TLS 1.2 and 1.3 only;
//! rustls has no renegotiation at all. ALPN offers h2 and http/1.1. The server certificate, CA bundle
//! and CRL are files, re-read on SIGHUP into a new config; connections already open keep theirs.
//!
//! CRLs are decided per CA: a CRL is authoritative for the CA that issued it, and a client whose CA
//! has no CRL configured is not refused for that (rustls's `allow_unknown_revocation_status`). A CRL
//! past its nextUpdate is reported ([`crl_status`]: readiness and a metric); with
//! `stale_crl = "refuse"` its CA's clients are refused until a fresh one is loaded.
//!
//! What it deliberately does not do: map certificates to accounts (that is `authz`).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
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
    /// Largest document accepted (an OFD package to seal or verify), bytes.
    #[serde(default = "default_max_document")]
    pub max_document_bytes: usize,
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
    /// ... and its body within this many seconds (a stalled upload gets 408).
    #[serde(default = "default_body")]
    pub body_timeout_s: u64,
    /// A connection with no request in flight is closed after this many seconds.
    #[serde(default = "default_idle")]
    pub idle_timeout_s: u64,
    /// A connection is closed (after its requests in flight) once it is this old, so that a
    /// certificate's revocation or an account's end reaches every client.
    #[serde(default = "default_max_age")]
    pub max_connection_age_s: u64,
    /// Established connections served at once; more are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections still in the TLS handshake at once: a separate, smaller budget, so that clients
    /// without a certificate cannot take the places of those with one.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// Established connections from one source address.
    #[serde(default = "default_per_address")]
    pub max_connections_per_address: usize,
    /// Connections in the handshake from one source address.
    #[serde(default = "default_handshakes_per_address")]
    pub max_handshakes_per_address: usize,
    /// What a CRL past its nextUpdate does: `unready` (readiness fails and a metric says so; clients
    /// are still checked against it) or `refuse` (also refuse every client of its CA).
    #[serde(default)]
    pub stale_crl: StaleCrl,
}

/// What a CRL past its nextUpdate does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StaleCrl {
    /// Readiness fails and the metric says so; clients are still checked against it.
    #[default]
    Unready,
    /// Also refuse every client of its CA until a fresh CRL is loaded.
    Refuse,
}

fn default_handshake() -> u64 {
    5
}
fn default_header() -> u64 {
    10
}
fn default_body() -> u64 {
    30
}
fn default_idle() -> u64 {
    60
}
fn default_max_age() -> u64 {
    3600
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_handshakes() -> usize {
    128
}
fn default_per_address() -> usize {
    256
}
fn default_handshakes_per_address() -> usize {
    16
}

fn default_max_body() -> usize {
    4 << 20
}
fn default_max_document() -> usize {
    50 << 20
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
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&data).collect();
    let certs = certs.map_err(|e| TlsError::Read { path: path.display().to_string(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Read { path: path.display().to_string(), message: "no certificate in the file".into() });
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = read(path)?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| TlsError::Read {
        path: path.display().to_string(),
        message: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no private key in the file".into(),
            e => e.to_string(),
        },
    })
}

fn load_crl(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let data = read(path)?;
    if data.starts_with(b"-----") {
        let crls: Result<Vec<_>, _> = CertificateRevocationListDer::pem_slice_iter(&data).collect();
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

/// One configured CRL: whose it is and until when it is fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlStatus {
    /// The file.
    pub path: PathBuf,
    /// Its issuer, RFC 4514.
    pub issuer: String,
    /// Its nextUpdate, seconds since the epoch (none when the CRL has none).
    pub next_update: Option<u64>,
}

impl CrlStatus {
    /// Whether it is past its nextUpdate at `now` (seconds since the epoch).
    pub fn stale_at(&self, now: u64) -> bool {
        self.next_update.is_some_and(|n| n < now)
    }
}

/// The issuer and nextUpdate of every configured CRL.
pub fn crl_status(cfg: &ServerConfigFile) -> Result<Vec<CrlStatus>, TlsError> {
    use der::Decode;
    let mut out = Vec::new();
    for p in &cfg.crl {
        for crl in load_crl(p)? {
            let list = x509_cert::crl::CertificateList::from_der(crl.as_ref())
                .map_err(|e| TlsError::Read { path: p.display().to_string(), message: format!("CRL: {e}") })?;
            out.push(CrlStatus {
                path: p.clone(),
                issuer: list.tbs_cert_list.issuer.to_string(),
                next_update: list.tbs_cert_list.next_update.map(|t| t.to_unix_duration().as_secs()),
            });
        }
    }
    Ok(out)
}

/// What the listener needs from the TLS files: the server config for new connections, and the
/// client verifier, to re-check the certificates of connections already open after a reload.
#[derive(Clone)]
pub struct Loaded {
    /// For new connections.
    pub config: Arc<ServerConfig>,
    /// The client certificate verifier inside it.
    pub verifier: Arc<dyn ClientCertVerifier>,
    /// The CRLs loaded.
    pub crls: Vec<CrlStatus>,
}

/// Builds the server config from the files named in `[server]`.
pub fn server_config(cfg: &ServerConfigFile) -> Result<Arc<ServerConfig>, TlsError> {
    load(cfg).map(|l| l.config)
}

/// Loads the files named in `[server]`.
pub fn load(cfg: &ServerConfigFile) -> Result<Loaded, TlsError> {
    let roots = roots(&cfg.client_ca, "client CA")?;
    let mut crls = Vec::new();
    for p in &cfg.crl {
        crls.extend(load_crl(p)?);
    }
    let statuses = crl_status(cfg)?;
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(crls)
        .allow_unknown_revocation_status();
    if cfg.stale_crl == StaleCrl::Refuse {
        builder = builder.enforce_revocation_expiration();
    }
    let verifier = builder.build().map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(load_certs(&cfg.cert)?, load_key(&cfg.key)?)
        .map_err(|e| TlsError::Config(format!("server certificate {}: {e}", cfg.cert.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Loaded { config: Arc::new(config), verifier, crls: statuses })
}

/// Whether `verifier` still accepts a client's chain (leaf first) now.
pub fn still_accepted(verifier: &dyn ClientCertVerifier, chain: &[CertificateDer<'static>]) -> Result<(), String> {
    let Some((leaf, rest)) = chain.split_first() else { return Err("no certificate".into()) };
    verifier.verify_client_cert(leaf, rest, rustls::pki_types::UnixTime::now()).map(|_| ()).map_err(|e| e.to_string())
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

/// A client configuration for the cluster's database: its server certificate must chain to `ca`
/// (PEM) and name the host; no client certificate (the role logs in with its password).
pub fn database_client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca, "database CA")?)
        .with_no_client_auth();
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
