//! The cluster's store: the same trees, counters and derived indexes as the embedded view, and every
//! node's journal, in one PostgreSQL database that several seald nodes share.
//!
//! Where the embedded store is a view of a file journal (applied after the journal's fsync, rebuilt
//! by replay), here the database is the truth: a batch of journal records, their changes and their
//! counters commit in one transaction (`synchronous_commit` on), so a record is durable exactly when
//! its effects are, and nothing needs replaying. Each node keeps its own hash chain
//! (`seald_journal`, keyed by node and seq); no node waits for another to sign.
//!
//! What the in-process locks guarantee on one node, [`Guard`]s guarantee across nodes: a use's record
//! commits only if, inside its transaction, the seal's row (locked) still says it is active, its
//! counters stay within their limits, and its ticket is still unused. Transitions and administrative
//! changes also take a cluster-wide advisory lock ([`Pg::lock`]) for their check and commit.
//!
//! SQL kept to what PostgreSQL 12+ and its derivatives share: tables, btree indexes, `ON CONFLICT`,
//! `unnest`, row comparisons and advisory locks; no extension.

use super::*;
use postgres::types::Type;
use postgres::NoTls;
use postgres::Statement;

/// A statement parameter.
type P<'a> = &'a (dyn postgres::types::ToSql + Sync);

/// `v` as a statement parameter (the first of a list, which fixes the list's type).
fn p<T: postgres::types::ToSql + Sync>(v: &T) -> P<'_> {
    v
}

/// A parameter with its type given: statements sent so go out in one round trip (no prepare).
type Typed<'a> = (P<'a>, postgres::types::Type);

fn text<T: postgres::types::ToSql + Sync>(v: &T) -> Typed<'_> {
    (v, postgres::types::Type::TEXT)
}

use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr as _;

/// How to reach the database.
#[derive(Clone)]
pub struct PgSettings {
    /// A libpq-style URL or key=value string, without a password.
    pub url: String,
    /// The password (from a file or a systemd credential).
    pub password: Option<SecretString>,
    /// Connections in the pool.
    pub pool_size: u32,
    /// How long to wait for a connection (new or from the pool).
    pub connect_timeout: Duration,
    /// The longest a statement may run (also the longest a lock is waited for).
    pub statement_timeout: Duration,
    /// This node's id in the cluster.
    pub node: u16,
    /// The CA (PEM) the database server's certificate must chain to: connections are in TLS.
    pub ca: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings").field("url", &self.url).field("node", &self.node).finish_non_exhaustive()
    }
}

/// (key, value) pairs of a tree.
type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;
/// Each counter's value after each record: (seq, key, value).
pub type Counters = Vec<(u64, String, i64)>;
/// A record as stored: (time_ms, node, seq, payload).
pub type Stored = (u64, u16, u64, Vec<u8>);
/// A record of one chain: (seq, hash, payload).
pub type Chained = (u64, Vec<u8>, Vec<u8>);

type Pool = r2d2::Pool<Manager>;
type Pooled = r2d2::PooledConnection<Manager>;

/// Opens the pool's connections: in TLS when a database CA is configured (and the URL's `sslmode`
/// is not `disable`).
struct Manager {
    cfg: postgres::Config,
    tls: Option<super::pg_tls::DbTls>,
}

/// A connection and the statements prepared on it (the hot path's, by their text): each is parsed
/// and planned once per connection, then sent as one round trip with its parameters.
pub(super) struct Session {
    client: postgres::Client,
    prepared: HashMap<&'static str, Statement>,
}

impl Session {
    /// `sql` prepared on this connection (once), with its parameters' types.
    fn statement(&mut self, sql: &'static str, types: &[Type]) -> Result<Statement, postgres::Error> {
        prepared(&mut self.prepared, &mut self.client, sql, types)
    }
}

/// `sql` from `cache`, or prepared now through `on` (a client or a transaction of it) and kept.
fn prepared(
    cache: &mut HashMap<&'static str, Statement>,
    on: &mut impl postgres::GenericClient,
    sql: &'static str,
    types: &[Type],
) -> Result<Statement, postgres::Error> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = on.prepare_typed(sql, types)?;
    let _ = cache.insert(sql, s.clone());
    Ok(s)
}

impl std::ops::Deref for Session {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        &self.client
    }
}

impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Session;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Session, postgres::Error> {
        let client = match &self.tls {
            Some(tls) => self.cfg.connect(tls.clone())?,
            None => self.cfg.connect(NoTls)?,
        };
        Ok(Session { client, prepared: HashMap::new() })
    }

    fn is_valid(&self, s: &mut Session) -> Result<(), postgres::Error> {
        s.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, s: &mut Session) -> bool {
        s.client.is_closed()
    }
}

