//! Recovery without a new process, on SoftHSM2: while 8 threads sign, another PKCS#11 handle in the
//! same process closes every session or logs the application out; and a token that vanishes (its
//! store moved away, the module re-initialized) reports Down and comes back. Signing must go on, and
//! no call may hang past the configured timeouts.
//!
//! Not here: a foreign C_Finalize or C_CloseAllSessions while our threads are inside SoftHSM. SoftHSM
//! frees sessions under those threads and crashes (seen: SIGSEGV in C_Sign inside libsofthsm2), so
//! that is no test of seald; close-all runs between calls here, logout under full load. The pool
//! itself drains every session before it finalizes. Device loss under load is tested against
//! softtoken's fault injection instead.

mod common;

use common::TestToken;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::slot::Slot;
use seald::crypto::KeyAlg;
use seald::token::{Health, SignInput, TokenError, TokenPool};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// These tests disturb the whole module; under plain `cargo test` they must not overlap.
static SERIAL: Mutex<()> = Mutex::new(());

/// An independent handle on the same library: what an operator's tool or a second library user in
/// the process would do.
fn other_handle(t: &TestToken) -> Pkcs11 {
    let ctx = Pkcs11::new(&t.module).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    ctx
}

/// C_CloseAllSessions through the raw bindings: cryptoki does not wrap it.
fn close_all_sessions(t: &TestToken, slot: u64) {
    // SAFETY: loading the same PKCS#11 library the pool uses; dlopen returns the already-loaded
    // instance, and C_CloseAllSessions takes a plain slot id.
    let rv = unsafe {
        let lib = cryptoki_sys::Pkcs11::new(&t.module).unwrap();
        lib.C_CloseAllSessions(slot)
    };
    assert_eq!(rv, cryptoki_sys::CKR_OK, "C_CloseAllSessions");
}

/// One sign call: its outcome and how long it took.
type CallResult = (Result<(), String>, Duration);

struct Load {
    /// Each call holds this for reading; a disturbance that SoftHSM cannot take mid-call writes it.
    gate: Arc<RwLock<()>>,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<Vec<CallResult>>>,
}

fn start_load(pool: &TokenPool, key: &seald::token::KeyInfo) -> Load {
    let gate = Arc::new(RwLock::new(()));
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let threads = (0..8u8)
        .map(|i| {
            let (pool, key, stop, ok, gate) = (pool.clone(), key.clone(), stop.clone(), ok.clone(), gate.clone());
            std::thread::spawn(move || {
                let mut results = Vec::new();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let digest = seald::crypto::sha256(&[&[i][..], &n.to_be_bytes()].concat());
                    let _in_call = gate.read().unwrap();
                    let t0 = Instant::now();
                    let r = pool.sign(&key.id, SignInput::Prehashed(&digest)).map(|s| {
                        key.public_key.verify_prehashed(&digest, &s.der).expect("returned signature verifies");
                    });
                    if r.is_ok() {
                        let _ = ok.fetch_add(1, Ordering::Relaxed);
                    }
                    results.push((r.map_err(|e| e.to_string()), t0.elapsed()));
                }
                results
            })
        })
        .collect();
    Load { gate, stop, ok, threads }
}

