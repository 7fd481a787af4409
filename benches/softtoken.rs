//! softtoken SM2 and P-256 sign throughput through seald's token layer (pool + PKCS#11 + softtoken),
//! next to the raw RustCrypto sign loops, in one run.
//!
//! Every signature the token layer returns has been verified on the host first. With the key's
//! precomputed table (`crypto::ecmul`) that costs a fraction of a signature; the run also measures raw
//! sign + host verify, the floor for a verified signature, so the distance from it is what PKCS#11,
//! softtoken and the pool add.
//!
//! Needs `cargo build --release -p softtoken` first (it panics, loudly, without it).

use criterion::{criterion_group, criterion_main, Criterion};
use seald::crypto::{self, KeyAlg};
use seald::token::{KeyInfo, Pin, SignInput, TokenConfig, TokenPool};
use signature::hazmat::PrehashSigner;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One token per process (softtoken reads its environment once), shared by both groups.
fn setup() -> (TokenPool, KeyInfo, KeyInfo) {
    static ONCE: std::sync::OnceLock<(TokenPool, KeyInfo, KeyInfo)> = std::sync::OnceLock::new();
    ONCE.get_or_init(make_token).clone()
}

fn make_token() -> (TokenPool, KeyInfo, KeyInfo) {
    let exe = std::env::current_exe().unwrap();
    let module = exe.parent().and_then(|d| d.parent()).unwrap().join("libsofttoken.so");
    assert!(module.exists(), "build softtoken first: cargo build --release -p softtoken ({})", module.display());
    let dir: PathBuf = std::env::temp_dir().join(format!("seald-bench-softtoken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::env::set_var("SOFTTOKEN_DIR", dir.join("token"));
    std::env::remove_var("SOFTTOKEN_PROFILE");
    std::env::remove_var("SOFTTOKEN_FAULT");
    let so = Pin::generate_to_file(&dir.join("so.pin")).unwrap();
    let user = Pin::generate_to_file(&dir.join("user.pin")).unwrap();
    seald::token::init_token(&module, "bench", &so, &user).unwrap();
    let mut cfg = TokenConfig::new(&module, "bench", dir.join("user.pin"));
    cfg.pool_size = 2;
    let pool = TokenPool::open(&cfg).unwrap();
    let sm2 = pool.generate(KeyAlg::Sm2, "bench-sm2").unwrap();
    let p256 = pool.generate(KeyAlg::P256, "bench-p256").unwrap();
    (pool, sm2, p256)
}

fn e_of(i: u64) -> [u8; 32] {
    crypto::sm3(&i.to_be_bytes())
}

struct Raw {
    sm2: sm2::dsa::SigningKey,
    sm2_pk: sm2::PublicKey,
    p256: p256::ecdsa::SigningKey,
    p256_pk: crypto::PublicKey,
}

fn raw_keys() -> Raw {
    let sm2 = sm2::dsa::SigningKey::from_slice("1234567812345678", &[0x11; 32]).unwrap();
    let sm2_pk = sm2::PublicKey::from_affine(*sm2.verifying_key().as_affine()).unwrap();
    // As the token layer does for its keys.
    crypto::PublicKey::Sm2(sm2_pk).prepare();
    let p256 = p256::ecdsa::SigningKey::from_slice(&[0x22; 32]).unwrap();
    let p256_pk = crypto::PublicKey::P256(p256::PublicKey::from(p256.verifying_key()));
    p256_pk.prepare();
    Raw { sm2, sm2_pk, p256, p256_pk }
}

fn bench(c: &mut Criterion) {
    let (pool, sm2_key, p256_key) = setup();
    let raw = raw_keys();
    let mut g = c.benchmark_group("softtoken");
    g.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    let mut i = 0u64;
    g.bench_function("sm2_raw_rustcrypto_sign", |b| {
        b.iter(|| {
            i += 1;
            let _s: sm2::dsa::Signature = raw.sm2.sign_prehash(&e_of(i)).unwrap();
        })
    });
    g.bench_function("sm2_raw_sign_plus_host_verify", |b| {
        b.iter(|| {
            i += 1;
            let e = e_of(i);
            let s: sm2::dsa::Signature = raw.sm2.sign_prehash(&e).unwrap();
            crypto::sm2::verify_e(&raw.sm2_pk, &e, &s.to_bytes()).unwrap();
        })
    });
    let e = e_of(0);
    let (sm2_sig, p256_sig): (sm2::dsa::Signature, p256::ecdsa::Signature) =
        (raw.sm2.sign_prehash(&e).unwrap(), raw.p256.sign_prehash(&e).unwrap());
    g.bench_function("sm2_host_verify_table", |b| {
        b.iter(|| crypto::sm2::verify_e(&raw.sm2_pk, &e, &sm2_sig.to_bytes()).unwrap())
    });
    g.bench_function("p256_host_verify_table", |b| {
        b.iter(|| raw.p256_pk.verify_prehashed(&e, &p256_sig.to_bytes()).unwrap())
    });
    g.bench_function("sm2_token_layer", |b| {
        b.iter(|| {
            i += 1;
            pool.sign(&sm2_key.id, SignInput::Prehashed(&e_of(i))).unwrap()
        })
    });
    g.bench_function("p256_raw_rustcrypto_sign", |b| {
        b.iter(|| {
            i += 1;
            let _s: p256::ecdsa::Signature = raw.p256.sign_prehash(&e_of(i)).unwrap();
        })
    });
    g.bench_function("p256_token_layer", |b| {
        b.iter(|| {
            i += 1;
            pool.sign(&p256_key.id, SignInput::Prehashed(&e_of(i))).unwrap()
        })
    });
    g.finish();
}

/// Interleaved batches, so machine drift hits all alike; prints throughput ratios.
fn ratios(_c: &mut Criterion) {
    let (pool, sm2_key, p256_key) = setup();
    let raw = raw_keys();
    let (batch, rounds) = (100u64, 15);
    let (mut vs_sign, mut vs_sign_verify, mut p256_vs_sign) = (Vec::new(), Vec::new(), Vec::new());
    let mut i = 0u64;
    let mut timed = |f: &mut dyn FnMut(u64)| {
        let t = Instant::now();
        for _ in 0..batch {
            i += 1;
            f(i);
        }
        t.elapsed().as_secs_f64()
    };
    for _ in 0..rounds {
        let sign = timed(&mut |i| {
            let _s: sm2::dsa::Signature = raw.sm2.sign_prehash(&e_of(i)).unwrap();
        });
        let sign_verify = timed(&mut |i| {
            let e = e_of(i);
            let s: sm2::dsa::Signature = raw.sm2.sign_prehash(&e).unwrap();
            crypto::sm2::verify_e(&raw.sm2_pk, &e, &s.to_bytes()).unwrap();
        });
        let layer = timed(&mut |i| {
            pool.sign(&sm2_key.id, SignInput::Prehashed(&e_of(i))).unwrap();
        });
        let p256_sign = timed(&mut |i| {
            let _s: p256::ecdsa::Signature = raw.p256.sign_prehash(&e_of(i)).unwrap();
        });
        let p256_layer = timed(&mut |i| {
            pool.sign(&p256_key.id, SignInput::Prehashed(&e_of(i))).unwrap();
        });
        vs_sign.push(sign / layer);
        vs_sign_verify.push(sign_verify / layer);
        p256_vs_sign.push(p256_sign / p256_layer);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "softtoken/interleaved, 1 thread, median of {rounds} x {batch}: SM2 token-layer throughput = {:.1}% of raw sign \
         (target >= 85%), {:.1}% of raw sign + host verify; P-256 token-layer throughput = {:.1}% of raw sign",
        100.0 * median(&mut vs_sign),
        100.0 * median(&mut vs_sign_verify),
        100.0 * median(&mut p256_vs_sign)
    );
}

criterion_group!(benches, bench, ratios);
criterion_main!(benches);
