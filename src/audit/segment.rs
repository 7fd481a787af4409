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
    /// The checksum stored in the frame.
    pub crc: u32,
}

/// The frames of one segment, read in order from an offset one at a time: memory stays at one
/// frame and a read buffer, whatever the segment's size.
pub(super) struct FrameReader {
    r: std::io::BufReader<File>,
    off: u64,
    len: u64,
    path: PathBuf,
}

/// What [`FrameReader::next_frame`] found.
pub(super) enum Next {
    /// A frame.
    Frame(Frame),
    /// The segment's clean end.
    End,
    /// A frame cut short (or a header that makes no sense) at this offset.
    Short(u64),
}

impl FrameReader {
    /// Reads `path` from `offset` (a frame's start).
    pub(super) fn open(path: &Path, offset: u64) -> Result<Self, AuditError> {
        use std::io::Seek as _;
        let mut f = File::open(path).map_err(io_err(path))?;
        let len = f.metadata().map_err(io_err(path))?.len();
        let _ = f.seek(std::io::SeekFrom::Start(offset)).map_err(io_err(path))?;
        Ok(FrameReader { r: std::io::BufReader::with_capacity(256 << 10, f), off: offset, len, path: path.into() })
    }

    /// The next frame.
    pub(super) fn next_frame(&mut self) -> Result<Next, AuditError> {
        use std::io::Read as _;
        if self.off >= self.len {
            return Ok(Next::End);
        }
        if self.len - self.off < 8 {
            return Ok(Next::Short(self.off));
        }
        let mut head = [0u8; 8];
        self.r.read_exact(&mut head).map_err(io_err(&self.path))?;
        let len = u32::from_le_bytes(head[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().unwrap_or_default());
        if len == 0 || len > MAX_RECORD || self.off + 8 + len as u64 > self.len {
            return Ok(Next::Short(self.off));
        }
        let mut payload = vec![0u8; len];
        self.r.read_exact(&mut payload).map_err(io_err(&self.path))?;
        let crc_ok = crc32fast::hash(&payload) == crc;
        let frame = Frame { offset: self.off, payload, crc_ok, crc };
        self.off += 8 + len as u64;
        Ok(Next::Frame(frame))
    }
}

/// One frame at a known place (a location from the store's indexes), without its neighbours.
pub(super) fn read_frame_at(dir: &Path, loc: &crate::store::Loc) -> Result<Option<Vec<u8>>, AuditError> {
    use std::os::unix::fs::FileExt as _;
    let path = dir.join(format!("seg-{:020}.log", loc.segment));
    let f = match File::open(&path) {
        Ok(f) => f,
        // Archived (see `archive.rs`): not here any more.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let mut buf = vec![0u8; 8 + loc.len as usize];
    f.read_exact_at(&mut buf, loc.offset).map_err(io_err(&path))?;
    let len = u32::from_le_bytes(buf[..4].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap_or_default());
    if len != loc.len || crc32fast::hash(&buf[8..]) != crc {
        return Err(AuditError::Corrupt {
            seq: 0,
            file: path.display().to_string(),
            reason: format!("no intact record at offset {} (the index and the journal disagree)", loc.offset),
        });
    }
    Ok(Some(buf.split_off(8)))
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

/// Where a scan starts: the journal's start, or just after the last record the store indexed.
pub(super) struct ScanFrom {
    pub(super) seq: u64,
    pub(super) hash: [u8; 32],
    /// The segment and offset to read from (`None`: every segment, from the first).
    pub(super) at: Option<(u64, u64)>,
    /// Records since the last checkpoint, at the start.
    pub(super) uncovered: u64,
}

impl ScanFrom {
    /// The journal's start: the archive anchor, or the chain's beginning.
    pub(super) fn start(dir: &Path) -> Result<Self, AuditError> {
        let anchor = read_anchor(dir)?;
        Ok(ScanFrom { seq: anchor.seq, hash: anchor.hash_bytes()?, at: None, uncovered: 0 })
    }

    /// Just after the store's journal tail, when the segment still holds that very record
    /// (same seq, same hash); `None` otherwise, and the scan must start from the beginning.
    pub(super) fn tail(dir: &Path, tail: &crate::store::JournalTail) -> Option<Self> {
        let payload = read_frame_at(dir, &tail.loc).ok()??;
        let r: JournalRecord = serde_json::from_slice(&payload).ok()?;
        let prev: [u8; 32] = hex::decode(&r.prev_hash).ok()?.try_into().ok()?;
        let hash = record_hash(&prev, &payload);
        (r.seq == tail.seq && hex::encode(hash) == tail.hash).then_some(ScanFrom {
            seq: tail.seq,
            hash,
            at: Some((tail.loc.segment, tail.loc.end())),
            uncovered: tail.seq.saturating_sub(tail.checkpoint_seq),
        })
    }
}

/// A record as a scan meets it: the record, its stored bytes, its hash and where it is.
pub(super) struct Met<'a> {
    pub(super) record: &'a JournalRecord,
    pub(super) hash: [u8; 32],
    pub(super) loc: crate::store::Loc,
}

/// Reads the segments from `from`, checks frames, seqs and the chain; cuts a torn tail; refuses
/// corruption.
pub(super) fn scan(
    dir: &Path,
    from: ScanFrom,
    mut each: impl FnMut(Met<'_>) -> Result<(), AuditError>,
) -> Result<Scan, AuditError> {
    let segs = segments(dir)?;
    let (mut head_seq, mut head_hash, mut uncovered) = (from.seq, from.hash, from.uncovered);
    let n = segs.len();
    for (i, (first, path)) in segs.iter().enumerate() {
        let start = match from.at {
            None => 0,
            Some((seg, _)) if *first < seg => continue,
            Some((seg, off)) if *first == seg => off,
            Some(_) => 0,
        };
        let last = i + 1 == n;
        let file = path.display().to_string();
        let mut reader = FrameReader::open(path, start)?;
        let mut cut: Option<u64> = None;
        loop {
            let f = match reader.next_frame()? {
                Next::Frame(f) => f,
                Next::End => break,
                Next::Short(off) => {
                    if !last {
                        return Err(AuditError::Corrupt {
                            seq: head_seq + 1,
                            file: file.clone(),
                            reason: "segment ends in a partial record but is not the last segment".into(),
                        });
                    }
                    cut = Some(off);
                    break;
                }
            };
            let expected = head_seq + 1;
            let corrupt = |reason: String| AuditError::Corrupt { seq: expected, file: file.clone(), reason };
            if !f.crc_ok {
                // A bad checksum on the very last frame of the last segment: never acknowledged.
                if last && matches!(reader.next_frame()?, Next::End) {
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
            let loc = crate::store::Loc { segment: *first, offset: f.offset, len: f.payload.len() as u32 };
            each(Met { record: &r, hash: head_hash, loc })?;
        }
        if let Some(off) = cut {
            tracing::warn!(file = %file, offset = off, seq = head_seq + 1, "journal tail torn (never acknowledged); truncating");
            let f = OpenOptions::new().write(true).open(path).map_err(io_err(path))?;
            f.set_len(off).and_then(|()| f.sync_all()).map_err(io_err(path))?;
        }
    }
    Ok(Scan { head_seq, head_hash, last_segment: segs.last().cloned(), uncovered })
}

/// Every record of a journal directory, read-only.
pub fn read_journal(dir: &Path) -> Result<Vec<JournalRecord>, AuditError> {
    journal_records(dir)?.collect()
}

/// Every record of a journal directory, read-only and one at a time (for `sealctl audit query`
/// with the daemon stopped: memory stays flat whatever the journal's size).
pub fn journal_records(dir: &Path) -> Result<impl Iterator<Item = Result<JournalRecord, AuditError>>, AuditError> {
    Ok(Records::new(dir, 1, u64::MAX, None)?.map(|r| r.map(|(r, _, _)| r)))
}

/// Records `from..=to`, read in order one at a time: memory stays at one record whatever the range.
/// A seek location (from the store's index) starts the reading near `from`; without one, reading
/// starts at the segment that holds `from` (segment names are first seqs). Each is parsed whole.
pub(super) struct Records {
    raw: RawRecords,
    done: bool,
}

impl Records {
    pub(super) fn new(
        dir: &Path,
        from: u64,
        to: u64,
        seek: Option<(u64, crate::store::Loc)>,
    ) -> Result<Self, AuditError> {
        Ok(Records { raw: RawRecords::new(dir, from, to, seek)?, done: false })
    }
}

impl Iterator for Records {
    type Item = Result<StoredRecord, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.raw.next()? {
            Err(e) => Some(Err(e)),
            Ok((_, payload, hash)) => match serde_json::from_slice::<JournalRecord>(&payload) {
                Ok(r) => Some(Ok((r, payload, hash))),
                Err(_) => {
                    self.done = true;
                    None
                }
            },
        }
    }
}

/// A record's seq, its stored bytes and its hash.
pub(super) type RawRecord = (u64, Vec<u8>, [u8; 32]);

/// As [`Records`], parsing of each record only its seq (and, for the first, the hash before it):
/// for whoever passes the bytes on as they are (an export).
pub(super) struct RawRecords {
    segs: std::vec::IntoIter<(u64, PathBuf)>,
    reader: Option<FrameReader>,
    prev: Option<[u8; 32]>,
    from: u64,
    to: u64,
    done: bool,
}

impl RawRecords {
    pub(super) fn new(
        dir: &Path,
        from: u64,
        to: u64,
        seek: Option<(u64, crate::store::Loc)>,
    ) -> Result<Self, AuditError> {
        let all = segments(dir)?;
        let anchor = read_anchor(dir)?;
        // The segment that holds `from`, and where in it to start.
        let holder = all.iter().rposition(|(first, _)| *first <= from).unwrap_or(0);
        let (mut start_seg, mut offset) = (holder, 0u64);
        if let Some((_, loc)) = seek {
            if let Some(i) = all.iter().position(|(first, _)| *first == loc.segment) {
                if i >= holder {
                    (start_seg, offset) = (i, loc.offset);
                }
            }
        }
        let mut segs = all.into_iter().skip(start_seg).collect::<Vec<_>>().into_iter();
        let reader = match segs.next() {
            Some((_, path)) => Some(FrameReader::open(&path, offset)?),
            None => None,
        };
        // From the chain's start, the anchor's hash comes before the first record; elsewhere each
        // record carries the hash before it.
        let prev = (start_seg == 0 && offset == 0).then(|| anchor.hash_bytes()).transpose()?;
        Ok(RawRecords { segs, reader, prev, from, to, done: false })
    }
}

/// What [`RawRecords`] reads of a record.
#[derive(serde::Deserialize)]
struct RecordHead<'a> {
    seq: u64,
    #[serde(borrow)]
    prev_hash: &'a str,
}

impl Iterator for RawRecords {
    type Item = Result<RawRecord, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let reader = self.reader.as_mut()?;
            let frame = match reader.next_frame() {
                Err(e) => return Some(Err(e)),
                Ok(Next::Frame(f)) => f,
                Ok(Next::End | Next::Short(_)) => {
                    self.reader = match self.segs.next() {
                        Some((_, path)) => match FrameReader::open(&path, 0) {
                            Ok(r) => Some(r),
                            Err(e) => return Some(Err(e)),
                        },
                        None => None,
                    };
                    continue;
                }
            };
            let Ok(head) = serde_json::from_slice::<RecordHead<'_>>(&frame.payload) else {
                self.done = true;
                return None;
            };
            let seq = head.seq;
            if seq > self.to {
                self.done = true;
                return None;
            }
            let prev = match self.prev {
                Some(p) => p,
                None => match hex::decode(head.prev_hash).ok().and_then(|h| <[u8; 32]>::try_from(h).ok()) {
                    Some(p) => p,
                    None => {
                        return Some(Err(AuditError::Corrupt {
                            seq,
                            file: "journal".into(),
                            reason: "prev_hash is not 32 bytes of hex".into(),
                        }))
                    }
                },
            };
            let hash = record_hash(&prev, &frame.payload);
            self.prev = Some(hash);
            if seq >= self.from {
                return Some(Ok((seq, frame.payload, hash)));
            }
        }
    }
}

