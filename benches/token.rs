//! Sign throughput through the session pool next to the raw cryptoki sign loop, on SoftHSM2 with a
//! P-256 key, with 1 and 2 threads, in one run.
//!
//! The pool verifies every signature on the host before returning it (a wrong signature never leaves
//! the appliance), so the fair baseline for "pool overhead" is raw C_Sign plus the same host verify;
//! raw C_Sign alone is reported too. Target: pool <= 5% slower than raw+verify.
//!
//! Needs SoftHSM2 (`apt-get install softhsm2`); it panics, loudly, without it.

use criterion::{criterion_group, criterion_main, Criterion};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use seald::crypto::KeyAlg;
use seald::token::{KeyInfo, SignInput, TokenConfig, TokenPool};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const PIN: &str = "24681357";
const LABEL: &str = "bench";

fn setup() -> (PathBuf, TokenPool, KeyInfo) {
    let module = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("SoftHSM2 is not installed: apt-get install -y softhsm2");
    let dir = std::env::temp_dir().join(format!("seald-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let ok = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", LABEL, "--so-pin", "13572468", "--pin", PIN])
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "softhsm2-util --init-token");
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, PIN).unwrap();
    let mut cfg = TokenConfig::new(&module, LABEL, &pin_file);
    cfg.pool_size = 2;
    let pool = TokenPool::open(&cfg).unwrap();
    let key = pool.generate(KeyAlg::P256, "bench-p256").unwrap();
    (module, pool, key)
}

/// A logged-in raw session with the key's handle, through the same library instance.
fn raw_session(module: &PathBuf, key: &KeyInfo) -> (Session, cryptoki::object::ObjectHandle) {
    let ctx = Pkcs11::new(module).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == LABEL)
        .unwrap();
    let s = ctx.open_ro_session(slot).unwrap();
    let _ = s.login(UserType::User, Some(&AuthPin::from(PIN.to_string())));
    let h = s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Id(key.id.0.clone())]).unwrap()[0];
    (s, h)
}

/// Runs `iters` operations split over `threads` threads; returns wall time.
fn parallel(threads: u64, iters: u64, f: impl Fn(u64) + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let f = &f;
            let _ = scope.spawn(move || {
                for i in 0..iters / threads {
                    f(t * iters + i);
                }
            });
        }
    });
    start.elapsed()
}

fn digest(i: u64) -> [u8; 32] {
    seald::crypto::sha256(&i.to_be_bytes())
}

fn bench(c: &mut Criterion) {
    let (module, pool, key) = setup();
    let mut g = c.benchmark_group("p256_sign_softhsm2");
    g.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for threads in [1u64, 2] {
        g.bench_function(format!("raw_cryptoki_{threads}t"), |b| {
            b.iter_custom(|iters| {
                let sessions: Vec<_> =
                    (0..threads).map(|_| std::sync::Mutex::new(raw_session(&module, &key))).collect();
                parallel(threads, iters, |i| {
                    let (s, h) = &*sessions[(i / iters.max(1)) as usize].lock().unwrap();
                    let _sig = s.sign(&Mechanism::Ecdsa, *h, &digest(i)).unwrap();
                })
            })
        });
        g.bench_function(format!("raw_cryptoki_plus_host_verify_{threads}t"), |b| {
            b.iter_custom(|iters| {
                let sessions: Vec<_> =
                    (0..threads).map(|_| std::sync::Mutex::new(raw_session(&module, &key))).collect();
                parallel(threads, iters, |i| {
                    let (s, h) = &*sessions[(i / iters.max(1)) as usize].lock().unwrap();
                    let d = digest(i);
                    let sig = s.sign(&Mechanism::Ecdsa, *h, &d).unwrap();
                    key.public_key.verify_prehashed(&d, &sig).unwrap();
                })
            })
        });
        g.bench_function(format!("pool_{threads}t"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |i| {
                    let _sig = pool.sign(&key.id, SignInput::Prehashed(&digest(i))).unwrap();
                })
            })
        });
    }
    g.finish();
}

/// Alternates batches of raw+verify and pool signing, 1 thread, so that machine drift hits both
/// alike; prints the median ratio. Criterion's sequential groups are kept for absolute figures.
fn interleaved_ratio(_c: &mut Criterion) {
    let (module, pool, key) = setup();
    let (s, h) = raw_session(&module, &key);
    let batch = 200u64;
    let mut ratios = Vec::new();
    let mut i = 0u64;
    for _ in 0..15 {
        let t0 = Instant::now();
        for _ in 0..batch {
            i += 1;
            let d = digest(i);
            let sig = s.sign(&Mechanism::Ecdsa, h, &d).unwrap();
            key.public_key.verify_prehashed(&d, &sig).unwrap();
        }
        let raw = t0.elapsed();
        let t0 = Instant::now();
        for _ in 0..batch {
            i += 1;
            let _sig = pool.sign(&key.id, SignInput::Prehashed(&digest(i))).unwrap();
        }
        ratios.push(t0.elapsed().as_secs_f64() / raw.as_secs_f64());
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    let median = ratios[ratios.len() / 2];
    println!(
        "p256_sign_softhsm2/interleaved: pool time / (raw C_Sign + host verify) time, median of 15 x {batch}: {median:.3} \
         (overhead {:+.1}%; target <= +5%)",
        (median - 1.0) * 100.0
    );
}

criterion_group!(benches, bench, interleaved_ratio);
criterion_main!(benches);
