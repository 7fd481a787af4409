//! The audit journal and the store: nothing acknowledged is lost across kill -9, a torn tail is cut,
//! the store catches up from the journal, and every kind of tampering is found at the right seq,
//! in the journal directory (online) and in an export (offline, with only the public key).

use seald::audit::{
    self, export, read_export, verify_journal_dir, verify_records, Actor, AuditError, AuditEvent, ExportRange,
    FindingKind, Journal, JournalConfig, JournalRecord, Query, SignedHead,
};
use seald::crypto::{self, PublicKey};
use seald::store::{Change, Store};
use signature::hazmat::PrehashSigner;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// An SM2 audit key in memory, standing in for the token (the token signer is tested in softtoken.rs).
struct TestSigner {
    sk: sm2::dsa::SigningKey,
    pk: PublicKey,
}

impl TestSigner {
    fn new(seed: u8) -> Arc<Self> {
        let sk = sm2::dsa::SigningKey::from_slice("1234567812345678", &[seed; 32]).unwrap();
        let pk = PublicKey::Sm2(sm2::PublicKey::from_affine(*sk.verifying_key().as_affine()).unwrap());
        Arc::new(TestSigner { sk, pk })
    }
}

impl signature::Signer<crypto::DerSignature> for TestSigner {
    fn try_sign(&self, message: &[u8]) -> Result<crypto::DerSignature, signature::Error> {
        let PublicKey::Sm2(pk) = &self.pk else { unreachable!() };
        let e = crypto::sm2::e(pk, crypto::sm2::DEFAULT_USER_ID, message).unwrap();
        let sig: sm2::dsa::Signature = self.sk.sign_prehash(&e)?;
        Ok(crypto::DerSignature::new(crypto::raw_to_der(&sig.to_bytes()).unwrap()))
    }
}

impl signature::Keypair for TestSigner {
    type VerifyingKey = PublicKey;
    fn verifying_key(&self) -> PublicKey {
        self.pk.clone()
    }
}

fn config(dir: &Path, every: u64) -> JournalConfig {
    let mut c = JournalConfig::new(dir);
    c.checkpoint_every = every;
    c
}

fn event(i: u64) -> AuditEvent {
    AuditEvent::new(
        Actor { account: format!("app-{}", i % 3), cert_fingerprint: Some("ab".repeat(32)) },
        "sign",
        &format!("seal:{}", i % 5),
        "ok",
    )
    .detail("digest", hex::encode(crypto::sm3(&i.to_be_bytes())))
}

/// A journal of `n` events with checkpoints every `every`, closed; returns the signer.
fn build(dir: &Path, n: u64, every: u64) -> Arc<TestSigner> {
    let signer = TestSigner::new(7);
    let j = Journal::open(config(dir, every), None, Some(signer.clone())).unwrap();
    for i in 0..n {
        let _ = j.append(event(i)).unwrap();
    }
    j.close();
    signer
}

fn segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seg-"))
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 1);
    segs.remove(0)
}

/// The frames of a segment as (offset, payload).
fn frames(path: &Path) -> Vec<(usize, Vec<u8>)> {
    let data = std::fs::read(path).unwrap();
    let (mut off, mut out) = (0, Vec::new());
    while off + 8 <= data.len() {
        let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) as usize;
        out.push((off, data[off + 8..off + 8 + len].to_vec()));
        off += 8 + len;
    }
    out
}

fn write_frames(path: &Path, payloads: &[Vec<u8>]) {
    let mut out = Vec::new();
    for p in payloads {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(p).to_le_bytes());
        out.extend_from_slice(p);
    }
    std::fs::write(path, out).unwrap();
}

fn offline(dir: &Path, key: &PublicKey) -> audit::VerifyReport {
    let mut buf = Vec::new();
    let _ = export(dir, ExportRange { from: 1, to: u64::MAX }, &mut buf, None).unwrap();
    let whole = read_export(std::str::from_utf8(&buf).unwrap()).unwrap().verify(key);
    // Read line by line (flat memory), the verdict is the same.
    let streamed = audit::verify_export(&buf[..], key, None, &mut |_| {}).unwrap();
    assert_eq!(streamed, whole, "streamed and whole verification agree");
    whole
}

