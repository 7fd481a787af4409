//! Exports: JSON Lines that carry each record's exact bytes, the anchor before the first, the
//! checkpoints that cover the range, and the latest signed head, so that an auditor can verify them on
//! another machine with only the audit public key.
//!
//! Line 1: `{"seald_audit_export":1,"from":F,"to":T,"anchor_seq":F-1,"anchor_hash":"…"}`;
//! then `{"hash":"…","record":{…}}` per record; last, `{"signed_head":{…}}` when there is one.

use super::segment::{read_head_file, RawRecords, Records};
use super::{AuditError, JournalRecord, SignedHead, VerifyReport, CHECKPOINT_ACTION};
use crate::crypto::PublicKey;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::io::Write;
use std::path::Path;

/// Which records.
#[derive(Debug, Clone, Copy)]
pub struct ExportRange {
    /// First seq (>= 1).
    pub from: u64,
    /// Last seq; extended to the next checkpoint so that the range is covered by a signature.
    pub to: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    seald_audit_export: u32,
    from: u64,
    to: u64,
    anchor_seq: u64,
    anchor_hash: String,
    /// Whether `to` was the last record of the journal when exported: then the journal's latest
    /// signed head must be reached by the records.
    #[serde(default)]
    end_of_journal: bool,
}

#[derive(Serialize, Deserialize)]
struct Line<'a> {
    hash: String,
    #[serde(borrow)]
    record: &'a RawValue,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    signed_head: SignedHead,
}

/// Writes an export of a journal directory; returns the seq range written. Records are read and
/// written one at a time, so memory does not grow with the range; `store` (the daemon's) lets the
/// reading start near `from` instead of at the start of its segment.
pub fn export(
    dir: &Path,
    range: ExportRange,
    out: &mut dyn Write,
    store: Option<&crate::store::Store>,
) -> Result<(u64, u64), AuditError> {
    let seek = |seq: u64| -> Result<Option<(u64, crate::store::Loc)>, AuditError> {
        Ok(store.map(|s| s.seek(seq)).transpose()?.flatten())
    };
    // Before the first remaining record stands the archive anchor (or the start of the chain).
    let base = super::archive::read_anchor(dir)?;
    let from = range.from.max(1).max(base.seq + 1);
    // The journal's last record, and `to` extended to the first checkpoint that signs a head at or
    // beyond it (a checkpoint signs the head just before it).
    let last = last_seq(dir, &seek)?;
    let mut to = range.to.min(last);
    for r in Records::new(dir, to, u64::MAX, seek(to)?)? {
        let (r, _, _) = r?;
        if r.action == CHECKPOINT_ACTION
            && r.details.get("head").and_then(|h| h.get("seq")).and_then(|s| s.as_u64()).is_some_and(|s| s >= to)
        {
            to = to.max(r.seq);
            break;
        }
    }
    let io = |e: std::io::Error| AuditError::Export(e.to_string());
    let mut records = RawRecords::new(dir, from, to, seek(from)?)?.peekable();
    let anchor_hash = if from == base.seq + 1 {
        base.hash_bytes()?
    } else {
        match records.peek() {
            Some(Ok((_, payload, _))) => serde_json::from_slice::<JournalRecord>(payload)
                .ok()
                .and_then(|r| hex::decode(&r.prev_hash).ok())
                .and_then(|h| h.try_into().ok())
                .unwrap_or([0u8; 32]),
            _ => [0u8; 32],
        }
    };
    let header = Header {
        seald_audit_export: 1,
        from,
        to,
        anchor_seq: from - 1,
        anchor_hash: hex::encode(anchor_hash),
        end_of_journal: to >= last,
    };
    writeln!(out, "{}", serde_json::to_string(&header).unwrap_or_default()).map_err(io)?;
    let mut line = Vec::with_capacity(4096);
    for r in records {
        let (seq, payload, hash) = r?;
        if std::str::from_utf8(&payload).is_err() {
            return Err(AuditError::Export(format!("record {seq} is not UTF-8")));
        }
        // The record's stored bytes are its canonical JSON: the line is written around them as
        // they are (what `Line` reads back).
        line.clear();
        line.extend_from_slice(b"{\"hash\":\"");
        let at = line.len();
        line.resize(at + 64, 0);
        let _ = hex::encode_to_slice(hash, &mut line[at..]);
        line.extend_from_slice(b"\",\"record\":");
        line.extend_from_slice(&payload);
        line.extend_from_slice(b"}\n");
        out.write_all(&line).map_err(io)?;
    }
    if let Some(head) = read_head_file(dir)? {
        writeln!(out, "{}", serde_json::to_string(&Trailer { signed_head: head }).unwrap_or_default()).map_err(io)?;
    }
    Ok((from, to))
}

