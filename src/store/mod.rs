//! The store: the current state (seals, accounts, grants, keys, approvals, filings, counters) and
//! the journal's indexes, in one redb file (`view.redb` in the store directory), as a view of the
//! audit journal.
//!
//! The journal is the source of truth and is fsynced before anything is acknowledged. So every state
//! change is a [`Change`] carried by a journal record, applied here in journal order, in one redb
//! transaction per batch that also advances `meta.applied_seq`. Those transactions are not fsynced
//! themselves: one in [`DURABLE_EVERY`] is (with redb's quick repair), as is the last one before the
//! store closes. A crash loses at most the commits since the last durable one, and on open whatever
//! the journal holds beyond `applied_seq` is replayed.
//!
//! Values are JSON (serde_json): the journal carries the same JSON as the full new state of an
//! object, so replay is a byte-for-byte upsert; an operator can read them; and serde's defaults let
//! later versions add fields. Metadata volumes make its size and speed irrelevant.
//!
//! What it deliberately does not do: decide anything. Rules live in the domain modules.

mod pg;
mod pg_tls;
pub use pg::{BatchError, ClusterLock, Guard, Head, NodeClaim, Pg, PgSettings, Row};

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
/// The `applied_seq` up to which the derived indexes ([`DERIVED`]) follow their trees: equal to
/// `applied_seq` when this seald applied every record since they were built (a seald from before
/// them, run on the store in between, leaves the two apart, and they are built again at open).
const META_DERIVED: &[u8] = b"derived_indexed_seq";

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
    /// Seals by state: `state ‖ / ‖ seal id`, its value the seal's unit (JSON). Kept by every put
    /// of a seal, so that a list of one state (an issuer's inbox) reads only those seals.
    pub const SEAL_STATE: &str = "sidx_state";
    /// Filings by seal: `seal id ‖ / ‖ filing id`, its value the filing's `created_ms` (JSON), so
    /// that a seal's filings are found without reading every filing.
    pub const FILING_SEAL: &str = "fidx_seal";
}

/// The indexes derived from the values of a tree (not from journal records): kept in the
/// transaction that puts or deletes a value, rebuilt by replay, and built at open when they do not
/// follow their trees ([`META_DERIVED`]).
const DERIVED: &[(&str, &str)] = &[(tree::SEALS, index::SEAL_STATE), (tree::FILINGS, index::FILING_SEAL)];

/// The entry `value` (of `tree`, at `key`) makes in its derived index.
fn derived_entry(tree: &str, key: &str, value: &serde_json::Value) -> Option<(&'static str, Vec<u8>, Vec<u8>)> {
    let text = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    match tree {
        tree::SEALS => Some((
            index::SEAL_STATE,
            state_key(text("state"), key),
            serde_json::to_vec(text("unit")).unwrap_or_default(),
        )),
        tree::FILINGS => Some((
            index::FILING_SEAL,
            format!("{}/{key}", text("seal")).into_bytes(),
            serde_json::to_vec(&value.get("created_ms").and_then(|v| v.as_u64()).unwrap_or(0)).unwrap_or_default(),
        )),
        _ => None,
    }
}

/// The smallest key past every key that starts with `prefix` (none: no such key).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let p = prefix.iter().rposition(|b| *b != 0xff)?;
    let mut end = prefix[..=p].to_vec();
    end[p] += 1;
    Some(end)
}

fn state_key(state: &str, id: &str) -> Vec<u8> {
    format!("{state}/{id}").into_bytes()
}

/// redb's page cache (its default is 1 GiB, which a store of years of records fills: the daemon's
/// memory would grow with the history).
pub const CACHE_BYTES: usize = 32 << 20;

/// The store's file in its directory.
pub const FILE: &str = "view.redb";

/// How often at most a commit is made durable (fsynced); the others are written without a sync
/// and, after a crash, replayed from the journal.
pub const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// The journal's index trees, in the order the store opens them after [`TREES`].
pub const INDEX_TREES: &[&str] =
    &[index::TIME, index::OBJECT, index::ACTOR, index::ACTION, index::SEQ, index::SEAL_STATE, index::FILING_SEAL];

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
    /// The cluster's database cannot be reached or failed a statement (nothing was changed, or
    /// the change did not commit).
    #[error("{db} unavailable: {message}")]
    Unavailable {
        /// Which database (hosts and name, never credentials).
        db: String,
        /// Why.
        message: String,
    },
    /// The database failed.
    #[error("store {path}: {message}")]
    Db {
        /// Store path.
        path: String,
        /// redb's (or the file system's) error.
        message: String,
    },
}

