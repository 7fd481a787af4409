//! The store: the current state (seals, accounts, grants, keys, approvals, filings, counters) in
//! sled, as a view of the audit journal.
//!
//! The journal is the source of truth; sled's own flush is `sync_file_range`, which survives a crash
//! of the process but is no power-loss barrier. So every state change is a [`Change`] carried by a
//! journal record, applied here in journal order, in one sled transaction per batch that also
//! advances `meta.applied_seq`. On open, whatever the journal holds beyond `applied_seq` is replayed.
//!
//! Values are JSON (serde_json): the journal carries the same JSON as the full new state of an
//! object, so replay is a byte-for-byte upsert; an operator can read them; and serde's defaults let
//! later versions add fields. Metadata volumes make its size and speed irrelevant.
//!
//! What it deliberately does not do: decide anything. Rules live in the domain modules.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use std::path::{Path, PathBuf};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

/// The names of the store's trees, for every caller: the view of the journal holds these and no other.
pub mod tree {
    /// Schema version and `applied_seq`.
    pub const META: &str = "meta";
    /// Registry accounts, by name.
    pub const ACCOUNTS: &str = "accounts";
    /// Grants of seals to applications, by `seal/account`.
    pub const GRANTS: &str = "grants";
    /// Appliance keys (issuing CA, seal maker, audit), by name.
    pub const KEYS: &str = "keys";
    /// Seals, by id.
    pub const SEALS: &str = "seals";
    /// Single-use approval tickets, by id.
    pub const APPROVALS: &str = "approvals";
    /// Filings with the police system, by id.
    pub const FILINGS: &str = "filings";
    /// Usage counters.
    pub const COUNTERS: &str = "counters";
    /// Units, by id.
    pub const UNITS: &str = "units";
    /// Dual-control requests, by id.
    pub const REQUESTS: &str = "requests";
}

/// The named trees.
pub const TREES: &[&str] = &[
    tree::META,
    tree::ACCOUNTS,
    tree::GRANTS,
    tree::KEYS,
    tree::SEALS,
    tree::APPROVALS,
    tree::FILINGS,
    tree::COUNTERS,
    tree::UNITS,
    tree::REQUESTS,
];

const META_SCHEMA: &[u8] = b"schema_version";
const META_APPLIED: &[u8] = b"applied_seq";
const META_INDEXED: &[u8] = b"indexed_seq";
const META_TAIL: &[u8] = b"journal_tail";

/// The journal's indexes: part of the view, written in the transaction that applies a record and
/// rebuilt by replay like the rest. Changes cannot write them. Keys end in the record's seq
/// (big-endian), so each index lists records oldest first; values are where the record is.
pub mod index {
    /// `time_ms ‖ seq` (both big-endian).
    pub const TIME: &str = "jidx_time";
    /// `object ‖ 0 ‖ seq`.
    pub const OBJECT: &str = "jidx_object";
    /// `actor account ‖ 0 ‖ seq`.
    pub const ACTOR: &str = "jidx_actor";
    /// `action ‖ 0 ‖ seq`.
    pub const ACTION: &str = "jidx_action";
    /// `seq`, for one record in [`super::SEEK_EVERY`] (and the first of each segment): where to
    /// start reading a range.
    pub const SEQ: &str = "jidx_seq";
}

/// sled's page cache (its default is 1 GiB, which a store of years of records fills: the daemon's
/// memory would grow with the history).
pub const CACHE_BYTES: u64 = 64 << 20;

/// The journal's index trees, in the order the store opens them after [`TREES`].
pub const INDEX_TREES: &[&str] = &[index::TIME, index::OBJECT, index::ACTOR, index::ACTION, index::SEQ];

/// [`index::SEQ`] holds one record in this many.
pub const SEEK_EVERY: u64 = 1024;

/// Where a journal record's frame is: its segment (by first seq), the frame's offset, the payload's
/// length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loc {
    /// The segment's first seq (`seg-<first>.log`).
    pub segment: u64,
    /// Offset of the frame header in the segment.
    pub offset: u64,
    /// Payload length.
    pub len: u32,
}

