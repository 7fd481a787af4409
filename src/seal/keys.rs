//! Key versions and rotation, with dual control for what cannot be undone.
//!
//! Keys are named `seal:<id>` (a seal's keys), `issuing-ca`, `seal-maker` and `audit`. `rotate` makes a new
//! version in the token (pending): for a seal, certified by the issuing CA, with its SESeal and a CSR
//! for an outside CA; for the CA a new self-signed certificate; for the maker one from the CA.
//! `activate` switches signing to it: for a seal at once (under the seal's exclusive lock, so uses
//! in flight finish on the old version and none after the switch uses it); for the issuing CA and
//! the seal maker only when a second security officer approves. Destroying a retired version also
//! needs two officers. The one who requests never approves, and a request expires.
//!
//! The audit key switches through the journal itself: the key-change record names the new key and
//! is covered by a checkpoint that the old key signs, so verification starts from the first key
//! and follows each switch (`audit::KEY_CHANGE_ACTION`). The store then names the active key, which
//! seald uses at start even where `[audit] key` still names the first.

use super::{
    actor, now_ms, put, ApplianceKey, ApplianceKeyVersion, Directory, Filings, KeyState, Ledger, Lifecycle, Pki, Seal,
    SealError, SealState,
};
use crate::audit::AuditEvent;
use crate::authz::{Principal, Role};
use crate::crypto::KeyAlg;
use crate::formats::x509::Cert;
use crate::store::tree;
use crate::token::KeyId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a dual-control request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RequestAction {
    /// Make a pending appliance key version the active one.
    Activate,
    /// Destroy a retired or pending key version in the token.
    Destroy,
    /// Change the token's user PIN (the new PIN waits in memory only, never in the store).
    ChangePin,
    /// Create or change an administrator's account (三员): approved by an administrator of another
    /// role.
    Account,
}

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    /// Waiting for the second officer.
    Pending,
    /// Approved and carried out.
    Done,
}

/// A request that a second security officer must approve (tree `requests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct DualRequest {
    /// Id.
    pub id: String,
    /// What.
    pub action: RequestAction,
    /// Which key.
    pub key: String,
    /// Which version.
    pub version: u32,
    /// The first officer.
    pub requested_by: String,
    /// When.
    pub created_ms: u64,
    /// Unusable after this.
    pub expires_ms: u64,
    /// State.
    pub state: RequestState,
    /// The second officer.
    #[serde(default)]
    pub approved_by: Option<String>,
    /// The role of who asked (account requests: the approver's must differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_role: Option<Role>,
    /// For an account request: the account as it will be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<super::AccountRecord>,
    /// For an account request: SHA-256 of the account as it was when asked (approval refuses a
    /// request whose account has changed since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_before: Option<String>,
}

impl DualRequest {
    /// A request to create or change the account `a` (its name is the request's `key`).
    pub(super) fn for_account(p: &Principal, a: super::AccountRecord, deadline_s: u64) -> Self {
        let now = now_ms();
        DualRequest {
            id: format!("R{}", super::random_hex(8)),
            action: RequestAction::Account,
            key: a.name.clone(),
            version: 0,
            requested_by: p.account.clone(),
            created_ms: now,
            expires_ms: now + deadline_s * 1000,
            state: RequestState::Pending,
            approved_by: None,
            requested_role: Some(p.role),
            account: Some(a),
            account_before: None,
        }
    }
}

/// One version of a key, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct KeyVersionListing {
    /// Version.
    pub version: u32,
    /// Its state.
    pub state: KeyState,
    /// CKA_ID, hex.
    pub key_id: String,
    /// When its certificate ends, ms.
    pub not_after_ms: Option<u64>,
    /// Active and ending within the reminder period.
    pub expiring: bool,
}

/// A key (an appliance key, or `seal:<id>`) with its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct KeyListing {
    /// `issuing-ca`, `seal-maker`, `audit` or `seal:<id>`.
    pub key: String,
    /// Algorithm.
    pub alg: KeyAlg,
    /// For a seal's key: the seal's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_state: Option<SealState>,
    /// Its versions.
    pub versions: Vec<KeyVersionListing>,
}