#[test]
fn a_journal_with_checkpoints_verifies_online_and_offline_and_answers_queries() {
    let dir = tempfile::tempdir().unwrap();
    let signer = TestSigner::new(7);
    let j = Journal::open(config(dir.path(), 10), None, Some(signer.clone())).unwrap();
    let mut last = 0;
    for i in 0..45 {
        let r = j.append(event(i)).unwrap();
        assert!(r.seq > last, "seqs rise");
        last = r.seq;
    }
    let head = j.checkpoint().unwrap().expect("records were uncovered");
    assert_eq!(head.seq, j.head_seq() - 1, "the checkpoint signs the record before it");
    let used =
        j.query(&Query { actor: Some("app-1".into()), object: Some("seal:1".into()), ..Query::default() }).unwrap();
    assert!(!used.is_empty() && used.iter().all(|r| r.actor.account == "app-1" && r.object == "seal:1"));
    j.close();
    let online = verify_journal_dir(dir.path(), Some(&signer.pk)).unwrap();
    assert!(online.ok(), "{online:?}");
    assert_eq!(online.checkpoints, 5);
    assert_eq!(online.signed_through, Some(online.last_seq - 1));
    let off = offline(dir.path(), &signer.pk);
    assert!(off.ok(), "{off:?}");
    assert_eq!(off.records, online.records);
    // A partial export is covered by the checkpoint after its end and verifies from its anchor.
    let mut buf = Vec::new();
    let (from, to) = export(dir.path(), ExportRange { from: 12, to: 25 }, &mut buf, None).unwrap();
    assert_eq!(from, 12);
    assert!(to > 25, "extended to the covering checkpoint");
    let part = read_export(std::str::from_utf8(&buf).unwrap()).unwrap().verify(&signer.pk);
    assert!(part.ok() && part.signed_through >= Some(25), "{part:?}");
    // Another key does not verify it.
    let other = TestSigner::new(9);
    let bad = verify_journal_dir(dir.path(), Some(&other.pk)).unwrap();
    assert_eq!(bad.finding.unwrap().kind, FindingKind::BadCheckpoint);
}

#[test]
fn a_torn_last_record_is_cut_off_and_the_journal_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let signer = build(dir.path(), 10, 1000);
    let seg = segment(dir.path());
    let f = frames(&seg);
    let (off, payload) = f.last().unwrap().clone();
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(off as u64 + 8 + payload.len() as u64 / 2)
        .unwrap();
    assert!(std::fs::metadata(&seg).unwrap().len() < len);
    let j = Journal::open(config(dir.path(), 1000), None, Some(signer.clone())).unwrap();
    assert_eq!(j.head_seq(), f.len() as u64 - 1, "the torn record is gone");
    let r = j.append(event(99)).unwrap();
    assert_eq!(r.seq, f.len() as u64);
    j.close();
    assert!(verify_journal_dir(dir.path(), Some(&signer.pk)).unwrap().ok());
}

#[test]
fn a_damaged_record_before_the_tail_refuses_start_with_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let _ = build(dir.path(), 10, 1000);
    let seg = segment(dir.path());
    let (off, _) = frames(&seg)[3];
    let mut data = std::fs::read(&seg).unwrap();
    data[off + 20] ^= 0x01;
    std::fs::write(&seg, data).unwrap();
    let err = Journal::open(config(dir.path(), 1000), None, None).unwrap_err();
    match err {
        AuditError::Corrupt { seq, .. } => assert_eq!(seq, 4),
        other => panic!("{other}"),
    }
}

#[test]
fn a_second_process_cannot_open_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let _j = Journal::open(config(dir.path(), 1000), None, None).unwrap();
    let err = Journal::open(config(dir.path(), 1000), None, None).unwrap_err();
    assert!(matches!(err, AuditError::Locked(_)), "{err}");
    assert!(err.to_string().contains(dir.path().to_str().unwrap()));
}

