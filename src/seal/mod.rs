//! The seal registry (统一印控): units, accounts, seals and their lifecycle, grants, use tickets,
//! filings with the police (备案), and the one place that decides whether a seal may be used
//! ([`HeldSeal::authorize_use`] in `usage.rs`, the gate every signing recipe passes).
//!
//! Every change is checked against the store, journalled (durable), and applied to the store by the
//! journal in the same step: the journal record carries the full new state of every object it
//! changes. Refusals are journalled too, so an auditor sees who tried what.
//!
//! Concurrency: each seal has a reader-writer lock. A use holds it shared from its checks until its
//! usage record is durable; a transition holds it exclusively. So once a freeze (or revoke, renew)
//! is acknowledged, no use that started before it is still running, and none after it passes.
//! Account, unit, grant and filing changes are serialised by one admin lock.
//!
//! What it deliberately does not do: HTTP (that is `api`), or key handling beyond asking the token to
//! generate, sign and look up keys by CKA_ID.

mod directory;
mod keys;
mod lifecycle;
mod trail;
mod usage;

pub use directory::{AccountRecord, AccountSpec, AccountUpdate, Unit, UnitSpec};
pub use keys::{active_audit_key, DualRequest, RequestState};
pub use lifecycle::{Action, ApplyRequest, TransitionRequest};
pub use usage::{HeldSeal, SealKeyRef, TicketRequest, UsePermit, UseReceipt};

use crate::audit::{Actor, AuditEvent, Journal};
use crate::authz::{Principal, Role};
use crate::crypto::{KeyAlg, PublicKey};
use crate::formats::x509::Cert;
use crate::store::{Change, Store};
use crate::token::{KeyId, SignInput, TokenError, TokenPool};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// The states of ../shared/ARCHITECTURE.md. Expired is derived from the validity, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SealState {
    /// A unit administrator applied for it.
    Applied,
    /// An issuer approved the application.
    Approved,
    /// An issuer rejected it (terminal).
    Rejected,
    /// Key generated and certificate bound; not yet in use.
    Made,
    /// Published to its unit: usable.
    Active,
    /// Temporarily unusable.
    Frozen,
    /// Permanently unusable; its key is never used again (terminal).
    Revoked,
}

impl SealState {
    /// The lowercase name used in the API.
    pub fn name(self) -> &'static str {
        match self {
            SealState::Applied => "applied",
            SealState::Approved => "approved",
            SealState::Rejected => "rejected",
            SealState::Made => "made",
            SealState::Active => "active",
            SealState::Frozen => "frozen",
            SealState::Revoked => "revoked",
        }
    }

    /// Every state, for the lifecycle tests and filters.
    pub const ALL: [SealState; 7] = [
        SealState::Applied,
        SealState::Approved,
        SealState::Rejected,
        SealState::Made,
        SealState::Active,
        SealState::Frozen,
        SealState::Revoked,
    ];
}

impl std::str::FromStr for SealState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SealState::ALL.into_iter().find(|st| st.name() == s).ok_or_else(|| format!("unknown seal state '{s}'"))
    }
}

/// The kinds of seal (印章类型).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealKind {
    /// 法定名称章 (the unit's official seal).
    #[serde(alias = "法定名称章")]
    Official,
    /// 财务专用章.
    #[serde(alias = "财务专用章")]
    Finance,
    /// 合同专用章.
    #[serde(alias = "合同专用章")]
    Contract,
    /// 发票专用章.
    #[serde(alias = "发票专用章")]
    Invoice,
    /// 业务专用章.
    #[serde(alias = "业务专用章")]
    Business,
    /// 法定代表人章 / 职务章.
    #[serde(alias = "法定代表人章", alias = "职务章")]
    LegalRepresentative,
    /// 个人名章.
    #[serde(alias = "个人名章")]
    Personal,
}

impl SealKind {
    /// The Chinese name, as on the police filing.
    pub fn label(self) -> &'static str {
        match self {
            SealKind::Official => "法定名称章",
            SealKind::Finance => "财务专用章",
            SealKind::Contract => "合同专用章",
            SealKind::Invoice => "发票专用章",
            SealKind::Business => "业务专用章",
            SealKind::LegalRepresentative => "法定代表人章",
            SealKind::Personal => "个人名章",
        }
    }
}

/// The seal's picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealImage {
    /// `png`, `gif`, `jpg` or `svg`.
    pub image_type: String,
    /// The bytes, base64.
    pub data: String,
    /// SM3 of the bytes, hex.
    pub sm3: String,
    /// Width in millimetres.
    pub width_mm: f64,
    /// Height in millimetres.
    pub height_mm: f64,
}

