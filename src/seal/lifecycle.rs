//! The lifecycle: apply, approve or reject, make, publish, freeze, unfreeze, revoke, change, renew;
//! the policy and grants of a seal; and who may read which seals.
//!
//! Each transition checks the actor's role and unit, then (under the seal's exclusive lock) its
//! current state, then does its work (keys and certificates for make, change and renew) and commits
//! one journal record that carries every object it changes: the seal, a filing, grants.

use super::{
    actor, now_ms, put, Directory, Filing, Filings, Grant, HistoryEntry, Ledger, Pki, Policy, Seal, SealError,
    SealImage, SealKeyVersion, SealKind, SealState,
};
use crate::audit::AuditEvent;
use crate::authz::{Principal, Role};
use crate::crypto::KeyAlg;
use crate::store::{tree, Change};
use serde::Deserialize;
use std::sync::Arc;

/// The transitions an issuer makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Applied -> Approved.
    Approve,
    /// Applied -> Rejected.
    Reject,
    /// Approved -> Made: key generated, certificate bound, filing queued.
    Make,
    /// Made -> Active.
    Publish,
    /// Active -> Frozen.
    Freeze,
    /// Frozen -> Active.
    Unfreeze,
    /// Active | Frozen -> Revoked (terminal).
    Revoke,
    /// Active | Frozen: a new seal (Made) replaces this one, which is revoked with reason "changed".
    Change,
    /// Made | Active | Frozen: a new key version and certificate, same image; state kept.
    Renew,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 9] = [
        Action::Approve,
        Action::Reject,
        Action::Make,
        Action::Publish,
        Action::Freeze,
        Action::Unfreeze,
        Action::Revoke,
        Action::Change,
        Action::Renew,
    ];

    /// Its name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Make => "make",
            Action::Publish => "publish",
            Action::Freeze => "freeze",
            Action::Unfreeze => "unfreeze",
            Action::Revoke => "revoke",
            Action::Change => "change",
            Action::Renew => "renew",
        }
    }

    /// The states it starts from.
    pub fn from_states(self) -> &'static [SealState] {
        use SealState::*;
        match self {
            Action::Approve | Action::Reject => &[Applied],
            Action::Make => &[Approved],
            Action::Publish => &[Made],
            Action::Freeze => &[Active],
            Action::Unfreeze => &[Frozen],
            Action::Revoke | Action::Change => &[Active, Frozen],
            Action::Renew => &[Made, Active, Frozen],
        }
    }

    /// The state it leads to, from `from` (for change: the old seal's).
    pub fn to_state(self, from: SealState) -> SealState {
        match self {
            Action::Approve => SealState::Approved,
            Action::Reject => SealState::Rejected,
            Action::Make => SealState::Made,
            Action::Publish | Action::Unfreeze => SealState::Active,
            Action::Freeze => SealState::Frozen,
            Action::Revoke | Action::Change => SealState::Revoked,
            Action::Renew => from,
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Action::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| format!("unknown action '{s}'"))
    }
}

/// A unit administrator's application for a new seal.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    /// The name on file with the police.
    pub name: String,
    /// Kind.
    pub kind: SealKind,
    /// Image bytes.
    pub image: Vec<u8>,
    /// `png`, `gif`, `jpg` or `svg`.
    pub image_type: String,
    /// Width, mm.
    pub width_mm: f64,
    /// Height, mm.
    pub height_mm: f64,
    /// Certificate validity, days.
    pub valid_days: u32,
    /// Key algorithm.
    pub alg: KeyAlg,
    /// Unit (default: the applicant's).
    pub unit: Option<String>,
    /// Use policy.
    pub policy: Policy,
}

/// What a transition may carry.
#[derive(Debug, Clone, Default)]
pub struct TransitionRequest {
    /// Why (kept in the history and the journal).
    pub reason: Option<String>,
    /// Change only: a new name.
    pub name: Option<String>,
    /// Change only: a new image (bytes, type, width mm, height mm).
    pub image: Option<(Vec<u8>, String, f64, f64)>,
}