fn put(key: &str, state: &str) -> Change {
    Change::Put { tree: "seals".into(), key: key.into(), value: serde_json::json!({ "state": state }) }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            let _ = std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn a_store_that_lost_its_last_writes_catches_up_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (jdir, sdir, old) = (dir.path().join("journal"), dir.path().join("store"), dir.path().join("store-old"));
    {
        let store = Arc::new(Store::open(&sdir).unwrap());
        let j = Journal::open(config(&jdir, 1000), Some(store.clone()), None).unwrap();
        for i in 0..20 {
            let _ = j.append(event(i).change(put(&format!("s{}", i % 4), &format!("v{i}")))).unwrap();
        }
        j.close();
        store.flush().unwrap();
    }
    copy_dir(&sdir, &old);
    {
        let store = Arc::new(Store::open(&sdir).unwrap());
        let j = Journal::open(config(&jdir, 1000), Some(store.clone()), None).unwrap();
        for i in 20..50 {
            let _ = j
                .append(
                    event(i)
                        .change(put(&format!("s{}", i % 4), &format!("v{i}")))
                        .change(Change::Add { key: "uses".into(), delta: 1 }),
                )
                .unwrap();
        }
        j.close();
    }
    // Lose the store's later commits (as a crash loses those not yet synced): the older copy comes back.
    std::fs::remove_dir_all(&sdir).unwrap();
    std::fs::rename(&old, &sdir).unwrap();
    let store = Arc::new(Store::open(&sdir).unwrap());
    assert_eq!(store.applied_seq().unwrap(), 20);
    let j = Journal::open(config(&jdir, 1000), Some(store.clone()), None).unwrap();
    assert_eq!(store.applied_seq().unwrap(), j.head_seq());
    for k in 0..4 {
        let v: serde_json::Value = store.get("seals", &format!("s{k}")).unwrap().unwrap();
        let last = (20..50).filter(|i| i % 4 == k).max().unwrap();
        assert_eq!(v["state"], format!("v{last}"));
    }
    assert_eq!(store.counter("uses").unwrap(), 30);
}

#[test]
fn two_writers_adding_to_one_counter_end_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("store")).unwrap());
    let j = Arc::new(Journal::open(config(&dir.path().join("journal"), 1000), Some(store.clone()), None).unwrap());
    let n = 400;
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let j = j.clone();
            std::thread::spawn(move || {
                (0..n)
                    .map(|i| {
                        let r = j.append(event(i).change(Change::Add { key: "seal:1:uses".into(), delta: 1 })).unwrap();
                        r.counters[0].1
                    })
                    .collect::<Vec<i64>>()
            })
        })
        .collect();
    let mut seen: Vec<i64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=2 * n as i64).collect::<Vec<_>>(), "every add saw its own new value");
    assert_eq!(store.counter("seal:1:uses").unwrap(), 2 * n as i64);
}

// ---- tampering ----

fn tampered(src: &Path, name: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join(name);
    copy_dir(src, &d);
    let _ = std::fs::remove_file(d.join("LOCK"));
    (t, d)
}

fn finding(dir: &Path, key: &PublicKey) -> (FindingKind, u64) {
    let f = verify_journal_dir(dir, Some(key)).unwrap().finding.expect("tampering must be found");
    (f.kind, f.seq)
}

fn offline_finding(dir: &Path, key: &PublicKey) -> (FindingKind, u64) {
    let f = offline(dir, key).finding.expect("tampering must be found offline");
    (f.kind, f.seq)
}

