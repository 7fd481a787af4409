//! The signing service: one recipe per signing product, each readable top to bottom on one screen.
//!
//! | product | recipe | what the token signs |
//! |---|---|---|
//! | raw signature (`POST /v1/sign`) | `raw.rs` | the request's message, digest or e |
//! | GM/T 0010 SignedData (`POST /v1/sign/cms`) | `cms.rs` | the signed attributes |
//! | GB/T 38540 `SES_Signature` (`POST /v1/seals/{id}/sign-ses`) | `ses.rs` | the `TBS_Sign` |
//! | sealed OFD document (`POST /v1/seals/{id}/seal-ofd`) | `ofd.rs` | the `TBS_Sign` over SM3(`Signature.xml`) |
//!
//! Every recipe has the same steps: authorize (a plain key's grant, or the seal's one gate,
//! `seal::HeldSeal::authorize_use`, whose permit holds the seal steady across the signature), plan
//! (the digest the usage record names, and what the token signs), sign in the token (which verifies
//! on the host before returning), record the use durably (`usage.rs` builds the record of every
//! product), answer. `plan.rs` checks a request against a key's algorithm; verification is here.
//!
//! Calls block (token, journal fsync, curve arithmetic): the API runs them on blocking threads.

mod cms;
mod ofd;
mod plan;
mod raw;
mod ses;
mod usage;

pub use ofd::{OfdRequest, SealedOfd, MAX_DOCUMENT_NAME};
pub use ses::SealUse;
pub use usage::Product;

use crate::audit::Journal;
use crate::authz::Principal;
use crate::crypto::{self, PublicKey};
use crate::token::{KeyId, KeyInfo, TokenError, TokenPool};
use plan::{check_request, prehash};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A key the service offers, from `[[keys]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// CKA_ID, hex.
    pub id: String,
    /// A name clients may use instead of the id.
    pub name: String,
}

/// A key resolved in the token.
#[derive(Debug, Clone)]
pub struct Key {
    /// Its name.
    pub name: String,
    /// What the token says about it.
    pub info: Arc<KeyInfo>,
    /// Key version. A plain `[[keys]]` key is always version 1; seal keys rotate through the registry.
    pub version: u32,
}

/// What the client sends in `data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum InputMode {
    /// The message; the server hashes it (SM2: Z and e).
    Message,
    /// A 32-byte digest: ECDSA/RSA prehashed SHA-256; for SM2 the digest D is signed as the message.
    Digest,
    /// SM2 only: e = SM3(Z || M), computed by the client.
    E,
}

/// A signing or verification request, decoded.
#[derive(Debug, Clone)]
pub struct Request {
    /// Key name or id.
    pub key: String,
    /// Input mode.
    pub input: InputMode,
    /// The bytes.
    pub data: Vec<u8>,
    /// Claimed digest algorithm (`sm3` for SM2, `sha256` otherwise), checked if given.
    pub digest_alg: Option<String>,
    /// SM2 signer ID (default `1234567812345678`).
    pub user_id: Option<Vec<u8>>,
    /// Sign with this seal (through the registry's use checks) instead of a plain key.
    pub seal: Option<String>,
    /// The approval ticket for a seal use, where its policy needs one.
    pub ticket: Option<String>,
}

/// A signature, both encodings.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The key.
    pub key: Key,
    /// DER.
    pub der: Vec<u8>,
    /// r||s (EC) or the PKCS#1 block (RSA).
    pub raw: Vec<u8>,
    /// The journal seq of the usage record.
    pub audit_seq: u64,
    /// The seal used, if any.
    pub seal: Option<String>,
    /// The certificate of the key version used (seals), PEM.
    pub cert: Option<String>,
}

