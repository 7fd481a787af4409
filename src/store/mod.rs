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

/// One state change, carried by a journal record and applied here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
            match sled::Config::new().path(path).open() {
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
        let trees = TREES.iter().map(|t| db.open_tree(t)).collect::<Result<Vec<_>, _>>().map_err(sled_err)?;
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
    /// `meta.applied_seq` to the last seq. Records at or below `applied_seq` are skipped, so replay
    /// is exactly-once. Returns the counters' new values as (seq, key, value).
    pub fn apply(&self, records: &[(u64, &[Change])]) -> Result<Vec<(u64, String, i64)>, StoreError> {
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
        let counters = s.apply(&[(1, &a), (2, &b)]).unwrap();
        assert_eq!(counters, vec![(1, "uses".to_string(), 2)]);
        assert_eq!(s.applied_seq().unwrap(), 2);
        // Replaying old records changes nothing.
        let _ = s.apply(&[(1, &a)]).unwrap();
        assert_eq!(s.counter("uses").unwrap(), 2);
        let v: serde_json::Value = s.get(tree::SEALS, "s1").unwrap().unwrap();
        assert_eq!(v["state"], "approved");
        let _ = s.apply(&[(3, &[Change::Delete { tree: tree::SEALS.into(), key: "s1".into() }])]).unwrap();
        assert!(s.get::<serde_json::Value>(tree::SEALS, "s1").unwrap().is_none());
        assert!(matches!(s.apply(&[(4, &[put("nope", "k", serde_json::json!(1))])]), Err(StoreError::UnknownTree(_))));
        assert!(matches!(
            s.apply(&[(4, &[put(tree::META, "applied_seq", serde_json::json!(99))])]),
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
