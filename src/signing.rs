//! The signing service: one recipe per operation, readable on one screen.
//!
//! sign: resolve the key, check the caller may use it, turn the input mode into what the token signs,
//! sign in the token (which verifies on the host before returning), journal the usage record and wait
//! until it is durable, answer. verify: resolve the public key, compute what was signed, check.
//!
//! Calls block (token, journal fsync, curve arithmetic): the API runs them on blocking threads.
//! Until the seal registry exists, keys and grants come from the configuration.

use crate::audit::{Actor, AuditEvent, Journal};
use crate::authz::{Accounts, Principal};
use crate::crypto::{self, KeyAlg, PublicKey};
use crate::token::{KeyId, KeyInfo, SignInput, TokenError, TokenPool};
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
    /// Key version (rotation arrives with the key-versions issue; every key is version 1 until then).
    pub version: u32,
}

/// What the client sends in `data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A seal use was refused, or the registry failed.
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
}

impl SignError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            SignError::UnknownKey(_) => "unknown_key",
            SignError::Forbidden { .. } => "forbidden",
            SignError::BadInput(_) => "bad_input",
            SignError::TooLarge(..) => "too_large",
            SignError::Token(TokenError::BadInput(_)) => "bad_input",
            SignError::Token(TokenError::KeyNotFound(_)) => "unknown_key",
            SignError::Token(TokenError::TokenBusy(_)) => "token_busy",
            SignError::Token(TokenError::SignatureMismatch(_)) => "token_signature_mismatch",
            SignError::Token(_) => "token_unavailable",
            SignError::Audit(_) => "audit_unavailable",
            SignError::Seal(e) => e.code(),
        }
    }
}

/// The verdict of a verification.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
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
    accounts: Accounts,
    keys: Vec<Key>,
    max_message: usize,
    trust: crate::formats::x509::TrustStore,
    registry: Option<Arc<crate::seal::Registry>>,
}

impl Signing {
    /// Resolves the configured keys in the token.
    pub fn new(
        pool: TokenPool,
        journal: Arc<Journal>,
        accounts: Accounts,
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
        Ok(Signing { pool, journal, accounts, keys, max_message, trust, registry: None })
    }

    /// Adds the seal registry: requests naming a seal go through its use checks.
    pub fn with_registry(mut self, registry: Arc<crate::seal::Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The trust anchors and CRLs for certificates given to verification.
    pub fn trust(&self) -> &crate::formats::x509::TrustStore {
        &self.trust
    }

    /// The seal registry, if there is one.
    pub fn registry(&self) -> Option<&Arc<crate::seal::Registry>> {
        self.registry.as_ref()
    }

    /// The principal for a client certificate: a configured account, else a registry account.
    pub fn identify(&self, fingerprint: &str, subject: &str) -> Option<Principal> {
        self.accounts
            .identify(fingerprint, subject)
            .or_else(|| self.registry.as_ref().and_then(|r| r.identify(fingerprint, subject)))
    }

    /// Whether `p` may sign with a plain key: a configured grant, or a registry app account's `keys`.
    fn may_sign_with(&self, p: &Principal, key: &Key) -> bool {
        let id = key.info.id.to_hex();
        self.accounts.may_sign_with(p, &key.name, &id)
            || (p.role == crate::authz::Role::App
                && self.registry.as_ref().is_some_and(|r| r.may_sign_with_key(p, &key.name, &id)))
    }

    /// The accounts.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// A key by name or id.
    pub fn key(&self, name_or_id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.name == name_or_id || k.info.id.to_hex().eq_ignore_ascii_case(name_or_id))
    }

    /// The keys `p` may sign with.
    pub fn keys_for(&self, p: &Principal) -> Vec<&Key> {
        self.keys.iter().filter(|k| self.may_sign_with(p, k)).collect()
    }

    /// Signs, journals the usage record durably, and returns the signature.
    pub fn sign(&self, p: &Principal, req: &Request) -> Result<Signed, SignError> {
        if let Some(seal) = &req.seal {
            return self.sign_with_seal(p, seal, req);
        }
        if req.ticket.is_some() {
            return Err(SignError::BadInput("a ticket goes with a seal, not a plain key".into()));
        }
        let key = self.key(&req.key).ok_or_else(|| SignError::UnknownKey(req.key.clone()))?.clone();
        if !self.may_sign_with(p, &key) {
            let ev = usage_event(p, &key, req.input, "refused:forbidden", None);
            let _ = self.journal.append(ev);
            return Err(SignError::Forbidden { account: p.account.clone(), key: key.name.clone() });
        }
        let (input, digest) = plan(key.info.alg, req, self.max_message)?;
        let sig = self.pool.sign(&key.info.id, input)?;
        let ev = usage_event(p, &key, req.input, "ok", Some(&digest));
        let receipt = self.journal.append(ev).map_err(|e| SignError::Audit(e.to_string()))?;
        Ok(Signed { key, der: sig.der, raw: sig.raw, audit_seq: receipt.seq, seal: None, cert: None })
    }