/// The redb database with its named tables.
pub struct Store {
    /// The embedded view (none on the cluster's database).
    db: Option<redb::Database>,
    /// The cluster's database (`[store] backend = "postgres"`).
    pg: Option<std::sync::Arc<Pg>>,
    path: PathBuf,
    /// When a commit was last made durable.
    last_durable: Mutex<Instant>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

type Bytes = &'static [u8];

/// A tree's table: byte keys, byte values.
fn table(name: &'static str) -> TableDefinition<'static, Bytes, Bytes> {
    TableDefinition::new(name)
}

fn tree_index(name: &str) -> Result<usize, StoreError> {
    TREES.iter().position(|t| *t == name).ok_or_else(|| StoreError::UnknownTree(name.to_string()))
}

fn index_table(name: &str) -> Result<&'static str, StoreError> {
    INDEX_TREES.iter().find(|t| **t == name).copied().ok_or_else(|| StoreError::UnknownTree(name.to_string()))
}

fn decode<T: DeserializeOwned>(tree: &str, key: &[u8], v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Decode {
        tree: tree.into(),
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })
}

/// sled's files, left in the store directory by a seald before the view moved to redb. The view
/// is rebuilt from the journal (and its archives), then they are removed: see
/// [`Store::remove_sled_leftovers`].
const SLED_FILES: &[&str] = &["db", "conf", "blobs"];

