//! The seal registry against a real token (softtoken, SM2): who may do what (the role x operation
//! matrix), every transition from every state, the use rules, and the freeze/sign race. Signatures
//! are judged by OpenSSL with the seal's certificate; refusals are looked up in the audit journal.

mod common;
#[path = "seals/ofd.rs"]
mod ofd;
#[path = "seals/time.rs"]
mod time;

use common::{application, openssl, SoftToken};
use seald::audit::{AuditEvent, Journal, JournalConfig, Query};
use seald::authz::{Accounts, Principal, Role};
use seald::crypto::KeyAlg;
use seald::seal::{
    AccountSpec, AccountUpdate, Action, ApplyRequest, Policy, Registry, SealError, SealSettings, SealState,
    TicketRequest, TransitionRequest, UnitSpec, UseRefusal,
};
use seald::signing::{InputMode, Request, SignError, Signing};
use seald::store::{Change, Store};
use seald::token::TokenPool;
use std::sync::Arc;

struct World {
    _token: SoftToken,
    pool: TokenPool,
    _dir: tempfile::TempDir,
    journal: Arc<Journal>,
    registry: Arc<Registry>,
    signing: Arc<Signing>,
    sysadmin: Principal,
    secofficer: Principal,
    auditor: Principal,
    issuer: Principal,
    admin_a: Principal,
    admin_b: Principal,
    app_a: Principal,
    app_b: Principal,
    scratch: std::path::PathBuf,
}

/// What the API shows of a typed answer: its JSON.
fn json<T: serde::Serialize>(v: T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

fn fp(c: char) -> String {
    c.to_string().repeat(64)
}

/// A registry with units `gov` > `a`, and `b`; administrators; an issuer; a unit administrator and
/// an app in each of `a` and `b`.
fn world() -> World {
    world_with(SealSettings::default())
}

fn world_with(settings: SealSettings) -> World {
    world_full(settings, None)
}

/// A world whose TSA key is of `tsa_alg` (default: the issuing CA's, SM2).
fn world_full(settings: SealSettings, tsa_alg: Option<KeyAlg>) -> World {
    let token = SoftToken::new("softtoken");
    let pool = TokenPool::open(&token.config()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("store")).unwrap());
    let audit_key = pool.generate(KeyAlg::Sm2, "audit").unwrap();
    let signer = Arc::new(seald::token::TokenKey::open(&pool, &audit_key.id).unwrap());
    let journal = Arc::new(
        Journal::open(JournalConfig::new(dir.path().join("journal")), Some(store.clone()), Some(signer)).unwrap(),
    );
    // The clock is taken as synchronised here: the TSA's refusal on an unsynchronised clock has
    // its own test, with the kernel's answer.
    let tsa =
        seald::seal::TsaSettings { clock: seald::clock::ClockSource::Trusted, alg: tsa_alg, ..Default::default() };
    let registry = Arc::new(
        Registry::new(store, journal.clone(), pool.clone(), settings, Accounts::default())
            .unwrap()
            .with_time(tsa.clone(), Default::default()),
    );
    registry.set_audit_key(audit_key.id.clone());
    registry
        .directory()
        .bootstrap(&[
            (Role::Sysadmin, "sa".into(), fp('1')),
            (Role::Secofficer, "so".into(), fp('2')),
            (Role::Auditor, "au".into(), fp('3')),
        ])
        .unwrap();
    let id = |c: char| registry.directory().identify(&fp(c), "CN=test").unwrap();
    let sysadmin = id('1');
    for (uid, parent) in [("gov", None), ("a", Some("gov")), ("b", None)] {
        let spec = UnitSpec { id: uid.into(), name: format!("unit {uid}"), parent: parent.map(String::from) };
        let _ = registry.directory().create_unit(&sysadmin, spec).unwrap();
    }
    for (name, role, unit, c) in [
        ("issuer", Role::Issuer, None, '4'),
        ("admin-a", Role::UnitAdmin, Some("a"), '5'),
        ("admin-b", Role::UnitAdmin, Some("b"), '6'),
        ("app-a", Role::App, Some("a"), '7'),
        ("app-b", Role::App, Some("b"), '8'),
    ] {
        let spec = AccountSpec {
            name: name.into(),
            role,
            unit: unit.map(String::from),
            fingerprints: vec![fp(c)],
            certificates: vec![],
            keys: vec![],
        };
        let _ = registry.directory().create_account(&sysadmin, spec).unwrap().done().unwrap();
    }
    // A second security officer: an administrator's account waits for another role's agreement.
    let spec = AccountSpec {
        name: "so2".into(),
        role: Role::Secofficer,
        unit: None,
        fingerprints: vec![fp('9')],
        certificates: vec![],
        keys: vec![],
    };
    let seald::seal::AccountChange::AwaitingApproval(r) = registry.directory().create_account(&sysadmin, spec).unwrap()
    else {
        panic!("an administrator's account was created without a second administrator")
    };
    let _ = registry.dual_control().approve_request(&id('2'), &r.id).unwrap();
    let ca = registry.pki().ensure_issuing_ca("test issuing CA", 3650).unwrap();
    assert_eq!(ca.alg, KeyAlg::Sm2);
    let _ = registry.pki().ensure_seal_maker("test seal maker", 3650).unwrap();
    let _ = registry.pki().ensure_time_keys(&tsa).unwrap().expect("the TSA and the status responder");
    let signing = Signing::new(
        pool.clone(),
        journal.clone(),
        registry.clone(),
        &[],
        1 << 20,
        seald::formats::x509::TrustStore::default(),
    )
    .unwrap();
    let scratch = token.scratch("oracle");
    std::fs::create_dir_all(&scratch).unwrap();
    World {
        sysadmin,
        secofficer: id('2'),
        auditor: id('3'),
        issuer: id('4'),
        admin_a: id('5'),
        admin_b: id('6'),
        app_a: id('7'),
        app_b: id('8'),
        _token: token,
        pool,
        _dir: dir,
        journal,
        registry,
        signing: Arc::new(signing),
        scratch,
    }
}

/// An app's registry account lists the plain keys it may sign with (by name or id). The check reads
/// the in-memory directory, so it must follow an account update at once, and answer for no other app.
#[test]
fn plain_keys_follow_the_app_account_at_once() {
    let w = world();
    let key = w.pool.generate(KeyAlg::Sm2, "plain-1").unwrap();
    let config = seald::signing::KeyConfig { id: key.id.to_hex(), name: "plain-1".into() };
    let signing = Signing::new(
        w.pool.clone(),
        w.journal.clone(),
        w.registry.clone(),
        &[config],
        1 << 20,
        seald::formats::x509::TrustStore::default(),
    )
    .unwrap();
    let req = Request {
        key: "plain-1".into(),
        input: InputMode::E,
        data: vec![7; 32],
        digest_alg: None,
        user_id: None,
        seal: None,
        ticket: None,
    };
    let forbidden = |r: Result<_, SignError>| matches!(r, Err(SignError::Forbidden { .. }));
    assert!(forbidden(signing.sign(&w.app_a, &req)), "no keys listed yet");
    let keys = |k: Vec<String>| AccountUpdate { keys: Some(k), ..Default::default() };
    let _ = w.registry.directory().update_account(&w.sysadmin, "app-a", keys(vec!["plain-1".into()])).unwrap();
    let _ = signing.sign(&w.app_a, &req).unwrap();
    let by_id = Request { key: key.id.to_hex().to_uppercase(), ..req.clone() };
    let _ = signing.sign(&w.app_a, &by_id).unwrap();
    assert!(forbidden(signing.sign(&w.app_b, &req)), "another app");
    let _ = w.registry.directory().update_account(&w.sysadmin, "app-a", keys(vec![])).unwrap();
    assert!(forbidden(signing.sign(&w.app_a, &req)), "the key was taken away");
    assert!(forbidden(signing.sign(&w.app_a, &by_id)));
}

impl World {
    /// A seal of unit `a` brought to `state` the legitimate way.
    fn seal_in(&self, state: SealState, policy: Policy) -> String {
        let r = &self.registry;
        let id = r.lifecycle().apply(&self.admin_a, application(policy)).unwrap().id;
        let go = |a: Action| r.lifecycle().transition(&self.issuer, &id, a, TransitionRequest::default()).unwrap();
        let path: &[Action] = match state {
            SealState::Applied => &[],
            SealState::Approved => &[Action::Approve],
            SealState::Rejected => &[Action::Reject],
            SealState::Made => &[Action::Approve, Action::Make],
            SealState::Active => &[Action::Approve, Action::Make, Action::Publish],
            SealState::Frozen => &[Action::Approve, Action::Make, Action::Publish, Action::Freeze],
            SealState::Revoked => &[Action::Approve, Action::Make, Action::Publish, Action::Revoke],
        };
        for a in path {
            let _ = go(*a);
        }
        assert_eq!(r.lifecycle().seal(&id).unwrap().state, state);
        id
    }

    /// An active seal of unit `a` granted to `app-a`.
    fn usable(&self, policy: Policy) -> String {
        let id = self.seal_in(SealState::Active, policy);
        let _ = self.registry.lifecycle().grant(&self.admin_a, &id, "app-a").unwrap();
        id
    }

    fn sign(
        &self,
        p: &Principal,
        seal: &str,
        data: &[u8],
        ticket: Option<&str>,
    ) -> Result<seald::signing::Signed, SignError> {
        self.signing.sign(
            p,
            &Request {
                key: String::new(),
                input: InputMode::Message,
                data: data.to_vec(),
                digest_alg: None,
                user_id: None,
                seal: Some(seal.into()),
                ticket: ticket.map(String::from),
            },
        )
    }

    fn refusals_by(&self, account: &str) -> Vec<String> {
        let q = Query { actor: Some(account.into()), ..Default::default() };
        self.journal
            .query(&q)
            .unwrap()
            .into_iter()
            .filter(|r| r.outcome.starts_with("refused:"))
            .map(|r| r.action)
            .collect()
    }
}

