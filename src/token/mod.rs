//! The token layer: the only code that calls `cryptoki`.
//!
//! A [`TokenPool`] loads one PKCS#11 module, finds one token by label, serial or PKCS#11 URI, checks
//! the token against its [`Profile`], and keeps a pool of logged-in sessions. It generates keys inside
//! the token (sensitive, never extractable), exports public keys, and signs. Every signature it
//! returns has been verified on the host with the key's public key first. Session loss and device
//! loss are recovered without restarting the process; a rejected PIN is never retried.
//!
//! It knows nothing of seals, accounts or audit: callers name keys by their CKA_ID.

mod admin;
mod keys;
pub mod pin;
mod pool;
mod signer;
pub mod uri;

pub use admin::init_token;
pub use pin::{Pin, PinError, PinSource};
pub use pool::{ModuleInfo, PoolStats, TokenPool};
pub use profile::{Profile, ProfileError};
/// The token profiles (shared with softtoken).
pub use seald_gm::profile;
pub use signer::TokenKey;
pub use uri::Pkcs11Uri;

use crate::crypto::{CryptoError, KeyAlg, PublicKey};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// A key's CKA_ID: 16 random bytes for keys made by seald, any bytes for imported ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub Vec<u8>);

impl KeyId {
    /// Parses lowercase or uppercase hex.
    pub fn from_hex(s: &str) -> Result<Self, TokenError> {
        let bytes = hex::decode(s.trim()).map_err(|_| TokenError::BadInput(format!("key id '{s}' is not hex")))?;
        if bytes.is_empty() || bytes.len() > 64 {
            return Err(TokenError::BadInput("key id must be 1 to 64 bytes".into()));
        }
        Ok(KeyId(bytes))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What the token says about one of its keys.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// CKA_ID.
    pub id: KeyId,
    /// CKA_LABEL.
    pub label: String,
    /// Algorithm.
    pub alg: KeyAlg,
    /// The public half.
    pub public_key: PublicKey,
}

/// Security attributes of a private key, as the token reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KeyAttributes {
    /// CKA_TOKEN.
    pub token: bool,
    /// CKA_PRIVATE.
    pub private: bool,
    /// CKA_SENSITIVE.
    pub sensitive: bool,
    /// CKA_EXTRACTABLE.
    pub extractable: bool,
    /// CKA_ALWAYS_SENSITIVE.
    pub always_sensitive: bool,
    /// CKA_NEVER_EXTRACTABLE.
    pub never_extractable: bool,
}

/// What to sign.
#[derive(Debug, Clone, Copy)]
pub enum SignInput<'a> {
    /// The message itself. For SM2, e = SM3(Z||M) with `user_id` (default `1234567812345678`);
    /// for ECDSA and RSA, SHA-256(M).
    Message {
        /// M.
        data: &'a [u8],
        /// SM2 signer ID; `None` is the default ID. Ignored for other algorithms.
        user_id: Option<&'a [u8]>,
    },
    /// Already hashed: e for SM2, a SHA-256 digest for ECDSA and RSA. Always 32 bytes.
    Prehashed(&'a [u8]),
}

/// A signature that the host has verified, in both encodings.
#[derive(Debug, Clone)]
pub struct Signature {
    /// The key that made it.
    pub key_id: KeyId,
    /// Its algorithm.
    pub alg: KeyAlg,
    /// `r||s` for EC keys; the PKCS#1 v1.5 block for RSA.
    pub raw: Vec<u8>,
    /// DER `SEQUENCE { r, s }` for EC keys; the same block as `raw` for RSA.
    pub der: Vec<u8>,
    /// What was signed: e for SM2, the SHA-256 digest otherwise.
    pub prehash: [u8; 32],
}

/// Health of the token connection, for /readyz and the watchdog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum Health {
    /// Sessions open and the last operation succeeded.
    Ready,
    /// Working, but with less than configured (fewer sessions, a recent recovery).
    Degraded(String),
    /// Not usable now; recovery is being attempted.
    Down(String),
}