#[test]
fn every_kind_of_tampering_is_found_at_its_seq_online_and_offline() {
    let base = tempfile::tempdir().unwrap();
    let signer = build(base.path(), 30, 5);
    let key = &signer.pk;
    assert!(verify_journal_dir(base.path(), Some(key)).unwrap().ok());
    let seg = segment(base.path());
    let original = frames(&seg);
    let payloads: Vec<Vec<u8>> = original.iter().map(|(_, p)| p.clone()).collect();
    let seq_of = |i: usize| serde_json::from_slice::<JournalRecord>(&payloads[i]).unwrap().seq;

    // An edited record whose checksum the editor fixed: the chain breaks after it.
    let (_t, d) = tampered(base.path(), "edited");
    let mut p = payloads.clone();
    let text = String::from_utf8(p[7].clone()).unwrap().replace("app-", "APP-");
    p[7] = text.into_bytes();
    write_frames(&segment(&d), &p);
    assert_eq!(finding(&d, key), (FindingKind::Edited, seq_of(7)));
    assert_eq!(offline_finding(&d, key), (FindingKind::Edited, seq_of(7)));

    // An edited byte with the checksum left alone.
    let (_t, d) = tampered(base.path(), "flipped");
    let mut data = std::fs::read(segment(&d)).unwrap();
    data[original[10].0 + 30] ^= 0x20;
    std::fs::write(segment(&d), data).unwrap();
    assert_eq!(finding(&d, key), (FindingKind::Checksum, seq_of(10)));

    // A record removed.
    let (_t, d) = tampered(base.path(), "removed");
    let mut p = payloads.clone();
    let gone = seq_of(12);
    let _ = p.remove(12);
    write_frames(&segment(&d), &p);
    assert_eq!(finding(&d, key), (FindingKind::Removed, gone));
    assert_eq!(offline_finding(&d, key), (FindingKind::Removed, gone));

    // Two records swapped.
    let (_t, d) = tampered(base.path(), "swapped");
    let mut p = payloads.clone();
    p.swap(15, 16);
    write_frames(&segment(&d), &p);
    assert_eq!(finding(&d, key), (FindingKind::Reordered, seq_of(15)));
    assert_eq!(offline_finding(&d, key), (FindingKind::Reordered, seq_of(15)));

    // The tail cut off after a checkpoint; the signed head kept beside the journal says more existed.
    let (_t, d) = tampered(base.path(), "cut");
    let first_cp = payloads
        .iter()
        .position(|p| serde_json::from_slice::<JournalRecord>(p).unwrap().action == audit::CHECKPOINT_ACTION)
        .unwrap();
    write_frames(&segment(&d), &payloads[..=first_cp]);
    assert!(
        verify_records(
            0,
            [0; 32],
            &payloads[..=first_cp].iter().map(|p| (p.clone(), true)).collect::<Vec<_>>(),
            Some(key),
            None
        )
        .ok(),
        "without the signed head the cut is invisible: that is what head.json is for"
    );
    assert_eq!(finding(&d, key), (FindingKind::TailCut, seq_of(first_cp) + 1));
    assert_eq!(offline_finding(&d, key), (FindingKind::TailCut, seq_of(first_cp) + 1));

    // A signed head made by another key is refused, not believed.
    let (_t, d) = tampered(base.path(), "otherkey");
    let other = TestSigner::new(3);
    let mut head: SignedHead = serde_json::from_slice(&std::fs::read(d.join("head.json")).unwrap()).unwrap();
    head.seq += 100;
    let msg = SignedHead::message(head.seq, &hex::decode(&head.hash).unwrap().try_into().unwrap(), head.time_ms);
    head.signature = hex::encode(signature::Signer::try_sign(&*other, &msg).unwrap().into_vec());
    head.key_fingerprint = other.pk.fingerprint();
    std::fs::write(d.join("head.json"), serde_json::to_vec(&head).unwrap()).unwrap();
    assert_eq!(finding(&d, key).0, FindingKind::BadCheckpoint);
}

#[test]
fn a_checkpoint_that_signs_a_forged_head_is_refused() {
    // A well-chained journal whose checkpoint carries a genuine signature over a hash the chain does
    // not have (an insider with the audit key signing a made-up history).
    let signer = TestSigner::new(7);
    let mut prev = [0u8; 32];
    let mut raw = Vec::new();
    for seq in 1..=4u64 {
        let mut rec = JournalRecord {
            seq,
            time_ms: 1,
            actor: Actor::system(),
            action: "x".into(),
            object: "o".into(),
            outcome: "ok".into(),
            details: Default::default(),
            snapshot: vec![],
            prev_hash: hex::encode(prev),
        };
        if seq == 4 {
            let fake = [0x42u8; 32];
            let head = SignedHead {
                seq: 3,
                hash: hex::encode(fake),
                time_ms: 1,
                key_fingerprint: signer.pk.fingerprint(),
                signature: hex::encode(
                    signature::Signer::try_sign(&*signer, &SignedHead::message(3, &fake, 1)).unwrap().into_vec(),
                ),
            };
            rec.action = audit::CHECKPOINT_ACTION.into();
            let _ = rec.details.insert("head".into(), serde_json::to_value(&head).unwrap());
        }
        let payload = serde_json::to_vec(&rec).unwrap();
        prev = audit::record_hash(&prev, &payload);
        raw.push((payload, true));
    }
    let report = verify_records(0, [0; 32], &raw, Some(&signer.pk), None);
    let f = report.finding.unwrap();
    assert_eq!((f.kind, f.seq), (FindingKind::ForgedHead, 3), "{}", f.detail);
}

// ---- kill -9 ----

const CHILD_DIR: &str = "SEALD_CRASH_CHILD_DIR";

