//! Segment files and the writer thread.
//!
//! A segment is `seg-<first seq, 20 digits>.log`, a run of frames `[len u32 LE][crc32 u32 LE][payload]`.
//! On open, a damaged frame at the very end of the last segment (short, or a bad checksum with nothing
//! valid after it) was never acknowledged: it is cut off and logged. A damaged frame anywhere else is
//! corruption, and open refuses with the seq named.

use super::{io_err, now_ms, record_hash, AuditError, AuditEvent, JournalRecord, Receipt, SignedHead};
use crate::crypto::KeySigner;
use crate::crypto::PublicKey;
use crate::store::Store;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A record with its exact stored bytes and its hash.
pub type StoredRecord = (JournalRecord, Vec<u8>, [u8; 32]);

/// Largest payload a frame may carry.
pub const MAX_RECORD: usize = 1 << 20;
const HEAD_FILE: &str = "head.json";

/// Journal settings.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Directory of the segment files.
    pub dir: PathBuf,
    /// fdatasync every batch. Only benchmarks turn this off.
    pub sync: bool,
    /// Checkpoint after this many records.
    pub checkpoint_every: u64,
    /// ... or after this long with records not yet covered.
    pub checkpoint_interval: Duration,
    /// Start a new segment beyond this size.
    pub segment_bytes: u64,
    /// Most records in one batch.
    pub max_batch: usize,
}

impl JournalConfig {
    /// Defaults: durable, checkpoint every 1000 records or 60 s, 64 MiB segments.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            sync: true,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            segment_bytes: 64 << 20,
            max_batch: 4096,
        }
    }
}

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

/// Where the journal's remaining segments begin: after the last archived record (or at the start).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Anchor {
    /// The last archived seq (0: nothing archived).
    pub seq: u64,
    /// Its hash, hex (64 zeros: nothing archived).
    pub hash: String,
    /// The archive exports made so far, oldest first.
    #[serde(default)]
    pub archives: Vec<String>,
}

impl Anchor {
    /// The hash as bytes.
    pub fn hash_bytes(&self) -> Result<[u8; 32], AuditError> {
        if self.seq == 0 && self.hash.is_empty() {
            return Ok([0u8; 32]);
        }
        hex::decode(&self.hash).ok().and_then(|h| h.try_into().ok()).ok_or_else(|| AuditError::Io {
            path: ARCHIVE_FILE.into(),
            message: "anchor hash is not 32 bytes of hex".into(),
        })
    }
}

const ARCHIVE_FILE: &str = "archive.json";