/// Who may use a seal, and how. Grants (which apps) are kept beside it in the `grants` tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Each use needs a single-use approval ticket from the unit administrator.
    #[serde(default)]
    pub require_approval: bool,
    /// Most uses per calendar day (appliance time zone).
    #[serde(default)]
    pub daily_limit: Option<u64>,
    /// Most uses ever.
    #[serde(default)]
    pub total_limit: Option<u64>,
    /// Allowed hours `[from, to)` in the appliance time zone, 0 to 24; `to < from` wraps midnight.
    #[serde(default)]
    pub hours: Option<[u8; 2]>,
}

/// The life of a key version: made (pending), signing (active, exactly one per key), kept to verify
/// (retired), gone from the token (destroyed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Generated; not signing yet.
    Pending,
    /// The one that signs.
    #[default]
    Active,
    /// Replaced; still verifies.
    Retired,
    /// Destroyed in the token.
    Destroyed,
}

/// One key version of a seal: the key in the token and the certificate bound to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealKeyVersion {
    /// 1, 2, ...
    pub version: u32,
    /// Its state (records written before states existed read as active; `current` picks the newest).
    #[serde(default)]
    pub state: KeyState,
    /// When it became the signing version.
    #[serde(default)]
    pub activated_ms: Option<u64>,
    /// CKA_ID, hex.
    pub key_id: String,
    /// Algorithm.
    pub alg: KeyAlg,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its serial number, hex.
    pub cert_serial: String,
    /// Validity start, ms since the epoch.
    pub not_before_ms: u64,
    /// Validity end, ms since the epoch.
    pub not_after_ms: u64,
    /// When this version was made.
    pub created_ms: u64,
    /// When a newer version replaced it.
    #[serde(default)]
    pub retired_ms: Option<u64>,
    /// The GB/T 38540 `SESeal` of this version (certList: its certificate), DER, base64.
    #[serde(default)]
    pub ses: Option<String>,
}

/// One step of a seal's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The action (`apply`, `approve`, ...).
    pub action: String,
    /// State after it.
    pub state: SealState,
    /// Who.
    pub by: String,
    /// When, ms since the epoch.
    pub time_ms: u64,
    /// The reason given, if any.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A seal as the registry keeps it (tree `seals`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seal {
    /// Stable code; also the GB/T 38540 esID.
    pub id: String,
    /// The unit that owns it.
    pub unit: String,
    /// The name on file with the police.
    pub name: String,
    /// Kind.
    pub kind: SealKind,
    /// Picture.
    pub image: SealImage,
    /// Key algorithm of its versions.
    pub alg: KeyAlg,
    /// Validity of each certificate, in days.
    pub valid_days: u32,
    /// Current state.
    pub state: SealState,
    /// Use policy.
    pub policy: Policy,
    /// Key versions, oldest first; the active one signs (see [`Seal::current`]).
    #[serde(default)]
    pub versions: Vec<SealKeyVersion>,
    /// The seal this one replaced (变更).
    #[serde(default)]
    pub replaces: Option<String>,
    /// The seal that replaced this one.
    #[serde(default)]
    pub replaced_by: Option<String>,
    /// Every transition, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

impl Seal {
    /// The signing key version.
    pub fn current(&self) -> Option<&SealKeyVersion> {
        self.versions.iter().rev().find(|v| v.state == KeyState::Active)
    }

    /// The signing key version, mutable.
    pub fn current_mut(&mut self) -> Option<&mut SealKeyVersion> {
        self.versions.iter_mut().rev().find(|v| v.state == KeyState::Active)
    }

    /// Whether its validity has ended at `now_ms` (derived, never stored).
    pub fn expired(&self, now_ms: u64) -> bool {
        self.current().is_some_and(|v| now_ms > v.not_after_ms)
    }

    /// The JSON the API shows: the stored seal plus derived fields; without the image bytes when
    /// `brief`.
    pub fn view(&self, now_ms: u64, brief: bool) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            let _ = o.insert("expired".into(), self.expired(now_ms).into());
            let current = self.current();
            let _ = o.insert("key_version".into(), current.map(|c| c.version).into());
            let _ = o.insert("not_after_ms".into(), current.map(|c| c.not_after_ms).into());
            if brief {
                for field in ["history", "versions"] {
                    let _ = o.remove(field);
                }
                if let Some(img) = o.get_mut("image").and_then(|i| i.as_object_mut()) {
                    let _ = img.remove("data");
                }
            }
        }
        v
    }
}