/// Not a test on its own: the child process of the kill -9 test. It appends from 32 threads and
/// prints each acknowledged seq.
#[test]
#[ignore = "child process of kill_9_at_random_moments_loses_no_acknowledged_record"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let store = Arc::new(Store::open(&dir.join("store")).unwrap());
    let j = Arc::new(Journal::open(config(&dir.join("journal"), 50), Some(store), Some(TestSigner::new(7))).unwrap());
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let r = j.append(event(i).change(Change::Add { key: format!("c{t}"), delta: 1 })).unwrap();
                    use std::io::Write as _;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {}", r.seq).unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn kill_9_at_random_moments_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = std::collections::BTreeSet::new();
    let mut rng = 0x9e37_79b9_u64;
    for round in 0..20 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Most rounds kill a running writer: the clock starts at its first acknowledgement, so a slow
        // start (a loaded machine) does not turn the round into a kill during open. Every fourth
        // round kills at a random moment from the spawn, which may fall inside open or recovery.
        let from_spawn = round % 4 == 3;
        let run_for = Duration::from_millis(rng % 250);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
            .env(CHILD_DIR, dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(seq) = line.strip_prefix("ack ").and_then(|s| s.parse::<u64>().ok()) {
                    if seen.is_empty() {
                        let _ = first_tx.send(());
                    }
                    seen.push(seq);
                }
            }
            seen
        });
        if !from_spawn {
            // A liveness bound, not a timing check: a writer that acknowledges nothing in a minute
            // is broken.
            if first_rx.recv_timeout(Duration::from_secs(60)).is_err() {
                let _ = child.kill();
                panic!("round {round}: the writer acknowledged nothing in 60 s");
            }
        }
        std::thread::sleep(run_for);
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait().unwrap();
        let seen = reader.join().unwrap();
        assert!(from_spawn || !seen.is_empty(), "round {round}: nothing acknowledged");
        acked.extend(seen);
        // Reopen: every acknowledged seq is there, seqs are dense, the chain and checkpoints verify,
        // and the store has caught up.
        let store = Arc::new(Store::open(&dir.path().join("store")).unwrap());
        let j = Journal::open(config(&dir.path().join("journal"), 50), Some(store.clone()), Some(TestSigner::new(7)))
            .unwrap();
        let head = j.head_seq();
        if let Some(max) = acked.last() {
            assert!(head >= *max, "round {round}: acknowledged seq {max} lost (head {head})");
        }
        let seqs: Vec<u64> = j.records(1, u64::MAX).unwrap().map(|r| r.unwrap().0.seq).collect();
        assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "round {round}: seqs are dense");
        assert_eq!(store.applied_seq().unwrap(), head, "round {round}: store caught up");
        j.close();
        let report = verify_journal_dir(&dir.path().join("journal"), Some(&TestSigner::new(7).pk)).unwrap();
        assert!(report.ok(), "round {round}: {report:?}");
    }
    assert!(acked.len() > 100, "the child acknowledged only {} records in 20 rounds", acked.len());
}

