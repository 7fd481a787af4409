//! Using a seal: the gate, and the usage record.
//!
//! A signing recipe (in `signing`) holds the seal ([`Uses::hold_seal`]: the seal's shared lock,
//! so that no transition happens until the use is over), learns its algorithm, computes the digest
//! its product names, and asks the one gate, [`HeldSeal::authorize_use`]: grant, state, validity,
//! hours, limits, ticket. The gate journals a refusal and returns it, or returns a [`UsePermit`]
//! that names the key version to sign with. The recipe signs, then [`UsePermit::record`] makes the
//! usage record durable (with the counters and the ticket it used) and only then lets the seal go.
//! The gate never calls back into the recipe.
//!
//! Limits and tickets stay exact under concurrency: uses in flight are counted beside the stored
//! counters, and a ticket being used is held until its use is durable or has failed.

use super::{
    actor, local_day_hour, now_ms, put, Directory, Ledger, Seal, SealError, SealSlot, SealState, Ticket, UseRefusal,
};
use crate::audit::AuditEvent;
use crate::authz::{Principal, Role};
use crate::crypto::KeyAlg;
use crate::store::{tree, Change, Guard};
use crate::token::KeyId;
use parking_lot::lock_api::ArcRwLockReadGuard;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The key a use signs with.
#[derive(Debug, Clone)]
pub struct SealKeyRef {
    /// Seal id.
    pub seal: String,
    /// CKA_ID.
    pub key_id: KeyId,
    /// Key version.
    pub version: u32,
    /// Algorithm.
    pub alg: KeyAlg,
    /// The certificate bound to this version, PEM.
    pub cert_pem: String,
}

/// A durable use.
#[derive(Debug, Clone)]
pub struct UseReceipt {
    /// The key used.
    pub key: SealKeyRef,
    /// The usage record's seq.
    pub audit_seq: u64,
}

/// A unit administrator's approval of one use.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    /// The app that will use the seal.
    pub app: String,
    /// The document digest the use will name, hex (as in the usage record).
    pub digest: String,
    /// Seconds until it expires (default and maximum: `[seals] ticket_max_s`).
    #[serde(default)]
    pub valid_s: Option<u64>,
}

/// One usage record of a seal (a use or a refused use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct UsageEntry {
    /// The journal seq.
    pub seq: u64,
    /// When, ms.
    pub time_ms: u64,
    /// The application.
    pub account: String,
    /// `ok` or `refused:<code>`.
    pub outcome: String,
    /// The key version that signed.
    pub key_version: Option<u32>,
    /// The digest the use named, hex.
    pub digest: Option<String>,
    /// The approval ticket it spent.
    pub ticket: Option<String>,
    /// What was signed: `ses`, `ofd`, `cms`, or the raw input mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The document's name, when the use named one (a sealed OFD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_name: Option<String>,
    /// The seal used (in an application's usage, which spans seals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

impl UsageEntry {
    /// What a `seal.use` journal record says.
    fn of(r: crate::audit::JournalRecord) -> Self {
        let text = |k: &str| r.details.get(k).and_then(|v| v.as_str()).map(String::from);
        UsageEntry {
            key_version: r.details.get("key_version").and_then(|v| v.as_u64()).map(|v| v as u32),
            digest: text("digest"),
            ticket: text("ticket"),
            input: text("input"),
            document_name: text("document_name"),
            seal: r.object.strip_prefix("seal:").map(String::from),
            seq: r.seq,
            time_ms: r.time_ms,
            account: r.actor.account,
            outcome: r.outcome,
        }
    }
}

/// How many seals (and accounts) [`Uses::todays_uses`] reads the day's counts of, at most.
pub const TODAY_READ: usize = 10_000;

/// Today's seal uses, counted.
#[derive(Debug, Clone, Default)]
pub struct TodaysUses {
    /// Uses per seal, most used first.
    pub by_seal: Vec<(String, u64)>,
    /// Uses per account (applications, and people who seal by hand), most active first.
    pub by_app: Vec<(String, u64)>,
    /// The start of the local day, ms.
    pub since_ms: u64,
    /// Whether every seal and account used today was read (else the first [`TODAY_READ`] of each).
    pub complete: bool,
}

