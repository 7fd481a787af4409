//! The cluster's audit trail: one hash chain per node (no node waits for another to sign), tied
//! together by cluster checkpoints. At each of its checkpoints a node first records a cluster
//! checkpoint: the heads (seq and hash) of every node's chain as the database has them, signed with
//! the audit key; its own checkpoint then signs its chain through that record. An auditor holding an
//! export proves with the audit public key alone that every chain is whole, and that no node's
//! records up to the heads a cluster checkpoint names were dropped.
//!
//! Export (JSON Lines): `{"seald_cluster_export":1,"nodes":[{"node":N,"head":S},…]}`, then each node's
//! records in seq order, `{"node":N,"hash":"…","record":{…}}`, the record's bytes exactly as hashed.

use super::{AuditError, FindingKind, JournalRecord, Verifier, VerifyReport};
use crate::crypto::{KeySigner, PublicKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The action name of cluster checkpoints.
pub const CLUSTER_CHECKPOINT_ACTION: &str = "audit.cluster_checkpoint";

/// One node's chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHead {
    /// Node id.
    pub node: u16,
    /// Its last record's seq.
    pub seq: u64,
    /// That record's hash, hex.
    pub hash: String,
}

/// Every node's head at one time, signed with the audit key (a cluster checkpoint's detail
/// `cluster`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterHead {
    /// The heads, by node.
    pub heads: Vec<NodeHead>,
    /// When, ms.
    pub time_ms: u64,
    /// The audit key's fingerprint.
    pub key_fingerprint: String,
    /// The signature over [`ClusterHead::message`], hex.
    pub signature: String,
}

impl ClusterHead {
    /// What is signed: a domain label, each head, and the time.
    pub fn message(heads: &[NodeHead], time_ms: u64) -> Vec<u8> {
        let mut m = b"seald cluster checkpoint v1\n".to_vec();
        for h in heads {
            m.extend_from_slice(format!("{} {} {}\n", h.node, h.seq, h.hash).as_bytes());
        }
        m.extend_from_slice(time_ms.to_string().as_bytes());
        m
    }

    /// Signs `heads` at `time_ms`.
    pub fn sign(signer: &dyn KeySigner, mut heads: Vec<NodeHead>, time_ms: u64) -> Result<Self, AuditError> {
        heads.sort_by_key(|h| h.node);
        let sig = signer
            .try_sign(&Self::message(&heads, time_ms))
            .map_err(|e| AuditError::Checkpoint(e.to_string()))?
            .into_vec();
        Ok(ClusterHead {
            heads,
            time_ms,
            key_fingerprint: signer.verifying_key().fingerprint(),
            signature: hex::encode(sig),
        })
    }

    /// Checks the signature with `key`.
    pub fn verify(&self, key: &PublicKey) -> Result<(), String> {
        let sig = hex::decode(&self.signature).map_err(|_| "signature is not hex")?;
        crate::crypto::verify_message(key, &Self::message(&self.heads, self.time_ms), &sig)
            .map_err(|_| "signature does not verify with the audit key".to_string())
    }
}

/// What a cluster export's verification found: each node's chain, and the cluster checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterReport {
    /// Each node's chain report.
    pub nodes: BTreeMap<u16, VerifyReport>,
    /// Cluster checkpoints checked.
    pub cluster_checkpoints: u64,
    /// The heads the latest cluster checkpoint names (its records are proved present).
    pub covered: Vec<NodeHead>,
    /// The first problem: the node and seq, and what.
    pub finding: Option<ClusterFinding>,
}

/// A problem in a cluster's trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterFinding {
    /// Which node's chain.
    pub node: u16,
    /// Where in it.
    pub seq: u64,
    /// What kind of damage.
    pub kind: super::FindingKind,
    /// In words.
    pub detail: String,
}

