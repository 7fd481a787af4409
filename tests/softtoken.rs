//! The SM2 path through the real PKCS#11 C interface: seald's token layer on softtoken, under its own
//! profile and imitating Sansec (raw r||s) and TASS (DER, also for ECDSA). OpenSSL 3 checks the SM2
//! signatures. Also: keys surviving a reload, corrupt key files, device loss under load, thread
//! safety, PIN rules, and a token that returns a wrong signature.
//!
//! Each test has its own softtoken (a copy of the module with its settings beside it), so they run
//! side by side under `cargo test` as well as under `cargo nextest`.

mod common;

use common::{openssl_sm2_verify, SoftToken};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use seald::crypto::{self, KeyAlg, PublicKey};
use seald::token::{Health, KeyInfo, SignInput, TokenError, TokenPool};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEFAULT_ID: &str = "1234567812345678";

fn sm2_pem(k: &KeyInfo) -> String {
    k.public_key.to_spki_pem()
}

/// Every SM2 sign mode the token layer offers, checked by OpenSSL over what the mode claims.
fn sm2_interop(profile: &str) {
    let t = SoftToken::new(profile);
    let pool = TokenPool::open(&t.config()).unwrap();
    let key = pool.generate(KeyAlg::Sm2, "seal-key").unwrap();
    assert_eq!(key.alg, KeyAlg::Sm2);
    let attrs = pool.attributes(&key.id).unwrap();
    assert!(attrs.sensitive && !attrs.extractable && attrs.never_extractable, "{attrs:?}");
    let message = "电子印章 signed by seald through PKCS#11".as_bytes();

    // Message: the host computes Z and e.
    let sig = pool.sign(&key.id, SignInput::Message { data: message, user_id: None }).unwrap();
    assert_eq!(sig.raw.len(), 64);
    assert_eq!(crypto::der_to_raw(&sig.der, 32).unwrap(), sig.raw);
    let PublicKey::Sm2(pk) = &key.public_key else { panic!("not SM2") };
    assert_eq!(sig.prehash, crypto::sm2::e(pk, DEFAULT_ID.as_bytes(), message).unwrap());
    let (ok, out) = openssl_sm2_verify(&t.dir, &sm2_pem(&key), message, &sig.der, DEFAULT_ID);
    assert!(ok, "{profile}: OpenSSL rejected our SM2 signature: {out}");

    // The oracle can say no: a changed message or a changed signature fails.
    let (ok, _) = openssl_sm2_verify(&t.dir, &sm2_pem(&key), b"another message", &sig.der, DEFAULT_ID);
    assert!(!ok, "OpenSSL accepted a signature over another message");
    let mut bad = sig.der.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let (ok, _) = openssl_sm2_verify(&t.dir, &sm2_pem(&key), message, &bad, DEFAULT_ID);
    assert!(!ok, "OpenSSL accepted a corrupted signature");

    // Prehashed: the caller computed e itself.
    let e = crypto::sm2::e(pk, DEFAULT_ID.as_bytes(), message).unwrap();
    let sig = pool.sign(&key.id, SignInput::Prehashed(&e)).unwrap();
    let (ok, out) = openssl_sm2_verify(&t.dir, &sm2_pem(&key), message, &sig.der, DEFAULT_ID);
    assert!(ok, "{profile}: prehashed e: {out}");

    // A configurable signer ID.
    let id = "ALICE123@YAHOO.COM";
    let sig = pool.sign(&key.id, SignInput::Message { data: message, user_id: Some(id.as_bytes()) }).unwrap();
    let (ok, out) = openssl_sm2_verify(&t.dir, &sm2_pem(&key), message, &sig.der, id);
    assert!(ok, "{profile}: distid {id}: {out}");
    let (ok, _) = openssl_sm2_verify(&t.dir, &sm2_pem(&key), message, &sig.der, DEFAULT_ID);
    assert!(!ok, "a signature under another ID must not verify under the default one");

    // P-256 on the same token, in the profile's ECDSA output format.
    let ec = pool.generate(KeyAlg::P256, "ec-key").unwrap();
    let digest = crypto::sha256(message);
    let sig = pool.sign(&ec.id, SignInput::Prehashed(&digest)).unwrap();
    let (ok, out) = common::openssl_verify_digest(&t.dir, &ec.public_key.to_spki_pem(), &digest, &sig.der, false);
    assert!(ok, "{profile}: P-256: {out}");
}