/// A page of a seal's usage records.
#[derive(Debug, Clone)]
pub struct UsagePage {
    /// The records.
    pub usage: Vec<UsageEntry>,
    /// The next page's cursor (none: this was the last).
    pub next_cursor: Option<String>,
}

/// A seal held steady for one use: its shared lock is taken, so no freeze, revocation or key switch
/// completes until the use is recorded or abandoned.
pub struct HeldSeal<'a> {
    uses: &'a Uses,
    slot: Arc<SealSlot>,
    _lock: ArcRwLockReadGuard<parking_lot::RawRwLock, ()>,
    seal: Seal,
}

/// Permission for one use, returned by the gate: the key version to sign with. The seal stays held
/// until [`UsePermit::record`] has made the usage record durable, or the permit is dropped.
pub struct UsePermit<'a> {
    // Dropped in this order: the reservation before the seal's lock, so that a use is counted in
    // flight until the seal is let go.
    _reservation: Reservation,
    held: HeldSeal<'a>,
    key: SealKeyRef,
    ticket: Option<String>,
    now: u64,
}

/// What `authorize_use` reserved: released when the use ends, durable or not.
struct Reservation {
    slot: Arc<SealSlot>,
    ticket: Option<String>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut f = self.slot.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        f.uses = f.uses.saturating_sub(1);
        if let Some(t) = &self.ticket {
            let _ = f.tickets.remove(t);
        }
    }
}

fn refused(r: UseRefusal, m: impl Into<String>) -> SealError {
    SealError::Refused(r, m.into())
}

fn within_hours(hour: u8, [from, to]: [u8; 2]) -> bool {
    if from < to {
        (from..to).contains(&hour)
    } else {
        hour >= from || hour < to
    }
}

impl<'a> HeldSeal<'a> {
    /// The seal's key algorithm: what the recipe's digest follows.
    pub fn alg(&self) -> KeyAlg {
        self.seal.alg
    }

    /// The one gate (`seal::authorize_use`): whether `p` may use this seal now on `digest` with
    /// `ticket`. A refusal is journalled (with the digest) and returned; nothing is signed.
    pub fn authorize_use(
        self,
        p: &Principal,
        digest: &[u8; 32],
        ticket: Option<&str>,
    ) -> Result<UsePermit<'a>, SealError> {
        let digest_hex = hex::encode(digest);
        let now = now_ms();
        let r = self.uses;
        let reservation = match r.check_use(p, &self.seal, &self.slot, &digest_hex, ticket, now) {
            Ok(res) => res,
            Err(e) => {
                let details = [("digest", digest_hex.into())];
                return Err(r.ledger.refuse_with(p, "seal.use", &format!("seal:{}", self.seal.id), e, &details));
            }
        };
        let v = self
            .seal
            .current()
            .ok_or_else(|| SealError::Store(format!("active seal {} has no key version", self.seal.id)))?;
        let key = SealKeyRef {
            seal: self.seal.id.clone(),
            key_id: KeyId::from_hex(&v.key_id)?,
            version: v.version,
            alg: v.alg,
            cert_pem: v.cert_pem.clone(),
        };
        let ticket = reservation.ticket.clone();
        Ok(UsePermit { held: self, _reservation: reservation, key, ticket, now })
    }
}

