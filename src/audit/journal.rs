//! The journal: open (cut a torn tail, refuse damage before it, replay into the store what it
//! lost), append and wait until durable, checkpoint, switch the audit key, and query. The segment
//! files are `segment.rs`, the writer thread `writer.rs`, archiving `archive.rs`.

use super::*;
use crate::crypto::{KeySigner, PublicKey};
use crate::store::Store;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) durable_seq: Mutex<u64>,
    pub(super) failed: Mutex<Option<String>>,
    /// The key verification starts from (the first audit key; later keys follow from key-change
    /// records that the key before them signed).
    pub(super) anchor: Mutex<Option<PublicKey>>,
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

pub(super) fn flush_replay(
    store: Option<&Store>,
    replay: &mut Vec<(u64, Vec<crate::store::Change>)>,
) -> Result<u64, AuditError> {
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