/// A pooled connection that is also let go off the runtime's workers: closing a broken one runs
/// the client's own small runtime, which a worker thread must not do.
struct Conn(Option<Pooled>);

impl std::ops::Deref for Conn {
    type Target = Session;
    fn deref(&self) -> &Session {
        self.0.as_deref().unwrap_or_else(|| unreachable!("a connection is present until dropped"))
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Session {
        self.0.as_deref_mut().unwrap_or_else(|| unreachable!("a connection is present until dropped"))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            blocking(move || drop(c));
        }
    }
}

/// A condition a journal record commits under, checked in the transaction that commits it with the
/// rows it names locked: the cluster's form of "hold the seal across check, signature and record".
#[derive(Debug, Clone)]
pub enum Guard {
    /// `tree/key`'s value has `field` equal to `equals`. A failure is refused with `code(found)`,
    /// where `found` is the field's value now (null: no such value).
    Field {
        /// Tree.
        tree: String,
        /// Key.
        key: String,
        /// A top-level field of the JSON value.
        field: String,
        /// What it must be.
        equals: serde_json::Value,
        /// The refusal's code, from what the field is now.
        code: fn(&serde_json::Value) -> &'static str,
    },
    /// `tree/key`'s whole value is still `equals` (what the use read): anything another node
    /// changed since (a policy, a key version, the hours) refuses the record with `code(now)`.
    Same {
        /// Tree.
        tree: String,
        /// Key.
        key: String,
        /// The value as read.
        equals: serde_json::Value,
        /// The refusal's code, from the value now (null: gone).
        code: fn(&serde_json::Value) -> &'static str,
    },
    /// Counter `key` is at most `max` once the record's adds are counted.
    AtMost {
        /// Counter.
        key: String,
        /// The most it may reach.
        max: i64,
        /// The refusal's code.
        code: &'static str,
    },
}

/// One record on its way into the database: its chain place, the bytes hashed, and what it does.
pub struct Row<'a> {
    /// Its seq in this node's chain.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
    /// Its time, ms.
    pub time_ms: u64,
    /// Actor account, action and object (the query columns).
    pub actor: &'a str,
    /// Action.
    pub action: &'a str,
    /// Object.
    pub object: &'a str,
    /// Whether it is a checkpoint.
    pub checkpoint: bool,
    /// The canonical encoding, exactly as hashed.
    pub payload: &'a [u8],
    /// Its changes.
    pub changes: &'a [Change],
}

/// Why a batch did not commit.
#[derive(Debug)]
pub enum BatchError {
    /// These records' guards failed (index in the batch, code, message): the batch is to be tried
    /// again without them.
    Guards(Vec<(usize, &'static str, String)>),
    /// The database failed (nothing of the batch committed, or it is not known whether it did).
    Db(StoreError),
}

/// The connection pool and this node's id.
pub struct Pg {
    /// Statements sent (each a round trip), and batches committed: for `/metrics` and the bench.
    trips: std::sync::atomic::AtomicU64,
    batches: std::sync::atomic::AtomicU64,
    /// Always present until dropped (taken then, to be dropped off the runtime's workers).
    pool: Option<Pool>,
    /// The connections that hold locks (see [`Pg::lock_conn`]).
    locks: Option<Pool>,
    node: u16,
    shown: String,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg").field("db", &self.shown).field("node", &self.node).finish_non_exhaustive()
    }
}

/// The schema, created by the first node that starts (under an advisory lock, so two starting
/// together do not race).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS seald_schema (version bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS seald_kv (tbl varchar(32) NOT NULL, k bytea NOT NULL, v bytea NOT NULL, \
     PRIMARY KEY (tbl, k))",
    "CREATE TABLE IF NOT EXISTS seald_counters (k varchar(1024) COLLATE \"C\" NOT NULL PRIMARY KEY, n bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS seald_journal (node integer NOT NULL, seq bigint NOT NULL, hash bytea NOT NULL, \
     time_ms bigint NOT NULL, actor text NOT NULL, action text NOT NULL, object text NOT NULL, \
     checkpoint boolean NOT NULL, payload bytea NOT NULL, PRIMARY KEY (node, seq))",
    "CREATE TABLE IF NOT EXISTS seald_nodes (node integer NOT NULL PRIMARY KEY, since_ms bigint NOT NULL)",
    "CREATE INDEX IF NOT EXISTS seald_journal_time ON seald_journal (time_ms, node, seq)",
    "CREATE INDEX IF NOT EXISTS seald_journal_object ON seald_journal (object, time_ms, node, seq)",
    "CREATE INDEX IF NOT EXISTS seald_journal_actor ON seald_journal (actor, time_ms, node, seq)",
    "CREATE INDEX IF NOT EXISTS seald_journal_action ON seald_journal (action, time_ms, node, seq)",
];

