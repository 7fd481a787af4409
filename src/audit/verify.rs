//! Verification: recompute the chain from the stored bytes, check every checkpoint, and name the
//! first seq where anything is wrong. The same code judges a journal directory (online or with the
//! daemon stopped) and an export (offline, with only the public key).

use super::archive::read_anchor;
use super::segment::{read_head_file, segments, FrameReader, Next};
use super::{record_hash, AuditError, JournalRecord, SignedHead, CHECKPOINT_ACTION};
use crate::crypto::PublicKey;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What kind of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A frame's checksum does not match its bytes.
    Checksum,
    /// A record's bytes changed: the chain breaks after it (or it no longer decodes).
    Edited,
    /// A record is missing: the seqs jump.
    Removed,
    /// Records are out of order.
    Reordered,
    /// Records are missing at the end: a signed head says more existed.
    TailCut,
    /// A checkpoint or signed head is not signed by the audit key.
    BadCheckpoint,
    /// A checkpoint signs a head hash that the chain does not have.
    ForgedHead,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Finding {
    /// Where.
    pub seq: u64,
    /// What.
    pub kind: FindingKind,
    /// In words.
    pub detail: String,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Last seq seen.
    pub last_seq: u64,
    /// Highest seq covered by a valid signed head.
    pub signed_through: Option<u64>,
    /// Whether signatures were checked (a public key was given).
    pub signatures_checked: bool,
    /// The first problem, if any.
    pub finding: Option<Finding>,
}

impl VerifyReport {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.finding.is_none()
    }
}

/// Verifies records given as (stored bytes, checksum ok), following the record `anchor_seq` whose hash
/// is `anchor_hash` (0 and zeros for a whole journal).
pub fn verify_records(
    anchor_seq: u64,
    anchor_hash: [u8; 32],
    raw: &[(Vec<u8>, bool)],
    key: Option<&PublicKey>,
    signed_head: Option<&SignedHead>,
) -> VerifyReport {
    let mut v = Verifier::new(anchor_seq, anchor_hash, key, signed_head);
    for (payload, crc_ok) in raw {
        if !v.feed(payload, *crc_ok) {
            break;
        }
    }
    v.finish()
}

/// How many of the latest records' hashes a [`Verifier`] keeps for the heads that checkpoints sign
/// (a checkpoint signs the record just before it).
const RECENT: usize = 1 << 16;

/// The chain checked one record at a time: memory stays flat whatever the journal's length. Feed
/// it every record in stored order, then [`Verifier::finish`].
pub struct Verifier {
    report: VerifyReport,
    anchor_seq: u64,
    prev: [u8; 32],
    expected: u64,
    key: Option<PublicKey>,
    /// Audit-key switches: a key-change record names the next key, which signs the checkpoints
    /// after the first checkpoint covering that record (signed by the key before).
    current: Option<PublicKey>,
    pending: Option<(u64, PublicKey)>,
    switches: Vec<(u64, PublicKey)>,
    /// The latest records' hashes, oldest first.
    recent: std::collections::VecDeque<(u64, [u8; 32])>,
    /// The signed head kept beside the journal, and the chain's hash at its seq once met.
    signed_head: Option<SignedHead>,
    head_hash: Option<[u8; 32]>,
    /// Seqs jumped from `.0` to `.1`: whether `.0` comes later tells a reordering from a removal.
    jumped: Option<(u64, u64)>,
    done: bool,
}

impl Verifier {
    /// A verifier of records after `anchor_seq` (whose hash is `anchor_hash`), checking signatures
    /// with `key` when given, and `signed_head` (the journal's latest) at the end.
    pub fn new(
        anchor_seq: u64,
        anchor_hash: [u8; 32],
        key: Option<&PublicKey>,
        signed_head: Option<&SignedHead>,
    ) -> Self {
        Verifier {
            report: VerifyReport {
                records: 0,
                checkpoints: 0,
                last_seq: anchor_seq,
                signed_through: None,
                signatures_checked: key.is_some(),
                finding: None,
            },
            anchor_seq,
            prev: anchor_hash,
            expected: anchor_seq + 1,
            key: key.cloned(),
            current: key.cloned(),
            pending: None,
            switches: Vec::new(),
            recent: std::collections::VecDeque::with_capacity(1024),
            signed_head: signed_head.cloned(),
            head_hash: None,
            jumped: None,
            done: false,
        }
    }

