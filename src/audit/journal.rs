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
    /// The store whose indexes answer queries (none: queries read the segments).
    store: Option<Arc<Store>>,
    opened: Opened,
    tx: Mutex<Option<Sender<Request>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    _lock: Claim,
}

/// What keeps a second writer away: the journal directory's lock file, or this node's id in the
/// cluster's database.
enum Claim {
    File(#[allow(dead_code)] File),
    Node(#[allow(dead_code)] Box<crate::store::NodeClaim>),
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
        // A store behind the archive anchor lacks the effects of archived records: they come back
        // from the archive exports, or opening refuses (never a view that silently lost state).
        if let Some(s) = &store {
            let anchor = read_anchor(&dir)?;
            if s.applied_seq()? < anchor.seq {
                let _ = super::archive::replay_archives(&anchor, s)?;
            }
        }
        // In step, the store's journal tail says where the records it has not seen begin: only
        // those are read. Otherwise (a first start, an older store, a tail that does not match)
        // every segment is read, checked and replayed.
        let started = Instant::now();
        let from = match store.as_deref().map(Store::journal_tail).transpose()?.flatten() {
            Some(tail) => match segment::ScanFrom::tail(&dir, &tail) {
                Some(f) => f,
                None => {
                    tracing::warn!(seq = tail.seq, "the store's journal tail is not in the journal; reading it all");
                    segment::ScanFrom::start(&dir)?
                }
            },
            None => segment::ScanFrom::start(&dir)?,
        };
        let whole = from.at.is_none();
        let mut replay = Replay::default();
        let (mut replayed, mut read) = (0u64, 0u64);
        let mut told = Some(Instant::now());
        let scan = scan(&dir, from, |m| {
            read += 1;
            // A long replay (a new store on a long journal) keeps systemd's start from timing out.
            crate::notify::starting(&mut told, || format!("bringing the store up to date: {read} records read"));
            replay.push(m);
            if replay.len() >= 1024 {
                replayed += replay.flush(store.as_deref())?;
            }
            Ok(())
        })?;
        replayed += replay.flush(store.as_deref())?;
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
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(
                records = replayed,
                seconds = secs,
                per_second = (replayed as f64 / secs.max(1e-9)) as u64,
                whole,
                "store and indexes brought up to date from the journal"
            );
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
        let index = store.clone();
        let writer = Writer {
            cfg,
            sink: Sink::Segments { file, len: file_len, first: seg_first },
            head_seq: scan.head_seq,
            head_hash: scan.head_hash,
            uncovered: scan.uncovered,
            last_checkpoint: Instant::now(),
            store,
            signer,
            shared: shared.clone(),
            closing: false,
            staged: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("audit-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::Io { path: dir.display().to_string(), message: e.to_string() })?;
        tracing::info!(dir = %shared.dir.display(), head = scan.head_seq, "audit journal open");
        let opened = Opened { read, whole, seconds: started.elapsed().as_secs_f64() };
        Ok(Journal {
            shared,
            store: index,
            opened,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            _lock: Claim::File(lock),
        })
    }

    /// Opens this node's journal in the cluster's database (the store `store`, opened with
    /// [`Store::open_postgres`]): claims the node id, finds the node's chain head, and starts the
    /// writer. Nothing is replayed: each batch committed with its changes.
    pub fn open_cluster(
        cfg: JournalConfig,
        store: Arc<Store>,
        signer: Option<Arc<dyn KeySigner>>,
    ) -> Result<Self, AuditError> {
        let started = Instant::now();
        let db =
            store.pg().cloned().ok_or_else(|| AuditError::Failed("the store is not the cluster's database".into()))?;
        let claim = db.claim_node()?;
        let (head_seq, head_hash) = db.head()?;
        let uncovered = db.uncovered()?;
        let shared = Arc::new(Shared {
            dir: cfg.dir.clone(),
            durable_seq: Mutex::new(head_seq),
            failed: Mutex::new(None),
            anchor: Mutex::new(signer.as_ref().map(|s| s.verifying_key())),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            cfg,
            sink: Sink::Db { db: db.clone(), reload_head: false },
            head_seq,
            head_hash,
            uncovered,
            last_checkpoint: Instant::now(),
            store: Some(store.clone()),
            signer,
            shared: shared.clone(),
            closing: false,
            staged: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("audit-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::Failed(format!("the journal writer did not start: {e}")))?;
        tracing::info!(db = %db.shown(), node = db.node(), head = head_seq, "audit journal open in the cluster's database");
        Ok(Journal {
            shared,
            store: Some(store),
            opened: Opened { read: 0, whole: false, seconds: started.elapsed().as_secs_f64() },
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            _lock: Claim::Node(Box::new(claim)),
        })
    }

    /// The cluster's database, when the journal is there.
    fn db(&self) -> Option<&Arc<crate::store::Pg>> {
        self.store.as_deref().and_then(Store::pg)
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

    /// What opening it read.
    pub fn opened(&self) -> Opened {
        self.opened
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

    /// Durable records with `from <= seq <= to`, with their exact stored bytes and hashes, read one
    /// at a time (the store's seek index starts the reading near `from`).
    pub fn records(
        &self,
        from: u64,
        to: u64,
    ) -> Result<impl Iterator<Item = Result<StoredRecord, AuditError>>, AuditError> {
        let limit = self.head_seq().min(to);
        let seek = self.store.as_deref().map(|s| s.seek(from)).transpose()?.flatten();
        segment::Records::new(&self.shared.dir, from, limit, seek)
    }

    /// The stored frames of records `from..=to` copied into `out` as they are (see
    /// [`segment::copy_frames`]): a backup's journal, at the speed of reading it.
    pub fn copy_frames(
        &self,
        from: u64,
        to: u64,
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, AuditError> {
        if to > self.head_seq() {
            return Err(AuditError::Export(format!("record {to} is past the journal's head ({})", self.head_seq())));
        }
        let seek = self.store.as_deref().map(|s| s.seek(from)).transpose()?.flatten();
        segment::copy_frames(&self.shared.dir, from, to, seek, out, progress)
    }

    /// Records matching a query, oldest first: "who used which seal when, on which digest". Every
    /// page, to the end.
    pub fn query(&self, q: &Query) -> Result<Vec<JournalRecord>, AuditError> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.page(q, cursor.as_deref(), false, MAX_PAGE)?;
            out.extend(page.records);
            match page.next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// One page of the records matching `q`: at most `limit`, after `cursor` (from an earlier
    /// page), oldest first or newest first (`newest_first`). Answered from the store's indexes:
    /// the record's object, else its actor, else its action, else its time; the other fields are
    /// checked on the records read. A page reads at most [`PAGE_BUDGET`] index entries, so its
    /// time does not grow with the history; a page cut short by the budget still has a cursor.
    pub fn page(&self, q: &Query, cursor: Option<&str>, newest_first: bool, limit: usize) -> Result<Page, AuditError> {
        let limit = limit.clamp(1, MAX_PAGE);
        if let Some(db) = self.db() {
            return page_in_db(db, q, cursor, newest_first, limit);
        }
        let Some(store) = self.store.as_deref() else {
            return self.page_by_reading(q, cursor, newest_first, limit);
        };
        let (index, prefix) = match (&q.object, &q.actor, &q.action) {
            (Some(o), _, _) => (crate::store::index::OBJECT, index_prefix(o)),
            (None, Some(a), _) => (crate::store::index::ACTOR, index_prefix(a)),
            (None, None, Some(a)) => (crate::store::index::ACTION, index_prefix(a)),
            (None, None, None) => (crate::store::index::TIME, Vec::new()),
        };
        let mut after = match cursor {
            None => None,
            Some(c) => Some(
                hex::decode(c)
                    .ok()
                    .filter(|k| {
                        k.starts_with(&prefix) && k.len() == prefix.len() + if prefix.is_empty() { 16 } else { 8 }
                    })
                    .ok_or(AuditError::BadCursor)?,
            ),
        };
        let head = self.head_seq();
        let (mut records, mut read) = (Vec::new(), 0usize);
        loop {
            let batch = store.index_page(index, &prefix, after.as_deref(), newest_first, (limit * 2).min(1024))?;
            let exhausted = batch.len() < (limit * 2).min(1024);
            for (key, loc) in batch {
                read += 1;
                after = Some(key);
                let Some(payload) = segment::read_frame_at(&self.shared.dir, &loc)? else { continue };
                let r: JournalRecord = serde_json::from_slice(&payload).map_err(|e| AuditError::Corrupt {
                    seq: 0,
                    file: self.shared.dir.display().to_string(),
                    reason: format!("an indexed record does not decode: {e}"),
                })?;
                if r.seq <= head && q.matches(&r) {
                    records.push(r);
                    if records.len() == limit {
                        break;
                    }
                }
            }
            if records.len() == limit || read >= PAGE_BUDGET {
                let next = after.map(hex::encode);
                return Ok(Page { records, next });
            }
            if exhausted {
                return Ok(Page { records, next: None });
            }
        }
    }

    /// [`Journal::page`] for a journal without a store (tools, tests): the segments are read from
    /// the cursor on, oldest first only.
    fn page_by_reading(
        &self,
        q: &Query,
        cursor: Option<&str>,
        newest_first: bool,
        limit: usize,
    ) -> Result<Page, AuditError> {
        if newest_first {
            return Err(AuditError::Failed("newest first needs the store's indexes".into()));
        }
        let after = match cursor {
            None => 0,
            Some(c) => hex::decode(c)
                .ok()
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or(AuditError::BadCursor)?,
        };
        let (mut records, mut read) = (Vec::new(), 0usize);
        for r in self.records(after + 1, u64::MAX)? {
            let (r, _, _) = r?;
            read += 1;
            let seq = r.seq;
            if q.matches(&r) {
                records.push(r);
            }
            if records.len() == limit || read >= PAGE_BUDGET {
                return Ok(Page { records, next: Some(hex::encode(seq.to_be_bytes())) });
            }
        }
        Ok(Page { records, next: None })
    }

    /// Stops the writer after the requests already queued; further appends fail.
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
            // The store syncs one commit a second; a clean close leaves it in step, so the next
            // open replays nothing.
            if let Some(store) = &self.store {
                if let Err(e) = store.flush() {
                    tracing::warn!(error = %e, "the store could not be synced at close: the next start replays from the journal");
                }
            }
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

/// [`Journal::page`] on the cluster's database: every node's records, by time, node and seq. The
/// cursor is the last record's (time, node, seq).
fn page_in_db(
    db: &crate::store::Pg,
    q: &Query,
    cursor: Option<&str>,
    newest_first: bool,
    limit: usize,
) -> Result<Page, AuditError> {
    let after = match cursor {
        None => None,
        Some(c) => {
            let b = hex::decode(c).ok().filter(|b| b.len() == 18).ok_or(AuditError::BadCursor)?;
            let n = |r: std::ops::Range<usize>| b[r].iter().fold(0u64, |a, x| a << 8 | u64::from(*x));
            Some((n(0..8), n(8..10) as u16, n(10..18)))
        }
    };
    let rows = db.journal_page(
        q.from_ms,
        q.to_ms,
        q.actor.as_deref(),
        q.action.as_deref(),
        q.object.as_deref(),
        after,
        newest_first,
        limit + 1,
    )?;
    let more = rows.len() > limit;
    let mut records = Vec::new();
    let mut last = None;
    for (time_ms, node, seq, payload) in rows.into_iter().take(limit) {
        let r: JournalRecord = serde_json::from_slice(&payload).map_err(|e| AuditError::Corrupt {
            seq,
            file: format!("{} node {node}", db.shown()),
            reason: format!("a record does not decode: {e}"),
        })?;
        records.push(r);
        last = Some((time_ms, node, seq));
    }
    let next = match (more, last) {
        (true, Some((t, n, s))) => {
            let mut b = t.to_be_bytes().to_vec();
            b.extend_from_slice(&n.to_be_bytes());
            b.extend_from_slice(&s.to_be_bytes());
            Some(hex::encode(b))
        }
        _ => None,
    };
    Ok(Page { records, next })
}

/// What opening the journal read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Opened {
    /// Records read (and replayed into the store where it lacked them).
    pub read: u64,
    /// Whether every segment was read (no store tail to start from, or one that did not match).
    pub whole: bool,
    /// Seconds it took.
    pub seconds: f64,
}

/// The most records one page holds.
pub const MAX_PAGE: usize = 1000;

/// The most index entries one page reads (matching or not).
pub const PAGE_BUDGET: usize = 20_000;

/// A page of records, with the cursor of the next page (none: this was the last).
#[derive(Debug, Clone)]
pub struct Page {
    /// The records.
    pub records: Vec<JournalRecord>,
    /// Opaque: give it back for the next page.
    pub next: Option<String>,
}

fn index_prefix(value: &str) -> Vec<u8> {
    let mut p = value.as_bytes().to_vec();
    p.push(0);
    p
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

/// Records read at open, on their way into the store (its changes and its indexes), 1024 at a time.
#[derive(Default)]
struct Replay {
    records: Vec<(JournalRecord, [u8; 32], crate::store::Loc)>,
}

impl Replay {
    fn push(&mut self, m: segment::Met<'_>) {
        self.records.push((m.record.clone(), m.hash, m.loc));
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn flush(&mut self, store: Option<&Store>) -> Result<u64, AuditError> {
        let Some(store) = store else {
            self.records.clear();
            return Ok(0);
        };
        if self.records.is_empty() {
            return Ok(0);
        }
        let changes: Vec<(u64, &[crate::store::Change])> =
            self.records.iter().map(|(r, _, _)| (r.seq, r.snapshot.as_slice())).collect();
        let index: Vec<crate::store::Indexed<'_>> =
            self.records.iter().map(|(r, hash, loc)| indexed(r, *hash, *loc)).collect();
        let _ = store.apply(&changes, &index)?;
        let n = self.records.len() as u64;
        self.records.clear();
        Ok(n)
    }
}

/// What the store's indexes keep of a record.
pub(super) fn indexed(r: &JournalRecord, hash: [u8; 32], loc: crate::store::Loc) -> crate::store::Indexed<'_> {
    crate::store::Indexed {
        seq: r.seq,
        time_ms: r.time_ms,
        actor: &r.actor.account,
        action: &r.action,
        object: &r.object,
        hash,
        loc,
        checkpoint: r.action == CHECKPOINT_ACTION,
    }
}
