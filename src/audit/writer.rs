//! The one writer thread: it batches concurrent appends, writes the batch, calls `fdatasync` once,
//! applies the batch's changes to the store, and only then answers (group commit); it also signs
//! the checkpoints and switches the audit key.

use super::*;
use crate::crypto::KeySigner;
use crate::store::Store;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) enum Request {
    Append(AuditEvent, SyncSender<Result<Receipt, AuditError>>),
    Checkpoint(SyncSender<Result<Option<SignedHead>, AuditError>>),
    Rekey(Arc<dyn KeySigner>, AuditEvent, SyncSender<Result<Receipt, AuditError>>),
}

/// Where the writer's batches go.
pub(super) enum Sink {
    /// Segment files: the one appended to, its length, and its first seq.
    Segments { file: File, len: u64, first: u64 },
    /// The cluster's database, where this node's records commit with their changes.
    /// `reload_head`: the head must be read again before the next batch (a batch whose commit was
    /// not confirmed may or may not be there).
    Db { db: Arc<crate::store::Pg>, reload_head: bool },
}

pub(super) struct Writer {
    pub(super) cfg: JournalConfig,
    pub(super) sink: Sink,
    pub(super) head_seq: u64,
    pub(super) head_hash: [u8; 32],
    pub(super) uncovered: u64,
    pub(super) last_checkpoint: Instant,
    pub(super) store: Option<Arc<Store>>,
    pub(super) signer: Option<Arc<dyn KeySigner>>,
    pub(super) shared: Arc<Shared>,
    /// Set when the journal closes: the last records get a checkpoint whatever the schedule says.
    pub(super) closing: bool,
    /// The records of the batch being written, for the store's indexes.
    pub(super) staged: Vec<Staged>,
}

/// A record in the batch being written: what the indexes need, and where in the batch it is.
pub(super) struct Staged {
    record: JournalRecord,
    hash: [u8; 32],
    /// Offset of its frame in the batch's buffer.
    at: u64,
    len: u32,
}

pub(super) enum Reply {
    Append(SyncSender<Result<Receipt, AuditError>>, u64, [u8; 32]),
    Checkpoint(SyncSender<Result<Option<SignedHead>, AuditError>>),
}