/// A grant: `account` (an app) may use `seal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Seal id.
    pub seal: String,
    /// App account name.
    pub account: String,
    /// Who granted it.
    pub granted_by: String,
    /// When.
    pub time_ms: u64,
}

/// A single-use approval ticket for one use of a seal by one app on one document digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Random id.
    pub id: String,
    /// Seal id.
    pub seal: String,
    /// The app that may use it.
    pub app: String,
    /// The document digest the use must name (lowercase hex, as in the usage record).
    pub digest: String,
    /// Who approved.
    pub approved_by: String,
    /// When.
    pub created_ms: u64,
    /// Unusable after this.
    pub expires_ms: u64,
    /// When it was used, if it was.
    #[serde(default)]
    pub used_ms: Option<u64>,
}

/// Filing states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilingState {
    /// Not yet acknowledged by the police system.
    Pending,
    /// Acknowledged.
    Acked,
}

/// A filing record (备案) for the police seal-management system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filing {
    /// Id.
    pub id: String,
    /// Seal id.
    pub seal: String,
    /// The seal's name.
    pub seal_name: String,
    /// Its kind.
    pub kind: SealKind,
    /// Its unit.
    pub unit: String,
    /// `make`, `change`, `renew` or `revoke`.
    pub action: String,
    /// Key version concerned.
    #[serde(default)]
    pub key_version: Option<u32>,
    /// Certificate serial concerned, hex.
    #[serde(default)]
    pub cert_serial: Option<String>,
    /// When it was queued.
    pub created_ms: u64,
    /// State.
    pub state: FilingState,
    /// When it was acknowledged, and by whom, with the police system's reference.
    #[serde(default)]
    pub acked_ms: Option<u64>,
    /// Who acknowledged it.
    #[serde(default)]
    pub acked_by: Option<String>,
    /// The police system's reference number.
    #[serde(default)]
    pub reference: Option<String>,
}

impl Filing {
    /// Pending for longer than `deadline_ms` at `now_ms`.
    pub fn overdue(&self, now_ms: u64, deadline_ms: u64) -> bool {
        self.state == FilingState::Pending && now_ms.saturating_sub(self.created_ms) > deadline_ms
    }
}

/// One of the appliance's own keys in the token with its certificate (tree `keys`): the issuing CA
/// (`issuing-ca`, self-signed) and the seal maker (`seal-maker`, issued by that CA), which signs the
/// GB/T 38540 `SESeal` of every seal made here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplianceKey {
    /// CKA_ID, hex, of the active version.
    pub key_id: String,
    /// Algorithm.
    pub alg: KeyAlg,
    /// The active version's certificate, PEM.
    pub cert_pem: String,
    /// The active version's number.
    #[serde(default = "first_version")]
    pub version: u32,
    /// A rotated version waiting for (dual-control) activation.
    #[serde(default)]
    pub pending: Option<ApplianceKeyVersion>,
    /// Earlier versions: retired ones still verify (a retired issuing CA stays a trust anchor).
    #[serde(default)]
    pub retired: Vec<ApplianceKeyVersion>,
}

fn first_version() -> u32 {
    1
}

impl ApplianceKey {
    /// A key's first version, with nothing pending or retired.
    fn first(key_id: String, alg: KeyAlg, cert_pem: String) -> Self {
        ApplianceKey { key_id, alg, cert_pem, version: first_version(), pending: None, retired: Vec::new() }
    }
}

/// A version of an appliance key other than the active one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplianceKeyVersion {
    /// Its number.
    pub version: u32,
    /// CKA_ID, hex.
    pub key_id: String,
    /// Its certificate, PEM.
    pub cert_pem: String,
    /// State.
    pub state: KeyState,
    /// When it was made.
    pub created_ms: u64,
    /// When it was retired.
    #[serde(default)]
    pub retired_ms: Option<u64>,
}

/// `[seals]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SealSettings {
    /// The appliance's time zone as hours east of UTC (China: 8), for daily limits and allowed hours.
    pub utc_offset_hours: i8,
    /// Largest seal image, bytes.
    pub max_image_bytes: usize,
    /// A filing pending longer than this is overdue.
    pub filing_deadline_hours: u64,
    /// Seals whose certificate ends within this many days are reported as expiring.
    pub reminder_days: u64,
    /// Longest validity of a use ticket, seconds (also the default).
    pub ticket_max_s: u64,
    /// How long a dual-control request waits for the second security officer, seconds.
    pub dual_control_deadline_s: u64,
}

