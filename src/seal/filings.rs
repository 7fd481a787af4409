//! Filings with the police system (备案): made with a seal's make, change, renew and revoke, due
//! within 24 h, acknowledged by an issuer; and the seals whose certificates end soon.

use super::*;
use std::sync::Arc;

/// Filing states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum FilingState {
    /// Not yet acknowledged by the police system.
    Pending,
    /// Acknowledged.
    Acked,
}

/// A filing record (备案) for the police seal-management system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
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

/// A filing and whether it is overdue now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct FilingStatus {
    /// The filing.
    #[serde(flatten)]
    pub filing: Filing,
    /// Pending past the deadline.
    pub overdue: bool,
}

/// The filings.
pub struct Filings {
    ledger: Arc<Ledger>,
    /// The last [`RegistryFacts`] and when they were worked out.
    facts: std::sync::Mutex<Option<(std::time::Instant, RegistryFacts)>>,
}

impl Filings {
    pub(super) fn new(ledger: Arc<Ledger>) -> Self {
        Filings { ledger, facts: std::sync::Mutex::new(None) }
    }
}

/// What `/readyz` and `/metrics` show of the registry: worked out by reading every filing and seal
/// a page at a time (flat memory), and kept for [`FACTS_TTL`] so that probes and scrapes do not
/// each read a registry of many seals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryFacts {
    /// Overdue filings, in words (the first [`SHOWN_OVERDUE`]).
    pub overdue: Vec<String>,
    /// How many filings are overdue.
    pub overdue_count: u64,
    /// How many seals (not revoked or rejected) have a certificate ending within the reminder period.
    pub expiring_count: u64,
    /// How many seals are in each state, in [`SealState::ALL`]'s order.
    pub seals_by_state: [u64; 7],
}

/// What is filed with the police system for one filing (备案材料).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilingPackage {
    /// `seald-filing-package-v1`.
    pub format: String,
    /// The filing.
    pub filing: Filing,
    /// The seal's picture as filed (base64, with its type, size and SM3).
    pub image: super::SealImage,
    /// The certificate of the key version filed, PEM.
    pub certificate: Option<String>,
    /// Its validity, ms.
    pub not_before_ms: Option<u64>,
    /// Its validity's end, ms.
    pub not_after_ms: Option<u64>,
}

/// How long [`RegistryFacts`] are kept.
pub const FACTS_TTL: std::time::Duration = std::time::Duration::from_secs(15);
/// How many overdue filings [`RegistryFacts`] names.
pub const SHOWN_OVERDUE: usize = 100;

/// A seal's record read without its picture, certificates and history: what the facts, the lists'
/// filters and the counts by state need.
#[derive(Deserialize)]
pub(super) struct SealPeek {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub unit: String,
    pub state: SealState,
    #[serde(default)]
    versions: Vec<VersionDates>,
}

/// As [`SealKeyVersion`] reads them (records from before key states had none: active).
#[derive(Deserialize)]
struct VersionDates {
    #[serde(default)]
    state: KeyState,
    #[serde(default)]
    not_after_ms: u64,
}

impl SealPeek {
    /// Whether the seal (not revoked or rejected) has a certificate ending by `horizon_ms`.
    pub fn expiring_by(&self, horizon_ms: u64) -> bool {
        !matches!(self.state, SealState::Revoked | SealState::Rejected)
            && self
                .versions
                .iter()
                .rev()
                .find(|v| v.state == KeyState::Active)
                .is_some_and(|v| v.not_after_ms <= horizon_ms)
    }
}

impl Filings {
    /// Every value of a tree, a page at a time: `each` sees them in key order.
    fn each<T: serde::de::DeserializeOwned>(&self, tree: &str, mut each: impl FnMut(T)) -> Result<(), SealError> {
        let mut after: Option<String> = None;
        loop {
            let (page, more) = self.ledger.store.scan_after::<T>(tree, after.as_deref(), 256)?;
            after = page.last().map(|(k, _)| k.clone());
            page.into_iter().for_each(|(_, v)| each(v));
            if !more {
                return Ok(());
            }
        }
    }

    /// Filings pending past the deadline.
    pub fn overdue_filings(&self) -> Result<Vec<Filing>, SealError> {
        let (now, deadline) = (now_ms(), self.ledger.settings.filing_deadline_hours * 3_600_000);
        let mut out = Vec::new();
        self.each(tree::FILINGS, |f: Filing| {
            if f.overdue(now, deadline) {
                out.push(f);
            }
        })?;
        Ok(out)
    }

    /// The end of the reminder period `days` from now, ms.
    pub fn horizon(days: u64) -> u64 {
        now_ms().saturating_add(days.saturating_mul(86_400_000))
    }

    /// Whether a seal (not revoked or rejected) has a certificate ending by `horizon_ms`.
    pub fn is_expiring(seal: &Seal, horizon_ms: u64) -> bool {
        !matches!(seal.state, SealState::Revoked | SealState::Rejected)
            && seal.current().is_some_and(|v| v.not_after_ms <= horizon_ms)
    }

    /// Seals (not revoked or rejected) whose certificate ends within `days`.
    pub fn expiring(&self, days: u64) -> Result<Vec<Seal>, SealError> {
        let horizon = Self::horizon(days);
        let mut out = Vec::new();
        self.each(tree::SEALS, |s: Seal| {
            if Self::is_expiring(&s, horizon) {
                out.push(s);
            }
        })?;
        Ok(out)
    }

