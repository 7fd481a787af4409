//! Durable appends per second to the audit journal (with the store attached, as the daemon runs it)
//! with 1, 8 and 64 concurrent writers, next to the same with fdatasync off, in one run.
//! Target on 2 cores: >= 20 000 durable appends/s at 64 writers, and flush-on >= 50% of flush-off.
//!
//! `cargo bench --bench audit`. The journal lives under target/ (the same filesystem as the build),
//! which is where the figures in the README come from.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use seald::audit::{Actor, AuditEvent, Journal, JournalConfig};
use seald::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn open(sync: bool) -> (tempfile::TempDir, Arc<Journal>) {
    let base = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-audit");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let store = Arc::new(Store::open(&dir.path().join("store")).unwrap());
    let mut cfg = JournalConfig::new(dir.path().join("journal"));
    cfg.sync = sync;
    let j = Arc::new(Journal::open(cfg, Some(store), None).unwrap());
    (dir, j)
}

fn event(i: u64) -> AuditEvent {
    AuditEvent::new(
        Actor { account: "app-oa".into(), cert_fingerprint: Some("ab".repeat(32)) },
        "sign",
        "seal:110101000000001",
        "ok",
    )
    .detail("digest", hex::encode(seald::crypto::sm3(&i.to_be_bytes())))
    .detail("key_version", 1)
}

/// `total` appends spread over `writers` threads; returns the wall time.
fn run(j: &Arc<Journal>, writers: u64, total: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let j = j.clone();
            let _ = s.spawn(move || {
                for i in 0..total / writers {
                    let _ = j.append(event(w * total + i)).unwrap();
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("audit_append");
    g.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1)).sample_size(10);
    for writers in [1u64, 8, 64] {
        for sync in [true, false] {
            let (_dir, j) = open(sync);
            let name = format!("{writers}_writers_{}", if sync { "fdatasync" } else { "no_sync" });
            g.throughput(Throughput::Elements(1));
            g.bench_function(name, |b| b.iter_custom(|iters| run(&j, writers, iters.max(writers))));
        }
    }
    g.finish();
}

/// One table of appends/s, each configuration run for the same number of appends.
fn summary(_c: &mut Criterion) {
    println!("\naudit journal, durable appends per second (2 cores):");
    println!("{:>8} {:>14} {:>14} {:>8}", "writers", "fdatasync", "no sync", "ratio");
    for writers in [1u64, 8, 64] {
        let total = if writers == 1 { 2_000 } else { 40_000 };
        let rate = |sync| {
            let (_dir, j) = open(sync);
            let _ = run(&j, writers, writers * 10); // warm-up
            total as f64 / run(&j, writers, total).as_secs_f64()
        };
        let (on, off) = (rate(true), rate(false));
        println!("{writers:>8} {on:>14.0} {off:>14.0} {:>7.0}%", 100.0 * on / off);
    }
}

criterion_group!(benches, summary, bench);
criterion_main!(benches);