/// The anchor recorded by archiving, or the start of the chain.
pub fn read_anchor(dir: &Path) -> Result<Anchor, AuditError> {
    let path = dir.join(ARCHIVE_FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| AuditError::Io {
            path: path.display().to_string(),
            message: format!("bad archive anchor: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Anchor::default()),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Archives the oldest segments: with the journal closed, checks the whole journal (signatures
/// included), writes every whole segment whose records are covered by a signed checkpoint to an
/// export at `out`, records the new anchor (last archived seq and hash) in `archive.json`, and only
/// then removes those segments. The remaining journal verifies from the anchor; the export verifies
/// on its own with the public key. Returns the archived seq range, or `None` if nothing qualifies.
pub fn archive(dir: &Path, key: &PublicKey, out: &Path) -> Result<Option<(u64, u64)>, AuditError> {
    let lock_path = dir.join("LOCK");
    let lock =
        OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_err(&lock_path))?;
    if lock.try_lock().is_err() {
        return Err(AuditError::Locked(dir.display().to_string()));
    }
    let report = super::verify_journal_dir(dir, Some(key))?;
    if let Some(f) = report.finding {
        return Err(AuditError::Corrupt {
            seq: f.seq,
            file: dir.display().to_string(),
            reason: format!("not archived: {:?}: {}", f.kind, f.detail),
        });
    }
    let Some(signed) = report.signed_through else {
        return Ok(None);
    };
    let segs = segments(dir)?;
    let anchor = read_anchor(dir)?;
    // Whole segments, never the last (the one being appended to), all of whose records are signed.
    let mut take = Vec::new();
    for w in segs.windows(2) {
        let last_in_segment = w[1].0 - 1;
        if last_in_segment <= signed {
            take.push((w[0].clone(), last_in_segment));
        }
    }
    let Some((_, upto)) = take.last().cloned() else {
        return Ok(None);
    };
    let from = anchor.seq + 1;
    let mut file = File::create(out).map_err(io_err(out))?;
    let _ = super::export(dir, super::ExportRange { from, to: upto }, &mut file)?;
    file.sync_all().map_err(io_err(out))?;
    let upto_hash = read_records(dir, upto, upto)?.first().map(|(_, _, h)| *h).ok_or_else(|| AuditError::Corrupt {
        seq: upto,
        file: dir.display().to_string(),
        reason: "record vanished".into(),
    })?;
    let mut archives = anchor.archives;
    archives.push(out.display().to_string());
    let next = Anchor { seq: upto, hash: hex::encode(upto_hash), archives };
    let tmp = dir.join(".archive.json.tmp");
    let bytes = serde_json::to_vec_pretty(&next)
        .map_err(|e| AuditError::Io { path: tmp.display().to_string(), message: e.to_string() })?;
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, dir.join(ARCHIVE_FILE)).map_err(io_err(dir))?;
    sync_dir(dir)?;
    for ((_, path), _) in &take {
        std::fs::remove_file(path).map_err(io_err(path))?;
    }
    sync_dir(dir)?;
    tracing::info!(from, to = upto, export = %out.display(), "journal segments archived");
    Ok(Some((from, upto)))
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

fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// What open found: the durable records' head and the segment to append to.
struct Scan {
    head_seq: u64,
    head_hash: [u8; 32],
    last_segment: Option<(u64, PathBuf)>,
    /// Records since the last checkpoint.
    uncovered: u64,
}

/// Reads every segment, checks frames, seqs and the chain; cuts a torn tail; refuses corruption.
fn scan(dir: &Path, mut each: impl FnMut(&JournalRecord, u64) -> Result<(), AuditError>) -> Result<Scan, AuditError> {
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

enum Request {
    Append(AuditEvent, SyncSender<Result<Receipt, AuditError>>),
    Checkpoint(SyncSender<Result<Option<SignedHead>, AuditError>>),
    Rekey(Arc<dyn KeySigner>, AuditEvent, SyncSender<Result<Receipt, AuditError>>),
}

struct Shared {
    dir: PathBuf,
    durable_seq: Mutex<u64>,
    failed: Mutex<Option<String>>,
    /// The key verification starts from (the first audit key; later keys follow from key-change
    /// records that the key before them signed).
    anchor: Mutex<Option<PublicKey>>,
}

/// The open journal. Appends from any thread; one writer thread does the I/O.
pub struct Journal {
    shared: Arc<Shared>,
    tx: Mutex<Option<Sender<Request>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    _lock: File,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("dir", &self.shared.dir).finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens the journal: locks it, scans and checks every segment, cuts a torn tail, brings the
    /// store up to date by replaying what it lacks, and starts the writer.
    pub fn open(
        cfg: JournalConfig,
        store: Option<Arc<Store>>,
        signer: Option<Arc<dyn KeySigner>>,
    ) -> Result<Self, AuditError> {
        let dir = cfg.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock_path = dir.join("LOCK");
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_err(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(AuditError::Locked(dir.display().to_string()));
        }
        let applied = match &store {
            Some(s) => s.applied_seq()?,
            None => u64::MAX,
        };
        let mut replay: Vec<(u64, Vec<crate::store::Change>)> = Vec::new();
        let mut replayed = 0u64;
        let scan = scan(&dir, |r, seq| {
            if seq > applied {
                replay.push((seq, r.snapshot.clone()));
                if replay.len() >= 1024 {
                    replayed += flush_replay(store.as_deref(), &mut replay)?;
                }
            }
            Ok(())
        })?;
        replayed += flush_replay(store.as_deref(), &mut replay)?;
        if let Some(s) = &store {
            if s.applied_seq()? > scan.head_seq {
                return Err(AuditError::Corrupt {
                    seq: scan.head_seq + 1,
                    file: dir.display().to_string(),
                    reason: format!(
                        "the store has applied seq {} but the journal ends at {}: journal records are missing",
                        s.applied_seq()?,
                        scan.head_seq
                    ),
                });
            }
        }
        if replayed > 0 {
            tracing::info!(records = replayed, "store brought up to date from the journal");
        }
        let (seg_first, path) = match scan.last_segment {
            Some(s) => s,
            None => {
                let p = dir.join(format!("seg-{:020}.log", scan.head_seq + 1));
                (scan.head_seq + 1, p)
            }
        };
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
        let file_len = file.metadata().map_err(io_err(&path))?.len();
        sync_dir(&dir)?;
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            durable_seq: Mutex::new(scan.head_seq),
            failed: Mutex::new(None),
            anchor: Mutex::new(signer.as_ref().map(|s| s.verifying_key())),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            cfg,
            file,
            file_len,
            seg_first,
            head_seq: scan.head_seq,
            head_hash: scan.head_hash,
            uncovered: scan.uncovered,
            last_checkpoint: Instant::now(),
            store,
            signer,
            shared: shared.clone(),
            closing: false,
        };
        let handle = std::thread::Builder::new()
            .name("audit-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::Io { path: dir.display().to_string(), message: e.to_string() })?;
        tracing::info!(dir = %shared.dir.display(), head = scan.head_seq, "audit journal open");
        Ok(Journal { shared, tx: Mutex::new(Some(tx)), writer: Mutex::new(Some(handle)), _lock: lock })
    }

    /// Appends an event and returns once it is durable (and its changes applied to the store).
    pub fn append(&self, event: AuditEvent) -> Result<Receipt, AuditError> {
        let (reply, wait) = mpsc::sync_channel(1);
        self.send(Request::Append(event, reply))?;
        wait.recv().map_err(|_| AuditError::Failed("the journal writer stopped".into()))?
    }

    /// Writes a checkpoint now (if records are uncovered); returns the signed head.
    pub fn checkpoint(&self) -> Result<Option<SignedHead>, AuditError> {
        let (reply, wait) = mpsc::sync_channel(1);
        self.send(Request::Checkpoint(reply))?;
        wait.recv().map_err(|_| AuditError::Failed("the journal writer stopped".into()))?
    }

    fn send(&self, r: Request) -> Result<(), AuditError> {
        if let Some(why) = self.shared.failed.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(AuditError::Failed(why));
        }
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.as_ref()
            .ok_or_else(|| AuditError::Failed("journal closed".into()))?
            .send(r)
            .map_err(|_| AuditError::Failed("the journal writer stopped".into()))
    }

    /// Why the journal stopped accepting records, if it did.
    pub fn failure(&self) -> Option<String> {
        self.shared.failed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The highest durable seq.
    pub fn head_seq(&self) -> u64 {
        *self.shared.durable_seq.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The key verification starts from: the audit key when checkpoints are signed, or the first
    /// audit key after a rotation (see [`Journal::set_anchor`]).
    pub fn public_key(&self) -> Option<PublicKey> {
        self.shared.anchor.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sets the key verification starts from, when it is not the current audit key (after a rotation).
    pub fn set_anchor(&self, key: PublicKey) {
        *self.shared.anchor.lock().unwrap_or_else(|p| p.into_inner()) = Some(key);
    }

    /// Switches the audit key: appends `event` (which must carry the new key, see
    /// [`super::KEY_CHANGE_ACTION`]), covers it with a checkpoint that the current key signs, and only
    /// then signs with `signer`. Returns once the event and its checkpoint are durable.
    pub fn rekey(&self, signer: Arc<dyn KeySigner>, event: AuditEvent) -> Result<Receipt, AuditError> {
        let (reply, wait) = mpsc::sync_channel(1);
        self.send(Request::Rekey(signer, event, reply))?;
        wait.recv().map_err(|_| AuditError::Failed("the journal writer stopped".into()))?
    }

    /// Durable records with `from <= seq <= to`, with their exact stored bytes and hashes.
    pub fn records(&self, from: u64, to: u64) -> Result<Vec<StoredRecord>, AuditError> {
        let limit = self.head_seq().min(to);
        read_records(&self.shared.dir, from, limit)
    }

    /// Records matching a query, oldest first: "who used which seal when, on which digest".
    pub fn query(&self, q: &Query) -> Result<Vec<JournalRecord>, AuditError> {
        Ok(self
            .records(1, u64::MAX)?
            .into_iter()
            .map(|(r, _, _)| r)
            .filter(|r| q.from_ms.is_none_or(|t| r.time_ms >= t) && q.to_ms.is_none_or(|t| r.time_ms <= t))
            .filter(|r| q.actor.as_ref().is_none_or(|a| r.actor.account == *a))
            .filter(|r| q.action.as_ref().is_none_or(|a| r.action == *a))
            .filter(|r| q.object.as_ref().is_none_or(|o| r.object == *o))
            .collect())
    }

    /// Stops the writer after the requests already queued; further appends fail.
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// Every record of a journal directory, read-only (for `sealctl audit query` with the daemon stopped).
pub fn read_journal(dir: &Path) -> Result<Vec<JournalRecord>, AuditError> {
    Ok(read_records(dir, 1, u64::MAX)?.into_iter().map(|(r, _, _)| r).collect())
}

impl Query {
    /// Whether a record matches every given field.
    pub fn matches(&self, r: &JournalRecord) -> bool {
        self.from_ms.is_none_or(|t| r.time_ms >= t)
            && self.to_ms.is_none_or(|t| r.time_ms <= t)
            && self.actor.as_ref().is_none_or(|a| r.actor.account == *a)
            && self.action.as_ref().is_none_or(|a| r.action == *a)
            && self.object.as_ref().is_none_or(|o| r.object == *o)
    }
}

/// A journal query; every given field must match.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Earliest time, ms.
    pub from_ms: Option<u64>,
    /// Latest time, ms.
    pub to_ms: Option<u64>,
    /// Account.
    pub actor: Option<String>,
    /// Action.
    pub action: Option<String>,
    /// Object.
    pub object: Option<String>,
}

fn flush_replay(store: Option<&Store>, replay: &mut Vec<(u64, Vec<crate::store::Change>)>) -> Result<u64, AuditError> {
    let Some(store) = store else {
        replay.clear();
        return Ok(0);
    };
    if replay.is_empty() {
        return Ok(0);
    }
    let batch: Vec<(u64, &[crate::store::Change])> = replay.iter().map(|(s, c)| (*s, c.as_slice())).collect();
    let _ = store.apply(&batch)?;
    let n = replay.len() as u64;
    replay.clear();
    Ok(n)
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

struct Writer {
    cfg: JournalConfig,
    file: File,
    file_len: u64,
    seg_first: u64,
    head_seq: u64,
    head_hash: [u8; 32],
    uncovered: u64,
    last_checkpoint: Instant,
    store: Option<Arc<Store>>,
    signer: Option<Arc<dyn KeySigner>>,
    shared: Arc<Shared>,
    /// Set when the journal closes: the last records get a checkpoint whatever the schedule says.
    closing: bool,
}

enum Reply {
    Append(SyncSender<Result<Receipt, AuditError>>, u64, [u8; 32]),
    Checkpoint(SyncSender<Result<Option<SignedHead>, AuditError>>),
}

impl Writer {
    fn run(mut self, rx: Receiver<Request>) {
        loop {
            let wait = if self.signer.is_some() && self.uncovered > 0 {
                self.cfg
                    .checkpoint_interval
                    .saturating_sub(self.last_checkpoint.elapsed())
                    .max(Duration::from_millis(1))
            } else {
                Duration::from_secs(3600)
            };
            let mut batch = Vec::new();
            match rx.recv_timeout(wait) {
                Ok(r) => batch.push(r),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < self.cfg.max_batch {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            // A key switch splits the batch: what came before is signed by the old key.
            while let Some(i) = batch.iter().position(|r| matches!(r, Request::Rekey(..))) {
                let rest = batch.split_off(i + 1);
                let Some(Request::Rekey(signer, event, reply)) = batch.pop() else { break };
                self.commit(std::mem::take(&mut batch));
                self.rekey(signer, event, reply);
                batch = rest;
            }
            self.commit(batch);
        }
        // Closing: cover what is uncovered, so the signed head is the true end.
        if self.signer.is_some() && self.uncovered > 0 {
            self.closing = true;
            self.commit(Vec::new());
        }
    }

    fn rekey(&mut self, signer: Arc<dyn KeySigner>, event: AuditEvent, reply: SyncSender<Result<Receipt, AuditError>>) {
        if self.signer.is_none() {
            let _ = reply.send(Err(AuditError::Checkpoint("this journal signs no checkpoints".into())));
            return;
        }
        let (append, appended) = mpsc::sync_channel(1);
        let (checkpoint, checkpointed) = mpsc::sync_channel(1);
        self.commit(vec![Request::Append(event, append), Request::Checkpoint(checkpoint)]);
        let receipt = appended.try_recv().unwrap_or_else(|_| Err(AuditError::Failed("no answer".into())));
        let signed = checkpointed.try_recv().unwrap_or_else(|_| Err(AuditError::Failed("no answer".into())));
        let result = match (receipt, signed) {
            (Ok(r), Ok(Some(_))) => {
                tracing::warn!(key = %signer.verifying_key().fingerprint(), "audit key switched; later checkpoints use it");
                self.signer = Some(signer);
                Ok(r)
            }
            (Ok(_), _) => Err(AuditError::Checkpoint("the key change was not covered by a checkpoint".into())),
            (Err(e), _) => Err(e),
        };
        let _ = reply.send(result);
    }

    fn fail(&self, why: String) -> AuditError {
        tracing::error!(reason = %why, "audit journal stops accepting records");
        *self.shared.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        AuditError::Failed(why)
    }

    fn commit(&mut self, batch: Vec<Request>) {
        if let Some(why) = self.shared.failed.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            for r in batch {
                match r {
                    Request::Append(_, reply) => {
                        let _ = reply.send(Err(AuditError::Failed(why.clone())));
                    }
                    Request::Checkpoint(reply) => {
                        let _ = reply.send(Err(AuditError::Failed(why.clone())));
                    }
                    Request::Rekey(_, _, reply) => {
                        let _ = reply.send(Err(AuditError::Failed(why.clone())));
                    }
                }
            }
            return;
        }
        let (start_seq, start_hash) = (self.head_seq, self.head_hash);
        let mut buf = Vec::new();
        let mut replies = Vec::new();
        let mut changes: Vec<(u64, Vec<crate::store::Change>)> = Vec::new();
        let mut force_checkpoint = false;
        let now = now_ms();
        for r in batch {
            match r {
                Request::Append(ev, reply) => match self.stage(ev, now, &mut buf) {
                    Some((seq, hash, snapshot)) => {
                        self.uncovered += 1;
                        changes.push((seq, snapshot));
                        replies.push(Reply::Append(reply, seq, hash));
                    }
                    None => {
                        let _ = reply.send(Err(AuditError::Failed("record too large or not encodable".into())));
                    }
                },
                Request::Checkpoint(reply) => {
                    force_checkpoint = true;
                    replies.push(Reply::Checkpoint(reply));
                }
                Request::Rekey(_, _, reply) => {
                    let _ = reply.send(Err(AuditError::Failed("a key switch travels alone".into())));
                }
            }
        }
        let due = self.uncovered > 0
            && (force_checkpoint
                || self.closing
                || self.uncovered >= self.cfg.checkpoint_every
                || self.last_checkpoint.elapsed() >= self.cfg.checkpoint_interval);
        let mut signed = None;
        if due && self.signer.is_some() {
            match self.checkpoint_record(now, &mut buf) {
                Ok(h) => {
                    changes.push((self.head_seq, Vec::new()));
                    signed = Some(h);
                }
                Err(e) => tracing::error!(error = %e, "checkpoint not written; will retry"),
            }
        }
        if buf.is_empty() {
            for r in replies {
                if let Reply::Checkpoint(reply) = r {
                    let _ = reply.send(Ok(None));
                }
            }
            return;
        }
        let result = self.write(&buf, start_seq + 1).and_then(|()| {
            let batch: Vec<(u64, &[crate::store::Change])> = changes.iter().map(|(s, c)| (*s, c.as_slice())).collect();
            match &self.store {
                Some(store) => store.apply(&batch).map_err(AuditError::from),
                None => Ok(Vec::new()),
            }
        });
        let counters = match result {
            Ok(c) => c,
            Err(e) => {
                // Nothing in this batch was acknowledged; a restart finds what is durable and replays.
                self.head_seq = start_seq;
                self.head_hash = start_hash;
                let err = self.fail(e.to_string());
                for r in replies {
                    match r {
                        Reply::Append(reply, ..) => {
                            let _ = reply.send(Err(AuditError::Failed(err.to_string())));
                        }
                        Reply::Checkpoint(reply) => {
                            let _ = reply.send(Err(AuditError::Failed(err.to_string())));
                        }
                    }
                }
                return;
            }
        };
        *self.shared.durable_seq.lock().unwrap_or_else(|p| p.into_inner()) = self.head_seq;
        if let Some(h) = &signed {
            self.uncovered = 0;
            self.last_checkpoint = Instant::now();
            if let Err(e) = write_head_file(&self.shared.dir, h) {
                tracing::error!(error = %e, "signed head file not written");
            }
        }
        for r in replies {
            match r {
                Reply::Append(reply, seq, hash) => {
                    let counters =
                        counters.iter().filter(|(s, _, _)| *s == seq).map(|(_, k, v)| (k.clone(), *v)).collect();
                    let _ = reply.send(Ok(Receipt { seq, hash, counters }));
                }
                Reply::Checkpoint(reply) => {
                    let _ = reply.send(Ok(signed.clone()));
                }
            }
        }
    }

    /// Appends a checkpoint record signing the current head to `buf`.
    fn checkpoint_record(&mut self, now: u64, buf: &mut Vec<u8>) -> Result<SignedHead, AuditError> {
        let signer = self.signer.as_ref().ok_or_else(|| AuditError::Checkpoint("no audit key".into()))?;
        let msg = SignedHead::message(self.head_seq, &self.head_hash, now);
        let sig = signer.try_sign(&msg).map_err(|e| AuditError::Checkpoint(e.to_string()))?.into_vec();
        let head = SignedHead {
            seq: self.head_seq,
            hash: hex::encode(self.head_hash),
            time_ms: now,
            key_fingerprint: signer.verifying_key().fingerprint(),
            signature: hex::encode(sig),
        };
        let ev = AuditEvent::new(super::Actor::system(), super::CHECKPOINT_ACTION, "journal", "ok")
            .detail("head", serde_json::to_value(&head).unwrap_or_default());
        let _ =
            self.stage(ev, now, buf).ok_or_else(|| AuditError::Checkpoint("checkpoint record not encodable".into()))?;
        Ok(head)
    }

    /// Assigns the next seq, chains, encodes and frames one record into `buf`: the one place where a
    /// record gets its seq, time and prev_hash. Returns (seq, hash, snapshot); `None` if it cannot be
    /// encoded within the size limit.
    fn stage(
        &mut self,
        ev: AuditEvent,
        now: u64,
        buf: &mut Vec<u8>,
    ) -> Option<(u64, [u8; 32], Vec<crate::store::Change>)> {
        let rec = JournalRecord {
            seq: self.head_seq + 1,
            time_ms: now,
            actor: ev.actor,
            action: ev.action,
            object: ev.object,
            outcome: ev.outcome,
            details: ev.details,
            snapshot: ev.snapshot,
            prev_hash: hex::encode(self.head_hash),
        };
        let payload = serde_json::to_vec(&rec).ok().filter(|p| p.len() <= MAX_RECORD)?;
        let hash = record_hash(&self.head_hash, &payload);
        encode_frame(&payload, buf);
        self.head_seq = rec.seq;
        self.head_hash = hash;
        Some((rec.seq, hash, rec.snapshot))
    }

    fn write(&mut self, buf: &[u8], first_seq: u64) -> Result<(), AuditError> {
        if self.file_len > 0 && self.file_len + buf.len() as u64 > self.cfg.segment_bytes {
            let path = self.shared.dir.join(format!("seg-{first_seq:020}.log"));
            self.file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
            self.file_len = 0;
            self.seg_first = first_seq;
            sync_dir(&self.shared.dir)?;
        }
        let path = self.shared.dir.join(format!("seg-{:020}.log", self.seg_first));
        self.file.write_all(buf).map_err(io_err(&path))?;
        if self.cfg.sync {
            self.file.sync_data().map_err(io_err(&path))?;
        }
        self.file_len += buf.len() as u64;
        Ok(())
    }
}

fn write_head_file(dir: &Path, head: &SignedHead) -> Result<(), AuditError> {
    let path = dir.join(HEAD_FILE);
    let tmp = dir.join(".head.json.tmp");
    let bytes = serde_json::to_vec_pretty(head).map_err(|e| AuditError::Checkpoint(e.to_string()))?;
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}