/// The hot path's statements, prepared once per connection.
const GET_COUNTER: &str = "SELECT n FROM seald_counters WHERE k = $1";
const GET_VALUE: &str = "SELECT v FROM seald_kv WHERE tbl = $1 AND k = $2";
const LOCK_ROWS: &str = "SELECT kv.tbl, kv.k, kv.v FROM seald_kv kv \
     JOIN unnest($1::text[], $2::bytea[]) AS w(tbl, k) ON kv.tbl = w.tbl AND kv.k = w.k \
     ORDER BY kv.tbl, kv.k FOR UPDATE OF kv";
const ADD_COUNTERS: &str =
    "INSERT INTO seald_counters (k, n) SELECT k, n FROM unnest($1::text[], $2::bigint[]) AS a(k, n) \
     ORDER BY k ON CONFLICT (k) DO UPDATE SET n = seald_counters.n + EXCLUDED.n RETURNING k, n";
const PUT_VALUE: &str =
    "INSERT INTO seald_kv (tbl, k, v) VALUES ($1, $2, $3) ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v";
const DELETE_VALUE: &str = "DELETE FROM seald_kv WHERE tbl = $1 AND k = $2 RETURNING v";
const INSERT_RECORDS: &str =
    "INSERT INTO seald_journal (node, seq, hash, time_ms, actor, action, object, checkpoint, payload) \
     SELECT $1, * FROM unnest($2::bigint[], $3::bytea[], $4::bigint[], $5::text[], $6::text[], $7::text[], \
     $8::boolean[], $9::bytea[])";

/// The advisory-lock space: schema creation, node ids, and the registry's cluster locks.
const LOCK_SCHEMA: i64 = 0x7365_616c_6400_0000;
const LOCK_NODE: i64 = 0x7365_616c_6401_0000;
const LOCK_NAMED: i64 = 0x7365_616c_6402_0000;

