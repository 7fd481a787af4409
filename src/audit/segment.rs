//! The journal on disk: segment files of CRC-framed records, the signed head kept beside them
//! (`head.json`), and reading them back: frames, records in a range, a scan.
//!
//! A segment is `seg-<first seq, 20 digits>.log`, a run of frames `[len u32 LE][crc32 u32 LE][payload]`.
//! On open, a damaged frame at the very end of the last segment (short, or a bad checksum with nothing
//! valid after it) was never acknowledged: it is cut off and logged. A damaged frame anywhere else is
//! corruption, and open refuses with the seq named.

use super::*;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A record with its exact stored bytes and its hash.
pub type StoredRecord = (JournalRecord, Vec<u8>, [u8; 32]);

/// Largest payload a frame may carry.
pub const MAX_RECORD: usize = 1 << 20;
pub(super) const HEAD_FILE: &str = "head.json";

/// One frame read from a segment.
pub(super) struct Frame {
    pub offset: u64,
    pub payload: Vec<u8>,
    pub crc_ok: bool,
}

/// How a segment ends.
pub(super) enum Tail {
    /// Cleanly.
    Clean,
    /// With a frame that is cut short (or a header that makes no sense) at this offset.
    Short(u64),
}

/// Reads every frame of a segment without judging it.
pub(super) fn read_frames(path: &Path) -> Result<(Vec<Frame>, Tail), AuditError> {
    let data = std::fs::read(path).map_err(io_err(path))?;
    let mut frames = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        if data.len() - off < 8 {
            return Ok((frames, Tail::Short(off as u64)));
        }
        let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(data[off + 4..off + 8].try_into().unwrap_or_default());
        if len == 0 || len > MAX_RECORD || off + 8 + len > data.len() {
            return Ok((frames, Tail::Short(off as u64)));
        }
        let payload = data[off + 8..off + 8 + len].to_vec();
        let crc_ok = crc32fast::hash(&payload) == crc;
        frames.push(Frame { offset: off as u64, payload, crc_ok });
        off += 8 + len;
    }
    Ok((frames, Tail::Clean))
}

/// The segment files, by first seq.
pub(super) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, AuditError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some(first) = name.strip_prefix("seg-").and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse().ok())
        {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The signed head kept beside the journal, if any.
pub(super) fn read_head_file(dir: &Path) -> Result<Option<SignedHead>, AuditError> {
    let path = dir.join(HEAD_FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| AuditError::Io { path: path.display().to_string(), message: format!("bad signed head: {e}") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

pub(super) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// What open found: the durable records' head and the segment to append to.
pub(super) struct Scan {
    pub(super) head_seq: u64,
    pub(super) head_hash: [u8; 32],
    pub(super) last_segment: Option<(u64, PathBuf)>,
    /// Records since the last checkpoint.
    pub(super) uncovered: u64,
}

/// Reads every segment, checks frames, seqs and the chain; cuts a torn tail; refuses corruption.
pub(super) fn scan(
    dir: &Path,
    mut each: impl FnMut(&JournalRecord, u64) -> Result<(), AuditError>,
) -> Result<Scan, AuditError> {
    let segs = segments(dir)?;
    let anchor = read_anchor(dir)?;
    let (mut head_seq, mut head_hash, mut uncovered) = (anchor.seq, anchor.hash_bytes()?, 0u64);
    let n = segs.len();
    for (i, (_, path)) in segs.iter().enumerate() {
        let last = i + 1 == n;
        let file = path.display().to_string();
        let (frames, tail) = read_frames(path)?;
        let mut cut: Option<u64> = None;
        for (j, f) in frames.iter().enumerate() {
            let expected = head_seq + 1;
            let corrupt = |reason: String| AuditError::Corrupt { seq: expected, file: file.clone(), reason };
            if !f.crc_ok {
                if last && j + 1 == frames.len() && matches!(tail, Tail::Clean) {
                    cut = Some(f.offset);
                    break;
                }
                return Err(corrupt("checksum mismatch".into()));
            }
            let r: JournalRecord =
                serde_json::from_slice(&f.payload).map_err(|e| corrupt(format!("record does not decode: {e}")))?;
            if r.seq != expected {
                return Err(corrupt(format!("found seq {} where {expected} belongs", r.seq)));
            }
            if r.prev_hash != hex::encode(head_hash) {
                return Err(corrupt("prev_hash does not match the record before it".into()));
            }
            head_hash = record_hash(&head_hash, &f.payload);
            head_seq = r.seq;
            uncovered = if r.action == super::CHECKPOINT_ACTION { 0 } else { uncovered + 1 };
            each(&r, head_seq)?;
        }
        if let (Tail::Short(off), None) = (&tail, cut) {
            if !last {
                return Err(AuditError::Corrupt {
                    seq: head_seq + 1,
                    file: file.clone(),
                    reason: "segment ends in a partial record but is not the last segment".into(),
                });
            }
            cut = Some(*off);
        }
        if let Some(off) = cut {
            tracing::warn!(file = %file, offset = off, seq = head_seq + 1, "journal tail torn (never acknowledged); truncating");
            let f = OpenOptions::new().write(true).open(path).map_err(io_err(path))?;
            f.set_len(off).and_then(|()| f.sync_all()).map_err(io_err(path))?;
        }
    }
    Ok(Scan { head_seq, head_hash, last_segment: segs.last().cloned(), uncovered })
}

/// Every record of a journal directory, read-only (for `sealctl audit query` with the daemon stopped).
pub fn read_journal(dir: &Path) -> Result<Vec<JournalRecord>, AuditError> {
    Ok(read_records(dir, 1, u64::MAX)?.into_iter().map(|(r, _, _)| r).collect())
}

/// Reads records `from..=to` from the segment files (read-only; for verification and export).
pub(super) fn read_records(dir: &Path, from: u64, to: u64) -> Result<Vec<StoredRecord>, AuditError> {
    let mut out = Vec::new();
    let mut prev = read_anchor(dir)?.hash_bytes()?;
    for (_, path) in segments(dir)? {
        let (frames, _) = read_frames(&path)?;
        for f in frames {
            let Ok(r) = serde_json::from_slice::<JournalRecord>(&f.payload) else {
                break;
            };
            if r.seq > to {
                return Ok(out);
            }
            let hash = record_hash(&prev, &f.payload);
            prev = hash;
            if r.seq >= from {
                out.push((r, f.payload, hash));
            }
        }
    }
    Ok(out)
}

pub(super) fn write_head_file(dir: &Path, head: &SignedHead) -> Result<(), AuditError> {
    let path = dir.join(HEAD_FILE);
    let tmp = dir.join(".head.json.tmp");
    let bytes = serde_json::to_vec_pretty(head).map_err(|e| AuditError::Checkpoint(e.to_string()))?;
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}
