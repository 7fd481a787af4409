//! The audit journal: the appliance's source of truth, and the record no one can rewrite unseen.
//!
//! Records are appended to segment files by one writer thread that batches concurrent callers,
//! writes the batch, calls `fdatasync` once, applies the batch's state changes to the store, and only
//! then answers every caller in the batch (group commit). Each record is chained to the one before it:
//! `hash = SM3(prev_hash || payload)`, where the payload is the record's canonical encoding (compact
//! JSON, fields in declared order, maps sorted by key) and is hashed exactly as stored. Every N
//! records or T seconds a checkpoint record signs the chain head with the appliance's audit key in
//! the token, and the latest signed head is also kept beside the journal (`head.json`), so that a
//! tail cut off after it shows.
//!
//! Verification (`verify.rs`) recomputes the chain from the stored bytes and checks every checkpoint;
//! it names the first seq where anything is wrong. Exports (`export.rs`) carry the exact bytes, so an
//! auditor can verify them elsewhere with only the public key.

mod archive;
mod cluster;
mod export;
mod journal;
mod segment;
mod verify;
mod writer;

pub use archive::{archive, read_anchor, Anchor};
pub use cluster::{
    export_cluster, is_cluster_export, migrate_to_cluster, verify_cluster_db, verify_cluster_export, ClusterFinding,
    ClusterHead, ClusterReport, ClusterVerifier, Migrated, NodeHead, CLUSTER_CHECKPOINT_ACTION,
};
pub use export::{export, export_signed_head, read_export, verify_export, Export, ExportRange};
pub use journal::{Journal, JournalConfig, Opened, Page, Query, MAX_PAGE};
#[doc(hidden)]
pub use segment::MAX_RECORD;
pub use segment::{journal_records, read_journal, StoredRecord};

/// The latest signed head kept beside the journal in `dir` (`head.json`), if any: what `seald check`
/// compares the store with, without reading the journal.
pub fn signed_head(dir: &std::path::Path) -> Result<Option<SignedHead>, AuditError> {
    segment::read_head_file(dir)
}
// What the journal's parts share among themselves.
use journal::Shared;
use segment::*;
pub use verify::{verify_journal_dir, verify_records, Finding, FindingKind, Verifier, VerifyReport};
use writer::*;

use crate::crypto::PublicKey;
use crate::store::Change;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The action name of checkpoint records.
pub const CHECKPOINT_ACTION: &str = "audit.checkpoint";

/// The action name of an audit-key switch. Its detail `new_public_key` (SPKI PEM) signs the
/// checkpoints after the first checkpoint that covers it; that checkpoint is still signed by the key
/// before. Verification starts from the first key and follows these records.
pub const KEY_CHANGE_ACTION: &str = "audit.key_change";

/// Who did it: the account and the client certificate it used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// Account name (`system` for the appliance itself).
    pub account: String,
    /// SHA-256 fingerprint of the client certificate, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_fingerprint: Option<String>,
}

impl Actor {
    /// The appliance itself (checkpoints, start-up).
    pub fn system() -> Self {
        Actor { account: "system".into(), cert_fingerprint: None }
    }
}

/// What a caller asks to have recorded.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Who.
    pub actor: Actor,
    /// What (`seal.freeze`, `sign`, ...).
    pub action: String,
    /// On what (`seal:123`, `key:ab12`).
    pub object: String,
    /// `ok`, or `refused:<code>`, or `error:<code>`.
    pub outcome: String,
    /// Small, structured facts: digests, not documents.
    pub details: BTreeMap<String, serde_json::Value>,
    /// For state changes: the changes (full new state of each object changed).
    pub snapshot: Vec<Change>,
    /// What must still hold when the record commits, checked by the cluster's database with the
    /// rows locked (see [`crate::store::Guard`]); not part of the record. On the embedded store the
    /// registry's locks make them hold already.
    pub guards: Vec<crate::store::Guard>,
}

impl AuditEvent {
    /// An event with no details and no changes.
    pub fn new(actor: Actor, action: &str, object: &str, outcome: &str) -> Self {
        AuditEvent {
            actor,
            action: action.into(),
            object: object.into(),
            outcome: outcome.into(),
            details: BTreeMap::new(),
            snapshot: Vec::new(),
            guards: Vec::new(),
        }
    }

    /// Adds a condition the record commits under (see [`AuditEvent::guards`]).
    pub fn guard(mut self, g: crate::store::Guard) -> Self {
        self.guards.push(g);
        self
    }