/// Checks an image's type against its bytes, its size and its dimensions.
fn seal_image(bytes: &[u8], image_type: &str, w: f64, h: f64, max: usize) -> Result<SealImage, SealError> {
    let t = image_type.to_ascii_lowercase();
    let fits = match t.as_str() {
        "png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "gif" => bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"),
        "jpg" | "jpeg" => bytes.starts_with(&[0xff, 0xd8, 0xff]),
        // A picture, not a program: an SVG with a script, an event handler or embedded HTML is
        // refused (viewers other than the console may run what it carries).
        "svg" => std::str::from_utf8(bytes).is_ok_and(|s| s.contains("<svg") && !svg_active(s)),
        _ => return Err(SealError::BadInput(format!("image_type '{image_type}' is not png, gif, jpg or svg"))),
    };
    if !fits {
        return Err(SealError::BadInput(format!("the image bytes are not a {t} image")));
    }
    if bytes.len() > max {
        return Err(SealError::BadInput(format!("the image is {} bytes; the limit is {max}", bytes.len())));
    }
    if !(1.0..=200.0).contains(&w) || !(1.0..=200.0).contains(&h) {
        return Err(SealError::BadInput("width_mm and height_mm must be 1 to 200".into()));
    }
    use base64::Engine as _;
    Ok(SealImage {
        image_type: if t == "jpeg" { "jpg".into() } else { t },
        data: base64::engine::general_purpose::STANDARD.encode(bytes),
        sm3: hex::encode(crate::crypto::sm3(bytes)),
        width_mm: w,
        height_mm: h,
    })
}

