//! Backup and restore.
//!
//! The journal is the source of truth and the store is a view replayed from it, so a backup is the
//! journal up to a signed checkpoint (the consistent snapshot by construction), with `head.json` and
//! `archive.json`, plus a manifest: the SM3 of every part, the chain head, and the token keys the
//! state refers to. The audit key in the token signs the manifest. Keys never leave the token: a
//! restore needs the same token (or its HSM-level backup) and refuses without every listed key.
//!
//! Restore (`seald restore FILE`, the daemon stopped) checks the manifest signature with the audit
//! key, every part's SM3 and every key, writes the journal into an empty state directory, and opens
//! it with a fresh store, which replays the whole chain; then it verifies the chain. The daemon
//! then appends after the restored head, so the chain continues.

use crate::audit::{Journal, VerifyReport};
use crate::crypto::KeySigner;
use crate::crypto::PublicKey;
use crate::store::{tree, Store};
use crate::token::{KeyId, TokenPool};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The format name.
pub const FORMAT: &str = "seald-backup-v1";

/// What a backup is made of (signed by the audit key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// When it was made, ms since the epoch.
    pub created_ms: u64,
    /// The first journal seq it holds (after any archive).
    pub first_seq: u64,
    /// The last seq (a signed checkpoint).
    pub head_seq: u64,
    /// The SHA-256 fingerprint of the audit key (SPKI).
    pub audit_key_fingerprint: String,
    /// (part name, SM3 hex, bytes).
    pub parts: Vec<(String, String, usize)>,
    /// CKA_IDs (hex) the state refers to: these must be in the token to restore.
    pub token_keys: Vec<String>,
}

/// A backup file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// [`FORMAT`].
    pub format: String,
    /// The manifest.
    pub manifest: Manifest,
    /// The audit key's signature over `seald-backup-v1\n` + the manifest's compact JSON, hex DER.
    pub signature: String,
    /// Each part, base64.
    pub parts: std::collections::BTreeMap<String, String>,
}

/// Backup or restore failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackupError(pub String);

fn err(m: impl std::fmt::Display) -> BackupError {
    BackupError(m.to_string())
}

fn signed_bytes(m: &Manifest) -> Vec<u8> {
    let mut b = format!("{FORMAT}\n").into_bytes();
    b.extend(serde_json::to_vec(m).unwrap_or_default());
    b
}

