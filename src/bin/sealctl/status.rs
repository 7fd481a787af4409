//! `sealctl seal-status`: whether a seal was valid at a time, asked of the daemon as a signed answer
//! and verified here, offline, against the issuing CA (`--ca-cert`); or a saved answer verified
//! with no daemon at all (`--answer FILE`).
//!
//! Exit status: 0 the answer verifies (whatever the state), 1 it does not verify or does not cover
//! the time asked, 2 unusable input, 3 the daemon is unreachable or failed.

use super::output::rfc3339;
use super::remote::{self, local, read, Conn, Failure};
use clap::Args;
use seald::contract::rfc3339_ms;
use seald::formats::{seal_status, x509};
use serde_json::json;
use std::path::PathBuf;

/// `sealctl seal-status`.
#[derive(Args, Debug)]
pub struct SealStatusArgs {
    /// The seal (its esID).
    es_id: String,
    /// The time asked about, RFC 3339 (default: now).
    #[arg(long)]
    at: Option<String>,
    /// The issuing CA's certificate (PEM): the answer's responder must chain to it.
    #[arg(long = "ca-cert")]
    ca_cert: PathBuf,
    /// Verify this saved answer (DER) instead of asking the daemon.
    #[arg(long)]
    answer: Option<PathBuf>,
    /// Also write the signed answer (DER) here.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

fn ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Asks (or reads) and verifies; prints the state.
pub fn run(c: &Conn, a: SealStatusArgs) -> Result<(), Failure> {
    let at = match &a.at {
        Some(t) => time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map(|t| {
                std::time::UNIX_EPOCH
                    + std::time::Duration::from_millis((t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
            })
            .map_err(|e| local(format!("--at '{t}' is not an RFC 3339 time: {e}")))?,
        None => std::time::SystemTime::now(),
    };
    let anchors =
        x509::Cert::parse_bundle(&read(&a.ca_cert)?).map_err(|e| local(format!("{}: {e}", a.ca_cert.display())))?;
    let der = match &a.answer {
        Some(f) => read(f)?,
        None => {
            let query = remote::query(&[("at", &Some(rfc3339_ms(ms(at)))), ("format", &Some("der".into()))]);
            let path = format!("/v1/seal-status/{}{query}", remote::escape(&a.es_id));
            let (status, bytes) = c.endpoint.send_bytes("GET", &path, "application/json", Vec::new())?;
            if status >= 400 {
                return Err(remote::refused(status, &serde_json::from_slice(&bytes).unwrap_or_default(), ""));
            }
            bytes
        }
    };
    if let Some(out) = &a.out {
        std::fs::write(out, &der).map_err(|e| local(format!("{}: {e}", out.display())))?;
    }
    let refuse = |m: String| Failure { status: 1, message: format!("[status_not_verified] {m}") };
    let tbs = seal_status::verify(&der, &x509::TrustStore::new(anchors, Vec::new())).map_err(refuse)?;
    if tbs.es_id != a.es_id {
        return Err(refuse(format!("the answer is about seal {}, not {}", tbs.es_id, a.es_id)));
    }
    if !tbs.covers(at) {
        return Err(refuse(format!("the answer does not cover {}", rfc3339(ms(at)))));
    }
    let v = json!({
        "esID": tbs.es_id,
        "at": rfc3339(ms(at)),
        "state": tbs.state_name(),
        "since": rfc3339(ms(tbs.since)),
        "until": tbs.until.map(|u| rfc3339(ms(u))),
        "reason": tbs.reason,
        "produced_at": rfc3339(ms(tbs.produced_at)),
        "next_update": tbs.next_update.map(|u| rfc3339(ms(u))),
        "verified": true,
    });
    if c.json {
        println!("{v}");
    } else {
        println!(
            "seal {} was {} at {} (signed answer verified against {})",
            tbs.es_id,
            tbs.state_name(),
            rfc3339(ms(at)),
            a.ca_cert.display()
        );
        println!(
            "  {} since {}{}",
            tbs.state_name(),
            rfc3339(ms(tbs.since)),
            tbs.until
                .map(|u| format!(", until {}", rfc3339(ms(u))))
                .unwrap_or_else(|| format!(", still at {}", rfc3339(ms(tbs.produced_at))))
        );
        if let Some(r) = &tbs.reason {
            println!("  reason: {r}");
        }
    }
    Ok(())
}