impl Loc {
    fn to_bytes(self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[..8].copy_from_slice(&self.segment.to_be_bytes());
        b[8..16].copy_from_slice(&self.offset.to_be_bytes());
        b[16..].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    /// Reads a stored location.
    pub fn from_bytes(b: &[u8]) -> Option<Loc> {
        Some(Loc {
            segment: u64::from_be_bytes(b.get(..8)?.try_into().ok()?),
            offset: u64::from_be_bytes(b.get(8..16)?.try_into().ok()?),
            len: u32::from_be_bytes(b.get(16..20)?.try_into().ok()?),
        })
    }

    /// Where the next frame starts.
    pub fn end(&self) -> u64 {
        self.offset + 8 + u64::from(self.len)
    }
}

/// What the journal's indexes hold of one record.
#[derive(Debug, Clone, Copy)]
pub struct Indexed<'a> {
    /// Seq.
    pub seq: u64,
    /// Time, ms.
    pub time_ms: u64,
    /// The actor's account.
    pub actor: &'a str,
    /// Action.
    pub action: &'a str,
    /// Object.
    pub object: &'a str,
    /// The record's chain hash.
    pub hash: [u8; 32],
    /// Where it is.
    pub loc: Loc,
    /// Whether it is a checkpoint.
    pub checkpoint: bool,
}

/// The last record the indexes hold: where the journal continues, so that opening reads only what
/// came after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalTail {
    /// Its seq.
    pub seq: u64,
    /// Its hash, hex.
    pub hash: String,
    /// Where it is.
    pub loc: Loc,
    /// The seq of the last checkpoint record at or before it (0: none).
    pub checkpoint_seq: u64,
}

/// An index key: `prefix ‖ 0 ‖ seq`.
pub fn index_key(prefix: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 9);
    k.extend_from_slice(prefix.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// One state change, carried by a journal record and applied here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Change {
    /// The full new state of an object.
    Put {
        /// Tree name.
        tree: String,
        /// Key.
        key: String,
        /// Value (JSON).
        value: serde_json::Value,
    },
    /// The object is gone.
    Delete {
        /// Tree name.
        tree: String,
        /// Key.
        key: String,
    },
    /// Add to a counter (tree `counters`). Applied in journal order, so concurrent adds are exact.
    Add {
        /// Counter name.
        key: String,
        /// Amount.
        delta: i64,
    },
}

/// What went wrong with the store. Each names the path or the object.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process has the store open.
    #[error("store {0} is in use by another process (is seald already running?)")]
    Locked(String),
    /// The store was written by a newer seald.
    #[error("store {path} has schema version {found}; this seald understands up to {supported}: upgrade seald, or restore a backup")]
    NewerSchema {
        /// Store path.
        path: String,
        /// Version on disk.
        found: u64,
        /// Version this build knows.
        supported: u64,
    },
    /// A change names a tree that does not exist.
    #[error("unknown store tree '{0}'")]
    UnknownTree(String),
    /// A stored value does not decode.
    #[error("store value {tree}/{key} does not decode: {message}")]
    Decode {
        /// Tree.
        tree: String,
        /// Key.
        key: String,
        /// Why.
        message: String,
    },
    /// sled failed.
    #[error("store {path}: {message}")]
    Sled {
        /// Store path.
        path: String,
        /// sled's error.
        message: String,
    },
}