/// Why a request failed. `code()` is the stable API code.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// No key by that name or id.
    #[error("no key '{0}'")]
    UnknownKey(String),
    /// The caller may not use the key.
    #[error("account '{account}' may not sign with key '{key}'")]
    Forbidden {
        /// Caller.
        account: String,
        /// Key.
        key: String,
    },
    /// The input does not fit the key or the mode.
    #[error("{0}")]
    BadInput(String),
    /// The message is larger than configured.
    #[error("message is {0} bytes; the limit is {1}")]
    TooLarge(usize, usize),
    /// The token failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The usage record could not be made durable: no signature is returned.
    #[error("audit journal unavailable: {0}")]
    Audit(String),
    /// The seal's certificate could not be read.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A seal use was refused, or the registry failed.
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    /// An OFD package could not be read, or is refused.
    #[error(transparent)]
    Ofd(crate::formats::ofd::OfdError),
    /// Something that cannot fail did, after the token signed: nothing is answered or recorded.
    #[error("{0}")]
    Internal(String),
    /// A time-stamp was asked for and could not be had: nothing is answered or recorded.
    #[error("time-stamp: {0}")]
    TimeStamp(String),
}

impl SignError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            SignError::UnknownKey(_) => "unknown_key",
            SignError::Forbidden { .. } => "forbidden",
            SignError::BadInput(_) => "bad_input",
            SignError::TooLarge(..) => "too_large",
            SignError::Token(t) => t.api_code(),
            SignError::Audit(_) => "audit_unavailable",
            SignError::Certificate(_) => "bad_certificate",
            SignError::Seal(e) => e.code(),
            SignError::Ofd(e) => e.code(),
            SignError::Internal(_) => "internal",
            SignError::TimeStamp(_) => "timestamp_unavailable",
        }
    }
}

/// A key as its holder may see it.
#[derive(Debug, Clone)]
pub struct KeyView {
    /// The key.
    pub key: Key,
    /// Its public half, SPKI PEM.
    pub public_key_pem: String,
    /// SM2 only: Z for the default ID, hex.
    pub sm2_z_default_id: Option<String>,
}

/// A signature made with a seal in a format (CMS, SES): its DER and its usage record.
#[derive(Debug, Clone)]
pub struct SealSigned {
    /// The product, DER.
    pub der: Vec<u8>,
    /// The seal's key version that signed.
    pub key_version: u32,
    /// The journal seq of the usage record.
    pub audit_seq: u64,
}

/// The verdict of a verification.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Verdict {
    /// Every check passed.
    pub valid: bool,
    /// Every failed check, by name.
    pub reasons: Vec<String>,
}

/// The service.
pub struct Signing {
    pool: TokenPool,
    journal: Arc<Journal>,
    registry: Arc<crate::seal::Registry>,
    keys: Vec<Key>,
    max_message: usize,
    trust: crate::formats::x509::TrustStore,
    ofd_limits: crate::formats::ofd::Limits,
    /// SM3 of the `SESeal`s whose maker signature verified (at most [`ses::CHECKED_SEALS`]).
    checked_seals: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
}

impl Signing {
    /// Resolves the configured keys in the token. Who may use them, and the seals, are the registry's.
    pub fn new(
        pool: TokenPool,
        journal: Arc<Journal>,
        registry: Arc<crate::seal::Registry>,
        keys: &[KeyConfig],
        max_message: usize,
        trust: crate::formats::x509::TrustStore,
    ) -> Result<Self, TokenError> {
        let keys = keys
            .iter()
            .map(|k| {
                let info = pool.key(&KeyId::from_hex(&k.id)?)?;
                // Clients verify against configured keys by name: those verifications use its table.
                info.public_key.prepare();
                Ok(Key { name: k.name.clone(), info, version: 1 })
            })
            .collect::<Result<Vec<_>, TokenError>>()?;
        Ok(Signing {
            pool,
            journal,
            registry,
            keys,
            max_message,
            trust,
            ofd_limits: Default::default(),
            checked_seals: Default::default(),
        })
    }

    /// What reading an OFD package to seal may cost (default [`crate::formats::ofd::Limits::DEFAULT`]).
    pub fn with_ofd_limits(mut self, limits: crate::formats::ofd::Limits) -> Self {
        self.ofd_limits = limits;
        self
    }