    /// The registry's facts for `/readyz` and `/metrics` (at most [`FACTS_TTL`] old).
    pub fn facts(&self) -> Result<RegistryFacts, SealError> {
        let mut cached = self.facts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, facts)) = cached.as_ref() {
            if at.elapsed() < FACTS_TTL {
                return Ok(facts.clone());
            }
        }
        let (now, deadline) = (now_ms(), self.ledger.settings.filing_deadline_hours * 3_600_000);
        let mut facts = RegistryFacts::default();
        self.each(tree::FILINGS, |f: Filing| {
            if f.overdue(now, deadline) {
                facts.overdue_count += 1;
                if facts.overdue.len() < SHOWN_OVERDUE {
                    facts.overdue.push(format!("{} ({} of seal {})", f.id, f.action, f.seal));
                }
            }
        })?;
        let horizon = Self::horizon(self.ledger.settings.reminder_days);
        self.each(tree::SEALS, |s: SealPeek| {
            if s.expiring_by(horizon) {
                facts.expiring_count += 1;
            }
            if let Some(i) = SealState::ALL.iter().position(|st| *st == s.state) {
                facts.seals_by_state[i] += 1;
            }
        })?;
        *cached = Some((std::time::Instant::now(), facts.clone()));
        Ok(facts)
    }

    /// The latest filing of each of `seals` (from the store's filings-by-seal index: only their
    /// own filings are read), for issuers and auditors (others get none).
    pub fn latest_for(&self, p: &Principal, seals: &[&str]) -> Result<HashMap<String, Filing>, SealError> {
        if !matches!(p.role, Role::Issuer | Role::Auditor) {
            return Ok(HashMap::new());
        }
        let mut out = HashMap::new();
        for seal in seals {
            // A seal has a filing per make, change, renewal and revocation: a few.
            let latest =
                self.ledger.store.filings_of(seal, 1_000)?.into_iter().max_by_key(|(id, at)| (*at, id.clone()));
            if let Some((id, _)) = latest {
                if let Some(f) = self.ledger.store.get::<Filing>(tree::FILINGS, &id)? {
                    let _ = out.insert(seal.to_string(), f);
                }
            }
        }
        Ok(out)
    }

    /// Filings, optionally only those in `state`; issuers and auditors only.
    pub fn filings(&self, p: &Principal, state: Option<FilingState>) -> Result<Vec<FilingStatus>, SealError> {
        Ledger::every_page(|c| self.filings_page(p, state, c, crate::audit::MAX_PAGE))
    }

    /// A page of the filings (issuers and auditors), by id, optionally in one state: at most
    /// `limit`, after `cursor`.
    pub fn filings_page(
        &self,
        p: &Principal,
        state: Option<FilingState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<FilingStatus>, Option<String>), SealError> {
        if !matches!(p.role, Role::Issuer | Role::Auditor) {
            return Err(self.ledger.refuse(
                p,
                "filing.list",
                "filings",
                SealError::Forbidden("filings are for issuers and auditors".into()),
            ));
        }
        let (now, deadline) = (now_ms(), self.ledger.settings.filing_deadline_hours * 3_600_000);
        let (page, next) =
            self.ledger.page_of(tree::FILINGS, cursor, limit, |f: &Filing| Ok(state.is_none_or(|s| f.state == s)))?;
        Ok((page.into_iter().map(|f| FilingStatus { overdue: f.overdue(now, deadline), filing: f }).collect(), next))
    }

    /// A filing's package for the police system: the filing, the seal as filed (its picture and
    /// fields) and the certificate of the key version it names. Issuers and auditors.
    pub fn package(&self, p: &Principal, id: &str) -> Result<FilingPackage, SealError> {
        let object = format!("filing:{id}");
        if !matches!(p.role, Role::Issuer | Role::Auditor) {
            return Err(self.ledger.refuse(
                p,
                "filing.package",
                &object,
                SealError::Forbidden("filings are for issuers and auditors".into()),
            ));
        }
        let filing = self
            .ledger
            .store
            .get::<Filing>(tree::FILINGS, id)?
            .ok_or_else(|| SealError::NotFound("unknown_filing", format!("no filing '{id}'")))?;
        let seal = self.ledger.seal(&filing.seal)?;
        let version = seal.versions.iter().find(|v| Some(v.version) == filing.key_version);
        Ok(FilingPackage {
            format: "seald-filing-package-v1".into(),
            certificate: version.map(|v| v.cert_pem.clone()),
            not_before_ms: version.map(|v| v.not_before_ms),
            not_after_ms: version.map(|v| v.not_after_ms),
            image: seal.image,
            filing,
        })
    }

    /// Records that the police system acknowledged a filing (issuers only).
    pub fn ack_filing(&self, p: &Principal, id: &str, reference: Option<String>) -> Result<Filing, SealError> {
        let object = format!("filing:{id}");
        self.ledger.require_role(p, Role::Issuer, "filing.ack", &object, "only an issuer acknowledges filings")?;
        let _g = self.ledger.admin_lock()?;
        let mut f = self
            .ledger
            .store
            .get::<Filing>(tree::FILINGS, id)?
            .ok_or_else(|| SealError::NotFound("unknown_filing", format!("no filing '{id}'")))?;
        if f.state == FilingState::Acked {
            return Err(SealError::Conflict("already_acked", format!("filing {id} was acknowledged already")));
        }
        if reference.as_ref().is_some_and(|r| r.is_empty() || r.len() > 256 || r.chars().any(char::is_control)) {
            return Err(SealError::BadInput("reference must be 1 to 256 bytes of text".into()));
        }
        f.state = FilingState::Acked;
        f.acked_ms = Some(now_ms());
        f.acked_by = Some(p.account.clone());
        f.reference = reference;
        let ev = AuditEvent::new(actor(p), "filing.ack", &object, "ok").change(put(tree::FILINGS, id, &f));
        let _ = self.ledger.commit(ev)?;
        Ok(f)
    }

    pub(super) fn new_filing(&self, seal: &Seal, action: &str) -> Filing {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