impl Writer {
    pub(super) fn run(mut self, rx: Receiver<Request>) {
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
        if let Sink::Db { db, .. } = &self.sink {
            let db = db.clone();
            return self.commit_db(&db, batch);
        }
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
        self.staged.clear();
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
        let due = self.checkpoint_due(force_checkpoint);
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
        let result = self.write(&buf, start_seq + 1).and_then(|(segment, base)| {
            let batch: Vec<(u64, &[crate::store::Change])> = changes.iter().map(|(s, c)| (*s, c.as_slice())).collect();
            let index: Vec<crate::store::Indexed<'_>> = self
                .staged
                .iter()
                .map(|st| {
                    let loc = crate::store::Loc { segment, offset: base + st.at, len: st.len };
                    super::journal::indexed(&st.record, st.hash, loc)
                })
                .collect();
            match &self.store {
                Some(store) => store.apply(&batch, &index).map_err(AuditError::from),
                None => Ok(Vec::new()),
            }
        });
        self.staged.clear();
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

    /// Whether the records not yet covered get a checkpoint now: one was asked for (`asked`), the
    /// journal is closing, or the schedule (records or time) says so.
    fn checkpoint_due(&self, asked: bool) -> bool {
        self.uncovered > 0
            && (asked
                || self.closing
                || self.uncovered >= self.cfg.checkpoint_every
                || self.last_checkpoint.elapsed() >= self.cfg.checkpoint_interval)
    }

    /// Appends a cluster checkpoint to `buf`: every node's chain head as the database has it, this
    /// node's as staged, signed with the audit key.
    fn cluster_checkpoint_record(
        &mut self,
        db: &crate::store::Pg,
        now: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(), AuditError> {
        let signer = self.signer.clone().ok_or_else(|| AuditError::Checkpoint("no audit key".into()))?;
        let mut heads: Vec<super::NodeHead> = db
            .heads()?
            .into_iter()
            .filter(|h| h.node != db.node())
            .map(|h| super::NodeHead { node: h.node, seq: h.seq, hash: hex::encode(h.hash) })
            .collect();
        heads.push(super::NodeHead { node: db.node(), seq: self.head_seq, hash: hex::encode(self.head_hash) });
        let head = super::ClusterHead::sign(signer.as_ref(), heads, now)?;
        let ev = AuditEvent::new(super::Actor::system(), super::CLUSTER_CHECKPOINT_ACTION, "cluster", "ok")
            .detail("cluster", serde_json::to_value(&head).unwrap_or_default());
        let _ = self
            .stage(ev, now, buf)
            .ok_or_else(|| AuditError::Checkpoint("cluster checkpoint record not encodable".into()))?;
        Ok(())
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
        let at = buf.len() as u64;
        encode_frame(&payload, buf);
        self.head_seq = rec.seq;
        self.head_hash = hash;
        let snapshot = rec.snapshot.clone();
        let seq = rec.seq;
        if self.store.is_some() {
            let record = JournalRecord { snapshot: Vec::new(), details: Default::default(), ..rec };
            self.staged.push(Staged { record, hash, at, len: payload.len() as u32 });
        }
        Some((seq, hash, snapshot))
    }

    /// Writes the batch and makes it durable; returns the segment it went to and its offset there.
    fn write(&mut self, buf: &[u8], first_seq: u64) -> Result<(u64, u64), AuditError> {
        let Sink::Segments { file, len, first } = &mut self.sink else {
            return Err(AuditError::Failed("no segment open".into()));
        };
        let dir = &self.shared.dir;
        if *len > 0 && *len + buf.len() as u64 > self.cfg.segment_bytes {
            let path = dir.join(format!("seg-{first_seq:020}.log"));
            *file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
            *len = 0;
            *first = first_seq;
            sync_dir(dir)?;
        }
        let path = dir.join(format!("seg-{:020}.log", *first));
        let base = *len;
        file.write_all(buf).map_err(io_err(&path))?;
        if self.cfg.sync {
            file.sync_data().map_err(io_err(&path))?;
        }
        *len += buf.len() as u64;
        Ok((*first, base))
    }

    /// Sets whether the head is to be read again from the database (see [`Sink::Db`]).
    fn set_reload_head(&mut self, again: bool) {
        if let Sink::Db { reload_head, .. } = &mut self.sink {
            *reload_head = again;
        }
    }
}

/// A refusal's code for a record the batch could not take.
fn refuse_all(replies: Vec<SyncSender<Result<Receipt, AuditError>>>, err: impl Fn() -> AuditError) {
    for r in replies {
        let _ = r.send(Err(err()));
    }
}

impl Writer {
    /// [`Writer::commit`] on the cluster's database: the batch's records (this node's chain), their
    /// changes and counters commit in one transaction, each record under its guards. A record whose
    /// guard fails is answered with the refusal and the batch is chained again without it. A
    /// database failure fails the batch only: the node goes on when the database is back.
    fn commit_db(&mut self, db: &crate::store::Pg, batch: Vec<Request>) {
        let mut appends = Vec::new();
        let mut checkpoints = Vec::new();
        for r in batch {
            match r {
                Request::Append(ev, reply) => appends.push((ev, Some(reply))),
                Request::Checkpoint(reply) => checkpoints.push(reply),
                Request::Rekey(_, _, reply) => {
                    let _ = reply.send(Err(AuditError::Failed("a key switch travels alone".into())));
                }
            }
        }
        // One error per caller (a store error is not Clone): the database's, as it said it.
        let unavailable = |e: &crate::store::StoreError| {
            let message = match e {
                crate::store::StoreError::Unavailable { message, .. } => message.clone(),
                other => other.to_string(),
            };
            AuditError::Store(crate::store::StoreError::Unavailable { db: db.shown().to_string(), message })
        };
        if matches!(self.sink, Sink::Db { reload_head: true, .. }) {
            match db.head() {
                Ok((seq, hash)) => {
                    (self.head_seq, self.head_hash) = (seq, hash);
                    self.set_reload_head(false);
                }
                Err(e) => {
                    refuse_all(appends.into_iter().filter_map(|(_, r)| r).collect(), || unavailable(&e));
                    for reply in checkpoints {
                        let _ = reply.send(Err(unavailable(&e)));
                    }
                    return;
                }
            }
        }
        let (start_seq, start_hash, start_uncovered) = (self.head_seq, self.head_hash, self.uncovered);
        loop {
            (self.head_seq, self.head_hash, self.uncovered) = (start_seq, start_hash, start_uncovered);
            self.staged.clear();
            let now = now_ms();
            let mut buf = Vec::new();
            // Each staged record's append (none: the checkpoint), its changes, and its receipt.
            let mut owners: Vec<Option<usize>> = Vec::new();
            let mut changes: Vec<Vec<crate::store::Change>> = Vec::new();
            let mut receipts: Vec<(u64, [u8; 32])> = Vec::new();
            for (i, (ev, reply)) in appends.iter_mut().enumerate() {
                if reply.is_none() {
                    continue;
                }
                match self.stage(ev.clone(), now, &mut buf) {
                    Some((seq, hash, snapshot)) => {
                        self.uncovered += 1;
                        owners.push(Some(i));
                        changes.push(snapshot);
                        receipts.push((seq, hash));
                    }
                    None => {
                        if let Some(r) = reply.take() {
                            let _ = r.send(Err(AuditError::Failed("record too large or not encodable".into())));
                        }
                    }
                }
            }
            let due = self.checkpoint_due(!checkpoints.is_empty());
            let mut signed = None;
            if due && self.signer.is_some() {
                // First every node's head, signed (this node's as this batch leaves it), then this
                // node's own checkpoint over its chain through that record.
                match self.cluster_checkpoint_record(db, now, &mut buf) {
                    Ok(()) => {
                        owners.push(None);
                        changes.push(Vec::new());
                    }
                    Err(e) => tracing::error!(error = %e, "cluster checkpoint not written; will retry"),
                }
                match self.checkpoint_record(now, &mut buf) {
                    Ok(h) => {
                        owners.push(None);
                        changes.push(Vec::new());
                        signed = Some(h);
                    }
                    Err(e) => tracing::error!(error = %e, "checkpoint not written; will retry"),
                }
            }
            if self.staged.is_empty() {
                for reply in checkpoints {
                    let _ = reply.send(Ok(None));
                }
                return;
            }
            let rows: Vec<crate::store::Row<'_>> = self
                .staged
                .iter()
                .zip(changes.iter())
                .map(|(st, ch)| crate::store::Row {
                    seq: st.record.seq,
                    hash: st.hash,
                    time_ms: st.record.time_ms,
                    actor: &st.record.actor.account,
                    action: &st.record.action,
                    object: &st.record.object,
                    checkpoint: st.record.action == super::CHECKPOINT_ACTION,
                    payload: &buf[st.at as usize + 8..st.at as usize + 8 + st.len as usize],
                    changes: ch,
                })
                .collect();
            let guards: Vec<&[crate::store::Guard]> =
                owners.iter().map(|o| o.map_or(&[][..], |i| appends[i].0.guards.as_slice())).collect();
            let result = db.commit(&rows, &guards);
            drop(rows);
            match result {
                Ok(counters) => {
                    *self.shared.durable_seq.lock().unwrap_or_else(|p| p.into_inner()) = self.head_seq;
                    if signed.is_some() {
                        self.uncovered = 0;
                        self.last_checkpoint = Instant::now();
                    }
                    for (owner, (seq, hash)) in owners.iter().zip(receipts.iter()) {
                        let Some(reply) = owner.and_then(|i| appends[i].1.take()) else { continue };
                        let counters =
                            counters.iter().filter(|(s, _, _)| s == seq).map(|(_, k, v)| (k.clone(), *v)).collect();
                        let _ = reply.send(Ok(Receipt { seq: *seq, hash: *hash, counters }));
                    }
                    for reply in checkpoints {
                        let _ = reply.send(Ok(signed.clone()));
                    }
                    self.staged.clear();
                    return;
                }
                Err(crate::store::BatchError::Guards(failed)) => {
                    for (j, code, message) in failed {
                        if let Some(reply) = owners.get(j).copied().flatten().and_then(|i| appends[i].1.take()) {
                            let _ = reply.send(Err(AuditError::Guard { code, message }));
                        }
                    }
                }
                Err(crate::store::BatchError::Db(e)) => {
                    tracing::warn!(error = %e, "a batch did not commit to the cluster's database");
                    (self.head_seq, self.head_hash, self.uncovered) = (start_seq, start_hash, start_uncovered);
                    self.set_reload_head(true);
                    self.staged.clear();
                    refuse_all(appends.into_iter().filter_map(|(_, r)| r).collect(), || unavailable(&e));
                    for reply in checkpoints {
                        let _ = reply.send(Err(unavailable(&e)));
                    }
                    return;
                }
            }
        }
    }
}