impl Default for SealSettings {
    fn default() -> Self {
        SealSettings {
            utc_offset_hours: 8,
            max_image_bytes: 512 * 1024,
            filing_deadline_hours: 24,
            reminder_days: 90,
            ticket_max_s: 3600,
            dual_control_deadline_s: 3600,
        }
    }
}

/// Why a use of a seal was refused. Each has its own stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseRefusal {
    /// The app holds no grant on the seal.
    NoGrant,
    /// The seal is not (yet) active.
    NotActive,
    /// Frozen.
    Frozen,
    /// Revoked.
    Revoked,
    /// Its validity has ended.
    Expired,
    /// Outside the allowed hours.
    OutsideHours,
    /// A daily or total limit is reached.
    UsageLimit,
    /// The policy needs a ticket and none was given.
    TicketRequired,
    /// The ticket was used already.
    TicketUsed,
    /// The ticket has expired.
    TicketExpired,
    /// The ticket is for another seal, app or digest, or does not exist.
    TicketMismatch,
}

impl UseRefusal {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            UseRefusal::NoGrant => "no_grant",
            UseRefusal::NotActive => "seal_not_active",
            UseRefusal::Frozen => "seal_frozen",
            UseRefusal::Revoked => "seal_revoked",
            UseRefusal::Expired => "seal_expired",
            UseRefusal::OutsideHours => "outside_hours",
            UseRefusal::UsageLimit => "usage_limit",
            UseRefusal::TicketRequired => "ticket_required",
            UseRefusal::TicketUsed => "ticket_used",
            UseRefusal::TicketExpired => "ticket_expired",
            UseRefusal::TicketMismatch => "ticket_mismatch",
        }
    }
}

/// What went wrong. `code()` is the stable API code.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The caller's role or unit does not allow this (journalled as a refusal).
    #[error("{0}")]
    Forbidden(String),
    /// No such object.
    #[error("{1}")]
    NotFound(&'static str, String),
    /// The seal is not in a state that allows the action.
    #[error("seal {seal} is {}; {action} is not allowed from that state", state.name())]
    InvalidTransition {
        /// Seal id.
        seal: String,
        /// Its state.
        state: SealState,
        /// The action tried.
        action: String,
    },
    /// A conflicting object exists (name taken, fingerprint bound elsewhere, ...).
    #[error("{1}")]
    Conflict(&'static str, String),
    /// The request is malformed.
    #[error("{0}")]
    BadInput(String),
    /// A use was refused by the seal's rules.
    #[error("{1}")]
    Refused(UseRefusal, String),
    /// No issuing CA is set up (`seald init`).
    #[error("no issuing CA key: run `seald init` (or `seald dev`)")]
    NoIssuingCa,
    /// No seal-maker key is set up (`seald init`).
    #[error("no seal-maker key: run `seald init` (or `seald dev`)")]
    NoSealMaker,
    /// The token failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A certificate could not be issued or read.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The journal did not take the record: nothing changed.
    #[error("audit journal unavailable: {0}")]
    Audit(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
    /// A backup could not be made.
    #[error("{0}")]
    Backup(String),
}

impl SealError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            SealError::Forbidden(_) => "forbidden",
            SealError::NotFound(code, _) => code,
            SealError::InvalidTransition { .. } => "invalid_transition",
            SealError::Conflict(code, _) => code,
            SealError::BadInput(_) => "bad_input",
            SealError::Refused(r, _) => r.code(),
            SealError::NoIssuingCa => "no_issuing_ca",
            SealError::NoSealMaker => "no_seal_maker",
            SealError::Token(t) => t.code(),
            SealError::Certificate(_) => "bad_certificate",
            SealError::Audit(_) => "audit_unavailable",
            SealError::Store(_) => "store_unavailable",
            SealError::Backup(_) => "backup_failed",
        }
    }
}

impl From<crate::store::StoreError> for SealError {
    fn from(e: crate::store::StoreError) -> Self {
        SealError::Store(e.to_string())
    }
}

impl From<crate::audit::AuditError> for SealError {
    fn from(e: crate::audit::AuditError) -> Self {
        SealError::Audit(e.to_string())
    }
}

/// Per-seal coordination: the lifecycle lock, and uses in flight (for exact limits and tickets).
#[derive(Default)]
struct SealSlot {
    /// Shared by uses (from the gate until the usage record is durable), exclusive for transitions.
    lock: Arc<parking_lot::RwLock<()>>,
    in_flight: Mutex<InFlight>,
}

#[derive(Default)]
struct InFlight {
    uses: u64,
    tickets: std::collections::HashSet<String>,
}