#[test]
fn archiving_moves_a_signed_prefix_to_an_export_and_the_chain_goes_on_from_its_last_hash() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    let signer = TestSigner::new(7);
    let small = |every| {
        let mut c = config(&jdir, every);
        c.segment_bytes = 3_000;
        c
    };
    let j = Journal::open(small(5), None, Some(signer.clone())).unwrap();
    for i in 0..60 {
        let _ = j.append(event(i)).unwrap();
    }
    let _ = j.checkpoint().unwrap();
    // Archiving needs the journal closed.
    let out1 = dir.path().join("archive-1.jsonl");
    assert!(matches!(audit::archive(&jdir, &signer.pk, &out1), Err(AuditError::Locked(_))));
    j.close();
    drop(j);
    let segs_before = std::fs::read_dir(&jdir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().starts_with("seg-"))
        .count();
    assert!(segs_before > 3, "small segments: {segs_before}");
    let (from, upto) = audit::archive(&jdir, &signer.pk, &out1).unwrap().expect("a signed prefix");
    assert_eq!(from, 1);
    let segs_after = std::fs::read_dir(&jdir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().starts_with("seg-"))
        .count();
    assert!(segs_after < segs_before);
    // The archive verifies on its own; the rest verifies from the archive's last hash.
    let a1 = read_export(&std::fs::read_to_string(&out1).unwrap()).unwrap();
    assert!(a1.verify(&signer.pk).ok(), "{:?}", a1.verify(&signer.pk));
    let rest = verify_journal_dir(&jdir, Some(&signer.pk)).unwrap();
    assert!(rest.ok(), "{rest:?}");
    assert_eq!(audit::read_anchor(&jdir).unwrap().seq, upto);
    // The journal goes on after the archive.
    let j = Journal::open(small(5), None, Some(signer.clone())).unwrap();
    assert!(j.head_seq() > upto);
    for i in 0..40 {
        let _ = j.append(event(100 + i)).unwrap();
    }
    let _ = j.checkpoint().unwrap();
    j.close();
    drop(j);
    let out2 = dir.path().join("archive-2.jsonl");
    let (from2, _) = audit::archive(&jdir, &signer.pk, &out2).unwrap().expect("a second signed prefix");
    assert_eq!(from2, upto + 1, "archives follow one another");
    let a2 = read_export(&std::fs::read_to_string(&out2).unwrap()).unwrap();
    assert!(a2.verify(&signer.pk).ok(), "{:?}", a2.verify(&signer.pk));
    // Continuity: the second archive is anchored on the last record of the first.
    let last_of_first =
        a1.records.iter().map(|p| serde_json::from_slice::<JournalRecord>(p).unwrap()).find(|r| r.seq == upto).unwrap();
    let _ = last_of_first;
    let mut prev = a1.anchor_hash;
    for p in &a1.records {
        let r: JournalRecord = serde_json::from_slice(p).unwrap();
        prev = audit::record_hash(&prev, p);
        if r.seq == upto {
            break;
        }
    }
    assert_eq!(a2.anchor_hash, prev);
    assert!(verify_journal_dir(&jdir, Some(&signer.pk)).unwrap().ok());
    // A changed anchor breaks the chain at the first remaining record.
    let mut anchor = audit::read_anchor(&jdir).unwrap();
    anchor.hash = "00".repeat(32);
    std::fs::write(jdir.join("archive.json"), serde_json::to_vec(&anchor).unwrap()).unwrap();
    let f = verify_journal_dir(&jdir, Some(&signer.pk)).unwrap().finding.unwrap();
    assert_eq!((f.kind, f.seq), (FindingKind::Edited, anchor.seq + 1));
}

#[test]
fn an_audit_key_switch_is_vouched_for_by_the_old_key_and_followed_by_verification() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (TestSigner::new(7), TestSigner::new(8));
    let j = Journal::open(config(dir.path(), 10), None, Some(old.clone())).unwrap();
    for i in 0..15 {
        let _ = j.append(event(i)).unwrap();
    }
    let change = AuditEvent::new(Actor::system(), audit::KEY_CHANGE_ACTION, "key:audit", "ok")
        .detail("new_public_key", new.pk.to_spki_pem());
    let receipt = j.rekey(new.clone(), change).unwrap();
    for i in 0..25 {
        let _ = j.append(event(i)).unwrap();
    }
    assert_eq!(
        j.public_key().unwrap().fingerprint(),
        old.pk.fingerprint(),
        "verification still starts from the first key"
    );
    j.close();
    drop(j);
    // From the first key, the whole chain verifies: checkpoints before the switch (and the one that
    // covers it) with the old key, the rest and head.json with the new one.
    let report = verify_journal_dir(dir.path(), Some(&old.pk)).unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(report.checkpoints >= 4 && report.signed_through >= Some(report.last_seq - 1), "{report:?}");
    let records = audit::read_journal(dir.path()).unwrap();
    let covering = records.iter().find(|r| r.action == audit::CHECKPOINT_ACTION && r.seq > receipt.seq).unwrap();
    let head: SignedHead = serde_json::from_value(covering.details["head"].clone()).unwrap();
    assert!(head.verify(&old.pk).is_ok(), "the old key vouches for the switch");
    let last = records.iter().rev().find(|r| r.action == audit::CHECKPOINT_ACTION).unwrap();
    let head: SignedHead = serde_json::from_value(last.details["head"].clone()).unwrap();
    assert!(head.verify(&new.pk).is_ok() && head.verify(&old.pk).is_err(), "the new key signs after the switch");
    // Starting from the new key is refused at the first checkpoint: trust starts at the first key.
    let wrong = verify_journal_dir(dir.path(), Some(&new.pk)).unwrap();
    assert_eq!(wrong.finding.map(|f| f.kind), Some(FindingKind::BadCheckpoint));
    // An unannounced key is refused too: a checkpoint signed by a key no record vouched for.
    let dir2 = tempfile::tempdir().unwrap();
    {
        let j = Journal::open(config(dir2.path(), 5), None, Some(old.clone())).unwrap();
        for i in 0..6 {
            let _ = j.append(event(i)).unwrap();
        }
    }
    {
        let j = Journal::open(config(dir2.path(), 5), None, Some(new.clone())).unwrap();
        for i in 0..6 {
            let _ = j.append(event(i)).unwrap();
        }
    }
    let sneaked = verify_journal_dir(dir2.path(), Some(&old.pk)).unwrap();
    assert_eq!(sneaked.finding.map(|f| f.kind), Some(FindingKind::BadCheckpoint));
}

