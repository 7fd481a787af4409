//! Archiving: whole segments covered by a signed checkpoint move into an export, and the journal
//! remembers where its remaining segments begin (the anchor: the last archived seq and hash).

use super::*;
use crate::crypto::PublicKey;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;

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

pub(super) const ARCHIVE_FILE: &str = "archive.json";

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

/// Puts back into a store that is behind the archive anchor (a new or lost store: after an
/// upgrade that rebuilds the view, or a restore) the effects of the archived records, read from
/// the archive exports `archive.json` names, each chained to the one before and the last to the
/// anchor. Refuses, naming the file, when one is missing or does not fit. Returns the records
/// applied.
pub(super) fn replay_archives(anchor: &Anchor, store: &crate::store::Store) -> Result<u64, AuditError> {
    let applied = store.applied_seq()?;
    let refuse = |why: String| AuditError::StoreBehindArchive { applied, anchor: anchor.seq, why };
    if anchor.archives.is_empty() {
        return Err(refuse("archive.json names no archive export".into()));
    }
    // Each archive runs from the anchor its header names; an export is extended to the checkpoint
    // after its last archived record, so it may overlap the next archive: each is read up to where
    // the next begins (the last, up to the journal's anchor), and must hold that record with the
    // hash the next one (or the anchor) starts from.
    let mut starts = Vec::new();
    for path in &anchor.archives {
        starts.push(super::export::archive_start(Path::new(path)).map_err(|e| refuse(format!("archive {path}: {e}")))?);
    }
    if starts.first().is_some_and(|s| *s != (0, [0u8; 32])) {
        return Err(refuse(format!("archive {} does not start the chain", anchor.archives[0])));
    }
    let mut ends: Vec<(u64, [u8; 32])> = starts.iter().skip(1).copied().collect();
    ends.push((anchor.seq, anchor.hash_bytes()?));
    let mut batch: Vec<JournalRecord> = Vec::new();
    let mut replayed = 0u64;
    let flush = |batch: &mut Vec<JournalRecord>, replayed: &mut u64| -> Result<(), AuditError> {
        let changes: Vec<(u64, &[crate::store::Change])> =
            batch.iter().map(|r| (r.seq, r.snapshot.as_slice())).collect();
        let _ = store.apply(&changes, &[])?;
        *replayed += batch.len() as u64;
        batch.clear();
        Ok(())
    };
    let mut told = Some(std::time::Instant::now());
    for (path, end) in anchor.archives.iter().zip(ends) {
        let mut reached = None;
        let _ = super::export::read_archive(Path::new(path), |r, hash| {
            crate::notify::starting(&mut told, || format!("replaying archived records: at seq {}", r.seq));
            if r.seq > end.0 {
                return Ok(false);
            }
            if r.seq == end.0 {
                reached = Some(hash);
            }
            if r.seq > applied {
                batch.push(r);
                if batch.len() >= 1024 {
                    flush(&mut batch, &mut replayed)?;
                }
            }
            Ok(true)
        })
        .map_err(|e| refuse(format!("archive {path}: {e}")))?;
        if reached != Some(end.1) {
            return Err(refuse(format!(
                "archive {path} does not reach seq {} with the hash the next part of the chain starts from",
                end.0
            )));
        }
    }
    flush(&mut batch, &mut replayed)?;
    tracing::info!(records = replayed, archives = anchor.archives.len(), "archived records replayed into the store");
    Ok(replayed)
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
    let _ = super::export(dir, super::ExportRange { from, to: upto }, &mut file, None)?;
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