    fn found(&mut self, seq: u64, kind: FindingKind, detail: String) -> bool {
        self.report.finding = Some(Finding { seq, kind, detail });
        self.done = true;
        false
    }

    /// The audit key the chain's next checkpoint must be signed with (after the switches seen).
    pub fn key_now(&self) -> Option<&PublicKey> {
        self.current.as_ref()
    }

    /// The next stored record. Returns whether more are worth feeding (false once a problem is
    /// found, unless the verifier must read on to name it).
    pub fn feed(&mut self, payload: &[u8], crc_ok: bool) -> bool {
        if self.done {
            return false;
        }
        let rec = serde_json::from_slice::<JournalRecord>(payload).ok();
        if let Some((missing, at)) = self.jumped {
            // Reading on after a jump: only whether the missing seq turns up matters.
            if rec.is_some_and(|r| r.seq == missing) {
                return self.found(
                    missing.min(at),
                    FindingKind::Reordered,
                    format!("seq {at} stands where {missing} belongs"),
                );
            }
            return true;
        }
        let expected = self.expected;
        if !crc_ok {
            return self.found(expected, FindingKind::Checksum, "the frame's checksum does not match its bytes".into());
        }
        let Some(r) = rec else {
            return self.found(expected, FindingKind::Edited, "the record no longer decodes".into());
        };
        if r.seq != expected {
            if r.seq > expected {
                self.jumped = Some((expected, r.seq));
                return true;
            }
            return self.found(
                expected.min(r.seq),
                FindingKind::Reordered,
                format!("seq {} stands where {expected} belongs", r.seq),
            );
        }
        if r.prev_hash != hex::encode(self.prev) {
            return if expected - 1 > self.anchor_seq {
                self.found(
                    expected - 1,
                    FindingKind::Edited,
                    format!("its bytes no longer hash to what seq {expected} chains to"),
                )
            } else {
                self.found(expected, FindingKind::Edited, "prev_hash does not match the anchor".into())
            };
        }
        let hash = record_hash(&self.prev, payload);
        if self.recent.len() == RECENT {
            let _ = self.recent.pop_front();
        }
        self.recent.push_back((r.seq, hash));
        if self.signed_head.as_ref().is_some_and(|h| h.seq == r.seq) {
            self.head_hash = Some(hash);
        }
        self.prev = hash;
        self.expected += 1;
        self.report.records += 1;
        self.report.last_seq = r.seq;
        if r.action == super::KEY_CHANGE_ACTION {
            let next = r
                .details
                .get("new_public_key")
                .and_then(|v| v.as_str())
                .and_then(|pem| PublicKey::from_spki_pem(pem).ok());
            let Some(next) = next else {
                return self.found(r.seq, FindingKind::BadCheckpoint, "a key change names no usable key".into());
            };
            self.pending = Some((r.seq, next));
        }
        if r.action == CHECKPOINT_ACTION {
            self.report.checkpoints += 1;
            let head = r.details.get("head").and_then(|h| serde_json::from_value::<SignedHead>(h.clone()).ok());
            let Some(head) = head else {
                return self.found(r.seq, FindingKind::BadCheckpoint, "checkpoint carries no signed head".into());
            };
            let known = self.recent.iter().rev().find(|(s, _)| *s == head.seq).map(|(_, h)| *h);
            if let Err(f) = check_head(&head, self.current.as_ref(), known, self.anchor_seq, r.seq) {
                self.report.finding = Some(f);
                self.done = true;
                return false;
            }
            self.report.signed_through = Some(head.seq);
            if let Some((at, next)) = self.pending.take() {
                if head.seq >= at {
                    self.switches.push((head.seq, next.clone()));
                    if self.current.is_some() {
                        self.current = Some(next);
                    }
                } else {
                    self.pending = Some((at, next));
                }
            }
        }
        true
    }