fn remove_sled_leftovers(dir: &Path) {
    if !(dir.join("conf").is_file() || dir.join("db").is_file()) {
        return;
    }
    tracing::warn!(dir = %dir.display(), "removing the sled store of an earlier seald: its view is rebuilt from the journal");
    for name in SLED_FILES {
        let p = dir.join(name);
        let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("snap.") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Store {
    /// Opens (creating) the store in the directory `path` and checks its schema version.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let fail = |message: String| StoreError::Db { path: shown.clone(), message };
        std::fs::create_dir_all(path).map_err(|e| fail(e.to_string()))?;
        let db = match redb::Database::builder().set_cache_size(CACHE_BYTES).create(path.join(FILE)) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(StoreError::Locked(shown)),
            Err(e) => return Err(fail(e.to_string())),
        };
        let store =
            Store { db: Some(db), pg: None, path: path.to_path_buf(), last_durable: Mutex::new(Instant::now()) };
        let mut txn = store.rdb()?.begin_write().map_err(|e| store.fail(e))?;
        txn.set_quick_repair(true);
        {
            for name in TREES.iter().chain(INDEX_TREES) {
                let _ = txn.open_table(table(name)).map_err(|e| store.fail(e))?;
            }
            let mut meta = txn.open_table(table(tree::META)).map_err(|e| store.fail(e))?;
            let found = meta.get(META_SCHEMA).map_err(|e| store.fail(e))?.map(|v| v.value().to_vec());
            match found {
                None => {
                    let _ = meta
                        .insert(META_SCHEMA, serde_json::to_vec(&SCHEMA_VERSION).unwrap_or_default().as_slice())
                        .map_err(|e| store.fail(e))?;
                }
                Some(v) => {
                    let found: u64 = decode(tree::META, META_SCHEMA, &v)?;
                    if found > SCHEMA_VERSION {
                        return Err(StoreError::NewerSchema { path: shown, found, supported: SCHEMA_VERSION });
                    }
                }
            }
            // The derived indexes, built from their trees when they do not follow them (a store
            // from before them, or one an earlier seald wrote to since).
            let seq = |key: &[u8]| -> Result<Option<u64>, StoreError> {
                match meta.get(key).map_err(|e| store.fail(e))? {
                    Some(v) => Ok(Some(decode(tree::META, key, v.value())?)),
                    None => Ok(None),
                }
            };
            let applied = seq(META_APPLIED)?.unwrap_or(0);
            if seq(META_DERIVED)? != Some(applied) {
                for (from, to) in DERIVED {
                    let mut idx = txn.open_table(table(to)).map_err(|e| store.fail(e))?;
                    idx.retain(|_, _| false).map_err(|e| store.fail(e))?;
                    let values = txn.open_table(table(from)).map_err(|e| store.fail(e))?;
                    for item in values.iter().map_err(|e| store.fail(e))? {
                        let (k, v) = item.map_err(|e| store.fail(e))?;
                        let value: serde_json::Value = decode(from, k.value(), v.value())?;
                        let key = String::from_utf8_lossy(k.value()).into_owned();
                        if let Some((_, ik, iv)) = derived_entry(from, &key, &value) {
                            let _ = idx.insert(ik.as_slice(), iv.as_slice()).map_err(|e| store.fail(e))?;
                        }
                    }
                }
                let _ = meta
                    .insert(META_DERIVED, serde_json::to_vec(&applied).unwrap_or_default().as_slice())
                    .map_err(|e| store.fail(e))?;
            }
        }
        txn.commit().map_err(|e| store.fail(e))?;
        Ok(store)
    }

    /// Connects to the cluster's database (creating its schema on the first start): the store of
    /// `[store] backend = "postgres"`, shared by every node.
    pub fn open_postgres(settings: &PgSettings) -> Result<Self, StoreError> {
        let pg = Pg::connect(settings)?;
        Ok(Store {
            db: None,
            path: PathBuf::from(pg.shown()),
            pg: Some(std::sync::Arc::new(pg)),
            last_durable: Mutex::new(Instant::now()),
        })
    }

    /// The cluster's database, when the store is one.
    pub fn pg(&self) -> Option<&std::sync::Arc<Pg>> {
        self.pg.as_ref()
    }

    fn rdb(&self) -> Result<&redb::Database, StoreError> {
        self.db.as_ref().ok_or_else(|| StoreError::Db {
            path: self.path.display().to_string(),
            message: "the cluster's database keeps the journal's records itself: no view index to read".into(),
        })
    }

    /// Removes the sled store an earlier seald left in this directory, once this view has been
    /// rebuilt from the journal and synced (the daemon calls it after opening the journal; tools
    /// that only look never do).
    pub fn remove_sled_leftovers(&self) -> Result<(), StoreError> {
        if self.pg.is_some() {
            return Ok(());
        }
        self.flush()?;
        remove_sled_leftovers(&self.path);
        Ok(())
    }

    /// Where it lives (the directory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db { path: self.path.display().to_string(), message: e.into().to_string() }
    }

    /// Seals in `state` (its name), by id after `after`: up to `max` of (id, unit), and whether
    /// there are more.
    pub fn seals_in_state(
        &self,
        state: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<(Vec<(String, String)>, bool), StoreError> {
        use std::ops::Bound;
        let prefix = state_key(state, "");
        if let Some(pg) = &self.pg {
            let lower = match after {
                Some(a) => state_key(state, a),
                None => prefix.clone(),
            };
            let lower =
                if after.is_some() { Bound::Excluded(lower.as_slice()) } else { Bound::Included(lower.as_slice()) };
            let end = prefix_end(&prefix);
            let mut rows = pg.range(
                index::SEAL_STATE,
                lower,
                end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
                false,
                max + 1,
            )?;
            let more = rows.len() > max;
            rows.truncate(max);
            let mut out = Vec::new();
            for (k, v) in rows {
                let unit: String = decode(index::SEAL_STATE, &k, &v)?;
                out.push((String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), unit));
            }
            return Ok((out, more));
        }
        let txn = self.rdb()?.begin_read().map_err(|e| self.fail(e))?;
        let t = txn.open_table(table(index::SEAL_STATE)).map_err(|e| self.fail(e))?;
        let lower = match after {
            Some(a) => Bound::Excluded(state_key(state, a)),
            None => Bound::Included(prefix.clone()),
        };
        let mut out = Vec::new();
        let range =
            t.range::<&[u8]>((lower.as_ref().map(|v| v.as_slice()), Bound::Unbounded)).map_err(|e| self.fail(e))?;
        for item in range {
            let (k, v) = item.map_err(|e| self.fail(e))?;
            let Some(id) = k.value().strip_prefix(prefix.as_slice()) else { return Ok((out, false)) };
            if out.len() == max {
                return Ok((out, true));
            }
            let unit: String = decode(index::SEAL_STATE, k.value(), v.value())?;
            out.push((String::from_utf8_lossy(id).into_owned(), unit));
        }
        Ok((out, false))
    }

    /// The filings of seal `seal`: (filing id, created_ms), by id; at most `max`.
    pub fn filings_of(&self, seal: &str, max: usize) -> Result<Vec<(String, u64)>, StoreError> {
        use std::ops::Bound;
        let prefix = format!("{seal}/").into_bytes();
        if let Some(pg) = &self.pg {
            let end = prefix_end(&prefix);
            let rows = pg.range(
                index::FILING_SEAL,
                Bound::Included(prefix.as_slice()),
                end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
                false,
                max,
            )?;
            return rows
                .into_iter()
                .map(|(k, v)| {
                    Ok((String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), decode(index::FILING_SEAL, &k, &v)?))
                })
                .collect();
        }
        let txn = self.rdb()?.begin_read().map_err(|e| self.fail(e))?;
        let t = txn.open_table(table(index::FILING_SEAL)).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for item in
            t.range::<&[u8]>((Bound::Included(prefix.as_slice()), Bound::Unbounded)).map_err(|e| self.fail(e))?
        {
            let (k, v) = item.map_err(|e| self.fail(e))?;
            let Some(id) = k.value().strip_prefix(prefix.as_slice()) else { break };
            if out.len() == max {
                break;
            }
            out.push((String::from_utf8_lossy(id).into_owned(), decode(index::FILING_SEAL, k.value(), v.value())?));
        }
        Ok(out)
    }

    /// The raw value of `key` in table `name`.
    fn raw(&self, name: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pg) = &self.pg {
            return pg.get_raw(name, key);
        }
        let txn = self.rdb()?.begin_read().map_err(|e| self.fail(e))?;
        let t = txn.open_table(table(name)).map_err(|e| self.fail(e))?;
        let v = t.get(key).map_err(|e| self.fail(e))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// The journal seq whose effects the store holds.
    pub fn applied_seq(&self) -> Result<u64, StoreError> {
        self.get::<u64>(tree::META, "applied_seq").map(|v| v.unwrap_or(0))
    }

    /// A typed value.
    pub fn get<T: DeserializeOwned>(&self, tree: &str, key: &str) -> Result<Option<T>, StoreError> {
        let name = TREES[tree_index(tree)?];
        match self.raw(name, key.as_bytes())? {
            None => Ok(None),
            Some(v) => decode(tree, key.as_bytes(), &v).map(Some),
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
        use std::ops::Bound;
        let txn = self.rdb()?.begin_read().map_err(|e| self.fail(e))?;
        let t = txn.open_table(table(index_table(name)?)).map_err(|e| self.fail(e))?;
        let mut end = prefix.to_vec();
        // The smallest key past every key with this prefix (prefixes here never end in 0xff).
        let upper = match end.iter().rposition(|b| *b != 0xff) {
            Some(p) => {
                end.truncate(p + 1);
                end[p] += 1;
                Bound::Excluded(end.as_slice())
            }
            None => Bound::Unbounded,
        };
        let (lower, upper) = match (after, rev) {
            (None, _) => (Bound::Included(prefix), upper),
            (Some(a), false) => (Bound::Excluded(a), upper),
            (Some(a), true) => (Bound::Included(prefix), Bound::Excluded(a)),
        };
        let range = t.range::<&[u8]>((lower, upper)).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        let mut push =
            |item: Result<(redb::AccessGuard<'_, Bytes>, redb::AccessGuard<'_, Bytes>), redb::StorageError>| {
                let (k, v) = item.map_err(|e| self.fail(e))?;
                let loc = Loc::from_bytes(v.value()).ok_or_else(|| StoreError::Decode {
                    tree: name.into(),
                    key: hex::encode(k.value()),
                    message: "not a record location".into(),
                })?;
                out.push((k.value().to_vec(), loc));
                Ok::<_, StoreError>(out.len() < limit)
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
        let txn = self.rdb()?.begin_read().map_err(|e| self.fail(e))?;
        let t = txn.open_table(table(index::SEQ)).map_err(|e| self.fail(e))?;
        let key = seq.to_be_bytes();
        let mut range = t.range::<&[u8]>(..=&key[..]).map_err(|e| self.fail(e))?;
        match range.next_back() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(|e| self.fail(e))?;
                let at = u64::from_be_bytes(k.value().try_into().unwrap_or_default());
                Ok(Loc::from_bytes(v.value()).map(|l| (at, l)))
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
        self.scan_prefix_after(tree, "", after, max)
    }

    /// As [`Store::scan_after`], among the keys that start with `prefix` only.
    pub fn scan_prefix_after<T: DeserializeOwned>(
        &self,
        tree: &str,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<(Vec<(String, T)>, bool), StoreError> {
        use std::ops::Bound;
        let name = TREES[tree_index(tree)?];
        if let Some(pg) = &self.pg {
            let lower = match after {
                Some(a) if a.as_bytes() >= prefix.as_bytes() => Bound::Excluded(a.as_bytes()),
                _ => Bound::Included(prefix.as_bytes()),
            };
            let end = prefix_end(prefix.as_bytes());
            let mut rows = pg.range(
                name,
                lower,
                end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
                false,
                max.saturating_add(1),
            )?;
            let more = rows.len() > max;
            rows.truncate(max);
            let out: Result<Vec<_>, StoreError> = rows
                .into_iter()
                .map(|(k, v)| Ok((String::from_utf8_lossy(&k).into_owned(), decode(tree, &k, &v)?)))
                .collect();
            return Ok((out?, more));
        }
        let txn = self.rdb()?.begin_read().map_err(|e| self.fail(e))?;
        let t = txn.open_table(table(name)).map_err(|e| self.fail(e))?;
        let lower = match after {
            Some(a) if a.as_bytes() >= prefix.as_bytes() => Bound::Excluded(a.as_bytes()),
            _ => Bound::Included(prefix.as_bytes()),
        };
        let mut out = Vec::new();
        for item in t.range::<&[u8]>((lower, Bound::Unbounded)).map_err(|e| self.fail(e))? {
            let (k, v) = item.map_err(|e| self.fail(e))?;
            if !k.value().starts_with(prefix.as_bytes()) {
                return Ok((out, false));
            }
            if out.len() == max {
                return Ok((out, true));
            }
            out.push((String::from_utf8_lossy(k.value()).into_owned(), decode(tree, k.value(), v.value())?));
        }
        Ok((out, false))
    }

    /// Every value in a tree, by key order.
    pub fn scan<T: DeserializeOwned>(&self, tree: &str) -> Result<Vec<(String, T)>, StoreError> {
        let mut all: Vec<(String, T)> = Vec::new();
        loop {
            let (batch, more) = self.scan_after::<T>(tree, all.last().map(|(k, _)| k.as_str()), 4096)?;
            all.extend(batch);
            if !more {
                return Ok(all);
            }
        }
    }

    /// A counter's value (0 if never added to).
    pub fn counter(&self, key: &str) -> Result<i64, StoreError> {
        self.get::<i64>(tree::COUNTERS, key).map(|v| v.unwrap_or(0))
    }

    /// Whether this commit is to be durable: one per [`DURABLE_EVERY`].
    fn durable_now(&self) -> bool {
        let mut last = self.last_durable.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= DURABLE_EVERY {
            *last = Instant::now();
            true
        } else {
            false
        }
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
        if self.pg.is_some() {
            return Err(StoreError::Db {
                path: self.path.display().to_string(),
                message: "the cluster's records commit with their changes (Pg::commit), never applied afterwards"
                    .into(),
            });
        }
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
        let mut txn = self.rdb()?.begin_write().map_err(|e| self.fail(e))?;
        if self.durable_now() {
            txn.set_quick_repair(true);
        } else {
            txn.set_durability(Durability::None).map_err(|e| self.fail(e))?;
        }
        let counters = {
            let mut tables: Vec<Option<redb::Table<'_, Bytes, Bytes>>> = TREES.iter().map(|_| None).collect();
            let mut counters = Vec::new();
            let mut meta = txn.open_table(table(tree::META)).map_err(|e| self.fail(e))?;
            let get_u64 = |meta: &redb::Table<'_, Bytes, Bytes>, key: &[u8]| -> Result<u64, StoreError> {
                Ok(meta
                    .get(key)
                    .map_err(|e| self.fail(e))?
                    .and_then(|v| serde_json::from_slice(v.value()).ok())
                    .unwrap_or(0))
            };
            let applied = get_u64(&meta, META_APPLIED)?;
            let mut last = applied;
            for (seq, changes) in records {
                if *seq <= applied {
                    continue;
                }
                for c in changes.iter() {
                    let i = match c {
                        Change::Put { tree, .. } | Change::Delete { tree, .. } => tree_index(tree)?,
                        Change::Add { .. } => tree_index(tree::COUNTERS)?,
                    };
                    if tables[i].is_none() {
                        tables[i] = Some(txn.open_table(table(TREES[i])).map_err(|e| self.fail(e))?);
                    }
                    let Some(t) = tables[i].as_mut() else { continue };
                    // A put or delete moves the value in its derived index (a seal to its new state):
                    // the old value's entry goes, the new one's comes.
                    let old_entry = |t: &redb::Table<'_, Bytes, Bytes>, tree: &str, key: &str| {
                        if !DERIVED.iter().any(|(from, _)| *from == tree) {
                            return Ok::<_, StoreError>(None);
                        }
                        match t.get(key.as_bytes()).map_err(|e| self.fail(e))? {
                            Some(old) => {
                                let old: serde_json::Value = decode(tree, key.as_bytes(), old.value())?;
                                Ok(derived_entry(tree, key, &old))
                            }
                            None => Ok(None),
                        }
                    };
                    let (old, new) = match c {
                        Change::Put { tree, key, value } => {
                            let old = old_entry(t, tree, key)?;
                            let bytes = serde_json::to_vec(value).unwrap_or_default();
                            let _ = t.insert(key.as_bytes(), bytes.as_slice()).map_err(|e| self.fail(e))?;
                            (old, derived_entry(tree, key, value))
                        }
                        Change::Delete { tree, key } => {
                            let old = old_entry(t, tree, key)?;
                            let _ = t.remove(key.as_bytes()).map_err(|e| self.fail(e))?;
                            (old, None)
                        }
                        Change::Add { .. } => (None, None),
                    };
                    for (idx, k, _) in old.iter() {
                        let mut idx = txn.open_table(table(idx)).map_err(|e| self.fail(e))?;
                        let _ = idx.remove(k.as_slice()).map_err(|e| self.fail(e))?;
                    }
                    for (idx, k, v) in new.iter() {
                        let mut idx = txn.open_table(table(idx)).map_err(|e| self.fail(e))?;
                        let _ = idx.insert(k.as_slice(), v.as_slice()).map_err(|e| self.fail(e))?;
                    }
                    let Some(t) = tables[i].as_mut() else { continue };
                    match c {
                        Change::Put { .. } | Change::Delete { .. } => {}
                        Change::Add { key, delta } => {
                            let cur: i64 = t
                                .get(key.as_bytes())
                                .map_err(|e| self.fail(e))?
                                .and_then(|v| serde_json::from_slice(v.value()).ok())
                                .unwrap_or(0);
                            let new = cur.saturating_add(*delta);
                            let bytes = serde_json::to_vec(&new).unwrap_or_default();
                            let _ = t.insert(key.as_bytes(), bytes.as_slice()).map_err(|e| self.fail(e))?;
                            counters.push((*seq, key.clone(), new));
                        }
                    }
                }
                last = last.max(*seq);
            }
            let put = |meta: &mut redb::Table<'_, Bytes, Bytes>, key: &[u8], v: Vec<u8>| {
                meta.insert(key, v.as_slice()).map(|_| ()).map_err(|e| self.fail(e))
            };
            put(&mut meta, META_APPLIED, serde_json::to_vec(&last).unwrap_or_default())?;
            put(&mut meta, META_DERIVED, serde_json::to_vec(&last).unwrap_or_default())?;
            let indexed = get_u64(&meta, META_INDEXED)?;
            let tail: Option<JournalTail> =
                meta.get(META_TAIL).map_err(|e| self.fail(e))?.and_then(|v| serde_json::from_slice(v.value()).ok());
            let mut checkpoint_seq = tail.map_or(0, |t| t.checkpoint_seq);
            let mut new_tail = None;
            let fresh: Vec<&Indexed<'_>> = index.iter().filter(|r| r.seq > indexed).collect();
            if !fresh.is_empty() {
                let mut by_time = txn.open_table(table(index::TIME)).map_err(|e| self.fail(e))?;
                let mut by_object = txn.open_table(table(index::OBJECT)).map_err(|e| self.fail(e))?;
                let mut by_actor = txn.open_table(table(index::ACTOR)).map_err(|e| self.fail(e))?;
                let mut by_action = txn.open_table(table(index::ACTION)).map_err(|e| self.fail(e))?;
                let mut by_seq = txn.open_table(table(index::SEQ)).map_err(|e| self.fail(e))?;
                for r in fresh {
                    let loc = r.loc.to_bytes();
                    let mut time = [0u8; 16];
                    time[..8].copy_from_slice(&r.time_ms.to_be_bytes());
                    time[8..].copy_from_slice(&r.seq.to_be_bytes());
                    let _ = by_time.insert(&time[..], &loc[..]).map_err(|e| self.fail(e))?;
                    let _ =
                        by_object.insert(index_key(r.object, r.seq).as_slice(), &loc[..]).map_err(|e| self.fail(e))?;
                    let _ =
                        by_actor.insert(index_key(r.actor, r.seq).as_slice(), &loc[..]).map_err(|e| self.fail(e))?;
                    let _ =
                        by_action.insert(index_key(r.action, r.seq).as_slice(), &loc[..]).map_err(|e| self.fail(e))?;
                    if r.seq % SEEK_EVERY == 0 || r.loc.offset == 0 {
                        let _ = by_seq.insert(&r.seq.to_be_bytes()[..], &loc[..]).map_err(|e| self.fail(e))?;
                    }
                    if r.checkpoint {
                        checkpoint_seq = r.seq;
                    }
                    new_tail = Some(JournalTail { seq: r.seq, hash: hex::encode(r.hash), loc: r.loc, checkpoint_seq });
                }
            }
            if let Some(t) = new_tail {
                put(&mut meta, META_INDEXED, serde_json::to_vec(&t.seq).unwrap_or_default())?;
                put(&mut meta, META_TAIL, serde_json::to_vec(&t).unwrap_or_default())?;
            }
            counters
        };
        txn.commit().map_err(|e| self.fail(e))?;
        Ok(counters)
    }

    /// Makes every commit so far durable (fsynced).
    pub fn flush(&self) -> Result<(), StoreError> {
        if self.pg.is_some() {
            return Ok(());
        }
        let mut txn = self.rdb()?.begin_write().map_err(|e| self.fail(e))?;
        txn.set_quick_repair(true);
        txn.commit().map_err(|e| self.fail(e))?;
        *self.last_durable.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        Ok(())
    }

    /// Test hook for the schema check: sets the stored schema version.
    #[doc(hidden)]
    pub fn set_schema_version_for_test(&self, v: u64) -> Result<(), StoreError> {
        let txn = self.rdb()?.begin_write().map_err(|e| self.fail(e))?;
        {
            let mut meta = txn.open_table(table(tree::META)).map_err(|e| self.fail(e))?;
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            let _ = meta.insert(META_SCHEMA, bytes.as_slice()).map_err(|e| self.fail(e))?;
        }
        txn.commit().map_err(|e| self.fail(e))
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
    fn seals_move_in_the_state_index_and_an_older_store_gains_it_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let seal = |state: &str, unit: &str| serde_json::json!({ "state": state, "unit": unit, "image": "x" });
        {
            let s = Store::open(&path).unwrap();
            let a = [put(tree::SEALS, "s1", seal("applied", "u1")), put(tree::SEALS, "s2", seal("applied", "u2"))];
            let b = [put(tree::SEALS, "s3", seal("active", "u1")), put(tree::SEALS, "s1", seal("approved", "u1"))];
            let _ = s.apply(&[(1, &a), (2, &b)], &[]).unwrap();
            let ids = |st: &str, after: Option<&str>, max| s.seals_in_state(st, after, max).unwrap();
            assert_eq!(ids("applied", None, 10), (vec![("s2".to_string(), "u2".to_string())], false));
            assert_eq!(ids("approved", None, 10).0, vec![("s1".to_string(), "u1".to_string())]);
            assert_eq!(ids("active", None, 10).0.len(), 1);
            // Pages by id; a state's prefix never runs into another's.
            let _ = s.apply(&[(3, &[put(tree::SEALS, "s4", seal("active", "u1"))])], &[]).unwrap();
            assert_eq!(ids("active", None, 1), (vec![("s3".to_string(), "u1".to_string())], true));
            assert_eq!(ids("active", Some("s3"), 1), (vec![("s4".to_string(), "u1".to_string())], false));
            assert!(ids("activ", None, 10).0.is_empty());
            let _ = s.apply(&[(4, &[Change::Delete { tree: tree::SEALS.into(), key: "s4".into() }])], &[]).unwrap();
            assert_eq!(ids("active", None, 10).0.len(), 1);
            // Filings by seal, with when each was made.
            let filing =
                |seal: &str, at: u64| serde_json::json!({ "seal": seal, "created_ms": at, "state": "pending" });
            let f = [
                put(tree::FILINGS, "F1", filing("s1", 10)),
                put(tree::FILINGS, "F2", filing("s1", 20)),
                put(tree::FILINGS, "F3", filing("s10", 30)),
            ];
            let _ = s.apply(&[(5, &f)], &[]).unwrap();
            assert_eq!(s.filings_of("s1", 10).unwrap(), vec![("F1".to_string(), 10), ("F2".to_string(), 20)]);
            assert_eq!(s.filings_of("s10", 10).unwrap(), vec![("F3".to_string(), 30)]);
            assert!(s.filings_of("s", 10).unwrap().is_empty());
            // A store from before the index: its table emptied, as an older seald left it.
            // A reopened store that kept up is not rebuilt: its index is as it was.
            drop(s);
            let s = Store::open(&path).unwrap();
            assert_eq!(s.seals_in_state("active", None, 10).unwrap().0.len(), 1);
            // A store an older seald wrote to: it moved a seal without the index and without the
            // index's mark.
            let txn = s.rdb().unwrap().begin_write().unwrap();
            {
                let mut seals = txn.open_table(table(tree::SEALS)).unwrap();
                let moved = serde_json::to_vec(&seal("frozen", "u1")).unwrap();
                let _ = seals.insert(b"s3".as_slice(), moved.as_slice()).unwrap();
                let mut meta = txn.open_table(table(tree::META)).unwrap();
                let _ = meta.insert(META_APPLIED, b"6".as_slice()).unwrap();
                let mut filings = txn.open_table(table(tree::FILINGS)).unwrap();
                let late = serde_json::to_vec(&serde_json::json!({ "seal": "s2", "created_ms": 40 })).unwrap();
                let _ = filings.insert(b"F4".as_slice(), late.as_slice()).unwrap();
            }
            txn.commit().unwrap();
            assert_eq!(s.seals_in_state("active", None, 10).unwrap().0.len(), 1, "stale until reopened");
        }
        let s = Store::open(&path).unwrap();
        let count = |st: &str| s.seals_in_state(st, None, 10).unwrap().0.len();
        assert_eq!((count("applied"), count("approved"), count("active"), count("frozen")), (1, 1, 0, 1));
        assert_eq!(s.filings_of("s2", 10).unwrap(), vec![("F4".to_string(), 40)]);
        assert_eq!(s.filings_of("s1", 10).unwrap().len(), 2);
    }

    #[test]
    fn an_earlier_sled_store_is_removed_and_a_second_open_sees_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        std::fs::create_dir_all(path.join("blobs")).unwrap();
        for f in ["conf", "db", "snap.0000000000012AB4", "blobs/7"] {
            std::fs::write(path.join(f), b"sled").unwrap();
        }
        let names = || {
            let mut n: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        {
            let s = Store::open(&path).unwrap();
            let _ = s.apply(&[(1, &[put(tree::SEALS, "s1", serde_json::json!(1))])], &[]).unwrap();
            // Opening (as `seald check` does) removes nothing.
            assert_eq!(names().len(), 5);
            s.remove_sled_leftovers().unwrap();
        }
        assert_eq!(names(), vec![FILE.to_string()]);
        // The commit was not synced by itself; closing the store kept it.
        let s = Store::open(&path).unwrap();
        assert_eq!(s.applied_seq().unwrap(), 1);
        assert_eq!(s.get::<i64>(tree::SEALS, "s1").unwrap(), Some(1));
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
        // redb locks the file; a second open in the same process is refused too.
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
        assert!(err.to_string().contains(path.to_str().unwrap()));
    }
}