    /// Adds a detail.
    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        let _ = self.details.insert(key.into(), value.into());
        self
    }

    /// Adds a state change.
    pub fn change(mut self, c: Change) -> Self {
        self.snapshot.push(c);
        self
    }
}

/// One journal record, as encoded (the canonical encoding is this struct as compact JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JournalRecord {
    /// Dense sequence number from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch, UTC.
    pub time_ms: u64,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: String,
    /// On what.
    pub object: String,
    /// Result.
    pub outcome: String,
    /// Facts.
    #[serde(default)]
    pub details: BTreeMap<String, serde_json::Value>,
    /// State changes.
    #[serde(default)]
    pub snapshot: Vec<Change>,
    /// Hash of the previous record, lowercase hex (64 zeros for the first).
    pub prev_hash: String,
}

/// The acknowledgement of a durable record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Its seq.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
    /// Counters changed by it, with their new values.
    pub counters: Vec<(String, i64)>,
}

/// A chain head signed with the audit key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    /// Seq of the head record.
    pub seq: u64,
    /// Its hash, hex.
    pub hash: String,
    /// When it was signed, ms since the epoch.
    pub time_ms: u64,
    /// SHA-256 fingerprint of the audit public key (SPKI).
    pub key_fingerprint: String,
    /// Signature (DER), hex.
    pub signature: String,
}

impl SignedHead {
    /// The bytes the audit key signs.
    pub fn message(seq: u64, hash: &[u8; 32], time_ms: u64) -> Vec<u8> {
        let mut m = b"seald-audit-head-v1\n".to_vec();
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(hash);
        m.extend_from_slice(&time_ms.to_be_bytes());
        m
    }

    /// Checks the signature with `key`.
    pub fn verify(&self, key: &PublicKey) -> Result<(), String> {
        let hash: [u8; 32] =
            hex::decode(&self.hash).ok().and_then(|h| h.try_into().ok()).ok_or("head hash is not 32 bytes of hex")?;
        if self.key_fingerprint != key.fingerprint() {
            return Err(format!("signed by key {}, not the audit key {}", self.key_fingerprint, key.fingerprint()));
        }
        let sig = hex::decode(&self.signature).map_err(|_| "signature is not hex")?;
        crate::crypto::verify_message(key, &Self::message(self.seq, &hash, self.time_ms), &sig)
            .map_err(|_| "signature does not verify with the audit key".to_string())
    }
}

/// Errors of the journal. Each names the file or the seq.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Another process has the journal open.
    #[error("journal {0} is in use by another process (is seald already running?)")]
    Locked(String),
    /// A guard of the record failed when it was to commit (another node changed what it
    /// depended on): nothing was recorded.
    #[error("{message}")]
    Guard {
        /// The refusal's code.
        code: &'static str,
        /// What failed.
        message: String,
    },
    /// A record before the tail is damaged: start is refused.
    #[error("journal is corrupt at seq {seq} ({file}): {reason}; refusing to start")]
    Corrupt {
        /// The seq (or the one expected there).
        seq: u64,
        /// The segment file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// File I/O failed.
    #[error("journal I/O on {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The journal stopped accepting records after a failure; restart replays what is durable.
    #[error("journal is not accepting records: {0}")]
    Failed(String),
    /// The store could not be brought up to date.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A checkpoint could not be signed.
    #[error("checkpoint signing failed: {0}")]
    Checkpoint(String),
    /// An export could not be read.
    #[error("export {0}")]
    Export(String),
    /// The store lacks the effects of archived records and they cannot be read back.
    #[error("the store has applied records up to seq {applied}, but the journal was archived up to seq {anchor}: {why}; refusing to start with a view that lost state (put the archive exports back where archive.json names them, or restore the store)")]
    StoreBehindArchive {
        /// The store's applied seq.
        applied: u64,
        /// The archive anchor's seq.
        anchor: u64,
        /// Which archive, and what is wrong with it.
        why: String,
    },
    /// A page's cursor is not one this query gave.
    #[error("the cursor is not one this query gave (ask again without a cursor)")]
    BadCursor,
}

fn io_err(path: &std::path::Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |e| AuditError::Io { path: path.display().to_string(), message: e.to_string() }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// SM3(prev_hash || payload).
pub fn record_hash(prev: &[u8; 32], payload: &[u8]) -> [u8; 32] {
    use sm3::Digest;
    let mut h = sm3::Sm3::new();
    h.update(prev);
    h.update(payload);
    h.finalize().into()
}
