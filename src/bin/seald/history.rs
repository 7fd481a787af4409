//! `seald dev-history` (hidden): a large history for benchmarks, written with the daemon stopped
//! through the real journal and store (`server::open_offline`), so the figures in the README can
//! be reproduced. It copies the first seal of the registry into `seals - 1` more (same unit, key and
//! image, new ids), then appends `records` usage records of the kind a seal use writes (the same
//! details and counters), a tenth of them on the first seal (the busy one) and the rest spread over
//! all seals, from 32 threads so that the journal batches them as it does under load. Progress goes
//! to standard error once a second.

use crate::Error;
use seald::audit::{Actor, AuditEvent};
use seald::config::Config;
use seald::store::{tree, Change};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Runs `seald dev-history`.
pub fn run(config: &Path, seals: u64, records: u64) -> Result<(), Error> {
    let cfg = Config::load(config)?;
    let off = seald::server::open_offline(&cfg)?;
    let mut existing = off.store.scan::<serde_json::Value>(tree::SEALS)?;
    if existing.is_empty() {
        return Err("the registry has no seal to copy (run seald dev first)".into());
    }
    let (busy, template) = existing.swap_remove(0);
    // Each copy is filed with the police as its original was (the registry's filings grow with it).
    let filing = off.store.scan::<serde_json::Value>(tree::FILINGS)?.into_iter().next().map(|(_, f)| f);
    let unit = template["unit"].as_str().unwrap_or_default().to_string();
    let started = Instant::now();
    // The copies: one journal record each, as a seal's creation would be.
    let mut ids = vec![busy.clone()];
    for i in 1..seals {
        let id = format!("9{:015}", i);
        let mut s = template.clone();
        s["id"] = serde_json::Value::from(id.clone());
        s["name"] = serde_json::Value::from(format!("history seal {i}"));
        let mut ev = AuditEvent::new(Actor::system(), "seal.history_copy", &format!("seal:{id}"), "ok")
            .detail("unit", unit.clone())
            .change(Change::Put { tree: tree::SEALS.into(), key: id.clone(), value: s });
        if let Some(f) = &filing {
            let mut f = f.clone();
            let fid = format!("H{:015}", i);
            f["id"] = serde_json::Value::from(fid.clone());
            f["seal"] = serde_json::Value::from(id.clone());
            f["seal_name"] = serde_json::Value::from(format!("history seal {i}"));
            ev = ev.change(Change::Put { tree: tree::FILINGS.into(), key: fid, value: f });
        }
        let _ = off.journal.append(ev)?;
        ids.push(id);
        if i.is_multiple_of(10_000) {
            eprintln!("[{:6.1} s] {i} seals", started.elapsed().as_secs_f64());
        }
    }
    let key_id = template["versions"][0]["key_id"].as_str().unwrap_or_default().to_string();
    // The records are stamped now: they are today's uses, counted as a use counts them.
    let offset = time::UtcOffset::from_hms(cfg.seals.utc_offset_hours, 0, 0).unwrap_or(time::UtcOffset::UTC);
    let now = time::OffsetDateTime::now_utc().to_offset(offset);
    let today = format!("{:04}{:02}{:02}", now.year(), u8::from(now.month()), now.day());
    let ids = Arc::new(ids);
    let done = Arc::new(AtomicU64::new(0));
    let threads = 32u64;
    let journal = off.journal.clone();
    let progress = {
        let done = done.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let n = done.load(Ordering::Relaxed);
                let secs = t0.elapsed().as_secs_f64();
                let rate = n as f64 / secs.max(1e-9);
                eprintln!(
                    "[{secs:6.1} s] {n} of {records} usage records, {rate:.0}/s, about {:.0} s left",
                    (records - n) as f64 / rate.max(1.0)
                );
                if n >= records {
                    return;
                }
            }
        })
    };
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (ids, done, journal, key_id) = (ids.clone(), done.clone(), journal.clone(), key_id.clone());
            let today = today.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let mut i = t;
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                while i < records {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let seal = if x.is_multiple_of(10) { &ids[0] } else { &ids[(x / 10 % ids.len() as u64) as usize] };
                    let day = 20_000 + i / 1_000_000;
                    let ev = AuditEvent::new(
                        Actor { account: "app".into(), cert_fingerprint: Some("ab".repeat(32)) },
                        "seal.use",
                        &format!("seal:{seal}"),
                        "ok",
                    )
                    .detail("key_id", key_id.clone())
                    .detail("key_version", 1)
                    .detail("alg", "sm2")
                    .detail("input", "message")
                    .detail("digest", hex::encode(seald::crypto::sm3(&i.to_be_bytes())))
                    .change(Change::Add { key: format!("use:{seal}:total"), delta: 1 })
                    .change(Change::Add { key: format!("use:{seal}:{day}"), delta: 1 })
                    .change(Change::Add { key: format!("today:{today}:seal:{seal}"), delta: 1 })
                    .change(Change::Add { key: format!("today:{today}:account:app"), delta: 1 });
                    let _ = journal.append(ev).map_err(|e| e.to_string())?;
                    done.fetch_add(1, Ordering::Relaxed);
                    i += threads;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "a writer thread panicked")??;
    }
    let _ = progress.join();
    off.journal.close();
    println!(
        "{} seals and {records} usage records (busy seal {busy}) in {:.1} s; journal head {}",
        ids.len(),
        started.elapsed().as_secs_f64(),
        off.journal.head_seq()
    );
    Ok(())
}