/// The registry.
pub struct Registry {
    store: Arc<Store>,
    journal: Arc<Journal>,
    pool: TokenPool,
    settings: SealSettings,
    slots: Mutex<HashMap<String, Arc<SealSlot>>>,
    admin: Mutex<()>,
    directory: RwLock<HashMap<String, AccountRecord>>,
    pending_pins: Mutex<HashMap<String, crate::token::Pin>>,
    audit_key: Mutex<Option<KeyId>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// A seal certificate's subject: its name, unit, kind and code.
pub(crate) fn seal_subject(seal: &Seal, unit_name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CN", seal.name.clone()),
        ("O", unit_name.to_string()),
        ("OU", seal.kind.label().to_string()),
        ("serialNumber", seal.id.clone()),
    ]
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    let _ = getrandom::getrandom(&mut b);
    hex::encode(b)
}

fn put<T: Serialize>(tree: &str, key: &str, value: &T) -> Change {
    Change::Put { tree: tree.into(), key: key.into(), value: serde_json::to_value(value).unwrap_or_default() }
}

fn actor(p: &Principal) -> Actor {
    Actor { account: p.account.clone(), cert_fingerprint: Some(p.fingerprint.clone()) }
}

impl Registry {
    /// The registry over an open store and journal (the journal applies changes to that store).
    pub fn new(
        store: Arc<Store>,
        journal: Arc<Journal>,
        pool: TokenPool,
        settings: SealSettings,
    ) -> Result<Self, SealError> {
        let r = Registry {
            store,
            journal,
            pool,
            settings,
            slots: Mutex::new(HashMap::new()),
            admin: Mutex::new(()),
            directory: RwLock::new(HashMap::new()),
            pending_pins: Mutex::new(HashMap::new()),
            audit_key: Mutex::new(None),
        };
        r.reload_directory()?;
        Ok(r)
    }

    /// Tells the registry which token key signs the journal's checkpoints now (for rotation and
    /// backups).
    pub fn set_audit_key(&self, id: KeyId) {
        *self.audit_key.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
    }

    /// The token key that signs checkpoints now.
    pub fn audit_key(&self) -> Option<KeyId> {
        self.audit_key.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The settings.
    pub fn settings(&self) -> &SealSettings {
        &self.settings
    }

    /// The seal's coordination slot. Only seals that exist get a lasting one, so requests naming
    /// made-up ids cannot grow the map.
    fn slot(&self, id: &str) -> Arc<SealSlot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slots.get(id) {
            return s.clone();
        }
        if !self.store.get::<Seal>("seals", id).is_ok_and(|s| s.is_some()) {
            return Arc::default();
        }
        slots.entry(id.to_string()).or_default().clone()
    }

    fn admin_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Journals an event (durable, and applied to the store) and returns its seq.
    fn commit(&self, ev: AuditEvent) -> Result<u64, SealError> {
        Ok(self.journal.append(ev)?.seq)
    }

    /// Journals a refusal and returns the error (a refusal that cannot be journalled is still refused).
    fn refuse(&self, p: &Principal, action: &str, object: &str, err: SealError) -> SealError {
        self.refuse_with(p, action, object, err, &[])
    }

    /// Journals a refusal with `details` beside its message, and returns the error. A refusal the
    /// journal cannot take is still refused, and logged.
    fn refuse_with(
        &self,
        p: &Principal,
        action: &str,
        object: &str,
        err: SealError,
        details: &[(&str, serde_json::Value)],
    ) -> SealError {
        let mut ev = AuditEvent::new(actor(p), action, object, &format!("refused:{}", err.code()))
            .detail("message", err.to_string());
        for (k, v) in details {
            ev = ev.detail(k, v.clone());
        }
        if let Err(e) = self.journal.append(ev) {
            tracing::warn!(error = %e, action, object, "a refusal could not be journalled");
        }
        err
    }

    /// `Ok` when `p` has `role`; otherwise a journalled refusal saying `why`.
    fn require_role(
        &self,
        p: &Principal,
        role: Role,
        action: &str,
        object: &str,
        why: impl Into<String>,
    ) -> Result<(), SealError> {
        if p.role == role {
            return Ok(());
        }
        Err(self.refuse(p, action, object, SealError::Forbidden(why.into())))
    }

    /// A seal by id.
    pub fn seal(&self, id: &str) -> Result<Seal, SealError> {
        self.store
            .get::<Seal>("seals", id)?
            .ok_or_else(|| SealError::NotFound("unknown_seal", format!("no seal '{id}'")))
    }

