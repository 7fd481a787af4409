//! `sealctl ca ...`: the built-in issuing CA's certificate, and certificates for PKCS#10 requests,
//! through the daemon's API.

use crate::output::write_or_print;
use crate::remote::{body, call, read, Conn, Failure};
use clap::Subcommand;
use seald::contract::CaIssueBody;
use std::path::PathBuf;

/// `sealctl ca ...`: the built-in issuing CA.
#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// The issuing CA certificate (PEM).
    Show {
        /// Write it here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Certify a PKCS#10 request with the issuing CA in the token (issuer).
    Issue {
        /// The request (PEM).
        #[arg(long)]
        csr: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        valid_days: u32,
        /// Write the certificate here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `sealctl ca ...`.
pub fn run(c: &Conn, cmd: CaCmd) -> Result<(), Failure> {
    match cmd {
        CaCmd::Show { out: path } => {
            let v = call(c, "GET", "/v1/ca", None)?;
            write_or_print(path, v["certificate"].as_str().unwrap_or_default())
        }
        CaCmd::Issue { csr, valid_days, out: path } => {
            let pem = String::from_utf8_lossy(&read(&csr)?).into_owned();
            let v = call(c, "POST", "/v1/ca/issue", Some(body(&CaIssueBody { csr: pem, valid_days })))?;
            write_or_print(path, v["certificate"].as_str().unwrap_or_default())
        }
    }
}