/// The store's indexes answer queries a page at a time, in both orders, with cursors that chain and
/// that no other query accepts; a restart with the store in step reads no record; a store rebuilt
/// from nothing reads every record once and answers the same.
#[test]
fn indexed_pages_chain_and_a_store_in_step_opens_without_reading_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (jdir, sdir) = (dir.path().join("journal"), dir.path().join("store"));
    let signer = TestSigner::new(7);
    let mut cfg = config(&jdir, 100);
    // Small segments, so pages and reopening cross segment boundaries.
    cfg.segment_bytes = 16 << 10;
    let open = |cfg: JournalConfig| {
        let store = Arc::new(Store::open(&sdir).unwrap());
        Journal::open(cfg, Some(store), Some(signer.clone())).unwrap()
    };
    let j = open(cfg.clone());
    let first = j.opened();
    assert!(first.whole && first.read == 0, "{first:?}");
    for i in 0..600 {
        let _ = j.append(event(i)).unwrap();
    }
    let seal1 = Query { object: Some("seal:1".into()), ..Query::default() };
    let expected: Vec<u64> =
        j.records(1, u64::MAX).unwrap().map(|r| r.unwrap().0).filter(|r| seal1.matches(r)).map(|r| r.seq).collect();
    assert_eq!(expected.len(), 120);
    // Pages of 50, oldest first: 3 pages, in order, no record twice; then newest first, reversed.
    let pages = |j: &Journal, newest: bool| {
        let (mut seqs, mut cursor, mut n) = (Vec::new(), None::<String>, 0);
        loop {
            let p = j.page(&seal1, cursor.as_deref(), newest, 50).unwrap();
            n += 1;
            assert!(p.records.len() <= 50);
            seqs.extend(p.records.iter().map(|r| r.seq));
            match p.next {
                Some(c) => cursor = Some(c),
                None => return (seqs, n),
            }
        }
    };
    let (seqs, n) = pages(&j, false);
    assert_eq!(seqs, expected);
    assert!((3..=4).contains(&n), "{n} pages");
    let (mut back, _) = pages(&j, true);
    back.reverse();
    assert_eq!(back, expected);
    // A cursor is bound to its query: another seal's query refuses it, as does a made-up one.
    let p1 = j.page(&seal1, None, false, 10).unwrap();
    let cursor = p1.next.unwrap();
    let seal2 = Query { object: Some("seal:2".into()), ..Query::default() };
    assert!(matches!(j.page(&seal2, Some(&cursor), false, 10), Err(AuditError::BadCursor)));
    assert!(matches!(j.page(&seal1, Some("zz"), false, 10), Err(AuditError::BadCursor)));
    // By actor, by action with a time window, and by nothing (time order).
    let app2 = Query { actor: Some("app-2".into()), ..Query::default() };
    assert_eq!(j.page(&app2, None, false, 1000).unwrap().records.len(), 200);
    let all = j.page(&Query::default(), None, false, 1000).unwrap().records;
    assert_eq!(all.len(), j.head_seq() as usize, "every record, checkpoints included");
    assert!(all.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
    let t = all[300].time_ms;
    let window = Query { action: Some("sign".into()), from_ms: Some(t), to_ms: Some(t), ..Query::default() };
    let hits = j.page(&window, None, false, 1000).unwrap().records;
    assert!(!hits.is_empty() && hits.iter().all(|r| r.time_ms == t && r.action == "sign"));
    let head = j.head_seq();
    j.close();
    drop(j);

    // In step: nothing is read at open, and the journal goes on where it was.
    let j = open(cfg.clone());
    let again = j.opened();
    assert!(!again.whole && again.read == 0, "{again:?}");
    assert_eq!(j.head_seq(), head);
    let r = j.append(event(600)).unwrap();
    assert_eq!(r.seq, head + 1);
    assert_eq!(pages(&j, false).0, expected, "seal:1 keeps its 120");
    let seal0 = Query { object: Some("seal:0".into()), ..Query::default() };
    let newest = j.page(&seal0, None, true, 1).unwrap().records;
    assert_eq!(newest[0].seq, r.seq, "the new record is indexed (event 600 is on seal:0)");
    j.close();
    drop(j);

    // A store lost and rebuilt: every record read once, the same answers.
    std::fs::remove_dir_all(&sdir).unwrap();
    let j = open(cfg);
    let rebuilt = j.opened();
    assert!(rebuilt.whole && rebuilt.read == j.head_seq() && rebuilt.read > head, "{rebuilt:?}");
    assert_eq!(pages(&j, false).0, expected);
    assert!(verify_journal_dir(&jdir, Some(&signer.pk)).unwrap().ok());
}