#[test]
fn sm2_through_pkcs11_verifies_in_openssl_with_softtoken_codes() {
    sm2_interop("softtoken");
}

#[test]
fn sm2_through_pkcs11_verifies_in_openssl_imitating_sansec_raw_signatures() {
    sm2_interop("sansec");
}

#[test]
fn sm2_through_pkcs11_verifies_in_openssl_imitating_tass_der_signatures() {
    sm2_interop("tass");
}

#[test]
fn the_token_computing_z_itself_gives_the_same_verifiable_signatures() {
    // A profile with z = "token": seald hands M to the sign-with-SM3 mechanism.
    let t = SoftToken::new("softtoken");
    let mut p =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pkcs11-profiles/softtoken.toml")).unwrap();
    p = p.replace("z = \"host\"", "z = \"token\"");
    let path = t.scratch("token-z.toml");
    std::fs::write(&path, p).unwrap();
    let mut cfg = t.config();
    cfg.profile = Some(path.to_str().unwrap().into());
    let pool = TokenPool::open(&cfg).unwrap();
    let key = pool.generate(KeyAlg::Sm2, "k").unwrap();
    let sig = pool.sign(&key.id, SignInput::Message { data: b"token computes Z", user_id: None }).unwrap();
    let (ok, out) = openssl_sm2_verify(&t.dir, &sm2_pem(&key), b"token computes Z", &sig.der, DEFAULT_ID);
    assert!(ok, "{out}");
}

