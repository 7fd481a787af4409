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

pub(super) struct Writer {
    pub(super) cfg: JournalConfig,
    pub(super) file: File,
    pub(super) file_len: u64,
    pub(super) seg_first: u64,
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
        if self.file_len > 0 && self.file_len + buf.len() as u64 > self.cfg.segment_bytes {
            let path = self.shared.dir.join(format!("seg-{first_seq:020}.log"));
            self.file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
            self.file_len = 0;
            self.seg_first = first_seq;
            sync_dir(&self.shared.dir)?;
        }
        let path = self.shared.dir.join(format!("seg-{:020}.log", self.seg_first));
        let base = self.file_len;
        self.file.write_all(buf).map_err(io_err(&path))?;
        if self.cfg.sync {
            self.file.sync_data().map_err(io_err(&path))?;
        }
        self.file_len += buf.len() as u64;
        Ok((self.seg_first, base))
    }
}