    fn all_seals(&self) -> Result<Vec<Seal>, SealError> {
        Ok(self.store.scan::<Seal>("seals")?.into_iter().map(|(_, s)| s).collect())
    }

    /// The issuing CA, if set up.
    pub fn issuing_ca(&self) -> Result<Option<ApplianceKey>, SealError> {
        Ok(self.store.get::<ApplianceKey>("keys", "issuing-ca")?)
    }

    /// Sets up the issuing CA: a key generated in the token (SM2 where the token offers it, P-256
    /// otherwise) and its self-signed certificate. Does nothing when one exists. Returns it.
    pub fn ensure_issuing_ca(&self, common_name: &str, valid_days: u32) -> Result<ApplianceKey, SealError> {
        let _g = self.admin_lock();
        if let Some(ca) = self.issuing_ca()? {
            return Ok(ca);
        }
        let alg = if self.pool.profile().sm2.is_some() { KeyAlg::Sm2 } else { KeyAlg::P256 };
        let key = self.pool.generate(alg, "seald-issuing-ca")?;
        let signer = crate::token::TokenKey::with_public(&self.pool, &key.id, key.public_key.clone());
        let now = std::time::SystemTime::now();
        let template = crate::formats::x509::CertTemplate {
            subject: vec![("CN", common_name.to_string()), ("O", "seald".to_string())],
            public_key: &key.public_key,
            not_before: now - std::time::Duration::from_secs(3600),
            not_after: now + std::time::Duration::from_secs(u64::from(valid_days) * 86400),
            ca: true,
        };
        let cert =
            crate::formats::x509::issue(&template, None, &signer).map_err(|e| SealError::Certificate(e.to_string()))?;
        let ca = ApplianceKey::first(key.id.to_hex(), alg, cert.to_pem());
        let ev = AuditEvent::new(Actor::system(), "ca.create", "key:issuing-ca", "ok")
            .detail("key_id", ca.key_id.clone())
            .detail("alg", alg.name())
            .detail("cert_sha256", cert.fingerprint())
            .change(put("keys", "issuing-ca", &ca));
        let _ = self.commit(ev)?;
        Ok(ca)
    }

    /// The seal-maker key, if set up.
    pub fn seal_maker(&self) -> Result<Option<ApplianceKey>, SealError> {
        Ok(self.store.get::<ApplianceKey>("keys", "seal-maker")?)
    }

    /// Sets up the seal maker (制章者): a key generated in the token with a certificate from the
    /// issuing CA. Does nothing when one exists. Returns it.
    pub fn ensure_seal_maker(&self, common_name: &str, valid_days: u32) -> Result<ApplianceKey, SealError> {
        let _g = self.admin_lock();
        if let Some(m) = self.seal_maker()? {
            return Ok(m);
        }
        let ca = self.issuing_ca()?.ok_or(SealError::NoIssuingCa)?;
        let alg = ca.alg;
        let key = self.pool.generate(alg, "seald-seal-maker")?;
        let ca_cert = Cert::parse(ca.cert_pem.as_bytes()).map_err(|e| SealError::Certificate(e.to_string()))?;
        let signer = crate::token::TokenKey::with_public(
            &self.pool,
            &KeyId::from_hex(&ca.key_id)?,
            ca_cert.public_key().map_err(|e| SealError::Certificate(e.to_string()))?,
        );
        let now = std::time::SystemTime::now();
        let template = crate::formats::x509::CertTemplate {
            subject: vec![("CN", common_name.to_string()), ("O", "seald".to_string())],
            public_key: &key.public_key,
            not_before: now - std::time::Duration::from_secs(3600),
            not_after: now + std::time::Duration::from_secs(u64::from(valid_days) * 86400),
            ca: false,
        };
        let cert = crate::formats::x509::issue(&template, Some(&ca_cert), &signer)
            .map_err(|e| SealError::Certificate(e.to_string()))?;
        let maker = ApplianceKey::first(key.id.to_hex(), alg, cert.to_pem());
        let ev = AuditEvent::new(Actor::system(), "maker.create", "key:seal-maker", "ok")
            .detail("key_id", maker.key_id.clone())
            .detail("alg", alg.name())
            .detail("cert_sha256", cert.fingerprint())
            .change(put("keys", "seal-maker", &maker));
        let _ = self.commit(ev)?;
        Ok(maker)
    }