#[test]
fn keys_survive_a_reload_and_a_corrupt_key_file_is_reported_not_crashed_on() {
    let t = SoftToken::new("softtoken");
    let (a, b) = {
        let pool = TokenPool::open(&t.config()).unwrap();
        (pool.generate(KeyAlg::Sm2, "a").unwrap(), pool.generate(KeyAlg::Sm2, "b").unwrap())
    };
    // Reload the module: finalize from another handle while nothing is in flight.
    let ctx = Pkcs11::new(&t.module).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    ctx.finalize().unwrap();
    let pool = TokenPool::open(&t.config()).unwrap();
    assert_eq!(pool.key(&a.id).unwrap().public_key, a.public_key);
    pool.sign(&a.id, SignInput::Prehashed(&[5u8; 32])).unwrap();
    drop(pool);

    // Corrupt b's private key file, in another process's view: sealctl lists keys and says so.
    let objects = t.dir.join("token/objects");
    let mut corrupted = false;
    for entry in std::fs::read_dir(&objects).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let id =
            v["attrs"].as_array().unwrap().iter().find(|a| a[0] == 0x102).map(|a| a[1].as_str().unwrap().to_string());
        if id.as_deref() == Some(&b.id.to_hex()) && !v["secret"].is_null() {
            let ct = v["secret"]["ct"].as_str().unwrap();
            let flipped = format!("{}{}", if ct.starts_with('0') { "1" } else { "0" }, &ct[1..]);
            std::fs::write(&path, text.replace(ct, &flipped)).unwrap();
            corrupted = true;
        }
    }
    assert!(corrupted, "found b's private key file");
    std::fs::write(objects.join("garbage.json"), b"{ this is not json").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sealctl"))
        .args(["token", "list", "--json", "--module", t.module.to_str().unwrap(), "--token", &t.label])
        .args(["--pin-file", t.pin_file.to_str().unwrap(), "--profile", "softtoken"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("garbage.json") && stderr.contains("corrupt"), "{stderr}");
    assert!(stderr.contains("does not decrypt"), "{stderr}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&a.id.to_hex().as_str()), "{ids:?}");
    assert!(!ids.contains(&b.id.to_hex().as_str()), "the corrupt key must not be usable: {ids:?}");
}

#[test]
fn a_token_returning_a_wrong_signature_gives_an_error_never_a_result() {
    let t = SoftToken::new("softtoken");
    let pool = TokenPool::open(&t.config()).unwrap();
    let sm2 = pool.generate(KeyAlg::Sm2, "k").unwrap();
    let ec = pool.generate(KeyAlg::P256, "e").unwrap();
    t.set_fault("corrupt\n");
    for key in [&sm2, &ec] {
        let err = pool.sign(&key.id, SignInput::Prehashed(&[9u8; 32])).unwrap_err();
        assert!(matches!(err, TokenError::SignatureMismatch(_)), "{err}");
    }
    t.set_fault("");
    pool.sign(&sm2.id, SignInput::Prehashed(&[9u8; 32])).unwrap();
}

#[test]
fn device_removed_under_load_reports_down_and_recovers_when_cleared() {
    let t = SoftToken::new("softtoken");
    let mut cfg = t.config();
    cfg.pool_size = 4;
    cfg.borrow_timeout_ms = 500;
    cfg.recovery_timeout_ms = 500;
    let pool = TokenPool::open(&cfg).unwrap();
    let key = pool.generate(KeyAlg::Sm2, "k").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8u32)
        .map(|i| {
            let (pool, key, stop, ok) = (pool.clone(), key.clone(), stop.clone(), ok.clone());
            std::thread::spawn(move || {
                let mut worst = Duration::ZERO;
                let mut errors = Vec::new();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let e = crypto::sm3(&[i.to_be_bytes(), n.to_be_bytes()].concat());
                    let t0 = Instant::now();
                    match pool.sign(&key.id, SignInput::Prehashed(&e)) {
                        Ok(s) => {
                            key.public_key.verify_prehashed(&e, &s.raw).unwrap();
                            let _ = ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.push(e.code()),
                    }
                    worst = worst.max(t0.elapsed());
                }
                (worst, errors)
            })
        })
        .collect();
    let wait_ok = |more: usize| {
        let target = ok.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while ok.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "signing did not resume");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_ok(100);
    t.set_fault("removed\n");
    std::thread::sleep(Duration::from_millis(800));
    assert!(matches!(pool.health(), Health::Down(_)), "{:?}", pool.health());
    let during = ok.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ok.load(Ordering::Relaxed), during, "signatures while the device is removed");
    t.set_fault("");
    wait_ok(100);
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        let (worst, errors) = th.join().unwrap();
        assert!(worst < Duration::from_secs(3), "a call hung for {worst:?}");
        for e in errors {
            assert!(e == "token_unavailable" || e == "token_busy", "unexpected error code {e}");
        }
    }
    // The loss was seen (failed calls), and the pool is whole again: by re-initialization or, when
    // the module survived, by fresh sessions.
    assert!(pool.stats().errors > 0, "{:?}", pool.stats());
    assert_eq!(pool.probe(), Health::Ready);
}