impl ClusterReport {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.finding.is_none()
    }

    /// The report as one chain's, for callers that show one (records and checkpoints summed, the
    /// finding's detail naming its node).
    pub fn summary(&self) -> VerifyReport {
        VerifyReport {
            records: self.nodes.values().map(|r| r.records).sum(),
            checkpoints: self.nodes.values().map(|r| r.checkpoints).sum::<u64>() + self.cluster_checkpoints,
            last_seq: self.nodes.values().map(|r| r.last_seq).max().unwrap_or(0),
            signed_through: self.nodes.values().filter_map(|r| r.signed_through).min(),
            signatures_checked: self.nodes.values().all(|r| r.signatures_checked),
            finding: self.finding.as_ref().map(|f| super::Finding {
                seq: f.seq,
                kind: f.kind,
                detail: format!("node {}: {}", f.node, f.detail),
            }),
        }
    }
}

/// Checks every node's chain and every cluster checkpoint, fed one record at a time.
pub struct ClusterVerifier {
    key: Option<PublicKey>,
    chains: BTreeMap<u16, Verifier>,
    /// Every node's record hashes, by seq (32 bytes a record), for the heads checkpoints name.
    hashes: HashMap<u16, Vec<[u8; 32]>>,
    /// The heads named, with the record that named them: ((node, seq), hash, (by node, by seq)).
    claims: Vec<(NodeHead, (u16, u64))>,
    latest: Option<(u64, Vec<NodeHead>)>,
    checkpoints: u64,
    finding: Option<ClusterFinding>,
}

impl ClusterVerifier {
    /// A verifier checking signatures with `key` when given.
    pub fn new(key: Option<&PublicKey>) -> Self {
        ClusterVerifier {
            key: key.cloned(),
            chains: BTreeMap::new(),
            hashes: HashMap::new(),
            claims: Vec::new(),
            latest: None,
            checkpoints: 0,
            finding: None,
        }
    }

    fn found(&mut self, node: u16, seq: u64, kind: super::FindingKind, detail: String) {
        if self.finding.is_none() {
            self.finding = Some(ClusterFinding { node, seq, kind, detail });
        }
    }

    /// The next record of node `node`'s chain (each chain's records in seq order).
    pub fn feed(&mut self, node: u16, payload: &[u8]) {
        let key = self.key.clone();
        let chain = self.chains.entry(node).or_insert_with(|| Verifier::new(0, [0u8; 32], key.as_ref(), None));
        let _ = chain.feed(payload, true);
        // A cluster checkpoint is signed with the key the chain holding it uses then.
        let key_now = chain.key_now().cloned();
        let Ok(rec) = serde_json::from_slice::<JournalRecord>(payload) else { return };
        let hashes = self.hashes.entry(node).or_default();
        if rec.seq == hashes.len() as u64 + 1 {
            let prev = hashes.last().copied().unwrap_or([0u8; 32]);
            hashes.push(super::record_hash(&prev, payload));
        }
        if rec.action != CLUSTER_CHECKPOINT_ACTION {
            return;
        }
        self.checkpoints += 1;
        let head = rec.details.get("cluster").cloned().and_then(|v| serde_json::from_value::<ClusterHead>(v).ok());
        let Some(head) = head else {
            return self.found(
                node,
                rec.seq,
                FindingKind::BadCheckpoint,
                "a cluster checkpoint without its signed heads".into(),
            );
        };
        if let Some(k) = key_now.as_ref().or(self.key.as_ref()) {
            if let Err(why) = head.verify(k) {
                return self.found(node, rec.seq, FindingKind::BadCheckpoint, format!("cluster checkpoint: {why}"));
            }
        }
        for h in &head.heads {
            self.claims.push((h.clone(), (node, rec.seq)));
        }
        if self.latest.as_ref().is_none_or(|(t, _)| head.time_ms >= *t) {
            self.latest = Some((head.time_ms, head.heads));
        }
    }