fn wait_for_signatures(load: &Load, more_than: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.ok.load(Ordering::Relaxed) <= more_than {
        assert!(Instant::now() < deadline, "signing did not resume");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Stops the load and returns (calls, failures); asserts no call took longer than `limit`.
fn finish(load: Load, limit: Duration) -> (usize, Vec<String>) {
    load.stop.store(true, Ordering::Relaxed);
    let mut calls = 0;
    let mut failures = Vec::new();
    for t in load.threads {
        for (r, took) in t.join().unwrap() {
            calls += 1;
            assert!(took <= limit, "a sign call hung for {took:?} (limit {limit:?})");
            if let Err(e) = r {
                failures.push(e);
            }
        }
    }
    (calls, failures)
}

/// `finish`, asserting that every call succeeded.
fn finish_without_failures(load: Load) {
    let (calls, failures) = finish(load, LIMIT);
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

fn pool_for(t: &TestToken) -> (TokenPool, seald::token::KeyInfo) {
    let mut cfg = t.config();
    cfg.pool_size = 4;
    cfg.borrow_timeout_ms = 2000;
    cfg.recovery_timeout_ms = 3000;
    let pool = TokenPool::open(&cfg).unwrap();
    let key = pool.generate(KeyAlg::P256, "k").unwrap();
    (pool, key)
}

const LIMIT: Duration = Duration::from_secs(6);

#[test]
fn signing_resumes_after_every_session_is_closed_from_another_handle() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let t = TestToken::new("closeall");
    let (pool, key) = pool_for(&t);
    let slot = Slot::try_from(pool.module_info().unwrap().slot).unwrap();
    let load = start_load(&pool, &key);
    for round in 1..=3 {
        wait_for_signatures(&load, round * 200);
        // Between calls: SoftHSM crashes in C_Sign if a session is closed under it (see above).
        let _no_call = load.gate.write().unwrap();
        close_all_sessions(&t, slot.id());
    }
    let before = load.ok.load(Ordering::Relaxed);
    wait_for_signatures(&load, before + 200);
    finish_without_failures(load);
    assert!(pool.stats().session_recoveries >= 1, "{:?}", pool.stats());
    assert_eq!(pool.health(), Health::Ready);
}

#[test]
fn signing_resumes_after_the_application_is_logged_out_from_another_handle() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let t = TestToken::new("logout");
    let (pool, key) = pool_for(&t);
    let other = other_handle(&t);
    let slot = Slot::try_from(pool.module_info().unwrap().slot).unwrap();
    let load = start_load(&pool, &key);
    for round in 1..=3 {
        wait_for_signatures(&load, round * 200);
        // Login state belongs to the application, so one logout logs out every session of ours.
        let s = other.open_ro_session(slot).unwrap();
        s.logout().unwrap();
    }
    let before = load.ok.load(Ordering::Relaxed);
    wait_for_signatures(&load, before + 200);
    finish_without_failures(load);
    assert!(pool.stats().session_recoveries >= 1, "{:?}", pool.stats());
}

#[test]
fn a_token_that_disappears_reports_down_and_comes_back_without_a_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let t = TestToken::new("vanish");
    let mut cfg = t.config();
    cfg.borrow_timeout_ms = 300;
    cfg.recovery_timeout_ms = 300;
    let pool = TokenPool::open(&cfg).unwrap();
    let key = pool.generate(KeyAlg::P256, "k").unwrap();
    // Move SoftHSM's token directory away and re-initialize: the token is gone.
    let tokens = common::softhsm_dir().join("tokens");
    let aside = common::softhsm_dir().join("tokens-aside");
    std::fs::rename(&tokens, &aside).unwrap();
    std::fs::create_dir(&tokens).unwrap();
    other_handle(&t).finalize().unwrap();
    let t0 = Instant::now();
    let err = pool.sign(&key.id, SignInput::Prehashed(&[1u8; 32])).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(3), "took {:?}", t0.elapsed());
    assert!(matches!(err, TokenError::Unavailable(_)), "{err}");
    assert!(matches!(pool.health(), Health::Down(_)), "{:?}", pool.health());
    // Put it back: the next call (after the backoff) finds the token again.
    std::fs::remove_dir(&tokens).unwrap();
    std::fs::rename(&aside, &tokens).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match pool.sign(&key.id, SignInput::Prehashed(&[1u8; 32])) {
            Ok(sig) => {
                key.public_key.verify_prehashed(&[1u8; 32], &sig.der).unwrap();
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "never recovered: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    assert_eq!(pool.health(), Health::Ready);
}