    /// The trust anchors and CRLs for certificates given to verification.
    pub fn trust(&self) -> &crate::formats::x509::TrustStore {
        &self.trust
    }

    /// The seal registry.
    pub fn registry(&self) -> &Arc<crate::seal::Registry> {
        &self.registry
    }

    /// The principal for a client certificate (the registry's one account directory).
    pub fn identify(&self, fingerprint: &str, subject: &str) -> Option<Principal> {
        self.registry.directory().identify(fingerprint, subject)
    }

    /// Makes a usage record durable and returns its seq: no signature is answered before this.
    fn record(&self, ev: crate::audit::AuditEvent) -> Result<u64, SignError> {
        self.journal.append(ev).map(|r| r.seq).map_err(|e| SignError::Audit(e.to_string()))
    }

    /// Whether `p` may sign with a plain key.
    fn may_sign_with(&self, p: &Principal, key: &Key) -> bool {
        self.registry.directory().may_sign_with_key(p, &key.name, &key.info.id.to_hex())
    }

    /// A key by name or id.
    pub fn key(&self, name_or_id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.name == name_or_id || k.info.id.to_hex().eq_ignore_ascii_case(name_or_id))
    }

    /// One key `p` may sign with, by name or id, with its public half and, for SM2, Z for the
    /// default ID (what a client needs to compute e itself).
    pub fn key_view(&self, p: &Principal, name_or_id: &str) -> Result<KeyView, SignError> {
        let k = self
            .keys_for(p)
            .into_iter()
            .find(|k| k.name == name_or_id || k.info.id.to_hex().eq_ignore_ascii_case(name_or_id))
            .ok_or_else(|| SignError::UnknownKey(name_or_id.to_string()))?;
        let sm2_z_default_id = match &k.info.public_key {
            PublicKey::Sm2(pk) => crypto::sm2::z(pk, crypto::sm2::DEFAULT_USER_ID).ok().map(hex::encode),
            _ => None,
        };
        Ok(KeyView { key: k.clone(), public_key_pem: k.info.public_key.to_spki_pem(), sm2_z_default_id })
    }

    /// The keys `p` may sign with.
    pub fn keys_for(&self, p: &Principal) -> Vec<&Key> {
        self.keys.iter().filter(|k| self.may_sign_with(p, k)).collect()
    }

    /// Verifies `signature` (DER or raw r||s) over the request's input with the key named in it, with
    /// `public_key`, or with `certificate`; for a certificate, also its validity now, its chain to the
    /// trust anchors and its revocation.
    pub fn verify(
        &self,
        req: &Request,
        public_key: Option<&PublicKey>,
        certificate: Option<&crate::formats::x509::Cert>,
        signature: &[u8],
    ) -> Result<Verdict, SignError> {
        let mut cert_reasons = Vec::new();
        let pk = match (public_key, certificate) {
            (Some(k), _) => k.clone(),
            (None, Some(c)) => {
                // The configured anchors and the issuing CA: a seal's own certificate verifies here.
                let trust = self.registry.verification().trust(&self.trust);
                cert_reasons = trust.check(c, std::time::SystemTime::now());
                c.public_key().map_err(|e| SignError::BadInput(format!("certificate key: {e}")))?
            }
            (None, None) => {
                self.key(&req.key).ok_or_else(|| SignError::UnknownKey(req.key.clone()))?.info.public_key.clone()
            }
        };
        check_request(pk.alg(), req, self.max_message)?;
        let prehash = prehash(&pk, req)?;
        let mut reasons = Vec::new();
        match pk.verify_prehashed(&prehash, signature) {
            Ok(()) => {}
            Err(crypto::CryptoError::BadSignature) => reasons.push("signature_invalid".to_string()),
            Err(_) => reasons.push("signature_malformed".to_string()),
        }
        reasons.extend(cert_reasons.into_iter().map(str::to_string));
        Ok(Verdict { valid: reasons.is_empty(), reasons })
    }
}
