//! `sealctl filing ...`: the filings (备案) for the police seal-management system, through the
//! daemon's API.

use crate::output::{cell, out, out_table};
use crate::remote::{body, call, local, pages, Conn, Failure, PageArgs};
use clap::Subcommand;
use seald::contract::AckBody;
use std::path::PathBuf;

/// `sealctl filing ...`.
#[derive(Subcommand, Debug)]
pub enum FilingCmd {
    /// Filings for the police seal-management system.
    List {
        /// pending or acked.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Record that the police system acknowledged a filing (issuer).
    Ack {
        /// Filing id.
        id: String,
        /// The police system's reference number.
        #[arg(long)]
        reference: Option<String>,
    },
    /// Every filing as one JSON document, to hand over.
    Export {
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `sealctl filing ...`.
pub fn run(c: &Conn, cmd: FilingCmd) -> Result<(), Failure> {
    match cmd {
        FilingCmd::List { state, page } => {
            let v = pages(c, "/v1/filings", &[("state", &state)], &page, "filings")?;
            out_table(
                c,
                &v,
                "filings",
                &[
                    ("id", "ID"),
                    ("action", "ACTION"),
                    ("seal", "SEAL"),
                    ("state", "STATE"),
                    ("overdue", "OVERDUE"),
                    ("reference", "REFERENCE"),
                    ("seal_name", "NAME"),
                ],
            );
        }
        FilingCmd::Ack { id, reference } => {
            let v = call(c, "POST", &format!("/v1/filings/{id}/ack"), Some(body(&AckBody { reference })))?;
            out(c, &v, |v| println!("filing {} acknowledged", cell(&v["id"])));
        }
        FilingCmd::Export { out: path } => {
            let v = call(c, "GET", "/v1/filings/export", None)?;
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            match path {
                Some(p) => std::fs::write(&p, text).map_err(|e| local(format!("{}: {e}", p.display())))?,
                None => println!("{text}"),
            }
        }
    }
    Ok(())
}