/// SQLSTATEs worth trying a batch again for: serialization failure, deadlock.
fn transient(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
            || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// Runs blocking database work from any thread: on a runtime's worker, the worker is handed off
/// first (the synchronous client runs its own small runtime).
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl Pg {
    /// Connects (the pool fills lazily), creates the schema if it is not there, and checks its version.
    pub fn connect(s: &PgSettings) -> Result<Pg, StoreError> {
        let mut cfg = postgres::Config::from_str(&s.url).map_err(|e| StoreError::Db {
            path: "postgres".into(),
            message: format!("[store.postgres] url does not parse: {e}"),
        })?;
        let shown = format!(
            "postgres {}/{}",
            cfg.get_hosts()
                .iter()
                .map(|h| match h {
                    postgres::config::Host::Tcp(t) => t.clone(),
                    postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            cfg.get_dbname().unwrap_or("")
        );
        if cfg.get_password().is_some() {
            return Err(StoreError::Db {
                path: shown,
                message: "the URL carries a password: give it in password_file or password_credential instead".into(),
            });
        }
        if let Some(p) = &s.password {
            let _ = cfg.password(p.expose_secret().as_bytes());
        }
        let _ = cfg.connect_timeout(s.connect_timeout).application_name(&format!("seald-node-{}", s.node)).options(
            &format!(
                "-c statement_timeout={} -c synchronous_commit=on -c idle_in_transaction_session_timeout={}",
                s.statement_timeout.as_millis(),
                s.statement_timeout.as_millis().max(1000) * 2
            ),
        );
        let tls = match &s.ca {
            // With a CA, TLS is required: `prefer` would let someone in the middle refuse TLS and
            // read the password.
            Some(_) if cfg.get_ssl_mode() == postgres::config::SslMode::Disable => {
                return Err(StoreError::Db {
                    path: shown,
                    message: "[store.postgres] ca is given but the URL says sslmode=disable".into(),
                })
            }
            Some(ca) => {
                let config = crate::tls::database_client_config(ca).map_err(|e| StoreError::Db {
                    path: shown.clone(),
                    message: format!("[store.postgres] ca: {e}"),
                })?;
                let _ = cfg.ssl_mode(postgres::config::SslMode::Require);
                Some(super::pg_tls::DbTls(config))
            }
            None if cfg.get_ssl_mode() == postgres::config::SslMode::Require => {
                return Err(StoreError::Db {
                    path: shown,
                    message: "sslmode=require needs [store.postgres] ca (the CA the database's certificate chains to)"
                        .into(),
                })
            }
            None => None,
        };
        let locks = r2d2::Pool::builder()
            .max_size(s.pool_size.max(2))
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(s.connect_timeout)
            .build_unchecked(Manager { cfg: cfg.clone(), tls: tls.clone() });
        let manager = Manager { cfg, tls };
        let pool = r2d2::Pool::builder()
            .max_size(s.pool_size.max(2))
            .min_idle(Some(0))
            // No test query at every checkout (a round trip per statement): a connection the
            // database dropped fails its next statement, is closed, and is not given back.
            .test_on_check_out(false)
            .connection_timeout(s.connect_timeout)
            .build_unchecked(manager);
        let pg = Pg {
            trips: Default::default(),
            batches: Default::default(),
            pool: Some(pool),
            locks: Some(locks),
            node: s.node,
            shown,
        };
        pg.create_schema()?;
        Ok(pg)
    }

    fn trip(&self) {
        let _ = self.trips.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Statements sent to the database so far (each one round trip), and journal batches committed.
    pub fn round_trips(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.trips.load(Relaxed), self.batches.load(Relaxed))
    }

    /// This node's id.
    pub fn node(&self) -> u16 {
        self.node
    }

    /// What to call the database in messages (hosts and database name, never credentials).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub(super) fn fail(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable { db: self.shown.clone(), message: e.to_string() }
    }

    /// A connection for a lock (held across a registry change, or for the node's id): from a pool
    /// of their own, so that changes waiting on each other never starve the journal's writer and
    /// the reads of their connections.
    fn lock_conn(&self) -> Result<Conn, StoreError> {
        let pool = self.locks.as_ref().ok_or_else(|| self.fail("the pool is closed"))?;
        blocking(|| pool.get()).map(|c| Conn(Some(c))).map_err(|e| self.fail(format!("no connection for a lock: {e}")))
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        let pool = self.pool.as_ref().ok_or_else(|| self.fail("the pool is closed"))?;
        blocking(|| pool.get()).map(|c| Conn(Some(c))).map_err(|e| self.fail(format!("no connection: {e}")))
    }

    fn create_schema(&self) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        blocking(|| {
            let mut tx = c.transaction()?;
            let _ = tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_SCHEMA])?;
            for s in SCHEMA {
                let _ = tx.execute(*s, &[])?;
            }
            let found: Option<i64> = tx.query_opt("SELECT version FROM seald_schema", &[])?.map(|r| r.get(0));
            match found {
                None => {
                    let _ =
                        tx.execute("INSERT INTO seald_schema (version) VALUES ($1)", &[&(SCHEMA_VERSION as i64)])?;
                }
                Some(v) if v as u64 > SCHEMA_VERSION => {
                    return Ok(Err(StoreError::NewerSchema {
                        path: self.shown.clone(),
                        found: v as u64,
                        supported: SCHEMA_VERSION,
                    }))
                }
                Some(_) => {}
            }
            tx.commit()?;
            Ok::<_, postgres::Error>(Ok(()))
        })
        .map_err(|e| self.fail(e))?
    }

    /// Takes this node's id for as long as the returned lock lives: a second process with the same
    /// `node_id` is refused (two writers would fork the node's chain).
    pub fn claim_node(&self) -> Result<NodeClaim, StoreError> {
        let mut c = self.lock_conn()?;
        let key = LOCK_NODE + i64::from(self.node);
        let got: bool =
            blocking(|| c.query_one("SELECT pg_try_advisory_lock($1)", &[&key])).map_err(|e| self.fail(e))?.get(0);
        if !got {
            return Err(StoreError::Locked(format!(
                "cluster node {} on {} (another seald runs with the same [cluster] node_id)",
                self.node, self.shown
            )));
        }
        let (node, now) = (i32::from(self.node), crate::seal::now_ms() as i64);
        let _ = blocking(|| {
            c.execute(
                "INSERT INTO seald_nodes (node, since_ms) VALUES ($1, $2) ON CONFLICT (node) DO NOTHING",
                &[&node, &now],
            )
        })
        .map_err(|e| self.fail(e))?;
        Ok(NodeClaim { _conn: std::sync::Mutex::new(c) })
    }

    /// A cluster-wide lock on `name` (a seal's transitions, the registry's administration), held
    /// until the guard drops. Waits at most the statement timeout.
    pub fn lock(&self, name: &str) -> Result<ClusterLock, StoreError> {
        let mut c = self.lock_conn()?;
        let digest = crate::crypto::sm3(name.as_bytes());
        let key = LOCK_NAMED ^ i64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
        self.trip();
        let _ = blocking(|| c.execute("SELECT pg_advisory_lock($1)", &[&key])).map_err(|e| self.fail(e))?;
        Ok(ClusterLock { conn: Some(c), key })
    }

    /// Whether the database answers, and how long it took.
    pub fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        let mut c = self.conn()?;
        self.trip();
        let _ = blocking(|| c.simple_query("SELECT 1")).map_err(|e| self.fail(e))?;
        Ok(started.elapsed())
    }

    /// The raw value of `key` in tree `tbl`.
    pub(super) fn get_raw(&self, tbl: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn()?;
        if tbl == tree::COUNTERS {
            let k = String::from_utf8_lossy(key).into_owned();
            self.trip();
            let row = blocking(|| {
                let st = c.statement(GET_COUNTER, &[Type::TEXT])?;
                c.query_opt(&st, &[&k])
            })
            .map_err(|e| self.fail(e))?;
            return Ok(row.map(|r| r.get::<_, i64>(0).to_string().into_bytes()));
        }
        self.trip();
        let row = blocking(|| {
            let st = c.statement(GET_VALUE, &[Type::TEXT, Type::BYTEA])?;
            c.query_opt(&st, &[&tbl, &key])
        })
        .map_err(|e| self.fail(e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Up to `limit` (key, value) of tree `tbl` with keys in (`lower`, `upper`), in key order (or
    /// reversed).
    pub(super) fn range(
        &self,
        tbl: &str,
        lower: std::ops::Bound<&[u8]>,
        upper: std::ops::Bound<&[u8]>,
        rev: bool,
        limit: usize,
    ) -> Result<KeyValues, StoreError> {
        use std::ops::Bound;
        // Counters are text keys in the "C" collation (byte order, as the other trees' bytea keys).
        let counters = tbl == tree::COUNTERS;
        let (from, val, ty) = if counters {
            ("seald_counters WHERE $1::text IS NOT NULL", "n", Type::TEXT)
        } else {
            ("seald_kv WHERE tbl = $1", "v", Type::BYTEA)
        };
        let mut sql = format!("SELECT k, {val} FROM {from}");
        let mut args: Vec<Box<dyn postgres::types::ToSql + Sync>> = Vec::new();
        for (b, op) in [(lower, ">"), (upper, "<")] {
            let (v, eq) = match b {
                Bound::Included(v) => (v, "="),
                Bound::Excluded(v) => (v, ""),
                Bound::Unbounded => continue,
            };
            if counters {
                args.push(Box::new(String::from_utf8_lossy(v).into_owned()));
            } else {
                args.push(Box::new(v.to_vec()));
            }
            sql += &format!(" AND k {op}{eq} ${}", args.len() + 1);
        }
        sql += &format!(" ORDER BY k {} LIMIT {}", if rev { "DESC" } else { "ASC" }, limit.min(1 << 20));
        let mut params: Vec<Typed<'_>> = vec![text(&tbl)];
        for a in &args {
            params.push((a.as_ref(), ty.clone()));
        }
        let mut c = self.conn()?;
        self.trip();
        let rows = blocking(|| c.query_typed(sql.as_str(), &params)).map_err(|e| self.fail(e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let k: Vec<u8> = if counters { r.get::<_, String>(0).into_bytes() } else { r.get(0) };
                let v = if counters { r.get::<_, i64>(1).to_string().into_bytes() } else { r.get(1) };
                (k, v)
            })
            .collect())
    }

    /// This node's chain head: (seq, hash), or (0, zeros) for a new node.
    pub fn head(&self) -> Result<(u64, [u8; 32]), StoreError> {
        self.head_of(self.node)
    }

    /// Node `node`'s chain head: (seq, hash), or (0, zeros) for a node with no records.
    pub fn head_of(&self, node: u16) -> Result<(u64, [u8; 32]), StoreError> {
        let mut c = self.conn()?;
        let head = blocking(|| last_of(&mut c, node)).map_err(|e| self.fail(e))?;
        Ok(head.map_or((0, [0u8; 32]), |h| (h.seq, h.hash)))
    }

    /// The last checkpoint in this node's chain: its seq (0: none) and how many records follow it.
    pub fn uncovered(&self) -> Result<u64, StoreError> {
        let mut c = self.conn()?;
        let node = i32::from(self.node);
        let row = blocking(|| {
            c.query_one(
                "SELECT count(*) FROM seald_journal WHERE node = $1 AND seq > \
                 COALESCE((SELECT max(seq) FROM seald_journal WHERE node = $1 AND checkpoint), 0)",
                &[&node],
            )
        })
        .map_err(|e| self.fail(e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Commits a batch of this node's records: checks every record's guards with their rows
    /// locked, then writes the records, their changes and their counters, in one transaction.
    /// Returns each counter's new value after each record, as (seq, key, value).
    pub fn commit(&self, rows: &[Row<'_>], guards: &[&[Guard]]) -> Result<Counters, BatchError> {
        let mut c = self.conn().map_err(BatchError::Db)?;
        let mut tries = 0;
        loop {
            tries += 1;
            match blocking(|| self.try_commit(&mut c, rows, guards)) {
                Ok(r) => return r,
                Err(e) if transient(&e) && tries < 5 => continue,
                Err(e) => return Err(BatchError::Db(self.fail(e))),
            }
        }
    }

    fn try_commit(
        &self,
        c: &mut Conn,
        rows: &[Row<'_>],
        guards: &[&[Guard]],
    ) -> Result<Result<Counters, BatchError>, postgres::Error> {
        self.trip();
        let Session { client, prepared: cache } = &mut **c;
        let mut tx = client.transaction()?;
        // 1. Every row the batch's guards read or its records write, locked in one pass in key
        //    order, before any counter: every node's transactions take their locks in the same
        //    order (rows, then counters), so two nodes never wait on each other in a circle.
        let mut wanted: std::collections::BTreeSet<(&str, &str)> = rows
            .iter()
            .flat_map(|r| r.changes.iter())
            .filter_map(|c| match c {
                Change::Put { tree, key, .. } | Change::Delete { tree, key } => Some((tree.as_str(), key.as_str())),
                Change::Add { .. } => None,
            })
            .collect();
        for g in guards.iter().flat_map(|g| g.iter()) {
            if let Guard::Field { tree, key, .. } | Guard::Same { tree, key, .. } = g {
                let _ = wanted.insert((tree.as_str(), key.as_str()));
            }
        }
        let mut current: HashMap<(String, String), serde_json::Value> = HashMap::new();
        if !wanted.is_empty() {
            let (tbls, keys): (Vec<&str>, Vec<&[u8]>) = wanted.iter().map(|(t, k)| (*t, k.as_bytes())).unzip();
            self.trip();
            let st = prepared(cache, &mut tx, LOCK_ROWS, &[Type::TEXT_ARRAY, Type::BYTEA_ARRAY])?;
            for r in tx.query(&st, &[&tbls, &keys])? {
                let (t, k, v): (String, Vec<u8>, Vec<u8>) = (r.get(0), r.get(1), r.get(2));
                let v = serde_json::from_slice(&v).unwrap_or(serde_json::Value::Null);
                let _ = current.insert((t, String::from_utf8_lossy(&k).into_owned()), v);
            }
        }
        // 2. Each record's field guards, in batch order, over the rows as the records before it
        //    leave them.
        let mut failed = Vec::new();
        for (i, (row, gs)) in rows.iter().zip(guards.iter()).enumerate() {
            for g in gs.iter() {
                const GONE: serde_json::Value = serde_json::Value::Null;
                let value = |tree: &str, key: &str| current.get(&(tree.to_string(), key.to_string())).unwrap_or(&GONE);
                match g {
                    Guard::Field { tree, key, field, equals, code } => {
                        let now = value(tree, key).get(field.as_str()).unwrap_or(&GONE);
                        if now != equals {
                            failed.push((i, code(now), format!("{tree}/{key}: {field} is now {now}")));
                            break;
                        }
                    }
                    Guard::Same { tree, key, equals, code } => {
                        let now = value(tree, key);
                        if now != equals {
                            failed.push((i, code(now), format!("{tree}/{key} changed since it was read")));
                            break;
                        }
                    }
                    Guard::AtMost { .. } => {}
                }
            }
            if failed.last().is_some_and(|(f, _, _)| *f == i) {
                continue;
            }
            for c in row.changes {
                match c {
                    Change::Put { tree, key, value } => {
                        let _ = current.insert((tree.clone(), key.clone()), value.clone());
                    }
                    Change::Delete { tree, key } => {
                        let _ = current.insert((tree.clone(), key.clone()), serde_json::Value::Null);
                    }
                    Change::Add { .. } => {}
                }
            }
        }
        if !failed.is_empty() {
            self.trip();
            tx.rollback()?;
            return Ok(Err(BatchError::Guards(failed)));
        }
        // 3. The counters: every add of the batch summed per counter, written in key order, and
        //    each record's values (and limits) worked out from the totals.
        let mut sums: BTreeMap<&str, i64> = BTreeMap::new();
        for c in rows.iter().flat_map(|r| r.changes.iter()) {
            if let Change::Add { key, delta } = c {
                *sums.entry(key.as_str()).or_insert(0) += delta;
            }
        }
        let mut totals: HashMap<String, i64> = HashMap::new();
        if !sums.is_empty() {
            let (keys, deltas): (Vec<&str>, Vec<i64>) = sums.iter().map(|(k, d)| (*k, *d)).unzip();
            self.trip();
            let st = prepared(cache, &mut tx, ADD_COUNTERS, &[Type::TEXT_ARRAY, Type::INT8_ARRAY])?;
            for r in tx.query(&st, &[&keys, &deltas])? {
                let _ = totals.insert(r.get(0), r.get(1));
            }
        }
        let mut running: HashMap<&str, i64> =
            sums.iter().map(|(k, d)| (*k, totals.get(*k).copied().unwrap_or(0) - d)).collect();
        let mut counters = Vec::new();
        for (i, (row, gs)) in rows.iter().zip(guards.iter()).enumerate() {
            for c in row.changes {
                if let Change::Add { key, delta } = c {
                    let v = running.entry(key.as_str()).or_insert(0);
                    *v += delta;
                    counters.push((row.seq, key.clone(), *v));
                }
            }
            for g in gs.iter() {
                if let Guard::AtMost { key, max, code } = g {
                    let v = running.get(key.as_str()).copied().unwrap_or(0);
                    if v > *max {
                        failed.push((i, *code, format!("counter {key} would reach {v}, past {max}")));
                        break;
                    }
                }
            }
        }
        if !failed.is_empty() {
            self.trip();
            tx.rollback()?;
            return Ok(Err(BatchError::Guards(failed)));
        }
        // 4. The values, their derived indexes, and the records.
        for c in rows.iter().flat_map(|r| r.changes.iter()) {
            let (tree, key, value) = match c {
                Change::Put { tree, key, value } => (tree, key, Some(value)),
                Change::Delete { tree, key } => (tree, key, None),
                Change::Add { .. } => continue,
            };
            if tree == tree::META || tree_index(tree).is_err() {
                return Ok(Err(BatchError::Db(StoreError::UnknownTree(tree.clone()))));
            }
            let old: Option<Vec<u8>> = match value {
                Some(v) => {
                    let value_bytes = serde_json::to_vec(v).unwrap_or_default();
                    let old = if DERIVED.iter().any(|(from, _)| from == tree) {
                        self.trip();
                        let st = prepared(cache, &mut tx, GET_VALUE, &[Type::TEXT, Type::BYTEA])?;
                        tx.query_opt(&st, &[tree, &key.as_bytes()])?.map(|r| r.get(0))
                    } else {
                        None
                    };
                    self.trip();
                    let st = prepared(cache, &mut tx, PUT_VALUE, &[Type::TEXT, Type::BYTEA, Type::BYTEA])?;
                    let _ = tx.execute(&st, &[tree, &key.as_bytes(), &value_bytes])?;
                    old
                }
                None => {
                    self.trip();
                    let st = prepared(cache, &mut tx, DELETE_VALUE, &[Type::TEXT, Type::BYTEA])?;
                    tx.query_opt(&st, &[tree, &key.as_bytes()])?.map(|r| r.get(0))
                }
            };
            let old = old.and_then(|o| serde_json::from_slice::<serde_json::Value>(&o).ok());
            if let Some((idx, k, _)) = old.as_ref().and_then(|o| derived_entry(tree, key, o)) {
                self.trip();
                let st = prepared(cache, &mut tx, DELETE_VALUE, &[Type::TEXT, Type::BYTEA])?;
                let _ = tx.execute(&st, &[&idx, &k])?;
            }
            if let Some((idx, k, v)) = value.and_then(|v| derived_entry(tree, key, v)) {
                self.trip();
                let st = prepared(cache, &mut tx, PUT_VALUE, &[Type::TEXT, Type::BYTEA, Type::BYTEA])?;
                let _ = tx.execute(&st, &[&idx, &k, &v])?;
            }
        }
        let node = i32::from(self.node);
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq as i64).collect();
        let hashes: Vec<&[u8]> = rows.iter().map(|r| &r.hash[..]).collect();
        let times: Vec<i64> = rows.iter().map(|r| r.time_ms as i64).collect();
        let actors: Vec<&str> = rows.iter().map(|r| r.actor).collect();
        let actions: Vec<&str> = rows.iter().map(|r| r.action).collect();
        let objects: Vec<&str> = rows.iter().map(|r| r.object).collect();
        let checkpoints: Vec<bool> = rows.iter().map(|r| r.checkpoint).collect();
        let payloads: Vec<&[u8]> = rows.iter().map(|r| r.payload).collect();
        self.trip();
        let st = prepared(
            cache,
            &mut tx,
            INSERT_RECORDS,
            &[
                Type::INT4,
                Type::INT8_ARRAY,
                Type::BYTEA_ARRAY,
                Type::INT8_ARRAY,
                Type::TEXT_ARRAY,
                Type::TEXT_ARRAY,
                Type::TEXT_ARRAY,
                Type::BOOL_ARRAY,
                Type::BYTEA_ARRAY,
            ],
        )?;
        let _ =
            tx.execute(&st, &[&node, &seqs, &hashes, &times, &actors, &actions, &objects, &checkpoints, &payloads])?;
        self.trip();
        tx.commit()?;
        let _ = self.batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Ok(counters))
    }

    /// One page of every node's records, by (time, node, seq), with the filters given, after the
    /// cursor `(time_ms, node, seq)`: (node, payload) each.
    #[allow(clippy::too_many_arguments)]
    pub fn journal_page(
        &self,
        from_ms: Option<u64>,
        to_ms: Option<u64>,
        actor: Option<&str>,
        action: Option<&str>,
        object: Option<&str>,
        after: Option<(u64, u16, u64)>,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        type Param = Box<dyn postgres::types::ToSql + Sync>;
        let mut sql = String::from("SELECT time_ms, node, seq, payload FROM seald_journal WHERE true");
        let mut args: Vec<Param> = Vec::new();
        for (col, v) in [("object", object), ("actor", actor), ("action", action)] {
            if let Some(v) = v {
                args.push(Box::new(v.to_string()));
                sql += &format!(" AND {col} = ${}", args.len());
            }
        }
        for (op, v) in [(">=", from_ms), ("<=", to_ms)] {
            if let Some(v) = v {
                args.push(Box::new(v as i64));
                sql += &format!(" AND time_ms {op} ${}", args.len());
            }
        }
        if let Some((t, node, seq)) = after {
            args.push(Box::new(t as i64));
            args.push(Box::new(i32::from(node)));
            args.push(Box::new(seq as i64));
            let n = args.len();
            sql += &format!(
                " AND (time_ms, node, seq) {} (${}, ${}, ${})",
                if newest_first { "<" } else { ">" },
                n - 2,
                n - 1,
                n
            );
        }
        let dir = if newest_first { "DESC" } else { "ASC" };
        sql += &format!(" ORDER BY time_ms {dir}, node {dir}, seq {dir} LIMIT {}", limit.min(10_000));
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
        let mut c = self.conn()?;
        self.trip();
        let rows = blocking(|| c.query(sql.as_str(), &params)).map_err(|e| self.fail(e))?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i32>(1) as u16, r.get::<_, i64>(2) as u64, r.get(3)))
            .collect())
    }

    /// Records `from..=to` of node `node`'s chain, up to `limit`, in order: (seq, hash, payload).
    pub fn chain(&self, node: u16, from: u64, to: u64, limit: usize) -> Result<Vec<Chained>, StoreError> {
        let mut c = self.conn()?;
        let (node, from, to, limit) = (i32::from(node), from as i64, to.min(i64::MAX as u64) as i64, limit as i64);
        let rows = blocking(|| {
            c.query(
                "SELECT seq, hash, payload FROM seald_journal WHERE node = $1 AND seq >= $2 AND seq <= $3 \
                 ORDER BY seq LIMIT $4",
                &[p(&node), &from, &to, &limit],
            )
        })
        .map_err(|e| self.fail(e))?;
        Ok(rows.into_iter().map(|r| (r.get::<_, i64>(0) as u64, r.get(1), r.get(2))).collect())
    }

    /// Every node's chain head (nodes with no records yet left out).
    pub fn heads(&self) -> Result<Vec<Head>, StoreError> {
        let mut c = self.conn()?;
        blocking(|| {
            // Each node's last record through the primary key: a few index reads, whatever the
            // history's length.
            let nodes = c.query("SELECT node FROM seald_nodes ORDER BY node", &[])?;
            let mut out = Vec::new();
            for n in nodes {
                out.extend(last_of(&mut c, n.get::<_, i32>(0) as u16)?);
            }
            Ok::<_, postgres::Error>(out)
        })
        .map_err(|e| self.fail(e))
    }
}

/// A node's chain head as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Node id.
    pub node: u16,
    /// Its last record's seq.
    pub seq: u64,
    /// That record's hash.
    pub hash: [u8; 32],
    /// When it was written, ms.
    pub time_ms: u64,
}

/// Node `node`'s last record, through the primary key.
fn last_of(c: &mut Conn, node: u16) -> Result<Option<Head>, postgres::Error> {
    let row = c.query_opt(
        "SELECT seq, hash, time_ms FROM seald_journal WHERE node = $1 ORDER BY seq DESC LIMIT 1",
        &[&i32::from(node)],
    )?;
    Ok(row.map(|r| Head {
        node,
        seq: r.get::<_, i64>(0) as u64,
        hash: r.get::<_, Vec<u8>>(1).try_into().unwrap_or([0u8; 32]),
        time_ms: r.get::<_, i64>(2) as u64,
    }))
}

impl Drop for Pg {
    fn drop(&mut self) {
        // Closing the idle connections runs the client's own runtime: not on a worker thread.
        let (pool, locks) = (self.pool.take(), self.locks.take());
        blocking(move || drop((pool, locks)));
    }
}

/// A node id taken for this process (a session-level advisory lock on its own connection).
pub struct NodeClaim {
    _conn: std::sync::Mutex<Conn>,
}

/// A cluster-wide lock, released when dropped.
pub struct ClusterLock {
    conn: Option<Conn>,
    key: i64,
}

impl Drop for ClusterLock {
    fn drop(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let key = self.key;
            // A connection that cannot unlock has lost its session, and the lock with it.
            let _ = blocking(|| c.execute("SELECT pg_advisory_unlock($1)", &[&key]));
        }
    }
}
