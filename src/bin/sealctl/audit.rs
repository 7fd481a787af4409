//! `sealctl audit ...`: verify, export, archive and query the audit journal, from a journal
//! directory (the daemon stopped), an export file, or a running daemon.

use clap::Subcommand;
use std::path::PathBuf;

/// A GET to the daemon (the common connection options and `SEALCTL_*`, with their timeout).
fn remote_get(remote: &crate::remote::Endpoint, path: &str, label: Option<&str>) -> Result<Vec<u8>, String> {
    let (status, body) =
        remote.send_watched("GET", path, "application/json", Vec::new(), label).map_err(|f| f.message)?;
    if status != 200 {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        return Err(match v["error"]["code"].as_str() {
            Some(code) => {
                format!("{path}: [{code}] HTTP {status}: {}", v["error"]["message"].as_str().unwrap_or_default())
            }
            None => format!("{path}: HTTP {status}: {}", String::from_utf8_lossy(&body)),
        });
    }
    Ok(body)
}

/// `sealctl audit ...`.
#[derive(Subcommand)]
pub enum AuditAction {
    /// Recompute the chain and check every checkpoint; name the first seq where anything is wrong.
    /// Exit status: 0 intact, 1 a problem found, 2 the input cannot be read.
    Verify {
        /// A journal directory (the daemon stopped).
        #[arg(long, conflicts_with = "export", required_unless_present_any = ["export", "server"])]
        journal: Option<PathBuf>,
        #[command(flatten)]
        remote: crate::remote::Endpoint,
        /// An export file (from `sealctl audit export`).
        #[arg(long, requires = "pubkey")]
        export: Option<PathBuf>,
        /// The audit public key (PEM). Without it a journal's chain is checked but not its signatures.
        #[arg(long)]
        pubkey: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write records as JSON Lines with the covering checkpoints, for verification elsewhere.
    Export {
        /// The journal directory (the daemon stopped).
        #[arg(long, required_unless_present = "server")]
        journal: Option<PathBuf>,
        #[command(flatten)]
        remote: crate::remote::Endpoint,
        /// First seq.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last seq (extended to the next checkpoint).
        #[arg(long, default_value_t = u64::MAX)]
        to: u64,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Move the oldest whole segments that a signed checkpoint covers into an export (daemon stopped).
    /// The journal keeps verifying from the archive's last hash. Nothing is ever deleted otherwise.
    Archive {
        /// The journal directory.
        #[arg(long)]
        journal: PathBuf,
        /// The audit public key (PEM): the whole journal is verified before anything moves.
        #[arg(long)]
        pubkey: PathBuf,
        /// Where the archive export goes.
        #[arg(long)]
        out: PathBuf,
    },
    /// Who did what to which object, when: records matching every given filter, as JSON Lines.
    Query {
        /// The journal directory.
        #[arg(long)]
        journal: PathBuf,
        /// Account.
        #[arg(long)]
        actor: Option<String>,
        /// Action, e.g. `sign`.
        #[arg(long)]
        action: Option<String>,
        /// Object, e.g. `seal:123`.
        #[arg(long)]
        object: Option<String>,
        /// Earliest time, ms since the epoch.
        #[arg(long)]
        from_ms: Option<u64>,
        /// Latest time, ms since the epoch.
        #[arg(long)]
        to_ms: Option<u64>,
    },
}

/// Exit statuses of `sealctl audit verify`.
const INTACT: u8 = 0;
const DAMAGED: u8 = 1;
pub const UNREADABLE: u8 = 2;

/// Shows a cluster export's verification; the exit status.
fn show_cluster(report: &seald::audit::ClusterReport, json: bool) -> u8 {
    if json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
    } else {
        for (node, r) in &report.nodes {
            println!("node {node}: {} records, {} checkpoints, through seq {}", r.records, r.checkpoints, r.last_seq);
        }
        let covered: Vec<String> = report.covered.iter().map(|h| format!("node {} to {}", h.node, h.seq)).collect();
        println!("cluster checkpoints: {} (the latest covers {})", report.cluster_checkpoints, covered.join(", "));
        match &report.finding {
            Some(f) => println!("FAILED at node {} seq {}: {:?}: {}", f.node, f.seq, f.kind, f.detail),
            None => println!("OK: every node's chain verifies"),
        }
    }
    if report.ok() {
        INTACT
    } else {
        DAMAGED
    }
}

/// Runs `sealctl audit ...`: the exit status, or why the input cannot be read.
pub fn run(action: AuditAction) -> Result<u8, String> {
    use seald::audit;
    match action {
        AuditAction::Verify { journal, remote, export, pubkey, json } => {
            let key = match &pubkey {
                Some(p) => {
                    let pem = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                    Some(seald::crypto::PublicKey::from_spki_pem(&pem).map_err(|e| format!("{}: {e}", p.display()))?)
                }
                None => None,
            };
            // A local journal or export first: the daemon (--server or SEALCTL_SERVER) otherwise.
            let report = match (journal, export) {
                (Some(dir), _) => audit::verify_journal_dir(&dir, key.as_ref()).map_err(|e| e.to_string())?,
                (None, Some(file)) => {
                    // Line by line: an export of any size verifies in flat memory.
                    let key = key.as_ref().ok_or("--pubkey is required for an export")?;
                    let f = std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
                    let mut input = std::io::BufReader::with_capacity(1 << 20, f);
                    let mut first = String::new();
                    let _ = std::io::BufRead::read_line(&mut input, &mut first);
                    if audit::is_cluster_export(&first) {
                        // Every node's chain and the cluster checkpoints that tie them.
                        let again = std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
                        let report =
                            audit::verify_cluster_export(std::io::BufReader::with_capacity(1 << 20, again), Some(key))
                                .map_err(|e| e.to_string())?;
                        return Ok(show_cluster(&report, json));
                    }
                    let f = std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
                    let mut input = std::io::BufReader::with_capacity(1 << 20, f);
                    let mut shown = crate::output::Progress::new("verify");
                    let head = audit::export_signed_head(&file);
                    let report = audit::verify_export(&mut input, key, head, &mut |n| shown.update_count(n, "records"))
                        .map_err(|e| e.to_string())?;
                    shown.finish();
                    report
                }
                (None, None) if remote.server.is_some() => {
                    let body = remote_get(&remote, "/v1/audit/verify", None)?;
                    serde_json::from_slice::<audit::VerifyReport>(&body)
                        .map_err(|e| format!("the daemon's report: {e}"))?
                }
                (None, None) => return Err("give --journal DIR, --export FILE or --server URL".into()),
            };
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else if let Some(f) = &report.finding {
                println!("FAILED at seq {}: {:?}: {}", f.seq, f.kind, f.detail);
            } else {
                let signed = report
                    .signed_through
                    .map(|s| format!("signed through seq {s}"))
                    .unwrap_or_else(|| "no signed head".into());
                let sigs = if report.signatures_checked {
                    "signatures checked"
                } else {
                    "signatures NOT checked (no --pubkey)"
                };
                println!(
                    "OK: {} records to seq {}, {} checkpoints, {signed}; {sigs}",
                    report.records, report.last_seq, report.checkpoints
                );
            }
            Ok(if report.ok() { INTACT } else { DAMAGED })
        }
        AuditAction::Export { journal, remote, from, to, out } => {
            let mut sink: Box<dyn std::io::Write + Send> = match &out {
                Some(p) => Box::new(std::io::BufWriter::with_capacity(
                    1 << 20,
                    std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout())),
            };
            if journal.is_none() && remote.server.is_some() {
                let to_param = if to == u64::MAX { String::new() } else { format!("&to={to}") };
                // Streamed into the output as it arrives: memory stays flat whatever the range.
                let path = format!("/v1/audit/export?from={from}{to_param}");
                let (mut lines, mut received, mut failed, mut write_error) = (0u64, 0u64, Vec::new(), None);
                let mut progress = crate::output::Progress::new("export");
                let status = remote.stream(&path, |status, chunk| {
                    if status != 200 {
                        if failed.len() < 64 << 10 {
                            failed.extend_from_slice(chunk);
                        }
                        return Ok(());
                    }
                    received += chunk.len() as u64;
                    lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
                    progress.update(received, None);
                    sink.write_all(chunk).map_err(|e| {
                        write_error = Some(e.to_string());
                        "stopped".to_string()
                    })
                });
                progress.finish();
                if let Some(e) = write_error {
                    return Err(format!("writing the export: {e}"));
                }
                let status = status.map_err(|f| f.message)?;
                if status != 200 {
                    let v: serde_json::Value = serde_json::from_slice(&failed).unwrap_or_default();
                    return Err(match v["error"]["code"].as_str() {
                        Some(code) => format!(
                            "{path}: [{code}] HTTP {status}: {}",
                            v["error"]["message"].as_str().unwrap_or_default()
                        ),
                        None => format!("{path}: HTTP {status}: {}", String::from_utf8_lossy(&failed)),
                    });
                }
                sink.flush().map_err(|e| format!("writing the export: {e}"))?;
                eprintln!("exported {lines} lines from the daemon");
                return Ok(INTACT);
            }
            let journal = journal.ok_or("give --journal DIR or --server URL")?;
            let (f, t) =
                audit::export(&journal, audit::ExportRange { from, to }, &mut sink, None).map_err(|e| e.to_string())?;
            sink.flush().map_err(|e| format!("writing the export: {e}"))?;
            eprintln!("exported seq {f} to {t}");
            Ok(INTACT)
        }
        AuditAction::Archive { journal, pubkey, out } => {
            let pem = std::fs::read_to_string(&pubkey).map_err(|e| format!("{}: {e}", pubkey.display()))?;
            let key =
                seald::crypto::PublicKey::from_spki_pem(&pem).map_err(|e| format!("{}: {e}", pubkey.display()))?;
            match audit::archive(&journal, &key, &out).map_err(|e| e.to_string())? {
                Some((from, to)) => println!("archived seq {from} to {to} into {}", out.display()),
                None => println!("nothing to archive: no whole segment is covered by a signed checkpoint yet"),
            }
            Ok(INTACT)
        }
        AuditAction::Query { journal, actor, action, object, from_ms, to_ms } => {
            use std::io::Write as _;
            let q = audit::Query { from_ms, to_ms, actor, action, object };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for r in audit::journal_records(&journal).map_err(|e| e.to_string())? {
                let r = r.map_err(|e| e.to_string())?;
                if q.matches(&r) && writeln!(out, "{}", serde_json::to_string(&r).unwrap_or_default()).is_err() {
                    // The reader went away (a closed pipe): stop quietly.
                    return Ok(INTACT);
                }
            }
            let _ = out.flush();
            Ok(INTACT)
        }
    }
}
