//! Units and accounts: who exists, in which unit, with which role and certificates.
//!
//! Rules: only `sysadmin` manages accounts and units (the first three administrators come from
//! `seald init`, through [`Directory::bootstrap`]); an account has exactly one role, so the three
//! administrator roles (三员分立) never share an account, and a certificate belongs to one account
//! only; `unit_admin` and `app` accounts belong to a unit, the others to none; no account changes
//! its own role. Units form a tree; a unit administrator's reach is its unit and the units below it.

use super::{actor, now_ms, put, Ledger, SealError};
use crate::audit::{Actor, AuditEvent};
use crate::authz::{Accounts, Principal, Role};
use crate::store::tree;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A unit (government, bureau, department ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Units and accounts, and who a client certificate is (三员 and the units' staff). Keeps an
/// in-memory index of enabled accounts by certificate fingerprint, rebuilt from the store after
/// every change, so that disabling an account takes effect at the next request.
pub struct Directory {
    ledger: Arc<Ledger>,
    /// The accounts of the configuration (`[[accounts]]`, for systems that sign with plain keys):
    /// read-only, and looked up first.
    config: Accounts,
    by_fingerprint: RwLock<HashMap<String, AccountRecord>>,
}

impl Directory {
    pub(super) fn open(ledger: Arc<Ledger>, config: Accounts) -> Result<Self, SealError> {
        let d = Directory { ledger, config, by_fingerprint: RwLock::new(HashMap::new()) };
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
        Ok(())
    }

    /// The principal for a client certificate, if it belongs to an enabled registry account.
    pub fn identify(&self, fingerprint: &str, subject: &str) -> Option<Principal> {
        if let Some(p) = self.config.identify(fingerprint, subject) {
            return Some(p);
        }
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
        let _g = self.ledger.admin_lock();
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
        if !valid_code(&spec.id) || spec.name.trim().is_empty() || spec.name.len() > 256 {
            return Err(SealError::BadInput(
                "unit id must be a code (1-64 of A-Z a-z 0-9 - _ .) and name 1-256 bytes".into(),
            ));
        }
        let _g = self.ledger.admin_lock();
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
        if p.role == Role::App {
            return Err(self.ledger.refuse(
                p,
                "unit.list",
                "units",
                SealError::Forbidden("applications do not list units".into()),
            ));
        }
        Ok(self.ledger.store.scan::<Unit>(tree::UNITS)?.into_iter().map(|(_, u)| u).collect())
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
    /// registry account is refused.
    pub fn create_account(&self, p: &Principal, spec: AccountSpec) -> Result<AccountRecord, SealError> {
        let taken = |fp: &str| self.config.identify(fp, "").is_some();
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
        for pem in &spec.certificates {
            let c =
                crate::formats::x509::Cert::parse(pem.as_bytes()).map_err(|e| SealError::Certificate(e.to_string()))?;
            fps.push(c.fingerprint());
        }
        fps.sort();
        fps.dedup();
        if fps.is_empty() {
            return Err(SealError::BadInput("an account needs at least one certificate or fingerprint".into()));
        }
        let _g = self.ledger.admin_lock();
        if self.account(&spec.name)?.is_some() {
            return Err(SealError::Conflict("account_exists", format!("account '{}' exists", spec.name)));
        }
        for f in &fps {
            if let Some(owner) = self.fingerprint_owner(f) {
                return Err(SealError::Conflict(
                    "fingerprint_in_use",
                    format!("certificate {f} belongs to account '{owner}'"),
                ));
            }
            if taken(f) {
                return Err(SealError::Conflict(
                    "fingerprint_in_use",
                    format!("certificate {f} belongs to a configured account"),
                ));
            }
        }
        let a = AccountRecord {
            name: spec.name.clone(),
            role: spec.role,
            unit: spec.unit,
            fingerprints: fps,
            keys: spec.keys,
            disabled: false,
            created_by: p.account.clone(),
            created_ms: now_ms(),
        };
        let ev = AuditEvent::new(actor(p), "account.create", &object, "ok")
            .detail("role", serde_json::to_value(a.role).unwrap_or_default())
            .change(put(tree::ACCOUNTS, &a.name, &a));
        let _ = self.ledger.commit(ev)?;
        self.reload_directory()?;
        Ok(a)
    }

    /// Changes an account (sysadmin; never one's own role).
    pub fn update_account(&self, p: &Principal, name: &str, up: AccountUpdate) -> Result<AccountRecord, SealError> {
        let object = format!("account:{name}");
        self.require_sysadmin(p, "account.update", &object)?;
        if name == p.account && (up.role.is_some() || up.disabled == Some(true)) {
            return Err(self.ledger.refuse(
                p,
                "account.update",
                &object,
                SealError::Forbidden("no account changes its own role or disables itself".into()),
            ));
        }
        let _g = self.ledger.admin_lock();
        let mut a = self
            .account(name)?
            .ok_or_else(|| SealError::NotFound("unknown_account", format!("no account '{name}'")))?;
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
            for f in &n {
                if let Some(owner) = self.fingerprint_owner(f).filter(|o| o != name) {
                    return Err(SealError::Conflict(
                        "fingerprint_in_use",
                        format!("certificate {f} belongs to account '{owner}'"),
                    ));
                }
            }
            a.fingerprints = n;
        }
        self.check_account_shape(&a.name, a.role, &a.unit, &a.keys)?;
        let ev = AuditEvent::new(actor(p), "account.update", &object, "ok").change(put(tree::ACCOUNTS, name, &a));
        let _ = self.ledger.commit(ev)?;
        self.reload_directory()?;
        Ok(a)
    }

    /// Every registry account (sysadmin).
    pub fn accounts(&self, p: &Principal) -> Result<Vec<AccountRecord>, SealError> {
        self.require_sysadmin(p, "account.list", "accounts")?;
        Ok(self.ledger.store.scan::<AccountRecord>(tree::ACCOUNTS)?.into_iter().map(|(_, a)| a).collect())
    }

    /// Whether `p` administers `unit` (its unit or one below).
    pub(super) fn administers(&self, p: &Principal, unit: &str) -> Result<bool, SealError> {
        Ok(p.role == Role::UnitAdmin
            && p.unit.as_deref().is_some_and(|scope| self.unit_within(unit, scope).unwrap_or(false)))
    }
}
