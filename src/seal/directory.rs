//! Units and accounts: who exists, in which unit, with which role and certificates.
//!
//! Rules: only `sysadmin` manages accounts and units (the first three administrators come from
//! `seald init`, through [`Directory::bootstrap`]); an account has exactly one role, so the three
//! administrator roles (三员分立) never share an account, and a certificate belongs to one account
//! only; `unit_admin` and `app` accounts belong to a unit, the others to none; no account changes
//! itself. 三员分立 is enforced, not only journalled: a change to an administrator's account (its
//! certificates, role or state, or its creation) waits for an administrator of another role, who is
//! not the account changed; the last enabled account of each administrator role can be neither
//! disabled nor given another role; no certificate subject belongs to administrators of two roles. Units form a tree; a unit administrator's reach is its unit and the units below it.

use super::{actor, now_ms, put, DualRequest, Ledger, SealError};
use crate::audit::{Actor, AuditEvent};
use crate::authz::{Accounts, Principal, Role};
use crate::store::tree;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A unit (government, bureau, department ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Unit {
    /// Stable code.
    pub id: String,
    /// Name.
    pub name: String,
    /// The unit above, if any.
    #[serde(default)]
    pub parent: Option<String>,
    /// When it was created.
    pub created_ms: u64,
}

/// A request to create a unit.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UnitSpec {
    /// Stable code: 1 to 64 of `A-Z a-z 0-9 - _ .`.
    pub id: String,
    /// Name.
    pub name: String,
    /// The unit above.
    #[serde(default)]
    pub parent: Option<String>,
}

/// An account kept by the registry (tree `accounts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct AccountRecord {
    /// Name.
    pub name: String,
    /// Its one role.
    pub role: Role,
    /// Its unit (`unit_admin`, `app`).
    #[serde(default)]
    pub unit: Option<String>,
    /// SHA-256 fingerprints of its client certificates, lowercase hex.
    pub fingerprints: Vec<String>,
    /// Subjects of the certificates given whole (PEM), RFC 4514: no subject belongs to
    /// administrators of two roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// Plain keys (`[[keys]]` names or ids) an app may sign with besides its granted seals.
    #[serde(default)]
    pub keys: Vec<String>,
    /// A disabled account is refused like an unknown certificate.
    #[serde(default)]
    pub disabled: bool,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_ms: u64,
}

/// A request to create an account.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    /// Name: 1 to 64 of `A-Z a-z 0-9 - _ .`.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Unit, for `unit_admin` and `app`.
    #[serde(default)]
    pub unit: Option<String>,
    /// Certificate fingerprints (SHA-256, hex).
    #[serde(default)]
    pub fingerprints: Vec<String>,
    /// Or the certificates themselves (PEM); their fingerprints are taken.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Plain keys an app may sign with.
    #[serde(default)]
    pub keys: Vec<String>,
}

/// A change to an account; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AccountUpdate {
    /// New role (never one's own).
    #[serde(default)]
    pub role: Option<Role>,
    /// New unit.
    #[serde(default)]
    pub unit: Option<String>,
    /// Replacement fingerprints.
    #[serde(default)]
    pub fingerprints: Option<Vec<String>>,
    /// Replacement plain keys.
    #[serde(default)]
    pub keys: Option<Vec<String>>,
    /// Disable or enable.
    #[serde(default)]
    pub disabled: Option<bool>,
}

pub(super) fn valid_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn normalise_fingerprint(f: &str) -> Result<String, SealError> {
    let f = f.trim().replace(':', "").to_ascii_lowercase();
    if f.len() != 64 || hex::decode(&f).is_err() {
        return Err(SealError::BadInput(format!("fingerprint '{f}' is not 64 hex digits (SHA-256)")));
    }
    Ok(f)
}

fn needs_unit(role: Role) -> bool {
    matches!(role, Role::UnitAdmin | Role::App)
}

/// What an account change did: done at once, or waiting for a second administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    /// Done.
    Done(AccountRecord),
    /// An administrator's account: waiting for an administrator of another role.
    AwaitingApproval(DualRequest),
}

impl AccountChange {
    /// The account, when the change is done (tests and tools that expect no approval).
    pub fn done(self) -> Result<AccountRecord, SealError> {
        match self {
            AccountChange::Done(a) => Ok(a),
            AccountChange::AwaitingApproval(r) => {
                Err(SealError::Conflict("awaiting_approval", format!("request {} awaits a second administrator", r.id)))
            }
        }
    }
}

