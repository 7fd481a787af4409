//! `seald restore`: a backup (from `sealctl backup`) put back with the daemon stopped, into the
//! configuration's empty store and journal directories.

use crate::Error;
use seald::config::Config;
use seald::token::{self, TokenPool};
use std::path::Path;

/// Runs `seald restore`: refuses a backup that does not verify, or whose keys the token lacks.
pub fn run(file: &Path, config: &Path, pin_file: Option<&Path>) -> Result<(), Error> {
    let cfg = Config::load(config)?.with_pin_file(pin_file);
    let store = cfg.store.clone().ok_or("the config has no [store] section")?;
    let audit = cfg.audit.clone().ok_or("the config has no [audit] section")?;
    let opened = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut input = std::io::BufReader::with_capacity(1 << 20, opened);
    let pool = TokenPool::open(&cfg.token)?;
    // Each step on standard error as it starts, with the time spent so far: a long restore shows
    // where it is.
    let started = std::time::Instant::now();
    let mut phase = |what: &str| eprintln!("[{:6.1} s] {what} ...", started.elapsed().as_secs_f64());
    let key = token::KeyId::from_hex(&audit.key)?;
    let report = seald::backup::restore(&mut input, &pool, &key, &store.dir, &audit.dir, &mut phase)?;
    if let Some(f) = &report.finding {
        return Err(format!("the restored journal does not verify: {f:?}").into());
    }
    println!(
        "restored {} records (through seq {}) into {} and {}; the audit chain verifies; start the daemon",
        report.records,
        report.last_seq,
        audit.dir.display(),
        store.dir.display()
    );
    Ok(())
}