/// Copies the frames of records `from..=to` as they are stored (`[len][crc][payload]`, the segment
/// format) into `out`, checking each frame's checksum and that the records run on without a gap.
/// Only the records before `from` in the first segment read are parsed (for their seq), and nothing
/// is hashed: whoever reads the frames recomputes the chain. `progress` hears (records, bytes) now
/// and then. Returns the bytes written.
pub(super) fn copy_frames(
    dir: &Path,
    from: u64,
    to: u64,
    seek: Option<(u64, crate::store::Loc)>,
    out: &mut dyn std::io::Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, AuditError> {
    #[derive(serde::Deserialize)]
    struct SeqOnly {
        seq: u64,
    }
    let all = segments(dir)?;
    let holder = all.iter().rposition(|(first, _)| *first <= from).unwrap_or(0);
    let (mut start_seg, mut offset) = (holder, 0u64);
    if let Some((_, loc)) = seek {
        if let Some(i) = all.iter().position(|(first, _)| *first == loc.segment) {
            if i >= holder {
                (start_seg, offset) = (i, loc.offset);
            }
        }
    }
    let (mut next, mut written, mut found) = (from, 0u64, false);
    let mut shown = std::time::Instant::now();
    for (first, path) in all.iter().skip(start_seg) {
        if next > to {
            break;
        }
        let file = path.display().to_string();
        let mut reader = FrameReader::open(path, std::mem::take(&mut offset))?;
        loop {
            let f = match reader.next_frame()? {
                Next::Frame(f) => f,
                Next::End => break,
                Next::Short(off) => {
                    return Err(AuditError::Corrupt {
                        seq: next,
                        file,
                        reason: format!("a partial record at offset {off}"),
                    })
                }
            };
            let corrupt = |reason: String| AuditError::Corrupt { seq: next, file: file.clone(), reason };
            if !f.crc_ok {
                return Err(corrupt("checksum mismatch".into()));
            }
            if !found || next == to {
                let seq = serde_json::from_slice::<SeqOnly>(&f.payload)
                    .map_err(|e| corrupt(format!("record does not decode: {e}")))?
                    .seq;
                if !found && seq < from {
                    continue;
                }
                if seq != next {
                    return Err(corrupt(format!("found seq {seq} where {next} belongs (segment {first})")));
                }
                found = true;
            }
            let len = f.payload.len() as u32;
            out.write_all(&len.to_le_bytes())
                .and_then(|()| out.write_all(&f.crc.to_le_bytes()))
                .and_then(|()| out.write_all(&f.payload))
                .map_err(|e| AuditError::Export(e.to_string()))?;
            written += 8 + u64::from(len);
            next += 1;
            if shown.elapsed() >= std::time::Duration::from_secs(1) {
                shown = std::time::Instant::now();
                progress(next - from, written);
            }
            if next > to {
                break;
            }
        }
    }
    if next <= to {
        return Err(AuditError::Corrupt {
            seq: next,
            file: dir.display().to_string(),
            reason: format!("the journal ends before record {to}"),
        });
    }
    progress(next - from, written);
    Ok(written)
}

/// Reads records `from..=to` from the segment files (read-only; for verification and export).
pub(super) fn read_records(dir: &Path, from: u64, to: u64) -> Result<Vec<StoredRecord>, AuditError> {
    Records::new(dir, from, to, None)?.collect()
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