/// SHA-256 of an account's stored form (or of nothing, for an account not yet created), hex.
fn account_digest(a: Option<&AccountRecord>) -> String {
    let bytes = a.map(|a| serde_json::to_vec(a).unwrap_or_default()).unwrap_or_default();
    hex::encode(crate::crypto::sha256(&bytes))
}

fn role_name(r: Role) -> String {
    serde_json::to_value(r).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// Units and accounts, and who a client certificate is (三员 and the units' staff). Keeps an
/// in-memory index of enabled accounts by certificate fingerprint, rebuilt from the store after
/// every change, so that disabling an account takes effect at the next request.
pub struct Directory {
    ledger: Arc<Ledger>,
    /// The accounts of the configuration (`[[accounts]]`, for systems that sign with plain keys):
    /// read-only, and looked up first.
    config: Accounts,
    by_fingerprint: RwLock<HashMap<String, AccountRecord>>,
    /// When the index was last read from the store: on a cluster, other nodes change accounts too,
    /// so it is read again when older than [`CLUSTER_DIRECTORY_AGE`].
    loaded: std::sync::Mutex<std::time::Instant>,
}

/// On a cluster, how old the in-memory account index may be before a request reads it again: an
/// account disabled on one node is refused on every node within this.
pub const CLUSTER_DIRECTORY_AGE: std::time::Duration = std::time::Duration::from_secs(1);

impl Directory {
    pub(super) fn open(ledger: Arc<Ledger>, config: Accounts) -> Result<Self, SealError> {
        let d = Directory {
            ledger,
            config,
            by_fingerprint: RwLock::new(HashMap::new()),
            loaded: std::sync::Mutex::new(std::time::Instant::now()),
        };
        d.reload_directory()?;
        Ok(d)
    }
}

impl Directory {
    /// Rebuilds the fingerprint index from the store.
    pub(super) fn reload_directory(&self) -> Result<(), SealError> {
        let mut map = std::collections::HashMap::new();
        for (_, a) in self.ledger.store.scan::<AccountRecord>(tree::ACCOUNTS)? {
            for f in &a.fingerprints {
                let _ = map.insert(f.clone(), a.clone());
            }
        }
        *self.by_fingerprint.write().unwrap_or_else(|p| p.into_inner()) = map;
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
        Ok(())
    }

    /// On a cluster, reads the account index again when it is older than [`CLUSTER_DIRECTORY_AGE`]
    /// (one reader at a time; the others use the index they have). If the database does not
    /// answer, the index stays as it is and the request goes on to fail at its first store read.
    fn follow_cluster(&self) {
        if self.ledger.store.pg().is_none() {
            return;
        }
        let Ok(mut loaded) = self.loaded.try_lock() else { return };
        if loaded.elapsed() < CLUSTER_DIRECTORY_AGE {
            return;
        }
        *loaded = std::time::Instant::now();
        drop(loaded);
        if let Err(e) = self.reload_directory() {
            tracing::warn!(error = %e, "the account index could not be read again from the cluster's database");
        }
    }

    /// The principal for a client certificate, if it belongs to an enabled registry account.
    pub fn identify(&self, fingerprint: &str, subject: &str) -> Option<Principal> {
        if let Some(p) = self.config.identify(fingerprint, subject) {
            return Some(p);
        }
        self.follow_cluster();
        let dir = self.by_fingerprint.read().unwrap_or_else(|p| p.into_inner());
        dir.get(&fingerprint.to_ascii_lowercase()).filter(|a| !a.disabled).map(|a| Principal {
            account: a.name.clone(),
            role: a.role,
            fingerprint: fingerprint.to_ascii_lowercase(),
            subject: subject.to_string(),
            unit: a.unit.clone(),
        })
    }

    /// Whether the registry account `p` stands for may sign with the plain key `name` (or its id),
    /// read from the in-memory directory `identify` uses, so a signature costs no store read.
    pub fn may_sign_with_key(&self, p: &Principal, name: &str, id: &str) -> bool {
        if p.role != Role::App {
            return false;
        }
        if self.config.may_sign_with(p, name, id) {
            return true;
        }
        let dir = self.by_fingerprint.read().unwrap_or_else(|p| p.into_inner());
        dir.get(&p.fingerprint.to_ascii_lowercase())
            .filter(|a| a.name == p.account && !a.disabled)
            .is_some_and(|a| a.keys.iter().any(|k| k == name || k.eq_ignore_ascii_case(id)))
    }

    /// The registry account of a name.
    pub fn account(&self, name: &str) -> Result<Option<AccountRecord>, SealError> {
        Ok(self.ledger.store.get::<AccountRecord>(tree::ACCOUNTS, name)?)
    }

    /// A unit by id.
    pub fn unit(&self, id: &str) -> Result<Unit, SealError> {
        self.ledger
            .store
            .get::<Unit>(tree::UNITS, id)?
            .ok_or_else(|| SealError::NotFound("unknown_unit", format!("no unit '{id}'")))
    }

    /// Whether `unit` is `scope` or below it.
    pub(super) fn unit_within(&self, unit: &str, scope: &str) -> Result<bool, SealError> {
        let mut cur = Some(unit.to_string());
        let mut steps = 0;
        while let Some(u) = cur {
            if u == scope {
                return Ok(true);
            }
            steps += 1;
            if steps > 64 {
                break;
            }
            cur = self.ledger.store.get::<Unit>(tree::UNITS, &u)?.and_then(|x| x.parent);
        }
        Ok(false)
    }

    /// Creates the first administrator accounts (`seald init`): only while no account exists.
    pub fn bootstrap(&self, admins: &[(Role, String, String)]) -> Result<Vec<AccountRecord>, SealError> {
        let _g = self.ledger.admin_lock()?;
        if !self.ledger.store.scan::<AccountRecord>(tree::ACCOUNTS)?.is_empty() {
            return Err(SealError::Conflict("already_initialised", "the registry has accounts already".into()));
        }
        let mut ev = AuditEvent::new(Actor::system(), "account.bootstrap", "accounts", "ok");
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (role, name, fp) in admins {
            if !matches!(role, Role::Sysadmin | Role::Secofficer | Role::Auditor) {
                return Err(SealError::BadInput("seald init creates the three administrators only".into()));
            }
            let fp = normalise_fingerprint(fp)?;
            if !valid_code(name) || !seen.insert(fp.clone()) || !seen.insert(name.clone()) {
                return Err(SealError::BadInput(format!(
                    "administrator '{name}': names must be codes, and each needs its own certificate"
                )));
            }
            let a = AccountRecord {
                name: name.clone(),
                role: *role,
                unit: None,
                fingerprints: vec![fp],
                subjects: Vec::new(),
                keys: Vec::new(),
                disabled: false,
                created_by: "system".into(),
                created_ms: now_ms(),
            };
            ev = ev.change(put(tree::ACCOUNTS, name, &a));
            out.push(a);
        }
        let _ = self.ledger.commit(ev)?;
        self.reload_directory()?;
        Ok(out)
    }

    pub(super) fn require_sysadmin(&self, p: &Principal, action: &str, object: &str) -> Result<(), SealError> {
        self.ledger.require_role(
            p,
            Role::Sysadmin,
            action,
            object,
            "only the system administrator manages accounts and units",
        )
    }

    /// Creates a unit (sysadmin).
    pub fn create_unit(&self, p: &Principal, spec: UnitSpec) -> Result<Unit, SealError> {
        let object = format!("unit:{}", spec.id);
        self.require_sysadmin(p, "unit.create", &object)?;
        if !valid_code(&spec.id)
            || spec.name.trim().is_empty()
            || spec.name.len() > 256
            || spec.name.chars().any(char::is_control)
        {
            return Err(SealError::BadInput(
                "unit id must be a code (1-64 of A-Z a-z 0-9 - _ .) and name 1-256 bytes of text".into(),
            ));
        }
        let _g = self.ledger.admin_lock()?;
        if self.ledger.store.get::<Unit>(tree::UNITS, &spec.id)?.is_some() {
            return Err(SealError::Conflict("unit_exists", format!("unit '{}' exists", spec.id)));
        }
        if let Some(parent) = &spec.parent {
            let _ = self.unit(parent)?;
        }
        let u = Unit { id: spec.id.clone(), name: spec.name, parent: spec.parent, created_ms: now_ms() };
        let ev = AuditEvent::new(actor(p), "unit.create", &object, "ok").change(put(tree::UNITS, &u.id, &u));
        let _ = self.ledger.commit(ev)?;
        Ok(u)
    }

    /// Every unit (any role but `app`).
    pub fn units(&self, p: &Principal) -> Result<Vec<Unit>, SealError> {
        super::Ledger::every_page(|cursor| self.units_page(p, cursor, crate::audit::MAX_PAGE))
    }

    /// A page of the units, by id (any role but `app`): at most `limit`, after `cursor`.
    pub fn units_page(
        &self,
        p: &Principal,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Unit>, Option<String>), SealError> {
        if p.role == Role::App {
            return Err(self.ledger.refuse(
                p,
                "unit.list",
                "units",
                SealError::Forbidden("applications do not list units".into()),
            ));
        }
        self.ledger.page_of(tree::UNITS, cursor, limit, |_: &Unit| Ok(true))
    }

    pub(super) fn check_account_shape(
        &self,
        name: &str,
        role: Role,
        unit: &Option<String>,
        keys: &[String],
    ) -> Result<(), SealError> {
        match (needs_unit(role), unit) {
            (true, None) => return Err(SealError::BadInput(format!("a {role:?} account needs a unit").to_lowercase())),
            (false, Some(_)) => {
                return Err(SealError::BadInput(format!("a {role:?} account belongs to no unit").to_lowercase()))
            }
            (true, Some(u)) => {
                let _ = self.unit(u)?;
            }
            _ => {}
        }
        if !keys.is_empty() && role != Role::App {
            return Err(SealError::BadInput(format!("account '{name}': only apps sign with plain keys")));
        }
        Ok(())
    }

    pub(super) fn fingerprint_owner(&self, fp: &str) -> Option<String> {
        self.by_fingerprint.read().unwrap_or_else(|p| p.into_inner()).get(fp).map(|a| a.name.clone())
    }

    /// Creates an account (sysadmin). A fingerprint bound to a configured account or another
    /// registry account is refused. An administrator's account (三员) is not created at once: the
    /// answer is a request that an administrator of another role must approve
    /// ([`super::DualControl::approve_request`]).
    pub fn create_account(&self, p: &Principal, spec: AccountSpec) -> Result<AccountChange, SealError> {
        let object = format!("account:{}", spec.name);
        self.require_sysadmin(p, "account.create", &object)?;
        if !valid_code(&spec.name) || spec.name == "system" {
            return Err(SealError::BadInput(
                "account name must be a code (1-64 of A-Z a-z 0-9 - _ .), not 'system'".into(),
            ));
        }
        self.check_account_shape(&spec.name, spec.role, &spec.unit, &spec.keys)?;
        let mut fps = Vec::new();
        for f in &spec.fingerprints {
            fps.push(normalise_fingerprint(f)?);
        }
        let mut subjects = Vec::new();
        for pem in &spec.certificates {
            let c =
                crate::formats::x509::Cert::parse(pem.as_bytes()).map_err(|e| SealError::Certificate(e.to_string()))?;
            fps.push(c.fingerprint());
            subjects.push(c.subject_text());
        }
        fps.sort();
        fps.dedup();
        subjects.sort();
        subjects.dedup();
        if fps.is_empty() {
            return Err(SealError::BadInput("an account needs at least one certificate or fingerprint".into()));
        }
        let a = AccountRecord {
            name: spec.name.clone(),
            role: spec.role,
            unit: spec.unit,
            fingerprints: fps,
            subjects,
            keys: spec.keys,
            disabled: false,
            created_by: p.account.clone(),
            created_ms: now_ms(),
        };
        let _g = self.ledger.admin_lock()?;
        self.check_change(p, None, &a)?;
        if a.role.is_administrator() {
            return self.ask_second(p, "account.create", None, a).map(AccountChange::AwaitingApproval);
        }
        self.commit_change(p, "account.create", a, None).map(AccountChange::Done)
    }

    /// Changes an account: the system administrator any account but its own; the security officer
    /// an administrator's account (so that a lost sysadmin certificate can be replaced). A change
    /// to an administrator's account, or one that makes an account an administrator, waits for an
    /// administrator of another role to approve it.
    pub fn update_account(&self, p: &Principal, name: &str, up: AccountUpdate) -> Result<AccountChange, SealError> {
        let object = format!("account:{name}");
        let refuse = |why: &str| self.ledger.refuse(p, "account.update", &object, SealError::Forbidden(why.into()));
        if name == p.account {
            return Err(refuse("no account changes itself: another administrator must"));
        }
        let _g = self.ledger.admin_lock()?;
        let before =
            self.account(name)?.ok_or_else(|| SealError::NotFound("unknown_account", format!("no account '{name}'")));
        let administrative =
            before.as_ref().is_ok_and(|b| b.role.is_administrator()) || up.role.is_some_and(|r| r.is_administrator());
        match p.role {
            Role::Sysadmin => {}
            Role::Secofficer if administrative => {}
            _ => {
                self.require_sysadmin(p, "account.update", &object)?;
            }
        }
        let before = before?;
        let mut a = before.clone();
        if let Some(r) = up.role {
            a.role = r;
        }
        if up.unit.is_some() || up.role.is_some_and(|r| !needs_unit(r)) {
            a.unit = if needs_unit(a.role) { up.unit.or(a.unit) } else { None };
        }
        if let Some(k) = up.keys {
            a.keys = k;
        }
        if let Some(d) = up.disabled {
            a.disabled = d;
        }
        if let Some(fps) = up.fingerprints {
            let mut n = fps.iter().map(|f| normalise_fingerprint(f)).collect::<Result<Vec<_>, _>>()?;
            n.sort();
            n.dedup();
            if n.is_empty() {
                return Err(SealError::BadInput("an account needs at least one fingerprint".into()));
            }
            // Subjects are known only for certificates given whole; replaced fingerprints drop them.
            a.subjects.clear();
            a.fingerprints = n;
        }
        self.check_account_shape(&a.name, a.role, &a.unit, &a.keys)?;
        self.check_change(p, Some(&before), &a)?;
        if before.role.is_administrator() || a.role.is_administrator() {
            return self.ask_second(p, "account.update", Some(&before), a).map(AccountChange::AwaitingApproval);
        }
        self.commit_change(p, "account.update", a, None).map(AccountChange::Done)
    }

    /// Opens the request for a second administrator: the account as it would be after the change,
    /// and a digest of the account as it was asked about (approval refuses if it changed since).
    fn ask_second(
        &self,
        p: &Principal,
        action: &str,
        before: Option<&AccountRecord>,
        a: AccountRecord,
    ) -> Result<DualRequest, SealError> {
        let mut r = DualRequest::for_account(p, a, self.ledger.settings.dual_control_deadline_s);
        r.account_before = Some(account_digest(before));
        let ev = AuditEvent::new(actor(p), "account.request", &format!("account:{}", r.key), "ok")
            .detail("request", r.id.clone())
            .detail("change", action.to_string())
            .change(put(tree::REQUESTS, &r.id, &r));
        let _ = self.ledger.commit(ev)?;
        Ok(r)
    }

    /// Carries out an approved account request (the caller checked who approves and holds the
    /// admin lock): the checks again, against the accounts as they are now, then the change.
    pub(super) fn apply_approved(
        &self,
        approver: &Principal,
        r: &DualRequest,
        request_record: super::Change,
    ) -> Result<AccountRecord, SealError> {
        let a = r.account.clone().ok_or_else(|| SealError::BadInput("the request names no account".into()))?;
        let before = self.account(&a.name)?;
        let object = format!("request:{}", r.id);
        // The account must be as it was when the request was made: an old request must not undo a
        // later change (bring back a replaced certificate, enable a disabled account).
        if r.account_before.as_deref() != Some(account_digest(before.as_ref()).as_str()) {
            return Err(self.ledger.refuse(
                approver,
                "account.approve",
                &object,
                SealError::Conflict(
                    "request_stale",
                    format!("account '{}' changed after request {} was made; ask again", a.name, r.id),
                ),
            ));
        }
        // And who asked must still be an enabled administrator of the role they asked as.
        let asker = self.account(&r.requested_by)?;
        if !asker.is_some_and(|x| !x.disabled && Some(x.role) == r.requested_role) {
            return Err(self.ledger.refuse(
                approver,
                "account.approve",
                &object,
                SealError::Conflict(
                    "request_stale",
                    format!("'{}' who asked is no longer an enabled administrator of that role", r.requested_by),
                ),
            ));
        }
        self.check_change(approver, before.as_ref(), &a)?;
        let action = if before.is_some() { "account.update" } else { "account.create" };
        self.commit_change(approver, action, a, Some((r, request_record)))
    }

    /// What every account change must keep true, checked against the accounts as they are now
    /// (under the admin lock): a new name is free; a certificate belongs to one account only; no
    /// certificate subject belongs to administrators of two roles; the last enabled account of each
    /// administrator role stays an enabled account of that role.
    fn check_change(&self, p: &Principal, before: Option<&AccountRecord>, a: &AccountRecord) -> Result<(), SealError> {
        let object = format!("account:{}", a.name);
        if before.is_none() && self.account(&a.name)?.is_some() {
            return Err(SealError::Conflict("account_exists", format!("account '{}' exists", a.name)));
        }
        for f in &a.fingerprints {
            if let Some(owner) = self.fingerprint_owner(f).filter(|o| *o != a.name) {
                return Err(SealError::Conflict(
                    "fingerprint_in_use",
                    format!("certificate {f} belongs to account '{owner}'"),
                ));
            }
            if self.config.identify(f, "").is_some() {
                return Err(SealError::Conflict(
                    "fingerprint_in_use",
                    format!("certificate {f} belongs to a configured account"),
                ));
            }
        }
        let all = self.ledger.store.scan::<AccountRecord>(tree::ACCOUNTS)?;
        if a.role.is_administrator() {
            for (_, other) in &all {
                let shared = other.subjects.iter().find(|s| a.subjects.contains(s));
                if other.name != a.name && other.role.is_administrator() && other.role != a.role {
                    if let Some(subject) = shared {
                        return Err(self.ledger.refuse(
                            p,
                            "account.check",
                            &object,
                            SealError::Forbidden(format!(
                                "the subject {subject} belongs to '{}', an administrator of another role (三员分立)",
                                other.name
                            )),
                        ));
                    }
                }
            }
        }
        if let Some(b) = before.filter(|b| b.role.is_administrator() && !b.disabled) {
            if a.disabled || a.role != b.role {
                // Registry accounts only: the configuration's are outside dual control.
                let others = all.iter().filter(|(_, o)| o.name != b.name && o.role == b.role && !o.disabled).count();
                if others == 0 {
                    return Err(self.ledger.refuse(
                        p,
                        "account.check",
                        &object,
                        SealError::Conflict(
                            "last_administrator",
                            format!("'{}' is the last enabled {} account", b.name, role_name(b.role)),
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn commit_change(
        &self,
        p: &Principal,
        action: &str,
        a: AccountRecord,
        approved: Option<(&DualRequest, super::Change)>,
    ) -> Result<AccountRecord, SealError> {
        let mut ev = AuditEvent::new(actor(p), action, &format!("account:{}", a.name), "ok")
            .detail("role", serde_json::to_value(a.role).unwrap_or_default())
            .change(put(tree::ACCOUNTS, &a.name, &a));
        if let Some((r, record)) = approved {
            ev = ev.detail("request", r.id.clone()).detail("requested_by", r.requested_by.clone()).change(record);
        }
        let _ = self.ledger.commit(ev)?;
        self.reload_directory()?;
        Ok(a)
    }

    /// Every registry account (sysadmin).
    pub fn accounts(&self, p: &Principal) -> Result<Vec<AccountRecord>, SealError> {
        Ledger::every_page(|c| self.accounts_page(p, c, crate::audit::MAX_PAGE))
    }

    /// A page of the accounts (system administrator), by name.
    pub fn accounts_page(
        &self,
        p: &Principal,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AccountRecord>, Option<String>), SealError> {
        self.require_sysadmin(p, "account.list", "accounts")?;
        self.ledger.page_of(tree::ACCOUNTS, cursor, limit, |_: &AccountRecord| Ok(true))
    }

    /// Whether `p` administers `unit` (its unit or one below).
    pub(super) fn administers(&self, p: &Principal, unit: &str) -> Result<bool, SealError> {
        Ok(p.role == Role::UnitAdmin
            && p.unit.as_deref().is_some_and(|scope| self.unit_within(unit, scope).unwrap_or(false)))
    }
}
