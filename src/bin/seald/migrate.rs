//! `seald migrate --to postgres`: an appliance's embedded journal replayed into the cluster's
//! database (with the daemon stopped), verified as it goes; its history becomes this node's chain.

use crate::Error;
use seald::config::Config;
use seald::store::Store;
use seald::token::{KeyId, TokenPool};
use std::path::Path;

/// Runs `seald migrate`: the config names the embedded store and journal (`[store] dir`,
/// `[audit] dir`) and the database (`[store] backend = "postgres"`, `[store.postgres]`,
/// `[cluster] node_id`).
pub fn run(config: &Path, pin_file: Option<&Path>) -> Result<(), Error> {
    let cfg = Config::load(config)?.with_pin_file(pin_file);
    let store_cfg = cfg.store.clone().ok_or("the config has no [store] section")?;
    let audit = cfg.audit.clone().ok_or("the config has no [audit] section")?;
    let pg = cfg
        .postgres()?
        .ok_or("the config's [store] backend is not \"postgres\": set it, with [store.postgres] and [cluster]")?;
    let started = std::time::Instant::now();
    let phase = |what: &str| eprintln!("[{:6.1} s] {what}", started.elapsed().as_secs_f64());
    // The key the chain's checkpoints are verified from: the first audit key, as the daemon has it.
    phase("opening the token and the embedded store");
    let pool = TokenPool::open(&cfg.token)?;
    let configured = KeyId::from_hex(&audit.key)?;
    let key = {
        let embedded = Store::open(&store_cfg.dir)?;
        let (active, anchor) = seald::seal::active_audit_key(&embedded, &configured)?;
        match anchor {
            Some(k) => k,
            None => pool.key(&active)?.public_key.clone(),
        }
    };
    phase(&format!("connecting to the database as node {}", pg.node));
    let db = Store::open_postgres(&pg)?;
    let db = db.pg().ok_or("not the cluster's database")?;
    let _claim = db.claim_node()?;
    let mut last = std::time::Instant::now();
    let migrated = seald::audit::migrate_to_cluster(&audit.dir, db, Some(&key), &mut |n| {
        if last.elapsed().as_secs() >= 2 {
            last = std::time::Instant::now();
            eprintln!("[{:6.1} s] {n} records read", started.elapsed().as_secs_f64());
        }
    })?;
    println!(
        "migrated {} of {} records from {} into {} as node {}'s chain (through seq {}); the chain verifies; \
         start the daemon with this configuration",
        migrated.written,
        migrated.read,
        audit.dir.display(),
        db.shown(),
        pg.node,
        migrated.head
    );
    Ok(())
}