fn code(e: &SealError) -> &'static str {
    e.code()
}

fn sign_code(e: &SignError) -> &'static str {
    e.code()
}

#[test]
fn each_role_may_do_exactly_its_own_operations_and_every_refusal_is_audited() {
    let world = world();
    let w = &world;
    let r = &w.registry;
    let roles: Vec<(&str, &Principal)> = vec![
        ("sysadmin", &w.sysadmin),
        ("secofficer", &w.secofficer),
        ("auditor", &w.auditor),
        ("issuer", &w.issuer),
        ("admin-a", &w.admin_a),
        ("admin-b", &w.admin_b),
        ("app-a", &w.app_a),
        ("app-b", &w.app_b),
    ];
    type Op<'a> = (&'a str, &'a [&'a str], Box<dyn Fn(&Principal) -> Result<(), String> + 'a>);
    let err = |e: SealError| code(&e).to_string();
    // Each operation runs on a fresh object in the state it needs, so only the role decides.
    let mut ops: Vec<Op> = vec![
        (
            "apply",
            &["admin-a"],
            Box::new(|p| r.lifecycle().apply(p, application(Policy::default())).map(|_| ()).map_err(err)),
        ),
        ("list accounts", &["sysadmin"], Box::new(|p| r.directory().accounts(p).map(|_| ()).map_err(err))),
        // 三员: the audit trail is the auditor's, the backup the system administrator's.
        ("verify the audit trail", &["auditor"], Box::new(|p| r.trail().audit_verify(p).map(|_| ()).map_err(err))),
        (
            "export the audit trail",
            &["auditor"],
            Box::new(|p| {
                let all = Ok(seald::audit::ExportRange { from: 1, to: u64::MAX });
                r.trail().audit_export(p, all).map(|_| ()).map_err(err)
            }),
        ),
        ("take a backup", &["sysadmin"], Box::new(|p| r.trail().backup(p, Ok(None)).map(|_| ()).map_err(err))),
        (
            "create unit",
            &["sysadmin"],
            Box::new(|p| {
                let id = format!("u{}", rand_suffix());
                r.directory().create_unit(p, UnitSpec { id, name: "x".into(), parent: None }).map(|_| ()).map_err(err)
            }),
        ),
        (
            "create account",
            &["sysadmin"],
            Box::new(|p| {
                let spec = AccountSpec {
                    name: format!("n{}", rand_suffix()),
                    role: Role::Auditor,
                    unit: None,
                    fingerprints: vec![format!("{:064x}", rand_suffix())],
                    certificates: vec![],
                    keys: vec![],
                };
                r.directory().create_account(p, spec).map(|_| ()).map_err(err)
            }),
        ),
        ("list filings", &["issuer", "auditor"], Box::new(|p| r.filings().filings(p, None).map(|_| ()).map_err(err))),
        (
            "ack filing",
            &["issuer"],
            Box::new(|p| {
                let id = w.seal_in(SealState::Made, Policy::default());
                let f = r
                    .filings()
                    .filings(&w.issuer, None)
                    .unwrap()
                    .into_iter()
                    .map(json)
                    .find(|f| f["seal"] == id.as_str())
                    .unwrap();
                r.filings()
                    .ack_filing(p, f["id"].as_str().unwrap(), Some("公安备案 123".into()))
                    .map(|_| ())
                    .map_err(err)
            }),
        ),
        (
            "read seal",
            &["issuer", "auditor", "admin-a", "app-a"],
            Box::new(|p| r.lifecycle().get_seal(p, &w.usable(Policy::default())).map(|_| ()).map_err(err)),
        ),
        (
            "usage",
            &["issuer", "auditor", "admin-a"],
            Box::new(|p| r.uses().usage(p, &w.usable(Policy::default())).map(|_| ()).map_err(err)),
        ),
        (
            "policy",
            &["issuer", "admin-a"],
            Box::new(|p| {
                r.lifecycle().set_policy(p, &w.usable(Policy::default()), Policy::default()).map(|_| ()).map_err(err)
            }),
        ),
        (
            "grant",
            &["admin-a"],
            Box::new(|p| {
                r.lifecycle()
                    .grant(p, &w.seal_in(SealState::Active, Policy::default()), "app-a")
                    .map(|_| ())
                    .map_err(err)
            }),
        ),
        (
            "ungrant",
            &["admin-a"],
            Box::new(|p| r.lifecycle().ungrant(p, &w.usable(Policy::default()), "app-a").map_err(err)),
        ),
        (
            "ticket",
            &["admin-a"],
            Box::new(|p| {
                let t = TicketRequest { app: "app-a".into(), digest: "ab".repeat(32), valid_s: None };
                r.uses().issue_ticket(p, &w.usable(Policy::default()), t).map(|_| ()).map_err(err)
            }),
        ),
        (
            "sign",
            &["app-a"],
            Box::new(|p| {
                w.sign(p, &w.usable(Policy::default()), b"doc", None).map(|_| ()).map_err(|e| sign_code(&e).to_string())
            }),
        ),
    ];
    for action in Action::ALL {
        let from = action.from_states()[0];
        ops.push((
            action.name(),
            &["issuer"],
            Box::new(move |p| {
                let id = w.seal_in(from, Policy::default());
                r.lifecycle().transition(p, &id, action, TransitionRequest::default()).map(|_| ()).map_err(err)
            }),
        ));
    }
    for (op, allowed, run) in &ops {
        for (name, p) in &roles {
            let before = w.refusals_by(&p.account).len();
            let outcome = run(p);
            if allowed.contains(name) {
                assert!(outcome.is_ok(), "{name} may {op}, but got {outcome:?}");
            } else {
                let code = outcome.expect_err(&format!("{name} must not {op}"));
                assert!(code == "forbidden" || code == "no_grant", "{name} {op}: refused with {code}, not 403");
                assert_eq!(w.refusals_by(&p.account).len(), before + 1, "{name}'s refused {op} is in the journal");
            }
        }
    }
    // No account changes its own role.
    let up = seald::seal::AccountUpdate { role: Some(Role::Auditor), ..Default::default() };
    assert_eq!(code(&r.directory().update_account(&w.sysadmin, "sa", up).unwrap_err()), "forbidden");
    // A certificate belongs to one account only.
    let dup = AccountSpec {
        name: "dup".into(),
        role: Role::Auditor,
        unit: None,
        fingerprints: vec![fp('4')],
        certificates: vec![],
        keys: vec![],
    };
    assert_eq!(code(&r.directory().create_account(&w.sysadmin, dup).unwrap_err()), "fingerprint_in_use");
}

fn rand_suffix() -> u64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).unwrap();
    u64::from_be_bytes(b) >> 8
}

#[test]
fn every_transition_from_every_state_is_allowed_or_409_with_the_current_state() {
    let w = world();
    for action in Action::ALL {
        for state in SealState::ALL {
            let id = w.seal_in(state, Policy::default());
            let out = w.registry.lifecycle().transition(
                &w.issuer,
                &id,
                action,
                TransitionRequest { reason: Some("test".into()), ..Default::default() },
            );
            if action.from_states().contains(&state) {
                let s = out.unwrap_or_else(|e| panic!("{} from {}: {e}", action.name(), state.name()));
                let old = w.registry.lifecycle().seal(&id).unwrap();
                match action {
                    Action::Change => {
                        assert_eq!((s.state, s.replaces.as_deref()), (SealState::Made, Some(id.as_str())));
                        assert_eq!(old.state, SealState::Revoked);
                        assert_eq!(old.replaced_by.as_deref(), Some(s.id.as_str()));
                        assert_eq!(old.history.last().unwrap().reason.as_deref(), Some("test"));
                    }
                    Action::Renew => {
                        assert_eq!(s.state, state, "renew keeps the state");
                        assert_eq!(s.versions.len(), 2);
                        assert!(s.versions[0].retired_ms.is_some() && s.versions[0].key_id != s.versions[1].key_id);
                    }
                    _ => assert_eq!(old.state, action.to_state(state)),
                }
            } else {
                match out {
                    Err(SealError::InvalidTransition { state: st, .. }) => assert_eq!(st, state),
                    other => panic!("{} from {} must be 409, got {other:?}", action.name(), state.name()),
                }
                assert_eq!(
                    w.registry.lifecycle().seal(&id).unwrap().state,
                    state,
                    "a refused transition changes nothing"
                );
            }
        }
    }
    // Make, change, renew and revoke each queued a filing for the police system.
    let filings: Vec<_> = w
        .registry
        .filings()
        .filings(&w.issuer, Some(seald::seal::FilingState::Pending))
        .unwrap()
        .into_iter()
        .map(json)
        .collect();
    for action in ["make", "change", "renew", "revoke"] {
        assert!(filings.iter().any(|f| f["action"] == action), "a {action} filing is pending");
    }
    assert!(filings.iter().all(|f| f["overdue"] == false));
}

