//! Who is calling: principals from client certificates, their roles, and what they may use.
//!
//! Accounts come from two places: the configuration (`[[accounts]]`, fixed, for business systems
//! that sign with plain `[[keys]]`), and the seal registry (`seal::Registry`, managed by the system
//! administrator through the API and kept in the store). This module holds what both share (roles,
//! principals) and the configured accounts; who may do what to a seal is decided in `seal`.

use serde::{Deserialize, Serialize};

/// The roles of 三员分立 and of seal management.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// System administrator: accounts, configuration, backup.
    Sysadmin,
    /// Security officer: token, keys, rotation.
    Secofficer,
    /// Auditor: reads and verifies the audit log.
    Auditor,
    /// Issuer (核发人员): seal lifecycle.
    Issuer,
    /// Unit administrator (保管人).
    UnitAdmin,
    /// A business system: signs with granted keys and seals, verifies.
    App,
}

impl Role {
    /// Whether it is one of the three administrators (三员: system administrator, security officer,
    /// auditor), whose accounts change only with a second administrator's agreement.
    pub fn is_administrator(self) -> bool {
        matches!(self, Role::Sysadmin | Role::Secofficer | Role::Auditor)
    }
}

/// One account from the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Account name.
    pub name: String,
    /// Its one role.
    pub role: Role,
    /// SHA-256 fingerprints (hex) of the client certificates bound to it.
    pub fingerprints: Vec<String>,
    /// Keys (by name or id) it may sign with.
    #[serde(default)]
    pub keys: Vec<String>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Account name.
    pub account: String,
    /// Role.
    pub role: Role,
    /// Fingerprint of the certificate it used.
    pub fingerprint: String,
    /// Subject DN of that certificate.
    pub subject: String,
    /// The unit of a `unit_admin` or `app` account (registry accounts only).
    pub unit: Option<String>,
}

/// The accounts, looked up by certificate fingerprint.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    accounts: Vec<Account>,
}

/// The configuration's accounts are inconsistent.
#[derive(Debug, thiserror::Error)]
#[error("accounts: {0}")]
pub struct AccountsError(String);

impl Accounts {
    /// Checks and keeps the configured accounts: fingerprints are 64 hex digits and belong to one
    /// account only; names are unique.
    pub fn new(accounts: Vec<Account>) -> Result<Self, AccountsError> {
        let mut seen = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for a in &accounts {
            if a.role.is_administrator() {
                tracing::warn!(
                    account = %a.name,
                    "[[accounts]] gives an administrator role: such accounts are outside dual control (三员分立); create administrators with `seald init` and the registry"
                );
            }
            if !names.insert(a.name.clone()) {
                return Err(AccountsError(format!("account '{}' is defined twice", a.name)));
            }
            for f in &a.fingerprints {
                if f.len() != 64 || hex::decode(f).is_err() {
                    return Err(AccountsError(format!("account '{}': fingerprint '{f}' is not 64 hex digits", a.name)));
                }
                if !seen.insert(f.to_ascii_lowercase()) {
                    return Err(AccountsError(format!("fingerprint {f} is bound to more than one account")));
                }
            }
        }
        Ok(Accounts { accounts })
    }

    /// The principal for a client certificate, if its fingerprint belongs to an account.
    pub fn identify(&self, fingerprint: &str, subject: &str) -> Option<Principal> {
        self.accounts.iter().find(|a| a.fingerprints.iter().any(|f| f.eq_ignore_ascii_case(fingerprint))).map(|a| {
            Principal {
                account: a.name.clone(),
                role: a.role,
                fingerprint: fingerprint.to_string(),
                subject: subject.to_string(),
                unit: None,
            }
        })
    }

    /// Whether `p` may sign with the key known by `name` or `id`.
    pub fn may_sign_with(&self, p: &Principal, name: &str, id: &str) -> bool {
        p.role == Role::App
            && self
                .accounts
                .iter()
                .find(|a| a.name == p.account)
                .is_some_and(|a| a.keys.iter().any(|k| k == name || k.eq_ignore_ascii_case(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(name: &str, role: Role, fp: char, keys: &[&str]) -> Account {
        Account {
            name: name.into(),
            role,
            fingerprints: vec![fp.to_string().repeat(64)],
            keys: keys.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn identifies_by_fingerprint_and_grants_only_what_is_configured() {
        let a = Accounts::new(vec![
            acct("oa", Role::App, 'a', &["seal-key"]),
            acct("audit", Role::Auditor, 'b', &["seal-key"]),
        ])
        .unwrap();
        let oa = a.identify(&"A".repeat(64), "CN=oa").unwrap();
        assert!(a.may_sign_with(&oa, "seal-key", "00"));
        assert!(!a.may_sign_with(&oa, "other", "01"));
        let au = a.identify(&"b".repeat(64), "CN=audit").unwrap();
        assert!(!a.may_sign_with(&au, "seal-key", "00"), "an auditor never signs");
        // The role comes from the account; what a role may do is the registry's (seal::Ledger::require_role).
        assert_eq!((au.role, oa.role), (Role::Auditor, Role::App));
        assert!(a.identify(&"c".repeat(64), "CN=x").is_none());
        assert!(Accounts::new(vec![acct("x", Role::App, 'a', &[]), acct("y", Role::App, 'a', &[])]).is_err());
        assert!(Accounts::new(vec![acct("x", Role::App, 'a', &[]), acct("x", Role::App, 'b', &[])]).is_err());
    }
}