    /// The export's own signed heads (its last line): checked like a cluster checkpoint's, so that
    /// a tail cut from every chain at once, checkpoints included, still shows.
    pub fn signed_heads(&mut self, head: &ClusterHead) {
        let keys: Vec<PublicKey> =
            self.chains.values().filter_map(|c| c.key_now().cloned()).chain(self.key.clone()).collect();
        if !keys.is_empty() && !keys.iter().any(|k| head.verify(k).is_ok()) {
            return self.found(
                0,
                0,
                FindingKind::BadCheckpoint,
                "the export's signed heads do not verify with the audit key".into(),
            );
        }
        for h in &head.heads {
            self.claims.push((h.clone(), (0, 0)));
        }
    }

    /// The verdict: each chain's, then whether every head a cluster checkpoint named is there with
    /// its hash (a chain cut before it shows here, naming the node and the missing seq).
    pub fn finish(mut self) -> ClusterReport {
        let mut nodes = BTreeMap::new();
        for (node, chain) in std::mem::take(&mut self.chains) {
            let r = chain.finish();
            if let Some(f) = &r.finding {
                self.found(node, f.seq, f.kind, f.detail.clone());
            }
            let _ = nodes.insert(node, r);
        }
        for (h, (by, at)) in std::mem::take(&mut self.claims) {
            let have = self.hashes.get(&h.node).and_then(|v| v.get((h.seq as usize).wrapping_sub(1))).map(hex::encode);
            match have {
                Some(hash) if hash == h.hash => {}
                Some(_) => self.found(
                    h.node,
                    h.seq,
                    FindingKind::ForgedHead,
                    format!(
                        "record {} differs from the one the cluster checkpoint at node {by} seq {at} signed",
                        h.seq
                    ),
                ),
                None if h.seq == 0 => {}
                None => {
                    let end = self.hashes.get(&h.node).map_or(0, Vec::len);
                    self.found(
                        h.node,
                        h.seq,
                        FindingKind::TailCut,
                        format!(
                            "record {} is missing (the chain ends at {end}), but {} signed it",
                            h.seq,
                            signer_of(by, at)
                        ),
                    )
                }
            }
        }
        ClusterReport {
            nodes,
            cluster_checkpoints: self.checkpoints,
            covered: self.latest.map(|(_, h)| h).unwrap_or_default(),
            finding: self.finding,
        }
    }
}

/// Who signed a head: a cluster checkpoint (node, seq), or the export's own signed heads (0, 0).
fn signer_of(node: u16, seq: u64) -> String {
    if node == 0 {
        "the export's signed heads".into()
    } else {
        format!("the cluster checkpoint at node {node} seq {seq}")
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    seald_cluster_export: u32,
    nodes: Vec<HeaderNode>,
}

#[derive(Serialize, Deserialize)]
struct HeaderNode {
    node: u16,
    head: u64,
}

#[derive(Deserialize)]
struct Line<'a> {
    node: u16,
    #[serde(borrow)]
    record: &'a serde_json::value::RawValue,
}

/// Whether `first_line` starts a cluster export.
pub fn is_cluster_export(first_line: &str) -> bool {
    first_line.trim_start().starts_with("{\"seald_cluster_export\"")
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    signed_heads: ClusterHead,
}