#[test]
fn use_rules_refuse_with_distinct_codes_and_an_allowed_use_verifies_in_openssl() {
    let w = world();
    let refused = |seal: &str, p: &Principal, ticket: Option<&str>| -> &'static str {
        match w.sign(p, seal, b"contract.pdf bytes", ticket) {
            Err(SignError::Seal(SealError::Refused(r, _))) => r.code(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    // Allowed: the signature verifies with the seal's certificate in OpenSSL, and the auditor sees the use.
    let ok = w.usable(Policy::default());
    let signed = w.sign(&w.app_a, &ok, b"contract.pdf bytes", None).unwrap();
    let cert = signed.cert.clone().unwrap();
    let (c, m, s) = (w.scratch.join("seal.pem"), w.scratch.join("doc"), w.scratch.join("doc.sig"));
    std::fs::write(&c, &cert).unwrap();
    std::fs::write(&m, b"contract.pdf bytes").unwrap();
    std::fs::write(&s, &signed.der).unwrap();
    let (good, out) = openssl(&[
        "pkeyutl",
        "-verify",
        "-certin",
        "-inkey",
        c.to_str().unwrap(),
        "-rawin",
        "-in",
        m.to_str().unwrap(),
        "-sigfile",
        s.to_str().unwrap(),
        "-digest",
        "sm3",
        "-pkeyopt",
        "distid:1234567812345678",
    ]);
    assert!(good, "OpenSSL rejects the seal signature: {out}");
    let usage: Vec<_> = w.registry.uses().usage(&w.auditor, &ok).unwrap().into_iter().map(json).collect();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["seq"], signed.audit_seq);
    assert_eq!(usage[0]["digest"], hex::encode(seald::crypto::sm3(b"contract.pdf bytes")));
    assert_eq!(usage[0]["account"], "app-a");

    assert_eq!(refused(&ok, &w.app_b, None), UseRefusal::NoGrant.code(), "an app without a grant");
    let frozen = w.usable(Policy::default());
    let _ =
        w.registry.lifecycle().transition(&w.issuer, &frozen, Action::Freeze, TransitionRequest::default()).unwrap();
    assert_eq!(refused(&frozen, &w.app_a, None), "seal_frozen");
    let revoked = w.usable(Policy::default());
    let _ =
        w.registry.lifecycle().transition(&w.issuer, &revoked, Action::Revoke, TransitionRequest::default()).unwrap();
    assert_eq!(refused(&revoked, &w.app_a, None), "seal_revoked");

    // Expired: a seal whose certificate ended yesterday (written as the journal would).
    let expired = w.usable(Policy::default());
    let mut s = w.registry.lifecycle().seal(&expired).unwrap();
    s.versions.last_mut().unwrap().not_after_ms = seald_now() - 86_400_000;
    let change = Change::Put { tree: "seals".into(), key: expired.clone(), value: serde_json::to_value(&s).unwrap() };
    let _ = w
        .journal
        .append(AuditEvent::new(seald::audit::Actor::system(), "test.expire", "seal", "ok").change(change))
        .unwrap();
    assert_eq!(refused(&expired, &w.app_a, None), "seal_expired");

    // Outside hours: a two-hour window that excludes now (Beijing time).
    let hour = ((seald_now() / 3_600_000 + 8) % 24) as u8;
    let window = [(hour + 2) % 24, (hour + 4) % 24];
    let night = w.usable(Policy { hours: Some(window), ..Default::default() });
    assert_eq!(refused(&night, &w.app_a, None), "outside_hours");

    // Limits: two uses in total.
    let limited = w.usable(Policy { total_limit: Some(2), ..Default::default() });
    for _ in 0..2 {
        let _ = w.sign(&w.app_a, &limited, b"x", None).unwrap();
    }
    assert_eq!(refused(&limited, &w.app_a, None), "usage_limit");
    let daily = w.usable(Policy { daily_limit: Some(1), ..Default::default() });
    let _ = w.sign(&w.app_a, &daily, b"x", None).unwrap();
    assert_eq!(refused(&daily, &w.app_a, None), "usage_limit");

    // Tickets: required, bound to the digest, single use, expiring.
    let strict = w.usable(Policy { require_approval: true, ..Default::default() });
    let doc = b"approved document";
    let digest = hex::encode(seald::crypto::sm3(doc));
    assert_eq!(refused(&strict, &w.app_a, None), "ticket_required");
    let ticket = |d: &str, valid_s| {
        let t = TicketRequest { app: "app-a".into(), digest: d.into(), valid_s };
        w.registry.uses().issue_ticket(&w.admin_a, &strict, t).unwrap().id
    };
    let t = ticket(&digest, None);
    let wrong = w.sign(&w.app_a, &strict, b"another document", Some(&t));
    assert!(matches!(wrong, Err(SignError::Seal(SealError::Refused(UseRefusal::TicketMismatch, _)))), "{wrong:?}");
    let used = w.sign(&w.app_a, &strict, doc, Some(&t)).unwrap();
    assert!(used.audit_seq > 0);
    assert!(matches!(
        w.sign(&w.app_a, &strict, doc, Some(&t)),
        Err(SignError::Seal(SealError::Refused(UseRefusal::TicketUsed, _)))
    ));
    assert!(matches!(
        w.sign(&w.app_a, &strict, doc, Some("nope")),
        Err(SignError::Seal(SealError::Refused(UseRefusal::TicketMismatch, _)))
    ));
    let short = ticket(&digest, Some(1));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert!(matches!(
        w.sign(&w.app_a, &strict, doc, Some(&short)),
        Err(SignError::Seal(SealError::Refused(UseRefusal::TicketExpired, _)))
    ));

    // Every refusal is in the journal with its code.
    let outcomes: Vec<String> = w
        .journal
        .query(&Query { action: Some("seal.use".into()), ..Default::default() })
        .unwrap()
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    for c in [
        "no_grant",
        "seal_frozen",
        "seal_revoked",
        "seal_expired",
        "outside_hours",
        "usage_limit",
        "ticket_required",
        "ticket_used",
        "ticket_mismatch",
        "ticket_expired",
    ] {
        assert!(outcomes.contains(&format!("refused:{c}")), "refused:{c} is journalled");
    }
}

fn seald_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn no_signature_is_produced_after_a_freeze_is_acknowledged() {
    let w = world();
    let seal = w.usable(Policy::default());
    let frozen_at = Arc::new(std::sync::Mutex::new(None::<u64>));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signed = Arc::new(std::sync::Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for i in 0..64 {
            let (w, seal, stop, signed, frozen_at) = (&w, &seal, stop.clone(), signed.clone(), frozen_at.clone());
            let _ = scope.spawn(move || {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let ack_before = frozen_at.lock().unwrap().is_some();
                    match w.sign(&w.app_a, seal, format!("doc {i} {n}").as_bytes(), None) {
                        Ok(s) => {
                            assert!(!ack_before, "a use that started after the freeze was acknowledged succeeded");
                            signed.lock().unwrap().push(s.audit_seq);
                        }
                        Err(e) => assert_eq!(sign_code(&e), "seal_frozen", "{e}"),
                    }
                    n += 1;
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(400));
        let _ =
            w.registry.lifecycle().transition(&w.issuer, &seal, Action::Freeze, TransitionRequest::default()).unwrap();
        let head = w.journal.head_seq();
        *frozen_at.lock().unwrap() = Some(head);
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let records = w.journal.query(&Query { object: Some(format!("seal:{seal}")), ..Default::default() }).unwrap();
    let freeze = records.iter().find(|r| r.action == "seal.freeze").expect("the freeze is journalled").seq;
    let uses: Vec<u64> =
        records.iter().filter(|r| r.action == "seal.use" && r.outcome == "ok").map(|r| r.seq).collect();
    assert!(uses.len() > 10, "signing ran before the freeze ({} uses)", uses.len());
    assert!(uses.iter().all(|s| *s < freeze), "a usage record follows the freeze in the journal");
    let mut returned = signed.lock().unwrap().clone();
    returned.sort();
    assert_eq!(returned, uses, "every returned signature has its usage record, and no other record is ok");
    assert!(
        records.iter().any(|r| r.seq > freeze && r.outcome == "refused:seal_frozen"),
        "uses after the freeze were refused"
    );
}

#[test]
fn an_imported_certificate_binds_only_to_the_seals_own_key_and_reminders_see_the_end_of_validity() {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    let w = world();
    let mut app = application(Policy::default());
    app.alg = KeyAlg::P256;
    let id = w.registry.lifecycle().apply(&w.admin_a, app).unwrap().id;
    for a in [Action::Approve, Action::Make] {
        let _ = w.registry.lifecycle().transition(&w.issuer, &id, a, TransitionRequest::default()).unwrap();
    }
    let seal = w.registry.lifecycle().seal(&id).unwrap();
    let cert = seald::formats::x509::Cert::parse(seal.versions[0].cert_pem.as_bytes()).unwrap();
    let seald::crypto::PublicKey::P256(pk) = cert.public_key().unwrap() else { panic!("a P-256 seal") };
    let outside = seald::devpki::DevCa::new("outside CA").unwrap();
    // An outside CA's certificate for the seal's key, ending in 20 days.
    let own = outside.certify_p256("seal", pk.to_encoded_point(false).as_bytes(), 7, -1, 20).unwrap();
    let stranger = outside.client("someone else", 9, -1, 20).unwrap();
    let seald::crypto::PublicKey::P256(other_key) =
        seald::formats::x509::Cert::parse(stranger.cert_pem.as_bytes()).unwrap().public_key().unwrap()
    else {
        panic!("rcgen makes P-256 keys")
    };
    let foreign = outside.certify_p256("seal", other_key.to_encoded_point(false).as_bytes(), 8, -1, 20).unwrap();
    // Its CSR, signed in the token, is a request OpenSSL verifies as it is (P-256).
    let csr = w.registry.lifecycle().seal_csr(&w.issuer, &id).unwrap();
    let csr_path = w.scratch.join("p256.csr");
    std::fs::write(&csr_path, &csr).unwrap();
    let (good, out) = openssl(&["req", "-verify", "-in", csr_path.to_str().unwrap(), "-noout"]);
    assert!(good, "openssl req -verify: {out}");
    assert_eq!(w.registry.lifecycle().seal_csr(&w.admin_a, &id).unwrap_err().code(), "forbidden");
    let refused = w.registry.lifecycle().import_certificate(&w.issuer, &id, &foreign.cert_pem).unwrap_err();
    assert_eq!(refused.code(), "bad_certificate", "{refused}");
    assert_eq!(
        w.registry.lifecycle().import_certificate(&w.admin_a, &id, &own.cert_pem).unwrap_err().code(),
        "forbidden"
    );
    let bound = w.registry.lifecycle().import_certificate(&w.issuer, &id, &own.cert_pem).unwrap();
    assert_eq!(bound.versions[0].cert_pem.trim(), own.cert_pem.trim());
    // The end of validity moved to the imported certificate's: the seal is now expiring within 30 days.
    let within =
        |days| w.registry.lifecycle().list_seals(&w.issuer, None, None, Some(days)).unwrap().iter().any(|s| s.id == id);
    assert!(within(30) && !within(10));
    assert!(w.registry.filings().expiring(90).unwrap().iter().any(|s| s.id == id));
    // /readyz and /metrics count the same, reading seals without their pictures.
    let facts = w.registry.filings().facts().unwrap();
    let reminder = w.registry.settings().reminder_days;
    assert_eq!(facts.expiring_count, w.registry.filings().expiring(reminder).unwrap().len() as u64);
    assert!(facts.expiring_count >= 1);
    assert_eq!(facts.overdue_count, w.registry.filings().overdue_filings().unwrap().len() as u64);
    // A use returns the imported certificate.
    let _ = w.registry.lifecycle().transition(&w.issuer, &id, Action::Publish, TransitionRequest::default()).unwrap();
    let _ = w.registry.lifecycle().grant(&w.admin_a, &id, "app-a").unwrap();
    let signed = w.sign(&w.app_a, &id, b"x", None).unwrap();
    assert_eq!(signed.cert.unwrap().trim(), own.cert_pem.trim());
}

#[test]
fn seals_and_seal_signatures_made_here_are_strict_gbt38540_that_openssl_and_our_verifier_accept() {
    use seald::formats::ses::{self, SesSeal, SesSignature};
    let w = world();
    let id = w.usable(Policy::default());
    let der = w.registry.lifecycle().seal_ses(&w.issuer, &id).unwrap();
    assert!(w.registry.lifecycle().seal_ses(&w.app_b, &id).is_err(), "an app without a grant does not read the seal");
    let seal = SesSeal::parse(&der).unwrap();
    assert!(seal.warnings.is_empty(), "our output needs no tolerance: {:?}", seal.warnings);
    assert_eq!((seal.info.version, seal.info.vid.as_str(), seal.info.es_id.as_str()), (4, "seald", id.as_str()));
    assert_eq!(seal.info.name, "某某市某某局合同专用章");
    let report = w.registry.verification().verify_ses_seal(&der, None, &seald::formats::x509::TrustStore::default());
    assert!(report.valid, "{report:#?}");
    let ok_steps: Vec<_> = report.steps.iter().filter(|s| s.ok == Some(true)).map(|s| s.step).collect();
    for s in ["format", "maker_signature", "maker_certificate", "seal_validity", "trust_chain", "registry_state"] {
        assert!(ok_steps.contains(&s), "{s} passes: {report:#?}");
    }
    // OpenSSL checks the maker's signature over the stored SES_SealInfo.
    let key_pem = |cert: &[u8]| seald::formats::x509::Cert::parse(cert).unwrap().public_key().unwrap().to_spki_pem();
    let (good, out) = common::openssl_sm2_verify(
        &w.scratch,
        &key_pem(&seal.maker_cert),
        &seal.signed_bytes,
        &seal.signed_value,
        "1234567812345678",
    );
    assert!(good, "OpenSSL rejects the maker signature: {out}");
    std::fs::write(w.scratch.join("seal.esl"), &der).unwrap();
    assert!(openssl(&["asn1parse", "-inform", "DER", "-in", w.scratch.join("seal.esl").to_str().unwrap()]).0);

    // Seal a document: the signature is a strict v4 SES_Signature whose every step passes.
    let doc = b"<ofd:Signature>the protected Signature.xml</ofd:Signature>";
    let signed = w
        .signing
        .sign_ses(
            &w.app_a,
            &id,
            &seald::crypto::sm3(doc),
            "/Doc_0/Signs/Sign_0/Signature.xml",
            &[seald::formats::ses::ExtData {
                id: "1.2.156.10197.6.7.2.2.1".into(),
                critical: false,
                value: b"x".to_vec(),
            }],
            Default::default(),
        )
        .unwrap();
    assert!(signed.audit_seq > 0);
    let sig_der = signed.der;
    let sig = SesSignature::parse(&sig_der).unwrap();
    assert!(sig.warnings.is_empty(), "{:?}", sig.warnings);
    let report = w.registry.verification().verify_ses(
        &sig_der,
        Some(seald::crypto::sm3(doc)),
        &seald::formats::x509::TrustStore::default(),
    );
    assert!(report.valid, "{report:#?}");
    assert!(
        report.steps.iter().all(|s| s.ok == Some(true) || matches!(s.step, "timestamp" | "revocation")),
        "{report:#?}"
    );
    let (good, out) = common::openssl_sm2_verify(
        &w.scratch,
        &key_pem(&sig.signer_cert),
        &sig.tbs,
        &sig.signature,
        "1234567812345678",
    );
    assert!(good, "OpenSSL rejects the seal signature over TBS_Sign: {out}");
    // The usage record names the data hash, like any use.
    let usage: Vec<_> = w.registry.uses().usage(&w.auditor, &id).unwrap().into_iter().map(json).collect();
    assert_eq!(usage.last().unwrap()["digest"], hex::encode(seald::crypto::sm3(doc)));

    // Another document: data_hash fails and names itself.
    let wrong = w.registry.verification().verify_ses(
        &sig_der,
        Some(seald::crypto::sm3(b"other")),
        &seald::formats::x509::TrustStore::default(),
    );
    assert_eq!(
        wrong.steps.iter().filter(|s| s.ok == Some(false)).map(|s| s.step).collect::<Vec<_>>(),
        vec!["data_hash"]
    );

    // Freezing stops new seal signatures; the earlier one still verifies (the seal was active then).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let _ = w.registry.lifecycle().transition(&w.issuer, &id, Action::Freeze, TransitionRequest::default()).unwrap();
    let refused =
        w.signing.sign_ses(&w.app_a, &id, &seald::crypto::sm3(doc), "/Doc_0", &[], Default::default()).unwrap_err();
    assert_eq!(refused.code(), "seal_frozen");
    let later = w.registry.verification().verify_ses(
        &sig_der,
        Some(seald::crypto::sm3(doc)),
        &seald::formats::x509::TrustStore::default(),
    );
    assert!(later.valid, "signed while active: {later:#?}");
    let state = later.steps.iter().find(|s| s.step == "registry_state").unwrap();
    assert!(state.detail.contains("now frozen"), "{}", state.detail);
    // A seal judged now says frozen.
    let now = w.registry.verification().verify_ses_seal(&der, None, &seald::formats::x509::TrustStore::default());
    assert!(!now.valid && now.steps.iter().any(|s| s.step == "registry_state" && s.ok == Some(false)));
    let _ = ses::unreadable(&ses::SesError("x".into()));
}

#[test]
fn signed_data_made_with_a_seal_verifies_here_and_in_openssl() {
    use seald::formats::cms;
    let w = world();
    let sm2 = w.usable(Policy::default());
    let doc = b"a contract, signed as GM/T 0010 SignedData";
    let none = seald::formats::x509::TrustStore::default();
    for detached in [true, false] {
        let der = w.signing.sign_cms(&w.app_a, &sm2, doc, detached, None).unwrap().der;
        let given = if detached { Some(&doc[..]) } else { None };
        let r = w.registry.verification().verify_cms(&der, given, &none);
        assert!(r.valid, "detached={detached}: {r:#?}");
        for s in ["signer_signature", "data_hash", "signer_certificate", "trust_chain"] {
            assert!(r.steps.iter().any(|x| x.step == s && x.ok == Some(true)), "{s}: {r:#?}");
        }
        let wrong = w.registry.verification().verify_cms(&der, Some(b"another"), &none);
        if detached {
            assert!(wrong.steps.iter().any(|x| x.step == "data_hash" && x.ok == Some(false)));
        }
        // OpenSSL checks the SM2 signature over the signed attributes re-tagged as SET.
        let sd = cms::parse(&der).unwrap();
        let si = &sd.signers[0];
        let cert = seald::formats::x509::Cert::parse(&sd.certificates[0]).unwrap();
        let (good, out) = common::openssl_sm2_verify(
            &w.scratch,
            &cert.public_key().unwrap().to_spki_pem(),
            si.signed_attrs.as_ref().unwrap(),
            &si.signature,
            "1234567812345678",
        );
        assert!(good, "OpenSSL rejects the SignedData signature: {out}");
        assert_eq!(si.message_digest.as_deref(), Some(&seald::crypto::sm3(doc)[..]));
    }
    // A P-256 seal makes PKCS#7 SignedData that `openssl cms -verify` accepts as it is.
    let mut app = application(Policy::default());
    app.alg = KeyAlg::P256;
    let p256 = w.registry.lifecycle().apply(&w.admin_a, app).unwrap().id;
    for a in [Action::Approve, Action::Make, Action::Publish] {
        let _ = w.registry.lifecycle().transition(&w.issuer, &p256, a, TransitionRequest::default()).unwrap();
    }
    let _ = w.registry.lifecycle().grant(&w.admin_a, &p256, "app-a").unwrap();
    let der = w.signing.sign_cms(&w.app_a, &p256, doc, false, None).unwrap().der;
    let path = w.scratch.join("p256.p7");
    std::fs::write(&path, &der).unwrap();
    let out_path = w.scratch.join("p256.content");
    let (good, out) = openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        path.to_str().unwrap(),
        "-noverify",
        "-out",
        out_path.to_str().unwrap(),
    ]);
    assert!(good, "openssl cms -verify: {out}");
    assert_eq!(std::fs::read(&out_path).unwrap(), doc);
    assert!(w.registry.verification().verify_cms(&der, None, &none).valid);
}

#[test]
fn a_seal_key_rotates_under_load_without_a_failed_request_or_a_retired_signature() {
    let w = world();
    let seal = w.usable(Policy::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let results = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut activated_seq = 0;
    std::thread::scope(|scope| {
        for i in 0..32 {
            let (w, seal, stop, results) = (&w, &seal, stop.clone(), results.clone());
            let _ = scope.spawn(move || {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let data = format!("doc {i} {n}").into_bytes();
                    let s = w
                        .sign(&w.app_a, seal, &data, None)
                        .unwrap_or_else(|e| panic!("a request failed during rotation: {e}"));
                    results.lock().unwrap().push((data, s.key.version, s.der, s.audit_seq));
                    n += 1;
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let rotated = json(w.registry.dual_control().rotate(&w.secofficer, &format!("seal:{seal}")).unwrap());
        assert_eq!((rotated["version"].as_u64(), rotated["state"].as_str()), (Some(2), Some("pending")));
        assert!(rotated["csr"].as_str().unwrap().contains("CERTIFICATE REQUEST"));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let done = w
            .registry
            .dual_control()
            .activate(&w.secofficer, &format!("seal:{seal}"), 2)
            .unwrap()
            .map(json)
            .expect("seal keys switch at once");
        assert_eq!(done["retired"], 1);
        activated_seq = w.journal.head_seq();
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let s = w.registry.lifecycle().seal(&seal).unwrap();
    let key_of = |v: u32| {
        let pem = &s.versions.iter().find(|x| x.version == v).unwrap().cert_pem;
        seald::formats::x509::Cert::parse(pem.as_bytes()).unwrap().public_key().unwrap()
    };
    let results = results.lock().unwrap();
    let (mut v1, mut v2) = (0, 0);
    for (data, version, der, seq) in results.iter() {
        seald::crypto::verify_message(&key_of(*version), data, der)
            .expect("each signature verifies with the version it names");
        if *seq > activated_seq {
            assert_eq!(*version, 2, "a use after the switch was acknowledged used the retired version");
        }
        if *version == 1 {
            v1 += 1
        } else {
            v2 += 1
        }
    }
    assert!(v1 > 10 && v2 > 10, "signing ran on both sides of the switch ({v1} / {v2})");
    let activation =
        w.journal.query(&Query { action: Some("key.activate".into()), ..Default::default() }).unwrap()[0].seq;
    for r in w
        .journal
        .query(&Query { action: Some("seal.use".into()), object: Some(format!("seal:{seal}")), ..Default::default() })
        .unwrap()
    {
        let version = r.details["key_version"].as_u64().unwrap();
        assert_eq!(
            version,
            if r.seq < activation { 1 } else { 2 },
            "audit order: record {} names version {version}",
            r.seq
        );
    }
    assert_eq!(s.current().unwrap().version, 2);
    assert_eq!(s.versions[0].state, seald::seal::KeyState::Retired);
}

#[test]
fn appliance_keys_and_destruction_need_two_officers_in_time() {
    let w = world_with(SealSettings { dual_control_deadline_s: 2, ..SealSettings::default() });
    let so2 = w.registry.directory().identify(&fp('9'), "CN=so2").unwrap();
    let old_maker = w.registry.pki().seal_maker().unwrap().unwrap();
    let rotated = json(w.registry.dual_control().rotate(&w.secofficer, "seal-maker").unwrap());
    assert_eq!(rotated["version"], 2);
    assert_eq!(
        w.registry.dual_control().rotate(&w.issuer, "seal-maker").unwrap_err().code(),
        "forbidden",
        "wrong role"
    );
    let request = w
        .registry
        .dual_control()
        .activate(&w.secofficer, "seal-maker", 2)
        .unwrap()
        .expect_err("the seal maker needs a second officer");
    assert_eq!(
        w.registry.dual_control().approve_request(&w.secofficer, &request.id).unwrap_err().code(),
        "forbidden",
        "the same officer twice"
    );
    assert_eq!(
        w.registry.dual_control().approve_request(&w.issuer, &request.id).unwrap_err().code(),
        "forbidden",
        "not an officer"
    );
    assert_eq!(w.registry.pki().seal_maker().unwrap().unwrap().key_id, old_maker.key_id, "nothing changed yet");
    let done = w.registry.dual_control().approve_request(&so2, &request.id).unwrap();
    assert_eq!(done.approved_by.as_deref(), Some("so2"));
    let maker = w.registry.pki().seal_maker().unwrap().unwrap();
    assert_eq!((maker.version, maker.retired.len()), (2, 1));
    // Seals made from now on carry the new maker's certificate.
    let id = w.seal_in(SealState::Made, Policy::default());
    let der = w.registry.lifecycle().seal_ses(&w.issuer, &id).unwrap();
    let ses = seald::formats::ses::SesSeal::parse(&der).unwrap();
    assert_eq!(seald::formats::x509::Cert::parse(maker.cert_pem.as_bytes()).unwrap().der(), &ses.maker_cert[..]);
    assert!(w
        .registry
        .verification()
        .verify_ses_seal(&der, None, &Default::default())
        .steps
        .iter()
        .any(|s| s.step == "maker_signature" && s.ok == Some(true)));

    // Destroying the retired maker key: two officers again; the key is then gone from the token.
    assert_eq!(
        w.registry.dual_control().request_destroy(&w.secofficer, "seal-maker", 2).unwrap_err().code(),
        "key_active"
    );
    let destroy = w.registry.dual_control().request_destroy(&so2, "seal-maker", 1).unwrap();
    let _ = w.registry.dual_control().approve_request(&w.secofficer, &destroy.id).unwrap();
    let pool = TokenPool::open(&w._token.config()).unwrap();
    let gone = pool.key(&seald::token::KeyId::from_hex(&old_maker.key_id).unwrap());
    assert!(gone.is_err(), "the destroyed version is no longer in the token");

    // A request not approved in time expires.
    let rotated = json(w.registry.dual_control().rotate(&w.secofficer, "issuing-ca").unwrap());
    let late = w
        .registry
        .dual_control()
        .activate(&w.secofficer, "issuing-ca", rotated["version"].as_u64().unwrap() as u32)
        .unwrap()
        .unwrap_err();
    std::thread::sleep(std::time::Duration::from_millis(2200));
    assert_eq!(w.registry.dual_control().approve_request(&so2, &late.id).unwrap_err().code(), "request_expired");
    // Every step is in the journal, refusals included.
    let actions: Vec<String> = w
        .journal
        .query(&Query::default())
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {}", r.action, r.outcome))
        .collect();
    for a in [
        "key.rotate ok",
        "key.request ok",
        "key.approve ok",
        "key.approve refused:forbidden",
        "key.approve refused:request_expired",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} is journalled");
    }
    let listed: Vec<_> = w.registry.dual_control().key_list(&w.auditor).unwrap().into_iter().map(json).collect();
    assert!(listed.iter().any(
        |k| k["key"] == "seal-maker" && k["versions"].as_array().unwrap().iter().any(|v| v["state"] == "destroyed")
    ));
}

#[test]
fn the_token_pin_changes_only_with_two_officers_and_signing_goes_on() {
    let w = world();
    let so2 = w.registry.directory().identify(&fp('9'), "CN=so2").unwrap();
    let seal = w.usable(Policy::default());
    let old_pin = std::fs::read_to_string(&w._token.pin_file).unwrap();
    let new_pin = seald::token::Pin::from_text("a-new-pin-8421").unwrap();
    assert!(seald::token::Pin::from_text("123").is_err(), "too short");
    assert_eq!(
        w.registry
            .dual_control()
            .request_pin_change(&w.issuer, seald::token::Pin::from_text("abcd1234").unwrap())
            .unwrap_err()
            .code(),
        "forbidden"
    );
    // A PIN with a control character, or too short, is refused with a message that says why and
    // never shows it.
    for (bad, why) in
        [("abc\0defg", "control character"), ("abcd\nefgh", "control character"), ("ab1", "shorter than 4")]
    {
        let e = seald::token::Pin::from_text(bad).unwrap_err().to_string();
        assert!(e.contains(why) && !e.contains(bad.trim_end()), "{bad:?}: {e}");
    }
    let r = w.registry.dual_control().request_pin_change(&w.secofficer, new_pin).unwrap();
    // One PIN change waits at a time (each holds a PIN in memory).
    let second = seald::token::Pin::from_text("another-pin-77").unwrap();
    let e = w.registry.dual_control().request_pin_change(&so2, second).unwrap_err();
    assert_eq!(e.code(), "pin_change_pending", "{e}");
    assert!(
        !serde_json::to_string(&w.registry.dual_control().requests(&w.auditor).unwrap()).unwrap().contains("a-new-pin"),
        "the PIN is never stored"
    );
    assert_eq!(w.registry.dual_control().approve_request(&w.secofficer, &r.id).unwrap_err().code(), "forbidden");
    assert_eq!(std::fs::read_to_string(&w._token.pin_file).unwrap(), old_pin, "nothing changed yet");
    let _ = w.registry.dual_control().approve_request(&so2, &r.id).unwrap();
    assert_eq!(std::fs::read_to_string(&w._token.pin_file).unwrap(), "a-new-pin-8421", "the PIN file follows");
    // The running pool signs on. Another process (this one is logged in already) logs in with the
    // new PIN and is refused with the old one.
    let _ = w.sign(&w.app_a, &seal, b"after the change", None).unwrap();
    let stale = w._token.scratch("old.pin");
    std::fs::write(&stale, &old_pin).unwrap();
    let login = |pin: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sealctl"))
            .args(["token", "info", "--module", w._token.module.to_str().unwrap(), "--token", &w._token.label])
            .arg("--pin-file")
            .arg(pin)
            .output()
            .unwrap()
    };
    assert!(login(&w._token.pin_file).status.success(), "the new PIN logs in");
    let refused = login(&stale);
    assert!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("pin"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let journal: Vec<String> =
        w.journal.query(&Query::default()).unwrap().into_iter().map(|r| serde_json::to_string(&r).unwrap()).collect();
    assert!(!journal.iter().any(|r| r.contains("a-new-pin")), "the PIN is never journalled");
}

#[test]
fn the_audit_key_rotates_with_two_officers_and_the_chain_verifies_from_the_first_key() {
    let w = world();
    let so2 = w.registry.directory().identify(&fp('9'), "CN=so2").unwrap();
    let first = w.journal.public_key().unwrap();
    let rotated = json(w.registry.dual_control().rotate(&w.secofficer, "audit").unwrap());
    let next = seald::crypto::PublicKey::from_spki_pem(rotated["public_key"].as_str().unwrap()).unwrap();
    let request = w
        .registry
        .dual_control()
        .activate(&w.secofficer, "audit", 2)
        .unwrap()
        .expect_err("the audit key needs a second officer");
    assert_eq!(w.registry.dual_control().approve_request(&w.secofficer, &request.id).unwrap_err().code(), "forbidden");
    let _ = w.registry.dual_control().approve_request(&so2, &request.id).unwrap();
    // The journal goes on, now signed by the new key; verification starts from the first key.
    let _ = w.seal_in(SealState::Active, Policy::default());
    let head = w.journal.checkpoint().unwrap().expect("records to cover");
    assert_eq!(head.key_fingerprint, next.fingerprint());
    let report = seald::audit::verify_journal_dir(w.journal.dir(), Some(&first)).unwrap();
    assert!(report.ok() && report.checkpoints >= 2, "{report:?}");
    let change =
        w.journal.query(&Query { action: Some(seald::audit::KEY_CHANGE_ACTION.into()), ..Default::default() }).unwrap();
    assert_eq!(change.len(), 1);
    assert_eq!(change[0].details["requested_by"], "so");
    let listed: Vec<_> = w.registry.dual_control().key_list(&w.auditor).unwrap().into_iter().map(json).collect();
    let audit = listed.iter().find(|k| k["key"] == "audit").unwrap();
    let states: Vec<_> = audit["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_u64().unwrap(), v["state"].as_str().unwrap().to_string()))
        .collect();
    assert!(states.contains(&(2, "active".into())) && states.contains(&(1, "retired".into())), "{states:?}");
}

/// 三员分立, enforced: a change to an administrator's account waits for an administrator of another
/// role (not the account changed); no account changes itself; the last account of each administrator
/// role stays; no certificate or subject belongs to administrators of two roles. Role × operation.
#[test]
fn the_three_administrators_hold_each_other_in_check() {
    use seald::seal::{AccountChange, AccountUpdate};
    let w = world();
    let r = &w.registry;
    let so2 = r.directory().identify(&fp('9'), "CN=so2").unwrap();
    let admin_spec = |name: &str, role: Role, f: String| AccountSpec {
        name: name.into(),
        role,
        unit: None,
        fingerprints: vec![f],
        certificates: vec![],
        keys: vec![],
    };
    let awaiting = |c: AccountChange| match c {
        AccountChange::AwaitingApproval(r) => r.id,
        AccountChange::Done(a) => panic!("{} changed without a second administrator", a.name),
    };
    let fingerprints = |name: &str| r.directory().account(name).unwrap().unwrap().fingerprints;

    // The system administrator binds its own certificate to the auditor: refused outright.
    let own = AccountUpdate { fingerprints: Some(vec![fp('1')]), ..Default::default() };
    assert_eq!(code(&r.directory().update_account(&w.sysadmin, "au", own).unwrap_err()), "fingerprint_in_use");
    // ... or a new one: only a request, the auditor's certificate is unchanged until another role agrees.
    let rebind = AccountUpdate { fingerprints: Some(vec![fp('a')]), ..Default::default() };
    let req = awaiting(r.directory().update_account(&w.sysadmin, "au", rebind).unwrap());
    assert_eq!(fingerprints("au"), vec![fp('3')]);
    assert!(r.directory().identify(&fp('a'), "CN=x").is_none());
    assert_eq!(
        code(&r.dual_control().approve_request(&w.sysadmin, &req).unwrap_err()),
        "forbidden",
        "not by who asked"
    );
    assert_eq!(
        code(&r.dual_control().approve_request(&w.auditor, &req).unwrap_err()),
        "forbidden",
        "not by its target"
    );
    let done = r.dual_control().approve_request(&w.secofficer, &req).unwrap();
    assert_eq!(done.approved_by.as_deref(), Some("so"));
    assert_eq!(fingerprints("au"), vec![fp('a')]);
    let auditor = r.directory().identify(&fp('a'), "CN=au").unwrap();
    assert_eq!(code(&r.dual_control().approve_request(&w.secofficer, &req).unwrap_err()), "request_done");

    // The only auditor can be neither disabled nor demoted: refused at once ...
    for up in [
        AccountUpdate { disabled: Some(true), ..Default::default() },
        AccountUpdate { role: Some(Role::Issuer), ..Default::default() },
    ] {
        let before = w.refusals_by("sa").len();
        assert_eq!(code(&r.directory().update_account(&w.sysadmin, "au", up).unwrap_err()), "last_administrator");
        assert_eq!(w.refusals_by("sa").len(), before + 1, "the refusal is journalled");
    }
    // ... and at approval, against the accounts as they are then: with two auditors, two requests
    // to disable one each may be opened, but only one may be carried out.
    let req = awaiting(r.directory().create_account(&w.sysadmin, admin_spec("au3", Role::Auditor, fp('f'))).unwrap());
    let _ = r.dual_control().approve_request(&w.secofficer, &req).unwrap();
    let off = || AccountUpdate { disabled: Some(true), ..Default::default() };
    let first = awaiting(r.directory().update_account(&w.sysadmin, "au", off()).unwrap());
    let second = awaiting(r.directory().update_account(&w.sysadmin, "au3", off()).unwrap());
    let _ = r.dual_control().approve_request(&w.secofficer, &second).unwrap();
    let before = w.refusals_by("so").len();
    assert_eq!(code(&r.dual_control().approve_request(&w.secofficer, &first).unwrap_err()), "last_administrator");
    assert_eq!(w.refusals_by("so").len(), before + 1, "the refusal is journalled");
    assert!(r.directory().identify(&fp('a'), "CN=au").is_some_and(|p| p.role == Role::Auditor));

    // No account changes itself, in any way.
    for (p, name) in [(&w.sysadmin, "sa"), (&so2, "so2")] {
        let up = AccountUpdate { fingerprints: Some(vec![fp('b')]), ..Default::default() };
        assert_eq!(code(&r.directory().update_account(p, name, up).unwrap_err()), "forbidden", "{name} changed itself");
    }

    // A second sysadmin, agreed by the security officer; then one sysadmin's request is not approved by
    // the other (same role), and a request to change an officer is not approved by that officer.
    let req = awaiting(r.directory().create_account(&w.sysadmin, admin_spec("sa2", Role::Sysadmin, fp('c'))).unwrap());
    let _ = r.dual_control().approve_request(&w.secofficer, &req).unwrap();
    let sa2 = r.directory().identify(&fp('c'), "CN=sa2").unwrap();
    let up = AccountUpdate { fingerprints: Some(vec![fp('d')]), ..Default::default() };
    let req = awaiting(r.directory().update_account(&w.sysadmin, "so", up).unwrap());
    assert_eq!(code(&r.dual_control().approve_request(&sa2, &req).unwrap_err()), "forbidden", "same role");
    assert_eq!(code(&r.dual_control().approve_request(&w.secofficer, &req).unwrap_err()), "forbidden", "its target");
    let _ = r.dual_control().approve_request(&so2, &req).unwrap();
    let secofficer = r.directory().identify(&fp('d'), "CN=so").unwrap();
    // The security officer may ask for a sysadmin's change (a lost certificate); a sysadmin agrees.
    let up = AccountUpdate { fingerprints: Some(vec![fp('e')]), ..Default::default() };
    let req = awaiting(r.directory().update_account(&secofficer, "sa2", up).unwrap());
    assert_eq!(code(&r.dual_control().approve_request(&so2, &req).unwrap_err()), "forbidden", "same role as who asked");
    let _ = r.dual_control().approve_request(&w.sysadmin, &req).unwrap();
    assert!(r.directory().identify(&fp('e'), "CN=sa2").is_some());

    // A certificate subject belongs to administrators of one role only.
    let ca = seald::devpki::DevCa::new("subjects CA").unwrap();
    let (one, two) = (ca.client("zhang san", 1, -1, 30).unwrap(), ca.client("zhang san", 2, -1, 30).unwrap());
    let with_cert = |name: &str, role: Role, pem: &str| AccountSpec {
        name: name.into(),
        role,
        unit: None,
        fingerprints: vec![],
        certificates: vec![pem.to_string()],
        keys: vec![],
    };
    let req =
        awaiting(r.directory().create_account(&w.sysadmin, with_cert("au2", Role::Auditor, &one.cert_pem)).unwrap());
    let _ = r.dual_control().approve_request(&secofficer, &req).unwrap();
    let same = with_cert("so3", Role::Secofficer, &two.cert_pem);
    assert_eq!(code(&r.directory().create_account(&w.sysadmin, same).unwrap_err()), "forbidden");
    // (an account of a non-administrator role may carry it: it holds no administrator's power)
    let issuer2 = AccountSpec { unit: None, ..with_cert("issuer2", Role::Issuer, &two.cert_pem) };
    assert!(matches!(r.directory().create_account(&w.sysadmin, issuer2).unwrap(), AccountChange::Done(_)));
    // ... but it cannot become a security officer.
    let promote = AccountUpdate { role: Some(Role::Secofficer), ..Default::default() };
    assert_eq!(code(&r.directory().update_account(&w.sysadmin, "issuer2", promote).unwrap_err()), "forbidden");
    let issuer3 = AccountSpec { role: Role::Issuer, ..admin_spec("issuer3", Role::Issuer, fp('0')) };
    assert!(matches!(r.directory().create_account(&w.sysadmin, issuer3).unwrap(), AccountChange::Done(_)));

    // An old request cannot undo a later change: asked to disable au2, then au2's certificate is
    // replaced; the first request is stale.
    let off = awaiting(
        r.directory()
            .update_account(&w.sysadmin, "au2", AccountUpdate { disabled: Some(true), ..Default::default() })
            .unwrap(),
    );
    let rebind = awaiting(
        r.directory()
            .update_account(
                &w.sysadmin,
                "au2",
                AccountUpdate { fingerprints: Some(vec![format!("{:064x}", 0xabcdef)]), ..Default::default() },
            )
            .unwrap(),
    );
    let _ = r.dual_control().approve_request(&secofficer, &rebind).unwrap();
    assert_eq!(code(&r.dual_control().approve_request(&secofficer, &off).unwrap_err()), "request_stale");

    // Role × operation on administrators' accounts.
    let roles: Vec<(&str, &Principal)> = vec![
        ("sysadmin", &w.sysadmin),
        ("secofficer", &secofficer),
        ("auditor", &auditor),
        ("issuer", &w.issuer),
        ("unit_admin", &w.admin_a),
        ("app", &w.app_a),
    ];
    let n = std::cell::Cell::new(0u32);
    let fresh = |role: Role| {
        n.set(n.get() + 1);
        let name = format!("x{}", n.get());
        let req = awaiting(
            r.directory()
                .create_account(&w.sysadmin, admin_spec(&name, role, format!("{:064x}", 0xf000 + n.get())))
                .unwrap(),
        );
        let _ = r.dual_control().approve_request(&secofficer, &req).unwrap();
        name
    };
    type Op<'a> = (&'a str, &'a [&'a str], Box<dyn Fn(&Principal) -> Result<AccountChange, SealError> + 'a>);
    let ops: Vec<Op> = vec![
        (
            "create an administrator",
            &["sysadmin"],
            Box::new(|p| {
                n.set(n.get() + 1);
                r.directory().create_account(
                    p,
                    admin_spec(&format!("y{}", n.get()), Role::Auditor, format!("{:064x}", 0xe000 + n.get())),
                )
            }),
        ),
        (
            "bind a certificate to an administrator",
            &["sysadmin", "secofficer"],
            Box::new(|p| {
                let name = fresh(Role::Auditor);
                let up = AccountUpdate {
                    fingerprints: Some(vec![format!("{:064x}", 0xd000 + n.get())]),
                    ..Default::default()
                };
                r.directory().update_account(p, &name, up)
            }),
        ),
        (
            "disable an administrator",
            &["sysadmin", "secofficer"],
            Box::new(|p| {
                let name = fresh(Role::Sysadmin);
                r.directory().update_account(p, &name, AccountUpdate { disabled: Some(true), ..Default::default() })
            }),
        ),
        (
            "make an issuer an administrator",
            &["sysadmin", "secofficer"],
            Box::new(|p| {
                r.directory().update_account(
                    p,
                    "issuer3",
                    AccountUpdate { role: Some(Role::Secofficer), ..Default::default() },
                )
            }),
        ),
    ];
    for (op, allowed, run) in &ops {
        for (name, p) in &roles {
            let before = w.refusals_by(&p.account).len();
            match run(p) {
                Ok(change) => {
                    assert!(allowed.contains(name), "{name} must not {op}");
                    let _ = awaiting(change);
                }
                Err(e) => {
                    assert!(!allowed.contains(name), "{name} may {op}, but got {e:?}");
                    assert_eq!(code(&e), "forbidden", "{name} {op}");
                    assert_eq!(w.refusals_by(&p.account).len(), before + 1, "{name}'s refused {op} is journalled");
                }
            }
        }
    }
    // Who approves a sysadmin's request: an administrator of another role, nobody else.
    for (name, p) in &roles {
        let target = fresh(Role::Auditor);
        let req = awaiting(
            r.directory()
                .update_account(&w.sysadmin, &target, AccountUpdate { disabled: Some(true), ..Default::default() })
                .unwrap(),
        );
        let outcome = r.dual_control().approve_request(p, &req);
        match *name {
            "secofficer" | "auditor" => assert!(outcome.is_ok(), "{name} may approve: {outcome:?}"),
            _ => assert_eq!(code(&outcome.unwrap_err()), "forbidden", "{name} must not approve"),
        }
    }
}

/// A token that is down is the token's fault: 503 `token_unavailable` on every signing product and
/// on a seal's CSR, never a client error; the documented code for a signature that fails host
/// verification is the same on every path.
#[test]
fn a_token_failure_has_one_code_on_every_path() {
    let w = world();
    let seal = w.usable(Policy::default());
    let hash = seald::crypto::sm3(b"a document");
    w._token.set_fault("removed\n");
    std::thread::sleep(std::time::Duration::from_millis(150));
    let cms = w.signing.sign_cms(&w.app_a, &seal, b"a document", false, None).unwrap_err();
    assert_eq!(sign_code(&cms), "token_unavailable", "{cms}");
    let ses = w.signing.sign_ses(&w.app_a, &seal, &hash, "/doc.ofd", &[], Default::default()).unwrap_err();
    assert_eq!(sign_code(&ses), "token_unavailable", "{ses}");
    let csr = w.registry.lifecycle().seal_csr(&w.issuer, &seal).unwrap_err();
    assert_eq!(code(&csr), "token_unavailable", "{csr}");
    w._token.set_fault("corrupt\n");
    std::thread::sleep(std::time::Duration::from_millis(150));
    for e in [
        w.signing.sign_cms(&w.app_a, &seal, b"a document", false, None).unwrap_err(),
        w.signing.sign_ses(&w.app_a, &seal, &hash, "/doc.ofd", &[], Default::default()).unwrap_err(),
        w.sign(&w.app_a, &seal, b"a document", None).unwrap_err(),
    ] {
        assert_eq!(sign_code(&e), "token_signature_mismatch", "{e}");
    }
    w._token.set_fault("");
}

/// Verification fails closed: a signature checked without its document is `signature_only`, not
/// valid, and the answer names the checks that did not run.
#[test]
fn a_signature_verified_without_its_document_is_not_valid() {
    let w = world();
    let seal = w.usable(Policy::default());
    let doc = b"the document";
    let none = seald::formats::x509::TrustStore::default();
    let sig =
        w.signing.sign_ses(&w.app_a, &seal, &seald::crypto::sm3(doc), "/doc.ofd", &[], Default::default()).unwrap().der;
    let with = w.registry.verification().verify_ses(&sig, Some(seald::crypto::sm3(doc)), &none);
    assert_eq!((with.verdict, with.valid), ("valid", true), "{with:#?}");
    let without = w.registry.verification().verify_ses(&sig, None, &none);
    assert_eq!((without.verdict, without.valid), ("signature_only", false), "{without:#?}");
    assert!(without.not_run.contains(&"data_hash"));
    let answer = serde_json::to_value(&without).unwrap();
    assert_eq!((answer["valid"].as_bool(), answer["verdict"].as_str()), (Some(false), Some("signature_only")));
    let cms = w.signing.sign_cms(&w.app_a, &seal, doc, true, None).unwrap().der;
    let detached = w.registry.verification().verify_cms(&cms, None, &none);
    assert_eq!((detached.verdict, detached.valid), ("signature_only", false), "{detached:#?}");
    let wrong = w.registry.verification().verify_cms(&cms, Some(b"another"), &none);
    assert_eq!(wrong.verdict, "invalid");
    assert_eq!(w.registry.verification().verify_cms(&cms, Some(doc), &none).verdict, "valid");
    // Attached content and another document given: about the document given, not valid.
    let attached = w.signing.sign_cms(&w.app_a, &seal, doc, false, None).unwrap().der;
    assert_eq!(w.registry.verification().verify_cms(&attached, Some(doc), &none).verdict, "valid");
    assert_eq!(w.registry.verification().verify_cms(&attached, Some(b"another"), &none).verdict, "invalid");
}

/// The seal list pages by id: pages chain through their cursors to exactly the seals the account
/// may see, filters hold on every page, and a made-up cursor is refused with its own code.
#[test]
fn the_seal_list_pages_by_id_and_each_account_sees_its_part() {
    let w = world();
    let mut ids: Vec<String> = (0..7).map(|_| w.seal_in(SealState::Applied, Policy::default())).collect();
    let active = w.seal_in(SealState::Active, Policy::default());
    ids.push(active.clone());
    ids.sort();
    let walk = |p: &seald::authz::Principal, state: Option<SealState>, limit: usize| {
        let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let (page, next) =
                w.registry.lifecycle().list_seals_page(p, (state, None, None), cursor.as_deref(), limit).unwrap();
            pages += 1;
            assert!(page.len() <= limit);
            seen.extend(page.into_iter().map(|s| s.id));
            match next {
                Some(c) => cursor = Some(c),
                None => return (seen, pages),
            }
        }
    };
    let (seen, pages) = walk(&w.issuer, None, 3);
    assert_eq!(seen, ids, "every seal once, by id");
    assert!((3..=4).contains(&pages), "{pages} pages of 3 for 8 seals");
    let (only_active, _) = walk(&w.issuer, Some(SealState::Active), 2);
    assert_eq!(only_active, vec![active.clone()]);
    // A state's list (through the seal-state index) pages like the whole list, for every reader,
    // and follows transitions.
    let applied: Vec<String> = ids.iter().filter(|i| **i != active).cloned().collect();
    for limit in [1, 2, 5] {
        assert_eq!(walk(&w.issuer, Some(SealState::Applied), limit).0, applied);
        assert_eq!(walk(&w.admin_a, Some(SealState::Applied), limit).0, applied);
    }
    assert!(walk(&w.admin_b, Some(SealState::Applied), 2).0.is_empty());
    let _ = w.registry.lifecycle().transition(&w.issuer, &applied[0], Action::Approve, Default::default()).unwrap();
    assert_eq!(walk(&w.issuer, Some(SealState::Applied), 2).0, applied[1..].to_vec());
    assert_eq!(walk(&w.issuer, Some(SealState::Approved), 2).0, vec![applied[0].clone()]);
    let (counts, complete) = w.registry.lifecycle().state_counts(&w.admin_a, 1000).unwrap();
    assert!(complete);
    assert_eq!((counts[0], counts[1], counts[4]), (6, 1, 1), "applied, approved, active");
    assert_eq!(w.registry.lifecycle().state_counts(&w.admin_b, 1000).unwrap().0, [0; 7]);
    // Unit b's administrator sees none of unit a's seals, on any page.
    assert!(walk(&w.admin_b, None, 2).0.is_empty());
    let all = w.registry.lifecycle().list_seals(&w.issuer, None, None, None).unwrap();
    assert_eq!(all.len(), ids.len());
    let bad = w.registry.lifecycle().list_seals_page(&w.issuer, (None, None, None), Some("not hex"), 10).unwrap_err();
    assert_eq!(code(&bad), "bad_cursor");
}

#[test]
fn grants_units_keys_and_an_applications_usage_page_by_key() {
    let w = world();
    let one = w.usable(Policy::default());
    let two = w.usable(Policy::default());
    // More applications in unit a, granted the first seal only.
    for (name, c) in [("app-a2", 'c'), ("app-a3", 'd')] {
        let spec = AccountSpec {
            name: name.into(),
            role: Role::App,
            unit: Some("a".into()),
            fingerprints: vec![fp(c)],
            certificates: vec![],
            keys: vec![],
        };
        let _ = w.registry.directory().create_account(&w.sysadmin, spec).unwrap().done().unwrap();
        let _ = w.registry.lifecycle().grant(&w.admin_a, &one, name).unwrap();
    }
    // Grants: by account, a page of 2 then 1, and none of the other seal's.
    let (page, next) = w.registry.lifecycle().grants_page(&one, None, 2).unwrap();
    assert_eq!(page.iter().map(|g| g.account.as_str()).collect::<Vec<_>>(), ["app-a", "app-a2"]);
    let (rest, end) = w.registry.lifecycle().grants_page(&one, next.as_deref(), 2).unwrap();
    assert_eq!(rest.iter().map(|g| g.account.as_str()).collect::<Vec<_>>(), ["app-a3"]);
    assert!(end.is_none());
    assert_eq!(w.registry.lifecycle().grants(&two).unwrap().len(), 1);
    // Units: every unit once, by id, in pages of 2; applications may not list them.
    let mut units = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = w.registry.directory().units_page(&w.issuer, cursor.as_deref(), 2).unwrap();
        assert!(page.len() <= 2);
        units.extend(page.into_iter().map(|u| u.id));
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(units, ["a", "b", "gov"]);
    assert_eq!(code(&w.registry.directory().units_page(&w.app_a, None, 2).unwrap_err()), "forbidden");
    // Keys: the appliance keys first, then every seal's key once, by seal id, whatever the page size.
    let all: Vec<String> = w.registry.dual_control().key_list(&w.auditor).unwrap().into_iter().map(|k| k.key).collect();
    for limit in [1, 2, 5] {
        let (mut seen, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let (page, next) = w.registry.dual_control().key_list_page(&w.auditor, cursor.as_deref(), limit).unwrap();
            seen.extend(page.into_iter().map(|k| k.key));
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, all, "pages of {limit}");
    }
    assert!(all.contains(&format!("seal:{one}")) && all.contains(&format!("seal:{two}")));
    let mut seals: Vec<&String> = all.iter().filter(|k| k.starts_with("seal:")).collect();
    let listed = seals.clone();
    seals.sort();
    assert_eq!(listed, seals, "seal keys by seal id");
    // An application's usage spans its seals, names each, and is its own and its unit's business.
    let _ = w.sign(&w.app_a, &one, b"first", None).unwrap();
    let _ = w.sign(&w.app_a, &two, b"second", None).unwrap();
    let u = w.registry.uses().account_usage_page(&w.app_a, "app-a", None, false, 10).unwrap();
    let seals_used: Vec<_> = u.usage.iter().map(|e| e.seal.clone().unwrap()).collect();
    assert_eq!(seals_used, [one.clone(), two.clone()]);
    assert!(u.usage.iter().all(|e| e.account == "app-a" && e.outcome == "ok"));
    let newest = w.registry.uses().account_usage_page(&w.admin_a, "app-a", None, true, 1).unwrap();
    assert_eq!(newest.usage[0].seal.as_deref(), Some(two.as_str()));
    assert!(newest.next_cursor.is_some());
    assert!(w.registry.uses().account_usage_page(&w.auditor, "app-a", None, false, 10).is_ok());
    for p in [&w.app_b, &w.admin_b] {
        let e = w.registry.uses().account_usage_page(p, "app-a", None, false, 10).unwrap_err();
        assert_eq!(code(&e), "forbidden");
    }
    let e = w.registry.uses().account_usage_page(&w.auditor, "nobody", None, false, 10).unwrap_err();
    assert_eq!(code(&e), "unknown_account");
}

#[test]
fn a_person_of_the_unit_seals_by_hand_once_another_administrator_grants_it() {
    let w = world();
    let id = w.seal_in(SealState::Active, Policy::default());
    let spec = AccountSpec {
        name: "admin-a2".into(),
        role: Role::UnitAdmin,
        unit: Some("a".into()),
        fingerprints: vec![fp('e')],
        certificates: vec![],
        keys: vec![],
    };
    let _ = w.registry.directory().create_account(&w.sysadmin, spec).unwrap().done().unwrap();
    let clerk = w.registry.directory().identify(&fp('e'), "CN=clerk").unwrap();
    // No grant, no use: a person is held to the gate like an application.
    let refused = w.sign(&clerk, &id, b"by hand", None).unwrap_err();
    assert_eq!(sign_code(&refused), "no_grant");
    // Four eyes: an administrator does not grant a seal to themselves; nor to a person of another unit.
    let own = w.registry.lifecycle().grant(&w.admin_a, &id, "admin-a").unwrap_err();
    assert_eq!(code(&own), "bad_input");
    let other = w.registry.lifecycle().grant(&w.admin_a, &id, "admin-b").unwrap_err();
    assert_eq!(code(&other), "bad_input");
    // Granted by another administrator of the unit, the person seals, and the use is theirs.
    let _ = w.registry.lifecycle().grant(&w.admin_a, &id, "admin-a2").unwrap();
    let signed = w.sign(&clerk, &id, b"by hand", None).unwrap();
    let usage = w.registry.uses().usage(&w.admin_a, &id).unwrap();
    let last = usage.last().unwrap();
    assert_eq!((last.account.as_str(), last.outcome.as_str(), last.seq), ("admin-a2", "ok", signed.audit_seq));
    // Nor does anyone approve their own use: a ticket for the clerk comes from another administrator.
    let own_ticket = TicketRequest { app: "admin-a2".into(), digest: "ab".repeat(32), valid_s: None };
    let refused = w.registry.uses().issue_ticket(&clerk, &id, own_ticket.clone()).unwrap_err();
    assert_eq!(code(&refused), "forbidden");
    let _ = w.registry.uses().issue_ticket(&w.admin_a, &id, own_ticket).unwrap();
    assert!(
        w.registry.uses().holds_grant(&clerk, &id).unwrap() && !w.registry.uses().holds_grant(&w.admin_a, &id).unwrap()
    );
    // A freeze stops the person as it stops an application.
    let _ = w.registry.lifecycle().transition(&w.issuer, &id, Action::Freeze, Default::default()).unwrap();
    assert_eq!(sign_code(&w.sign(&clerk, &id, b"by hand", None).unwrap_err()), "seal_frozen");
}

#[test]
fn text_that_terminals_would_run_and_pictures_that_would_run_are_refused() {
    let w = world();
    // Control characters (a terminal's escape sequences) in a unit's name, a reason, a reference.
    let unit = UnitSpec { id: "ctrl".into(), name: "u\u{1b}[31m".into(), parent: None };
    assert_eq!(code(&w.registry.directory().create_unit(&w.sysadmin, unit).unwrap_err()), "bad_input");
    let id = w.seal_in(SealState::Applied, Policy::default());
    let reason = TransitionRequest { reason: Some("r\u{1b}[2J\u{7}".into()), ..Default::default() };
    let refused = w.registry.lifecycle().transition(&w.issuer, &id, Action::Reject, reason).unwrap_err();
    assert_eq!(code(&refused), "bad_input");
    let made = w.seal_in(SealState::Made, Policy::default());
    let filing = w.registry.filings().filings(&w.issuer, None).unwrap().into_iter().find(|f| f.filing.seal == made);
    let filing = filing.expect("the made seal's filing").filing.id;
    let ack = w.registry.filings().ack_filing(&w.issuer, &filing, Some("a\u{1b}\u{1}".into())).unwrap_err();
    assert_eq!(code(&ack), "bad_input");
    let _ = w.registry.filings().ack_filing(&w.issuer, &filing, Some("GA-2026-0001".into())).unwrap();
    // An SVG picture that would run something, in any viewer, is not a picture.
    for svg in [
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
        "<svg xmlns=\"http://www.w3.org/2000/svg\" onload = \"alert(1)\"><circle r=\"5\"/></svg>",
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><a href=\"javascript:alert(1)\"><circle r=\"5\"/></a></svg>",
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><foreignObject><p>x</p></foreignObject></svg>",
    ] {
        let req =
            ApplyRequest { image: svg.as_bytes().to_vec(), image_type: "svg".into(), ..application(Policy::default()) };
        assert_eq!(code(&w.registry.lifecycle().apply(&w.admin_a, req).unwrap_err()), "bad_input", "{svg}");
    }
    let plain = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"40\"><circle r=\"5\" fill=\"red\"/><text>online</text></svg>";
    let req =
        ApplyRequest { image: plain.as_bytes().to_vec(), image_type: "svg".into(), ..application(Policy::default()) };
    let _ = w.registry.lifecycle().apply(&w.admin_a, req).unwrap();
}