    /// The signed head to check at the end, when it comes after the records (an export's trailer).
    pub fn set_signed_head(&mut self, head: Option<SignedHead>) {
        let found =
            head.as_ref().and_then(|h| self.recent.iter().rev().find(|(s, _)| *s == h.seq).map(|(_, hash)| *hash));
        // A head announced at the start (and its hash caught on the way) stays good for the same seq.
        let kept = match (&self.signed_head, &head) {
            (Some(a), Some(b)) if a.seq == b.seq => self.head_hash,
            _ => None,
        };
        self.head_hash = found.or(kept);
        self.signed_head = head;
    }

    /// The records checked so far, and the last seq.
    pub fn progress(&self) -> (u64, u64) {
        (self.report.records, self.report.last_seq)
    }

    /// The verdict, with the signed head kept beside the records checked last.
    pub fn finish(mut self) -> VerifyReport {
        if let Some((missing, at)) = self.jumped.take().filter(|_| !self.done) {
            let _ = self.found(missing, FindingKind::Removed, format!("seq {missing} is missing (next is {at})"));
        }
        if self.done {
            return self.report;
        }
        let Some(head) = self.signed_head.take() else {
            return self.report;
        };
        // The key in effect for this head: the last switch made at a checkpoint before it.
        let mut key_then: Option<PublicKey> = self.key.clone();
        for (at, k) in &self.switches {
            if head.seq > *at && key_then.is_some() {
                key_then = Some(k.clone());
            }
        }
        let key = key_then.as_ref();
        if head.seq > self.report.last_seq {
            // Verify the signature first: only a genuine head proves that more existed.
            if let Some(k) = key {
                if let Err(why) = head.verify(k) {
                    let _ = self.found(head.seq, FindingKind::BadCheckpoint, format!("the latest signed head: {why}"));
                    return self.report;
                }
            }
            let last = self.report.last_seq;
            let _ = self.found(
                last + 1,
                FindingKind::TailCut,
                format!("a signed head says seq {} existed; the records end at {last}", head.seq),
            );
            return self.report;
        }
        if let Err(f) = check_head(&head, key, self.head_hash, self.anchor_seq, self.report.last_seq) {
            self.report.finding = Some(f);
            return self.report;
        }
        self.report.signed_through = self.report.signed_through.max(Some(head.seq));
        self.report
    }
}

/// Checks a signed head against the chain's hash at its seq (`known`, when the verifier has it).
fn check_head(
    head: &SignedHead,
    key: Option<&PublicKey>,
    known: Option<[u8; 32]>,
    anchor_seq: u64,
    at: u64,
) -> Result<(), Finding> {
    if let Some(k) = key {
        head.verify(k).map_err(|why| Finding { seq: at, kind: FindingKind::BadCheckpoint, detail: why })?;
    }
    if head.seq <= anchor_seq {
        return Ok(());
    }
    match known {
        Some(h) if hex::encode(h) == head.hash => Ok(()),
        Some(_) => Err(Finding {
            seq: head.seq,
            kind: FindingKind::ForgedHead,
            detail: format!("the head signed at seq {at} does not match the chain at seq {}", head.seq),
        }),
        None => Err(Finding {
            seq: at,
            kind: FindingKind::ForgedHead,
            detail: format!("the head signed at seq {at} names seq {}, which is not before it", head.seq),
        }),
    }
}

/// Verifies a journal directory (with the daemon stopped, or read-only beside it).
pub fn verify_journal_dir(dir: &Path, key: Option<&PublicKey>) -> Result<VerifyReport, AuditError> {
    let head = read_head_file(dir)?;
    let anchor = read_anchor(dir)?;
    let mut v = Verifier::new(anchor.seq, anchor.hash_bytes()?, key, head.as_ref());
    // One frame at a time: a journal of any length verifies in flat memory.
    'segments: for (_, path) in segments(dir)? {
        let mut reader = FrameReader::open(&path, 0)?;
        while let Next::Frame(f) = reader.next_frame()? {
            if !v.feed(&f.payload, f.crc_ok) {
                break 'segments;
            }
        }
    }
    Ok(v.finish())
}