/// A key version made by a rotation, waiting to be activated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct PendingVersion {
    /// The key.
    pub key: String,
    /// The new version.
    pub version: u32,
    /// `pending`.
    pub state: KeyState,
    /// CKA_ID, hex.
    pub key_id: String,
    /// Its certificate, PEM (seal keys, issuing CA, seal maker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// A CSR for it, PEM (seal keys, for an outside CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
    /// Its public key (the audit key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// A key version that signs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ActivatedVersion {
    /// The key.
    pub key: String,
    /// The version that signs now.
    pub version: u32,
    /// `active`.
    pub state: KeyState,
    /// The version it replaced.
    pub retired: Option<u32>,
}

enum KeyName<'a> {
    Seal(&'a str),
    Appliance(&'static str),
}

fn key_name(name: &str) -> Result<KeyName<'_>, SealError> {
    match name {
        "issuing-ca" => Ok(KeyName::Appliance("issuing-ca")),
        "seal-maker" => Ok(KeyName::Appliance("seal-maker")),
        "audit" => Ok(KeyName::Appliance("audit")),
        n => n.strip_prefix("seal:").map(KeyName::Seal).ok_or_else(|| {
            SealError::NotFound("unknown_key", format!("no key '{n}' (seal:<id>, issuing-ca, seal-maker, audit)"))
        }),
    }
}

/// Key versions and dual control: rotation of seal keys and appliance keys, the switch to a new
/// version, destruction of an old one and the token PIN change, each destructive step approved by
/// a second security officer in time.
pub struct DualControl {
    ledger: Arc<Ledger>,
    directory: Arc<Directory>,
    pki: Arc<Pki>,
    lifecycle: Arc<Lifecycle>,
    filings: Arc<Filings>,
    pending_pins: Mutex<HashMap<String, crate::token::Pin>>,
}

impl DualControl {
    pub(super) fn new(
        ledger: Arc<Ledger>,
        directory: Arc<Directory>,
        pki: Arc<Pki>,
        lifecycle: Arc<Lifecycle>,
        filings: Arc<Filings>,
    ) -> Self {
        DualControl { ledger, directory, pki, lifecycle, filings, pending_pins: Mutex::new(HashMap::new()) }
    }
}

impl DualControl {
    pub(super) fn require_officer(&self, p: &Principal, action: &str, key: &str) -> Result<(), SealError> {
        self.ledger.require_role(
            p,
            Role::Secofficer,
            action,
            &format!("key:{key}"),
            "keys are the security officers' business",
        )
    }

    /// Every key with its versions, states and the end of each certificate; `expiring` marks those
    /// ending within `[seals] reminder_days`. Security officers and auditors.
    pub fn key_list(&self, p: &Principal) -> Result<Vec<KeyListing>, SealError> {
        super::Ledger::every_page(|cursor| self.key_list_page(p, cursor, crate::audit::MAX_PAGE))
    }