    /// The GB/T 38540 v4 `SESeal` for one key version of a seal, signed by the seal maker in the token.
    fn make_ses(&self, seal: &Seal, v: &SealKeyVersion) -> Result<String, SealError> {
        use crate::formats::ses;
        use base64::Engine as _;
        let maker = self.seal_maker()?.ok_or(SealError::NoSealMaker)?;
        let maker_cert = Cert::parse(maker.cert_pem.as_bytes()).map_err(|e| SealError::Certificate(e.to_string()))?;
        let seal_cert = Cert::parse(v.cert_pem.as_bytes()).map_err(|e| SealError::Certificate(e.to_string()))?;
        let picture = base64::engine::general_purpose::STANDARD
            .decode(&seal.image.data)
            .map_err(|e| SealError::Store(e.to_string()))?;
        let ms = |m: u64| std::time::UNIX_EPOCH + std::time::Duration::from_millis(m);
        let template = ses::SealTemplate {
            vid: "seald",
            es_id: &seal.id,
            seal_type: if matches!(seal.kind, SealKind::Personal | SealKind::LegalRepresentative) { 2 } else { 1 },
            name: &seal.name,
            certs: vec![seal_cert.der()],
            create_date: ms(v.created_ms),
            valid_start: ms(v.not_before_ms),
            valid_end: ms(v.not_after_ms),
            picture_type: &seal.image.image_type.to_ascii_uppercase(),
            picture: &picture,
            width_mm: seal.image.width_mm.round() as i64,
            height_mm: seal.image.height_mm.round() as i64,
        };
        let info = ses::build_seal_info(&template).map_err(|e| SealError::BadInput(e.to_string()))?;
        let signature =
            self.pool.sign(&KeyId::from_hex(&maker.key_id)?, SignInput::Message { data: &info, user_id: None })?.der;
        let der = ses::build_seal(&info, maker_cert.der(), crate::formats::oid::signature_oid(maker.alg), &signature)
            .map_err(|e| SealError::BadInput(e.to_string()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(der))
    }

    /// Issues a signing certificate for a seal's key with the issuing CA in the token.
    fn certify(&self, seal: &Seal, unit_name: &str, key: &PublicKey) -> Result<Cert, SealError> {
        self.issue_with_ca(seal_subject(seal, unit_name), key, seal.valid_days)
    }

    /// An end-entity signing certificate (digitalSignature, nonRepudiation) from the issuing CA.
    pub(crate) fn issue_with_ca(
        &self,
        subject: Vec<(&'static str, String)>,
        key: &PublicKey,
        valid_days: u32,
    ) -> Result<Cert, SealError> {
        let ca = self.issuing_ca()?.ok_or(SealError::NoIssuingCa)?;
        let ca_cert = Cert::parse(ca.cert_pem.as_bytes()).map_err(|e| SealError::Certificate(e.to_string()))?;
        let ca_key = ca_cert.public_key().map_err(|e| SealError::Certificate(e.to_string()))?;
        let signer = crate::token::TokenKey::with_public(&self.pool, &KeyId::from_hex(&ca.key_id)?, ca_key);
        let now = std::time::SystemTime::now();
        let template = crate::formats::x509::CertTemplate {
            subject,
            public_key: key,
            not_before: now - std::time::Duration::from_secs(60),
            not_after: now + std::time::Duration::from_secs(u64::from(valid_days) * 86400),
            ca: false,
        };
        crate::formats::x509::issue(&template, Some(&ca_cert), &signer)
            .map_err(|e| SealError::Certificate(e.to_string()))
    }

    /// Filings pending past the deadline.
    pub fn overdue_filings(&self) -> Result<Vec<Filing>, SealError> {
        let (now, deadline) = (now_ms(), self.settings.filing_deadline_hours * 3_600_000);
        Ok(self
            .store
            .scan::<Filing>("filings")?
            .into_iter()
            .map(|(_, f)| f)
            .filter(|f| f.overdue(now, deadline))
            .collect())
    }

    /// Seals (not revoked or rejected) whose certificate ends within `days`.
    pub fn expiring(&self, days: u64) -> Result<Vec<Seal>, SealError> {
        let now = now_ms();
        let horizon = now.saturating_add(days.saturating_mul(86_400_000));
        Ok(self
            .all_seals()?
            .into_iter()
            .filter(|s| !matches!(s.state, SealState::Revoked | SealState::Rejected))
            .filter(|s| s.current().is_some_and(|v| v.not_after_ms <= horizon))
            .collect())
    }

    /// Filings, optionally only those in `state`; issuers and auditors only.
    pub fn filings(&self, p: &Principal, state: Option<FilingState>) -> Result<Vec<serde_json::Value>, SealError> {
        if !matches!(p.role, Role::Issuer | Role::Auditor) {
            return Err(self.refuse(
                p,
                "filing.list",
                "filings",
                SealError::Forbidden("filings are for issuers and auditors".into()),
            ));
        }
        let (now, deadline) = (now_ms(), self.settings.filing_deadline_hours * 3_600_000);
        Ok(self
            .store
            .scan::<Filing>("filings")?
            .into_iter()
            .map(|(_, f)| f)
            .filter(|f| state.is_none_or(|s| f.state == s))
            .map(|f| {
                let mut v = serde_json::to_value(&f).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    let _ = o.insert("overdue".into(), f.overdue(now, deadline).into());
                }
                v
            })
            .collect())
    }

    /// Records that the police system acknowledged a filing (issuers only).
    pub fn ack_filing(&self, p: &Principal, id: &str, reference: Option<String>) -> Result<Filing, SealError> {
        let object = format!("filing:{id}");
        self.require_role(p, Role::Issuer, "filing.ack", &object, "only an issuer acknowledges filings")?;
        let _g = self.admin_lock();
        let mut f = self
            .store
            .get::<Filing>("filings", id)?
            .ok_or_else(|| SealError::NotFound("unknown_filing", format!("no filing '{id}'")))?;
        if f.state == FilingState::Acked {
            return Err(SealError::Conflict("already_acked", format!("filing {id} was acknowledged already")));
        }
        if reference.as_ref().is_some_and(|r| r.is_empty() || r.len() > 256) {
            return Err(SealError::BadInput("reference must be 1 to 256 bytes".into()));
        }
        f.state = FilingState::Acked;
        f.acked_ms = Some(now_ms());
        f.acked_by = Some(p.account.clone());
        f.reference = reference;
        let ev = AuditEvent::new(actor(p), "filing.ack", &object, "ok").change(put("filings", id, &f));
        let _ = self.commit(ev)?;
        Ok(f)
    }

    fn new_filing(&self, seal: &Seal, action: &str) -> Filing {
        let v = seal.current();
        Filing {
            id: format!("F{}", random_hex(8)),
            seal: seal.id.clone(),
            seal_name: seal.name.clone(),
            kind: seal.kind,
            unit: seal.unit.clone(),
            action: action.into(),
            key_version: v.map(|v| v.version),
            cert_serial: v.map(|v| v.cert_serial.clone()),
            created_ms: now_ms(),
            state: FilingState::Pending,
            acked_ms: None,
            acked_by: None,
            reference: None,
        }
    }
}

/// (yyyymmdd, hour) of `ms` in the zone `offset_hours` east of UTC.
pub(crate) fn local_day_hour(ms: u64, offset_hours: i8) -> (String, u8) {
    let t = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let offset = time::UtcOffset::from_hms(offset_hours, 0, 0).unwrap_or(time::UtcOffset::UTC);
    let t = t.to_offset(offset);
    (format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day()), t.hour())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_days_and_hours_follow_the_offset() {
        // 2026-01-01T20:30:00Z is 2026-01-02 04:30 in Beijing.
        let ms = 1_767_299_400_000;
        assert_eq!(local_day_hour(ms, 0), ("20260101".to_string(), 20));
        assert_eq!(local_day_hour(ms, 8), ("20260102".to_string(), 4));
    }

