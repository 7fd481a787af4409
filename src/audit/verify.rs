//! Verification: recompute the chain from the stored bytes, check every checkpoint, and name the
//! first seq where anything is wrong. The same code judges a journal directory (online or with the
//! daemon stopped) and an export (offline, with only the public key).

use super::archive::read_anchor;
use super::segment::{read_frames, read_head_file, segments};
use super::{record_hash, AuditError, JournalRecord, SignedHead, CHECKPOINT_ACTION};
use crate::crypto::PublicKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
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
    let mut report = VerifyReport {
        records: 0,
        checkpoints: 0,
        last_seq: anchor_seq,
        signed_through: None,
        signatures_checked: key.is_some(),
        finding: None,
    };
    let parsed: Vec<Option<JournalRecord>> = raw.iter().map(|(p, _)| serde_json::from_slice(p).ok()).collect();
    let present: BTreeSet<u64> = parsed.iter().flatten().map(|r| r.seq).collect();
    let mut hashes: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    let mut prev = anchor_hash;
    let found = |seq, kind, detail: String| Some(Finding { seq, kind, detail });
    // Audit-key switches: a key-change record names the next key, which signs the checkpoints after
    // the first checkpoint covering that record (signed by the key before).
    let mut current: Option<PublicKey> = key.cloned();
    let mut pending: Option<(u64, PublicKey)> = None;
    let mut switches: Vec<(u64, PublicKey)> = Vec::new();
    for (expected, ((payload, crc_ok), rec)) in (anchor_seq + 1..).zip(raw.iter().zip(&parsed)) {
        if !crc_ok {
            report.finding =
                found(expected, FindingKind::Checksum, "the frame's checksum does not match its bytes".into());
            return report;
        }
        let Some(r) = rec else {
            report.finding = found(expected, FindingKind::Edited, "the record no longer decodes".into());
            return report;
        };
        if r.seq != expected {
            report.finding = if r.seq > expected && !present.contains(&expected) {
                found(expected, FindingKind::Removed, format!("seq {expected} is missing (next is {})", r.seq))
            } else {
                found(
                    expected.min(r.seq),
                    FindingKind::Reordered,
                    format!("seq {} stands where {expected} belongs", r.seq),
                )
            };
            return report;
        }
        if r.prev_hash != hex::encode(prev) {
            report.finding = if expected - 1 > anchor_seq {
                found(
                    expected - 1,
                    FindingKind::Edited,
                    format!("its bytes no longer hash to what seq {expected} chains to"),
                )
            } else {
                found(expected, FindingKind::Edited, "prev_hash does not match the anchor".into())
            };
            return report;
        }
        let hash = record_hash(&prev, payload);
        let _ = hashes.insert(r.seq, hash);
        prev = hash;
        report.records += 1;
        report.last_seq = r.seq;
        if r.action == super::KEY_CHANGE_ACTION {
            let next = r
                .details
                .get("new_public_key")
                .and_then(|v| v.as_str())
                .and_then(|pem| PublicKey::from_spki_pem(pem).ok());
            let Some(next) = next else {
                report.finding = found(r.seq, FindingKind::BadCheckpoint, "a key change names no usable key".into());
                return report;
            };
            pending = Some((r.seq, next));
        }
        if r.action == CHECKPOINT_ACTION {
            report.checkpoints += 1;
            let head = r.details.get("head").and_then(|h| serde_json::from_value::<SignedHead>(h.clone()).ok());
            let Some(head) = head else {
                report.finding = found(r.seq, FindingKind::BadCheckpoint, "checkpoint carries no signed head".into());
                return report;
            };
            if let Err(f) = check_head(&head, current.as_ref(), &hashes, anchor_seq, r.seq) {
                report.finding = Some(f);
                return report;
            }
            report.signed_through = Some(head.seq);
            if let Some((at, next)) = pending.take() {
                if head.seq >= at {
                    switches.push((head.seq, next.clone()));
                    if current.is_some() {
                        current = Some(next);
                    }
                } else {
                    pending = Some((at, next));
                }
            }
        }
    }
    if let Some(head) = signed_head {
        // The key in effect for this head: the last switch made at a checkpoint before it.
        let mut key_then: Option<PublicKey> = key.cloned();
        for (at, k) in &switches {
            if head.seq > *at && key_then.is_some() {
                key_then = Some(k.clone());
            }
        }
        let key = key_then.as_ref();
        if head.seq > report.last_seq {
            // Verify the signature first: only a genuine head proves that more existed.
            if let Some(k) = key {
                if let Err(why) = head.verify(k) {
                    report.finding =
                        found(head.seq, FindingKind::BadCheckpoint, format!("the latest signed head: {why}"));
                    return report;
                }
            }
            report.finding = found(
                report.last_seq + 1,
                FindingKind::TailCut,
                format!("a signed head says seq {} existed; the records end at {}", head.seq, report.last_seq),
            );
            return report;
        }
        if let Err(f) = check_head(head, key, &hashes, anchor_seq, report.last_seq) {
            report.finding = Some(f);
            return report;
        }
        report.signed_through = report.signed_through.max(Some(head.seq));
    }
    report
}

fn check_head(
    head: &SignedHead,
    key: Option<&PublicKey>,
    hashes: &BTreeMap<u64, [u8; 32]>,
    anchor_seq: u64,
    at: u64,
) -> Result<(), Finding> {
    if let Some(k) = key {
        head.verify(k).map_err(|why| Finding { seq: at, kind: FindingKind::BadCheckpoint, detail: why })?;
    }
    if head.seq <= anchor_seq {
        return Ok(());
    }
    match hashes.get(&head.seq) {
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
    let mut raw = Vec::new();
    for (_, path) in segments(dir)? {
        let frames = read_frames(&path)?;
        raw.extend(frames.into_iter().map(|f| (f.payload, f.crc_ok)));
    }
    let head = read_head_file(dir)?;
    let anchor = read_anchor(dir)?;
    Ok(verify_records(anchor.seq, anchor.hash_bytes()?, &raw, key, head.as_ref()))
}