/// Errors of the token layer. Messages never carry a PIN.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The PKCS#11 library could not be loaded or initialised.
    #[error("cannot load PKCS#11 module {path}: {message}")]
    Module {
        /// Library path.
        path: String,
        /// Why.
        message: String,
    },
    /// No slot holds a token matching the selector.
    #[error("no token matching {wanted}; tokens present: {present}")]
    TokenNotFound {
        /// The selector.
        wanted: String,
        /// Labels of tokens that are present.
        present: String,
    },
    /// The profile is unknown, invalid or does not fit the token.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The PIN could not be read.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The token rejected the PIN; seald does not try it again (that would lock the token).
    #[error("the token rejected the PIN ({0}); not retried, fix the PIN file and restart or reload")]
    PinRejected(&'static str),
    /// Every session was in use for longer than the borrow timeout.
    #[error("token busy: no session free within {0:?}")]
    TokenBusy(Duration),
    /// The token is down and recovery has not succeeded (yet).
    #[error("token unavailable: {0}")]
    Unavailable(String),
    /// No private key with this CKA_ID.
    #[error("no key with id {0} in the token")]
    KeyNotFound(KeyId),
    /// The profile or token offers no mechanism for this.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The caller's input is wrong (lengths, ids).
    #[error("bad input: {0}")]
    BadInput(String),
    /// The token returned a signature that does not verify with the key's public key.
    #[error("token returned a signature for key {0} that does not verify; refused")]
    SignatureMismatch(KeyId),
    /// Host-side crypto failed on what the token returned.
    #[error("token output unusable: {0}")]
    Crypto(#[from] CryptoError),
    /// Any other PKCS#11 failure.
    #[error("PKCS#11 {op} failed: {rv}")]
    Pkcs11 {
        /// The operation.
        op: &'static str,
        /// The CKR_ code or cryptoki error.
        rv: String,
    },
}

impl From<seald_gm::GmError> for TokenError {
    fn from(e: seald_gm::GmError) -> Self {
        TokenError::Crypto(e.into())
    }
}

impl TokenError {
    /// A stable machine-readable code for the API and CLI.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Module { .. } => "token_module",
            TokenError::TokenNotFound { .. } => "token_not_found",
            TokenError::Profile(_) => "token_profile",
            TokenError::Pin(_) => "pin_unreadable",
            TokenError::PinRejected(_) => "pin_rejected",
            TokenError::TokenBusy(_) => "token_busy",
            TokenError::Unavailable(_) => "token_unavailable",
            TokenError::KeyNotFound(_) => "key_not_found",
            TokenError::Unsupported(_) => "unsupported",
            TokenError::BadInput(_) => "bad_input",
            TokenError::SignatureMismatch(_) => "signature_mismatch",
            TokenError::Crypto(_) => "token_output",
            TokenError::Pkcs11 { .. } => "token_error",
        }
    }

    /// The code an API caller sees: the one mapping for every route (signing, seals, CSRs). What
    /// the caller can act on keeps its own code; every other token failure is `token_unavailable`
    /// (503), never a client error.
    pub fn api_code(&self) -> &'static str {
        match self {
            TokenError::BadInput(_) => "bad_input",
            TokenError::KeyNotFound(_) => "unknown_key",
            TokenError::TokenBusy(_) => "token_busy",
            TokenError::SignatureMismatch(_) => "token_signature_mismatch",
            _ => "token_unavailable",
        }
    }
}

/// The `[token]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Path to the PKCS#11 library. Defaults to the profile's first existing library path.
    #[serde(default)]
    pub module: Option<PathBuf>,
    /// Profile name or path. Defaults to detection by manufacturer ID / library name.
    #[serde(default)]
    pub profile: Option<String>,
    /// PKCS#11 URI selecting the token (token=, serial=, slot-id=).
    #[serde(default)]
    pub uri: Option<String>,
    /// Token label.
    #[serde(default)]
    pub label: Option<String>,
    /// Token serial number.
    #[serde(default)]
    pub serial: Option<String>,
    /// File holding the user PIN.
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// systemd credential name holding the user PIN.
    #[serde(default)]
    pub pin_credential: Option<String>,
    /// Sessions to keep; capped at the token's ulMaxSessionCount.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How long a caller waits for a free session before `TokenBusy`.
    #[serde(default = "default_borrow_timeout_ms")]
    pub borrow_timeout_ms: u64,
    /// How long one caller may spend re-initialising a lost device before `Unavailable`.
    #[serde(default = "default_recovery_timeout_ms")]
    pub recovery_timeout_ms: u64,
    /// Environment variables set before the module is loaded: vendor modules read their own
    /// configuration from them (SOFTHSM2_CONF, SOFTTOKEN_DIR, ChrystokiConfigurationPath, ...).
    #[serde(default)]
    pub environment: std::collections::BTreeMap<String, String>,
}

fn default_pool_size() -> usize {
    8
}
fn default_borrow_timeout_ms() -> u64 {
    2000
}
fn default_recovery_timeout_ms() -> u64 {
    5000
}

impl TokenConfig {
    /// A config for `module`, selecting the token by label and reading the PIN from a file.
    pub fn new(module: impl Into<PathBuf>, label: &str, pin_file: impl Into<PathBuf>) -> Self {
        TokenConfig {
            module: Some(module.into()),
            profile: None,
            uri: None,
            label: Some(label.to_string()),
            serial: None,
            pin_file: Some(pin_file.into()),
            pin_credential: None,
            pool_size: default_pool_size(),
            borrow_timeout_ms: default_borrow_timeout_ms(),
            recovery_timeout_ms: default_recovery_timeout_ms(),
            environment: Default::default(),
        }
    }

    /// Where the PIN comes from; exactly one source must be configured.
    pub fn pin_source(&self) -> Result<PinSource, TokenError> {
        let from_uri = self.parsed_uri()?.and_then(|u| u.pin_source).map(PathBuf::from);
        match (&self.pin_file, &self.pin_credential, from_uri) {
            (Some(f), None, None) => Ok(PinSource::File(f.clone())),
            (None, Some(c), None) => Ok(PinSource::Credential(c.clone())),
            (None, None, Some(f)) => Ok(PinSource::File(f)),
            (None, None, None) => Err(TokenError::BadInput("no PIN source: set pin_file or pin_credential".into())),
            _ => Err(TokenError::BadInput(
                "give exactly one PIN source (pin_file, pin_credential or the URI's pin-source)".into(),
            )),
        }
    }

    /// The URI, if one is configured.
    pub fn parsed_uri(&self) -> Result<Option<Pkcs11Uri>, TokenError> {
        self.uri.as_deref().map(|u| u.parse::<Pkcs11Uri>().map_err(|e| TokenError::BadInput(e.to_string()))).transpose()
    }
}