/// The journal's last seq: the last record of the last segment (read from the segment's start, or
/// from the store's last seek entry in it).
fn last_seq(
    dir: &Path,
    seek: &dyn Fn(u64) -> Result<Option<(u64, crate::store::Loc)>, AuditError>,
) -> Result<u64, AuditError> {
    let Some((first, _)) = super::segment::segments(dir)?.last().cloned() else {
        return Ok(super::archive::read_anchor(dir)?.seq);
    };
    let mut last = first.saturating_sub(1);
    for r in Records::new(dir, first, u64::MAX, seek(u64::MAX)?)? {
        last = r?.0.seq;
    }
    Ok(last)
}

/// A parsed export.
#[derive(Debug)]
pub struct Export {
    /// Seq before the first record.
    pub anchor_seq: u64,
    /// The last seq the export says it holds.
    pub to: u64,
    /// Whether it runs to the end of the journal.
    pub end_of_journal: bool,
    /// Its hash.
    pub anchor_hash: [u8; 32],
    /// The records' exact bytes.
    pub records: Vec<Vec<u8>>,
    /// The latest signed head at export time.
    pub signed_head: Option<SignedHead>,
}

impl Export {
    /// Verifies it with the audit public key. The records must reach the `to` the export declares;
    /// the journal's latest signed head counts where it falls inside the range (a partial export ends
    /// before it, and is covered by the checkpoint it was extended to instead).
    pub fn verify(&self, key: &PublicKey) -> VerifyReport {
        let head = self.signed_head.as_ref().filter(|h| self.end_of_journal || h.seq <= self.to);
        let raw: Vec<(Vec<u8>, bool)> = self.records.iter().map(|r| (r.clone(), true)).collect();
        let report = super::verify_records(self.anchor_seq, self.anchor_hash, &raw, Some(key), head);
        declared_end(report, self.to)
    }
}

/// A place in the chain: a seq and the hash of the record there.
pub(super) type ChainAt = (u64, [u8; 32]);

/// Reads an archive export (see `archive.rs`) record by record, checking its chain from the anchor
/// its header names: `each` gets every record with its hash, and says whether to read on. Returns
/// the header's anchor.
pub(super) fn read_archive(
    path: &Path,
    mut each: impl FnMut(JournalRecord, [u8; 32]) -> Result<bool, AuditError>,
) -> Result<ChainAt, AuditError> {
    use std::io::BufRead as _;
    let bad = |why: String| AuditError::Export(format!("{}: {why}", path.display()));
    let f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut lines = std::io::BufReader::with_capacity(1 << 20, f).lines();
    let first = lines.next().ok_or_else(|| bad("is empty".into()))?.map_err(|e| bad(e.to_string()))?;
    let header: Header = serde_json::from_str(&first).map_err(|e| bad(format!("line 1: {e}")))?;
    let anchor_hash: [u8; 32] = hex::decode(&header.anchor_hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad("line 1: anchor_hash is not 32 bytes of hex".into()))?;
    let mut v = super::Verifier::new(header.anchor_seq, anchor_hash, None, None);
    let mut prev = anchor_hash;
    for (i, line) in lines.enumerate() {
        let line = line.map_err(|e| bad(e.to_string()))?;
        if line.trim().is_empty() || serde_json::from_str::<Trailer>(&line).is_ok() {
            continue;
        }
        let l: Line = serde_json::from_str(&line).map_err(|e| bad(format!("line {}: {e}", i + 2)))?;
        let bytes = l.record.get().as_bytes();
        if !v.feed(bytes, true) {
            break;
        }
        let r: JournalRecord = serde_json::from_slice(bytes).map_err(|e| bad(format!("line {}: {e}", i + 2)))?;
        prev = super::record_hash(&prev, bytes);
        if !each(r, prev)? {
            return Ok((header.anchor_seq, anchor_hash));
        }
    }
    if let Some(f) = v.finish().finding {
        return Err(bad(format!("the chain breaks at seq {}: {}", f.seq, f.detail)));
    }
    Ok((header.anchor_seq, anchor_hash))
}