    /// A page of [`DualControl::key_list`]: the first page starts with the appliance keys (all of
    /// them, counted within `limit`), then come the seals' keys by seal id, after `cursor`.
    pub fn key_list_page(
        &self,
        p: &Principal,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<KeyListing>, Option<String>), SealError> {
        if !matches!(p.role, Role::Secofficer | Role::Auditor) {
            return Err(self.ledger.refuse(
                p,
                "key.list",
                "keys",
                SealError::Forbidden("keys are listed for security officers and auditors".into()),
            ));
        }
        let horizon = now_ms() + self.ledger.settings.reminder_days * 86_400_000;
        let end = |pem: &str| {
            Cert::parse(pem.as_bytes()).ok().map(|c| {
                c.validity().1.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
            })
        };
        let mut out = Vec::new();
        let appliance: &[&str] = if cursor.is_none() { &["issuing-ca", "seal-maker", "audit"] } else { &[] };
        for name in appliance {
            if let Ok(k) = self.pki.appliance_key(name) {
                let mut versions = vec![KeyVersionListing {
                    version: k.version,
                    state: KeyState::Active,
                    key_id: k.key_id.clone(),
                    not_after_ms: end(&k.cert_pem),
                    expiring: end(&k.cert_pem).is_some_and(|e| e <= horizon),
                }];
                for v in k.pending.iter().chain(k.retired.iter()) {
                    versions.push(KeyVersionListing {
                        version: v.version,
                        state: v.state,
                        key_id: v.key_id.clone(),
                        not_after_ms: end(&v.cert_pem),
                        expiring: false,
                    });
                }
                out.push(KeyListing { key: (*name).into(), alg: k.alg, seal_state: None, versions });
            }
        }
        // Seals without a key yet are passed over; a first page of appliance keys only goes on
        // with the seals from the start (the cursor of a key before every seal id: "\0").
        let room = limit.saturating_sub(out.len());
        if room == 0 {
            return Ok((out, Some(hex::encode(b"\0"))));
        }
        let (seals, next) = self.ledger.page_of(tree::SEALS, cursor, room, |s: &Seal| Ok(!s.versions.is_empty()))?;
        for s in seals {
            let versions: Vec<_> = s
                .versions
                .iter()
                .map(|v| KeyVersionListing {
                    version: v.version,
                    state: v.state,
                    key_id: v.key_id.clone(),
                    not_after_ms: Some(v.not_after_ms),
                    expiring: v.state == KeyState::Active && v.not_after_ms <= horizon,
                })
                .collect();
            out.push(KeyListing { key: format!("seal:{}", s.id), alg: s.alg, seal_state: Some(s.state), versions });
        }
        Ok((out, next))
    }