#[test]
fn eight_threads_sign_two_thousand_times_each_on_four_sessions() {
    let t = SoftToken::new("softtoken");
    let mut cfg = t.config();
    cfg.pool_size = 4;
    cfg.borrow_timeout_ms = 30_000;
    let pool = TokenPool::open(&cfg).unwrap();
    let key = pool.generate(KeyAlg::Sm2, "k").unwrap();
    let threads: Vec<_> = (0..8u32)
        .map(|i| {
            let (pool, key) = (pool.clone(), key.clone());
            std::thread::spawn(move || {
                for n in 0..2000u32 {
                    let m = [i.to_be_bytes(), n.to_be_bytes()].concat();
                    let s = pool.sign(&key.id, SignInput::Message { data: &m, user_id: None }).unwrap();
                    // Independently of the pool's own check: recompute e and verify.
                    let PublicKey::Sm2(pk) = &key.public_key else { unreachable!() };
                    let e = crypto::sm2::e(pk, DEFAULT_ID.as_bytes(), &m).unwrap();
                    crypto::sm2::verify_e(pk, &e, &s.raw).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let stats = pool.stats();
    assert!(stats.open <= 4, "{stats:?}");
    assert_eq!(stats.errors, 0, "{stats:?}");
}

#[test]
fn a_session_cap_below_the_pool_size_degrades_but_keeps_signing() {
    let t = SoftToken::new("softtoken");
    t.set_fault("sessions 2\n");
    let mut cfg = t.config();
    cfg.pool_size = 6;
    let pool = TokenPool::open(&cfg).unwrap();
    let key = pool.generate(KeyAlg::P256, "k").unwrap();
    // The token says 2 in ulMaxSessionCount: the pool takes that as its size.
    assert!(matches!(pool.health(), Health::Degraded(_)), "{:?}", pool.health());
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (pool, key) = (pool.clone(), key.clone());
            std::thread::spawn(move || {
                for _ in 0..50 {
                    pool.sign(&key.id, SignInput::Prehashed(&[1u8; 32])).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    assert!(pool.stats().open <= 2);
}

#[test]
fn wrong_pins_lock_the_token_and_the_so_pin_unlocks_it_with_keys_intact() {
    let t = SoftToken::new("softtoken");
    let key = TokenPool::open(&t.config()).unwrap().generate(KeyAlg::Sm2, "k").unwrap();
    let ctx = Pkcs11::new(&t.module).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx.get_slots_with_token().unwrap()[0];
    let s = ctx.open_rw_session(slot).unwrap();
    use cryptoki::error::{Error, RvError};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    for _ in 0..5 {
        let r = s.login(UserType::User, Some(&AuthPin::from("wrong-pin".to_string())));
        assert!(matches!(r, Err(Error::Pkcs11(RvError::PinIncorrect, _))), "{r:?}");
    }
    let user_pin = std::fs::read_to_string(&t.pin_file).unwrap();
    let r = s.login(UserType::User, Some(&AuthPin::from(user_pin.clone())));
    assert!(matches!(r, Err(Error::Pkcs11(RvError::PinLocked, _))), "{r:?}");
    // The pool says so and does not try again.
    let err = TokenPool::open(&t.config()).unwrap_err();
    assert!(matches!(err, TokenError::PinRejected("CKR_PIN_LOCKED")), "{err}");
    // The SO sets a new user PIN; the master key is the same, so the key still signs.
    let so_pin = std::fs::read_to_string(&t.so_pin_file).unwrap();
    s.login(UserType::So, Some(&AuthPin::from(so_pin))).unwrap();
    s.init_pin(&AuthPin::from("new-user-pin".to_string())).unwrap();
    s.logout().unwrap();
    drop(s);
    std::fs::write(&t.pin_file, "new-user-pin").unwrap();
    let pool = TokenPool::open(&t.config()).unwrap();
    pool.sign(&key.id, SignInput::Prehashed(&[2u8; 32])).unwrap();
}

#[test]
fn opensc_pkcs11_tool_drives_softtoken() {
    common::require_tool("pkcs11-tool", "opensc");
    let t = SoftToken::new("softtoken");
    let module = t.module.to_str().unwrap().to_string();
    let user_pin = std::fs::read_to_string(&t.pin_file).unwrap();
    let tool = |args: &[&str]| {
        let out = Command::new("pkcs11-tool").arg("--module").arg(&module).args(args).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "pkcs11-tool {args:?}: {text}");
        text
    };
    let info = tool(&["--show-info"]);
    assert!(info.contains("Test/dev soft token, uncertified"), "{info}");
    let mechs = tool(&["--list-mechanisms"]);
    assert!(mechs.contains("ECDSA") && mechs.contains("0x80005302"), "{mechs}");
    // Re-initialise the token (this needs its current SO PIN) and its user PIN with pkcs11-tool itself.
    let so_pin = std::fs::read_to_string(&t.so_pin_file).unwrap();
    tool(&["--init-token", "--label", "by-opensc", "--so-pin", &so_pin]);
    tool(&["--init-pin", "--login", "--login-type", "so", "--so-pin", &so_pin, "--new-pin", &user_pin]);
    tool(&[
        "--login",
        "--pin",
        &user_pin,
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "opensc-ec",
        "--id",
        "a1",
    ]);
    let digest = crypto::sha256(b"pkcs11-tool signs");
    let (dg, sig) = (t.scratch("opensc.dgst"), t.scratch("opensc.sig"));
    std::fs::write(&dg, digest).unwrap();
    tool(&[
        "--login",
        "--pin",
        &user_pin,
        "--sign",
        "-m",
        "ECDSA",
        "--id",
        "a1",
        "-i",
        dg.to_str().unwrap(),
        "-o",
        sig.to_str().unwrap(),
    ]);
    let raw = std::fs::read(&sig).unwrap();
    assert_eq!(raw.len(), 64, "softtoken's ECDSA output is raw r||s");

    // seald reads the key pkcs11-tool made, and the signature pkcs11-tool got verifies with it.
    let mut cfg = t.config();
    cfg.label = Some("by-opensc".into());
    let pool = TokenPool::open(&cfg).unwrap();
    let k = pool.key(&seald::token::KeyId(vec![0xa1])).unwrap();
    k.public_key.verify_prehashed(&digest, &raw).unwrap();

    // An SM2 key made by seald, signed with by pkcs11-tool through the vendor sign-e code.
    let sm2 = pool.generate(KeyAlg::Sm2, "for-opensc").unwrap();
    let PublicKey::Sm2(pk) = &sm2.public_key else { unreachable!() };
    let message = b"pkcs11-tool, SM2, vendor mechanism";
    let e = crypto::sm2::e(pk, DEFAULT_ID.as_bytes(), message).unwrap();
    std::fs::write(&dg, e).unwrap();
    tool(&[
        "--login",
        "--pin",
        &user_pin,
        "--sign",
        "-m",
        "0x80005302",
        "--id",
        &sm2.id.to_hex(),
        "-i",
        dg.to_str().unwrap(),
        "-o",
        sig.to_str().unwrap(),
    ]);
    let raw = std::fs::read(&sig).unwrap();
    let (ok, out) = openssl_sm2_verify(&t.dir, &sm2_pem(&sm2), message, &crypto::raw_to_der(&raw).unwrap(), DEFAULT_ID);
    assert!(ok, "OpenSSL on pkcs11-tool's SM2 signature: {out}");
}

#[test]
fn audit_checkpoints_are_signed_in_the_token_and_verify_elsewhere_with_sealctl_and_openssl() {
    use seald::audit::{Actor, AuditEvent, Journal, JournalConfig, SignedHead};
    let t = SoftToken::new("softtoken");
    let pool = TokenPool::open(&t.config()).unwrap();
    let key = pool.generate(KeyAlg::Sm2, "audit-key").unwrap();
    let signer = Arc::new(seald::token::TokenKey::open(&pool, &key.id).unwrap());
    let jdir = t.scratch("journal");
    let mut cfg = JournalConfig::new(&jdir);
    cfg.checkpoint_every = 5;
    let j = Journal::open(cfg, None, Some(signer)).unwrap();
    for i in 0..12 {
        let _ = j.append(AuditEvent::new(Actor::system(), "test.event", &format!("object:{i}"), "ok")).unwrap();
    }
    let head = j.checkpoint().unwrap().unwrap();
    j.close();

    // OpenSSL verifies a checkpoint signature made in the token over the signed-head bytes.
    let hash: [u8; 32] = hex::decode(&head.hash).unwrap().try_into().unwrap();
    let msg = SignedHead::message(head.seq, &hash, head.time_ms);
    let (ok, out) =
        openssl_sm2_verify(&t.dir, &sm2_pem(&key), &msg, &hex::decode(&head.signature).unwrap(), DEFAULT_ID);
    assert!(ok, "OpenSSL on the checkpoint signature: {out}");

    let pem = t.scratch("audit.pem");
    std::fs::write(&pem, key.public_key.to_spki_pem()).unwrap();
    let sealctl = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_sealctl")).args(args).output().unwrap();
    let o = sealctl(&["audit", "verify", "--journal", jdir.to_str().unwrap(), "--pubkey", pem.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.starts_with("OK:") && text.contains("signatures checked"), "{text}");

    let export = t.scratch("audit.jsonl");
    let o = sealctl(&["audit", "export", "--journal", jdir.to_str().unwrap(), "--out", export.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = sealctl(&[
        "audit",
        "verify",
        "--export",
        export.to_str().unwrap(),
        "--pubkey",
        pem.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["finding"], serde_json::Value::Null);
    assert!(report["checkpoints"].as_u64().unwrap() >= 3);

    // An edited export fails at the edited record; another key fails; garbage cannot be read.
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(&export, text.replacen("object:4", "object:X", 1)).unwrap();
    let o = sealctl(&["audit", "verify", "--export", export.to_str().unwrap(), "--pubkey", pem.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAILED at seq 5") && out.contains("Edited"), "{out}");
    let other = pool.generate(KeyAlg::Sm2, "not-audit").unwrap();
    std::fs::write(&pem, other.public_key.to_spki_pem()).unwrap();
    let o = sealctl(&["audit", "verify", "--journal", jdir.to_str().unwrap(), "--pubkey", pem.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("BadCheckpoint"));
    std::fs::write(&export, "not an export").unwrap();
    let o = sealctl(&["audit", "verify", "--export", export.to_str().unwrap(), "--pubkey", pem.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

/// Two instances on one token directory (two seald nodes on one token, as a network HSM gives them):
/// a key made by one signs in the other at once, and a key one destroys is gone for the other.
#[test]
fn two_instances_sharing_a_token_directory_see_each_others_keys() {
    let t = SoftToken::new("softtoken");
    let a = TokenPool::open(&t.config()).unwrap();
    let b = TokenPool::open(&t.second_instance()).unwrap();
    let made = a.generate(KeyAlg::Sm2, "made-by-a").unwrap();
    let found = b.key(&made.id).expect("the key made by the first instance");
    assert_eq!(found.public_key.fingerprint(), made.public_key.fingerprint());
    // The pool verifies every signature with the key's public key before returning it.
    let msg = SignInput::Message { data: b"shared", user_id: None };
    let _ = b.sign(&made.id, msg).expect("the second instance signs with the first one's key");
    a.destroy(&made.id).unwrap();
    let other = b.generate(KeyAlg::Sm2, "made-by-b").unwrap();
    assert!(a.key(&other.id).is_ok(), "the second instance's key is seen by the first");
    let msg = SignInput::Message { data: b"shared", user_id: None };
    assert!(b.sign(&made.id, msg).is_err(), "a destroyed key still signs elsewhere");
}

/// A PIN changed through one instance (another cluster node's appliance) reaches the other without a
/// restart: when its next login fails, it reads its PIN file again (rewritten here by the first
/// instance, as an operator updates each node's file) and logs in with the new PIN.
#[test]
fn a_pin_changed_through_another_instance_is_read_again_from_the_pin_file() {
    let t = SoftToken::new("softtoken");
    let a = TokenPool::open(&t.config()).unwrap();
    let second = t.second_instance();
    let b = TokenPool::open(&second).unwrap();
    let key = a.generate(KeyAlg::Sm2, "k").unwrap();
    let msg = || SignInput::Message { data: b"pin", user_id: None };
    let _ = b.sign(&key.id, msg()).unwrap();
    let new = seald::token::Pin::from_text("a-new-pin-of-the-cluster").unwrap();
    assert!(a.change_pin(new).unwrap(), "the PIN file was rewritten");
    // The second instance loses its login (as after the token restarts): it must log in again.
    let ctx = Pkcs11::new(second.module.as_ref().unwrap()).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx.get_slots_with_token().unwrap()[0];
    ctx.open_ro_session(slot).unwrap().logout().unwrap();
    let _ = b.sign(&key.id, msg()).expect("the second instance signs with the PIN its file now holds");
    let _ = a.sign(&key.id, msg()).unwrap();
}