    /// Signs with a seal: the registry checks the use, holds the seal steady while the token signs
    /// with its current key version, and journals the usage record before this returns.
    fn sign_with_seal(&self, p: &Principal, seal: &str, req: &Request) -> Result<Signed, SignError> {
        let registry =
            self.registry.as_ref().ok_or_else(|| SignError::BadInput("this appliance has no seal registry".into()))?;
        let max = self.max_message;
        let input = serde_json::to_value(req.input).unwrap_or_default();
        let as_seal = |e: SignError| match e {
            SignError::Seal(s) => s,
            SignError::Token(t) => crate::seal::SealError::Token(t),
            other => crate::seal::SealError::BadInput(other.to_string()),
        };
        let ((sig, info), receipt) = registry.use_seal(
            p,
            seal,
            req.ticket.as_deref(),
            &[("input", input)],
            |alg| plan(alg, req, max).map(|(_, d)| d).map_err(as_seal),
            |k| {
                let info = self.pool.key(&k.key_id)?;
                let (input, _) = plan(info.alg, req, max).map_err(as_seal)?;
                Ok((self.pool.sign(&k.key_id, input)?, info))
            },
        )?;
        Ok(Signed {
            key: Key { name: format!("seal:{seal}"), info, version: receipt.key.version },
            der: sig.der,
            raw: sig.raw,
            audit_seq: receipt.audit_seq,
            seal: Some(seal.to_string()),
            cert: Some(receipt.key.cert_pem),
        })
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
                cert_reasons = self.trust.check(c, std::time::SystemTime::now());
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

/// What the token signs for a key of `alg`, and the digest the usage record names.
fn plan(alg: KeyAlg, req: &Request, max_message: usize) -> Result<(SignInput<'_>, [u8; 32]), SignError> {
    check_request(alg, req, max_message)?;
    let sm2 = alg == KeyAlg::Sm2;
    Ok(match (req.input, sm2) {
        (InputMode::Message, true) => {
            (SignInput::Message { data: &req.data, user_id: req.user_id.as_deref() }, crypto::sm3(&req.data))
        }
        (InputMode::Message, false) => {
            (SignInput::Message { data: &req.data, user_id: None }, crypto::sha256(&req.data))
        }
        (InputMode::Digest, true) => {
            (SignInput::Message { data: &req.data, user_id: req.user_id.as_deref() }, digest32(&req.data)?)
        }
        (InputMode::Digest, false) | (InputMode::E, _) => (SignInput::Prehashed(&req.data), digest32(&req.data)?),
    })
}

fn digest32(d: &[u8]) -> Result<[u8; 32], SignError> {
    d.try_into().map_err(|_| SignError::BadInput(format!("digest must be 32 bytes, got {}", d.len())))
}

/// Checks mode, lengths and options against the key's algorithm.
fn check_request(alg: KeyAlg, req: &Request, max_message: usize) -> Result<(), SignError> {
    let sm2 = alg == KeyAlg::Sm2;
    match req.input {
        InputMode::Message if req.data.len() > max_message => {
            return Err(SignError::TooLarge(req.data.len(), max_message))
        }
        InputMode::Digest | InputMode::E if req.data.len() != 32 => {
            return Err(SignError::BadInput(
                format!("{:?} input must be 32 bytes, got {}", req.input, req.data.len()).to_lowercase(),
            ))
        }
        InputMode::E if !sm2 => return Err(SignError::BadInput("input \"e\" is for SM2 keys only".into())),
        _ => {}
    }
    if req.user_id.is_some() && (!sm2 || req.input == InputMode::E) {
        return Err(SignError::BadInput("user_id applies to SM2 with input \"message\" or \"digest\" only".into()));
    }
    if let Some(u) = &req.user_id {
        if u.is_empty() || u.len() > 1024 {
            return Err(SignError::BadInput("user_id must be 1 to 1024 bytes".into()));
        }
    }
    if let Some(alg_name) = &req.digest_alg {
        let expected = if sm2 { "sm3" } else { "sha256" };
        if !alg_name.eq_ignore_ascii_case(expected) {
            return Err(SignError::BadInput(format!("digest_alg for a {alg} key is {expected}, not {alg_name}")));
        }
    }
    Ok(())
}

/// What a signature over this request covers: e for SM2, the SHA-256 digest otherwise.
fn prehash(pk: &PublicKey, req: &Request) -> Result<[u8; 32], SignError> {
    let bad = |e: crypto::CryptoError| SignError::BadInput(e.to_string());
    Ok(match (pk, req.input) {
        (PublicKey::Sm2(k), InputMode::Message | InputMode::Digest) => {
            crypto::sm2::e(k, req.user_id.as_deref().unwrap_or(crypto::sm2::DEFAULT_USER_ID), &req.data).map_err(bad)?
        }
        (_, InputMode::Message) => crypto::sha256(&req.data),
        (_, InputMode::Digest | InputMode::E) => digest32(&req.data)?,
    })
}

fn usage_event(p: &Principal, key: &Key, input: InputMode, outcome: &str, digest: Option<&[u8; 32]>) -> AuditEvent {
    let mut ev = AuditEvent::new(
        Actor { account: p.account.clone(), cert_fingerprint: Some(p.fingerprint.clone()) },
        "sign",
        &format!("key:{}", key.info.id),
        outcome,
    )
    .detail("key_name", key.name.clone())
    .detail("key_version", key.version)
    .detail("alg", key.info.alg.name())
    .detail("input", serde_json::to_value(input).unwrap_or_default());
    if let Some(d) = digest {
        ev = ev.detail("digest", hex::encode(d));
    }
    ev
}
