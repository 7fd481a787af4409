//! Backup and restore.
//!
//! The journal is the source of truth and the store is a view replayed from it, so a backup is the
//! journal up to a signed checkpoint (the consistent snapshot by construction), with the signed head
//! and the archive anchor, plus a manifest naming them, the head and the token keys the state refers
//! to. The audit key in the token signs the manifest. Keys never leave the token: a restore needs the
//! same token (or its HSM-level backup) and refuses without every listed key.
//!
//! A backup (`seald-backup-v2`) is a stream, so that neither side holds it in memory:
//! - a [`Header`] line (JSON) naming the records it holds;
//! - the records' frames exactly as the segment files store them (`[len u32 LE][crc32 u32 LE][payload]`),
//!   copied without parsing or hashing;
//! - a [`Trailer`] line (JSON): the signed manifest and the small parts (base64).
//!
//! The journal part has no digest of its own: the chain does that work. The manifest signs the
//! anchor (the hash before the first record) and the signed head (the hash of the last), so a
//! restore that replays the frames and verifies the chain from one to the other has checked every
//! byte. A download cut short is resumed from the next record (`from`, with the same `head`): the
//! daemon finds that head's checkpoint record in the journal and streams the rest.
//!
//! Restore (`seald restore FILE`, the daemon stopped) writes the frames into an empty journal
//! directory as they are read (checking each checksum), then checks the manifest signature with the
//! audit key, the parts' SM3 and every key; then it opens the journal with a fresh store, which
//! replays the whole chain, and verifies the chain. Anything refused leaves the directories empty.
//! The daemon then appends after the restored head, so the chain continues. Backups of the earlier
//! one-document format (`seald-backup-v1`) still restore.

use crate::audit::{Journal, SignedHead, VerifyReport, CHECKPOINT_ACTION};
use crate::crypto::KeySigner;
use crate::crypto::PublicKey;
use crate::store::{tree, Store};
use crate::token::{KeyId, TokenPool};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Read as _, Write as _};
use std::path::Path;

/// The format name.
pub const FORMAT: &str = "seald-backup-v2";
/// The one-document format of earlier versions (restored, no longer made).
pub const FORMAT_V1: &str = "seald-backup-v1";
/// The media type of a backup stream.
pub const MEDIA_TYPE: &str = "application/x-seald-backup";
/// Longest header or trailer line read.
const MAX_LINE: u64 = 1 << 20;

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

/// The first line of a backup stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`FORMAT`].
    pub format: String,
    /// The first record of the backup.
    pub first_seq: u64,
    /// Its last record: the head a checkpoint signed.
    pub head_seq: u64,
    /// The first record in this stream: `first_seq`, or where a resumed download goes on.
    pub from_seq: u64,
}

impl Header {
    /// The records in this stream.
    pub fn records(&self) -> u64 {
        (self.head_seq + 1).saturating_sub(self.from_seq)
    }
}

/// The last line of a backup stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trailer {
    /// The manifest.
    pub manifest: Manifest,
    /// The audit key's signature over `seald-backup-v2\n` + the manifest's compact JSON, hex DER.
    pub signature: String,
    /// The small parts (`head`, `anchor`), base64.
    pub parts: BTreeMap<String, String>,
}

/// A backup file of the earlier format: one JSON document with every part inside.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupV1 {
    format: String,
    manifest: Manifest,
    signature: String,
    parts: BTreeMap<String, String>,
}

/// Backup or restore failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackupError(pub String);

fn err(m: impl std::fmt::Display) -> BackupError {
    BackupError(m.to_string())
}

