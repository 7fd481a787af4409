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
mod filings;
mod keys;
mod ledger;
mod lifecycle;
mod pki;
mod status;
mod trail;
mod tsa;
mod usage;
mod verify;

pub use directory::{
    AccountChange, AccountRecord, AccountSpec, AccountUpdate, Directory, Unit, UnitSpec, CLUSTER_DIRECTORY_AGE,
};
pub use filings::{Filing, FilingPackage, FilingState, FilingStatus, Filings, RegistryFacts};
pub use keys::{
    active_audit_key, ActivatedVersion, DualControl, DualRequest, KeyListing, KeyVersionListing, PendingVersion,
    RequestState,
};
pub use ledger::Ledger;
pub use lifecycle::{Action, ApplyRequest, Lifecycle, TransitionRequest};
pub use pki::Pki;
pub use status::{SealStatus, SignedStatus, StatusAnswer, StatusSettings};
pub use trail::Trail;
pub use tsa::{external_stamp, Tsa, TsaSettings};
pub use usage::{HeldSeal, SealKeyRef, TicketRequest, TodaysUses, UsageEntry, UsePermit, UseReceipt, Uses, TODAY_READ};
pub use verify::{judge, Judged, JudgedOfdSignature, OfdVerdict, Verification};

use crate::audit::{Actor, AuditEvent, Journal};
use crate::authz::{Principal, Role};
use crate::crypto::{KeyAlg, PublicKey};
use crate::formats::x509::Cert;
use crate::store::{tree, Change, Store};
use crate::token::{KeyId, SignInput, TokenError, TokenPool};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A seal's states (../shared/ARCHITECTURE.md, "Seals"). Expired is derived from the validity, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
}

/// A grant: `account` (an app) may use `seal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
    /// Every refusal.
    pub const ALL: [UseRefusal; 11] = [
        UseRefusal::NoGrant,
        UseRefusal::NotActive,
        UseRefusal::Frozen,
        UseRefusal::Revoked,
        UseRefusal::Expired,
        UseRefusal::OutsideHours,
        UseRefusal::UsageLimit,
        UseRefusal::TicketRequired,
        UseRefusal::TicketUsed,
        UseRefusal::TicketExpired,
        UseRefusal::TicketMismatch,
    ];

    /// The refusal of a code.
    pub fn from_code(code: &str) -> Option<UseRefusal> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

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
    /// The request is malformed in a way with its own code (400).
    #[error("{1}")]
    Invalid(&'static str, String),
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
            SealError::Invalid(code, _) => code,
            SealError::Refused(r, _) => r.code(),
            SealError::NoIssuingCa => "no_issuing_ca",
            SealError::NoSealMaker => "no_seal_maker",
            SealError::Token(t) => t.api_code(),
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
        match e {
            crate::audit::AuditError::BadCursor => SealError::Invalid("bad_cursor", e.to_string()),
            crate::audit::AuditError::Guard { code, message } => match UseRefusal::from_code(code) {
                Some(r) => SealError::Refused(r, message),
                None => SealError::Conflict("conflict", message),
            },
            e => SealError::Audit(e.to_string()),
        }
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

/// The registry: its services over one ledger.
pub struct Registry {
    ledger: Arc<Ledger>,
    directory: Arc<Directory>,
    pki: Arc<Pki>,
    filings: Arc<Filings>,
    lifecycle: Arc<Lifecycle>,
    dual: DualControl,
    uses: Uses,
    verification: Verification,
    trail: Trail,
    tsa: Tsa,
    status: SealStatus,
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

/// The one mapping of a failure to build something signed in the token (a certificate, a CSR): the
/// token's own error when the token failed (503, never the caller's fault), else the format's.
fn signing_failed(signer: &crate::token::TokenKey, e: impl std::fmt::Display) -> SealError {
    signer.blame(e).map_or_else(SealError::Certificate, SealError::Token)
}

fn actor(p: &Principal) -> Actor {
    Actor { account: p.account.clone(), cert_fingerprint: Some(p.fingerprint.clone()) }
}

impl Registry {
    /// The registry over an open store and journal (the journal applies changes to that store), with
    /// the configuration's accounts as a read-only part of its directory.
    pub fn new(
        store: Arc<Store>,
        journal: Arc<Journal>,
        pool: TokenPool,
        settings: SealSettings,
        config_accounts: crate::authz::Accounts,
    ) -> Result<Self, SealError> {
        let ledger = Arc::new(Ledger::new(store, journal, pool, settings));
        let directory = Arc::new(Directory::open(ledger.clone(), config_accounts)?);
        let pki = Arc::new(Pki::new(ledger.clone()));
        let filings = Arc::new(Filings::new(ledger.clone()));
        let lifecycle = Arc::new(Lifecycle::new(ledger.clone(), directory.clone(), pki.clone(), filings.clone()));
        Ok(Registry {
            dual: DualControl::new(ledger.clone(), directory.clone(), pki.clone(), lifecycle.clone(), filings.clone()),
            uses: Uses::new(ledger.clone(), directory.clone()),
            verification: Verification::new(ledger.clone(), pki.clone()),
            trail: Trail::new(ledger.clone()),
            tsa: Tsa::new(ledger.clone(), pki.clone(), TsaSettings::default()),
            status: SealStatus::new(ledger.clone(), pki.clone(), StatusSettings::default()),
            ledger,
            directory,
            pki,
            filings,
            lifecycle,
        })
    }

    /// Units, accounts, and who a certificate is.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The issuing CA and the seal maker.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// Seals through their life.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Key versions, rotation and dual control.
    pub fn dual_control(&self) -> &DualControl {
        &self.dual
    }

    /// Filings with the police system, and expiring seals.
    pub fn filings(&self) -> &Filings {
        &self.filings
    }

    /// Uses of seals: the gate, tickets, usage records.
    pub fn uses(&self) -> &Uses {
        &self.uses
    }

    /// Verification with the registry's knowledge.
    pub fn verification(&self) -> &Verification {
        &self.verification
    }

    /// The audit trail for auditors and the backup for the system administrator.
    pub fn trail(&self) -> &Trail {
        &self.trail
    }

    /// The registry with the time-stamp authority's and the status service's settings.
    pub fn with_time(mut self, tsa: TsaSettings, status: StatusSettings) -> Self {
        self.tsa = Tsa::new(self.ledger.clone(), self.pki.clone(), tsa);
        self.status = SealStatus::new(self.ledger.clone(), self.pki.clone(), status);
        self
    }

    /// The time-stamp authority.
    pub fn tsa(&self) -> &Tsa {
        &self.tsa
    }

    /// The seal-status service.
    pub fn status(&self) -> &SealStatus {
        &self.status
    }

    /// The settings.
    pub fn settings(&self) -> &SealSettings {
        &self.ledger.settings
    }

    /// Tells the registry which token key signs the journal's checkpoints now (for rotation and
    /// backups).
    pub fn set_audit_key(&self, id: KeyId) {
        self.ledger.set_audit_key(id)
    }

    /// The token key that signs checkpoints now.
    pub fn audit_key(&self) -> Option<KeyId> {
        self.ledger.audit_key()
    }

    /// Journals a refusal made outside the registry's services (a plain key's use), through the
    /// ledger's one refusal path.
    pub fn journal_refusal(&self, ev: AuditEvent) {
        self.ledger.journal_refusal(ev)
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
