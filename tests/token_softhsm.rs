//! The token layer against SoftHSM2: keys made in the token stay there, signatures verify on the
//! host and in OpenSSL, the pool hands out at most its size in sessions, and bad setups are named.

mod common;

use common::{openssl, require_tool, TestToken};
use seald::crypto::KeyAlg;
use seald::token::{KeyId, SignInput, TokenConfig, TokenError, TokenPool};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn keys_are_made_in_the_token_sensitive_and_never_extractable() {
    let t = TestToken::new("attrs");
    let pool = TokenPool::open(&t.config()).unwrap();
    let mut ids = Vec::new();
    for (alg, label) in [(KeyAlg::P256, "ec"), (KeyAlg::Rsa2048, "rsa2k"), (KeyAlg::Rsa3072, "rsa3k")] {
        let k = pool.generate(alg, label).unwrap();
        assert_eq!(k.alg, alg);
        assert_eq!(k.id.0.len(), 16, "CKA_ID is 16 random bytes");
        let a = pool.attributes(&k.id).unwrap();
        assert!(a.token && a.private && a.sensitive && !a.extractable, "{label}: {a:?}");
        assert!(a.always_sensitive && a.never_extractable, "{label}: {a:?}");
        ids.push(k.id);
    }
    assert_ne!(ids[0], ids[1]);
    // Ask an independent PKCS#11 client too.
    require_tool("pkcs11-tool", "opensc");
    let out = Command::new("pkcs11-tool")
        .args([
            "--module",
            t.module.to_str().unwrap(),
            "--token-label",
            &t.label,
            "--login",
            "--pin",
            &t.pin,
            "--list-objects",
            "--type",
            "privkey",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("Private Key Object").count(), 3, "{text}");
    for block in text.split("Private Key Object").skip(1) {
        let access = block.lines().find(|l| l.trim_start().starts_with("Access:")).unwrap_or_default();
        assert!(access.contains("sensitive") && access.contains("never extractable"), "{access}");
        assert!(
            !block.contains("Usage:") || !block.lines().any(|l| l.contains("Usage:") && l.contains("decrypt")),
            "{block}"
        );
    }
    // Listing finds exactly these keys, and they come back with the same public keys.
    let listed = pool.list().unwrap();
    let mut listed_ids: Vec<KeyId> = listed.iter().map(|k| k.id.clone()).collect();
    listed_ids.sort();
    ids.sort();
    assert_eq!(listed_ids, ids);
    // Destroy removes both halves.
    pool.destroy(&ids[0]).unwrap();
    assert!(matches!(pool.key(&ids[0]), Err(TokenError::KeyNotFound(_))));
    assert!(matches!(pool.sign(&ids[0], SignInput::Prehashed(&[1u8; 32])), Err(TokenError::KeyNotFound(_))));
}

fn check_with_openssl(t: &TestToken, alg: KeyAlg, pool: &TokenPool) {
    let k = pool.generate(alg, "interop").unwrap();
    let pem = t.scratch(&format!("{alg}.pem"));
    std::fs::write(&pem, k.public_key.to_spki_pem()).unwrap();
    let message = b"seald interop: the quick brown fox".to_vec();
    let msg_file = t.scratch(&format!("{alg}.msg"));
    std::fs::write(&msg_file, &message).unwrap();
    let digest = seald::crypto::sha256(&message);
    let digest_file = t.scratch(&format!("{alg}.dgst"));
    std::fs::write(&digest_file, digest).unwrap();

    // Message mode: OpenSSL hashes the message itself.
    let sig = pool.sign(&k.id, SignInput::Message { data: &message, user_id: None }).unwrap();
    assert_eq!(sig.prehash, digest);
    let sig_file = t.scratch(&format!("{alg}.sig"));
    std::fs::write(&sig_file, &sig.der).unwrap();
    let (ok, out) = openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        pem.to_str().unwrap(),
        "-signature",
        sig_file.to_str().unwrap(),
        msg_file.to_str().unwrap(),
    ]);
    assert!(ok, "openssl dgst -verify: {out}");

    // Prehashed mode: OpenSSL verifies over the digest.
    let sig = pool.sign(&k.id, SignInput::Prehashed(&digest)).unwrap();
    let pem_text = k.public_key.to_spki_pem();
    let oracle = t.scratch(&format!("{alg}-oracle"));
    std::fs::create_dir_all(&oracle).unwrap();
    let (ok, out) = common::openssl_verify_digest(&oracle, &pem_text, &digest, &sig.der, alg != KeyAlg::P256);
    assert!(ok, "openssl pkeyutl -verify: {out}");

    // The same check fails on a changed signature: the oracle can say no.
    let mut bad = sig.der.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    let (ok, _) = common::openssl_verify_digest(&oracle, &pem_text, &digest, &bad, alg != KeyAlg::P256);
    assert!(!ok, "openssl accepted a corrupted {alg} signature");
    // And the host verifier agrees on both.
    k.public_key.verify_prehashed(&digest, &sig.der).unwrap();
    assert!(k.public_key.verify_prehashed(&digest, &bad).is_err());
}