    /// Appliance keys whose active certificate ends within the reminder period (for /readyz, /metrics).
    pub fn expiring_appliance_keys(&self) -> Result<Vec<String>, SealError> {
        let horizon = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(now_ms() + self.ledger.settings.reminder_days * 86_400_000);
        let mut out = Vec::new();
        for name in ["issuing-ca", "seal-maker"] {
            if let Some(k) = self.ledger.store.get::<ApplianceKey>(tree::KEYS, name)? {
                if Cert::parse(k.cert_pem.as_bytes()).is_ok_and(|c| c.validity().1 <= horizon) {
                    out.push(name.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Makes a new, pending key version in the token. For seals, returns the version with its
    /// certificate and a CSR for an outside CA.
    pub fn rotate(&self, p: &Principal, name: &str) -> Result<PendingVersion, SealError> {
        self.require_officer(p, "key.rotate", name)?;
        match key_name(name)? {
            KeyName::Seal(id) => {
                let _w = self.ledger.exclusive(id)?;
                let mut seal = self.ledger.seal(id)?;
                if seal.current().is_none() || matches!(seal.state, super::SealState::Revoked) {
                    let err =
                        SealError::InvalidTransition { seal: id.into(), state: seal.state, action: "rotate".into() };
                    return Err(self.ledger.refuse(p, "key.rotate", &format!("key:{name}"), err));
                }
                if seal.versions.iter().any(|v| v.state == KeyState::Pending) {
                    return Err(SealError::Conflict(
                        "rotation_pending",
                        format!("{name} has a pending version: activate or destroy it first"),
                    ));
                }
                let next = seal.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
                let mut v = self.lifecycle.new_version(&seal, next)?;
                v.state = KeyState::Pending;
                v.activated_ms = None;
                seal.versions.push(v.clone());
                let ev = AuditEvent::new(actor(p), "key.rotate", &format!("key:{name}"), "ok")
                    .detail("version", next)
                    .detail("key_id", v.key_id.clone())
                    .change(put(tree::SEALS, id, &seal));
                let _ = self.ledger.commit(ev)?;
                drop(_w);
                let csr = {
                    let key = self.ledger.pool.key(&KeyId::from_hex(&v.key_id)?)?;
                    let unit = self.directory.unit(&seal.unit).map(|u| u.name).unwrap_or_else(|_| seal.unit.clone());
                    let signer =
                        crate::token::TokenKey::with_public(&self.ledger.pool, &key.id, key.public_key.clone());
                    crate::formats::x509::build_csr(&super::seal_subject(&seal, &unit), &key.public_key, &signer)
                        .map_err(|e| super::signing_failed(&signer, e))?
                };
                Ok(PendingVersion {
                    key: name.into(),
                    version: next,
                    state: KeyState::Pending,
                    key_id: v.key_id,
                    certificate: Some(v.cert_pem),
                    csr: Some(csr),
                    public_key: None,
                })
            }
            KeyName::Appliance(which) => {
                let _g = self.ledger.admin_lock()?;
                let mut k = self.pki.appliance_key(which)?;
                if k.pending.is_some() {
                    return Err(SealError::Conflict(
                        "rotation_pending",
                        format!("{which} has a pending version: activate or destroy it first"),
                    ));
                }
                let next = k.retired.iter().map(|r| r.version).chain([k.version]).max().unwrap_or(1) + 1;
                let key = self.ledger.pool.generate(k.alg, &format!("seald-{which}-v{next}"))?;
                let now = std::time::SystemTime::now();
                if which == "audit" {
                    // The audit key has no certificate: its record keeps the public key (SPKI PEM).
                    let key = self.ledger.pool.generate(k.alg, &format!("seald-audit-v{next}"))?;
                    let v = ApplianceKeyVersion {
                        version: next,
                        key_id: key.id.to_hex(),
                        cert_pem: key.public_key.to_spki_pem(),
                        state: KeyState::Pending,
                        created_ms: now_ms(),
                        retired_ms: None,
                    };
                    k.pending = Some(v.clone());
                    let ev = AuditEvent::new(actor(p), "key.rotate", "key:audit", "ok")
                        .detail("version", next)
                        .detail("key_id", v.key_id.clone())
                        .change(put(tree::KEYS, which, &k));
                    let _ = self.ledger.commit(ev)?;
                    return Ok(PendingVersion {
                        key: which.into(),
                        version: next,
                        state: KeyState::Pending,
                        key_id: v.key_id,
                        certificate: None,
                        csr: None,
                        public_key: Some(v.cert_pem),
                    });
                }
                let ca = which == "issuing-ca";
                let template = crate::formats::x509::CertTemplate {
                    subject: vec![
                        ("CN", format!("seald {}", if ca { "issuing CA" } else { "seal maker" })),
                        ("O", "seald".to_string()),
                    ],
                    public_key: &key.public_key,
                    not_before: now - std::time::Duration::from_secs(3600),
                    not_after: now + std::time::Duration::from_secs(3650 * 86400),
                    ca,
                    purpose: None,
                };
                let (signer, ca_cert) = if ca {
                    (crate::token::TokenKey::with_public(&self.ledger.pool, &key.id, key.public_key.clone()), None)
                } else {
                    let ca_key = self.pki.appliance_key("issuing-ca")?;
                    let ca_cert =
                        Cert::parse(ca_key.cert_pem.as_bytes()).map_err(|e| SealError::Certificate(e.to_string()))?;
                    let signer = crate::token::TokenKey::with_public(
                        &self.ledger.pool,
                        &KeyId::from_hex(&ca_key.key_id)?,
                        ca_cert.public_key().map_err(|e| SealError::Certificate(e.to_string()))?,
                    );
                    (signer, Some(ca_cert))
                };
                let cert = match crate::formats::x509::issue(&template, ca_cert.as_ref(), &signer) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = self.ledger.pool.destroy(&key.id);
                        return Err(super::signing_failed(&signer, e));
                    }
                };
                let v = ApplianceKeyVersion {
                    version: next,
                    key_id: key.id.to_hex(),
                    cert_pem: cert.to_pem(),
                    state: KeyState::Pending,
                    created_ms: now_ms(),
                    retired_ms: None,
                };
                k.pending = Some(v.clone());
                let ev = AuditEvent::new(actor(p), "key.rotate", &format!("key:{which}"), "ok")
                    .detail("version", next)
                    .detail("key_id", v.key_id.clone())
                    .change(put(tree::KEYS, which, &k));
                let _ = self.ledger.commit(ev)?;
                Ok(PendingVersion {
                    key: which.into(),
                    version: next,
                    state: KeyState::Pending,
                    key_id: v.key_id,
                    certificate: Some(v.cert_pem),
                    csr: None,
                    public_key: None,
                })
            }
        }
    }

    pub(super) fn open_request(
        &self,
        p: &Principal,
        action: RequestAction,
        key: &str,
        version: u32,
    ) -> Result<DualRequest, SealError> {
        let now = now_ms();
        let r = DualRequest {
            id: format!("R{}", super::random_hex(8)),
            action,
            key: key.into(),
            version,
            requested_by: p.account.clone(),
            created_ms: now,
            expires_ms: now + self.ledger.settings.dual_control_deadline_s * 1000,
            state: RequestState::Pending,
            approved_by: None,
            requested_role: Some(p.role),
            account: None,
            account_before: None,
        };
        let ev = AuditEvent::new(actor(p), "key.request", &format!("key:{key}"), "ok")
            .detail("request", r.id.clone())
            .detail("action", serde_json::to_value(action).unwrap_or_default())
            .detail("version", version)
            .change(put(tree::REQUESTS, &r.id, &r));
        let _ = self.ledger.commit(ev)?;
        Ok(r)
    }

    /// Switches signing to a pending version. Seals: at once. Appliance keys: opens a request that a
    /// second officer approves (`Ok(Err(request))`).
    pub fn activate(
        &self,
        p: &Principal,
        name: &str,
        version: u32,
    ) -> Result<Result<ActivatedVersion, DualRequest>, SealError> {
        self.require_officer(p, "key.activate", name)?;
        match key_name(name)? {
            KeyName::Seal(id) => self.activate_seal_version(p, id, version).map(Ok),
            KeyName::Appliance(which) => {
                let k = self.pki.appliance_key(which)?;
                if k.pending.as_ref().map(|v| v.version) != Some(version) {
                    return Err(SealError::Conflict(
                        "not_pending",
                        format!("{which} version {version} is not pending"),
                    ));
                }
                self.open_request(p, RequestAction::Activate, which, version).map(Err)
            }
        }
    }

    pub(super) fn activate_seal_version(
        &self,
        p: &Principal,
        id: &str,
        version: u32,
    ) -> Result<ActivatedVersion, SealError> {
        let _w = self.ledger.exclusive(id)?;
        // Exclusive: uses in flight finish on the old version first; none after this starts uses it.
        let mut seal = self.ledger.seal(id)?;
        if !seal.versions.iter().any(|v| v.version == version && v.state == KeyState::Pending) {
            return Err(SealError::Conflict("not_pending", format!("seal:{id} version {version} is not pending")));
        }
        let now = now_ms();
        let old = seal.current().map(|v| v.version);
        for v in seal.versions.iter_mut() {
            if v.state == KeyState::Active {
                v.state = KeyState::Retired;
                v.retired_ms = Some(now);
            }
            if v.version == version {
                v.state = KeyState::Active;
                v.activated_ms = Some(now);
            }
        }
        seal.history.push(super::HistoryEntry {
            action: "activate".into(),
            state: seal.state,
            by: p.account.clone(),
            time_ms: now,
            reason: Some(format!("key version {version}")),
        });
        let filing = self.filings.new_filing(&seal, "renew");
        let ev = AuditEvent::new(actor(p), "key.activate", &format!("key:seal:{id}"), "ok")
            .detail("version", version)
            .detail("retired", old)
            .change(put(tree::FILINGS, &filing.id, &filing))
            .change(put(tree::SEALS, id, &seal));
        let _ = self.ledger.commit(ev)?;
        Ok(ActivatedVersion { key: format!("seal:{id}"), version, state: KeyState::Active, retired: old })
    }

    /// Asks to destroy a retired or pending version (dual control).
    pub fn request_destroy(&self, p: &Principal, name: &str, version: u32) -> Result<DualRequest, SealError> {
        self.require_officer(p, "key.destroy", name)?;
        let state = match key_name(name)? {
            KeyName::Seal(id) => self.ledger.seal(id)?.versions.iter().find(|v| v.version == version).map(|v| v.state),
            KeyName::Appliance(which) => {
                let k = self.pki.appliance_key(which)?;
                if k.version == version {
                    Some(KeyState::Active)
                } else {
                    k.pending.iter().chain(k.retired.iter()).find(|v| v.version == version).map(|v| v.state)
                }
            }
        };
        match state {
            None => Err(SealError::NotFound("unknown_key", format!("{name} has no version {version}"))),
            Some(KeyState::Active) => Err(SealError::Conflict(
                "key_active",
                format!("{name} version {version} signs; rotate and activate another first"),
            )),
            Some(KeyState::Destroyed) => {
                Err(SealError::Conflict("key_destroyed", format!("{name} version {version} is destroyed already")))
            }
            Some(_) => self.open_request(p, RequestAction::Destroy, name, version),
        }
    }

    /// Asks to change the token's user PIN (dual control). The new PIN is held in memory until a
    /// second officer approves; it is never written to the store or the journal. A restart forgets
    /// it, and the request must be made again.
    pub fn request_pin_change(&self, p: &Principal, new_pin: crate::token::Pin) -> Result<DualRequest, SealError> {
        self.require_officer(p, "token.change_pin", "token")?;
        // One PIN change waits at a time: a new PIN is held in memory only while its request can
        // still be approved.
        let mut pins = self.pending_pins.lock().unwrap_or_else(|p| p.into_inner());
        let live = |id: &String| {
            self.ledger
                .store
                .get::<DualRequest>(tree::REQUESTS, id)
                .ok()
                .flatten()
                .is_some_and(|r| r.state == RequestState::Pending && now_ms() <= r.expires_ms)
        };
        pins.retain(|id, _| live(id));
        if let Some(id) = pins.keys().next() {
            return Err(self.ledger.refuse(
                p,
                "token.change_pin",
                "token",
                SealError::Conflict(
                    "pin_change_pending",
                    format!("PIN change {id} awaits approval; approve it or let it expire first"),
                ),
            ));
        }
        let r = self.open_request(p, RequestAction::ChangePin, "token", 0)?;
        let _ = pins.insert(r.id.clone(), new_pin);
        Ok(r)
    }

    /// Dual-control requests (the three administrators).
    pub fn requests(&self, p: &Principal) -> Result<Vec<DualRequest>, SealError> {
        Ledger::every_page(|c| self.requests_page(p, c, crate::audit::MAX_PAGE))
    }

    /// A page of the dual-control requests (the three administrators), by id.
    pub fn requests_page(
        &self,
        p: &Principal,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<DualRequest>, Option<String>), SealError> {
        if !p.role.is_administrator() {
            return Err(self.ledger.refuse(
                p,
                "key.requests",
                "requests",
                SealError::Forbidden("requests are for the three administrators".into()),
            ));
        }
        self.ledger.page_of(tree::REQUESTS, cursor, limit, |_: &DualRequest| Ok(true))
    }

    /// The second officer approves a request, which is then carried out. An account request is
    /// approved by an administrator of another role than the one who asked, who is not the account
    /// changed.
    pub fn approve_request(&self, p: &Principal, id: &str) -> Result<DualRequest, SealError> {
        let object = format!("request:{id}");
        let found = self.ledger.store.get::<DualRequest>(tree::REQUESTS, id)?;
        if found.as_ref().is_some_and(|r| r.action == RequestAction::Account) {
            return self.approve_account(p, id);
        }
        self.ledger.require_role(p, Role::Secofficer, "key.approve", &object, "only a security officer approves")?;
        let _g = self.ledger.admin_lock()?;
        let mut r = self
            .ledger
            .store
            .get::<DualRequest>(tree::REQUESTS, id)?
            .ok_or_else(|| SealError::NotFound("unknown_request", format!("no request '{id}'")))?;
        if r.state != RequestState::Pending {
            return Err(SealError::Conflict("request_done", format!("request {id} was carried out already")));
        }
        if r.requested_by == p.account {
            return Err(self.ledger.refuse(
                p,
                "key.approve",
                &object,
                SealError::Forbidden("the officer who asked cannot approve: a second officer must".into()),
            ));
        }
        if now_ms() > r.expires_ms {
            return Err(self.ledger.refuse(
                p,
                "key.approve",
                &object,
                SealError::Conflict("request_expired", format!("request {id} expired; ask again")),
            ));
        }
        r.state = RequestState::Done;
        r.approved_by = Some(p.account.clone());
        let mut ev = AuditEvent::new(actor(p), "key.approve", &object, "ok")
            .detail("action", serde_json::to_value(r.action).unwrap_or_default())
            .detail("key", r.key.clone())
            .detail("version", r.version)
            .detail("requested_by", r.requested_by.clone())
            .change(put(tree::REQUESTS, id, &r));
        if r.action == RequestAction::ChangePin {
            let pin = self.pending_pins.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            let pin = pin.ok_or_else(|| {
                SealError::Conflict("request_lost", format!("request {id} lost its PIN in a restart; ask again"))
            })?;
            let written = self.ledger.pool.change_pin(pin)?;
            let ev = ev.detail("pin_file_updated", written);
            let _ = self.ledger.commit(ev)?;
            if !written {
                tracing::warn!("the token PIN changed: update the PIN file or credential before the next start");
            }
            return Ok(r);
        }
        let name = r.key.clone();
        match (r.action, key_name(&name)?) {
            (RequestAction::Activate, KeyName::Appliance(which)) => {
                let mut k = self.pki.appliance_key(which)?;
                let pending = k.pending.take().filter(|v| v.version == r.version).ok_or_else(|| {
                    SealError::Conflict("not_pending", format!("{which} version {} is no longer pending", r.version))
                })?;
                let now = now_ms();
                k.retired.push(ApplianceKeyVersion {
                    version: k.version,
                    key_id: k.key_id.clone(),
                    cert_pem: k.cert_pem.clone(),
                    state: KeyState::Retired,
                    created_ms: 0,
                    retired_ms: Some(now),
                });
                k.version = pending.version;
                k.key_id = pending.key_id;
                k.cert_pem = pending.cert_pem;
                ev = ev.change(put(tree::KEYS, which, &k));
                if which == "audit" {
                    if self.ledger.store.pg().is_some() {
                        // Each node's chain would have to record the switch, signed by the key
                        // before it: not done yet, so refused rather than leave chains that do not
                        // verify.
                        return Err(SealError::Conflict(
                            "conflict",
                            "the audit key is not rotated on a cluster in this release (every node's chain must record the switch)".into(),
                        ));
                    }
                    // The old key vouches for the new one in the journal, then the journal signs with it.
                    let id = KeyId::from_hex(&k.key_id)?;
                    let signer = crate::token::TokenKey::open(&self.ledger.pool, &id)?;
                    ev.action = crate::audit::KEY_CHANGE_ACTION.into();
                    ev = ev.detail("new_public_key", k.cert_pem.clone()).detail("approved_request", r.id.clone());
                    let _ = self.ledger.journal.rekey(std::sync::Arc::new(signer), ev)?;
                    self.ledger.set_audit_key(id);
                    return Ok(r);
                }
            }
            (RequestAction::Destroy, KeyName::Appliance(which)) => {
                let mut k = self.pki.appliance_key(which)?;
                let v = k
                    .pending
                    .iter_mut()
                    .chain(k.retired.iter_mut())
                    .find(|v| v.version == r.version && v.state != KeyState::Destroyed);
                let v = v.ok_or_else(|| {
                    SealError::Conflict("key_destroyed", format!("{which} version {} is gone", r.version))
                })?;
                self.ledger.pool.destroy(&KeyId::from_hex(&v.key_id)?)?;
                v.state = KeyState::Destroyed;
                if k.pending.as_ref().is_some_and(|p| p.state == KeyState::Destroyed) {
                    let gone = k.pending.take();
                    k.retired.extend(gone);
                }
                ev = ev.change(put(tree::KEYS, which, &k));
            }
            (RequestAction::Destroy, KeyName::Seal(sid)) => {
                let _w = self.ledger.exclusive(sid)?;
                let mut seal = self.ledger.seal(sid)?;
                let v = seal
                    .versions
                    .iter_mut()
                    .find(|v| v.version == r.version && matches!(v.state, KeyState::Retired | KeyState::Pending));
                let v = v.ok_or_else(|| {
                    SealError::Conflict(
                        "key_active",
                        format!("seal:{sid} version {} cannot be destroyed now", r.version),
                    )
                })?;
                self.ledger.pool.destroy(&KeyId::from_hex(&v.key_id)?)?;
                v.state = KeyState::Destroyed;
                ev = ev.change(put(tree::SEALS, sid, &seal));
                let _ = self.ledger.commit(ev)?;
                return Ok(r);
            }
            (RequestAction::Activate, KeyName::Seal(_)) => {
                return Err(SealError::BadInput("seal keys are activated without a request".into()));
            }
            (RequestAction::ChangePin | RequestAction::Account, _) => {
                return Err(SealError::BadInput("handled above".into()))
            }
        }
        let _ = self.ledger.commit(ev)?;
        Ok(r)
    }
}

impl DualControl {
    fn approve_account(&self, p: &Principal, id: &str) -> Result<DualRequest, SealError> {
        let object = format!("request:{id}");
        let refuse = |e: SealError| self.ledger.refuse(p, "account.approve", &object, e);
        if !p.role.is_administrator() {
            return Err(refuse(SealError::Forbidden(
                "only an administrator approves an administrator's account".into(),
            )));
        }
        let _g = self.ledger.admin_lock()?;
        let mut r = self
            .ledger
            .store
            .get::<DualRequest>(tree::REQUESTS, id)?
            .ok_or_else(|| SealError::NotFound("unknown_request", format!("no request '{id}'")))?;
        if r.state != RequestState::Pending {
            return Err(SealError::Conflict("request_done", format!("request {id} was carried out already")));
        }
        if r.requested_by == p.account || r.requested_role == Some(p.role) {
            return Err(refuse(SealError::Forbidden(
                "an administrator of another role than the one who asked must approve (三员分立)".into(),
            )));
        }
        if r.key == p.account {
            return Err(refuse(SealError::Forbidden("no account approves a change to itself".into())));
        }
        if now_ms() > r.expires_ms {
            return Err(refuse(SealError::Conflict("request_expired", format!("request {id} expired; ask again"))));
        }
        r.state = RequestState::Done;
        r.approved_by = Some(p.account.clone());
        let record = put(tree::REQUESTS, id, &r);
        let _ = self.directory.apply_approved(p, &r, record)?;
        Ok(r)
    }
}

/// The audit key to sign with and the key verification starts from. Before any rotation the
/// configured key is both; after one, the store's record names the active key (the configuration may
/// lag behind: it is only where the first key was named) and its first version is the anchor.
pub fn active_audit_key(
    store: &crate::store::Store,
    configured: &KeyId,
) -> Result<(KeyId, Option<crate::crypto::PublicKey>), SealError> {
    let Some(k) = store.get::<ApplianceKey>(tree::KEYS, "audit")? else {
        return Ok((configured.clone(), None));
    };
    let active = KeyId::from_hex(&k.key_id)?;
    if &active != configured {
        tracing::warn!(configured = %configured, active = %active, "[audit] key is not the active audit key (rotated); using the active one");
    }
    let first = k.retired.iter().min_by_key(|v| v.version).map(|v| v.cert_pem.as_str()).unwrap_or(k.cert_pem.as_str());
    let anchor = crate::crypto::PublicKey::from_spki_pem(first)
        .map_err(|e| SealError::Store(format!("audit key record: {e}")))?;
    Ok((active, Some(anchor)))
}