    #[test]
    fn a_filing_is_overdue_only_while_pending_past_the_deadline() {
        let mut f = Filing {
            id: "F1".into(),
            seal: "1".into(),
            seal_name: "n".into(),
            kind: SealKind::Official,
            unit: "u".into(),
            action: "make".into(),
            key_version: Some(1),
            cert_serial: None,
            created_ms: 1_000,
            state: FilingState::Pending,
            acked_ms: None,
            acked_by: None,
            reference: None,
        };
        let day = 24 * 3_600_000;
        assert!(!f.overdue(1_000 + day, day) && f.overdue(1_001 + day, day));
        f.state = FilingState::Acked;
        assert!(!f.overdue(1_000 + 2 * day, day));
    }

    #[test]
    fn kinds_read_in_english_or_chinese_and_states_by_name() {
        let k: SealKind = serde_json::from_str("\"合同专用章\"").unwrap();
        assert_eq!(k, SealKind::Contract);
        let k: SealKind = serde_json::from_str("\"finance\"").unwrap();
        assert_eq!(k.label(), "财务专用章");
        for s in SealState::ALL {
            assert_eq!(s.name().parse::<SealState>().unwrap(), s);
        }
        assert!("expired".parse::<SealState>().is_err(), "expired is derived, never a stored state");
    }
}