#[test]
fn p256_signatures_verify_on_the_host_and_in_openssl() {
    let t = TestToken::new("p256");
    let pool = TokenPool::open(&t.config()).unwrap();
    check_with_openssl(&t, KeyAlg::P256, &pool);
    // raw and DER are the same signature.
    let k = pool.generate(KeyAlg::P256, "enc").unwrap();
    let sig = pool.sign(&k.id, SignInput::Prehashed(&[7u8; 32])).unwrap();
    assert_eq!(sig.raw.len(), 64);
    assert_eq!(seald::crypto::der_to_raw(&sig.der, 32).unwrap(), sig.raw);
}

#[test]
fn rsa_signatures_verify_on_the_host_and_in_openssl() {
    let t = TestToken::new("rsa");
    let pool = TokenPool::open(&t.config()).unwrap();
    check_with_openssl(&t, KeyAlg::Rsa2048, &pool);
}

#[test]
fn bad_input_is_refused_before_the_token() {
    let t = TestToken::new("input");
    let pool = TokenPool::open(&t.config()).unwrap();
    let k = pool.generate(KeyAlg::P256, "k").unwrap();
    let err = pool.sign(&k.id, SignInput::Prehashed(&[0u8; 20])).unwrap_err();
    assert_eq!(err.code(), "bad_input", "{err}");
    let err = pool.generate(KeyAlg::Sm2, "sm2").unwrap_err();
    assert_eq!(err.code(), "unsupported", "SoftHSM has no SM2: {err}");
    assert!(KeyId::from_hex("zz").is_err());
    let err = pool.sign(&KeyId(vec![9; 16]), SignInput::Prehashed(&[0u8; 32])).unwrap_err();
    assert_eq!(err.code(), "key_not_found");
}

#[test]
fn a_wrong_pin_is_refused_with_a_message_that_does_not_contain_it() {
    let t = TestToken::new("pin");
    let wrong = t.scratch("wrong.pin");
    std::fs::write(&wrong, "99999999-secret").unwrap();
    let mut cfg = t.config();
    cfg.pin_file = Some(wrong);
    let err = TokenPool::open(&cfg).unwrap_err();
    assert!(matches!(err, TokenError::PinRejected("CKR_PIN_INCORRECT")), "{err}");
    assert!(!err.to_string().contains("99999999"), "{err}");
    // The right PIN still works: the refusal did not lock anything on our side.
    TokenPool::open(&t.config()).unwrap();
}

#[test]
fn unknown_tokens_and_missing_libraries_are_named() {
    let t = TestToken::new("names");
    let mut cfg = t.config();
    cfg.label = Some("no-such-token".into());
    let err = TokenPool::open(&cfg).unwrap_err().to_string();
    assert!(err.contains("no-such-token") && err.contains(&t.label), "{err}");
    let mut cfg = t.config();
    cfg.module = Some("/nonexistent/libpkcs11.so".into());
    let err = TokenPool::open(&cfg).unwrap_err();
    assert_eq!(err.code(), "token_module");
    assert!(err.to_string().contains("/nonexistent/libpkcs11.so"));
    let mut cfg = t.config();
    cfg.pin_file = Some(t.scratch("absent.pin"));
    assert_eq!(TokenPool::open(&cfg).unwrap_err().code(), "pin_unreadable");
}