#[test]
fn a_new_store_gets_archived_records_back_from_the_archives_or_the_journal_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (jdir, sdir) = (dir.path().join("journal"), dir.path().join("store"));
    let signer = TestSigner::new(7);
    let small = || {
        let mut c = config(&jdir, 5);
        c.segment_bytes = 3_000;
        c
    };
    let mut archives = Vec::new();
    for round in 0..2u64 {
        let store = Arc::new(Store::open(&sdir).unwrap());
        let j = Journal::open(small(), Some(store.clone()), Some(signer.clone())).unwrap();
        for i in 0..40 {
            let n = round * 100 + i;
            let ev = event(n)
                .change(put(&format!("s{}", n % 7), &format!("v{n}")))
                .change(Change::Add { key: "uses".into(), delta: 1 });
            let _ = j.append(ev).unwrap();
        }
        let _ = j.checkpoint().unwrap();
        j.close();
        drop(j);
        drop(store);
        let out = dir.path().join(format!("archive-{round}.jsonl"));
        let _ = audit::archive(&jdir, &signer.pk, &out).unwrap().expect("a signed prefix to archive");
        archives.push(out);
    }
    let anchor = audit::read_anchor(&jdir).unwrap();
    assert!(anchor.seq > 40, "both rounds archived records: {}", anchor.seq);
    // The store that saw every record is the reference.
    let seen = |sdir: &Path| {
        let store = Arc::new(Store::open(sdir).unwrap());
        let j = Journal::open(small(), Some(store.clone()), None).unwrap();
        j.close();
        let values: Vec<(String, serde_json::Value)> = store.scan("seals").unwrap();
        (store.counter("uses").unwrap(), values, store.applied_seq().unwrap())
    };
    let reference = seen(&sdir);
    assert_eq!(reference.0, 80);
    // A new store (an upgrade, a lost one) is rebuilt whole: the archives, then the journal.
    let fresh = dir.path().join("fresh-store");
    assert_eq!(seen(&fresh), reference);
    // Without an archive the journal refuses, naming it, instead of serving a view that lost state.
    let aside = dir.path().join("aside.jsonl");
    std::fs::rename(&archives[0], &aside).unwrap();
    let store = Arc::new(Store::open(&dir.path().join("another-store")).unwrap());
    let err = Journal::open(small(), Some(store), None).unwrap_err();
    assert!(matches!(err, AuditError::StoreBehindArchive { applied: 0, .. }), "{err}");
    assert!(err.to_string().contains("archive-0.jsonl"), "{err}");
    // An archive that does not chain is refused too.
    let mut text = std::fs::read_to_string(&aside).unwrap();
    text = text.replacen("\"state\":\"v1\"", "\"state\":\"vX\"", 1);
    std::fs::write(&archives[0], text).unwrap();
    let store = Arc::new(Store::open(&dir.path().join("a-third-store")).unwrap());
    let err = Journal::open(small(), Some(store), None).unwrap_err();
    assert!(err.to_string().contains("chain"), "{err}");
    // The store in step needs no archive at all.
    std::fs::remove_file(&archives[0]).unwrap();
    assert_eq!(seen(&sdir), reference);
}