/// Whether an SVG carries something that runs: a script, an event handler (`on…=`), a
/// `javascript:` link or embedded HTML (`foreignObject`).
fn svg_active(svg: &str) -> bool {
    let s = svg.to_ascii_lowercase();
    let handler = s.match_indices(" on").chain(s.match_indices("\ton")).chain(s.match_indices("\non")).any(|(i, _)| {
        let rest = &s[i + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        name_len > 0 && rest[name_len..].trim_start().starts_with('=')
    });
    handler || s.contains("<script") || s.contains("javascript:") || s.contains("<foreignobject")
}

fn check_name(name: &str) -> Result<String, SealError> {
    let n = name.trim();
    if n.is_empty() || n.len() > 256 || n.chars().any(char::is_control) {
        return Err(SealError::BadInput("name must be 1 to 256 bytes of text".into()));
    }
    Ok(n.to_string())
}

fn check_policy(p: &Policy) -> Result<(), SealError> {
    if let Some([from, to]) = p.hours {
        if from > 24 || to > 24 || from == to {
            return Err(SealError::BadInput("hours must be [from, to] with 0 <= from, to <= 24 and from != to".into()));
        }
    }
    if p.daily_limit == Some(0) || p.total_limit == Some(0) {
        return Err(SealError::BadInput("a usage limit must be at least 1 (freeze the seal to stop its use)".into()));
    }
    Ok(())
}

/// Seals through their life: apply, approve or reject, make, publish, freeze and unfreeze, revoke,
/// change and renew; their policy, grants, certificate and `SESeal`. Each transition checks role,
/// unit and state, and commits one journal record carrying every object it changes.
pub struct Lifecycle {
    ledger: Arc<Ledger>,
    directory: Arc<Directory>,
    pki: Arc<Pki>,
    filings: Arc<Filings>,
}

impl Lifecycle {
    /// The GB/T 38540 v4 `SESeal` of one key version of a seal, signed by the seal maker; base64.
    fn make_ses(&self, seal: &Seal, v: &SealKeyVersion) -> Result<String, SealError> {
        use base64::Engine as _;
        let seal_cert = crate::formats::x509::Cert::parse(v.cert_pem.as_bytes())
            .map_err(|e| SealError::Certificate(e.to_string()))?;
        let picture = base64::engine::general_purpose::STANDARD
            .decode(&seal.image.data)
            .map_err(|e| SealError::Store(e.to_string()))?;
        let ms = |m: u64| std::time::UNIX_EPOCH + std::time::Duration::from_millis(m);
        let template = crate::formats::ses::SealTemplate {
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
        Ok(base64::engine::general_purpose::STANDARD.encode(self.pki.sign_seal(&template)?))
    }

    /// A seal by id, as stored (no role check: for the appliance's own use).
    pub fn seal(&self, id: &str) -> Result<Seal, SealError> {
        self.ledger.seal(id)
    }

    pub(super) fn new(ledger: Arc<Ledger>, directory: Arc<Directory>, pki: Arc<Pki>, filings: Arc<Filings>) -> Self {
        Lifecycle { ledger, directory, pki, filings }
    }
}

impl Lifecycle {
    pub(super) fn new_seal_id(&self) -> Result<String, SealError> {
        loop {
            let mut b = [0u8; 8];
            getrandom::getrandom(&mut b).map_err(|e| SealError::Store(format!("no randomness: {e}")))?;
            let id = format!("{:016}", u64::from_be_bytes(b) % 10_000_000_000_000_000);
            if self.ledger.store.get::<Seal>(tree::SEALS, &id)?.is_none() {
                return Ok(id);
            }
        }
    }

    /// A unit administrator applies for a seal of its unit (or a unit below it).
    pub fn apply(&self, p: &Principal, req: ApplyRequest) -> Result<Seal, SealError> {
        let unit = req.unit.clone().or_else(|| p.unit.clone()).unwrap_or_default();
        let object = format!("unit:{unit}");
        self.ledger.require_role(
            p,
            Role::UnitAdmin,
            "seal.apply",
            &object,
            "only a unit administrator applies for seals",
        )?;
        if !self.directory.administers(p, &unit)? {
            return Err(self.ledger.refuse(
                p,
                "seal.apply",
                &object,
                SealError::Forbidden(format!("unit '{unit}' is not administered by '{}'", p.account)),
            ));
        }
        let _ = self.directory.unit(&unit)?;
        let name = check_name(&req.name)?;
        let image =
            seal_image(&req.image, &req.image_type, req.width_mm, req.height_mm, self.ledger.settings.max_image_bytes)?;
        if req.valid_days == 0 || req.valid_days > 3650 {
            return Err(SealError::BadInput("valid_days must be 1 to 3650".into()));
        }
        if !matches!(req.alg, KeyAlg::Sm2 | KeyAlg::P256) {
            return Err(SealError::BadInput("alg must be sm2 or p256".into()));
        }
        check_policy(&req.policy)?;
        let _g = self.ledger.admin_lock()?;
        let id = self.new_seal_id()?;
        let seal = Seal {
            id: id.clone(),
            unit,
            name,
            kind: req.kind,
            image,
            alg: req.alg,
            valid_days: req.valid_days,
            state: SealState::Applied,
            policy: req.policy,
            versions: Vec::new(),
            replaces: None,
            replaced_by: None,
            history: vec![HistoryEntry {
                action: "apply".into(),
                state: SealState::Applied,
                by: p.account.clone(),
                time_ms: now_ms(),
                reason: None,
            }],
        };
        let ev = AuditEvent::new(actor(p), "seal.apply", &format!("seal:{id}"), "ok")
            .detail("to", "applied")
            .change(put(tree::SEALS, &id, &seal));
        let _ = self.ledger.commit(ev)?;
        Ok(seal)
    }

    /// A new key version for `seal`: the key generated in the token, certified by the issuing CA.
    pub(super) fn new_version(&self, seal: &Seal, version: u32) -> Result<SealKeyVersion, SealError> {
        let unit_name = self.directory.unit(&seal.unit).map(|u| u.name).unwrap_or_else(|_| seal.unit.clone());
        let key = self.ledger.pool.generate(seal.alg, &format!("seal-{}-v{version}", seal.id))?;
        let cert = match self.pki.issue_with_ca(super::seal_subject(seal, &unit_name), &key.public_key, seal.valid_days)
        {
            Ok(c) => c,
            Err(e) => {
                let _ = self.ledger.pool.destroy(&key.id);
                return Err(e);
            }
        };
        let (nb, na) = cert.validity();
        let ms = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
        };
        let mut v = SealKeyVersion {
            version,
            key_id: key.id.to_hex(),
            alg: seal.alg,
            cert_pem: cert.to_pem(),
            cert_serial: cert.serial_hex(),
            not_before_ms: ms(nb),
            not_after_ms: ms(na),
            created_ms: now_ms(),
            retired_ms: None,
            ses: None,
            state: super::KeyState::Active,
            activated_ms: Some(now_ms()),
        };
        match self.make_ses(seal, &v) {
            Ok(ses) => v.ses = Some(ses),
            Err(e) => {
                let _ = self.ledger.pool.destroy(&key.id);
                return Err(e);
            }
        }
        Ok(v)
    }

    /// An issuer's transition. Returns the seal after it (for change: the new seal).
    pub fn transition(
        &self,
        p: &Principal,
        id: &str,
        action: Action,
        req: TransitionRequest,
    ) -> Result<Seal, SealError> {
        let object = format!("seal:{id}");
        let what = format!("seal.{}", action.name());
        self.ledger.require_role(
            p,
            Role::Issuer,
            &what,
            &object,
            format!("only an issuer may {} a seal", action.name()),
        )?;
        if req.reason.as_ref().is_some_and(|r| r.len() > 1024 || r.chars().any(char::is_control)) {
            return Err(SealError::BadInput("reason is at most 1024 bytes of text (no control characters)".into()));
        }
        if action != Action::Change && (req.name.is_some() || req.image.is_some()) {
            return Err(SealError::BadInput("name and image can change only through `change`".into()));
        }
        let _w = self.ledger.exclusive(id)?;
        let mut seal = self.ledger.seal(id)?;
        let from = seal.state;
        if !action.from_states().contains(&from) {
            let err = SealError::InvalidTransition { seal: id.to_string(), state: from, action: action.name().into() };
            return Err(self.ledger.refuse(p, &what, &object, err));
        }
        let now = now_ms();
        let to = action.to_state(from);
        let entry = |state| HistoryEntry {
            action: action.name().into(),
            state,
            by: p.account.clone(),
            time_ms: now,
            reason: req.reason.clone(),
        };
        let mut changes: Vec<Change> = Vec::new();
        let mut result = None;
        match action {
            Action::Make => {
                let v = self.new_version(&seal, 1)?;
                seal.versions.push(v);
            }
            Action::Renew => {
                // Renewal is rotation and activation in one step: a new key and certificate, same image.
                let next = seal.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
                let v = self.new_version(&seal, next)?;
                if let Some(old) = seal.current_mut() {
                    old.state = super::KeyState::Retired;
                    old.retired_ms = Some(now);
                }
                seal.versions.push(v);
            }
            Action::Change => {
                let mut new = seal.clone();
                new.id = self.new_seal_id()?;
                if let Some(n) = &req.name {
                    new.name = check_name(n)?;
                }
                if let Some((bytes, t, w, h)) = &req.image {
                    new.image = seal_image(bytes, t, *w, *h, self.ledger.settings.max_image_bytes)?;
                }
                new.versions = Vec::new();
                new.state = SealState::Made;
                new.replaces = Some(seal.id.clone());
                new.replaced_by = None;
                new.history = vec![HistoryEntry {
                    action: "change".into(),
                    state: SealState::Made,
                    by: p.account.clone(),
                    time_ms: now,
                    reason: req.reason.clone(),
                }];
                let v = self.new_version(&new, 1)?;
                new.versions.push(v);
                for g in self.grants(&seal.id)? {
                    let copy =
                        Grant { seal: new.id.clone(), account: g.account, granted_by: p.account.clone(), time_ms: now };
                    changes.push(put(tree::GRANTS, &format!("{}/{}", copy.seal, copy.account), &copy));
                }
                let filing = self.filings.new_filing(&new, "change");
                changes.push(put(tree::FILINGS, &filing.id, &filing));
                changes.push(put(tree::SEALS, &new.id, &new));
                seal.replaced_by = Some(new.id.clone());
                result = Some(new);
            }
            _ => {}
        }
        seal.state = to;
        seal.history.push(entry(to));
        // Filings for make, renew and revoke name the seal as it now is.
        if matches!(action, Action::Make | Action::Renew | Action::Revoke) {
            let filing: Filing = self.filings.new_filing(&seal, action.name());
            changes.push(put(tree::FILINGS, &filing.id, &filing));
        }
        changes.push(put(tree::SEALS, id, &seal));
        let mut ev =
            AuditEvent::new(actor(p), &what, &object, "ok").detail("from", from.name()).detail("to", to.name());
        if let Some(r) = &req.reason {
            ev = ev.detail("reason", r.clone());
        }
        if let Some(v) = seal.current() {
            ev = ev.detail("key_version", v.version).detail("key_id", v.key_id.clone());
        }
        if let Some(new) = &result {
            ev = ev.detail("new_seal", new.id.clone());
        }
        ev.snapshot = changes;
        let _ = self.ledger.commit(ev)?;
        Ok(result.unwrap_or(seal))
    }

    /// Binds an imported certificate (from an outside CA) to the seal's current key version, in place
    /// of the one the issuing CA made: an issuer, while the seal is made, active or frozen. Its public
    /// key must be the token key's.
    pub fn import_certificate(&self, p: &Principal, id: &str, pem: &str) -> Result<Seal, SealError> {
        let object = format!("seal:{id}");
        self.ledger.require_role(p, Role::Issuer, "seal.certificate", &object, "only an issuer binds a certificate")?;
        let cert =
            crate::formats::x509::Cert::parse(pem.as_bytes()).map_err(|e| SealError::Certificate(e.to_string()))?;
        let _w = self.ledger.exclusive(id)?;
        let mut seal = self.ledger.seal(id)?;
        if !matches!(seal.state, SealState::Made | SealState::Active | SealState::Frozen) {
            let err = SealError::InvalidTransition { seal: id.into(), state: seal.state, action: "certificate".into() };
            return Err(self.ledger.refuse(p, "seal.certificate", &object, err));
        }
        let v = seal.current_mut().ok_or_else(|| SealError::Store(format!("seal {id} has no key version")))?;
        let token_key = self.ledger.pool.key(&crate::token::KeyId::from_hex(&v.key_id)?)?;
        let cert_key = cert.public_key().map_err(|e| SealError::Certificate(e.to_string()))?;
        if cert_key != token_key.public_key {
            return Err(self.ledger.refuse(
                p,
                "seal.certificate",
                &object,
                SealError::Certificate("its public key is not the seal's key in the token".into()),
            ));
        }
        let (nb, na) = cert.validity();
        let ms = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
        };
        v.cert_pem = cert.to_pem();
        v.cert_serial = cert.serial_hex();
        v.not_before_ms = ms(nb);
        v.not_after_ms = ms(na);
        let version = v.version;
        let snapshot = v.clone();
        let ses = self.make_ses(&seal, &snapshot)?;
        if let Some(v) = seal.current_mut() {
            v.ses = Some(ses);
        }
        seal.history.push(HistoryEntry {
            action: "certificate".into(),
            state: seal.state,
            by: p.account.clone(),
            time_ms: now_ms(),
            reason: None,
        });
        let ev = AuditEvent::new(actor(p), "seal.certificate", &object, "ok")
            .detail("key_version", version)
            .detail("cert_sha256", cert.fingerprint())
            .change(put(tree::SEALS, id, &seal));
        let _ = self.ledger.commit(ev)?;
        Ok(seal)
    }

    /// A PKCS#10 request for the seal's current key, signed by that key in the token, for an outside
    /// CA (its answer comes back through `import_certificate`). Issuers only.
    pub fn seal_csr(&self, p: &Principal, id: &str) -> Result<String, SealError> {
        let object = format!("seal:{id}");
        self.ledger.require_role(
            p,
            Role::Issuer,
            "seal.csr",
            &object,
            "only an issuer requests a seal's certificate",
        )?;
        let seal = self.ledger.seal(id)?;
        let v = seal.current().ok_or_else(|| SealError::InvalidTransition {
            seal: id.into(),
            state: seal.state,
            action: "csr".into(),
        })?;
        let key = self.ledger.pool.key(&crate::token::KeyId::from_hex(&v.key_id)?)?;
        let unit_name = self.directory.unit(&seal.unit).map(|u| u.name).unwrap_or_else(|_| seal.unit.clone());
        let signer = crate::token::TokenKey::with_public(&self.ledger.pool, &key.id, key.public_key.clone());
        crate::formats::x509::build_csr(&super::seal_subject(&seal, &unit_name), &key.public_key, &signer)
            .map_err(|e| super::signing_failed(&signer, e))
    }

    /// Sets a seal's use policy: its unit administrator, or an issuer. Not once revoked or rejected.
    pub fn set_policy(&self, p: &Principal, id: &str, policy: Policy) -> Result<Seal, SealError> {
        let object = format!("seal:{id}");
        let seal = self.ledger.seal(id)?;
        if !(p.role == Role::Issuer || self.directory.administers(p, &seal.unit)?) {
            return Err(self.ledger.refuse(
                p,
                "seal.policy",
                &object,
                SealError::Forbidden("the seal's unit administrator or an issuer sets its policy".into()),
            ));
        }
        check_policy(&policy)?;
        let _w = self.ledger.exclusive(id)?;
        let mut seal = self.ledger.seal(id)?;
        if matches!(seal.state, SealState::Revoked | SealState::Rejected) {
            let err = SealError::InvalidTransition { seal: id.into(), state: seal.state, action: "policy".into() };
            return Err(self.ledger.refuse(p, "seal.policy", &object, err));
        }
        seal.policy = policy;
        let ev = AuditEvent::new(actor(p), "seal.policy", &object, "ok").change(put(tree::SEALS, id, &seal));
        let _ = self.ledger.commit(ev)?;
        Ok(seal)
    }

    /// Grants use of a seal to an app of its unit (or a unit below): the seal's unit administrator.
    pub fn grant(&self, p: &Principal, id: &str, account: &str) -> Result<Grant, SealError> {
        let object = format!("seal:{id}");
        let seal = self.ledger.seal(id)?;
        if !self.directory.administers(p, &seal.unit)? {
            return Err(self.ledger.refuse(
                p,
                "seal.grant",
                &object,
                SealError::Forbidden("only the seal's unit administrator grants its use".into()),
            ));
        }
        if matches!(seal.state, SealState::Revoked | SealState::Rejected) {
            let err = SealError::InvalidTransition { seal: id.into(), state: seal.state, action: "grant".into() };
            return Err(self.ledger.refuse(p, "seal.grant", &object, err));
        }
        let a = self
            .directory
            .account(account)?
            .ok_or_else(|| SealError::NotFound("unknown_account", format!("no account '{account}'")))?;
        let in_unit = a.unit.as_deref().is_some_and(|u| self.directory.unit_within(u, &seal.unit).unwrap_or(false));
        if !matches!(a.role, Role::App | Role::UnitAdmin) || !in_unit {
            return Err(SealError::BadInput(format!(
                "'{account}' is not an application or a unit administrator of unit '{}'",
                seal.unit
            )));
        }
        // Four eyes: a person's use of a seal is granted by another administrator of the unit.
        if a.name == p.account {
            return Err(SealError::BadInput(
                "an administrator may not grant a seal to themselves: another administrator of the unit does".into(),
            ));
        }
        let _g = self.ledger.admin_lock()?;
        let g = Grant { seal: id.into(), account: account.into(), granted_by: p.account.clone(), time_ms: now_ms() };
        let ev = AuditEvent::new(actor(p), "seal.grant", &object, "ok").detail("account", account).change(put(
            tree::GRANTS,
            &format!("{id}/{account}"),
            &g,
        ));
        let _ = self.ledger.commit(ev)?;
        Ok(g)
    }

    /// Withdraws a grant: the seal's unit administrator.
    pub fn ungrant(&self, p: &Principal, id: &str, account: &str) -> Result<(), SealError> {
        let object = format!("seal:{id}");
        let seal = self.ledger.seal(id)?;
        if !self.directory.administers(p, &seal.unit)? {
            return Err(self.ledger.refuse(
                p,
                "seal.ungrant",
                &object,
                SealError::Forbidden("only the seal's unit administrator withdraws its use".into()),
            ));
        }
        let key = format!("{id}/{account}");
        let _g = self.ledger.admin_lock()?;
        if self.ledger.store.get::<Grant>(tree::GRANTS, &key)?.is_none() {
            return Err(SealError::NotFound("unknown_grant", format!("'{account}' holds no grant on seal {id}")));
        }
        // Taken under the seal's lock, so no use that relied on the grant is still running after this returns.
        let _w = self.ledger.exclusive(id)?;
        let ev = AuditEvent::new(actor(p), "seal.ungrant", &object, "ok")
            .detail("account", account)
            .change(Change::Delete { tree: tree::GRANTS.into(), key });
        let _ = self.ledger.commit(ev)?;
        Ok(())
    }

    /// The apps granted a seal.
    pub fn grants(&self, id: &str) -> Result<Vec<Grant>, SealError> {
        super::Ledger::every_page(|cursor| self.grants_page(id, cursor, crate::audit::MAX_PAGE))
    }

    /// A page of the apps granted a seal, by account name: at most `limit`, after `cursor`. Grants
    /// are kept under `seal/account`, so a page reads only this seal's.
    pub fn grants_page(
        &self,
        id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Grant>, Option<String>), SealError> {
        self.ledger.page_of_prefix(tree::GRANTS, &format!("{id}/"), cursor, limit, |_: &Grant| Ok(true))
    }

    pub(super) fn may_read(&self, p: &Principal, seal: &Seal) -> Result<bool, SealError> {
        self.may_read_parts(p, &seal.id, &seal.unit)
    }

    /// One seal, for those who may see it: issuers and auditors, its unit administrator, granted apps.
    pub fn get_seal(&self, p: &Principal, id: &str) -> Result<Seal, SealError> {
        let seal = self.ledger.seal(id)?;
        if !self.may_read(p, &seal)? {
            return Err(self.ledger.refuse(
                p,
                "seal.read",
                &format!("seal:{id}"),
                SealError::Forbidden("this seal is not visible to this account".into()),
            ));
        }
        Ok(seal)
    }

    /// The seals `p` may see, filtered by state, unit and "certificate ends within `expiring_days`".
    pub fn list_seals(
        &self,
        p: &Principal,
        state: Option<SealState>,
        unit: Option<&str>,
        expiring_days: Option<u64>,
    ) -> Result<Vec<Seal>, SealError> {
        Ledger::every_page(|c| self.list_seals_page(p, (state, unit, expiring_days), c, crate::audit::MAX_PAGE))
    }

    /// A page of the seals `p` may see (filtered as [`Lifecycle::list_seals`]), by id: at most
    /// `limit`, after `cursor` (the page before's `next`); see [`super::Ledger::page_of`].
    pub fn list_seals_page(
        &self,
        p: &Principal,
        filter: (Option<SealState>, Option<&str>, Option<u64>),
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Seal>, Option<String>), SealError> {
        let (state, unit, expiring_days) = filter;
        if matches!(p.role, Role::Sysadmin | Role::Secofficer) {
            return Err(self.ledger.refuse(
                p,
                "seal.list",
                "seals",
                SealError::Forbidden("seals are not visible to this role".into()),
            ));
        }
        let horizon = expiring_days.map(super::Filings::horizon);
        if let Some(st) = state {
            return self.seals_in_state_page(p, st, (unit, horizon), cursor, limit);
        }
        let mut may = self.reader(p);
        self.ledger.page_of_peeked(tree::SEALS, cursor, limit, |s: &super::filings::SealPeek| {
            let wanted = unit.is_none_or(|u| s.unit == u) && horizon.is_none_or(|h| s.expiring_by(h));
            Ok(wanted && may(&s.id, &s.unit)?)
        })
    }

    /// Whether `p` may read the seal `id` of `unit`: issuers and auditors, its unit administrator,
    /// applications granted it.
    fn may_read_parts(&self, p: &Principal, id: &str, unit: &str) -> Result<bool, SealError> {
        Ok(match p.role {
            Role::Issuer | Role::Auditor => true,
            // A unit administrator reads the seals of the units it administers, and those it was
            // granted (a parent unit's seal, to seal by hand).
            Role::UnitAdmin => self.directory.administers(p, unit)? || self.ledger.granted(id, &p.account)?,
            Role::App => self.ledger.granted(id, &p.account)?,
            Role::Sysadmin | Role::Secofficer => false,
        })
    }

    /// A page of the seals in `state` that `p` may see, through the store's seal-state index (only
    /// those seals are read), by id after `cursor`.
    fn seals_in_state_page(
        &self,
        p: &Principal,
        state: SealState,
        (unit, horizon): (Option<&str>, Option<u64>),
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Seal>, Option<String>), SealError> {
        let mut may = self.reader(p);
        super::Ledger::page_by(
            cursor,
            limit,
            |after| Ok(self.ledger.store.seals_in_state(state.name(), after, 256)?),
            |id, seal_unit| {
                if unit.is_some_and(|u| u != seal_unit) || !may(id, &seal_unit)? {
                    return Ok(None);
                }
                let seal = self.ledger.seal(id)?;
                // The seal may have moved since the index was read: it is listed as it is now.
                let listed = seal.state == state && horizon.is_none_or(|h| super::Filings::is_expiring(&seal, h));
                Ok(listed.then_some(seal))
            },
        )
    }

    /// Whether `p` may read a seal, by its id and unit, remembering each unit's answer.
    fn reader<'a>(&'a self, p: &'a Principal) -> impl FnMut(&str, &str) -> Result<bool, SealError> + 'a {
        let mut units: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        move |id: &str, unit: &str| {
            if p.role != Role::UnitAdmin {
                return self.may_read_parts(p, id, unit);
            }
            // The unit's answer is remembered; a seal granted to the person is asked about alone.
            let administers = match units.get(unit) {
                Some(known) => *known,
                None => {
                    let a = self.directory.administers(p, unit)?;
                    let _ = units.insert(unit.to_string(), a);
                    a
                }
            };
            Ok(administers || self.ledger.granted(id, &p.account)?)
        }
    }

    /// How many seals `p` may see are in each state, in [`SealState::ALL`]'s order, from the store's
    /// seal-state index (at most `max` counted in all; `false` when there were more).
    pub fn state_counts(&self, p: &Principal, max: usize) -> Result<([u64; 7], bool), SealError> {
        let (mut counts, mut read) = ([0u64; 7], 0usize);
        let mut may = self.reader(p);
        for (i, st) in SealState::ALL.into_iter().enumerate() {
            let mut after: Option<String> = None;
            loop {
                let (batch, more) = self.ledger.store.seals_in_state(st.name(), after.as_deref(), 1024)?;
                for (id, unit) in &batch {
                    read += 1;
                    if may(id, unit)? {
                        counts[i] += 1;
                    }
                }
                after = batch.last().map(|(id, _)| id.clone());
                if read >= max {
                    return Ok((counts, false));
                }
                if !more {
                    break;
                }
            }
        }
        Ok((counts, true))
    }

    /// The current `SESeal` of a seal, DER, for those who may read the seal.
    pub fn seal_ses(&self, p: &Principal, id: &str) -> Result<Vec<u8>, SealError> {
        use base64::Engine as _;
        let seal = self.get_seal(p, id)?;
        let b64 = seal.current().and_then(|v| v.ses.clone()).ok_or_else(|| SealError::InvalidTransition {
            seal: id.into(),
            state: seal.state,
            action: "ses".into(),
        })?;
        base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| SealError::Store(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_checked_against_their_type() {
        let png = b"\x89PNG\r\n\x1a\nrest";
        assert!(seal_image(png, "png", 40.0, 40.0, 1024).is_ok());
        assert!(seal_image(png, "gif", 40.0, 40.0, 1024).is_err());
        assert!(seal_image(b"<svg xmlns='x'/>", "svg", 40.0, 40.0, 1024).is_ok());
        assert!(seal_image(png, "png", 0.0, 40.0, 1024).is_err());
        assert!(seal_image(png, "png", 40.0, 40.0, 4).is_err());
        assert!(seal_image(png, "bmp", 40.0, 40.0, 1024).is_err());
    }

    #[test]
    fn the_transition_table_matches_the_architecture() {
        use SealState::*;
        let allowed: Vec<(Action, SealState)> =
            Action::ALL.iter().flat_map(|a| a.from_states().iter().map(move |s| (*a, *s))).collect();
        assert!(allowed.contains(&(Action::Approve, Applied)) && allowed.contains(&(Action::Revoke, Frozen)));
        assert!(!allowed.iter().any(|(_, s)| matches!(s, Revoked | Rejected)), "revoked and rejected are terminal");
        assert_eq!(Action::Change.to_state(Active), Revoked);
        assert_eq!(Action::Renew.to_state(Frozen), Frozen);
    }
}