/// Writes every node's chain from the cluster's database into `out`, then the heads it wrote,
/// signed with `signer` (the audit key) when given; returns the records written.
pub fn export_cluster(
    db: &crate::store::Pg,
    out: &mut dyn std::io::Write,
    signer: Option<&dyn KeySigner>,
) -> Result<u64, AuditError> {
    let io = |e: std::io::Error| AuditError::Export(e.to_string());
    let heads = db.heads()?;
    let header = Header {
        seald_cluster_export: 1,
        nodes: heads.iter().map(|h| HeaderNode { node: h.node, head: h.seq }).collect(),
    };
    serde_json::to_writer(&mut *out, &header).map_err(|e| AuditError::Export(e.to_string()))?;
    out.write_all(b"\n").map_err(io)?;
    let mut n = 0u64;
    let signed = heads.iter().map(|h| NodeHead { node: h.node, seq: h.seq, hash: hex::encode(h.hash) }).collect();
    for h in &heads {
        each_record(db, h, |hash, payload| {
            write!(out, "{{\"node\":{},\"hash\":\"{}\",\"record\":", h.node, hex::encode(hash)).map_err(io)?;
            out.write_all(payload).map_err(io)?;
            out.write_all(b"}\n").map_err(io)?;
            n += 1;
            Ok(())
        })?;
    }
    if let Some(signer) = signer {
        let head = ClusterHead::sign(signer, signed, super::now_ms())?;
        serde_json::to_writer(&mut *out, &Trailer { signed_heads: head })
            .map_err(|e| AuditError::Export(e.to_string()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    Ok(n)
}

/// Verifies a cluster export read from `input` with the audit public key.
pub fn verify_cluster_export(
    input: impl std::io::BufRead,
    key: Option<&PublicKey>,
) -> Result<ClusterReport, AuditError> {
    let mut lines = input.lines().enumerate();
    let bad = |n: usize, e: &dyn std::fmt::Display| AuditError::Export(format!("line {}: {e}", n + 1));
    let (_, first) = lines.next().ok_or_else(|| AuditError::Export("is empty".into()))?;
    let first = first.map_err(|e| AuditError::Export(e.to_string()))?;
    let header: Header = serde_json::from_str(&first).map_err(|e| bad(0, &e))?;
    if header.seald_cluster_export != 1 {
        return Err(AuditError::Export(format!("version {} is not supported", header.seald_cluster_export)));
    }
    let mut v = ClusterVerifier::new(key);
    let mut trailer = false;
    for (n, line) in lines {
        let line = line.map_err(|e| AuditError::Export(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with("{\"signed_heads\"") {
            let t: Trailer = serde_json::from_str(&line).map_err(|e| bad(n, &e))?;
            v.signed_heads(&t.signed_heads);
            trailer = true;
            continue;
        }
        let l: Line<'_> = serde_json::from_str(&line).map_err(|e| bad(n, &e))?;
        v.feed(l.node, l.record.get().as_bytes());
    }
    if !trailer && key.is_some() {
        v.found(0, 0, FindingKind::TailCut, "the export does not end with its signed heads: its end was cut".into());
    }
    let mut report = v.finish();
    // A node the header names whose records end before the head it gave: its tail was cut.
    for h in &header.nodes {
        let last = report.nodes.get(&h.node).map_or(0, |r| r.last_seq);
        if last < h.head && report.finding.is_none() {
            report.finding = Some(ClusterFinding {
                node: h.node,
                seq: last + 1,
                kind: FindingKind::TailCut,
                detail: format!("the export's header gives head {} but the records end at {last}", h.head),
            });
        }
    }
    Ok(report)
}

/// Verifies every node's chain in the cluster's database (the daemon's `audit verify`).
pub fn verify_cluster_db(db: &crate::store::Pg, key: Option<&PublicKey>) -> Result<ClusterReport, AuditError> {
    let mut v = ClusterVerifier::new(key);
    for h in db.heads()? {
        each_record(db, &h, |_, payload| {
            v.feed(h.node, payload);
            Ok(())
        })?;
    }
    Ok(v.finish())
}

/// Every record of `head`'s node up to it, in seq order, read 1000 at a time: `f(hash, payload)`.
fn each_record(
    db: &crate::store::Pg,
    head: &crate::store::Head,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    let mut from = 1u64;
    while from <= head.seq {
        let batch = db.chain(head.node, from, head.seq, 1000)?;
        let Some(last) = batch.last().map(|(s, _, _)| *s) else { break };
        for (_, hash, payload) in &batch {
            f(hash, payload)?;
        }
        from = last + 1;
    }
    Ok(())
}

/// What a migration did.
#[derive(Debug, Clone, Default)]
pub struct Migrated {
    /// Records read from the embedded journal.
    pub read: u64,
    /// Records written into the database (the rest were there from an earlier, interrupted run).
    pub written: u64,
    /// The node's chain head in the database afterwards.
    pub head: u64,
}

/// Replays the embedded journal in `dir` into the cluster's database as node `db.node()`'s chain:
/// each record with its exact bytes and hash, its changes and counters, 1024 to a transaction,
/// verifying the chain (and, with `key`, its checkpoints) as it goes; nothing after a damaged
/// record is written. A run that was interrupted continues after the records already there (their
/// hashes must be the journal's). A journal whose first records were archived is refused: their
/// effects are not in it.
pub fn migrate_to_cluster(
    dir: &std::path::Path,
    db: &crate::store::Pg,
    key: Option<&PublicKey>,
    progress: &mut dyn FnMut(u64),
) -> Result<Migrated, AuditError> {
    let anchor = super::archive::read_anchor(dir)?;
    if anchor.seq > 0 {
        return Err(AuditError::Export(format!(
            "records 1 to {} were archived: a migration needs the whole journal (restore the archives first)",
            anchor.seq
        )));
    }
    let (there, there_hash) = db.head()?;
    let mut v = Verifier::new(0, [0u8; 32], key, None);
    let mut out = Migrated::default();
    let mut batch: Vec<super::segment::StoredRecord> = Vec::new();
    let flush = |batch: &mut Vec<super::segment::StoredRecord>, out: &mut Migrated| -> Result<(), AuditError> {
        if batch.is_empty() {
            return Ok(());
        }
        let rows: Vec<crate::store::Row<'_>> = batch
            .iter()
            .map(|(r, payload, hash)| crate::store::Row {
                seq: r.seq,
                hash: *hash,
                time_ms: r.time_ms,
                actor: &r.actor.account,
                action: &r.action,
                object: &r.object,
                checkpoint: r.action == super::CHECKPOINT_ACTION,
                payload,
                changes: &r.snapshot,
            })
            .collect();
        let none: Vec<&[crate::store::Guard]> = vec![&[]; rows.len()];
        match db.commit(&rows, &none) {
            Ok(_) => {}
            Err(crate::store::BatchError::Db(e)) => return Err(e.into()),
            Err(crate::store::BatchError::Guards(_)) => unreachable!("no guards were given"),
        }
        out.written += rows.len() as u64;
        batch.clear();
        Ok(())
    };
    for r in super::segment::Records::new(dir, 1, u64::MAX, None)? {
        let (rec, payload, hash) = r?;
        out.read += 1;
        if !v.feed(&payload, true) {
            break;
        }
        if rec.seq < there {
            continue;
        }
        if rec.seq == there {
            if hash != there_hash {
                return Err(AuditError::Export(format!(
                    "node {}'s chain in the database ends at seq {there} with another record than this journal's",
                    db.node()
                )));
            }
            continue;
        }
        batch.push((rec, payload, hash));
        // One record is always held back: an edited record shows only when the next one's
        // prev_hash does not meet it, and it must not have been written by then.
        if batch.len() > 1024 {
            let last = batch.pop();
            flush(&mut batch, &mut out)?;
            batch.extend(last);
            progress(out.read);
        }
    }
    let report = v.finish();
    if let Some(f) = report.finding {
        // What came before the damage was written; the damaged record and what follows never are.
        return Err(AuditError::Corrupt {
            seq: f.seq,
            file: dir.display().to_string(),
            reason: format!("{:?}: {} (records before it were migrated; fix or restore the journal)", f.kind, f.detail),
        });
    }
    flush(&mut batch, &mut out)?;
    progress(out.read);
    out.head = db.head()?.0;
    Ok(out)
}
