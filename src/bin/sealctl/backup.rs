//! `sealctl backup --out FILE`: a signed backup through the daemon (system administrator).

use crate::output::cell;
use crate::remote::{call_bytes, local, Conn, Failure};
use serde_json::Value;
use std::path::PathBuf;

/// `sealctl backup --out FILE` (system administrator): a signed backup through the daemon.
pub fn run(c: &Conn, out_path: &PathBuf) -> Result<(), Failure> {
    let bytes = call_bytes(c, "/v1/admin/backup", "backup")?;
    std::fs::write(out_path, &bytes).map_err(|e| local(format!("{}: {e}", out_path.display())))?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    eprintln!(
        "backup of records {}..{} written to {} ({} bytes; restore with `seald restore` while the daemon is stopped)",
        cell(&v["manifest"]["first_seq"]),
        cell(&v["manifest"]["head_seq"]),
        out_path.display(),
        bytes.len()
    );
    Ok(())
}