#[test]
fn a_profile_whose_mechanisms_the_token_lacks_is_refused_by_name() {
    let t = TestToken::new("profile");
    for name in ["sansec", "tass", "luna", "softtoken"] {
        let mut cfg = t.config();
        cfg.profile = Some(name.into());
        let err = TokenPool::open(&cfg).unwrap_err().to_string();
        assert!(err.contains("lacks mechanism SM2") && err.contains(name), "{name}: {err}");
    }
    // Detection picks softhsm2 from the module itself.
    let mut cfg = t.config();
    cfg.profile = None;
    let pool = TokenPool::open(&cfg).unwrap();
    assert_eq!(pool.profile().name, "softhsm2");
    let info = pool.module_info().unwrap();
    assert!(info.profile_matches && info.mechanisms.contains(&0x1041));
}

#[test]
fn tokens_are_selected_by_uri_and_by_serial() {
    let t = TestToken::new("uri");
    let _other = TestToken::new("other");
    let mut cfg = t.config();
    cfg.label = None;
    cfg.uri = Some(format!("pkcs11:token={}", t.label));
    let pool = TokenPool::open(&cfg).unwrap();
    let serial = pool.module_info().unwrap().token_serial;
    assert_eq!(pool.module_info().unwrap().token_label, t.label);
    let mut by_serial = t.config();
    by_serial.label = None;
    by_serial.serial = Some(serial);
    assert_eq!(TokenPool::open(&by_serial).unwrap().module_info().unwrap().token_label, t.label);
    let mut both = t.config();
    both.uri = Some("pkcs11:token=another".into());
    assert_eq!(TokenPool::open(&both).unwrap_err().code(), "bad_input");
}

#[test]
fn a_pool_of_two_serves_sixteen_signers_or_says_busy_in_time() {
    let t = TestToken::new("exhaust");
    let mut cfg: TokenConfig = t.config();
    cfg.pool_size = 2;
    cfg.borrow_timeout_ms = 200;
    let pool = TokenPool::open(&cfg).unwrap();
    let key = pool.generate(KeyAlg::P256, "k").unwrap();
    let start = Arc::new(std::sync::Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let (pool, id, start) = (pool.clone(), key.id.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut outcomes = Vec::new();
                for j in 0..50u32 {
                    let digest = seald::crypto::sha256(&[i as u8, j as u8]);
                    let t0 = Instant::now();
                    let r = pool.sign(&id, SignInput::Prehashed(&digest));
                    let took = t0.elapsed();
                    assert!(pool.stats().open <= 2, "more sessions than the pool size");
                    outcomes.push((r.map(|s| (s.prehash, s.der)), took));
                }
                outcomes
            })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        for (r, took) in h.join().unwrap() {
            assert!(took < Duration::from_secs(2), "a call took {took:?}");
            match r {
                Ok((digest, der)) => {
                    key.public_key.verify_prehashed(&digest, &der).unwrap();
                    ok += 1;
                }
                Err(TokenError::TokenBusy(_)) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
    }
    assert!(ok > 0);
    assert!(pool.stats().open <= 2);
}

#[test]
fn a_caller_gets_token_busy_when_the_only_session_is_held() {
    let t = TestToken::new("busy");
    let mut cfg = t.config();
    cfg.pool_size = 1;
    cfg.borrow_timeout_ms = 30;
    let pool = TokenPool::open(&cfg).unwrap();
    let key = pool.generate(KeyAlg::P256, "k").unwrap();
    // RSA-4096-class work holds the single session for far longer than 30 ms: generate RSA-3072
    // keys in a loop on another thread while this one tries to sign.
    let holder = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            for i in 0..3 {
                pool.generate(KeyAlg::Rsa3072, &format!("slow-{i}")).unwrap();
            }
        })
    };
    let mut busy = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !holder.is_finished() && Instant::now() < deadline {
        let t0 = Instant::now();
        match pool.sign(&key.id, SignInput::Prehashed(&[3u8; 32])) {
            Err(TokenError::TokenBusy(d)) => {
                assert_eq!(d, Duration::from_millis(30));
                assert!(t0.elapsed() < Duration::from_millis(500), "busy took {:?}", t0.elapsed());
                busy += 1;
            }
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    holder.join().unwrap();
    assert!(busy > 0, "no caller was ever told the token is busy");
    assert!(pool.stats().busy >= busy);
    pool.sign(&key.id, SignInput::Prehashed(&[3u8; 32])).unwrap();
}