/// The sled database with its named trees.
pub struct Store {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

fn tree_index(name: &str) -> Result<usize, StoreError> {
    TREES.iter().position(|t| *t == name).ok_or_else(|| StoreError::UnknownTree(name.to_string()))
}

impl Store {
    /// Opens (creating) the store and checks its schema version.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        // sled releases its file lock from background threads shortly after the last handle drops, so
        // a lock held by this very process a moment ago is waited for (briefly) before refusing.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            match sled::Config::new().path(path).cache_capacity(CACHE_BYTES).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(io))
                    if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") =>
                {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked(shown));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(other) => return Err(StoreError::Sled { path: shown, message: other.to_string() }),
            }
        };
        let sled_err = |e: sled::Error| StoreError::Sled { path: shown.clone(), message: e.to_string() };
        let trees = TREES
            .iter()
            .chain(INDEX_TREES)
            .map(|t| db.open_tree(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(sled_err)?;
        let store = Store { db, trees, path: path.to_path_buf() };
        let meta = &store.trees[0];
        match meta.get(META_SCHEMA).map_err(sled_err)? {
            None => {
                let _ = meta
                    .insert(META_SCHEMA, serde_json::to_vec(&SCHEMA_VERSION).unwrap_or_default())
                    .map_err(sled_err)?;
            }
            Some(v) => {
                let found: u64 = serde_json::from_slice(&v).map_err(|e| StoreError::Decode {
                    tree: tree::META.into(),
                    key: "schema_version".into(),
                    message: e.to_string(),
                })?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path: shown, found, supported: SCHEMA_VERSION });
                }
            }
        }
        Ok(store)
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sled_err(&self) -> impl Fn(sled::Error) -> StoreError + '_ {
        move |e| StoreError::Sled { path: self.path.display().to_string(), message: e.to_string() }
    }

    /// The journal seq whose effects the store holds.
    pub fn applied_seq(&self) -> Result<u64, StoreError> {
        self.get::<u64>(tree::META, "applied_seq").map(|v| v.unwrap_or(0))
    }

    /// A typed value.
    pub fn get<T: DeserializeOwned>(&self, tree: &str, key: &str) -> Result<Option<T>, StoreError> {
        let t = &self.trees[tree_index(tree)?];
        match t.get(key.as_bytes()).map_err(self.sled_err())? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| StoreError::Decode {
                tree: tree.into(),
                key: key.into(),
                message: e.to_string(),
            }),
        }
    }

    /// The seq the journal's indexes hold records up to.
    pub fn indexed_seq(&self) -> Result<u64, StoreError> {
        self.get::<u64>(tree::META, "indexed_seq").map(|v| v.unwrap_or(0))
    }

    /// The last record the indexes hold, if any.
    pub fn journal_tail(&self) -> Result<Option<JournalTail>, StoreError> {
        self.get(tree::META, "journal_tail")
    }

    /// Up to `limit` entries of index `name` whose key starts with `prefix`, after `after` (a full
    /// key) or from the start; oldest first, or newest first with `rev`. Each is (key, location).
    pub fn index_page(
        &self,
        name: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        rev: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Loc)>, StoreError> {
        let i = INDEX_TREES.iter().position(|t| *t == name).ok_or_else(|| StoreError::UnknownTree(name.to_string()))?;
        let t = &self.trees[TREES.len() + i];
        let mut end = prefix.to_vec();
        // The smallest key past every key with this prefix (prefixes here never end in 0xff).
        let upper = match end.iter().rposition(|b| *b != 0xff) {
            Some(p) => {
                end.truncate(p + 1);
                end[p] += 1;
                std::ops::Bound::Excluded(end)
            }
            None => std::ops::Bound::Unbounded,
        };
        let lower = std::ops::Bound::Included(prefix.to_vec());
        let range = match (after, rev) {
            (None, _) => t.range::<Vec<u8>, _>((lower, upper)),
            (Some(a), false) => t.range::<Vec<u8>, _>((std::ops::Bound::Excluded(a.to_vec()), upper)),
            (Some(a), true) => t.range::<Vec<u8>, _>((lower, std::ops::Bound::Excluded(a.to_vec()))),
        };
        let mut out = Vec::new();
        let mut push = |item: Result<(sled::IVec, sled::IVec), sled::Error>| -> Result<bool, StoreError> {
            let (k, v) = item.map_err(self.sled_err())?;
            let loc = Loc::from_bytes(&v).ok_or_else(|| StoreError::Decode {
                tree: name.into(),
                key: hex::encode(&k),
                message: "not a record location".into(),
            })?;
            out.push((k.to_vec(), loc));
            Ok(out.len() < limit)
        };
        if rev {
            for item in range.rev() {
                if !push(item)? {
                    break;
                }
            }
        } else {
            for item in range {
                if !push(item)? {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Where to start reading the journal for records from `seq`: the last seek entry at or
    /// before it (see [`index::SEQ`]), as (seq, location).
    pub fn seek(&self, seq: u64) -> Result<Option<(u64, Loc)>, StoreError> {
        let t = &self.trees[TREES.len() + INDEX_TREES.iter().position(|t| *t == index::SEQ).unwrap_or(0)];
        match t.range(..=seq.to_be_bytes()).next_back() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(self.sled_err())?;
                let at = u64::from_be_bytes(k.as_ref().try_into().unwrap_or_default());
                Ok(Loc::from_bytes(&v).map(|l| (at, l)))
            }
        }
    }

    /// Up to `max` values of a tree in key order after the key `after` (from the start without
    /// one), and whether the tree goes on past them: a page's worth of reading.
    pub fn scan_after<T: DeserializeOwned>(
        &self,
        tree: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<(Vec<(String, T)>, bool), StoreError> {
        let t = &self.trees[tree_index(tree)?];
        let lower = match after {
            Some(a) => std::ops::Bound::Excluded(a.as_bytes().to_vec()),
            None => std::ops::Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in t.range::<Vec<u8>, _>((lower, std::ops::Bound::Unbounded)) {
            let (k, v) = item.map_err(self.sled_err())?;
            if out.len() == max {
                return Ok((out, true));
            }
            let key = String::from_utf8_lossy(&k).into_owned();
            let value = serde_json::from_slice(&v).map_err(|e| StoreError::Decode {
                tree: tree.into(),
                key: key.clone(),
                message: e.to_string(),
            })?;
            out.push((key, value));
        }
        Ok((out, false))
    }

    /// Every value in a tree, by key order.
    pub fn scan<T: DeserializeOwned>(&self, tree: &str) -> Result<Vec<(String, T)>, StoreError> {
        let t = &self.trees[tree_index(tree)?];
        let mut out = Vec::new();
        for item in t.iter() {
            let (k, v) = item.map_err(self.sled_err())?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let value = serde_json::from_slice(&v).map_err(|e| StoreError::Decode {
                tree: tree.into(),
                key: key.clone(),
                message: e.to_string(),
            })?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// A counter's value (0 if never added to).
    pub fn counter(&self, key: &str) -> Result<i64, StoreError> {
        self.get::<i64>(tree::COUNTERS, key).map(|v| v.unwrap_or(0))
    }

    /// Applies journal records (seq, changes), in order, in one transaction that also sets
    /// `meta.applied_seq` to the last seq, and indexes `index` (records above `meta.indexed_seq`,
    /// which follows). Records at or below `applied_seq` are skipped, so replay is exactly-once.
    /// Returns the counters' new values as (seq, key, value).
    pub fn apply(
        &self,
        records: &[(u64, &[Change])],
        index: &[Indexed<'_>],
    ) -> Result<Vec<(u64, String, i64)>, StoreError> {
        for (_, changes) in records {
            for c in changes.iter() {
                if let Change::Put { tree, .. } | Change::Delete { tree, .. } = c {
                    let i = tree_index(tree)?;
                    if i == 0 {
                        return Err(StoreError::UnknownTree("meta (not writable by changes)".into()));
                    }
                }
            }
        }
        let counters_index = tree_index(tree::COUNTERS)?;
        let result = self.trees.as_slice().transaction(|views| {
            let meta = &views[0];
            let applied: u64 = match meta.get(META_APPLIED)? {
                Some(v) => serde_json::from_slice(&v).unwrap_or(0),
                None => 0,
            };
            let mut counters = Vec::new();
            let mut last = applied;
            for (seq, changes) in records {
                if *seq <= applied {
                    continue;
                }
                for c in changes.iter() {
                    match c {
                        Change::Put { tree, key, value } => {
                            let i = tree_index(tree).map_err(ConflictableTransactionError::Abort)?;
                            let bytes = serde_json::to_vec(value).unwrap_or_default();
                            let _ = views[i].insert(key.as_bytes(), bytes)?;
                        }
                        Change::Delete { tree, key } => {
                            let i = tree_index(tree).map_err(ConflictableTransactionError::Abort)?;
                            let _ = views[i].remove(key.as_bytes())?;
                        }
                        Change::Add { key, delta } => {
                            let t = &views[counters_index];
                            let cur: i64 =
                                t.get(key.as_bytes())?.and_then(|v| serde_json::from_slice(&v).ok()).unwrap_or(0);
                            let new = cur.saturating_add(*delta);
                            let _ = t.insert(key.as_bytes(), serde_json::to_vec(&new).unwrap_or_default())?;
                            counters.push((*seq, key.clone(), new));
                        }
                    }
                }
                last = last.max(*seq);
            }
            let _ = meta.insert(META_APPLIED, serde_json::to_vec(&last).unwrap_or_default())?;
            let indexed: u64 = match meta.get(META_INDEXED)? {
                Some(v) => serde_json::from_slice(&v).unwrap_or(0),
                None => 0,
            };
            let tail: Option<JournalTail> = match meta.get(META_TAIL)? {
                Some(v) => serde_json::from_slice(&v).ok(),
                None => None,
            };
            let mut checkpoint_seq = tail.map_or(0, |t| t.checkpoint_seq);
            let mut new_tail = None;
            let base = TREES.len();
            for r in index.iter().filter(|r| r.seq > indexed) {
                let loc = r.loc.to_bytes();
                let mut time = r.time_ms.to_be_bytes().to_vec();
                time.extend_from_slice(&r.seq.to_be_bytes());
                let _ = views[base].insert(time, &loc[..])?;
                let _ = views[base + 1].insert(index_key(r.object, r.seq), &loc[..])?;
                let _ = views[base + 2].insert(index_key(r.actor, r.seq), &loc[..])?;
                let _ = views[base + 3].insert(index_key(r.action, r.seq), &loc[..])?;
                if r.seq % SEEK_EVERY == 0 || r.loc.offset == 0 {
                    let _ = views[base + 4].insert(&r.seq.to_be_bytes()[..], &loc[..])?;
                }
                if r.checkpoint {
                    checkpoint_seq = r.seq;
                }
                new_tail = Some(JournalTail { seq: r.seq, hash: hex::encode(r.hash), loc: r.loc, checkpoint_seq });
            }
            if let Some(t) = new_tail {
                let _ = meta.insert(META_INDEXED, serde_json::to_vec(&t.seq).unwrap_or_default())?;
                let _ = meta.insert(META_TAIL, serde_json::to_vec(&t).unwrap_or_default())?;
            }
            Ok(counters)
        });
        result.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => self.sled_err()(e),
        })
    }

    /// Asks sled to write its log now (sync_file_range: a crash barrier, not a power-loss one).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(self.sled_err())
    }

    /// Test hook for the schema check: sets the stored schema version.
    #[doc(hidden)]
    pub fn set_schema_version_for_test(&self, v: u64) -> Result<(), StoreError> {
        let _ =
            self.trees[0].insert(META_SCHEMA, serde_json::to_vec(&v).unwrap_or_default()).map_err(self.sled_err())?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(tree: &str, key: &str, v: serde_json::Value) -> Change {
        Change::Put { tree: tree.into(), key: key.into(), value: v }
    }

    #[test]
    fn applies_in_order_once_and_tracks_applied_seq() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("store")).unwrap();
        let a = [
            put(tree::SEALS, "s1", serde_json::json!({"state": "applied"})),
            Change::Add { key: "uses".into(), delta: 2 },
        ];
        let b = [put(tree::SEALS, "s1", serde_json::json!({"state": "approved"}))];
        let counters = s.apply(&[(1, &a), (2, &b)], &[]).unwrap();
        assert_eq!(counters, vec![(1, "uses".to_string(), 2)]);
        assert_eq!(s.applied_seq().unwrap(), 2);
        // Replaying old records changes nothing.
        let _ = s.apply(&[(1, &a)], &[]).unwrap();
        assert_eq!(s.counter("uses").unwrap(), 2);
        let v: serde_json::Value = s.get(tree::SEALS, "s1").unwrap().unwrap();
        assert_eq!(v["state"], "approved");
        let _ = s.apply(&[(3, &[Change::Delete { tree: tree::SEALS.into(), key: "s1".into() }])], &[]).unwrap();
        assert!(s.get::<serde_json::Value>(tree::SEALS, "s1").unwrap().is_none());
        assert!(matches!(
            s.apply(&[(4, &[put("nope", "k", serde_json::json!(1))])], &[]),
            Err(StoreError::UnknownTree(_))
        ));
        assert!(matches!(
            s.apply(&[(4, &[put(tree::META, "applied_seq", serde_json::json!(99))])], &[]),
            Err(StoreError::UnknownTree(_))
        ));
        assert_eq!(s.applied_seq().unwrap(), 3);
    }

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        Store::open(&path).unwrap().set_schema_version_for_test(SCHEMA_VERSION + 1).unwrap();
        let err = Store::open(&path).unwrap_err().to_string();
        assert!(err.contains("schema version 2") && err.contains("upgrade"), "{err}");
    }

    #[test]
    fn a_second_opener_is_told_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let _first = Store::open(&path).unwrap();
        // sled locks per process with a file lock; a second open in the same process is refused too.
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
        assert!(err.to_string().contains(path.to_str().unwrap()));
    }
}