/// The anchor an archive export's header names (its first line only).
pub(super) fn archive_start(path: &Path) -> Result<ChainAt, AuditError> {
    read_archive(path, |_, _| Ok(false))
}

/// An export's records must reach the `to` it declares.
fn declared_end(mut report: VerifyReport, to: u64) -> VerifyReport {
    if report.finding.is_none() && report.last_seq < to {
        report.finding = Some(super::Finding {
            seq: report.last_seq + 1,
            kind: super::FindingKind::TailCut,
            detail: format!("the export declares records up to seq {to}; they end at {}", report.last_seq),
        });
    }
    report
}

/// The signed head in an export file's trailer (its last line), read from the end of the file
/// without reading the rest: given to [`verify_export`], it lets the chain's hash at that head be
/// caught however far back it is.
pub fn export_signed_head(path: &Path) -> Option<SignedHead> {
    use std::io::{Read as _, Seek as _};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let _ = f.seek(std::io::SeekFrom::Start(len.saturating_sub(64 << 10))).ok()?;
    let mut tail = Vec::new();
    let _ = f.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    serde_json::from_str::<Trailer>(last).ok().map(|t| t.signed_head)
}

/// Verifies an export read line by line from `input` (as [`Export::verify`] does, in flat memory
/// whatever its size). `head` is its trailer's signed head when known beforehand
/// ([`export_signed_head`]). `progress` hears the records checked so far now and then.
pub fn verify_export(
    input: impl std::io::BufRead,
    key: &PublicKey,
    head: Option<SignedHead>,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, AuditError> {
    let mut lines = input.lines().enumerate().filter(|(_, l)| !matches!(l, Ok(t) if t.trim().is_empty()));
    let bad = |n: usize, e: &dyn std::fmt::Display| AuditError::Export(format!("line {n}: {e}"));
    let io = |e: std::io::Error| AuditError::Export(e.to_string());
    let (_, first) = lines.next().ok_or_else(|| AuditError::Export("is empty".into()))?;
    let header: Header = serde_json::from_str(&first.map_err(io)?).map_err(|e| bad(1, &e))?;
    if header.seald_audit_export != 1 {
        return Err(AuditError::Export(format!("version {} is not supported", header.seald_audit_export)));
    }
    let anchor_hash: [u8; 32] = hex::decode(&header.anchor_hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad(1, &"anchor_hash is not 32 bytes of hex"))?;
    let hint = head.filter(|h| header.end_of_journal || h.seq <= header.to);
    let mut v = super::Verifier::new(header.anchor_seq, anchor_hash, Some(key), hint.as_ref());
    let (mut head, mut going) = (None, true);
    for (i, line) in lines {
        let line = line.map_err(io)?;
        if let Ok(t) = serde_json::from_str::<Trailer>(&line) {
            head = Some(t.signed_head);
            continue;
        }
        let l: Line = serde_json::from_str(&line).map_err(|e| bad(i + 1, &e))?;
        if going {
            going = v.feed(l.record.get().as_bytes(), true);
            let (n, _) = v.progress();
            if n % 100_000 == 0 {
                progress(n);
            }
        }
    }
    v.set_signed_head(head.filter(|h| header.end_of_journal || h.seq <= header.to));
    Ok(declared_end(v.finish(), header.to))
}

/// Reads an export.
pub fn read_export(text: &str) -> Result<Export, AuditError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let bad = |n: usize, e: &dyn std::fmt::Display| AuditError::Export(format!("line {n}: {e}"));
    let header: Header = serde_json::from_str(lines.next().ok_or_else(|| AuditError::Export("is empty".into()))?)
        .map_err(|e| bad(1, &e))?;
    if header.seald_audit_export != 1 {
        return Err(AuditError::Export(format!("version {} is not supported", header.seald_audit_export)));
    }
    let anchor_hash: [u8; 32] = hex::decode(&header.anchor_hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad(1, &"anchor_hash is not 32 bytes of hex"))?;
    let mut export = Export {
        anchor_seq: header.anchor_seq,
        to: header.to,
        end_of_journal: header.end_of_journal,
        anchor_hash,
        records: Vec::new(),
        signed_head: None,
    };
    for (i, line) in lines.enumerate() {
        if let Ok(t) = serde_json::from_str::<Trailer>(line) {
            export.signed_head = Some(t.signed_head);
            continue;
        }
        let l: Line = serde_json::from_str(line).map_err(|e| bad(i + 2, &e))?;
        export.records.push(l.record.get().as_bytes().to_vec());
    }
    Ok(export)
}