impl UsePermit<'_> {
    /// The key version this use signs with.
    pub fn key(&self) -> &SealKeyRef {
        &self.key
    }

    /// The GB/T 38540 `SESeal` of that key version, DER, if the seal maker made one. Decoded only
    /// for the products that embed it, not on every use.
    pub fn ses(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let v = self.held.seal.versions.iter().find(|v| v.version == self.key.version)?;
        base64::engine::general_purpose::STANDARD.decode(v.ses.as_ref()?).ok()
    }

    /// What must still hold when this use's record commits on a cluster: the seal is as this use
    /// read it (active, the same key version, policy and hours), `account`'s grant is still there,
    /// the limits still allow the use (its counters `total` and `day`), and the ticket is unused.
    fn cluster_guards(&self, account: &str, total: &str, day: &str) -> Vec<Guard> {
        let seal = &self.held.seal;
        let mut guards = vec![
            Guard::Same {
                tree: tree::SEALS.into(),
                key: self.key.seal.clone(),
                equals: serde_json::to_value(seal).unwrap_or_default(),
                code: |now| match now.get("state").and_then(|s| s.as_str()) {
                    Some("frozen") => UseRefusal::Frozen.code(),
                    Some("revoked") => UseRefusal::Revoked.code(),
                    Some("active") => "conflict",
                    _ => UseRefusal::NotActive.code(),
                },
            },
            Guard::Field {
                tree: tree::GRANTS.into(),
                key: format!("{}/{account}", self.key.seal),
                field: "account".into(),
                equals: serde_json::Value::from(account),
                code: |_| UseRefusal::NoGrant.code(),
            },
        ];
        for (limit, key) in [(seal.policy.total_limit, total), (seal.policy.daily_limit, day)] {
            if let Some(max) = limit {
                guards.push(Guard::AtMost {
                    key: key.to_string(),
                    max: i64::try_from(max).unwrap_or(i64::MAX),
                    code: UseRefusal::UsageLimit.code(),
                });
            }
        }
        if let Some(t) = &self.ticket {
            guards.push(Guard::Field {
                tree: tree::APPROVALS.into(),
                key: t.clone(),
                field: "used_ms".into(),
                equals: serde_json::Value::Null,
                code: |_| UseRefusal::TicketUsed.code(),
            });
        }
        guards
    }

    /// Makes `record` (the use's record, built by `signing::usage` for this permit's key) durable
    /// with the counters and the ticket this use spends. Returns once it is durable; the seal is then
    /// let go.
    pub fn record(self, record: AuditEvent) -> Result<UseReceipt, SealError> {
        let r = self.held.uses;
        let (total_key, day_key) = r.counter_keys(&self.key.seal, self.now);
        // The day's uses by seal and by account, for the dashboard (see `Uses::todays_uses`).
        let (day, _) = local_day_hour(self.now, r.ledger.settings.utc_offset_hours);
        let (by_seal, by_account) =
            (format!("today:{day}:seal:{}", self.key.seal), format!("today:{day}:account:{}", record.actor.account));
        // What this node's locks hold here, the cluster's database holds across nodes when the
        // record commits (built only there: the embedded store has no use for them).
        let guards = if r.ledger.store.pg().is_some() {
            self.cluster_guards(&record.actor.account, &total_key, &day_key)
        } else {
            Vec::new()
        };
        let mut ev = record
            .change(Change::Add { key: total_key, delta: 1 })
            .change(Change::Add { key: day_key, delta: 1 })
            .change(Change::Add { key: by_seal, delta: 1 })
            .change(Change::Add { key: by_account, delta: 1 });
        ev.guards.extend(guards);
        if let Some(t) = &self.ticket {
            let mut tk = r
                .ledger
                .store
                .get::<Ticket>(tree::APPROVALS, t)?
                .ok_or_else(|| SealError::Store(format!("ticket {t} vanished")))?;
            tk.used_ms = Some(self.now);
            ev = ev.detail("ticket", t.clone()).change(put(tree::APPROVALS, t, &tk));
        }
        let (actor, object) = (ev.actor.clone(), ev.object.clone());
        match r.ledger.commit(ev) {
            Ok(audit_seq) => Ok(UseReceipt { key: self.key, audit_seq }),
            Err(e @ SealError::Refused(..)) => {
                // Another node froze the seal, spent the limit or the ticket first: nothing was
                // recorded as a use, and the signature is not returned.
                r.ledger.journal_refusal(
                    AuditEvent::new(actor, "seal.use", &object, &format!("refused:{}", e.code()))
                        .detail("message", e.to_string()),
                );
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

/// Uses of seals: the gate every signing recipe passes, single-use approval tickets, and the usage
/// records of a seal.
pub struct Uses {
    ledger: Arc<Ledger>,
    directory: Arc<Directory>,
}

impl Uses {
    pub(super) fn new(ledger: Arc<Ledger>, directory: Arc<Directory>) -> Self {
        Uses { ledger, directory }
    }
}

impl Uses {
    pub(super) fn counter_keys(&self, seal: &str, now: u64) -> (String, String) {
        let (day, _) = local_day_hour(now, self.ledger.settings.utc_offset_hours);
        (format!("use:{seal}:total"), format!("use:{seal}:{day}"))
    }

    /// Takes the seal's shared lock and reads it: the first step of every use.
    pub fn hold_seal(&self, seal_id: &str) -> Result<HeldSeal<'_>, SealError> {
        let slot = self.ledger.slot(seal_id);
        let lock = slot.lock.read_arc();
        let seal = self.ledger.seal(seal_id)?;
        Ok(HeldSeal { uses: self, slot, _lock: lock, seal })
    }

    /// Whether `p` may use `seal` now on `digest` (hex) with `ticket`: the app holds a grant; the
    /// seal is active and within its validity and allowed hours; its limits allow one more use; and
    /// a ticket, where the policy needs one (or one is given), is this seal's, this app's, for this
    /// digest, unexpired and unused. On success, the use is reserved until the reservation drops.
    fn check_use(
        &self,
        p: &Principal,
        seal: &Seal,
        slot: &Arc<SealSlot>,
        digest: &str,
        ticket: Option<&str>,
        now: u64,
    ) -> Result<Reservation, SealError> {
        // Applications, and the people of the unit a seal was granted to (who seal by hand in the
        // console), hold grants.
        let granted = self.holds_grant(p, &seal.id)?;
        if !granted {
            return Err(refused(
                UseRefusal::NoGrant,
                format!("account '{}' holds no grant on seal {}", p.account, seal.id),
            ));
        }
        match seal.state {
            SealState::Active => {}
            SealState::Frozen => return Err(refused(UseRefusal::Frozen, format!("seal {} is frozen", seal.id))),
            SealState::Revoked => return Err(refused(UseRefusal::Revoked, format!("seal {} is revoked", seal.id))),
            other => {
                return Err(refused(UseRefusal::NotActive, format!("seal {} is {}, not active", seal.id, other.name())))
            }
        }
        if seal.expired(now) || seal.current().is_some_and(|v| now < v.not_before_ms) {
            return Err(refused(UseRefusal::Expired, format!("seal {} is outside its validity", seal.id)));
        }
        let (day, hour) = local_day_hour(now, self.ledger.settings.utc_offset_hours);
        if let Some(h) = seal.policy.hours {
            if !within_hours(hour, h) {
                return Err(refused(
                    UseRefusal::OutsideHours,
                    format!("seal {} may be used from {}:00 to {}:00 only", seal.id, h[0], h[1]),
                ));
            }
        }
        let (total_key, day_key) = self.counter_keys(&seal.id, now);
        debug_assert!(day_key.ends_with(&day));
        let mut inflight = slot.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let pending = inflight.uses;
        for (limit, key, what) in
            [(seal.policy.total_limit, &total_key, "total"), (seal.policy.daily_limit, &day_key, "daily")]
        {
            if let Some(limit) = limit {
                let used = u64::try_from(self.ledger.store.counter(key)?).unwrap_or(0);
                if used + pending >= limit {
                    return Err(refused(
                        UseRefusal::UsageLimit,
                        format!("seal {} reached its {what} limit of {limit} uses", seal.id),
                    ));
                }
            }
        }
        let ticket = match (ticket, seal.policy.require_approval) {
            (None, false) => None,
            (None, true) => {
                return Err(refused(
                    UseRefusal::TicketRequired,
                    format!("seal {} needs an approval ticket for each use", seal.id),
                ))
            }
            (Some(t), _) => {
                let stored = self.ledger.store.get::<Ticket>(tree::APPROVALS, t)?;
                let Some(tk) = stored.filter(|tk| tk.seal == seal.id && tk.app == p.account && tk.digest == digest)
                else {
                    return Err(refused(
                        UseRefusal::TicketMismatch,
                        "the ticket is not for this seal, application and digest",
                    ));
                };
                if tk.used_ms.is_some() || inflight.tickets.contains(t) {
                    return Err(refused(UseRefusal::TicketUsed, "the ticket was used already"));
                }
                if now > tk.expires_ms {
                    return Err(refused(UseRefusal::TicketExpired, "the ticket has expired"));
                }
                let _ = inflight.tickets.insert(t.to_string());
                Some(t.to_string())
            }
        };
        inflight.uses += 1;
        Ok(Reservation { slot: slot.clone(), ticket })
    }

    /// A unit administrator approves one use of a seal by one of its granted apps on one digest.
    pub fn issue_ticket(&self, p: &Principal, seal_id: &str, req: TicketRequest) -> Result<Ticket, SealError> {
        let object = format!("seal:{seal_id}");
        let seal = self.ledger.seal(seal_id)?;
        let admin = self.directory.administers(p, &seal.unit)?;
        if !admin {
            return Err(self.ledger.refuse(
                p,
                "seal.approve_use",
                &object,
                SealError::Forbidden("only the seal's unit administrator approves a use".into()),
            ));
        }
        // Four eyes: a person granted the seal does not approve their own use.
        if req.app == p.account {
            return Err(self.ledger.refuse(
                p,
                "seal.approve_use",
                &object,
                SealError::Forbidden("no one approves their own use of a seal: another administrator does".into()),
            ));
        }
        let digest = req.digest.to_ascii_lowercase();
        if digest.len() != 64 || hex::decode(&digest).is_err() {
            return Err(SealError::BadInput("digest must be 32 bytes of hex".into()));
        }
        if !self.ledger.granted(seal_id, &req.app)? {
            return Err(SealError::BadInput(format!("'{}' holds no grant on seal {seal_id}", req.app)));
        }
        let max = self.ledger.settings.ticket_max_s;
        let valid = req.valid_s.unwrap_or(max);
        if valid == 0 || valid > max {
            return Err(SealError::BadInput(format!("valid_s must be 1 to {max}")));
        }
        let now = now_ms();
        let t = Ticket {
            id: super::random_hex(16),
            seal: seal_id.into(),
            app: req.app,
            digest,
            approved_by: p.account.clone(),
            created_ms: now,
            expires_ms: now + valid * 1000,
            used_ms: None,
        };
        let ev = AuditEvent::new(actor(p), "seal.approve_use", &object, "ok")
            .detail("ticket", t.id.clone())
            .detail("app", t.app.clone())
            .detail("digest", t.digest.clone())
            .change(put(tree::APPROVALS, &t.id, &t));
        let _ = self.ledger.commit(ev)?;
        Ok(t)
    }

    /// Whether `p` holds a grant on `seal_id` (an application, or a person who seals by hand).
    pub fn holds_grant(&self, p: &Principal, seal_id: &str) -> Result<bool, SealError> {
        Ok(matches!(p.role, Role::App | Role::UnitAdmin) && self.ledger.granted(seal_id, &p.account)?)
    }

    /// How many times `seal_id` was used today (in the appliance's local day) and in all.
    pub fn use_counts(&self, seal_id: &str) -> Result<(u64, u64), SealError> {
        let (total_key, day_key) = self.counter_keys(seal_id, now_ms());
        let read = |k: &str| self.ledger.store.counter(k).map(|n| u64::try_from(n).unwrap_or(0));
        Ok((read(&day_key)?, read(&total_key)?))
    }

    /// Today's seal uses (in the appliance's local day), counted by seal and by account, from the
    /// day's counters each use adds to in its record (at most [`TODAY_READ`] seals and accounts are
    /// read; `complete` says whether that was all). For issuers and auditors.
    pub fn todays_uses(&self, p: &Principal) -> Result<TodaysUses, SealError> {
        if !matches!(p.role, Role::Issuer | Role::Auditor) {
            return Err(self.ledger.refuse(
                p,
                "seal.usage",
                "usage",
                SealError::Forbidden("the day's uses are for issuers and auditors".into()),
            ));
        }
        let now = now_ms();
        let offset_ms = i64::from(self.ledger.settings.utc_offset_hours) * 3_600_000;
        let local = now as i64 + offset_ms;
        let midnight = (local - local.rem_euclid(86_400_000) - offset_ms).max(0) as u64;
        let (day, _) = local_day_hour(now, self.ledger.settings.utc_offset_hours);
        let mut complete = true;
        let mut counted = |what: &str| -> Result<Vec<(String, u64)>, SealError> {
            let prefix = format!("today:{day}:{what}:");
            let (mut out, mut after) = (Vec::new(), None::<String>);
            loop {
                let (page, more) =
                    self.ledger.store.scan_prefix_after::<i64>(tree::COUNTERS, &prefix, after.as_deref(), 256)?;
                after = page.last().map(|(k, _)| k.clone());
                out.extend(
                    page.into_iter().map(|(k, n)| (k[prefix.len()..].to_string(), u64::try_from(n).unwrap_or(0))),
                );
                if !more {
                    break;
                }
                if out.len() >= TODAY_READ {
                    complete = false;
                    break;
                }
            }
            out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            Ok(out)
        };
        let by_seal = counted("seal")?;
        let by_app = counted("account")?;
        Ok(TodaysUses { by_seal, by_app, since_ms: midnight, complete })
    }

    /// The usage records of a seal (uses and refused uses), oldest first, every page: for tools
    /// and tests (the API pages, see [`Uses::usage_page`]).
    pub fn usage(&self, p: &Principal, seal_id: &str) -> Result<Vec<UsageEntry>, SealError> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.usage_page(p, seal_id, cursor.as_deref(), false, crate::audit::MAX_PAGE)?;
            out.extend(page.usage);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// One page of a seal's usage records (uses and refused uses), from the journal's index by
    /// seal: at most `limit` (1 to 1000), after `cursor`, oldest or newest first. For its unit
    /// administrator, issuers and auditors.
    pub fn usage_page(
        &self,
        p: &Principal,
        seal_id: &str,
        cursor: Option<&str>,
        newest_first: bool,
        limit: usize,
    ) -> Result<UsagePage, SealError> {
        let object = format!("seal:{seal_id}");
        let seal = self.ledger.seal(seal_id)?;
        let admin = self.directory.administers(p, &seal.unit)?;
        if !(admin || matches!(p.role, Role::Issuer | Role::Auditor)) {
            return Err(self.ledger.refuse(
                p,
                "seal.usage",
                &object,
                SealError::Forbidden("usage is for the seal's unit administrator, issuers and auditors".into()),
            ));
        }
        let q = crate::audit::Query { action: Some("seal.use".into()), object: Some(object), ..Default::default() };
        let page = self.ledger.journal.page(&q, cursor, newest_first, limit)?;
        let usage = page.records.into_iter().map(UsageEntry::of).collect();
        Ok(UsagePage { usage, next_cursor: page.next })
    }

    /// One page of an application's usage records (uses and refused uses, of every seal), from the
    /// journal's index by actor: at most `limit` (1 to 1000), after `cursor`, oldest or newest
    /// first. For the account itself, the administrator of its unit, issuers and auditors.
    pub fn account_usage_page(
        &self,
        p: &Principal,
        account: &str,
        cursor: Option<&str>,
        newest_first: bool,
        limit: usize,
    ) -> Result<UsagePage, SealError> {
        let object = format!("account:{account}");
        let record = self
            .directory
            .account(account)?
            .ok_or_else(|| SealError::NotFound("unknown_account", format!("no account '{account}'")))?;
        let admin = match &record.unit {
            Some(unit) => self.directory.administers(p, unit)?,
            None => false,
        };
        if !(p.account == account || admin || matches!(p.role, Role::Issuer | Role::Auditor)) {
            return Err(self.ledger.refuse(
                p,
                "account.usage",
                &object,
                SealError::Forbidden(
                    "an application's usage is for itself, its unit's administrator, issuers and auditors".into(),
                ),
            ));
        }
        let q =
            crate::audit::Query { action: Some("seal.use".into()), actor: Some(account.into()), ..Default::default() };
        let page = self.ledger.journal.page(&q, cursor, newest_first, limit)?;
        Ok(UsagePage { usage: page.records.into_iter().map(UsageEntry::of).collect(), next_cursor: page.next })
    }
}

#[cfg(test)]
mod tests {
    use super::within_hours;

    #[test]
    fn hours_wrap_midnight() {
        assert!(within_hours(9, [9, 17]) && !within_hours(17, [9, 17]) && !within_hours(8, [9, 17]));
        assert!(within_hours(23, [22, 6]) && within_hours(3, [22, 6]) && !within_hours(12, [22, 6]));
        assert!(within_hours(0, [0, 24]) && within_hours(23, [0, 24]));
    }
}