/// The token keys the state refers to: the audit key, the appliance keys, every seal key version
/// not destroyed.
fn referenced_keys(store: &Store, audit_key: &KeyId) -> Result<Vec<String>, BackupError> {
    use crate::seal::{ApplianceKey, KeyState, Seal};
    let mut keys = vec![audit_key.to_hex()];
    for (_, k) in store.scan::<ApplianceKey>(tree::KEYS).map_err(err)? {
        keys.push(k.key_id);
        keys.extend(
            k.pending
                .iter()
                .chain(k.retired.iter())
                .filter(|v| v.state != KeyState::Destroyed)
                .map(|v| v.key_id.clone()),
        );
    }
    for (_, s) in store.scan::<Seal>(tree::SEALS).map_err(err)? {
        keys.extend(s.versions.iter().filter(|v| v.state != KeyState::Destroyed).map(|v| v.key_id.clone()));
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 8);
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// Makes a backup of a running appliance for `by`: checkpoints the journal, then takes every record
/// up to the signed head; the backup itself is journalled.
pub fn make(
    journal: &Journal,
    store: &Store,
    signer: &dyn KeySigner,
    audit_key: &KeyId,
    by: crate::audit::Actor,
) -> Result<Vec<u8>, BackupError> {
    let _ = journal.checkpoint().map_err(err)?;
    let dir = journal.dir();
    let head_bytes = std::fs::read(dir.join("head.json")).map_err(|e| err(format!("head.json: {e}")))?;
    let head: crate::audit::SignedHead = serde_json::from_slice(&head_bytes).map_err(err)?;
    let anchor = crate::audit::read_anchor(dir).map_err(err)?;
    let anchor_bytes = serde_json::to_vec(&anchor).map_err(err)?;
    let mut segment = Vec::new();
    for r in journal.records(anchor.seq + 1, head.seq).map_err(err)? {
        segment.extend(frame(&r.map_err(err)?.1));
    }
    let parts = [("journal", segment), ("head", head_bytes), ("anchor", anchor_bytes)];
    let manifest = Manifest {
        created_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        first_seq: anchor.seq + 1,
        head_seq: head.seq,
        audit_key_fingerprint: signer.verifying_key().fingerprint(),
        parts: parts.iter().map(|(n, b)| (n.to_string(), hex::encode(crate::crypto::sm3(b)), b.len())).collect(),
        token_keys: referenced_keys(store, audit_key)?,
    };
    let signature = signer
        .try_sign(&signed_bytes(&manifest))
        .map(crate::crypto::DerSignature::into_vec)
        .map_err(|e| err(format!("signing the manifest: {e}")))?;
    let event = crate::audit::AuditEvent::new(by, "backup.make", "backup", "ok")
        .detail("head_seq", manifest.head_seq)
        .detail("manifest_sm3", hex::encode(crate::crypto::sm3(&signed_bytes(&manifest))));
    let _ = journal.append(event).map_err(err)?;
    let backup = Backup {
        format: FORMAT.into(),
        manifest,
        signature: hex::encode(signature),
        parts: parts
            .iter()
            .map(|(n, b)| (n.to_string(), base64::engine::general_purpose::STANDARD.encode(b)))
            .collect(),
    };
    serde_json::to_vec(&backup).map_err(err)
}

/// Checks a backup: the manifest's signature with `audit_key`, then every part's SM3. Returns the
/// parts, decoded.
pub fn check(
    bytes: &[u8],
    audit_key: &PublicKey,
) -> Result<(Manifest, std::collections::BTreeMap<String, Vec<u8>>), BackupError> {
    let b: Backup = serde_json::from_slice(bytes).map_err(|e| err(format!("not a seald backup: {e}")))?;
    if b.format != FORMAT {
        return Err(err(format!("format {} is not {FORMAT}", b.format)));
    }
    if b.manifest.audit_key_fingerprint != audit_key.fingerprint() {
        return Err(err(
            "the backup was signed by another audit key than [audit] key names (after an audit-key rotation, set [audit] key to the active key)",
        ));
    }
    let sig = hex::decode(&b.signature).map_err(|_| err("the manifest signature is not hex"))?;
    crate::crypto::verify_message(audit_key, &signed_bytes(&b.manifest), &sig)
        .map_err(|_| err("the manifest signature does not verify with the audit key: the backup was altered"))?;
    let mut parts = std::collections::BTreeMap::new();
    for (name, sm3, len) in &b.manifest.parts {
        let data = b
            .parts
            .get(name)
            .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
            .ok_or_else(|| err(format!("part {name} is missing")))?;
        if data.len() != *len || hex::encode(crate::crypto::sm3(&data)) != *sm3 {
            return Err(err(format!("part {name} does not match its SM3 in the manifest")));
        }
        let _ = parts.insert(name.clone(), data);
    }
    Ok((b.manifest, parts))
}

/// Restores a backup into empty `store_dir` and `journal_dir` (the daemon stopped): checks it, checks
/// that the token holds every key, writes the journal, replays it into a new store, and verifies
/// the chain. `phase` hears of each step as it starts, for people watching a long restore.
pub fn restore(
    bytes: &[u8],
    pool: &TokenPool,
    audit_key: &KeyId,
    store_dir: &Path,
    journal_dir: &Path,
    phase: &mut dyn FnMut(&str),
) -> Result<VerifyReport, BackupError> {
    let public = pool.key(audit_key).map_err(|e| err(format!("audit key: {e}")))?.public_key.clone();
    phase(&format!("checking the backup ({} bytes): its parts' SM3 and the manifest's signature", bytes.len()));
    let (manifest, parts) = check(bytes, &public)?;
    let missing: Vec<&String> = manifest
        .token_keys
        .iter()
        .filter(|k| KeyId::from_hex(k).map(|id| pool.key(&id).is_err()).unwrap_or(true))
        .collect();
    if !missing.is_empty() {
        return Err(err(format!(
            "the token lacks {} key(s) the backup refers to ({}); restore into the appliance's own token",
            missing.len(),
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    for d in [store_dir, journal_dir] {
        if d.exists() && std::fs::read_dir(d).map_err(err)?.next().is_some() {
            return Err(err(format!(
                "{} is not empty: move it aside first (a restore never overwrites state)",
                d.display()
            )));
        }
    }
    std::fs::create_dir_all(journal_dir).map_err(err)?;
    phase(&format!("writing the journal: records {} to {}", manifest.first_seq, manifest.head_seq));
    let write = |name: &str, data: &[u8]| -> Result<(), BackupError> {
        use std::io::Write as _;
        let path = journal_dir.join(name);
        let mut f = std::fs::File::create(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        f.write_all(data).and_then(|()| f.sync_all()).map_err(|e| err(format!("{}: {e}", path.display())))
    };
    write(&format!("seg-{:020}.log", manifest.first_seq), &parts["journal"])?;
    write("head.json", &parts["head"])?;
    if manifest.first_seq > 1 {
        write("archive.json", &parts["anchor"])?;
    }
    phase(&format!(
        "replaying {} records into a new store",
        (manifest.head_seq + 1).saturating_sub(manifest.first_seq)
    ));
    let store = std::sync::Arc::new(Store::open(store_dir).map_err(err)?);
    let journal =
        Journal::open(crate::audit::JournalConfig::new(journal_dir), Some(store.clone()), None).map_err(err)?;
    if store.applied_seq().map_err(err)? != manifest.head_seq {
        return Err(err("the store did not replay to the backup's head"));
    }
    // After an audit-key rotation the chain verifies from the first key, which the store names.
    let (_, anchor) = crate::seal::active_audit_key(&store, audit_key).map_err(err)?;
    journal.close();
    drop(journal);
    store.flush().map_err(err)?;
    phase("verifying the audit chain and its checkpoint signatures");
    crate::audit::verify_journal_dir(journal_dir, Some(anchor.as_ref().unwrap_or(&public))).map_err(err)
}