fn signed_bytes(format: &str, m: &Manifest) -> Vec<u8> {
    let mut b = format!("{format}\n").into_bytes();
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
    // A page of seals at a time: a registry of many seals is never in memory at once.
    let mut after: Option<String> = None;
    loop {
        let (page, more) = store.scan_after::<Seal>(tree::SEALS, after.as_deref(), 1000).map_err(err)?;
        for (_, s) in &page {
            keys.extend(s.versions.iter().filter(|v| v.state != KeyState::Destroyed).map(|v| v.key_id.clone()));
        }
        after = page.last().map(|(id, _)| id.clone());
        if !more {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// A backup ready to stream: what was signed and journalled before the first byte goes out.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Its first line.
    pub header: Header,
    /// Its last line.
    pub trailer: Trailer,
}

/// Why a backup was not begun: the request (a resume that does not fit the journal), or the
/// appliance.
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    /// `from` and `head` do not name a resumable part of this journal.
    #[error("{0}")]
    Range(String),
    /// The backup could not be made.
    #[error("{0}")]
    Failed(#[from] BackupError),
}

/// The signed head of checkpoint record `head + 1`, which signs `head`: the head of a backup being
/// resumed, found in the journal (`head.json` has moved on since).
fn checkpointed_head(journal: &Journal, head: u64) -> Result<SignedHead, MakeError> {
    let not = || MakeError::Range(format!("record {head} is not a head a checkpoint signed: start a new backup"));
    let after = head.checked_add(1).ok_or_else(not)?;
    let mut records = journal.records(after, after).map_err(err)?;
    let (r, _, _) = records.next().ok_or_else(not)?.map_err(err)?;
    if r.action != CHECKPOINT_ACTION {
        return Err(not());
    }
    let signed: SignedHead =
        r.details.get("head").cloned().and_then(|h| serde_json::from_value(h).ok()).ok_or_else(not)?;
    if signed.seq != head {
        return Err(not());
    }
    Ok(signed)
}

/// Prepares a backup of a running appliance for `by`: checkpoints the journal (or, resuming with
/// `(from, head)`, finds that head's checkpoint), signs the manifest and journals the backup. Then
/// [`write`] streams it.
pub fn prepare(
    journal: &Journal,
    store: &Store,
    signer: &dyn KeySigner,
    audit_key: &KeyId,
    by: crate::audit::Actor,
    resume: Option<(u64, u64)>,
) -> Result<Prepared, MakeError> {
    let dir = journal.dir();
    let anchor = crate::audit::read_anchor(dir).map_err(err)?;
    let first = anchor.seq + 1;
    let (head, from) = match resume {
        None => {
            let _ = journal.checkpoint().map_err(err)?;
            let head =
                crate::audit::signed_head(dir).map_err(err)?.ok_or_else(|| err("the journal has no signed head"))?;
            (head, first)
        }
        Some((from, head)) => {
            if from < first {
                return Err(MakeError::Range(format!(
                    "from {from} is before the journal's first record ({first}): the journal was archived since; start a new backup"
                )));
            }
            if head >= journal.head_seq() {
                return Err(MakeError::Range(format!(
                    "head {head} is not before the journal's last record ({}): no checkpoint signed it",
                    journal.head_seq()
                )));
            }
            if from > head + 1 {
                return Err(MakeError::Range(format!("from {from} is past head {head}")));
            }
            (checkpointed_head(journal, head)?, from)
        }
    };
    let head_bytes = serde_json::to_vec(&head).map_err(err)?;
    let anchor_bytes = serde_json::to_vec(&anchor).map_err(err)?;
    let parts = [("head", head_bytes), ("anchor", anchor_bytes)];
    let manifest = Manifest {
        created_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        first_seq: first,
        head_seq: head.seq,
        audit_key_fingerprint: signer.verifying_key().fingerprint(),
        parts: parts.iter().map(|(n, b)| (n.to_string(), hex::encode(crate::crypto::sm3(b)), b.len())).collect(),
        token_keys: referenced_keys(store, audit_key)?,
    };
    let signature = signer
        .try_sign(&signed_bytes(FORMAT, &manifest))
        .map(crate::crypto::DerSignature::into_vec)
        .map_err(|e| err(format!("signing the manifest: {e}")))?;
    let event = crate::audit::AuditEvent::new(by, "backup.make", "backup", "ok")
        .detail("head_seq", manifest.head_seq)
        .detail("from_seq", from)
        .detail("manifest_sm3", hex::encode(crate::crypto::sm3(&signed_bytes(FORMAT, &manifest))));
    let _ = journal.append(event).map_err(err)?;
    let header = Header { format: FORMAT.into(), first_seq: first, head_seq: head.seq, from_seq: from };
    let trailer = Trailer {
        manifest,
        signature: hex::encode(signature),
        parts: parts
            .iter()
            .map(|(n, b)| (n.to_string(), base64::engine::general_purpose::STANDARD.encode(b)))
            .collect(),
    };
    Ok(Prepared { header, trailer })
}

/// Streams a prepared backup into `out`: the header line, the frames, the trailer line.
pub fn write(journal: &Journal, p: &Prepared, out: &mut dyn std::io::Write) -> Result<(), BackupError> {
    let mut header = serde_json::to_vec(&p.header).map_err(err)?;
    header.push(b'\n');
    out.write_all(&header).map_err(err)?;
    if p.header.from_seq <= p.header.head_seq {
        let _ = journal.copy_frames(p.header.from_seq, p.header.head_seq, out, &mut |_, _| {}).map_err(err)?;
    }
    let mut trailer = serde_json::to_vec(&p.trailer).map_err(err)?;
    trailer.push(b'\n');
    out.write_all(&trailer).and_then(|()| out.flush()).map_err(err)
}

/// Checks the signed part of a backup: the manifest's signature with `audit_key` (over `format`'s
/// signed bytes), then every part's SM3. Returns the parts, decoded.
fn check_parts(
    format: &str,
    manifest: &Manifest,
    signature: &str,
    parts: &BTreeMap<String, String>,
    audit_key: &PublicKey,
) -> Result<BTreeMap<String, Vec<u8>>, BackupError> {
    if manifest.audit_key_fingerprint != audit_key.fingerprint() {
        return Err(err(
            "the backup was signed by another audit key than [audit] key names (after an audit-key rotation, set [audit] key to the active key)",
        ));
    }
    let sig = hex::decode(signature).map_err(|_| err("the manifest signature is not hex"))?;
    crate::crypto::verify_message(audit_key, &signed_bytes(format, manifest), &sig)
        .map_err(|_| err("the manifest signature does not verify with the audit key: the backup was altered"))?;
    let mut out = BTreeMap::new();
    for (name, sm3, len) in &manifest.parts {
        let data = parts
            .get(name)
            .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
            .ok_or_else(|| err(format!("part {name} is missing")))?;
        if data.len() != *len || hex::encode(crate::crypto::sm3(&data)) != *sm3 {
            return Err(err(format!("part {name} does not match its SM3 in the manifest")));
        }
        let _ = out.insert(name.clone(), data);
    }
    Ok(out)
}

/// One line of at most [`MAX_LINE`] bytes, without its newline.
fn read_line(input: &mut dyn BufRead, what: &str) -> Result<Vec<u8>, BackupError> {
    let mut line = Vec::new();
    let _ = input.take(MAX_LINE).read_until(b'\n', &mut line).map_err(err)?;
    if line.pop() != Some(b'\n') {
        return Err(err(format!("the backup's {what} is cut short or too long: the file is incomplete")));
    }
    Ok(line)
}

/// Restores a backup read from `input` into empty `store_dir` and `journal_dir` (the daemon
/// stopped), as the module says. `phase` hears of each step as it starts, and of the records
/// written now and then, for people watching a long restore.
pub fn restore(
    input: &mut dyn BufRead,
    pool: &TokenPool,
    audit_key: &KeyId,
    store_dir: &Path,
    journal_dir: &Path,
    phase: &mut dyn FnMut(&str),
) -> Result<VerifyReport, BackupError> {
    let public = pool.key(audit_key).map_err(|e| err(format!("audit key: {e}")))?.public_key.clone();
    let start = input.fill_buf().map_err(err)?;
    if start.starts_with(format!("{{\"format\":\"{FORMAT_V1}\"").as_bytes()) {
        let mut bytes = Vec::new();
        let _ = input.read_to_end(&mut bytes).map_err(err)?;
        return restore_v1(&bytes, pool, &public, audit_key, store_dir, journal_dir, phase);
    }
    let header: Header = serde_json::from_slice(&read_line(input, "header")?)
        .map_err(|e| err(format!("not a seald backup ({FORMAT} or {FORMAT_V1}): {e}")))?;
    if header.format != FORMAT {
        return Err(err(format!("format {} is not {FORMAT}", header.format)));
    }
    if header.from_seq != header.first_seq {
        return Err(err(format!(
            "this is the rest of a backup from record {} (a download resumed into a new file): resume into the file that holds its beginning",
            header.from_seq
        )));
    }
    empty_dirs(store_dir, journal_dir)?;
    // The frames go to a staging file the journal does not read, and become its segment only once
    // the manifest is checked: an interrupted restore leaves no records a daemon would open.
    let staging = journal_dir.join("restore.part");
    let segment = journal_dir.join(format!("seg-{:020}.log", header.first_seq));
    let restored = (|| {
        phase(&format!("writing the journal: records {} to {}", header.first_seq, header.head_seq));
        write_frames(input, &staging, &header, phase)?;
        let trailer: Trailer = serde_json::from_slice(&read_line(input, "trailer")?)
            .map_err(|e| err(format!("the backup's trailer does not decode: {e}")))?;
        if !input.fill_buf().map_err(err)?.is_empty() {
            return Err(err("the backup goes on after its trailer"));
        }
        phase("checking the backup: the manifest's signature, its parts' SM3 and the token's keys");
        let parts = check_parts(FORMAT, &trailer.manifest, &trailer.signature, &trailer.parts, &public)?;
        if (trailer.manifest.first_seq, trailer.manifest.head_seq) != (header.first_seq, header.head_seq) {
            return Err(err("the backup's header and its signed manifest name different records"));
        }
        check_keys(pool, &trailer.manifest)?;
        std::fs::rename(&staging, &segment).map_err(|e| err(format!("{}: {e}", segment.display())))?;
        finish(&trailer.manifest, &parts, None, audit_key, &public, store_dir, journal_dir, phase)
    })();
    if restored.is_err() {
        // Nothing refused stays behind: both directories were empty.
        clear(journal_dir);
        clear(store_dir);
    }
    restored
}

/// Removes what a refused restore wrote into a directory it found empty.
fn clear(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
}

/// Both directories must be empty (or absent): a restore never overwrites state.
fn empty_dirs(store_dir: &Path, journal_dir: &Path) -> Result<(), BackupError> {
    for d in [store_dir, journal_dir] {
        if d.exists() && std::fs::read_dir(d).map_err(err)?.next().is_some() {
            return Err(err(format!(
                "{} is not empty: move it aside first (a restore never overwrites state)",
                d.display()
            )));
        }
    }
    std::fs::create_dir_all(journal_dir).map_err(err)
}

/// The token must hold every key the manifest lists.
fn check_keys(pool: &TokenPool, manifest: &Manifest) -> Result<(), BackupError> {
    let missing: Vec<&String> = manifest
        .token_keys
        .iter()
        .filter(|k| KeyId::from_hex(k).map(|id| pool.key(&id).is_err()).unwrap_or(true))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(err(format!(
        "the token lacks {} key(s) the backup refers to ({}); restore into the appliance's own token",
        missing.len(),
        missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    )))
}

/// The header's records, frame by frame from `input` into `segment` (each checksum checked), with
/// the count told to `phase` every few seconds.
fn write_frames(
    input: &mut dyn BufRead,
    segment: &Path,
    header: &Header,
    phase: &mut dyn FnMut(&str),
) -> Result<(), BackupError> {
    let file = std::fs::File::create(segment).map_err(|e| err(format!("{}: {e}", segment.display())))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let total = header.records();
    let mut payload = Vec::new();
    let mut shown = std::time::Instant::now();
    for i in 0..total {
        let mut head = [0u8; 8];
        input.read_exact(&mut head).map_err(|_| {
            err(format!(
                "the backup ends inside record {} of {total}: the file is incomplete (resume the download)",
                i + 1
            ))
        })?;
        let len = u32::from_le_bytes(head[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().unwrap_or_default());
        if len == 0 || len > crate::audit::MAX_RECORD {
            return Err(err(format!("record {} of the backup has an impossible length ({len})", header.first_seq + i)));
        }
        payload.resize(len, 0);
        input.read_exact(&mut payload).map_err(|_| {
            err(format!(
                "the backup ends inside record {} of {total}: the file is incomplete (resume the download)",
                i + 1
            ))
        })?;
        if crc32fast::hash(&payload) != crc {
            return Err(err(format!(
                "record {} of the backup fails its checksum: the file is damaged",
                header.first_seq + i
            )));
        }
        out.write_all(&head).and_then(|()| out.write_all(&payload)).map_err(err)?;
        if shown.elapsed() >= std::time::Duration::from_secs(5) {
            shown = std::time::Instant::now();
            phase(&format!("  {} of {total} records written", i + 1));
        }
    }
    let file = out.into_inner().map_err(|e| err(e.error()))?;
    file.sync_all().map_err(|e| err(format!("{}: {e}", segment.display())))
}

/// A backup of the earlier format, read whole.
fn restore_v1(
    bytes: &[u8],
    pool: &TokenPool,
    public: &PublicKey,
    audit_key: &KeyId,
    store_dir: &Path,
    journal_dir: &Path,
    phase: &mut dyn FnMut(&str),
) -> Result<VerifyReport, BackupError> {
    phase(&format!("checking the backup ({} bytes): its parts' SM3 and the manifest's signature", bytes.len()));
    let b: BackupV1 = serde_json::from_slice(bytes).map_err(|e| err(format!("not a seald backup: {e}")))?;
    if b.format != FORMAT_V1 {
        return Err(err(format!("format {} is not {FORMAT_V1}", b.format)));
    }
    let parts = check_parts(FORMAT_V1, &b.manifest, &b.signature, &b.parts, public)?;
    check_keys(pool, &b.manifest)?;
    let journal = parts.get("journal").ok_or_else(|| err("part journal is missing"))?;
    empty_dirs(store_dir, journal_dir)?;
    phase(&format!("writing the journal: records {} to {}", b.manifest.first_seq, b.manifest.head_seq));
    let restored = finish(&b.manifest, &parts, Some(journal), audit_key, public, store_dir, journal_dir, phase);
    if restored.is_err() {
        clear(journal_dir);
        clear(store_dir);
    }
    restored
}

/// The common end of a restore: the journal (`journal` frames, unless already written), the signed
/// head and the anchor into the journal directory, a replay into a new store, and the chain verified.
#[allow(clippy::too_many_arguments)]
fn finish(
    manifest: &Manifest,
    parts: &BTreeMap<String, Vec<u8>>,
    journal: Option<&Vec<u8>>,
    audit_key: &KeyId,
    public: &PublicKey,
    store_dir: &Path,
    journal_dir: &Path,
    phase: &mut dyn FnMut(&str),
) -> Result<VerifyReport, BackupError> {
    let write = |name: &str, data: &[u8]| -> Result<(), BackupError> {
        let path = journal_dir.join(name);
        let mut f = std::fs::File::create(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        f.write_all(data).and_then(|()| f.sync_all()).map_err(|e| err(format!("{}: {e}", path.display())))
    };
    let part = |name: &str| parts.get(name).ok_or_else(|| err(format!("part {name} is missing")));
    if let Some(frames) = journal {
        write(&format!("seg-{:020}.log", manifest.first_seq), frames)?;
    }
    write("head.json", part("head")?)?;
    if manifest.first_seq > 1 {
        write("archive.json", part("anchor")?)?;
    }
    std::fs::File::open(journal_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err(format!("{}: {e}", journal_dir.display())))?;
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
    let report = crate::audit::verify_journal_dir(journal_dir, Some(anchor.as_ref().unwrap_or(public))).map_err(err)?;
    match &report.finding {
        Some(f) => Err(err(format!("the restored journal does not verify: {f:?}"))),
        None => Ok(report),
    }
}
